//! APR optional functions: calls into other modules (mod_watchdog, ...) without linking them,
//! and mod_watchdog's singleton tasks built on them.

use super::ffi;
use std::ffi::{CStr, c_void};
use std::time::Duration;

/// Looks up an optional function by name; `None` if no loaded module provides it.
///
/// # Safety
/// `T` must be the function-pointer type the provider registered under `name`.
pub unsafe fn retrieve<T: Copy>(name: &CStr) -> Option<T> {
    // SAFETY: apr_dynamic_fn_retrieve returns NULL or the registered function.
    let f = unsafe { ffi::apr_dynamic_fn_retrieve(name.as_ptr()) }?;
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of_val(&f));
    // SAFETY: per contract, the registered function has type T (a function pointer).
    Some(unsafe { std::mem::transmute_copy::<_, T>(&f) })
}

/// The state a watchdog callback is called in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogState {
    /// First call in the child that runs the task.
    Starting,
    /// Every interval.
    Running,
    /// The child is stopping.
    Stopping,
}

/// A watchdog task: called with the state and a pool that lives for the call.
pub type WatchdogFn = fn(WatchdogState, &super::Pool<'_>);

unsafe extern "C" fn watchdog_tramp(
    state: std::os::raw::c_int,
    data: *mut c_void,
    pool: *mut ffi::apr_pool_t,
) -> ffi::apr_status_t {
    let _scope = super::log::Scope::enter(super::log::Target::Main);
    super::guard::guard(ffi::APR_SUCCESS as ffi::apr_status_t, || {
        // SAFETY: `data` is the WatchdogFn registered in `watchdog_singleton`.
        let f: WatchdogFn = unsafe { std::mem::transmute::<*mut c_void, WatchdogFn>(data) };
        let st = match state as u32 {
            ffi::AP_WATCHDOG_STATE_STARTING => WatchdogState::Starting,
            ffi::AP_WATCHDOG_STATE_STOPPING => WatchdogState::Stopping,
            _ => WatchdogState::Running,
        };
        // SAFETY: mod_watchdog passes a live pool for the call.
        if let Some(p) = unsafe { super::Pool::from_raw(pool) } {
            f(st, &p);
        }
        ffi::APR_SUCCESS as ffi::apr_status_t
    })
}

/// Registers `f` as a mod_watchdog singleton task named `name`: it runs every `interval` in
/// one thread of exactly one child process (not the parent). Call in post_config.
pub fn watchdog_singleton(
    name: &'static CStr,
    interval: Duration,
    pconf: &super::Pool<'_>,
    f: WatchdogFn,
) -> Result<(), String> {
    // SAFETY: the types are mod_watchdog's declared optional-function types.
    let get: Option<ffi::apr_OFN_ap_watchdog_get_instance_t> =
        unsafe { retrieve(c"ap_watchdog_get_instance") };
    // SAFETY: as above.
    let reg: Option<ffi::apr_OFN_ap_watchdog_register_callback_t> =
        unsafe { retrieve(c"ap_watchdog_register_callback") };
    let (Some(Some(get)), Some(Some(reg))) = (get, reg) else {
        return Err("mod_watchdog is required (it is built into Debian's apache2; elsewhere LoadModule watchdog_module)".into());
    };
    let mut wd: *mut ffi::ap_watchdog_t = std::ptr::null_mut();
    // SAFETY: parent=0, singleton=1: one child runs the callback in its own thread; the data
    // pointer is a plain fn pointer, valid while this DSO is loaded (the configuration that
    // registered it goes away before the DSO is unloaded).
    unsafe {
        let rv = get(&mut wd, name.as_ptr(), 0, 1, pconf.as_ptr());
        if rv != 0 {
            return Err(format!(
                "mod_watchdog: no instance {:?} (status {rv})",
                name
            ));
        }
        let rv = reg(
            wd,
            interval.as_micros() as ffi::apr_interval_time_t,
            f as *const c_void,
            Some(watchdog_tramp),
        );
        if rv != 0 {
            return Err(format!(
                "mod_watchdog: registering {:?} failed (status {rv})",
                name
            ));
        }
    }
    Ok(())
}
