//! The HTTPS server: rustls (aws-lc-rs provider) via tokio-rustls, HTTP/1.1
//! via hyper. There is no plain-HTTP listener: a client that does not speak
//! TLS fails the handshake and is disconnected.
//!
//! Each request is handed to [`Service::handle`] on a blocking thread (it
//! does SQLite and Argon2 work); at most [`MAX_BLOCKING`] run at once, which
//! bounds the memory that concurrent Argon2 checks can take.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

use crate::api::{self, Request, Service};
use crate::audit::AuditLog;
use crate::client::{HttpsClient, MasterClient, client_tls_config};
use crate::config::{Config, Role, read_secret};
use crate::store::Store;

/// Most requests handled at once (each may run an Argon2 check).
pub const MAX_BLOCKING: usize = 8;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors from starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Certificate or key could not be loaded, or rustls refused them.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else during start-up.
    #[error("{0}")]
    Setup(String),
}

/// Builds the rustls server configuration from PEM files, with the
/// aws-lc-rs provider, TLS 1.2 and 1.3, and ALPN `http/1.1`.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ServerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Builds the [`Service`] a configuration describes: opens the store with
/// the master password, opens the audit log and, for `role = "data"`,
/// prepares the client for the master key server on `runtime`.
pub fn build_service(
    cfg: &Config,
    runtime: tokio::runtime::Handle,
) -> Result<Service, ServerError> {
    let password = cfg
        .master_password()
        .map_err(|e| ServerError::Setup(e.to_string()))?;
    let store = Store::open(&cfg.database, password.as_bytes())
        .map_err(|e| ServerError::Setup(format!("{}: {e}", cfg.database.display())))?;
    drop(password);
    if cfg.role.serves_master()
        && store
            .current_master_key()
            .map_err(|e| ServerError::Setup(e.to_string()))?
            .is_none()
    {
        return Err(ServerError::Setup(format!(
            "role {} but the store has no master key: run `bastion-keyserver rotate master`",
            cfg.role
        )));
    }
    let audit = AuditLog::open(&cfg.audit_log)
        .map_err(|e| ServerError::Setup(format!("audit log {}: {e}", cfg.audit_log.display())))?;
    let upstream = match (&cfg.role, &cfg.upstream_master) {
        (Role::Data, Some(u)) => {
            let tls =
                client_tls_config(&u.ca_file).map_err(|e| ServerError::Setup(e.to_string()))?;
            let http = HttpsClient::new(&u.url, tls, u.server_name.as_deref())
                .map_err(|e| ServerError::Setup(e.to_string()))?;
            let pw = read_secret(
                "upstream_master password",
                u.password_file.as_deref(),
                u.password_env.as_deref(),
            )
            .map_err(|e| ServerError::Setup(e.to_string()))?;
            api::Upstream::Remote(MasterClient::new(http, u.username.clone(), pw), runtime)
        }
        _ => api::Upstream::Local,
    };
    Service::new(
        cfg.role,
        store,
        audit,
        upstream,
        cfg.token_lifetime,
        cfg.refresh_interval,
        &cfg.argon2.password(),
    )
    .map_err(|e| ServerError::Setup(e.to_string()))
}

/// Binds the configured address.
pub async fn bind(cfg: &Config) -> Result<TcpListener, ServerError> {
    TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: cfg.listen,
            source,
        })
}

/// Serves HTTPS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    service: Arc<Service>,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(max_connections));
    let blocking = Arc::new(Semaphore::new(MAX_BLOCKING));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; dropping {peer}");
            continue;
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        let blocking = blocking.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake with {peer} timed out");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req| {
                handle(req, service.clone(), blocking.clone(), peer)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(tls), svc);
            if let Err(e) = conn.await {
                tracing::debug!("connection with {peer}: {e}");
            }
        });
    }
}

fn reply(status: u16, body: Zeroizing<Vec<u8>>, www_auth: bool) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from_owner(body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if www_auth {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    resp
}

fn error(status: u16, code: &str, message: &str) -> hyper::Response<Full<Bytes>> {
    let body = serde_json::to_vec(&serde_json::json!({"error": code, "message": message}))
        .unwrap_or_default();
    reply(status, Zeroizing::new(body), false)
}

async fn handle(
    req: hyper::Request<Incoming>,
    service: Arc<Service>,
    blocking: Arc<Semaphore>,
    peer: SocketAddr,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = match Limited::new(req.into_body(), api::MAX_BODY).collect().await {
        Ok(b) => Zeroizing::new(b.to_bytes().to_vec()),
        Err(_) => {
            return Ok(error(
                413,
                "too_large",
                "request body too large or unreadable",
            ));
        }
    };
    let Ok(_permit) = blocking.acquire_owned().await else {
        return Ok(error(503, "unavailable", "shutting down"));
    };
    let request = Request {
        method,
        path,
        authorization,
        body,
        remote: Some(peer),
    };
    match tokio::task::spawn_blocking(move || service.handle(request)).await {
        Ok(r) => Ok(reply(r.status, r.body, r.www_authenticate)),
        Err(e) => {
            tracing::error!("handler failed: {e}");
            Ok(error(500, "internal", "internal error"))
        }
    }
}

/// `bastion-keyserver serve`: loads everything, prints `listening on ADDR`
/// on standard output, and serves until SIGINT or SIGTERM.
pub async fn run(cfg: Config) -> Result<(), ServerError> {
    let tls = tls_config(&cfg.tls.certificate, &cfg.tls.key)?;
    let handle = tokio::runtime::Handle::current();
    let cfg2 = cfg.clone();
    let service = tokio::task::spawn_blocking(move || build_service(&cfg2, handle))
        .await
        .map_err(|e| ServerError::Setup(e.to_string()))??;
    let listener = bind(&cfg).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Setup(e.to_string()))?;
    tracing::info!(
        "bastion-keyserver ({} role) listening on https://{addr}",
        cfg.role
    );
    println!("listening on {addr}");
    serve(
        listener,
        tls,
        Arc::new(service),
        cfg.max_connections,
        shutdown_signal(),
    )
    .await;
    tracing::info!("bastion-keyserver stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
