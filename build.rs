//! Generates the httpd/APR bindings with bindgen, from the headers that `apxs -q` names.
//!
//! Honours `$APXS` (default: `apxs`, then `apxs2`). A missing apxs or libclang stops the
//! build with one line naming the Debian package to install.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn apxs_query(apxs: &str, var: &str) -> Option<String> {
    let out = Command::new(apxs).args(["-q", var]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn find_apxs() -> String {
    if let Ok(a) = env::var("APXS") {
        return a;
    }
    for cand in ["apxs", "apxs2", "/usr/bin/apxs", "/usr/bin/apxs2"] {
        if Command::new(cand)
            .args(["-q", "INCLUDEDIR"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return cand.to_string();
        }
    }
    fail("apxs not found: install the Debian package apache2-dev (or set APXS=/path/to/apxs)");
}

fn fail(msg: &str) -> ! {
    // One line, so the cause is not lost in a page of compiler output.
    eprintln!("error: mod_bastion build: {msg}");
    println!("cargo:warning=mod_bastion build: {msg}");
    std::process::exit(1);
}

/// The version of `name` locked in Cargo.lock (for the start-up line and SSL_VERSION_LIBRARY).
fn locked_version(name: &str) -> String {
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == format!("name = \"{name}\"")
            && let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \""))
        {
            return v.trim_end_matches('"').to_string();
        }
    }
    "unknown".to_string()
}

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!(
        "cargo:rustc-env=BASTION_RUSTLS_VERSION={}",
        locked_version("rustls")
    );
    println!("cargo:rerun-if-env-changed=APXS");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");

    let apxs = find_apxs();
    let q = |v: &str| {
        apxs_query(&apxs, v)
            .unwrap_or_else(|| fail(&format!("`{apxs} -q {v}` failed: install apache2-dev")))
    };
    let mut args: Vec<String> = Vec::new();
    for var in ["INCLUDEDIR", "APR_INCLUDEDIR", "APU_INCLUDEDIR"] {
        let dir = q(var);
        if !dir.is_empty() {
            args.push(format!("-I{dir}"));
        }
    }
    args.extend(q("EXTRA_CPPFLAGS").split_whitespace().map(str::to_string));

    if clang_sys::load().is_err() {
        fail("libclang not found: install the Debian packages libclang-dev and clang");
    }

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&args)
        .allowlist_function("ap_.*|apr_.*|apu_.*")
        .allowlist_type(
            "module|module_struct|command_rec|cmd_parms|request_rec|conn_rec|server_rec|ap_filter_t|\
             ap_watchdog_t|ap_watchdog_callback_fn_t|apr_OFN_.*|ap_socache_.*|ap_HOOK_.*|\
             apr_bucket.*|ap_conf_vector_t|ap_logconf",
        )
        .allowlist_var(
            "MODULE_MAGIC_.*|OK|DECLINED|DONE|SUSPENDED|HTTP_.*|APR_HOOK_.*|APR_SUCCESS|APR_E.*|APR_INCOMPLETE|APR_TIMEUP|APR_OS_START_.*|\
             RSRC_CONF|ACCESS_CONF|PROXY_CONF|OR_.*|EXEC_ON_READ|NOT_IN_.*|GLOBAL_ONLY|APLOG_.*|AP_MODULE_FLAG_.*|\
             AP_WATCHDOG_.*|AP_STATUS_.*|AP_SQ_.*|M_.*|AP_FTYPE_.*|AP_MODE_.*|APR_BLOCK_READ|APR_NONBLOCK_READ|\
             ap_server_conf|ap_bucket_type_.*|apr_bucket_type_.*|AP_MPMQ_.*|AP_CONN_.*|APR_.*_NONBLOCK.*|\
             AP_SOCACHE_.*|AP_EXPR_.*|REQUEST_.*|HUGE_STRING_LEN|MAX_STRING_LEN|AP_IOBUFSIZE|APR_BUCKET_BUFF_SIZE|\
             ap_top_module|ap_loaded_modules|AP_SERVER_BASEVERSION|DEFAULT_.*|ap_unixd_config",
        )
        .blocklist_function("ap_rputs")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen over the httpd headers failed: {e}")));

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("writing bindings.rs: {e}")));
}
