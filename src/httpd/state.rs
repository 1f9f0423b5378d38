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

/// The uid and gid the children run as (`User`, `Group`; mod_unixd's configuration).
pub fn worker_ids() -> (u32, u32) {
    // SAFETY: ap_unixd_config is a plain struct httpd fills while reading the configuration
    // and does not change afterwards; reading two integers from it is safe in any hook.
    unsafe { (ffi::ap_unixd_config.user_id, ffi::ap_unixd_config.group_id) }
}
