//! The module record and its registration.
//!
//! httpd writes `module_index`, `next` and `dynamic_load_handle` into the record, so it must be
//! a writable `static mut` (an immutable static lands in read-only memory and httpd crashes).
//! [`httpd_module!`](crate::httpd_module) declares it; the rest of the crate reaches it through
//! [`module_index`] and [`record`].

use super::ffi;
use std::sync::atomic::{AtomicPtr, Ordering};

static MODULE: AtomicPtr<ffi::module> = AtomicPtr::new(std::ptr::null_mut());

/// Declares the exported module record.
///
/// ```ignore
/// httpd_module! {
///     symbol: bastion_module,
///     name: c"mod_bastion.c",
///     server_config: ServerConf,
///     dir_config: DirConf,
///     commands: COMMANDS,
///     register_hooks: register_hooks,
/// }
/// ```
#[macro_export]
macro_rules! httpd_module {
    (
        symbol: $sym:ident,
        name: $name:literal,
        server_config: $S:ty,
        dir_config: $D:ty,
        commands: $cmds:path,
        register_hooks: $reg:path $(,)?
    ) => {
        /// The module record httpd loads (`LoadModule bastion_module mod_bastion.so`).
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals)]
        pub static mut $sym: $crate::httpd::ffi::module = $crate::httpd::ffi::module {
            version: $crate::httpd::ffi::MODULE_MAGIC_NUMBER_MAJOR as _,
            minor_version: $crate::httpd::ffi::MODULE_MAGIC_NUMBER_MINOR as _,
            module_index: -1,
            name: $name.as_ptr(),
            dynamic_load_handle: ::std::ptr::null_mut(),
            next: ::std::ptr::null_mut(),
            magic: $crate::httpd::ffi::MODULE_MAGIC_COOKIE as _,
            rewrite_args: None,
            create_dir_config: Some($crate::httpd::config::create_dir_config::<$D>),
            merge_dir_config: Some($crate::httpd::config::merge_dir_config::<$D>),
            create_server_config: Some($crate::httpd::config::create_server_config::<$S>),
            merge_server_config: Some($crate::httpd::config::merge_server_config::<$S>),
            cmds: $cmds.as_ptr(),
            register_hooks: Some({
                unsafe extern "C" fn register(p: *mut $crate::httpd::ffi::apr_pool_t) {
                    // SAFETY: httpd calls this once per load with the record it loaded.
                    unsafe { $crate::httpd::module::register(&raw mut $sym, p, $reg) }
                }
                register
            }),
            flags: $crate::httpd::ffi::AP_MODULE_FLAG_ALWAYS_MERGE as _,
        };
    };
}

/// Registers the module: remembers the record, installs the panic hook and the tracing
/// subscriber, then lets the crate register its hooks.
///
/// # Safety
/// `m` must be the module record httpd is loading; called only from `register_hooks`.
#[doc(hidden)]
pub unsafe fn register(
    m: *mut ffi::module,
    p: *mut ffi::apr_pool_t,
    reg: fn(&super::hooks::Registrar),
) {
    MODULE.store(m, Ordering::Release);
    super::guard::install_panic_hook();
    super::log::install_subscriber();
    let registrar = super::hooks::Registrar::new(p);
    super::guard::guard((), || reg(&registrar));
}

/// The module record, or NULL before httpd registered it.
pub fn record() -> *mut ffi::module {
    MODULE.load(Ordering::Acquire)
}

/// This module's index in httpd's config vectors (`APLOG_NO_MODULE` before registration).
pub fn module_index() -> std::os::raw::c_int {
    let m = record();
    if m.is_null() {
        return ffi::APLOG_NO_MODULE;
    }
    // SAFETY: the record is a static that lives as long as this DSO; httpd wrote the index
    // before calling register_hooks and never changes it afterwards.
    unsafe { (*m).module_index }
}

/// Finds a module httpd has loaded, by its source-file name (`"mod_md.c"`).
pub fn find_loaded(name: &str) -> bool {
    let c = super::to_cstring(name);
    // SAFETY: ap_find_linked_module only reads the list of loaded modules.
    !unsafe { ffi::ap_find_linked_module(c.as_ptr()) }.is_null()
}

/// The names (`mod_x.c`) of all modules loaded in this server.
pub fn loaded_names() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: ap_top_module is the head of httpd's list of linked modules; each entry's `next`
    // and `name` are valid for the life of the configuration.
    unsafe {
        let mut m = ffi::ap_top_module;
        while !m.is_null() {
            if let Some(n) = super::cstr((*m).name) {
                out.push(n.to_string());
            }
            m = (*m).next;
        }
    }
    out
}
