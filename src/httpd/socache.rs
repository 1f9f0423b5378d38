//! httpd's shared object caches (`ap_socache`: shmcb, memcache, redis, ...), shared by all
//! child processes, with the cross-process mutex that non-MP-safe providers need.

use super::ffi;
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// What cache to make.
#[derive(Clone, Copy, Debug)]
pub struct SocacheOptions<'a> {
    /// `provider[:args]`, e.g. `shmcb:sessions(1024000)`.
    pub spec: &'a str,
    /// The cache's name (e.g. for the shared-memory file).
    pub cname: &'static CStr,
    /// The mutex type registered with [`register_mutex`].
    pub mutex_type: &'static CStr,
    /// A hint: the average size of a stored object.
    pub avg_obj_size: usize,
    /// A hint: how long objects live.
    pub expiry_secs: u64,
}

/// A shared cache instance, created in the parent at post_config and used by every child.
pub struct Socache {
    provider: *const ffi::ap_socache_provider_t,
    instance: *mut ffi::ap_socache_instance_t,
    mutex: AtomicPtr<ffi::apr_global_mutex_t>,
    name: String,
}

// SAFETY: the provider and instance are shared-memory structures made for use by many
// processes and threads; providers that are not safe for that (AP_SOCACHE_FLAG_NOTMPSAFE)
// get every call serialized by the global mutex.
unsafe impl Send for Socache {}
// SAFETY: as above.
unsafe impl Sync for Socache {}

/// Registers the mutex type a cache may need (`Mutex` directive name); call in pre_config.
pub fn register_mutex(pconf: &super::Pool<'_>, mutex_type: &'static CStr) {
    // SAFETY: valid pool; the type name is 'static.
    unsafe {
        ffi::ap_mutex_register(
            pconf.as_ptr(),
            mutex_type.as_ptr(),
            std::ptr::null(),
            ffi::apr_lockmech_e_APR_LOCK_DEFAULT,
            0,
        )
    };
}

/// The largest value [`Socache::retrieve`] reads.
pub const MAX_VALUE: usize = 16 * 1024;

/// What each worker thread keeps for cache calls: a scratch pool (providers such as memcache
/// allocate from it; shmcb does not), cleared after every call, and the buffer values are
/// retrieved into. Made on a thread's first cache call, reused after.
struct ThreadScratch {
    pool: *mut ffi::apr_pool_t,
    buf: Vec<u8>,
}

impl ThreadScratch {
    fn new() -> ThreadScratch {
        let mut p = std::ptr::null_mut();
        // SAFETY: an unmanaged pool: no parent, so it is not destroyed behind our back when
        // APR terminates; destroyed once in Drop (when the thread exits).
        unsafe {
            ffi::apr_pool_create_unmanaged_ex(&mut p, None, std::ptr::null_mut());
        }
        ThreadScratch {
            pool: p,
            buf: Vec::new(),
        }
    }
}

impl Drop for ThreadScratch {
    fn drop(&mut self) {
        if !self.pool.is_null() {
            // SAFETY: made by apr_pool_create_unmanaged_ex, destroyed once.
            unsafe { ffi::apr_pool_destroy(self.pool) }
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Option<ThreadScratch>> =
        const { std::cell::RefCell::new(None) };
}

impl Socache {
    /// Whether a socache provider is loaded (`shmcb`, `memcache`, ...).
    pub fn provider_exists(name: &str) -> bool {
        let n = super::to_cstring(name);
        // SAFETY: lookup in httpd's provider registry.
        !unsafe {
            ffi::ap_lookup_provider(
                ffi::AP_SOCACHE_PROVIDER_GROUP.as_ptr() as *const _,
                n.as_ptr(),
                ffi::AP_SOCACHE_PROVIDER_VERSION.as_ptr() as *const _,
            )
        }
        .is_null()
    }

    /// Creates and initializes a cache as `opts` says, in the parent at post_config.
    pub fn create(
        opts: &SocacheOptions<'_>,
        s: &super::Server<'_>,
        pconf: &super::Pool<'_>,
        ptemp: &super::Pool<'_>,
    ) -> Result<Socache, String> {
        let SocacheOptions {
            spec,
            cname,
            mutex_type,
            avg_obj_size,
            expiry_secs,
        } = *opts;
        let (name, arg) = match spec.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (spec, None),
        };
        let n = super::to_cstring(name);
        // SAFETY: lookup in httpd's provider registry; the provider struct is static.
        let provider = unsafe {
            ffi::ap_lookup_provider(
                ffi::AP_SOCACHE_PROVIDER_GROUP.as_ptr() as *const _,
                n.as_ptr(),
                ffi::AP_SOCACHE_PROVIDER_VERSION.as_ptr() as *const _,
            )
        } as *const ffi::ap_socache_provider_t;
        if provider.is_null() {
            return Err(format!(
                "no socache provider \"{name}\" is loaded (LoadModule socache_{name}_module)"
            ));
        }
        let mut instance: *mut ffi::ap_socache_instance_t = std::ptr::null_mut();
        let carg = arg.map(super::to_cstring);
        // SAFETY: the provider's create with its argument string (copied by the provider into
        // pconf), and init with hints; both report errors as strings/statuses.
        unsafe {
            let err = ((*provider).create.expect("socache create"))(
                &mut instance,
                carg.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                ptemp.as_ptr(),
                pconf.as_ptr(),
            );
            if let Some(e) = super::cstr(err) {
                return Err(format!("socache {name}: {e}"));
            }
            let hints = ffi::ap_socache_hints {
                avg_id_len: 32,
                avg_obj_size: avg_obj_size as _,
                expiry_interval: (expiry_secs * 1_000_000) as _,
            };
            let rv = ((*provider).init.expect("socache init"))(
                instance,
                cname.as_ptr(),
                &hints,
                s.as_ptr(),
                pconf.as_ptr(),
            );
            if rv != 0 {
                return Err(format!(
                    "socache {name}: initialization failed (status {rv})"
                ));
            }
        }
        let mut mutex: *mut ffi::apr_global_mutex_t = std::ptr::null_mut();
        // SAFETY: reading the provider's flags; creating a global mutex in pconf.
        unsafe {
            if (*provider).flags & ffi::AP_SOCACHE_FLAG_NOTMPSAFE != 0 {
                let rv = ffi::ap_global_mutex_create(
                    &mut mutex,
                    std::ptr::null_mut(),
                    mutex_type.as_ptr(),
                    std::ptr::null(),
                    s.as_ptr(),
                    pconf.as_ptr(),
                    0,
                );
                if rv != 0 {
                    return Err(format!(
                        "socache {name}: cannot create its mutex (status {rv})"
                    ));
                }
            }
        }
        let cache = Socache {
            provider,
            instance,
            mutex: AtomicPtr::new(mutex),
            name: name.to_string(),
        };
        let (prov, inst, server) = (provider as usize, instance as usize, s.as_ptr() as usize);
        pconf.on_cleanup(move || {
            // SAFETY: the configuration pool is going away; nothing uses the instance after.
            unsafe {
                let p = prov as *const ffi::ap_socache_provider_t;
                if let Some(d) = (*p).destroy {
                    d(
                        inst as *mut ffi::ap_socache_instance_t,
                        server as *mut ffi::server_rec,
                    );
                }
            }
        });
        Ok(cache)
    }

    /// The provider name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Re-opens the mutex in a child process (call in child_init).
    pub fn child_init(&self, pchild: &super::Pool<'_>) {
        let mut m = self.mutex.load(Ordering::Acquire);
        if m.is_null() {
            return;
        }
        // SAFETY: the mutex was created in the parent; child_init attaches this process
        // (before any worker thread uses the cache).
        unsafe {
            let f = ffi::apr_global_mutex_lockfile(m);
            ffi::apr_global_mutex_child_init(&mut m, f, pchild.as_ptr());
        }
        self.mutex.store(m, Ordering::Release);
    }

    /// Runs `f` with this thread's scratch pool and buffer, under the mutex if the provider
    /// needs one; the pool is cleared after.
    fn locked<R>(&self, f: impl FnOnce(*mut ffi::apr_pool_t, &mut Vec<u8>) -> R) -> R {
        SCRATCH.with(|cell| {
            // A call made while this thread is already in one (not expected) gets its own.
            let mut own = None;
            let mut slot = cell.try_borrow_mut().ok();
            let scratch = match slot.as_deref_mut() {
                Some(s) => s.get_or_insert_with(ThreadScratch::new),
                None => own.insert(ThreadScratch::new()),
            };
            let m = self.mutex.load(Ordering::Acquire);
            if !m.is_null() {
                // SAFETY: a valid global mutex.
                unsafe { ffi::apr_global_mutex_lock(m) };
            }
            let r = f(scratch.pool, &mut scratch.buf);
            if !m.is_null() {
                // SAFETY: locked above by this thread.
                unsafe { ffi::apr_global_mutex_unlock(m) };
            }
            // SAFETY: the pool is this thread's; nothing allocated from it outlives the call.
            unsafe { ffi::apr_pool_clear(scratch.pool) };
            r
        })
    }

    /// Stores `data` under `id` for `ttl_secs`.
    pub fn store(&self, id: &[u8], data: &[u8], ttl_secs: u64) -> bool {
        let Some(server) = super::Server::main() else {
            return false;
        };
        self.locked(|p, _| {
            // SAFETY: the provider copies id and data into the shared cache.
            let rv = unsafe {
                let expiry = ffi::apr_time_now() + (ttl_secs as i64) * 1_000_000;
                ((*self.provider).store.expect("socache store"))(
                    self.instance,
                    server.as_ptr(),
                    id.as_ptr(),
                    id.len() as u32,
                    expiry,
                    data.as_ptr() as *mut u8,
                    data.len() as u32,
                    p,
                )
            };
            rv == 0
        })
    }

    /// Reads the value under `id` (at most [`MAX_VALUE`] bytes).
    pub fn retrieve(&self, id: &[u8]) -> Option<Vec<u8>> {
        let server = super::Server::main()?;
        self.locked(|p, buf| {
            // The thread's buffer is sized once; the value is copied out at its own length.
            buf.resize(MAX_VALUE, 0);
            let mut len = MAX_VALUE as u32;
            // SAFETY: the provider writes at most `len` bytes into buf and sets len.
            let rv = unsafe {
                ((*self.provider).retrieve.expect("socache retrieve"))(
                    self.instance,
                    server.as_ptr(),
                    id.as_ptr(),
                    id.len() as u32,
                    buf.as_mut_ptr(),
                    &mut len,
                    p,
                )
            };
            (rv == 0).then(|| buf[..(len as usize).min(MAX_VALUE)].to_vec())
        })
    }

    /// Removes `id`.
    pub fn remove(&self, id: &[u8]) -> bool {
        let Some(server) = super::Server::main() else {
            return false;
        };
        self.locked(|p, _| {
            // SAFETY: the provider removes the entry, if any.
            let rv = unsafe {
                ((*self.provider).remove.expect("socache remove"))(
                    self.instance,
                    server.as_ptr(),
                    id.as_ptr(),
                    id.len() as u32,
                    p,
                )
            };
            rv == 0
        })
    }
}
