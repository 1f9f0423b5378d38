//! APR pools: Rust values whose life is tied to a pool, and pool userdata.

use super::ffi;
use std::ffi::{CStr, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A borrowed APR pool.
#[derive(Clone, Copy)]
pub struct Pool<'a> {
    raw: NonNull<ffi::apr_pool_t>,
    _life: PhantomData<&'a ffi::apr_pool_t>,
}

unsafe extern "C" fn drop_boxed<T>(data: *mut c_void) -> ffi::apr_status_t {
    super::guard::guard(ffi::APR_SUCCESS as ffi::apr_status_t, || {
        // SAFETY: `data` was made by Box::into_raw in `Pool::attach::<T>` and this cleanup
        // runs exactly once, when the pool is cleared or destroyed.
        drop(unsafe { Box::from_raw(data as *mut T) });
        ffi::APR_SUCCESS as ffi::apr_status_t
    })
}

impl<'a> Pool<'a> {
    /// Wraps a pool pointer httpd handed us.
    ///
    /// # Safety
    /// `p` must be a valid pool that lives at least for `'a`.
    pub unsafe fn from_raw(p: *mut ffi::apr_pool_t) -> Option<Pool<'a>> {
        NonNull::new(p).map(|raw| Pool {
            raw,
            _life: PhantomData,
        })
    }

    /// Resolves `path` against ServerRoot, as httpd does for file names in directives.
    pub fn server_root_relative(&self, path: &str) -> std::path::PathBuf {
        let c = super::to_cstring(path);
        // SAFETY: valid pool and string; httpd returns a pool string or NULL.
        let r = unsafe { ffi::ap_server_root_relative(self.as_ptr(), c.as_ptr()) };
        // SAFETY: NULL or NUL-terminated.
        unsafe { super::cstr(r) }
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(path))
    }

    /// The raw pointer, for calls into httpd.
    pub fn as_ptr(&self) -> *mut ffi::apr_pool_t {
        self.raw.as_ptr()
    }

    /// Moves `value` into the pool: it is dropped when the pool is cleared or destroyed.
    /// Returns a pointer valid for the pool's life.
    pub fn attach<T: 'static>(&self, value: T) -> NonNull<T> {
        let p = Box::into_raw(Box::new(value));
        // SAFETY: the pool is valid; the cleanup frees exactly this box, once.
        unsafe {
            ffi::apr_pool_cleanup_register(
                self.as_ptr(),
                p as *const c_void,
                Some(drop_boxed::<T>),
                Some(ffi::apr_pool_cleanup_null),
            );
            NonNull::new_unchecked(p)
        }
    }

    /// Runs `f` when the pool is cleared or destroyed (e.g. at child exit for `pchild`).
    pub fn on_cleanup(&self, f: impl FnOnce() + Send + 'static) {
        struct RunOnDrop(Option<Box<dyn FnOnce() + Send>>);
        impl Drop for RunOnDrop {
            fn drop(&mut self) {
                if let Some(f) = self.0.take() {
                    f();
                }
            }
        }
        self.attach(RunOnDrop(Some(Box::new(f))));
    }

    /// Copies `s` into the pool as a C string.
    pub fn pstrdup(&self, s: &str) -> *const std::os::raw::c_char {
        let c = super::to_cstring(s);
        // SAFETY: apr_pstrdup copies the NUL-terminated string into the valid pool.
        unsafe { ffi::apr_pstrdup(self.as_ptr(), c.as_ptr()) }
    }

    /// Reads userdata stored under `key` (the process pool keeps it across DSO reloads).
    pub fn userdata(&self, key: &CStr) -> Option<NonNull<c_void>> {
        let mut data: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid pool and key; APR writes the stored pointer or NULL.
        unsafe { ffi::apr_pool_userdata_get(&mut data, key.as_ptr(), self.as_ptr()) };
        NonNull::new(data)
    }

    /// Stores a copy of `bytes` in the pool under `key` (overwriting).
    pub fn set_userdata_bytes(&self, key: &'static CStr, bytes: &[u8]) {
        // SAFETY: the copy is allocated from this pool, so it lives as long as the userdata
        // entry; apr_pool_userdata_setn keeps the 'static key pointer without copying it.
        unsafe {
            let p =
                ffi::apr_palloc(self.as_ptr(), bytes.len().max(1) as ffi::apr_size_t) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            ffi::apr_pool_userdata_setn(p as *const c_void, key.as_ptr(), None, self.as_ptr());
        }
    }

    /// Reads `len` bytes stored with [`Pool::set_userdata_bytes`].
    pub fn userdata_bytes(&self, key: &CStr, len: usize) -> Option<Vec<u8>> {
        let p = self.userdata(key)?;
        // SAFETY: set_userdata_bytes stored at least `len` bytes under this key (callers use
        // one length per key).
        Some(unsafe { std::slice::from_raw_parts(p.as_ptr() as *const u8, len) }.to_vec())
    }

    /// Stores a plain marker under `key` (for "have we been here before" checks).
    pub fn set_marker(&self, key: &'static CStr) {
        self.set_userdata_bytes(key, &[1]);
    }
}
