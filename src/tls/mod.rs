//! Glue for TLS: directives, the per-vhost rustls configs built at startup, the connection
//! filters and the hooks that tell httpd (and mod_rewrite, mod_headers, mod_http2, ...) that a
//! connection is TLS.

pub mod cache;
pub mod conf;
pub mod hooks;
pub mod io;

use crate::ServerConf;
use crate::httpd::log::{Level, log_startup};
use crate::httpd::{Pool, Server, Status, ssl, state, status};
use bastion_tls::{
    AlpnVariants, BuiltVhost, CertSource, DerivedTicketer, EngineAddr, MemoryBackend, SessionStore,
    TicketSecret, VhostSpec, certs,
};
use std::sync::Arc;

/// The rustls version this module was built with (from Cargo.lock, by build.rs).
pub const RUSTLS_VERSION: &str = env!("BASTION_RUSTLS_VERSION");

/// A TLS virtual host, ready to accept connections.
#[derive(Debug)]
pub struct Vhost {
    /// ServerName, for log lines.
    pub name: String,
    /// Prebuilt configs per settled ALPN protocol.
    pub alpn: AlpnVariants,
    /// The built configuration (suites, versions, resolver).
    pub built: BuiltVhost,
    /// Only a fallback certificate: every request gets 503 (until [`Vhost::activate`]).
    pub service_unavailable: std::sync::atomic::AtomicBool,
    /// `TLSStrictSNI`.
    pub strict_sni: bool,
}

impl Vhost {
    /// Serves `keys` from now on, on every new handshake of this child (a managed domain's
    /// certificate issued while the server runs): replaces the resolver's certificates and
    /// ends the fallback's 503s. Returns false if the host has no replaceable resolver.
    pub fn activate(&self, keys: Vec<bastion_tls::resolver::CertEntry>) -> bool {
        let Some(r) = &self.built.resolver else {
            return false;
        };
        r.replace(keys);
        self.service_unavailable
            .store(false, std::sync::atomic::Ordering::Release);
        true
    }

    /// Whether every request on this host gets 503 (only a fallback certificate).
    pub fn unavailable(&self) -> bool {
        self.service_unavailable
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Module-wide TLS state.
pub struct TlsGlobal {
    /// Every `TLSEngine` address.
    pub engines: Vec<EngineAddr>,
    /// The shared session cache, if one is in use.
    pub cache: Option<Arc<crate::httpd::socache::Socache>>,
}

impl TlsGlobal {
    /// Whether a connection to the local `ip:port` speaks TLS.
    pub fn covers(&self, ip: Option<std::net::IpAddr>, port: u16) -> bool {
        self.engines.iter().any(|e| e.matches(ip, port))
    }
}

/// The TLS runtime of a server, if it serves TLS.
pub fn vhost_of(s: &Server<'_>) -> Option<Arc<Vhost>> {
    s.config::<ServerConf>().tls.runtime.get().cloned()
}

/// The module-wide TLS state, if TLS is configured.
pub fn global() -> Option<Arc<TlsGlobal>> {
    Server::main()?
        .config::<ServerConf>()
        .tls
        .global
        .get()
        .cloned()
}

const SECRET_KEY: &std::ffi::CStr = c"bastion-tls-ticket-secret";
/// Bytes of the stored secret (what `TicketSecret::generate` makes; at least 32).
const SECRET_LEN: usize = 32;

/// The secret every child derives session-ticket keys from: made once by the parent and kept
/// in the process pool, so tickets stay valid across graceful restarts and children.
fn ticket_secret(s: &Server<'_>) -> Result<TicketSecret, String> {
    let pool = s.process_pool();
    if let Some(b) = pool.userdata_bytes(SECRET_KEY, SECRET_LEN) {
        return TicketSecret::from_bytes(&b).map_err(|e| e.to_string());
    }
    let secret = TicketSecret::generate().map_err(|e| e.to_string())?;
    let bytes = secret.as_bytes();
    if bytes.len() < SECRET_LEN {
        return Err(format!(
            "generated secret has {} bytes, expected {SECRET_LEN}",
            bytes.len()
        ));
    }
    // Store exactly what is read back, and derive from exactly that in this process too.
    let stored = &bytes[..SECRET_LEN];
    pool.set_userdata_bytes(SECRET_KEY, stored);
    TicketSecret::from_bytes(stored).map_err(|e| e.to_string())
}

fn fail(msg: String) -> Status {
    log_startup(Level::Emerg, &format!("mod_bastion: {msg}"));
    status::INTERNAL_SERVER_ERROR
}

fn serves_tls(s: &Server<'_>, engines: &[EngineAddr]) -> bool {
    if !s.is_virtual() {
        return true;
    }
    s.addrs().iter().any(|a| {
        engines.iter().any(|e| {
            if a.port == 0 {
                e.ip.is_none() || e.ip == a.ip
            } else {
                e.matches(a.ip, a.port) || (a.ip.is_none() && e.port == a.port)
            }
        })
    })
}

type Store = Option<Arc<dyn rustls::server::StoresServerSessions>>;

/// The session store `TLSSessionCache` asks for: a shared `ap_socache` (default shmcb when
/// mod_socache_shmcb is loaded), per-process memory otherwise, or none.
fn session_store(
    p: &Pool,
    ptemp: &Pool,
    main: &Server<'static>,
) -> Result<(Store, Option<Arc<crate::httpd::socache::Socache>>), String> {
    use crate::httpd::socache::Socache;
    let ttl = bastion_tls::session::DEFAULT_SESSION_TTL;
    use bastion_tls::SessionCacheSpec;
    let spec = main.config::<ServerConf>().tls.session_cache.clone();
    let spec = match spec {
        Some(SessionCacheSpec::None) => return Ok((None, None)),
        Some(SessionCacheSpec::Provider(v)) => v,
        _ if Socache::provider_exists("shmcb") => cache::DEFAULT_SPEC.to_string(),
        _ => {
            tracing::info!(
                "TLSSessionCache: mod_socache_shmcb is not loaded; TLS sessions are kept per child \
                 process (tickets still resume on every child)"
            );
            let mem = SessionStore::new(MemoryBackend::new(20_000), ttl);
            return Ok((Some(Arc::new(mem)), None));
        }
    };
    let opts = crate::httpd::socache::SocacheOptions {
        spec: &spec,
        cname: c"bastion-tls-sessions",
        mutex_type: cache::MUTEX_TYPE,
        avg_obj_size: 1024,
        expiry_secs: ttl.as_secs(),
    };
    let c = Socache::create(&opts, main, p, ptemp)
        .map_err(|e| format!("TLSSessionCache {spec}: {e}"))?;
    let c = Arc::new(c);
    tracing::debug!("TLS session cache: {spec}");
    let store = SessionStore::new(cache::SocacheBackend(c.clone()), ttl);
    Ok((Some(Arc::new(store)), Some(c)))
}

/// pre_config: the cache mutex type, so `Mutex bastion-tls-cache ...` can configure it.
pub fn pre_config(p: &Pool) -> Status {
    crate::httpd::socache::register_mutex(p, cache::MUTEX_TYPE);
    status::OK
}

/// child_init: attach this child to the session cache's mutex.
pub fn child_init(p: &Pool, _s: Server<'static>) {
    if let Some(g) = global()
        && let Some(c) = &g.cache
    {
        c.child_init(p);
    }
}

type ClientKey = (bastion_tls::client::ClientSpec, Vec<Vec<u8>>);

/// Backend client configs, built once per distinct settings and ALPN list (per process).
static CLIENT_CONFIGS: std::sync::Mutex<Vec<(ClientKey, Arc<rustls::ClientConfig>)>> =
    std::sync::Mutex::new(Vec::new());

/// The client config for `spec` and `alpn` (built on first use, then shared).
pub fn client_config(
    spec: &bastion_tls::client::ClientSpec,
    alpn: &[Vec<u8>],
) -> Result<Arc<rustls::ClientConfig>, bastion_tls::client::ClientConfigError> {
    let mut cache = CLIENT_CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = cache.iter().find(|((s, a), _)| s == spec && a == alpn) {
        return Ok(c.clone());
    }
    let c = bastion_tls::client::build_client(spec, alpn)?;
    cache.push(((spec.clone(), alpn.to_vec()), c.clone()));
    Ok(c)
}

/// The `CERTIFICATE` blocks of a PEM text (never its private key).
fn certificate_blocks(pem: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("-----END CERTIFICATE-----") {
            inside = false;
        }
    }
    out
}

/// post_config: builds one rustls config per TLS virtual host (second pass only).
pub fn post_config(p: &Pool, _ptemp: &Pool, main: Server<'static>) -> Status {
    if state::is_first_config_pass() {
        return status::OK;
    }
    let mut engines: Vec<EngineAddr> = Vec::new();
    for s in main.iter() {
        for e in &s.config::<ServerConf>().tls.engines {
            if !engines.contains(e) {
                engines.push(*e);
            }
        }
    }
    if engines.is_empty() {
        return status::OK;
    }
    tracing::info!(
        "{} (rustls/{}, aws-lc-rs) TLS on {}",
        crate::core::version_line(),
        RUSTLS_VERSION,
        engines
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let secret = match ticket_secret(&main) {
        Ok(s) => s,
        Err(e) => return fail(format!("TLS session ticket secret: {e}")),
    };
    let ticketer: Arc<dyn rustls::server::ProducesTickets> =
        match DerivedTicketer::new(&secret, bastion_tls::tickets::DEFAULT_PERIOD) {
            Ok(t) => Arc::new(t),
            Err(e) => return fail(format!("TLS session tickets: {e}")),
        };
    let (store, cache) = match session_store(p, _ptemp, &main) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let provider = bastion_tls::base_provider();

    let mut count = 0;
    for s in main.iter() {
        if !serves_tls(&s, &engines) {
            continue;
        }
        let conf = &s.config::<ServerConf>().tls;
        let name = s.hostname().unwrap_or("(no ServerName)").to_string();
        let mut files: Vec<(std::path::PathBuf, Option<std::path::PathBuf>)> = conf
            .certificates
            .iter()
            .map(|c| (c.cert.clone(), c.key.clone()))
            .collect();
        let mut service_unavailable = false;
        // Certificates other modules manage for this host (mod_md) come after its own.
        for (c, k) in ssl::add_cert_files(&s, p) {
            let f = (
                std::path::PathBuf::from(c),
                Some(std::path::PathBuf::from(k)),
            );
            if !files.contains(&f) {
                files.push(f);
            }
        }
        if files.is_empty() {
            files = ssl::add_fallback_cert_files(&s, p)
                .into_iter()
                .map(|(c, k)| (c.into(), Some(k.into())))
                .collect();
            service_unavailable = !files.is_empty();
        }
        if files.is_empty() {
            if !s.is_virtual() {
                continue; // the main server serves TLS only if it has a certificate
            }
            return fail(format!(
                "virtual host {name} (defined at {}) listens on a TLSEngine address but has no certificate: \
                 add `TLSCertificate cert.pem [key.pem]` to it or to the main server",
                s.defined_at()
            ));
        }
        let mut keys = Vec::new();
        let mut infos = Vec::new();
        for (cert, key) in &files {
            match certs::load_files(cert, key.as_deref(), &provider) {
                Ok(l) => {
                    keys.push(l.certified_key.clone());
                    infos.push(l.info.clone());
                }
                Err(e) => {
                    return fail(format!(
                        "virtual host {name} (defined at {}): {e}",
                        s.defined_at()
                    ));
                }
            }
        }
        let spec = VhostSpec {
            certificates: CertSource::Keys(keys),
            min_protocol: conf.protocol.unwrap_or_default(),
            prefer: conf.prefer.clone().unwrap_or_default(),
            suppress: conf.suppress.clone().unwrap_or_default(),
            honor_client_order: conf.honor_client_order.unwrap_or(true),
            alpn: Vec::new(),
            session_storage: store.clone(),
            ticketer: conf
                .session_tickets
                .unwrap_or(true)
                .then(|| ticketer.clone()),
        };
        let built = match bastion_tls::config::build_vhost(&spec) {
            Ok(b) => b,
            Err(e) => {
                return fail(format!(
                    "virtual host {name} (defined at {}): {e}",
                    s.defined_at()
                ));
            }
        };
        let _scope = crate::httpd::log::Scope::enter(s.log_target());
        for w in &built.warnings {
            tracing::warn!("virtual host {name}: {w}");
        }
        // OCSP: offer every certificate (without its key) to the stapling providers.
        let ocsp_ids = files.iter().map(|(cert, _)| {
            let pem = std::fs::read_to_string(cert).ok()?;
            let certs_only = certificate_blocks(&pem);
            let id = cert.to_string_lossy().into_owned().into_bytes();
            ssl::ocsp_prime(&s, p, &id, &certs_only).then(|| Arc::<[u8]>::from(id))
        });
        // Each key with its facts (SSL_SERVER_*) and stapling id, kept together.
        if let Some(r) = &built.resolver {
            let entries = r
                .entries()
                .into_iter()
                .zip(infos.iter().zip(ocsp_ids))
                .map(|(mut e, (info, id))| {
                    e.info = Some(info.clone());
                    e.ocsp_id = id;
                    e
                })
                .collect();
            r.replace(entries);
        }
        let vhost = Vhost {
            name: name.clone(),
            alpn: AlpnVariants::http(built.config.clone()),
            built,
            service_unavailable: service_unavailable.into(),
            strict_sni: conf.strict_sni.unwrap_or(true),
        };
        let _ = conf.runtime.set(Arc::new(vhost));
        count += 1;
    }
    let _ = main
        .config::<ServerConf>()
        .tls
        .global
        .set(Arc::new(TlsGlobal { engines, cache }));
    tracing::debug!("TLS ready for {count} server(s)");
    status::OK
}
