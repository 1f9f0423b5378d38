//! Status pages of the managed domains: the `md-status` handler (JSON, as mod_md's) and
//! `/.httpd/certificate-status` on the TLS hosts of a managed domain. The JSON is built by
//! `bastion_md::status` from the store (public files preloaded by the parent). With
//! `MDServerStatus on` (the default), mod_status's page gets a "Managed Certificates" section
//! (`?auto`: mod_md's `ManagedCertificates*` and `ManagedDomain[i]…` lines).

use super::{covers, runtime};
use crate::httpd::hooks::StatusFlags;
use crate::httpd::{Request, Status, status};
use bastion_md::status as md_status;
use std::time::SystemTime;

/// The handler name (`SetHandler md-status`).
pub const HANDLER: &str = "md-status";
const CERT_STATUS_PATH: &str = "/.httpd/certificate-status";

fn send_json(r: &mut Request, v: &serde_json::Value) -> Status {
    let body = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    r.set_content_type("application/json");
    r.headers_out().set("Cache-Control", "no-store");
    r.set_content_length(body.len() as u64);
    if !r.header_only() {
        let _ = r.write(body.as_bytes());
    }
    status::OK
}

/// `SetHandler md-status`: all managed domains, or `<location>/<name>` for one (with its
/// renewal log).
pub fn handler(r: &mut Request) -> Status {
    let is_status = r.handler() == Some(HANDLER);
    let is_cert = r.uri() == CERT_STATUS_PATH;
    if !is_status && !is_cert {
        return status::DECLINED;
    }
    if !matches!(r.method(), "GET" | "HEAD") {
        return status::METHOD_NOT_ALLOWED;
    }
    let Some(rt) = runtime() else {
        return if is_status {
            send_json(
                r,
                &serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "managed-domains": []}),
            )
        } else {
            status::DECLINED
        };
    };
    let now = SystemTime::now();
    if is_cert {
        // Only over TLS, for the managed domain the request's host belongs to.
        if !rt.certificate_status || !crate::httpd::ssl::conn_is_ssl(&r.conn()) {
            return status::DECLINED;
        }
        let host = r.hostname().unwrap_or("").to_ascii_lowercase();
        let Some(md) = rt.mds.iter().find(|m| covers(m, &host)) else {
            return status::DECLINED;
        };
        return send_json(r, &md_status::certificate_status_json(&rt.store, md, now));
    }
    let name = r
        .path_info()
        .unwrap_or("")
        .trim_matches('/')
        .to_ascii_lowercase();
    if name.is_empty() {
        return send_json(r, &md_status::status_json(&rt.store, &rt.mds, now));
    }
    match md_status::find(&rt.mds, &name) {
        Some(md) => send_json(r, &md_status::md_json(&rt.store, md, now, true)),
        None => status::NOT_FOUND,
    }
}

/// mod_status's `status_hook`: the managed domains' section of `server-status`.
pub fn server_status(r: &mut Request, flags: StatusFlags) -> Status {
    let Some(rt) = runtime() else {
        return status::OK;
    };
    if !rt.server_status || rt.mds.is_empty() {
        return status::OK;
    }
    let now = SystemTime::now();
    let text = if flags.short() {
        md_status::status_auto_text(&rt.store, &rt.mds, now)
    } else {
        md_status::status_html(&rt.store, &rt.mds, now)
    };
    let _ = r.write(text.as_bytes());
    status::OK
}
