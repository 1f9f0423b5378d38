//! Variables and functions for httpd's expression parser (`ap_expr`: `<If>`, `Require expr`,
//! `SetEnvIfExpr`, `Header ... expr=`): `%{SSL_*}` variables and `%{SSL:NAME}`, as mod_ssl
//! provides them.

use super::ffi;
use std::os::raw::{c_char, c_int, c_void};

/// Evaluates through `ap_ssl_var_lookup`, so every SSL provider answers for its own
/// connections (ours and, on other ports, mod_ssl's).
fn eval(ctx: *mut ffi::ap_expr_eval_ctx_t, name: *const c_char) -> *const c_char {
    if name.is_null() {
        return std::ptr::null();
    }
    // SAFETY: ctx is httpd's live evaluation context; the result lives in its pool.
    unsafe { ffi::ap_ssl_var_lookup((*ctx).p, (*ctx).s, (*ctx).c, (*ctx).r, name) }
}

unsafe extern "C" fn var_fn(
    ctx: *mut ffi::ap_expr_eval_ctx_t,
    data: *const c_void,
) -> *const c_char {
    super::guard::guard(std::ptr::null(), || eval(ctx, data as *const c_char))
}

unsafe extern "C" fn string_fn(
    ctx: *mut ffi::ap_expr_eval_ctx_t,
    _data: *const c_void,
    arg: *const c_char,
) -> *const c_char {
    super::guard::guard(std::ptr::null(), || eval(ctx, arg))
}

unsafe extern "C" fn lookup(parms: *mut ffi::ap_expr_lookup_parms) -> c_int {
    super::guard::guard(super::status::DECLINED, || {
        // SAFETY: httpd passes live lookup parameters; we write the function and its data
        // into the slots it provides.
        unsafe {
            let p = &mut *parms;
            let Some(name) = super::cstr(p.name) else {
                return super::status::DECLINED;
            };
            match p.type_ as u32 {
                ffi::AP_EXPR_FUNC_VAR
                    if name.len() > 4 && name[..4].eq_ignore_ascii_case("SSL_") =>
                {
                    *p.func = var_fn as *const c_void;
                    *p.data = p.name as *const c_void;
                    super::status::OK
                }
                ffi::AP_EXPR_FUNC_STRING if name.eq_ignore_ascii_case("SSL") => {
                    *p.func = string_fn as *const c_void;
                    *p.data = std::ptr::null();
                    super::status::OK
                }
                _ => super::status::DECLINED,
            }
        }
    })
}

/// Provides `%{SSL_*}` and `%{SSL:NAME}` to httpd expressions. Call from `register_hooks`.
pub fn provide_ssl(_reg: &super::hooks::Registrar) {
    // SAFETY: registering during register_hooks; no ordering constraints.
    unsafe {
        ffi::ap_hook_expr_lookup(
            Some(lookup),
            std::ptr::null(),
            std::ptr::null(),
            ffi::APR_HOOK_MIDDLE as i32,
        )
    };
}
