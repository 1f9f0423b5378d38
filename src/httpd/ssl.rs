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

/// Registers `pem` (certificate and chain) under `id` for OCSP stapling: another module
/// (mod_md) fetches and refreshes responses for it. Returns whether one takes it on.
pub fn ocsp_prime(s: &super::Server<'_>, p: &super::Pool<'_>, id: &[u8], pem: &str) -> bool {
    let pem = super::to_cstring(pem);
    // SAFETY: valid server and pool; the id bytes and the PEM string are read during the call.
    let rv = unsafe {
        ffi::ap_ssl_ocsp_prime(
            s.as_ptr(),
            p.as_ptr(),
            id.as_ptr() as *const _,
            id.len() as _,
            pem.as_ptr(),
        )
    };
    rv == 0
}

unsafe extern "C" fn copy_resp(
    der: *const std::os::raw::c_uchar,
    len: ffi::apr_size_t,
    userdata: *mut std::ffi::c_void,
) {
    super::guard::guard((), || {
        // SAFETY: userdata is the Option<Vec<u8>> of ocsp_get_resp; der has len bytes.
        unsafe {
            let out = &mut *(userdata as *mut Option<Vec<u8>>);
            *out =
                (!der.is_null() && len > 0).then(|| std::slice::from_raw_parts(der, len).to_vec());
        }
    })
}

/// The current OCSP response (DER) for a certificate primed under `id`, if a module has one.
pub fn ocsp_get_resp(s: &super::Server<'_>, c: &super::Conn<'_>, id: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    // SAFETY: the callback writes into `out`, which outlives the call.
    let rv = unsafe {
        ffi::ap_ssl_ocsp_get_resp(
            s.as_ptr(),
            c.as_ptr(),
            id.as_ptr() as *const _,
            id.len() as _,
            Some(copy_resp),
            &mut out as *mut _ as *mut std::ffi::c_void,
        )
    };
    if rv == 0 { out } else { None }
}

#[doc(hidden)]
pub mod run {
    //! Provider-hook trampoline bodies (for `hook!` kinds `ssl_add_cert_files`, ...).
    use super::super::log::{Scope, Target};
    use super::super::{Conn, Pool, Server, ffi, guard::guard, status};

    fn push_strings(p: *mut ffi::apr_pool_t, arr: *mut ffi::apr_array_header_t, v: &str) {
        // SAFETY: arr is an APR array of `char *` in (or outliving) pool p.
        unsafe {
            let pool = Pool::from_raw(p).expect("pool");
            let slot = ffi::apr_array_push(arr) as *mut *const std::os::raw::c_char;
            *slot = pool.pstrdup(v);
        }
    }

    /// # Safety
    /// Called by httpd with live records and arrays.
    pub unsafe fn add_cert_files(
        s: *mut ffi::server_rec,
        p: *mut ffi::apr_pool_t,
        certs: *mut ffi::apr_array_header_t,
        keys: *mut ffi::apr_array_header_t,
        f: fn(Server, &Pool) -> Vec<(String, String)>,
    ) -> std::os::raw::c_int {
        let _scope = Scope::enter(Target::Server(s));
        guard(status::DECLINED, || {
            // SAFETY: per contract.
            let (server, pool) = unsafe {
                (
                    Server::from_raw(s).expect("server"),
                    Pool::from_raw(p).expect("pool"),
                )
            };
            let files = f(server, &pool);
            for (c, k) in &files {
                push_strings(p, certs, c);
                push_strings(p, keys, k);
            }
            if files.is_empty() {
                status::DECLINED
            } else {
                status::OK
            }
        })
    }

    /// # Safety
    /// Called by httpd with a live connection and out-pointers.
    pub unsafe fn answer_challenge(
        c: *mut ffi::conn_rec,
        name: *const std::os::raw::c_char,
        pcert: *mut *const std::os::raw::c_char,
        pkey: *mut *const std::os::raw::c_char,
        f: fn(Conn, &str) -> Option<(String, String)>,
    ) -> std::os::raw::c_int {
        let _scope = Scope::enter(Target::Conn(c));
        guard(status::DECLINED, || {
            // SAFETY: per contract.
            let (conn, name) = unsafe {
                (
                    Conn::from_raw(c).expect("conn"),
                    super::super::cstr(name).unwrap_or(""),
                )
            };
            match f(conn, name) {
                Some((cert, key)) => {
                    let pool = conn.pool();
                    // SAFETY: out-pointers from httpd; the strings live in the connection pool.
                    unsafe {
                        *pcert = pool.pstrdup(&cert);
                        *pkey = pool.pstrdup(&key);
                    }
                    status::OK
                }
                None => status::DECLINED,
            }
        })
    }

    /// # Safety
    /// Called by httpd with live records; `id` has `len` bytes; `pem` is a C string.
    pub unsafe fn ocsp_prime(
        s: *mut ffi::server_rec,
        p: *mut ffi::apr_pool_t,
        id: *const std::os::raw::c_char,
        len: ffi::apr_size_t,
        pem: *const std::os::raw::c_char,
        f: fn(Server, &Pool, &[u8], &str) -> bool,
    ) -> std::os::raw::c_int {
        let _scope = Scope::enter(Target::Server(s));
        guard(status::DECLINED, || {
            // SAFETY: per contract.
            let ok = unsafe {
                f(
                    Server::from_raw(s).expect("server"),
                    &Pool::from_raw(p).expect("pool"),
                    std::slice::from_raw_parts(id as *const u8, len),
                    super::super::cstr(pem).unwrap_or(""),
                )
            };
            if ok { status::OK } else { status::DECLINED }
        })
    }

    /// # Safety
    /// Called by httpd with live records; `cb(userdata)` receives the response.
    pub unsafe fn ocsp_get_resp(
        s: *mut ffi::server_rec,
        c: *mut ffi::conn_rec,
        id: *const std::os::raw::c_char,
        len: ffi::apr_size_t,
        cb: ffi::ap_ssl_ocsp_copy_resp,
        userdata: *mut std::ffi::c_void,
        f: fn(Server, Conn, &[u8]) -> Option<Vec<u8>>,
    ) -> std::os::raw::c_int {
        let _scope = Scope::enter(Target::Conn(c));
        guard(status::DECLINED, || {
            // SAFETY: per contract.
            let resp = unsafe {
                f(
                    Server::from_raw(s).expect("server"),
                    Conn::from_raw(c).expect("conn"),
                    std::slice::from_raw_parts(id as *const u8, len),
                )
            };
            match (resp, cb) {
                (Some(der), Some(cb)) => {
                    // SAFETY: the callback copies the bytes during the call.
                    unsafe { cb(der.as_ptr(), der.len() as _, userdata) };
                    status::OK
                }
                _ => status::DECLINED,
            }
        })
    }
}

/// Whether a connection is secured by any TLS module (`ap_ssl_conn_is_ssl`: ours, mod_ssl).
pub fn conn_is_ssl(c: &super::Conn<'_>) -> bool {
    // SAFETY: a live connection; httpd only asks the registered providers.
    unsafe { ffi::ap_ssl_conn_is_ssl(c.as_ptr()) != 0 }
}
