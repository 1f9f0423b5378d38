//! The `encrypt-script` handler: requests to an external FastCGI application whose bodies
//! are encrypted on the way in and decrypted on the way out (mod_encrypt, made safe).
//!
//! The policy (which headers, which key, ranges) is in `bastion_seal::gateway`; the crypto
//! in `bastion_seal::stream`; the key lookups in `bastion_seal::keyclient`. This file does
//! the httpd side: find the application, get the key, stream, answer.

pub mod app;
pub mod audit;
pub mod conf;

use crate::ServerConf;
use crate::httpd::log::{Level, log_startup};
use crate::httpd::{Pool, Request, Server, Status, state, status};
use app::{AppServer, Ended, ExchangeError, Flow};
use audit::{AuditLog, Entry};
use bastion_seal::fcgi::{self, Event, ResponseHead, ResponseHeadParser, Role};
use bastion_seal::format::MAGIC;
use bastion_seal::gateway::{
    self, DROPPED_RESPONSE_HEADERS, HIDDEN_PARAMS, HOP_BY_HOP, KeyScope, RangeAnswer, Window,
};
use bastion_seal::keyclient::{KeyClient, KeyClientConfig, KeyClientError};
use bastion_seal::{Decryptor, Encryptor, Header};
use conf::FcgiServerConf;
use std::sync::Arc;

/// The handler name (`AddHandler encrypt-script .fcgi`, `SetHandler encrypt-script`).
pub const HANDLER: &std::ffi::CStr = c"encrypt-script";
/// `Retry-After` sent with a 503 when no key can be had.
const RETRY_AFTER_SECS: &str = "30";
/// Bytes of request body read from the client at a time.
const BODY_CHUNK: usize = 64 * 1024;
/// The FastCGI request id (one request per connection at a time).
const REQUEST_ID: u16 = 1;

fn fcgi_conf<'a>(s: &Server<'a>) -> &'a FcgiServerConf {
    &s.config::<ServerConf>().fcgi
}

/// check_config: every host that encrypts has key servers, an account and a CA
/// (runs for `apachectl -t` too).
pub fn check_config(_p: &Pool, _ptemp: &Pool, main: Server<'static>) -> Status {
    for s in main.iter() {
        if let Err(e) = fcgi_conf(&s).check() {
            log_startup(Level::Emerg, &format!("mod_bastion: {e}"));
            return status::INTERNAL_SERVER_ERROR;
        }
    }
    status::OK
}

/// post_config: opens the audit logs (as root, before the children drop privileges).
pub fn post_config(_p: &Pool, _ptemp: &Pool, main: Server<'static>) -> Status {
    if state::is_first_config_pass() {
        return status::OK;
    }
    let mut opened: Vec<(std::path::PathBuf, Arc<AuditLog>)> = Vec::new();
    for s in main.iter() {
        let c = fcgi_conf(&s);
        let log = match &c.logpath {
            None => None,
            Some(p) => match opened.iter().find(|(q, _)| q == p) {
                Some((_, l)) => Some(l.clone()),
                None => match AuditLog::open(p) {
                    Ok(l) => {
                        let l = Arc::new(l);
                        opened.push((p.clone(), l.clone()));
                        Some(l)
                    }
                    Err(e) => {
                        log_startup(
                            Level::Emerg,
                            &format!("mod_bastion: FastCgiLogpath {}: {e}", p.display()),
                        );
                        return status::INTERNAL_SERVER_ERROR;
                    }
                },
            },
        };
        let _ = c.audit.set(log);
    }
    status::OK
}

/// fixups: requests for a `FastCgiExternalServer` path go to the `encrypt-script` handler
/// (as mod_fastcgi does for its external servers).
pub fn fixups(r: &mut Request) -> Status {
    let c = fcgi_conf(&r.server());
    if c.servers.is_empty() || r.handler() == Some("encrypt-script") {
        return status::DECLINED;
    }
    if let Some(f) = r.filename()
        && c.servers.iter().any(|s| s.spec.matches(f))
    {
        r.set_handler(HANDLER);
    }
    status::DECLINED
}

/// The key client of this host for an application's key servers, made on first use
/// (in the child: it starts memcached connection threads).
fn key_client(c: &FcgiServerConf, app: &AppServer) -> Result<Arc<KeyClient>, KeyClientError> {
    let (Some(master), Some(data)) = (&app.spec.master_key_server, &app.spec.data_key_server)
    else {
        return Err(KeyClientError::Config("no key servers".into()));
    };
    let k = (master.clone(), data.clone());
    let mut clients = c.clients.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(kc) = clients.get(&k) {
        return Ok(kc.clone());
    }
    let kc = Arc::new(KeyClient::new(KeyClientConfig {
        master_url: master.clone(),
        data_url: data.clone(),
        username: c.username.clone().unwrap_or_default(),
        password: c.password.clone().unwrap_or_default(),
        ca_file: c.ca.clone(),
        timeout: c.key_timeout.unwrap_or(conf::DEFAULT_KEY_TIMEOUT),
        memcached: c.memcached(),
        cache_ttl: c.cache_ttl.unwrap_or(conf::DEFAULT_CACHE_TTL),
        process_cache_capacity: 1024,
    })?);
    clients.insert(k, kc.clone());
    Ok(kc)
}

/// The request's key scope value, or the status to answer.
fn scope_value(r: &mut Request, c: &FcgiServerConf) -> Result<String, Status> {
    let scope = c.scope();
    let v = match &scope {
        KeyScope::Account => c.username.clone(),
        KeyScope::User => r.user().map(str::to_string),
        KeyScope::Header(h) => r.headers_in().get(h).map(str::to_string),
        KeyScope::Env(e) => r.subprocess_env().get(e).map(str::to_string),
    };
    match v {
        Some(v) if !v.is_empty() => Ok(v),
        _ => {
            tracing::error!(
                "FastCgiEncryptKeyScope: the request has no key scope ({} is not set); \
                 refusing it (403)",
                scope.describe()
            );
            Err(status::FORBIDDEN)
        }
    }
}

/// Logs a key failure and answers: 503 with Retry-After for anything the key servers
/// (or their configuration) cause, 400 for a scope value that cannot name a key.
fn key_failure(r: &mut Request, e: &KeyClientError, op: &str) -> Status {
    match e {
        KeyClientError::BadClient(_) => {
            tracing::error!("encrypt-script: {op} refused: {e}");
            status::BAD_REQUEST
        }
        _ => {
            tracing::error!(
                "encrypt-script: no data key to {op} {}: {e}; answering 503, nothing was sent \
                 to the application",
                r.uri()
            );
            r.err_headers_out().set("Retry-After", RETRY_AFTER_SECS);
            status::SERVICE_UNAVAILABLE
        }
    }
}

fn audit(r: &Request, c: &FcgiServerConf, op: &str, scope: &str, e: AuditResult<'_>) {
    if let Some(log) = c.audit() {
        let (version, cipher, result) = match e {
            AuditResult::Ok(version, cipher) => (Some(version), Some(cipher), Ok(())),
            AuditResult::Err(msg) => (None, None, Err(msg)),
        };
        log.write(&Entry {
            op,
            client_ip: r.useragent_ip(),
            uri: r.uri(),
            scope,
            version,
            cipher,
            result,
        });
    }
}

enum AuditResult<'a> {
    Ok(u32, &'a str),
    Err(String),
}

/// The handler.
pub fn handler(r: &mut Request) -> Status {
    if r.handler() != Some("encrypt-script") {
        return status::DECLINED;
    }
    let server = r.server();
    let c = fcgi_conf(&server);
    let filename = r.filename().unwrap_or("").to_string();
    let Some(app) = c
        .servers
        .iter()
        .find(|s| s.spec.matches(&filename))
        .cloned()
    else {
        tracing::error!(
            "encrypt-script: no FastCgiExternalServer covers {filename}; mod_bastion talks to \
             external FastCGI applications only"
        );
        return status::NOT_FOUND;
    };
    let (encrypt, decrypt) = (c.encrypt(), c.decrypt());

    let has_body = match r.setup_body() {
        // A `Content-Length: 0` body is a body too: an empty object is still encrypted, so
        // it reads back as an empty plaintext, like any other.
        Ok(b) => b || r.headers_in().get("Content-Length").is_some(),
        Err(crate::httpd::request::BodyError::Refused(s)) => return s,
        Err(_) => return status::BAD_REQUEST,
    };
    let chunked = r.headers_in().get("Content-Length").is_none();
    let body_len: Option<u64> = if has_body && !chunked {
        r.headers_in()
            .get("Content-Length")
            .and_then(|v| v.trim().parse().ok())
    } else if has_body {
        None
    } else {
        Some(0)
    };

    let scope = if encrypt || decrypt {
        match scope_value(r, c) {
            Ok(s) => Some(s),
            Err(st) => return st,
        }
    } else {
        None
    };
    let kc = if encrypt || decrypt {
        match key_client(c, &app) {
            Ok(k) => Some(k),
            Err(e) => return key_failure(r, &e, "use"),
        }
    } else {
        None
    };

    // The key for the request body, before anything is read or sent.
    let mut encryptor = None;
    if encrypt && has_body {
        let (kc, scope) = (kc.as_ref().expect("key client"), scope.as_deref().unwrap());
        match kc.data_key(scope, None) {
            Ok((id, key)) => {
                let cipher = c.cipher();
                audit(
                    r,
                    c,
                    "encrypt",
                    scope,
                    AuditResult::Ok(id.version(), cipher.name()),
                );
                match Encryptor::new(&key, id, cipher) {
                    Ok(e) => encryptor = Some(e),
                    Err(e) => {
                        tracing::error!("encrypt-script: cannot start encryption: {e}");
                        return status::INTERNAL_SERVER_ERROR;
                    }
                }
            }
            Err(e) => {
                audit(r, c, "encrypt", scope, AuditResult::Err(e.to_string()));
                return key_failure(r, &e, "encrypt");
            }
        }
    }

    // CGI environment.
    r.add_cgi_vars();
    let mut params: Vec<(String, String)> = Vec::new();
    let transforming = encrypt || decrypt;
    let head_as_get = decrypt && r.header_only();
    for (k, v) in r.subprocess_env().entries() {
        if k == "CONTENT_LENGTH" {
            continue;
        }
        if transforming && HIDDEN_PARAMS.contains(&k) {
            continue;
        }
        if k == "REQUEST_METHOD" && head_as_get {
            // HEAD: the plaintext length needs the object's header, so ask for the object
            // and stop reading once the header is in.
            params.push((k.to_string(), "GET".to_string()));
            continue;
        }
        params.push((k.to_string(), v.to_string()));
    }
    for h in &app.spec.pass_headers {
        if let Some(v) = r.headers_in().get(h) {
            let name = format!("HTTP_{}", h.to_ascii_uppercase().replace('-', "_"));
            if !(transforming && HIDDEN_PARAMS.contains(&name.as_str())) {
                params.retain(|(k, _)| *k != name);
                params.push((name, v.to_string()));
            }
        }
    }
    let sent_len = match (&encryptor, body_len) {
        (Some(e), Some(n)) => match e.header().object_len(n) {
            Ok(l) => Some(l),
            Err(err) => {
                tracing::error!("encrypt-script: request body too long to encrypt: {err}");
                return 413;
            }
        },
        (_, n) if has_body => n,
        _ => None,
    };
    if let Some(n) = sent_len {
        params.push(("CONTENT_LENGTH".into(), n.to_string()));
    }

    let mut out = Vec::with_capacity(4096);
    fcgi::encode_begin_request(&mut out, REQUEST_ID, Role::Responder, true);
    if let Err(e) = fcgi::encode_params(
        &mut out,
        REQUEST_ID,
        params.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
    ) {
        tracing::error!("encrypt-script: CGI environment: {e}");
        return status::INTERNAL_SERVER_ERROR;
    }

    let (stream, reused) = match app.checkout() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "encrypt-script: FastCGI application {} for {} is unreachable: {e}",
                app.spec.address,
                app.spec.path
            );
            return status::SERVICE_UNAVAILABLE;
        }
    };
    tracing::debug!(
        "encrypt-script: {} {} -> {} (connection {})",
        r.method(),
        r.uri(),
        app.spec.address,
        if reused { "reused" } else { "new" }
    );

    let mut gw = Gateway {
        r,
        input: Input {
            body_done: !has_body,
            buf: vec![0u8; BODY_CHUNK],
            enc_buf: Vec::with_capacity(BODY_CHUNK + 1024),
            enc: encryptor,
        },
        resp: Response::new(c, &app, decrypt, kc, scope),
    };
    let result = app::exchange(stream, REQUEST_ID, out, app.spec.idle_timeout, &mut gw);
    let Gateway { r, mut resp, .. } = gw;
    match result {
        Ok(Ended::Clean(s)) => {
            let st = resp.finish(r);
            if st == status::OK {
                app.checkin(s);
            }
            st
        }
        Ok(Ended::Stopped) => resp.finish(r),
        Err(ExchangeError::Input(msg)) => {
            tracing::error!("encrypt-script: {} {}: {msg}", r.method(), r.uri());
            resp.fail(r, status::BAD_REQUEST)
        }
        Err(ExchangeError::Output(msg)) => {
            tracing::debug!("encrypt-script: response stopped: {msg}");
            resp.done_status()
        }
        Err(e) => {
            tracing::error!(
                "encrypt-script: FastCGI application {} ({} {}): {e}",
                app.spec.address,
                r.method(),
                r.uri()
            );
            let st = if matches!(e, ExchangeError::Timeout(_)) {
                GATEWAY_TIMEOUT
            } else {
                status::BAD_GATEWAY
            };
            resp.fail(r, st)
        }
    }
}

const GATEWAY_TIMEOUT: Status = 504;
const RANGE_NOT_SATISFIABLE: Status = 416;

fn push_stdin(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(fcgi::MAX_CONTENT_LEN) {
        fcgi::encode_stdin(out, REQUEST_ID, chunk);
    }
}

/// One request in flight: the request, its body side and its response side.
struct Gateway<'r, 'a, 'c> {
    r: &'r mut Request<'a>,
    input: Input,
    resp: Response<'c>,
}

impl app::Sides for Gateway<'_, '_, '_> {
    fn next_input(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        self.input.next(self.r, out)
    }

    fn on_event(&mut self, ev: Event) -> Result<Flow, String> {
        self.resp.on_event(self.r, ev)
    }
}

/// The request side: client body → (encrypt) → STDIN records.
struct Input {
    body_done: bool,
    buf: Vec<u8>,
    enc_buf: Vec<u8>,
    enc: Option<Encryptor>,
}

impl Input {
    fn end(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        self.body_done = true;
        if let Some(e) = self.enc.take() {
            let tail = e.finish().map_err(|e| format!("encryption: {e}"))?;
            push_stdin(out, &tail);
        }
        fcgi::encode_stdin_end(out, REQUEST_ID);
        Ok(true)
    }

    fn next(&mut self, r: &mut Request, out: &mut Vec<u8>) -> Result<bool, String> {
        if self.body_done {
            return self.end(out);
        }
        let n = r
            .read_body_chunk(&mut self.buf)
            .map_err(|e| format!("reading the request body: {e}"))?;
        if n == 0 {
            return self.end(out);
        }
        match self.enc.as_mut() {
            Some(e) => {
                self.enc_buf.clear();
                e.push_into(&self.buf[..n], &mut self.enc_buf)
                    .map_err(|e| format!("encryption: {e}"))?;
                push_stdin(out, &self.enc_buf);
            }
            None => push_stdin(out, &self.buf[..n]),
        }
        Ok(false)
    }
}

/// Where the response is.
enum Phase {
    /// Reading the CGI header block.
    Head(ResponseHeadParser),
    /// Decrypting: collecting the object header from the start of the body.
    ObjectHeader {
        head: ResponseHead,
        pending: Vec<u8>,
    },
    /// Sending the body (decrypted or as is).
    Body,
    /// The response is complete (or failed and answered); ignore the rest.
    Done,
}

/// The response side: STDOUT → headers → (decrypt) → client.
struct Response<'c> {
    conf: &'c FcgiServerConf,
    app: &'c AppServer,
    decrypt: bool,
    kc: Option<Arc<KeyClient>>,
    scope: Option<String>,
    phase: Phase,
    decryptor: Option<Decryptor>,
    window: Option<Window>,
    started: bool,
    status: Status,
    plain: Vec<u8>,
}

impl<'c> Response<'c> {
    fn new(
        conf: &'c FcgiServerConf,
        app: &'c AppServer,
        decrypt: bool,
        kc: Option<Arc<KeyClient>>,
        scope: Option<String>,
    ) -> Self {
        Response {
            conf,
            app,
            decrypt,
            kc,
            scope,
            phase: Phase::Head(ResponseHeadParser::default()),
            decryptor: None,
            window: None,
            started: false,
            status: status::OK,
            plain: Vec::with_capacity(64 * 1024 + 64),
        }
    }

    fn on_event(&mut self, r: &mut Request, ev: Event) -> Result<Flow, String> {
        match ev {
            Event::Stderr(b) => {
                let text = String::from_utf8_lossy(&b);
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    tracing::error!(
                        "FastCGI application {} (stderr): {}",
                        self.app.spec.address,
                        line.trim_end()
                    );
                }
                Ok(Flow::Continue)
            }
            Event::EndRequest { .. } => Ok(Flow::Continue),
            Event::Stdout(b) => self.on_stdout(r, &b),
        }
    }

    fn on_stdout(&mut self, r: &mut Request, data: &[u8]) -> Result<Flow, String> {
        match &mut self.phase {
            Phase::Head(p) => match p.push(data) {
                Ok(None) => Ok(Flow::Continue),
                Ok(Some((head, rest))) => {
                    let wants_decrypt =
                        self.decrypt && (200..300).contains(&head.status) && head.status != 204;
                    if wants_decrypt {
                        self.phase = Phase::ObjectHeader {
                            head,
                            pending: Vec::new(),
                        };
                    } else {
                        self.start_plain(r, head, false);
                        self.phase = Phase::Body;
                    }
                    self.on_stdout(r, &rest)
                }
                Err(e) => {
                    tracing::error!(
                        "FastCGI application {}: bad response headers: {e}",
                        self.app.spec.address
                    );
                    self.answer_error(status::BAD_GATEWAY);
                    Err(e.to_string())
                }
            },
            Phase::ObjectHeader { pending, .. } => {
                pending.extend_from_slice(data);
                let n = pending.len().min(MAGIC.len());
                if pending[..n] != MAGIC[..n] {
                    // Not an encrypted object (a listing, a message): as is.
                    let Phase::ObjectHeader { head, pending } =
                        std::mem::replace(&mut self.phase, Phase::Body)
                    else {
                        unreachable!()
                    };
                    self.start_plain(r, head, true);
                    return self.send_plain(r, &pending);
                }
                match Header::parse_prefix(pending) {
                    Ok(None) => Ok(Flow::Continue),
                    Ok(Some((h, used))) => {
                        let Phase::ObjectHeader { head, pending } =
                            std::mem::replace(&mut self.phase, Phase::Body)
                        else {
                            unreachable!()
                        };
                        self.start_decrypted(r, head, h)?;
                        if r.header_only() {
                            return self.pass(r, &[], true);
                        }
                        self.send_ciphertext(r, &pending[used..])
                    }
                    Err(e) => {
                        tracing::error!(
                            "encrypt-script: {} returned an object with a bad header: {e}",
                            r.uri()
                        );
                        self.answer_error(status::BAD_GATEWAY);
                        Err(e.to_string())
                    }
                }
            }
            Phase::Body => {
                if self.decryptor.is_some() {
                    self.send_ciphertext(r, data)
                } else {
                    self.send_plain(r, data)
                }
            }
            Phase::Done => Ok(Flow::Continue),
        }
    }

    /// Copies the application's status and headers to the response, minus `drop`;
    /// returns its Content-Length.
    fn set_headers(&mut self, r: &mut Request, head: &ResponseHead, drop: &[&str]) -> Option<u64> {
        r.set_status(head.status as Status);
        self.status = head.status as Status;
        let mut length = None;
        for (n, v) in &head.headers {
            if n.eq_ignore_ascii_case("Content-Length") {
                length = v.trim().parse::<u64>().ok();
                continue;
            }
            if n.eq_ignore_ascii_case("Content-Type") {
                r.set_content_type(v);
                continue;
            }
            if drop.iter().any(|d| d.eq_ignore_ascii_case(n)) {
                continue;
            }
            r.headers_out().add(n, v);
        }
        length
    }

    fn start_plain(&mut self, r: &mut Request, head: ResponseHead, decrypting_on: bool) {
        let len = self.set_headers(r, &head, HOP_BY_HOP);
        if decrypting_on {
            tracing::debug!(
                "encrypt-script: {} is not an encrypted object; sent as is",
                r.uri()
            );
        }
        if let Some(n) = len {
            r.set_content_length(n);
        }
    }

    fn start_decrypted(
        &mut self,
        r: &mut Request,
        head: ResponseHead,
        h: Header,
    ) -> Result<(), String> {
        let scope = self.scope.clone().unwrap_or_default();
        if h.key_id().client() != scope {
            tracing::error!(
                "encrypt-script: {} is encrypted for key scope {:?}, not the request's {:?}; \
                 refusing it (403)",
                r.uri(),
                h.key_id().client(),
                scope
            );
            self.answer_error(status::FORBIDDEN);
            return Err("object of another key scope".into());
        }
        let kc = self.kc.clone().ok_or("no key client")?;
        let key = match kc.data_key(&scope, Some(h.key_id().version())) {
            Ok((_, k)) => {
                audit(
                    r,
                    self.conf,
                    "decrypt",
                    &scope,
                    AuditResult::Ok(h.key_id().version(), h.cipher().name()),
                );
                k
            }
            Err(e) => {
                audit(
                    r,
                    self.conf,
                    "decrypt",
                    &scope,
                    AuditResult::Err(e.to_string()),
                );
                let st = key_failure(r, &e, "decrypt");
                self.answer_error(st);
                return Err(e.to_string());
            }
        };
        let object_len = head
            .get("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let plain_len = match object_len.map(|l| h.plaintext_len(l)) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                tracing::error!(
                    "encrypt-script: {}: the object's length does not fit its header: {e}",
                    r.uri()
                );
                self.answer_error(status::BAD_GATEWAY);
                return Err(e.to_string());
            }
            None => None,
        };
        self.set_headers(r, &head, DROPPED_RESPONSE_HEADERS);
        let mut range = RangeAnswer::Full;
        if let Some(len) = plain_len
            && head.status == 200
        {
            let if_range_ok = match r.headers_in().get("If-Range") {
                None => true,
                Some(v) => head
                    .get("ETag")
                    .is_some_and(|e| e == v && !e.starts_with("W/")),
            };
            if if_range_ok {
                range = gateway::resolve_range(r.headers_in().get("Range"), len);
            }
            r.headers_out().set("Accept-Ranges", "bytes");
        }
        match (range, plain_len) {
            (RangeAnswer::Unsatisfiable, Some(len)) => {
                r.err_headers_out()
                    .set("Content-Range", &format!("bytes */{len}"));
                self.answer_error(RANGE_NOT_SATISFIABLE);
                return Err("range not satisfiable".into());
            }
            (RangeAnswer::Partial(rg), Some(len)) => {
                r.set_status(206);
                self.status = 206;
                r.headers_out().set(
                    "Content-Range",
                    &format!("bytes {}-{}/{len}", rg.start, rg.end - 1),
                );
                r.set_content_length(rg.end - rg.start);
                self.window = Some(Window::new(rg));
            }
            (_, Some(len)) => r.set_content_length(len),
            (_, None) => {}
        }
        self.decryptor = Some(Decryptor::new(&key, &h));
        Ok(())
    }

    fn pass(&mut self, r: &mut Request, data: &[u8], eos: bool) -> Result<Flow, String> {
        let mut bb = r.brigade();
        bb.push_copy(data);
        if eos {
            bb.push_eos();
        } else if self.app.spec.flush {
            bb.push_flush();
        }
        self.started = true;
        if r.pass(&mut bb).is_err() {
            self.phase = Phase::Done;
            return Err("the client went away".into());
        }
        if eos {
            self.phase = Phase::Done;
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    fn send_plain(&mut self, r: &mut Request, data: &[u8]) -> Result<Flow, String> {
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        self.pass(r, data, false)
    }

    fn send_ciphertext(&mut self, r: &mut Request, data: &[u8]) -> Result<Flow, String> {
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        let res = match self.decryptor.as_mut() {
            Some(dec) => dec.push_into(data, &mut plain),
            None => Ok(()),
        };
        let out = match res {
            Ok(()) => self.emit_plain(r, &plain),
            Err(e) => Err(self.decrypt_failed(r, e)),
        };
        self.plain = plain;
        out
    }

    fn emit_plain(&mut self, r: &mut Request, plain: &[u8]) -> Result<Flow, String> {
        match &mut self.window {
            Some(w) => {
                let part = w.take(plain);
                let done = w.done();
                if part.is_empty() && !done {
                    return Ok(Flow::Continue);
                }
                self.pass(r, part, done)
            }
            None if plain.is_empty() => Ok(Flow::Continue),
            None => self.pass(r, plain, false),
        }
    }

    fn decrypt_failed(&mut self, r: &mut Request, e: bastion_seal::StreamError) -> String {
        tracing::error!(
            "encrypt-script: {}: the object failed verification: {e}; the response is cut",
            r.uri()
        );
        if self.started {
            r.abort_response();
            self.phase = Phase::Done;
        } else {
            self.answer_error(status::BAD_GATEWAY);
        }
        e.to_string()
    }

    /// Answers with an error status (nothing sent yet).
    fn answer_error(&mut self, st: Status) {
        self.status = st;
        self.phase = Phase::Done;
    }

    fn done_status(&self) -> Status {
        if !self.started && self.status >= 400 {
            self.status
        } else {
            status::OK
        }
    }

    /// The application ended the request: end the response.
    fn finish(&mut self, r: &mut Request) -> Status {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Head(_) => {
                tracing::error!(
                    "FastCGI application {}: the response ended without headers",
                    self.app.spec.address
                );
                status::BAD_GATEWAY
            }
            Phase::ObjectHeader { head, pending } => {
                if pending.len() >= MAGIC.len() {
                    tracing::error!(
                        "encrypt-script: {}: the object ends inside its header",
                        r.uri()
                    );
                    return status::BAD_GATEWAY;
                }
                // Shorter than the magic: a tiny plain body.
                self.start_plain(r, head, true);
                let _ = self.pass(r, &pending, true);
                status::OK
            }
            Phase::Body => {
                self.phase = Phase::Body;
                if let Some(dec) = self.decryptor.take() {
                    match dec.finish() {
                        Ok(tail) => {
                            let _ = self.emit_plain(r, &tail);
                        }
                        Err(e) => {
                            self.decrypt_failed(r, e);
                            return if self.started {
                                status::OK
                            } else {
                                status::BAD_GATEWAY
                            };
                        }
                    }
                }
                if !matches!(self.phase, Phase::Done) {
                    let _ = self.pass(r, &[], true);
                }
                status::OK
            }
            Phase::Done => self.done_status(),
        }
    }

    /// The exchange failed: cut the response if it started, else answer `st`.
    fn fail(&mut self, r: &mut Request, st: Status) -> Status {
        if self.started {
            if !matches!(self.phase, Phase::Done) {
                r.abort_response();
                self.phase = Phase::Done;
            }
            return status::OK;
        }
        self.phase = Phase::Done;
        if self.status >= 400 { self.status } else { st }
    }
}
