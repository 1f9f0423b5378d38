//! Client configs for backend connections (mod_proxy to `https://` backends).

use crate::ciphers::{self, CipherError};
use crate::protocol::MinProtocol;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use rustls::{CipherSuite, ClientConfig, RootCertStore};
use std::path::PathBuf;
use std::sync::Arc;

/// What makes a backend TLS configuration (`TLSProxy*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSpec {
    /// `TLSProxyCA`: the trust anchors backends are checked against (required).
    pub ca_file: Option<PathBuf>,
    /// `TLSProxyProtocol`.
    pub min_protocol: MinProtocol,
    /// `TLSProxyCiphersPrefer`.
    pub prefer: Vec<CipherSuite>,
    /// `TLSProxyCiphersSuppress`.
    pub suppress: Vec<CipherSuite>,
    /// `TLSProxyMachineCertificate cert [key]`: a client certificate for backends.
    pub machine_cert: Option<(PathBuf, Option<PathBuf>)>,
}

/// Errors building a backend config.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// No `TLSProxyCA`.
    #[error(
        "TLSProxyCA is required with TLSProxyEngine on: name the PEM file of the CA(s) that sign the backends' certificates"
    )]
    NoCa,
    /// The CA file is unreadable or has no certificate.
    #[error("TLSProxyCA {0}: {1}")]
    Ca(String, String),
    /// Cipher settings leave nothing.
    #[error(transparent)]
    Ciphers(#[from] CipherError),
    /// The machine certificate could not be loaded.
    #[error(transparent)]
    MachineCert(#[from] crate::certs::CertError),
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds a client config: the aws-lc-rs provider with the selected suites, the CA's roots,
/// an optional client certificate, and the given ALPN protocols.
pub fn build_client(
    spec: &ClientSpec,
    alpn: &[Vec<u8>],
) -> Result<Arc<ClientConfig>, ClientConfigError> {
    let ca = spec.ca_file.as_ref().ok_or(ClientConfigError::NoCa)?;
    let shown = ca.display().to_string();
    let mut roots = RootCertStore::empty();
    let iter = CertificateDer::pem_file_iter(ca)
        .map_err(|e| ClientConfigError::Ca(shown.clone(), e.to_string()))?;
    for c in iter {
        let c = c.map_err(|e| ClientConfigError::Ca(shown.clone(), e.to_string()))?;
        roots
            .add(c)
            .map_err(|e| ClientConfigError::Ca(shown.clone(), e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ClientConfigError::Ca(
            shown,
            "no certificate in the file".into(),
        ));
    }
    let base = crate::base_provider();
    let sel = ciphers::select_suites(
        &base.cipher_suites,
        spec.min_protocol,
        &spec.prefer,
        &spec.suppress,
    )?;
    let provider = Arc::new(crate::config::build_provider(sel.suites));
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&sel.versions)?
        .with_root_certificates(roots);
    let mut config = match &spec.machine_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let l = crate::certs::load_files(cert, key.as_deref(), &provider)?;
            builder.with_client_cert_resolver(Arc::new(MachineCert(l.certified_key)))
        }
    };
    config.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(config))
}

/// Offers the machine certificate when the backend asks for one it can be signed for.
#[derive(Debug)]
struct MachineCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for MachineCert {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_required_and_checked() {
        let e = build_client(&ClientSpec::default(), &[]).unwrap_err();
        assert!(e.to_string().starts_with("TLSProxyCA is required"));
        let spec = ClientSpec {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(
            build_client(&spec, &[])
                .unwrap_err()
                .to_string()
                .starts_with("TLSProxyCA /nonexistent/ca.pem:")
        );
    }
}
