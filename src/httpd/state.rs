//! Where httpd is in its life: config passes, MPM, and process roles.

use super::ffi;

/// True during the first configuration pass at startup (httpd reads the configuration twice;
/// nothing heavy belongs in the first pass).
pub fn is_first_config_pass() -> bool {
    // SAFETY: ap_state_query only reads httpd's state.
    unsafe {
        ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as i32) == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as i32
    }
}

/// The configuration generation (incremented by every graceful/restart).
pub fn config_generation() -> i32 {
    // SAFETY: ap_state_query only reads httpd's state.
    unsafe { ffi::ap_state_query(ffi::AP_SQ_CONFIG_GEN as i32) }
}

/// The running MPM's name (`"event"`, `"worker"`, `"prefork"`).
pub fn mpm_name() -> String {
    // SAFETY: returns a static string.
    unsafe { super::cstr(ffi::ap_show_mpm()) }
        .unwrap_or("?")
        .to_string()
}
