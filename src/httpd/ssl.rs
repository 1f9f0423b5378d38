//! httpd's SSL provider API (`http_ssl.h`): certificates offered by other modules (mod_md),
//! challenge answers and OCSP responses.

use super::ffi;

fn read_array(arr: *mut ffi::apr_array_header_t) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: an APR array of `char *` made below and filled by httpd's hooks.
    unsafe {
        let a = &*arr;
        let elts = a.elts as *const *const std::os::raw::c_char;
        for i in 0..a.nelts.max(0) as usize {
            if let Some(s) = super::cstr(*elts.add(i)) {
                out.push(s.to_string());
            }
        }
    }
    out
}

fn cert_files(s: &super::Server<'_>, p: &super::Pool<'_>, fallback: bool) -> Vec<(String, String)> {
    let size = std::mem::size_of::<*const std::os::raw::c_char>() as i32;
    // SAFETY: two APR arrays in `p`; the hooks push pool strings into them.
    let (certs, keys) = unsafe {
        let c = ffi::apr_array_make(p.as_ptr(), 2, size);
        let k = ffi::apr_array_make(p.as_ptr(), 2, size);
        if fallback {
            ffi::ap_ssl_add_fallback_cert_files(s.as_ptr(), p.as_ptr(), c, k);
        } else {
            ffi::ap_ssl_add_cert_files(s.as_ptr(), p.as_ptr(), c, k);
        }
        (read_array(c), read_array(k))
    };
    certs.into_iter().zip(keys).collect()
}

/// Certificate/key file pairs other modules (mod_md) provide for `s`.
pub fn add_cert_files(s: &super::Server<'_>, p: &super::Pool<'_>) -> Vec<(String, String)> {
    cert_files(s, p, false)
}

/// Fallback certificate/key pairs for `s` (served with 503 until a real one exists).
pub fn add_fallback_cert_files(
    s: &super::Server<'_>,
    p: &super::Pool<'_>,
) -> Vec<(String, String)> {
    cert_files(s, p, true)
}

/// Asks other modules (mod_md) for a tls-alpn-01 challenge certificate for `server_name`;
/// returns (certificate PEM, key PEM).
pub fn answer_challenge(c: &super::Conn<'_>, server_name: &str) -> Option<(String, String)> {
    let name = super::to_cstring(server_name);
    let mut cert: *const std::os::raw::c_char = std::ptr::null();
    let mut key: *const std::os::raw::c_char = std::ptr::null();
    // SAFETY: valid connection; the hook returns pool strings or leaves NULLs.
    let ok =
        unsafe { ffi::ap_ssl_answer_challenge(c.as_ptr(), name.as_ptr(), &mut cert, &mut key) };
    if ok == 0 {
        return None;
    }
    // SAFETY: NULL or NUL-terminated pool strings.
    unsafe {
        Some((
            super::cstr(cert)?.to_string(),
            super::cstr(key)?.to_string(),
        ))
    }
}
