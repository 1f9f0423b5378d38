//! TLS hooks: filters on TLS connections, the handshake before any protocol, request checks,
//! `SSL_*` variables and the `ssl_*` hooks other modules ask.

use super::io::TlsConn;
use crate::DirConf;
use crate::httpd::brigade::{Brigade, rv};
use crate::httpd::ffi::apr_status_t;
use crate::httpd::filter::{Filter, FilterSlot, Mode};
use crate::httpd::{Conn, Request, Status, status, to_cstring};
use bastion_tls::ConnectionInfo;
use bastion_tls::policy::{ConnFacts, HostFit, request_status};
use std::ffi::CStr;
use std::sync::Arc;

/// The TLS input filter (`AP_FTYPE_CONNECTION + 5`, as mod_ssl and mod_tls).
pub static TLS_IN: FilterSlot = FilterSlot::new();
/// The TLS output filter.
pub static TLS_OUT: FilterSlot = FilterSlot::new();

/// The TLS state of a connection, or of the master connection of an HTTP/2 stream. Shared:
/// the streams of one HTTP/2 connection run on other threads than its filters.
fn tls_of<'a>(c: &Conn<'a>) -> Option<&'a TlsConn> {
    let c = c.master().unwrap_or(*c);
    c.state::<TlsConn>().map(|t| &*t)
}

/// ssl_bind_outgoing: mod_proxy asks for TLS to an `https://` backend; ours when
/// `TLSProxyEngine on` applies to the worker.
pub fn bind_outgoing(c: Conn, dir: crate::httpd::config::ConfVector, enable: bool) -> bool {
    tracing::debug!(
        "ssl_bind_outgoing: enable={enable} TLSProxyEngine={:?} bound already={}",
        dir.get::<DirConf>().map(|d| d.tls_proxy.engine),
        c.state::<TlsConn>().is_some()
    );
    if !enable {
        return false;
    }
    // mod_proxy binds a reused backend connection again (with the worker's own config, which
    // may not carry the vhost's TLSProxy* settings): it stays ours.
    if c.state::<TlsConn>().is_some() {
        return true;
    }
    let Some(conf) = dir.get::<DirConf>() else {
        return false;
    };
    if conf.tls_proxy.engine != Some(true) {
        return false;
    }
    let spec = conf.tls_proxy.spec();
    if let Err(e) = super::client_config(&spec, &[]) {
        tracing::error!("backend TLS for this proxy is misconfigured: {e}");
        return false;
    }
    TLS_IN.add_input_to_conn(&c);
    let out = TLS_OUT.add_output_to_conn(&c);
    c.set_state(TlsConn::new_client(&c, out, spec));
    true
}

/// pre_connection: TLS connections get the filters.
pub fn pre_connection(c: Conn) -> Status {
    if c.master().is_some() || c.is_outgoing() {
        return status::DECLINED;
    }
    let Some(g) = super::global() else {
        return status::DECLINED;
    };
    if !g.covers(c.local_ip(), c.local_port()) {
        return status::DECLINED;
    }
    TLS_IN.add_input_to_conn(&c);
    let out = TLS_OUT.add_output_to_conn(&c);
    c.set_state(TlsConn::new(&c, out));
    status::OK
}

/// process_connection (before mod_http2): runs the handshake, so ALPN is settled before any
/// protocol handler reads.
pub fn process_connection(c: Conn) -> Status {
    if c.master().is_some() {
        return status::DECLINED;
    }
    let Some(tc) = c.state::<TlsConn>() else {
        return status::DECLINED;
    };
    if !tc.is_established() {
        let r = c.read_init();
        if r != rv::SUCCESS || !tc.is_established() {
            c.set_aborted();
            return status::DONE;
        }
    }
    // Made here, on the connection's own thread, before any request: HTTP/2 streams read it
    // from their threads.
    tc.always_env = Some(always_env(tc));
    status::DECLINED
}

/// `HTTPS`, `SSL_TLS_SNI`, `SSL_PROTOCOL`, `SSL_CIPHER` of a connection, as C strings.
fn always_env(tc: &TlsConn) -> Vec<(std::ffi::CString, std::ffi::CString)> {
    let vars = info(tc).always();
    vars.iter()
        .map(|(k, v)| (to_cstring(k), to_cstring(v)))
        .collect()
}

/// The input filter.
pub fn filter_in(
    f: &Filter,
    bb: &mut Brigade,
    mode: Mode,
    block: bool,
    readbytes: i64,
) -> apr_status_t {
    match f.conn().state::<TlsConn>() {
        Some(tc) => tc.input(f, bb, mode, block, readbytes),
        None => f.get_next(bb, mode, block, readbytes),
    }
}

/// The output filter.
pub fn filter_out(f: &Filter, bb: &mut Brigade) -> apr_status_t {
    match f.conn().state::<TlsConn>() {
        Some(tc) => tc.output(f, bb),
        None => f.pass_next(bb),
    }
}

/// post_read_request: 503 on challenge connections and hosts waiting for a certificate, 403
/// without SNI on name-based addresses, 421 when Host names a host this session does not fit.
pub fn request_check(r: &mut Request) -> Status {
    let c = r.conn();
    let Some(tc) = tls_of(&c) else {
        return status::DECLINED;
    };
    // An HTTP/1.x request that opens no tunnel: its response head may wait for its body.
    if c.master().is_none()
        && r.method() != "CONNECT"
        && r.headers_in().get("Upgrade").is_none()
        && let Some(own) = c.state::<TlsConn>()
    {
        own.expect_response();
    }
    let Some(conn_vhost) = tc.vhost.clone() else {
        return status::DECLINED;
    };
    let facts = ConnFacts {
        has_sni: tc.settled.sni.is_some(),
        name_based: tc.settled.name_based,
        challenge: tc.settled.challenge,
        service_unavailable: conn_vhost.unavailable(),
    };
    // Another host may serve a request on this session only if it could have negotiated it:
    // it serves the certificate the client got, and allows the version and suite.
    let fit = match super::vhost_of(&r.server()) {
        Some(v) if Arc::ptr_eq(&v, &conn_vhost) => HostFit::Compatible,
        Some(v) if session_fits(tc, &v) => HostFit::Compatible,
        _ => HostFit::Incompatible,
    };
    match request_status(facts, fit) {
        None => status::DECLINED,
        Some(code) => {
            tracing::info!(
                "TLS: answering {code} for Host {:?} on a connection with SNI {:?}",
                r.hostname(),
                tc.settled.sni
            );
            code as Status
        }
    }
}

/// Whether `host` accepts the session `tc` negotiated (on another host).
fn session_fits(tc: &TlsConn, host: &super::Vhost) -> bool {
    let (Some(version), Some(suite)) = (tc.settled.version, tc.settled.suite) else {
        return false;
    };
    tc.settled
        .cert
        .as_ref()
        .and_then(|c| c.key.cert.first())
        .is_some_and(|leaf| host.built.accepts_session(version, suite, leaf.as_ref()))
}

fn info<'a>(tc: &'a TlsConn) -> ConnectionInfo<'a> {
    let cert = tc.settled.cert.as_ref().and_then(|c| c.info.as_ref());
    ConnectionInfo {
        protocol: tc.settled.version,
        cipher: tc.settled.suite,
        sni: tc.settled.sni.as_deref(),
        resumed: tc.settled.resumed,
        server_cert: cert.map(|c| c.as_ref()),
        library_version: super::RUSTLS_VERSION,
        interface_version: INTERFACE,
    }
}

const INTERFACE: &str = concat!("mod_bastion/", env!("CARGO_PKG_VERSION"));

/// fixups: `HTTPS`, `SSL_*` in the request environment, as `TLSOptions` asks.
pub fn fixups(r: &mut Request) -> Status {
    let c = r.conn();
    let Some(tc) = tls_of(&c) else {
        return status::DECLINED;
    };
    let opts = r.dir_config::<DirConf>().tls;
    let mut env = r.subprocess_env();
    // Made once by process_connection; a connection that did not pass there makes its own.
    let made;
    let always = match &tc.always_env {
        Some(vars) => vars,
        None => {
            made = always_env(tc);
            &made
        }
    };
    for (k, v) in always {
        env.set_c(k, v);
    }
    let (std, export) = (
        opts.std_env_vars.unwrap_or(false),
        opts.export_cert_data.unwrap_or(false),
    );
    if std || export {
        let i = info(tc);
        let mut vars = if std { i.std_env_vars() } else { Vec::new() };
        if export {
            vars.extend(i.export_cert_data());
        }
        for (k, v) in vars {
            env.set(&k, &v);
        }
    }
    status::DECLINED
}

/// ssl_conn_is_ssl: ours when we speak TLS on it.
pub fn conn_is_ssl(c: Conn) -> bool {
    tls_of(&c).is_some()
}

/// ssl_var_lookup: `SSL_*` values for mod_rewrite `%{SSL:...}`, mod_headers `%{...}s`, ...
pub fn var_lookup(c: Option<Conn>, _r: Option<&Request>, name: &str) -> Option<String> {
    let c = c?;
    let tc = tls_of(&c)?;
    if name.eq_ignore_ascii_case("HTTPS") {
        return Some("on".into());
    }
    info(tc).lookup(name)
}

/// http_scheme: `https` on our connections.
pub fn http_scheme(c: Conn) -> Option<&'static CStr> {
    tls_of(&c).map(|_| c"https")
}

/// default_port: 443 on our connections.
pub fn default_port(c: Conn) -> Option<u16> {
    tls_of(&c).map(|_| 443)
}
