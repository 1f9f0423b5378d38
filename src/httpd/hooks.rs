//! Hook registration: typed Rust functions behind panic-guarded `extern "C"` trampolines.
//!
//! ```ignore
//! fn register_hooks(reg: &Registrar) {
//!     hook!(reg, post_config, lifecycle::post_config, Order::Middle);
//!     hook!(reg, process_connection, tls::process_connection, Order::Middle, before = [c"mod_http2.c"]);
//! }
//! ```
//!
//! Signatures of the Rust side, per hook:
//! - `pre_config`: `fn(&Pool) -> Status` (the configuration pool)
//! - `post_config`: `fn(&Pool, &Pool, Server<'static>) -> Status` (pconf, ptemp, main server)
//! - `check_config`: as `post_config`; runs for `apachectl -t` too (cross-directive checks)
//! - `test_config`: `fn(&Pool, Server<'static>)`
//! - `child_init`: `fn(&Pool, Server<'static>)` (the child's pool)
//! - `handler`, `post_read_request`, `fixups`: `fn(&mut Request) -> Status`
//! - `pre_connection`, `process_connection`: `fn(Conn) -> Status`
//!
//! A panic in a request hook gives 500, in a connection hook closes the connection
//! (`DONE` after marking it aborted), in a config hook fails startup; it is always logged.

use super::ffi;
use std::os::raw::c_char;

/// Where a hook runs relative to other modules' (`APR_HOOK_*`).
#[derive(Clone, Copy, Debug)]
pub enum Order {
    /// APR_HOOK_REALLY_FIRST
    ReallyFirst,
    /// APR_HOOK_FIRST
    First,
    /// APR_HOOK_MIDDLE
    Middle,
    /// APR_HOOK_LAST
    Last,
    /// APR_HOOK_REALLY_LAST
    ReallyLast,
}

impl Order {
    /// The value httpd uses.
    pub const fn raw(self) -> i32 {
        match self {
            Order::ReallyFirst => ffi::APR_HOOK_REALLY_FIRST,
            Order::First => ffi::APR_HOOK_FIRST as i32,
            Order::Middle => ffi::APR_HOOK_MIDDLE as i32,
            Order::Last => ffi::APR_HOOK_LAST as i32,
            Order::ReallyLast => ffi::APR_HOOK_REALLY_LAST as i32,
        }
    }
}

/// Proof that hooks are being registered (only `register_hooks` gets one).
pub struct Registrar {
    pool: *mut ffi::apr_pool_t,
}

impl Registrar {
    pub(crate) fn new(pool: *mut ffi::apr_pool_t) -> Registrar {
        Registrar { pool }
    }

    /// The pool hooks are registered in.
    pub fn pool(&self) -> super::Pool<'_> {
        // SAFETY: httpd passed this pool to register_hooks.
        unsafe { super::Pool::from_raw(self.pool) }.expect("register pool")
    }
}

/// The report mod_status asks its `status_hook`s for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusFlags(pub u32);

impl StatusFlags {
    /// `?auto`: plain `Key: value` lines instead of HTML.
    pub fn short(self) -> bool {
        self.0 & ffi::AP_STATUS_SHORT != 0
    }
    /// HTML without tables (`?notable`).
    pub fn no_table(self) -> bool {
        self.0 & ffi::AP_STATUS_NOTABLE != 0
    }
}

/// A NULL-terminated list of module names for hook ordering.
#[repr(transparent)]
pub struct Names<const N: usize>(pub [*const c_char; N]);

// SAFETY: immutable pointers to 'static C strings.
unsafe impl<const N: usize> Sync for Names<N> {}

impl<const N: usize> Names<N> {
    /// The pointer httpd expects.
    pub fn as_ptr(&'static self) -> *const *const c_char {
        self.0.as_ptr()
    }
}

#[doc(hidden)]
pub mod run {
    //! Trampoline bodies: wrap pointers, set the log target, guard against panics.
    use super::super::log::{Scope, Target};
    use super::super::{Conn, Pool, Request, Server, Status, ffi, guard::guard, status};

    /// # Safety
    /// Called by httpd with a live request.
    pub unsafe fn request(r: *mut ffi::request_rec, f: fn(&mut Request) -> Status) -> Status {
        let _scope = Scope::enter(Target::Request(r));
        guard(status::INTERNAL_SERVER_ERROR, || {
            // SAFETY: per contract.
            let mut req = unsafe { Request::from_raw(r) }.expect("request");
            f(&mut req)
        })
    }

    /// # Safety
    /// Called by mod_status with a live request.
    pub unsafe fn status(
        r: *mut ffi::request_rec,
        flags: std::os::raw::c_int,
        f: fn(&mut Request, super::StatusFlags) -> Status,
    ) -> Status {
        let _scope = Scope::enter(Target::Request(r));
        guard(status::DECLINED, || {
            // SAFETY: per contract.
            let mut req = unsafe { Request::from_raw(r) }.expect("request");
            f(&mut req, super::StatusFlags(flags as u32))
        })
    }

    /// # Safety
    /// Called by httpd with a live connection.
    pub unsafe fn conn(c: *mut ffi::conn_rec, f: fn(Conn) -> Status) -> Status {
        let _scope = Scope::enter(Target::Conn(c));
        // SAFETY: per contract.
        let conn = unsafe { Conn::from_raw(c) }.expect("connection");
        super::super::guard::guard_with(
            || {
                conn.set_aborted();
                status::DONE
            },
            || f(conn),
        )
    }

    /// # Safety
    /// Called by httpd (ap_select_protocol) with a live connection and server, and APR arrays
    /// of `char *`.
    pub unsafe fn protocol_propose(
        c: *mut ffi::conn_rec,
        r: *mut ffi::request_rec,
        s: *mut ffi::server_rec,
        offers: *const ffi::apr_array_header_t,
        proposals: *mut ffi::apr_array_header_t,
        f: fn(Conn, Server, &[&str]) -> Option<&'static std::ffi::CStr>,
    ) -> Status {
        guard(status::DECLINED, || {
            // Connection level only (ALPN); requests (Upgrade) are not ours to answer.
            if !r.is_null() || offers.is_null() || proposals.is_null() {
                return status::DECLINED;
            }
            // SAFETY: per contract: live records, and `offers` holds `nelts` C strings.
            let (conn, server, offered) = unsafe {
                let n = (*offers).nelts.max(0) as usize;
                let elts = (*offers).elts as *const *const std::os::raw::c_char;
                let offered: Vec<&str> = (0..n)
                    .filter_map(|i| super::super::cstr(*elts.add(i)))
                    .collect();
                (Conn::from_raw(c), Server::from_raw(s), offered)
            };
            let (Some(conn), Some(server)) = (conn, server) else {
                return status::DECLINED;
            };
            match f(conn, server, &offered) {
                Some(p) => {
                    // SAFETY: `proposals` is an APR array of `const char *`; the pushed
                    // pointer is a 'static string.
                    unsafe {
                        let slot =
                            ffi::apr_array_push(proposals) as *mut *const std::os::raw::c_char;
                        *slot = p.as_ptr();
                    }
                    status::OK
                }
                None => status::DECLINED,
            }
        })
    }

    /// # Safety
    /// Called by httpd (ap_switch_protocol) with a live connection and server and a C string.
    pub unsafe fn protocol_switch(
        c: *mut ffi::conn_rec,
        r: *mut ffi::request_rec,
        s: *mut ffi::server_rec,
        protocol: *const std::os::raw::c_char,
        f: fn(Conn, Server, &str) -> Status,
    ) -> Status {
        guard(status::DECLINED, || {
            if !r.is_null() {
                return status::DECLINED;
            }
            // SAFETY: per contract.
            let (conn, server, proto) = unsafe {
                (
                    Conn::from_raw(c),
                    Server::from_raw(s),
                    super::super::cstr(protocol),
                )
            };
            match (conn, server, proto) {
                (Some(conn), Some(server), Some(p)) => f(conn, server, p),
                _ => status::DECLINED,
            }
        })
    }

    /// # Safety
    /// Called by httpd with a live connection.
    pub unsafe fn conn_is_ssl(c: *mut ffi::conn_rec, f: fn(Conn) -> bool) -> Status {
        guard(status::DECLINED, || {
            // SAFETY: per contract.
            match unsafe { Conn::from_raw(c) } {
                Some(conn) if f(conn) => status::OK,
                _ => status::DECLINED,
            }
        })
    }

    /// # Safety
    /// Called by httpd with a live request.
    pub unsafe fn request_conn<T>(
        r: *const ffi::request_rec,
        none: T,
        f: impl FnOnce(Conn) -> T,
    ) -> T {
        guard_with_none(none, || {
            // SAFETY: per contract; the request's connection is live.
            let c = unsafe { Conn::from_raw((*r).connection) }?;
            Some(f(c))
        })
    }

    fn guard_with_none<T>(none: T, f: impl FnOnce() -> Option<T>) -> T {
        guard(None, f).unwrap_or(none)
    }

    /// # Safety
    /// Called by httpd with a live pool and optional records.
    pub unsafe fn var_lookup(
        p: *mut ffi::apr_pool_t,
        c: *mut ffi::conn_rec,
        r: *mut ffi::request_rec,
        name: *const std::os::raw::c_char,
        f: fn(Option<Conn>, Option<&Request>, &str) -> Option<String>,
    ) -> *const std::os::raw::c_char {
        guard(std::ptr::null(), || {
            // SAFETY: per contract: NULL or live records, a NUL-terminated name.
            unsafe {
                let Some(name) = super::super::cstr(name) else {
                    return std::ptr::null();
                };
                let req = Request::from_raw(r);
                match f(Conn::from_raw(c), req.as_ref(), name) {
                    Some(v) => Pool::from_raw(p)
                        .map(|p| p.pstrdup(&v))
                        .unwrap_or(std::ptr::null()),
                    None => std::ptr::null(),
                }
            }
        })
    }

    /// # Safety
    /// Called by httpd (mod_proxy) with a new outgoing connection and the worker's config.
    pub unsafe fn bind_outgoing(
        c: *mut ffi::conn_rec,
        dc: *mut ffi::ap_conf_vector_t,
        enable: std::os::raw::c_int,
        f: fn(Conn, super::super::config::ConfVector, bool) -> bool,
    ) -> Status {
        let _scope = Scope::enter(Target::Conn(c));
        guard(status::DECLINED, || {
            // SAFETY: per contract.
            let (conn, cv) = unsafe {
                (
                    Conn::from_raw(c).expect("conn"),
                    super::super::config::ConfVector::from_raw(dc),
                )
            };
            if f(conn, cv, enable != 0) {
                status::OK
            } else {
                status::DECLINED
            }
        })
    }

    /// # Safety
    /// Called by httpd with a live pool.
    pub unsafe fn pre_config(p: *mut ffi::apr_pool_t, f: fn(&Pool) -> Status) -> Status {
        let _scope = Scope::enter(Target::Main);
        guard(status::INTERNAL_SERVER_ERROR, || {
            // SAFETY: per contract.
            f(&unsafe { Pool::from_raw(p) }.expect("pool"))
        })
    }

    /// # Safety
    /// Called by httpd with live pools and the main server.
    pub unsafe fn post_config(
        p: *mut ffi::apr_pool_t,
        ptemp: *mut ffi::apr_pool_t,
        s: *mut ffi::server_rec,
        f: fn(&Pool, &Pool, Server<'static>) -> Status,
    ) -> Status {
        let _scope = Scope::enter(Target::Server(s));
        guard(status::INTERNAL_SERVER_ERROR, || {
            // SAFETY: per contract.
            unsafe {
                f(
                    &Pool::from_raw(p).expect("pool"),
                    &Pool::from_raw(ptemp).expect("ptemp"),
                    Server::from_raw(s).expect("server"),
                )
            }
        })
    }

    /// # Safety
    /// Called by httpd with a live pool and the main server.
    pub unsafe fn with_server(
        p: *mut ffi::apr_pool_t,
        s: *mut ffi::server_rec,
        f: fn(&Pool, Server<'static>),
    ) {
        let _scope = Scope::enter(Target::Server(s));
        guard((), || {
            // SAFETY: per contract.
            unsafe {
                f(
                    &Pool::from_raw(p).expect("pool"),
                    Server::from_raw(s).expect("server"),
                )
            }
        })
    }
}

/// Registers a hook. See the module documentation for the kinds and signatures.
/// Also: `ssl_conn_is_ssl`: `fn(Conn) -> bool`; `ssl_var_lookup`:
/// `fn(Option<Conn>, Option<&Request>, &str) -> Option<String>`; `http_scheme`:
/// `fn(Conn) -> Option<&'static CStr>`; `default_port`: `fn(Conn) -> Option<u16>` (these run
/// for the request's connection). SSL providers: `ssl_add_cert_files` and
/// `ssl_add_fallback_cert_files`: `fn(Server, &Pool) -> Vec<(cert, key)>`;
/// `ssl_answer_challenge`: `fn(Conn, &str) -> Option<(cert_pem, key_pem)>`; `ssl_ocsp_prime`:
/// `fn(Server, &Pool, id: &[u8], pem: &str) -> bool`; `ssl_ocsp_get_resp`:
/// `fn(Server, Conn, id: &[u8]) -> Option<Vec<u8>>`; `ssl_bind_outgoing`:
/// `fn(Conn, ConfVector, enable: bool) -> bool` (true: this module secures the connection).
/// Protocol negotiation (connection level, ALPN): `protocol_propose`:
/// `fn(Conn, Server, offered: &[&str]) -> Option<&'static CStr>`; `protocol_switch`:
/// `fn(Conn, Server, &str) -> Status`.
/// mod_status's optional hook `status`: `fn(&mut Request, StatusFlags) -> Status`, a section
/// of the server-status page written with `Request::write`.
#[macro_export]
macro_rules! hook {
    (@names) => { ::std::ptr::null() };
    (@names $($n:expr),+) => {{
        static NAMES: $crate::httpd::hooks::Names<{ [$(stringify!($n)),+].len() + 1 }> =
            $crate::httpd::hooks::Names([$($n.as_ptr()),+, ::std::ptr::null()]);
        NAMES.as_ptr()
    }};
    ($reg:expr, $kind:ident, $f:path, $order:expr $(, before = [$($b:expr),*])? $(, after = [$($a:expr),*])?) => {{
        let _: &$crate::httpd::hooks::Registrar = $reg;
        let pre = $crate::hook!(@names $($($a),*)?);
        let succ = $crate::hook!(@names $($($b),*)?);
        $crate::hook!(@reg $kind, $f, pre, succ, $crate::httpd::hooks::Order::raw($order));
    }};
    (@req $apfn:ident, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(r: *mut $crate::httpd::ffi::request_rec) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes a live request.
            unsafe { $crate::httpd::hooks::run::request(r, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::$apfn(Some(t), pre, succ, order) }
    }};
    (@reg handler, $f:path, $pre:expr, $succ:expr, $o:expr) => { $crate::hook!(@req ap_hook_handler, $f, $pre, $succ, $o) };
    (@reg post_read_request, $f:path, $pre:expr, $succ:expr, $o:expr) => { $crate::hook!(@req ap_hook_post_read_request, $f, $pre, $succ, $o) };
    (@reg status, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(r: *mut $crate::httpd::ffi::request_rec, flags: ::std::os::raw::c_int) -> ::std::os::raw::c_int {
            // SAFETY: mod_status passes its live request.
            unsafe { $crate::httpd::hooks::run::status(r, flags, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: mod_status's optional hook `status_hook` has exactly t's signature; APR
        // stores the pointer type-erased and mod_status calls it back with that signature.
        unsafe {
            let erased: unsafe extern "C" fn() = ::std::mem::transmute(
                t as unsafe extern "C" fn(*mut $crate::httpd::ffi::request_rec, ::std::os::raw::c_int) -> ::std::os::raw::c_int,
            );
            $crate::httpd::ffi::apr_optional_hook_add(c"status_hook".as_ptr(), Some(erased), pre, succ, order)
        }
    }};
    (@reg fixups, $f:path, $pre:expr, $succ:expr, $o:expr) => { $crate::hook!(@req ap_hook_fixups, $f, $pre, $succ, $o) };
    (@reg process_connection, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(c: *mut $crate::httpd::ffi::conn_rec) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes a live connection.
            unsafe { $crate::httpd::hooks::run::conn(c, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_process_connection(Some(t), pre, succ, order) }
    }};
    (@reg pre_connection, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(c: *mut $crate::httpd::ffi::conn_rec, _csd: *mut ::std::ffi::c_void) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes a live connection.
            unsafe { $crate::httpd::hooks::run::conn(c, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_pre_connection(Some(t), pre, succ, order) }
    }};
    (@reg protocol_propose, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(c: *mut $crate::httpd::ffi::conn_rec, r: *mut $crate::httpd::ffi::request_rec, s: *mut $crate::httpd::ffi::server_rec, offers: *const $crate::httpd::ffi::apr_array_header_t, proposals: *mut $crate::httpd::ffi::apr_array_header_t) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live records and arrays of C strings.
            unsafe { $crate::httpd::hooks::run::protocol_propose(c, r, s, offers, proposals, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_protocol_propose(Some(t), pre, succ, order) }
    }};
    (@reg protocol_switch, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(c: *mut $crate::httpd::ffi::conn_rec, r: *mut $crate::httpd::ffi::request_rec, s: *mut $crate::httpd::ffi::server_rec, protocol: *const ::std::os::raw::c_char) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live records and a C string.
            unsafe { $crate::httpd::hooks::run::protocol_switch(c, r, s, protocol, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_protocol_switch(Some(t), pre, succ, order) }
    }};
    (@reg ssl_conn_is_ssl, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(c: *mut $crate::httpd::ffi::conn_rec) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes a live connection.
            unsafe { $crate::httpd::hooks::run::conn_is_ssl(c, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_ssl_conn_is_ssl(Some(t), pre, succ, order) }
    }};
    (@reg ssl_var_lookup, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::apr_pool_t, _s: *mut $crate::httpd::ffi::server_rec, c: *mut $crate::httpd::ffi::conn_rec, r: *mut $crate::httpd::ffi::request_rec, name: *const ::std::os::raw::c_char) -> *const ::std::os::raw::c_char {
            // SAFETY: httpd passes a live pool and NULL or live records.
            unsafe { $crate::httpd::hooks::run::var_lookup(p, c, r, name, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_ssl_var_lookup(Some(t), pre, succ, order) }
    }};
    (@reg http_scheme, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(r: *const $crate::httpd::ffi::request_rec) -> *const ::std::os::raw::c_char {
            // SAFETY: httpd passes a live request.
            unsafe { $crate::httpd::hooks::run::request_conn(r, ::std::ptr::null(), |c| $f(c).map(|s: &'static ::std::ffi::CStr| s.as_ptr()).unwrap_or(::std::ptr::null())) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_http_scheme(Some(t), pre, succ, order) }
    }};
    (@reg default_port, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(r: *const $crate::httpd::ffi::request_rec) -> $crate::httpd::ffi::apr_port_t {
            // SAFETY: httpd passes a live request.
            unsafe { $crate::httpd::hooks::run::request_conn(r, 0, |c| $f(c).unwrap_or(0)) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_default_port(Some(t), pre, succ, order) }
    }};
    (@reg ssl_add_cert_files, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(s: *mut $crate::httpd::ffi::server_rec, p: *mut $crate::httpd::ffi::apr_pool_t, c: *mut $crate::httpd::ffi::apr_array_header_t, k: *mut $crate::httpd::ffi::apr_array_header_t) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live records and arrays.
            unsafe { $crate::httpd::ssl::run::add_cert_files(s, p, c, k, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_ssl_add_cert_files(Some(t), pre, succ, order) }
    }};
    (@reg ssl_add_fallback_cert_files, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(s: *mut $crate::httpd::ffi::server_rec, p: *mut $crate::httpd::ffi::apr_pool_t, c: *mut $crate::httpd::ffi::apr_array_header_t, k: *mut $crate::httpd::ffi::apr_array_header_t) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live records and arrays.
            unsafe { $crate::httpd::ssl::run::add_cert_files(s, p, c, k, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_ssl_add_fallback_cert_files(Some(t), pre, succ, order) }
    }};
    (@reg ssl_answer_challenge, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(c: *mut $crate::httpd::ffi::conn_rec, n: *const ::std::os::raw::c_char, pc: *mut *const ::std::os::raw::c_char, pk: *mut *const ::std::os::raw::c_char) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes a live connection and out-pointers.
            unsafe { $crate::httpd::ssl::run::answer_challenge(c, n, pc, pk, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_ssl_answer_challenge(Some(t), pre, succ, order) }
    }};
    (@reg ssl_ocsp_prime, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(s: *mut $crate::httpd::ffi::server_rec, p: *mut $crate::httpd::ffi::apr_pool_t, id: *const ::std::os::raw::c_char, len: $crate::httpd::ffi::apr_size_t, pem: *const ::std::os::raw::c_char) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live records.
            unsafe { $crate::httpd::ssl::run::ocsp_prime(s, p, id, len, pem, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_ssl_ocsp_prime_hook(Some(t), pre, succ, order) }
    }};
    (@reg ssl_ocsp_get_resp, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(s: *mut $crate::httpd::ffi::server_rec, c: *mut $crate::httpd::ffi::conn_rec, id: *const ::std::os::raw::c_char, len: $crate::httpd::ffi::apr_size_t, cb: $crate::httpd::ffi::ap_ssl_ocsp_copy_resp, ud: *mut ::std::ffi::c_void) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live records and a callback.
            unsafe { $crate::httpd::ssl::run::ocsp_get_resp(s, c, id, len, cb, ud, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_ssl_ocsp_get_resp_hook(Some(t), pre, succ, order) }
    }};
    (@reg ssl_bind_outgoing, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(c: *mut $crate::httpd::ffi::conn_rec, dc: *mut $crate::httpd::ffi::ap_conf_vector_t, enable: ::std::os::raw::c_int) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes a live connection and config vector.
            unsafe { $crate::httpd::hooks::run::bind_outgoing(c, dc, enable, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_ssl_bind_outgoing(Some(t), pre, succ, order) }
    }};
    (@reg pre_config, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::apr_pool_t, _plog: *mut $crate::httpd::ffi::apr_pool_t, _ptemp: *mut $crate::httpd::ffi::apr_pool_t) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live pools.
            unsafe { $crate::httpd::hooks::run::pre_config(p, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_pre_config(Some(t), pre, succ, order) }
    }};
    (@reg post_config, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::apr_pool_t, _plog: *mut $crate::httpd::ffi::apr_pool_t, ptemp: *mut $crate::httpd::ffi::apr_pool_t, s: *mut $crate::httpd::ffi::server_rec) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live pools and the main server.
            unsafe { $crate::httpd::hooks::run::post_config(p, ptemp, s, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_post_config(Some(t), pre, succ, order) }
    }};
    (@reg check_config, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::apr_pool_t, _plog: *mut $crate::httpd::ffi::apr_pool_t, ptemp: *mut $crate::httpd::ffi::apr_pool_t, s: *mut $crate::httpd::ffi::server_rec) -> ::std::os::raw::c_int {
            // SAFETY: httpd passes live pools and the main server.
            unsafe { $crate::httpd::hooks::run::post_config(p, ptemp, s, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_check_config(Some(t), pre, succ, order) }
    }};
    (@reg child_init, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::apr_pool_t, s: *mut $crate::httpd::ffi::server_rec) {
            // SAFETY: httpd passes the child pool and the main server.
            unsafe { $crate::httpd::hooks::run::with_server(p, s, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_child_init(Some(t), pre, succ, order) }
    }};
    (@reg test_config, $f:path, $pre:expr, $succ:expr, $o:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::apr_pool_t, s: *mut $crate::httpd::ffi::server_rec) {
            // SAFETY: httpd passes the config pool and the main server.
            unsafe { $crate::httpd::hooks::run::with_server(p, s, $f) }
        }
        let (pre, succ, order) = ($pre, $succ, $o);
        // SAFETY: registering a hook during register_hooks with static ordering lists.
        unsafe { $crate::httpd::ffi::ap_hook_test_config(Some(t), pre, succ, order) }
    }};
}
