//! Per-server and per-directory configuration as typed Rust values.
//!
//! httpd keeps one opaque pointer per module in each config vector. Ours points to a
//! [`Tagged<T>`]: the value with its `TypeId` in front, so a lookup with the wrong type is a
//! panic (caught by the guard) rather than memory corruption. The value is owned by the
//! configuration pool and dropped by a pool cleanup when httpd throws the configuration away.

use super::ffi;
use super::pool::Pool;
use std::any::TypeId;
use std::ffi::c_void;

/// A configuration struct for a server (virtual host) or a directory section.
pub trait ModuleConfig: Default + Send + Sync + 'static {
    /// Combines an outer configuration (`base`) with an inner one (`add`). Runs for every
    /// virtual host (the module sets `AP_MODULE_FLAG_ALWAYS_MERGE`).
    fn merge(base: &Self, add: &Self) -> Self;
}

#[repr(C)]
struct Tagged<T> {
    tag: TypeId,
    value: T,
}

/// Moves `value` into `pool` with its type tag; the pointer can be read back with [`get`].
pub(crate) fn attach_tagged<T: 'static>(pool: &Pool<'_>, value: T) -> *mut c_void {
    pool.attach(Tagged {
        tag: TypeId::of::<T>(),
        value,
    })
    .as_ptr() as *mut c_void
}

fn alloc<T: ModuleConfig>(p: *mut ffi::apr_pool_t, value: T) -> *mut c_void {
    // SAFETY: httpd passes the configuration pool, valid while the configuration exists.
    let pool = unsafe { Pool::from_raw(p) }.expect("config pool");
    attach_tagged(&pool, value)
}

/// Reads a config pointer as `T`.
///
/// # Safety
/// `p` must be NULL or a pointer made by [`attach_tagged`] that is still alive for `'a`.
pub(crate) unsafe fn get<'a, T: 'static>(p: *mut c_void) -> Option<&'a mut T> {
    if p.is_null() {
        return None;
    }
    // SAFETY: every Tagged<_> is repr(C) with the TypeId first, so reading the tag is valid
    // whatever T the value was made with; we cast to Tagged<T> only when the tags agree.
    unsafe {
        let tag = *(p as *const TypeId);
        assert!(
            tag == TypeId::of::<T>(),
            "config looked up with the wrong type"
        );
        Some(&mut (*(p as *mut Tagged<T>)).value)
    }
}

/// Reads this module's entry of a config vector as `T`.
///
/// # Safety
/// `cv` must be a live config vector of this configuration generation.
pub(crate) unsafe fn from_vector<'a, T: 'static>(
    cv: *mut ffi::ap_conf_vector_t,
) -> Option<&'a mut T> {
    let idx = super::module::module_index();
    if cv.is_null() || idx < 0 {
        return None;
    }
    // SAFETY: a config vector is an array of one pointer per module, indexed by module_index.
    unsafe { get(*(cv as *mut *mut c_void).add(idx as usize)) }
}

/// `create_server_config` for `T`.
///
/// # Safety
/// Called by httpd with a valid pool.
pub unsafe extern "C" fn create_server_config<T: ModuleConfig>(
    p: *mut ffi::apr_pool_t,
    _s: *mut ffi::server_rec,
) -> *mut c_void {
    super::guard::guard(std::ptr::null_mut(), || alloc(p, T::default()))
}

/// `merge_server_config` for `T`.
///
/// # Safety
/// Called by httpd with a valid pool and two configs made by [`create_server_config`].
pub unsafe extern "C" fn merge_server_config<T: ModuleConfig>(
    p: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    super::guard::guard(std::ptr::null_mut(), || {
        // SAFETY: both were made by alloc::<T> in this configuration.
        let (b, a) = unsafe { (get::<T>(base), get::<T>(add)) };
        match (b, a) {
            (Some(b), Some(a)) => alloc(p, T::merge(b, a)),
            (Some(_), None) => base,
            (None, _) => add,
        }
    })
}

/// `create_dir_config` for `T`.
///
/// # Safety
/// Called by httpd with a valid pool.
pub unsafe extern "C" fn create_dir_config<T: ModuleConfig>(
    p: *mut ffi::apr_pool_t,
    _dir: *mut std::os::raw::c_char,
) -> *mut c_void {
    super::guard::guard(std::ptr::null_mut(), || alloc(p, T::default()))
}

/// `merge_dir_config` for `T`.
///
/// # Safety
/// As for [`merge_server_config`].
pub unsafe extern "C" fn merge_dir_config<T: ModuleConfig>(
    p: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { merge_server_config::<T>(p, base, add) }
}

/// A per-directory config vector httpd hands to a hook (e.g. a proxy worker's).
#[derive(Clone, Copy)]
pub struct ConfVector(*mut ffi::ap_conf_vector_t);

impl ConfVector {
    /// # Safety
    /// `cv` must be NULL or a live config vector of this configuration.
    pub unsafe fn from_raw(cv: *mut ffi::ap_conf_vector_t) -> ConfVector {
        ConfVector(cv)
    }

    /// This module's entry as `T`.
    pub fn get<'a, T: ModuleConfig>(&self) -> Option<&'a T> {
        // SAFETY: per from_raw; our entry was made by create/merge for T.
        unsafe { from_vector::<T>(self.0) }.map(|t| &*t)
    }
}
