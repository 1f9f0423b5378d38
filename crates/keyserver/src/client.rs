//! A small HTTPS JSON client (rustls + hyper), used by a data-only key
//! server to ask its master key server for wrapped data keys, and by tests.
//!
//! One TCP and TLS connection per request: key servers see few calls.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bastion_seal::keys::{KeyId, WRAPPED_KEY_LEN};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use crate::util::unix_now_millis;

/// Errors from the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `https://host[:port]`.
    #[error("bad URL {0:?}: expected https://host[:port]")]
    Url(String),
    /// TLS setup failed (CA file, server name).
    #[error("TLS: {0}")]
    Tls(String),
    /// Connecting or talking to the server failed.
    #[error("{0}")]
    Io(String),
    /// The server answered with an unexpected status or body.
    #[error("server answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The `message` of the error body, or a summary.
        message: String,
    },
}

/// HTTPS to one server.
#[derive(Clone)]
pub struct HttpsClient {
    connector: TlsConnector,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

/// A client TLS configuration trusting the certificates of a PEM file,
/// with the aws-lc-rs provider.
pub fn client_tls_config(ca_file: &Path) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| ClientError::Tls(format!("{}: {e}", ca_file.display())))?;
    for c in certs {
        let c = c.map_err(|e| ClientError::Tls(format!("{}: {e}", ca_file.display())))?;
        roots
            .add(c)
            .map_err(|e| ClientError::Tls(format!("{}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(ClientError::Tls(format!(
            "{}: no certificates",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl HttpsClient {
    /// A client for `url` (`https://host[:port]`, default port 443).
    /// `server_name` overrides the name checked in the certificate.
    pub fn new(
        url: &str,
        tls: Arc<ClientConfig>,
        server_name: Option<&str>,
    ) -> Result<HttpsClient, ClientError> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| ClientError::Url(url.into()))?
            .trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(ClientError::Url(url.into()));
        }
        let bad = || ClientError::Url(url.into());
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => 443,
                p => p
                    .strip_prefix(':')
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?,
            };
            (h.to_string(), port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (rest.to_string(), 443),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        let name = server_name.unwrap_or(&host).to_string();
        let server_name =
            ServerName::try_from(name).map_err(|e| ClientError::Url(format!("{url}: {e}")))?;
        Ok(HttpsClient {
            connector: TlsConnector::from(tls),
            host,
            port,
            server_name,
            timeout: Duration::from_secs(10),
        })
    }

    /// Sends one request and returns the status and body. `token` goes in
    /// `Authorization: Token <token>`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        tokio::time::timeout(self.timeout, self.request_inner(method, path, token, body))
            .await
            .map_err(|_| ClientError::Io(format!("{}:{}: timed out", self.host, self.port)))?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        let io = |e: &dyn std::fmt::Display| {
            ClientError::Io(format!("{}:{}: {e}", self.host, self.port))
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| io(&e))?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| io(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| io(&e))?;
        let driver = tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Token {t}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| io(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| io(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| io(&e))?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }
}

fn status_error(status: u16, body: &[u8]) -> ClientError {
    #[derive(Deserialize)]
    struct E {
        message: String,
    }
    let message = serde_json::from_slice::<E>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| "unexpected response".into());
    ClientError::Status { status, message }
}

/// An authenticated session with a master key server, for `POST /master/wrap`.
pub struct MasterClient {
    http: HttpsClient,
    username: String,
    password: Zeroizing<String>,
    token: Mutex<Option<(String, u64)>>,
}

impl std::fmt::Debug for MasterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterClient")
            .field("http", &self.http)
            .field("username", &self.username)
            .finish()
    }
}

/// A wrapped data key as generated by a master key server.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    /// The master key that wraps it.
    pub master_key_id: u32,
    /// The 48-byte wrapped key.
    pub wrapped: Vec<u8>,
}

impl MasterClient {
    /// A client that authenticates as `username`.
    pub fn new(http: HttpsClient, username: String, password: Zeroizing<String>) -> Self {
        MasterClient {
            http,
            username,
            password,
            token: Mutex::new(None),
        }
    }

    async fn login(&self) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Auth {
            token: String,
            expires_in: u64,
        }
        let body = Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({
                "username": self.username,
                "password": &*self.password,
            }))
            .expect("JSON of two strings"),
        );
        let (status, resp) = self
            .http
            .request("POST", "/auth", None, Some(body.to_vec()))
            .await?;
        if status != 200 {
            return Err(status_error(status, &resp));
        }
        let a: Auth = serde_json::from_slice(&resp)
            .map_err(|e| ClientError::Io(format!("bad /auth response: {e}")))?;
        // Renew a little before expiry.
        let until = unix_now_millis() + a.expires_in.saturating_sub(30).max(1) * 1000;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some((a.token.clone(), until));
        Ok(a.token)
    }

    async fn token(&self) -> Result<String, ClientError> {
        let cached = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match cached {
            Some((t, until)) if until > unix_now_millis() => Ok(t),
            _ => self.login().await,
        }
    }

    /// Asks the master server to generate a data key for `id` and return it
    /// wrapped under its current master key. Re-authenticates once on 401.
    pub async fn wrap(&self, id: &KeyId) -> Result<WrappedKey, ClientError> {
        #[derive(Deserialize)]
        struct Wrapped {
            master_key_id: u32,
            key_encrypted_base64: String,
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "client": id.client(),
            "version": id.version(),
        }))
        .expect("JSON");
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let (status, resp) = self
                .http
                .request("POST", "/master/wrap", Some(&token), Some(body.clone()))
                .await?;
            if status == 401 && !retried {
                retried = true;
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
                continue;
            }
            if status != 200 {
                return Err(status_error(status, &resp));
            }
            let w: Wrapped = serde_json::from_slice(&resp)
                .map_err(|e| ClientError::Io(format!("bad /master/wrap response: {e}")))?;
            let wrapped = base64::engine::general_purpose::STANDARD
                .decode(w.key_encrypted_base64)
                .map_err(|e| ClientError::Io(format!("bad /master/wrap response: {e}")))?;
            if wrapped.len() != WRAPPED_KEY_LEN {
                return Err(ClientError::Io("wrapped key has the wrong length".into()));
            }
            return Ok(WrappedKey {
                master_key_id: w.master_key_id,
                wrapped,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    }

    #[test]
    fn urls() {
        let c = HttpsClient::new("https://example.org:8443", tls(), None).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("example.org", 8443));
        let c = HttpsClient::new("https://example.org/", tls(), None).unwrap();
        assert_eq!(c.port, 443);
        let c = HttpsClient::new("https://127.0.0.1:9", tls(), Some("master.test")).unwrap();
        assert_eq!(c.host, "127.0.0.1");
        assert!(matches!(c.server_name, ServerName::DnsName(_)));
        let c = HttpsClient::new("https://[::1]:8443", tls(), None).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 8443));
        assert!(HttpsClient::new("http://example.org", tls(), None).is_err());
        assert!(HttpsClient::new("https://example.org/x", tls(), None).is_err());
        assert!(HttpsClient::new("https://example.org:x", tls(), None).is_err());
    }
}
