//! Module-wide glue: start-up checks, the per-child setup and the `bastion-info` page.

use crate::ServerConf;
use crate::httpd::cmd::{Cmd, CmdResult};
use crate::httpd::log::{Level, log_startup};
use crate::httpd::{Pool, Request, Server, Status, module, state, status};

/// Module-wide per-server settings.
#[derive(Default, Debug, Clone)]
pub struct CoreServerConf {
    /// Heading of the info page (`BastionStatusTitle`).
    pub status_title: Option<String>,
    /// Test builds only: `<BastionTestSection>` contents, and the one being read.
    #[cfg(feature = "test-hooks")]
    pub test_sections: Vec<(String, Vec<Vec<String>>)>,
    #[cfg(feature = "test-hooks")]
    pub test_open: Option<usize>,
}

impl CoreServerConf {
    /// Inner values win; unset ones are inherited.
    pub fn merge(base: &Self, add: &Self) -> Self {
        CoreServerConf {
            status_title: add
                .status_title
                .clone()
                .or_else(|| base.status_title.clone()),
            #[cfg(feature = "test-hooks")]
            test_sections: [base.test_sections.clone(), add.test_sections.clone()].concat(),
            #[cfg(feature = "test-hooks")]
            test_open: None,
        }
    }
}

/// `BastionStatusTitle text`
pub fn cmd_status_title(cmd: &mut Cmd, title: &str) -> CmdResult {
    if title.trim().is_empty() {
        return Err("expected a non-empty title".into());
    }
    if title.len() > 200 {
        return Err(format!("expected at most 200 characters, got {}", title.len()).into());
    }
    cmd.server_config::<ServerConf>().core.status_title = Some(title.to_string());
    Ok(())
}

/// Modules whose directives mod_bastion owns: loading them beside it would make two modules
/// claim one configuration. (source name, what to tell the administrator)
const CONFLICTING: &[(&str, &str)] = &[
    (
        "mod_md.c",
        "mod_md is loaded too: mod_bastion provides its MD* directives; disable it (a2dismod md) or remove its LoadModule line",
    ),
    (
        "mod_tls.c",
        "mod_tls is loaded too: mod_bastion provides its TLS* directives; disable it (a2dismod tls) or remove its LoadModule line",
    ),
];

/// Refuses to start next to mod_md or mod_tls. Runs in pre_config, so `apachectl -t` fails too.
pub fn pre_config(_p: &Pool) -> Status {
    let mut ok = true;
    for (name, msg) in CONFLICTING {
        if module::find_loaded(name) {
            log_startup(Level::Emerg, &format!("mod_bastion: {msg}"));
            ok = false;
        }
    }
    if ok {
        status::OK
    } else {
        status::INTERNAL_SERVER_ERROR
    }
}

/// Post-config: the start-up line with versions (second pass only).
pub fn post_config(_p: &Pool, _ptemp: &Pool, s: Server<'static>) -> Status {
    if state::is_first_config_pass() {
        return status::OK;
    }
    let _ = s;
    tracing::info!("{} initialized (mpm {})", version_line(), state::mpm_name());
    status::OK
}

/// Per-child setup.
pub fn child_init(_p: &Pool, _s: Server<'static>) {
    tracing::debug!("child {} initialized", std::process::id());
}

/// The module and library versions, as logged at start and shown on the info page.
pub fn version_line() -> String {
    format!("mod_bastion/{}", env!("CARGO_PKG_VERSION"))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `SetHandler bastion-info`: a page that shows the module is loaded, and what it does.
pub fn info_handler(r: &mut Request) -> Status {
    if r.handler() != Some("bastion-info") {
        return status::DECLINED;
    }
    if r.method() != "GET" && r.method() != "HEAD" {
        return status::METHOD_NOT_ALLOWED;
    }
    let conf = r.server().config::<ServerConf>();
    let title = conf
        .core
        .status_title
        .clone()
        .unwrap_or_else(|| "mod_bastion".to_string());
    tracing::debug!("serving bastion-info for {}", r.uri());
    r.set_content_type("text/html; charset=utf-8");
    if r.header_only() {
        return status::OK;
    }
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{t}</title></head><body>\n<h1>{t}</h1>\n\
         <p>{v} is loaded (mpm {m}, pid {pid}).</p>\n</body></html>\n",
        t = html_escape(&title),
        v = html_escape(&version_line()),
        m = html_escape(&state::mpm_name()),
        pid = std::process::id(),
    );
    let _ = r.write(body.as_bytes());
    status::OK
}

/// Test builds only (`--features test-hooks`): `SetHandler bastion-test-panic` panics, to show
/// that a panic becomes a 500 and a `crit` line while the child lives on.
#[cfg(feature = "test-hooks")]
pub fn test_panic_handler(r: &mut Request) -> Status {
    if r.handler() != Some("bastion-test-panic") {
        return status::DECLINED;
    }
    panic!("test panic requested by {}", r.uri());
}

/// Test builds only: `SetHandler bastion-test-echo` streams the request body back, to show
/// that bodies (Content-Length or chunked) are read and responses written in pieces.
#[cfg(feature = "test-hooks")]
pub fn test_echo_handler(r: &mut Request) -> Status {
    if r.handler() != Some("bastion-test-echo") {
        return status::DECLINED;
    }
    r.set_content_type("application/octet-stream");
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    {
        let mut rd = match r.body_reader() {
            Ok(rd) => rd,
            Err(crate::httpd::request::BodyError::Refused(s)) => return s,
            Err(_) => return status::BAD_REQUEST,
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => chunks.push(buf[..n].to_vec()),
                Err(_) => return status::BAD_REQUEST,
            }
        }
    }
    for c in chunks {
        if r.write(&c).is_err() {
            break;
        }
    }
    status::OK
}

/// Test builds only: `SetHandler bastion-test-exhaustive` reads the rest of the connection
/// with `AP_MODE_EXHAUSTIVE` (through the connection's input filters, so through the TLS
/// filter) and answers with what it got, to show that the mode returns all remaining input.
#[cfg(feature = "test-hooks")]
pub fn test_exhaustive_handler(r: &mut Request) -> Status {
    if r.handler() != Some("bastion-test-exhaustive") {
        return status::DECLINED;
    }
    let got = r
        .conn()
        .read_input(crate::httpd::filter::Mode::Exhaustive, true, 0);
    let data = match got {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("AP_MODE_EXHAUSTIVE read failed: {e}");
            return status::INTERNAL_SERVER_ERROR;
        }
    };
    r.set_content_type("application/octet-stream");
    let _ = r.write(&data);
    status::OK
}

/// Test builds only: a mod_watchdog singleton task that logs a line every second.
#[cfg(feature = "test-hooks")]
pub fn test_post_config(p: &Pool, _ptemp: &Pool, _s: Server<'static>) -> Status {
    if state::is_first_config_pass() {
        return status::OK;
    }
    let tick: crate::httpd::optional::WatchdogFn = |st, _pool| {
        tracing::info!("test watchdog {st:?} in pid {}", std::process::id());
    };
    match crate::httpd::optional::watchdog_singleton(
        c"bastion-test",
        std::time::Duration::from_secs(1),
        p,
        tick,
    ) {
        Ok(()) => status::OK,
        Err(e) => {
            tracing::error!("{e}");
            status::INTERNAL_SERVER_ERROR
        }
    }
}
