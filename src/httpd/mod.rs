//! The safe face of httpd and APR.
//!
//! Everything `unsafe` in mod_bastion lives in this module tree. The rest of the crate sees
//! typed wrappers ([`Request`], [`Conn`], [`Server`], [`Pool`], [`cmd::Cmd`], [`brigade::Brigade`])
//! and registers its parts through the macros [`httpd_module!`](crate::httpd_module),
//! [`directives!`](crate::directives) and [`hook!`](crate::hook).

pub mod brigade;
pub mod cmd;
pub mod config;
pub mod conn;
pub mod expr;
pub mod ffi;
pub mod filter;
pub mod guard;
pub mod hooks;
pub mod log;
pub mod module;
pub mod optional;
pub mod pool;
pub mod request;
pub mod server;
pub mod socache;
pub mod ssl;
pub mod state;
pub mod table;

pub use conn::Conn;
pub use pool::Pool;
pub use request::Request;
pub use server::Server;

/// A hook or handler result as httpd understands it (`OK`, `DECLINED`, `DONE` or an HTTP status).
pub type Status = std::os::raw::c_int;

/// The hook/handler status codes httpd defines.
pub mod status {
    use super::Status;
    /// The hook did its work.
    pub const OK: Status = 0;
    /// The hook does not handle this; the next one runs.
    pub const DECLINED: Status = -1;
    /// The request is complete; no further processing.
    pub const DONE: Status = -2;
    /// 301
    pub const MOVED_PERMANENTLY: Status = 301;
    /// 302
    pub const FOUND: Status = 302;
    /// 307
    pub const TEMPORARY_REDIRECT: Status = 307;
    /// 308
    pub const PERMANENT_REDIRECT: Status = 308;
    /// 400
    pub const BAD_REQUEST: Status = 400;
    /// 403
    pub const FORBIDDEN: Status = 403;
    /// 404
    pub const NOT_FOUND: Status = 404;
    /// 405
    pub const METHOD_NOT_ALLOWED: Status = 405;
    /// 421
    pub const MISDIRECTED_REQUEST: Status = 421;
    /// 500
    pub const INTERNAL_SERVER_ERROR: Status = 500;
    /// 502
    pub const BAD_GATEWAY: Status = 502;
    /// 503
    pub const SERVICE_UNAVAILABLE: Status = 503;
}

/// Borrows a C string as `&str`; `None` for NULL or invalid UTF-8.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn cstr<'a>(p: *const std::os::raw::c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a valid NUL-terminated string living for 'a.
    unsafe { std::ffi::CStr::from_ptr(p) }.to_str().ok()
}

/// Makes a C string from Rust text, replacing interior NULs so the text is never cut short.
pub(crate) fn to_cstring(s: &str) -> std::ffi::CString {
    // One allocation, sized for the terminating NUL (this runs several times per request).
    let mut v = Vec::with_capacity(s.len() + 1);
    if s.as_bytes().contains(&0) {
        v.extend_from_slice(s.replace('\0', "\\0").as_bytes());
    } else {
        v.extend_from_slice(s.as_bytes());
    }
    std::ffi::CString::new(v).expect("NULs were replaced")
}

#[cfg(test)]
mod tests {
    #[test]
    fn to_cstring_keeps_text_and_escapes_nul() {
        assert_eq!(super::to_cstring("on").as_bytes(), b"on");
        assert_eq!(super::to_cstring("").as_bytes(), b"");
        assert_eq!(super::to_cstring("a\0b").as_bytes(), b"a\\0b");
    }
}
