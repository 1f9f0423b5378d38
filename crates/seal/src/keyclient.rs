//! A blocking client for `bastion-keyserver` (see `docs/keyserver.md`) with
//! two cache levels, for httpd worker threads.
//!
//! [`KeyClient::data_key`] looks a data key up in this order:
//!
//! 1. the in-process [`SharedKeyCache`] of unwrapped data keys;
//! 2. memcached, which holds only the **wrapped** data key and the id of the
//!    master key that wraps it, under `menc2:dk:<client>:<version>` and (for
//!    the newest version) `menc2:dk:<client>:current`;
//! 3. the data key server (`GET /data/key/<client>[/<version>]`).
//!
//! The wrapped key is then unwrapped with the master key, fetched from the
//! master key server (`GET /master/key/<id>`) and kept only in process memory
//! (zeroized on drop) for the cache TTL. Master keys and plaintext data keys
//! never go to memcached.
//!
//! Tokens from `POST /auth` are kept in process until shortly before they
//! expire; a `401` on a key request triggers one re-authentication.
//! If memcached fails, one warning is logged and the key servers are used.
//!
//! HTTP is `ureq` over rustls with the aws-lc-rs provider; no async runtime
//! and no thread is started by the HTTP side. The memcached pool (r2d2)
//! starts a small thread pool, so create the client in each httpd child, not
//! in the parent before `fork`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cache::SharedKeyCache;
use crate::keys::{
    DataKey, KeyError, KeyId, MASTER_KEY_LEN, MasterKey, WRAPPED_KEY_LEN, unwrap_data_key,
};

/// Largest response body accepted from a key server.
const MAX_BODY: u64 = 64 * 1024;
/// Renew a token this long before the server says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// After a memcached failure, skip memcached for this long.
const MEMCACHED_BACKOFF: Duration = Duration::from_secs(10);
/// Upper bound for memcached connect and I/O timeouts.
const MEMCACHED_MAX_TIMEOUT: Duration = Duration::from_secs(1);

/// Configuration of a [`KeyClient`].
#[derive(Clone)]
pub struct KeyClientConfig {
    /// Base URL of the master key server, `https://host[:port]`.
    pub master_url: String,
    /// Base URL of the data key server (may equal `master_url` for role `both`).
    pub data_url: String,
    /// Account name on both servers.
    pub username: String,
    /// Account password.
    pub password: Zeroizing<String>,
    /// PEM file with the trust anchors for the servers' certificates.
    /// Required: there is no fallback to system or built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Timeout of one HTTP request (connect, TLS, request and response).
    pub timeout: Duration,
    /// memcached servers, `host:port`; empty disables memcached.
    pub memcached: Vec<String>,
    /// How long keys stay in the process cache and in memcached, and how long
    /// master keys and the "current version" of a client stay in memory.
    pub cache_ttl: Duration,
    /// Most unwrapped data keys kept in the process cache.
    pub process_cache_capacity: usize,
}

impl std::fmt::Debug for KeyClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyClientConfig")
            .field("master_url", &self.master_url)
            .field("data_url", &self.data_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .field("memcached", &self.memcached)
            .field("cache_ttl", &self.cache_ttl)
            .field("process_cache_capacity", &self.process_cache_capacity)
            .finish()
    }
}

/// Errors from [`KeyClient`].
#[derive(Debug, thiserror::Error)]
pub enum KeyClientError {
    /// The configuration is unusable (URL, CA file, memcached address).
    #[error("key client configuration: {0}")]
    Config(String),
    /// The client scope is not a valid [`KeyId`] client.
    #[error(transparent)]
    BadClient(KeyError),
    /// A key server could not be reached, timed out or answered 5xx.
    /// The caller should answer 503 with `Retry-After`.
    #[error("key server unavailable: {0}")]
    KeyServerUnavailable(String),
    /// The key server rejected the account's name or password (401).
    #[error("key server rejected the credentials of {0:?}")]
    AuthFailed(String),
    /// The account may not use this client scope or operation (403).
    #[error("key server refused access: {0}")]
    Forbidden(String),
    /// No such data key (client or version) or master key (404).
    #[error("not found on key server: {0}")]
    NotFound(String),
    /// An unexpected status or a malformed response.
    #[error("key server protocol error: {0}")]
    Protocol(String),
    /// The wrapped data key did not unwrap under its master key.
    #[error(transparent)]
    Unwrap(KeyError),
}

/// A wrapped data key record: what the data server returns and what
/// memcached stores (never the plaintext).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
struct WrappedRecord {
    client: String,
    version: u32,
    master_key_id: u32,
    key_encrypted_base64: String,
}

impl WrappedRecord {
    fn key_id(&self) -> Result<KeyId, KeyClientError> {
        KeyId::new(self.client.clone(), self.version)
            .map_err(|e| KeyClientError::Protocol(format!("bad key id in record: {e}")))
    }

    fn wrapped(&self) -> Result<Vec<u8>, KeyClientError> {
        let w = base64::engine::general_purpose::STANDARD
            .decode(&self.key_encrypted_base64)
            .map_err(|e| KeyClientError::Protocol(format!("bad wrapped key: {e}")))?;
        if w.len() != WRAPPED_KEY_LEN {
            return Err(KeyClientError::Protocol(format!(
                "wrapped key is {} bytes, expected {WRAPPED_KEY_LEN}",
                w.len()
            )));
        }
        Ok(w)
    }
}

/// One key server and its cached token.
struct Session {
    base: String,
    token: Mutex<Option<(Zeroizing<String>, Instant)>>,
}

struct Memcached {
    client: memcache::Client,
    down_until: Mutex<Option<Instant>>,
    warned: AtomicBool,
}

/// Fetches and caches data keys; see the module documentation.
/// Shareable between threads (`&self` methods).
pub struct KeyClient {
    agent: ureq::Agent,
    username: String,
    password: Zeroizing<String>,
    data: Arc<Session>,
    master: Arc<Session>,
    ttl: Duration,
    keys: SharedKeyCache,
    current: Mutex<HashMap<String, (u32, Instant)>>,
    masters: Mutex<HashMap<u32, (Arc<MasterKey>, Instant)>>,
    memcached: Option<Memcached>,
}

impl std::fmt::Debug for KeyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyClient")
            .field("data_url", &self.data.base)
            .field("master_url", &self.master.base)
            .field("username", &self.username)
            .field("memcached", &self.memcached.is_some())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks `https://host[:port]` (no path) and returns it without a trailing `/`.
fn base_url(url: &str) -> Result<String, KeyClientError> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .ok_or_else(|| KeyClientError::Config(format!("{url:?}: expected https://host[:port]")))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(KeyClientError::Config(format!(
            "{url:?}: expected https://host[:port]"
        )));
    }
    Ok(trimmed.to_string())
}

/// Percent-encodes a path segment: everything but RFC 3986 unreserved bytes.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_hex_master(hex: &str) -> Result<MasterKey, KeyClientError> {
    let bad = || KeyClientError::Protocol("master key is not 128 hex digits".into());
    let h = hex.as_bytes();
    if h.len() != 2 * MASTER_KEY_LEN {
        return Err(bad());
    }
    let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    for (i, pair) in h.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
        let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
        key[i] = (hi * 16 + lo) as u8;
    }
    Ok(MasterKey::from_bytes(*key))
}

fn http_error(e: ureq::Error, url: &str) -> KeyClientError {
    KeyClientError::KeyServerUnavailable(format!("{url}: {e}"))
}

/// The `message` of an error body, or a short default.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        message: String,
    }
    serde_json::from_slice::<E>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| "no error message".into())
}

impl KeyClient {
    /// Builds a client. Does not contact the key servers; memcached
    /// connections are opened lazily.
    pub fn new(cfg: KeyClientConfig) -> Result<KeyClient, KeyClientError> {
        let data_base = base_url(&cfg.data_url)?;
        let master_base = base_url(&cfg.master_url)?;
        let ca_file = cfg.ca_file.as_ref().ok_or_else(|| {
            KeyClientError::Config("a CA file for the key servers is required".into())
        })?;
        let cfg_err = |e: &dyn std::fmt::Display| {
            KeyClientError::Config(format!("{}: {e}", ca_file.display()))
        };
        let mut roots = Vec::new();
        for c in CertificateDer::pem_file_iter(ca_file).map_err(|e| cfg_err(&e))? {
            let c = c.map_err(|e| cfg_err(&e))?;
            roots.push(ureq::tls::Certificate::from_der(c.as_ref()).to_owned());
        }
        if roots.is_empty() {
            return Err(cfg_err(&"no certificates"));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(provider)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(cfg.timeout))
            .user_agent(concat!("bastion-seal/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();

        let data = Arc::new(Session {
            base: data_base,
            token: Mutex::new(None),
        });
        // One token serves both roles when the servers are the same.
        let master = if master_base == data.base {
            data.clone()
        } else {
            Arc::new(Session {
                base: master_base,
                token: Mutex::new(None),
            })
        };

        let memcached = if cfg.memcached.is_empty() {
            None
        } else {
            let t = cfg.timeout.min(MEMCACHED_MAX_TIMEOUT);
            let mut pools = Vec::with_capacity(cfg.memcached.len());
            for hp in &cfg.memcached {
                if hp.is_empty() || hp.contains(['/', '?', '#', '@']) {
                    return Err(KeyClientError::Config(format!(
                        "memcached server {hp:?}: expected host:port"
                    )));
                }
                let url = format!(
                    "memcache://{hp}?timeout={}&tcp_nodelay=true",
                    t.as_secs_f64()
                );
                let url = memcache::Url::parse(&url)
                    .map_err(|e| KeyClientError::Config(format!("memcached server {hp:?}: {e}")))?;
                // No connection now (memcached may be down): connect on use.
                pools.push(
                    r2d2::Pool::builder()
                        .max_size(8)
                        .min_idle(Some(0))
                        .connection_timeout(t)
                        .build_unchecked(memcache::ConnectionManager::new(url)),
                );
            }
            let client = memcache::Client::with_pools(pools)
                .map_err(|e| KeyClientError::Config(format!("memcached: {e}")))?;
            Some(Memcached {
                client,
                down_until: Mutex::new(None),
                warned: AtomicBool::new(false),
            })
        };

        Ok(KeyClient {
            agent,
            username: cfg.username,
            password: cfg.password,
            data,
            master,
            ttl: cfg.cache_ttl,
            keys: SharedKeyCache::new(cfg.process_cache_capacity, cfg.cache_ttl),
            current: Mutex::new(HashMap::new()),
            masters: Mutex::new(HashMap::new()),
            memcached,
        })
    }

    /// The data key of `client`: version `version`, or the newest one (which
    /// the data server creates if the client has none and the account may).
    /// Returns the key's id (with the resolved version) and the key.
    pub fn data_key(
        &self,
        client: &str,
        version: Option<u32>,
    ) -> Result<(KeyId, DataKey), KeyClientError> {
        // Validates the client scope (also keeps memcached keys safe).
        KeyId::new(client, version.unwrap_or(1)).map_err(KeyClientError::BadClient)?;
        let now = Instant::now();

        // 1. Process cache.
        let known = match version {
            Some(v) => Some(v),
            None => match lock(&self.current).get(client) {
                Some(&(v, until)) if now < until => Some(v),
                _ => None,
            },
        };
        if let Some(v) = known {
            let id = KeyId::new(client, v).map_err(KeyClientError::BadClient)?;
            if let Some(k) = self.keys.get(&id) {
                return Ok((id, k));
            }
        }

        // 2. memcached (wrapped keys only).
        let mc_name = match version {
            Some(v) => format!("menc2:dk:{client}:{v}"),
            None => format!("menc2:dk:{client}:current"),
        };
        if let Some(rec) = self.memcached_get(&mc_name)
            && rec.client == client
            && version.is_none_or(|v| v == rec.version)
        {
            match self.unwrap_record(&rec) {
                Ok((id, key)) => {
                    self.remember(&id, &key, version.is_none());
                    return Ok((id, key));
                }
                // A stale or damaged entry: drop it and ask the key server.
                Err(KeyClientError::Unwrap(e)) => {
                    tracing::warn!(key = %mc_name, error = %e, "memcached entry does not unwrap; ignoring it");
                    self.memcached_delete(&mc_name);
                }
                Err(KeyClientError::Protocol(e)) => {
                    tracing::warn!(key = %mc_name, error = %e, "bad memcached entry; ignoring it");
                    self.memcached_delete(&mc_name);
                }
                Err(e) => return Err(e),
            }
        }

        // 3. Data key server.
        let path = match version {
            Some(v) => format!("/data/key/{}/{v}", encode_segment(client)),
            None => format!("/data/key/{}", encode_segment(client)),
        };
        let body = self.get(&self.data, &path)?;
        let rec: WrappedRecord = serde_json::from_slice(&body)
            .map_err(|e| KeyClientError::Protocol(format!("{path}: {e}")))?;
        if rec.client != client || version.is_some_and(|v| v != rec.version) {
            return Err(KeyClientError::Protocol(format!(
                "{path}: answer is for {}#v{}",
                rec.client, rec.version
            )));
        }
        let (id, key) = self.unwrap_record(&rec)?;
        // Cache only what unwrapped.
        let ttl = self.memcached_ttl();
        self.memcached_set(&id.memcached_key(), &rec, ttl);
        if version.is_none() {
            self.memcached_set(&mc_name, &rec, ttl);
        }
        self.remember(&id, &key, version.is_none());
        Ok((id, key))
    }

    /// Drops every key held in process memory (data keys, master keys,
    /// current versions and tokens). memcached is left alone.
    pub fn clear_process_cache(&self) {
        self.keys.clear();
        lock(&self.current).clear();
        lock(&self.masters).clear();
        *lock(&self.data.token) = None;
        *lock(&self.master.token) = None;
    }

    /// Drops the unwrapped data keys and current versions held in process memory, keeping
    /// master keys and tokens (what a child looks like when its data-key cache has expired
    /// but the master key has not; used to measure the memcached path).
    pub fn clear_data_keys(&self) {
        self.keys.clear();
        lock(&self.current).clear();
    }

    fn remember(&self, id: &KeyId, key: &DataKey, is_current: bool) {
        self.keys.insert(id.clone(), key.clone());
        if is_current {
            let until = Instant::now()
                .checked_add(self.ttl)
                .unwrap_or_else(Instant::now);
            lock(&self.current).insert(id.client().to_string(), (id.version(), until));
        }
    }

    fn unwrap_record(&self, rec: &WrappedRecord) -> Result<(KeyId, DataKey), KeyClientError> {
        let id = rec.key_id()?;
        let wrapped = rec.wrapped()?;
        let master = self.master_key(rec.master_key_id)?;
        let key = unwrap_data_key(&master, &wrapped, &id).map_err(KeyClientError::Unwrap)?;
        Ok((id, key))
    }

    fn master_key(&self, id: u32) -> Result<Arc<MasterKey>, KeyClientError> {
        let now = Instant::now();
        {
            let mut m = lock(&self.masters);
            match m.get(&id) {
                Some((k, until)) if now < *until => return Ok(k.clone()),
                Some(_) => {
                    m.remove(&id);
                }
                None => {}
            }
        }
        #[derive(Deserialize)]
        struct Master {
            key_id: u32,
            key: String,
        }
        let path = format!("/master/key/{id}");
        let body = self.get(&self.master, &path)?;
        let m: Master = serde_json::from_slice(&body)
            .map_err(|_| KeyClientError::Protocol(format!("{path}: malformed answer")))?;
        let hex = Zeroizing::new(m.key);
        if m.key_id != id {
            return Err(KeyClientError::Protocol(format!(
                "{path}: answer is for master key {}",
                m.key_id
            )));
        }
        let key = Arc::new(decode_hex_master(&hex)?);
        let until = now.checked_add(self.ttl).unwrap_or(now);
        let mut map = lock(&self.masters);
        map.retain(|_, (_, u)| now < *u);
        map.insert(id, (key.clone(), until));
        Ok(key)
    }

    fn login(&self, s: &Session) -> Result<Zeroizing<String>, KeyClientError> {
        #[derive(Deserialize)]
        struct Auth {
            token: String,
            expires_in: u64,
        }
        let url = format!("{}/auth", s.base);
        let body = Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({
                "username": self.username,
                "password": &*self.password,
            }))
            .map_err(|e| KeyClientError::Protocol(e.to_string()))?,
        );
        let started = Instant::now();
        let resp = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(&body[..])
            .map_err(|e| http_error(e, &url))?;
        let (status, resp) = self.read(resp, &url)?;
        match status {
            200 => {}
            401 => return Err(KeyClientError::AuthFailed(self.username.clone())),
            _ => return Err(self.status_error(status, &resp, &url)),
        }
        let a: Auth = serde_json::from_slice(&resp)
            .map_err(|_| KeyClientError::Protocol(format!("{url}: malformed answer")))?;
        let token = Zeroizing::new(a.token);
        let life = Duration::from_secs(a.expires_in)
            .saturating_sub(TOKEN_MARGIN)
            .max(Duration::from_secs(1));
        let until = started.checked_add(life).unwrap_or(started);
        *lock(&s.token) = Some((token.clone(), until));
        Ok(token)
    }

    fn token(&self, s: &Session) -> Result<Zeroizing<String>, KeyClientError> {
        if let Some((t, until)) = lock(&s.token).as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        self.login(s)
    }

    /// An authenticated GET returning the 2xx body; re-authenticates once on 401.
    fn get(&self, s: &Session, path: &str) -> Result<Zeroizing<Vec<u8>>, KeyClientError> {
        let url = format!("{}{path}", s.base);
        let mut retried = false;
        loop {
            let token = self.token(s)?;
            let auth = Zeroizing::new(format!("Token {}", &*token));
            let resp = self
                .agent
                .get(&url)
                .header("Authorization", auth.as_str())
                .header("Accept", "application/json")
                .call()
                .map_err(|e| http_error(e, &url))?;
            let (status, body) = self.read(resp, &url)?;
            match status {
                200 | 201 => return Ok(body),
                401 if !retried => {
                    retried = true;
                    *lock(&s.token) = None;
                }
                401 => return Err(KeyClientError::AuthFailed(self.username.clone())),
                _ => return Err(self.status_error(status, &body, &url)),
            }
        }
    }

    fn read(
        &self,
        mut resp: ureq::http::Response<ureq::Body>,
        url: &str,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), KeyClientError> {
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => {
                    KeyClientError::Protocol(format!("{url}: answer too large"))
                }
                e => http_error(e, url),
            })?;
        Ok((status, Zeroizing::new(body)))
    }

    fn status_error(&self, status: u16, body: &[u8], url: &str) -> KeyClientError {
        let what = format!("{url}: {status} {}", error_message(body));
        match status {
            401 => KeyClientError::AuthFailed(self.username.clone()),
            403 => KeyClientError::Forbidden(what),
            404 => KeyClientError::NotFound(what),
            500..=599 => KeyClientError::KeyServerUnavailable(what),
            _ => KeyClientError::Protocol(what),
        }
    }

    fn memcached_ttl(&self) -> u32 {
        // memcached treats values over 30 days as absolute times: cap below.
        self.ttl.as_secs().clamp(1, 30 * 24 * 3600 - 1) as u32
    }

    fn memcached_usable(&self) -> Option<&Memcached> {
        let mc = self.memcached.as_ref()?;
        let mut down = lock(&mc.down_until);
        match *down {
            Some(until) if Instant::now() < until => None,
            _ => {
                *down = None;
                Some(mc)
            }
        }
    }

    fn memcached_failed(&self, mc: &Memcached, e: &memcache::MemcacheError) {
        *lock(&mc.down_until) = Instant::now().checked_add(MEMCACHED_BACKOFF);
        if !mc.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "memcached unavailable; using the key servers directly");
        }
    }

    fn memcached_ok(&self, mc: &Memcached) {
        if mc.warned.swap(false, Ordering::Relaxed) {
            tracing::info!("memcached reachable again");
        }
    }

    fn memcached_get(&self, name: &str) -> Option<WrappedRecord> {
        let mc = self.memcached_usable()?;
        match mc.client.get::<Vec<u8>>(name) {
            Ok(v) => {
                self.memcached_ok(mc);
                let v = v?;
                match serde_json::from_slice::<WrappedRecord>(&v) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(key = %name, error = %e, "bad memcached entry; ignoring it");
                        None
                    }
                }
            }
            Err(e) => {
                self.memcached_failed(mc, &e);
                None
            }
        }
    }

    fn memcached_set(&self, name: &str, rec: &WrappedRecord, ttl: u32) {
        let Some(mc) = self.memcached_usable() else {
            return;
        };
        let Ok(v) = serde_json::to_vec(rec) else {
            return;
        };
        match mc.client.set(name, &v[..], ttl) {
            Ok(()) => self.memcached_ok(mc),
            Err(e) => self.memcached_failed(mc, &e),
        }
    }

    fn memcached_delete(&self, name: &str) {
        if let Some(mc) = self.memcached_usable()
            && let Err(e) = mc.client.delete(name)
        {
            self.memcached_failed(mc, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_segments() {
        assert_eq!(
            base_url("https://k.example:8443/").unwrap(),
            "https://k.example:8443"
        );
        assert!(base_url("http://k.example").is_err());
        assert!(base_url("https://k.example/x").is_err());
        assert!(base_url("https://").is_err());
        assert_eq!(encode_segment("a-b.c_d~9"), "a-b.c_d~9");
        assert_eq!(encode_segment("a/b%c?d#e"), "a%2Fb%25c%3Fd%23e");
    }

    #[test]
    fn master_hex() {
        let hex: String = (0..64).map(|i| format!("{i:02x}")).collect();
        let k = decode_hex_master(&hex).unwrap();
        assert_eq!(k.expose_secret()[63], 63);
        assert!(decode_hex_master(&hex[2..]).is_err());
        assert!(decode_hex_master(&format!("zz{}", &hex[2..])).is_err());
    }

    #[test]
    fn config_needs_ca_file() {
        let cfg = KeyClientConfig {
            master_url: "https://127.0.0.1:1".into(),
            data_url: "https://127.0.0.1:1".into(),
            username: "m".into(),
            password: Zeroizing::new("secret".into()),
            ca_file: None,
            timeout: Duration::from_secs(1),
            memcached: vec![],
            cache_ttl: Duration::from_secs(60),
            process_cache_capacity: 16,
        };
        assert!(matches!(
            KeyClient::new(cfg.clone()),
            Err(KeyClientError::Config(_))
        ));
        assert!(!format!("{cfg:?}").contains("secret"));
    }
}
