//! The JSON API, independent of the transport: [`Service::handle`] takes a
//! parsed [`Request`] and returns a [`Response`]. [`crate::server`] feeds it
//! from HTTPS; tests can call it directly.
//!
//! Endpoints (see `docs/keyserver.md` for bodies and errors):
//!
//! | method and path | permission | role |
//! |---|---|---|
//! | `GET /health` | none | any |
//! | `POST /auth` | none (name and password) | any |
//! | `GET /master/key`, `GET /master/key/<id>` | `master-read` | master, both |
//! | `POST /master/rotate` | `master-rotate` | master, both |
//! | `POST /master/wrap` | `master-wrap` | master, both |
//! | `GET /data/key`, `GET /data/key/<client>` | `data-read` (+ `data-create` to create v1) | data, both |
//! | `GET /data/key/<client>/<version>` | `data-read` | data, both |
//! | `POST /data/key/<client>/rotate` | `data-rotate` | data, both |
//!
//! Every call except `/health` writes one audit line; if the audit log
//! cannot be written the call fails with 500 and no key is returned.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use base64::Engine;
use bastion_seal::keys::{DataKey, KeyId, wrap_data_key};
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::audit::{AuditEvent, AuditLog};
use crate::auth::{Account, Permission, TokenStore};
use crate::client::{MasterClient, WrappedKey};
use crate::config::Role;
use crate::crypto::{KdfParams, hash_password, verify_password};
use crate::store::{DataKeyRecord, Store, StoreError};
use crate::util::{hex, percent_decode, rfc3339, rfc3339_millis, unix_now, unix_now_millis};

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Most live tokens at once.
pub const MAX_TOKENS: usize = 100_000;

/// A request, as the transport parsed it.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, possibly with a query string (ignored).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body (at most [`MAX_BODY`] bytes). Zeroized on drop: it may hold
    /// a password.
    pub body: Zeroizing<Vec<u8>>,
    /// The peer, for the audit log.
    pub remote: Option<SocketAddr>,
}

/// A response: a status and a JSON body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// JSON body. Zeroized on drop: it may hold a master key.
    pub body: Zeroizing<Vec<u8>>,
    /// Whether to send `WWW-Authenticate: Token` (with 401).
    pub www_authenticate: bool,
}

/// An API error: status, a short code and a message for the client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code, e.g. `forbidden`.
    pub code: &'static str,
    /// Human-readable message (never holds secrets).
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(m: impl Into<String>) -> Self {
        Self::new(400, "bad_request", m)
    }
    fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", m)
    }
    fn forbidden(m: impl Into<String>) -> Self {
        Self::new(403, "forbidden", m)
    }
    fn not_found(m: impl Into<String>) -> Self {
        Self::new(404, "not_found", m)
    }
    fn internal(m: impl Into<String>) -> Self {
        Self::new(500, "internal", m)
    }

    /// The `result` field written to the audit log for this error.
    pub fn audit_result(&self) -> &'static str {
        match self.status {
            400 => "invalid",
            401 => "unauthorized",
            403 => "denied",
            404 => "not_found",
            409 => "conflict",
            _ => "error",
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("store: {e}");
        ApiError::internal("key store error")
    }
}

/// What an audit line says about one call; filled in as the call proceeds.
#[derive(Debug, Default)]
struct Ctx {
    account: String,
    op: &'static str,
    client: Option<String>,
    version: Option<u32>,
    master_key_id: Option<u32>,
    remote: Option<String>,
}

fn ser_secret<S: Serializer>(v: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

#[derive(Serialize)]
struct MasterKeyBody {
    key_id: u32,
    #[serde(serialize_with = "ser_secret")]
    key: Zeroizing<String>,
    algorithm: &'static str,
    current: bool,
    created: String,
    refresh_interval: u64,
}

#[derive(Serialize)]
struct DataKeyBody<'a> {
    client: &'a str,
    key_id: u32,
    version: u32,
    master_key_id: u32,
    key_encrypted_base64: String,
    algorithm: &'static str,
    created: String,
    refresh_interval: u64,
}

const SIV: &str = "AES-256-SIV";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn json<T: Serialize>(status: u16, v: &T) -> Result<(u16, Zeroizing<Vec<u8>>), ApiError> {
    let mut out = Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer(&mut *out, v).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((status, out))
}

/// How a [`Service`] reaches master keys when it must create a data key.
#[derive(Debug)]
pub enum Upstream {
    /// This server holds master keys itself (`role = "both"`), or never
    /// creates data keys (`role = "master"`).
    Local,
    /// A master key server reached over HTTPS (`role = "data"`); calls are
    /// made on this runtime from blocking threads.
    Remote(MasterClient, tokio::runtime::Handle),
}

/// The key server's state and logic.
#[derive(Debug)]
pub struct Service {
    role: Role,
    refresh_interval: u64,
    store: Mutex<Store>,
    tokens: TokenStore,
    audit: AuditLog,
    upstream: Upstream,
    dummy_hash: String,
}

impl Service {
    /// A service over an open store. `password_cost` is used for a dummy
    /// hash so that unknown account names take as long as wrong passwords.
    pub fn new(
        role: Role,
        store: Store,
        audit: AuditLog,
        upstream: Upstream,
        token_lifetime: u64,
        refresh_interval: u64,
        password_cost: &KdfParams,
    ) -> Result<Service, crate::crypto::CryptoError> {
        Ok(Service {
            role,
            refresh_interval,
            store: Mutex::new(store),
            tokens: TokenStore::new(token_lifetime, MAX_TOKENS),
            audit,
            upstream,
            dummy_hash: hash_password(b"no such account", password_cost)?,
        })
    }

    /// The role served.
    pub fn role(&self) -> Role {
        self.role
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes an audit line for an operation outside the API (the CLI).
    pub fn audit(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        self.audit.record(event)
    }

    /// Handles one request. Never panics on bad input; errors become JSON
    /// error bodies.
    pub fn handle(&self, req: Request) -> Response {
        let mut ctx = Ctx {
            account: "-".into(),
            remote: req.remote.map(|a| a.to_string()),
            ..Default::default()
        };
        let result = self.route(&req, &mut ctx);
        if ctx.op.is_empty() {
            // Not an operation (health, unknown path): no audit line.
            return Self::respond(result);
        }
        let audit_result = match &result {
            Ok((201, _)) => "created",
            Ok(_) => "ok",
            Err(e) => e.audit_result(),
        };
        let event = AuditEvent {
            account: &ctx.account,
            operation: ctx.op,
            client: ctx.client.as_deref(),
            version: ctx.version,
            master_key_id: ctx.master_key_id,
            result: audit_result,
            subject: None,
            remote: ctx.remote.clone(),
        };
        if let Err(e) = self.audit.record(&event) {
            tracing::error!("audit log write failed, refusing {}: {e}", ctx.op);
            return Self::respond(Err(ApiError::internal("audit log unavailable")));
        }
        Self::respond(result)
    }

    fn respond(result: Result<(u16, Zeroizing<Vec<u8>>), ApiError>) -> Response {
        match result {
            Ok((status, body)) => Response {
                status,
                body,
                www_authenticate: false,
            },
            Err(e) => {
                let body = serde_json::to_vec(&serde_json::json!({
                    "error": e.code,
                    "message": e.message,
                }))
                .unwrap_or_default();
                Response {
                    status: e.status,
                    body: Zeroizing::new(body),
                    www_authenticate: e.status == 401,
                }
            }
        }
    }

    fn route(&self, req: &Request, ctx: &mut Ctx) -> Result<(u16, Zeroizing<Vec<u8>>), ApiError> {
        let path = req.path.split(['?', '#']).next().unwrap_or("");
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let segs: Vec<String> = path
            .split('/')
            .map(|s| percent_decode(s).ok_or_else(|| ApiError::bad_request("bad path encoding")))
            .collect::<Result<_, _>>()?;
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let m = req.method.as_str();
        let method_not_allowed = || {
            Err(ApiError::new(
                405,
                "method_not_allowed",
                "method not allowed",
            ))
        };
        match segs.as_slice() {
            ["health"] => match m {
                "GET" => json(
                    200,
                    &serde_json::json!({"status": "ok", "role": self.role.name()}),
                ),
                _ => method_not_allowed(),
            },
            ["auth"] => match m {
                "POST" => {
                    ctx.op = "auth";
                    self.auth(req, ctx)
                }
                _ => method_not_allowed(),
            },
            ["master", rest @ ..] => {
                let (op, allowed) = match rest {
                    ["key"] | ["key", _] => ("master.get", m == "GET"),
                    ["rotate"] => ("master.rotate", m == "POST"),
                    ["wrap"] => ("master.wrap", m == "POST"),
                    _ => return Err(ApiError::not_found("no such endpoint")),
                };
                if !allowed {
                    return method_not_allowed();
                }
                ctx.op = op;
                let account = self.authenticate(req, ctx)?;
                if !self.role.serves_master() {
                    return Err(ApiError::not_found(
                        "this key server does not hold master keys",
                    ));
                }
                match rest {
                    ["key"] => self.get_master(&account, None, ctx),
                    ["key", id] => {
                        let id = parse_id(id, "master key id")?;
                        self.get_master(&account, Some(id), ctx)
                    }
                    ["rotate"] => {
                        require(&account, Permission::MasterRotate)?;
                        let id = self.rotate_master()?;
                        ctx.master_key_id = Some(id);
                        json(
                            201,
                            &serde_json::json!({"key_id": id, "created": rfc3339(unix_now())}),
                        )
                    }
                    _ => self.wrap(&account, req, ctx),
                }
            }
            ["data", "key", rest @ ..] => {
                let op = match (m, rest) {
                    ("GET", [] | [_] | [_, _]) => "data.get",
                    ("POST", [_, "rotate"]) => "data.rotate",
                    (_, [] | [_] | [_, _]) => return method_not_allowed(),
                    _ => return Err(ApiError::not_found("no such endpoint")),
                };
                ctx.op = op;
                let account = self.authenticate(req, ctx)?;
                if !self.role.serves_data() {
                    return Err(ApiError::not_found(
                        "this key server does not hold data keys",
                    ));
                }
                let client = match rest.first() {
                    Some(c) => c.to_string(),
                    // mod_encrypt compatibility: the account is the client.
                    None => ctx.account.clone(),
                };
                ctx.client = Some(client.clone());
                KeyId::new(client.as_str(), 1).map_err(|_| {
                    ApiError::bad_request("client must be 1..=200 visible ASCII characters")
                })?;
                if !account.clients.allows(&client) {
                    return Err(ApiError::forbidden("account may not use this client"));
                }
                match (op, rest) {
                    ("data.rotate", _) => {
                        require(&account, Permission::DataRotate)?;
                        let rec = self.rotate_data(&client)?;
                        ctx.version = Some(rec.id.version());
                        ctx.master_key_id = Some(rec.master_key_id);
                        self.data_body(201, &rec)
                    }
                    (_, [_, version]) => {
                        require(&account, Permission::DataRead)?;
                        let v = parse_id(version, "version")?;
                        ctx.version = Some(v);
                        let rec = self
                            .store()
                            .data_key(&client, v)?
                            .ok_or_else(|| ApiError::not_found("no such data key version"))?;
                        ctx.master_key_id = Some(rec.master_key_id);
                        self.data_body(200, &rec)
                    }
                    _ => {
                        require(&account, Permission::DataRead)?;
                        let (rec, created) =
                            self.get_or_create(&client, account.can(Permission::DataCreate))?;
                        if created {
                            ctx.op = "data.create";
                        }
                        ctx.version = Some(rec.id.version());
                        ctx.master_key_id = Some(rec.master_key_id);
                        self.data_body(if created { 201 } else { 200 }, &rec)
                    }
                }
            }
            _ => Err(ApiError::not_found("no such endpoint")),
        }
    }

    fn auth(&self, req: &Request, ctx: &mut Ctx) -> Result<(u16, Zeroizing<Vec<u8>>), ApiError> {
        #[derive(Deserialize)]
        struct Creds {
            username: String,
            password: String,
        }
        let creds: Creds = serde_json::from_slice(&req.body).map_err(|_| {
            ApiError::bad_request("expected {\"username\": ..., \"password\": ...}")
        })?;
        let password = Zeroizing::new(creds.password);
        if creds.username.is_empty() || creds.username.len() > 128 {
            return Err(ApiError::unauthorized("wrong user name or password"));
        }
        ctx.account = creds.username.clone();
        let account = self.store().user(&creds.username)?;
        let ok = match &account {
            Some(a) => verify_password(password.as_bytes(), &a.password_hash),
            None => {
                // Same cost as a real check, so names cannot be probed by timing.
                let _ = verify_password(password.as_bytes(), &self.dummy_hash);
                false
            }
        };
        if !ok {
            return Err(ApiError::unauthorized("wrong user name or password"));
        }
        let (token, expires_ms) = self
            .tokens
            .issue(&creds.username, unix_now_millis())
            .map_err(|e| ApiError::new(503, "unavailable", e.to_string()))?;
        let body = serde_json::json!({
            "token": token,
            "expiration_time": rfc3339_millis(expires_ms),
            "expires_in": expires_ms.saturating_sub(unix_now_millis()) / 1000,
        });
        json(200, &body)
    }

    /// Checks the token and loads the account as it is now (a removed
    /// account's tokens stop working at once).
    fn authenticate(&self, req: &Request, ctx: &mut Ctx) -> Result<Account, ApiError> {
        let header = req
            .authorization
            .as_deref()
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Token <token>"))?;
        let token = header
            .strip_prefix("Token ")
            .or_else(|| header.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Token <token>"))?;
        let session = self
            .tokens
            .check(token, unix_now_millis())
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))?;
        ctx.account = session.account.clone();
        match self.store().user(&session.account)? {
            Some(a) => Ok(a),
            None => {
                self.tokens.revoke_account(&session.account);
                Err(ApiError::unauthorized("account no longer exists"))
            }
        }
    }

    fn get_master(
        &self,
        account: &Account,
        id: Option<u32>,
        ctx: &mut Ctx,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), ApiError> {
        require(account, Permission::MasterRead)?;
        ctx.master_key_id = id;
        let store = self.store();
        let current = store.current_master_key()?.ok_or_else(|| {
            ApiError::new(503, "unavailable", "no master key (run `rotate master`)")
        })?;
        let current_id = current.id;
        let rec = match id {
            None => current,
            Some(id) if id == current.id => current,
            Some(id) => store
                .master_key(id)?
                .ok_or_else(|| ApiError::not_found("no such master key"))?,
        };
        drop(store);
        ctx.master_key_id = Some(rec.id);
        json(
            200,
            &MasterKeyBody {
                key_id: rec.id,
                key: Zeroizing::new(hex(rec.key.expose_secret())),
                algorithm: SIV,
                current: rec.id == current_id,
                created: rfc3339(rec.created),
                refresh_interval: self.refresh_interval,
            },
        )
    }

    fn wrap(
        &self,
        account: &Account,
        req: &Request,
        ctx: &mut Ctx,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), ApiError> {
        #[derive(Deserialize)]
        struct WrapReq {
            client: String,
            version: u32,
        }
        let w: WrapReq = serde_json::from_slice(&req.body)
            .map_err(|_| ApiError::bad_request("expected {\"client\": ..., \"version\": ...}"))?;
        ctx.client = Some(w.client.clone());
        ctx.version = Some(w.version);
        require(account, Permission::MasterWrap)?;
        if w.version == 0 {
            return Err(ApiError::bad_request("version must be at least 1"));
        }
        let id = KeyId::new(w.client.as_str(), w.version).map_err(|_| {
            ApiError::bad_request("client must be 1..=200 visible ASCII characters")
        })?;
        if !account.clients.allows(&w.client) {
            return Err(ApiError::forbidden("account may not use this client"));
        }
        let wk = Self::generate_wrapped(&self.store(), &id)?;
        ctx.master_key_id = Some(wk.master_key_id);
        json(
            200,
            &serde_json::json!({
                "client": id.client(),
                "version": id.version(),
                "master_key_id": wk.master_key_id,
                "key_encrypted_base64": b64(&wk.wrapped),
                "algorithm": SIV,
            }),
        )
    }

    fn data_body(
        &self,
        status: u16,
        rec: &DataKeyRecord,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), ApiError> {
        json(
            status,
            &DataKeyBody {
                client: rec.id.client(),
                key_id: rec.id.version(),
                version: rec.id.version(),
                master_key_id: rec.master_key_id,
                key_encrypted_base64: b64(&rec.wrapped),
                algorithm: SIV,
                created: rfc3339(rec.created),
                refresh_interval: self.refresh_interval,
            },
        )
    }

    /// A fresh data key for `id`, wrapped under the store's current master
    /// key; the plaintext key is dropped (zeroized) before returning.
    fn generate_wrapped(store: &Store, id: &KeyId) -> Result<WrappedKey, ApiError> {
        let mk = store.current_master_key()?.ok_or_else(|| {
            ApiError::new(503, "unavailable", "no master key (run `rotate master`)")
        })?;
        let dk = DataKey::generate().map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(WrappedKey {
            master_key_id: mk.id,
            wrapped: wrap_data_key(&mk.key, &dk, id),
        })
    }

    fn remote_wrapped(&self, id: &KeyId) -> Result<WrappedKey, ApiError> {
        match &self.upstream {
            Upstream::Remote(client, rt) => rt.block_on(client.wrap(id)).map_err(|e| {
                tracing::error!("master key server: {e}");
                ApiError::new(502, "upstream", "master key server unavailable")
            }),
            Upstream::Local => Err(ApiError::internal("no master key server configured")),
        }
    }

    fn record(id: KeyId, wk: WrappedKey) -> DataKeyRecord {
        DataKeyRecord {
            id,
            master_key_id: wk.master_key_id,
            wrapped: wk.wrapped,
            created: unix_now(),
        }
    }

    /// Stores a new data key version `version` for `client`, wrapped under
    /// the current master key (local or upstream). `Ok(None)` if that
    /// version appeared meanwhile.
    fn create_version(
        &self,
        client: &str,
        version: u32,
    ) -> Result<Option<DataKeyRecord>, ApiError> {
        let id = KeyId::new(client, version).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if self.role == Role::Both {
            let store = self.store();
            let rec = Self::record(id.clone(), Self::generate_wrapped(&store, &id)?);
            return Ok(store.insert_data_key(&rec)?.then_some(rec));
        }
        // Ask the master server without holding the store lock.
        let rec = Self::record(id.clone(), self.remote_wrapped(&id)?);
        Ok(self.store().insert_data_key(&rec)?.then_some(rec))
    }

    /// The newest data key of `client`; creates version 1 when there is
    /// none and `may_create`. Returns the record and whether it was created.
    pub fn get_or_create(
        &self,
        client: &str,
        may_create: bool,
    ) -> Result<(DataKeyRecord, bool), ApiError> {
        if let Some(rec) = self.store().latest_data_key(client)? {
            return Ok((rec, false));
        }
        if !may_create {
            return Err(ApiError::not_found("client has no data key"));
        }
        match self.create_version(client, 1)? {
            Some(rec) => Ok((rec, true)),
            None => self
                .store()
                .data_key(client, 1)?
                .map(|r| (r, false))
                .ok_or_else(|| ApiError::internal("data key vanished")),
        }
    }

    /// Adds the next data key version for `client` (1 if it has none).
    pub fn rotate_data(&self, client: &str) -> Result<DataKeyRecord, ApiError> {
        let next = match self.store().latest_data_key(client)? {
            Some(r) => {
                r.id.version()
                    .checked_add(1)
                    .ok_or_else(|| ApiError::new(409, "conflict", "version space exhausted"))?
            }
            None => 1,
        };
        self.create_version(client, next)?
            .ok_or_else(|| ApiError::new(409, "conflict", "concurrent rotation; retry"))
    }

    /// Adds a new master key, which becomes current. Returns its id.
    pub fn rotate_master(&self) -> Result<u32, ApiError> {
        if !self.role.serves_master() {
            return Err(ApiError::not_found(
                "this key server does not hold master keys",
            ));
        }
        Ok(self.store().add_master_key()?)
    }
}

fn require(account: &Account, p: Permission) -> Result<(), ApiError> {
    if account.can(p) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("account lacks permission {p}")))
    }
}

fn parse_id(s: &str, what: &str) -> Result<u32, ApiError> {
    match s.parse::<u32>() {
        Ok(v) if v >= 1 && !s.starts_with('+') => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "{what} must be an integer from 1"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::auth::ClientScopes;

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn service(audit: &Path) -> Service {
        let dir = std::env::temp_dir().join(format!("bks-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join(format!("k{}.db", rand_suffix()));
        let store = Store::create(&db, b"pw", &FAST).unwrap();
        store.add_master_key().unwrap();
        let acct = Account {
            password_hash: hash_password(b"module-pw", &FAST).unwrap(),
            permissions: crate::auth::role_permissions("module").unwrap(),
            clients: ClientScopes::parse("alice").unwrap(),
            created: 0,
        };
        store.put_user("mod", &acct, false).unwrap();
        let audit = AuditLog::open(audit).unwrap();
        Service::new(Role::Both, store, audit, Upstream::Local, 60, 60, &FAST).unwrap()
    }

    fn rand_suffix() -> u64 {
        let mut b = [0u8; 8];
        bastion_seal::keys::random_bytes(&mut b).unwrap();
        u64::from_le_bytes(b)
    }

    fn call(
        s: &Service,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let r = s.handle(Request {
            method: method.into(),
            path: path.into(),
            authorization: token.map(|t| format!("Token {t}")),
            body: Zeroizing::new(body.as_bytes().to_vec()),
            remote: None,
        });
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    fn login(s: &Service) -> String {
        let (st, v) = call(
            s,
            "POST",
            "/auth",
            None,
            r#"{"username":"mod","password":"module-pw"}"#,
        );
        assert_eq!(st, 200, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    #[test]
    fn routing_and_scopes() {
        let log = std::env::temp_dir().join(format!("bks-api-audit-{}", rand_suffix()));
        let s = service(&log);
        let t = login(&s);
        assert_eq!(call(&s, "POST", "/auth", None, "not json").0, 400);
        assert_eq!(call(&s, "GET", "/auth", None, "").0, 405);
        assert_eq!(call(&s, "GET", "/health?x=1", None, "").0, 200);
        assert_eq!(call(&s, "GET", "/data/key/alice/", Some(&t), "").0, 201);
        assert_eq!(
            call(&s, "GET", "/data/key/alice?fresh", Some(&t), "").0,
            200
        );
        assert_eq!(
            call(&s, "GET", "/data/key/bob", Some(&t), "").0,
            403,
            "outside --clients"
        );
        assert_eq!(call(&s, "GET", "/data/key/%zz", Some(&t), "").0, 400);
        assert_eq!(call(&s, "GET", "/data/key/alice/+1", Some(&t), "").0, 400);
        assert_eq!(call(&s, "GET", "/data/key/alice/1/x", Some(&t), "").0, 404);
        assert_eq!(call(&s, "GET", "/master/key/abc", Some(&t), "").0, 400);
        assert_eq!(call(&s, "GET", "/master/key", Some("Token x"), "").0, 401);
        let (st, _) = call(
            &s,
            "POST",
            "/master/wrap",
            Some(&t),
            r#"{"client":"alice","version":1}"#,
        );
        assert_eq!(st, 403);
        let r = s.handle(Request {
            method: "GET".into(),
            path: "/data/key/alice".into(),
            authorization: Some(format!("Bearer {t}")),
            body: Zeroizing::new(Vec::new()),
            remote: None,
        });
        assert_eq!(r.status, 200);
        let r = s.handle(Request {
            method: "GET".into(),
            path: "/data/key/alice".into(),
            authorization: None,
            body: Zeroizing::new(Vec::new()),
            remote: None,
        });
        assert!(r.www_authenticate);
        // Removing the account kills its tokens.
        s.store().remove_user("mod").unwrap();
        assert_eq!(call(&s, "GET", "/data/key/alice", Some(&t), "").0, 401);
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn audit_failure_fails_closed() {
        let s = service(Path::new("/dev/full"));
        let r = s.handle(Request {
            method: "POST".into(),
            path: "/auth".into(),
            authorization: None,
            body: Zeroizing::new(br#"{"username":"mod","password":"module-pw"}"#.to_vec()),
            remote: None,
        });
        assert_eq!(r.status, 500);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v.get("token").is_none());
        assert_eq!(v["message"], "audit log unavailable");
    }
}
