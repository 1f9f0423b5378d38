//! Challenge material: what the driver writes and what the glue answers with.
//!
//! - http-01: `challenges/<dns>/acme-http-01.txt` holds the key authorization; every
//!   child answers `/.well-known/acme-challenge/<token>` with it ([`http01_answer`]).
//! - tls-alpn-01: `challenges/<dns>/acme-tls-alpn-01.{cert,key}.pem`, a self-signed
//!   P-256 certificate valid 7 days with the critical acmeIdentifier extension
//!   (RFC 8737), served for ALPN `acme-tls/1` ([`tls_alpn01_answer`]).
//! - dns-01: an external command `cmd setup <domain> <txt>` / `cmd teardown <domain>`.

use std::process::Command;
use std::time::Duration;

use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use zeroize::Zeroizing;

use crate::store::{
    Group, HTTP01_FILE, Store, StoreError, TLS_ALPN01_CERT_FILE, TLS_ALPN01_KEY_FILE,
};

/// Errors while setting up a challenge.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key or certificate generation failed.
    #[error("generating the tls-alpn-01 certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// The dns-01 command failed.
    #[error("dns-01 command `{cmd}` {action} {domain}: {detail}")]
    Dns01 {
        /// The configured command.
        cmd: String,
        /// `setup` or `teardown`.
        action: &'static str,
        /// The domain.
        domain: String,
        /// Exit status or spawn error.
        detail: String,
    },
}

/// Writes the http-01 answer for `domain`.
pub fn setup_http01(store: &Store, domain: &str, key_authz: &str) -> Result<(), StoreError> {
    store.write(Group::Challenges, domain, HTTP01_FILE, key_authz.as_bytes())
}

/// The http-01 answer body for a request to `host` (no trailing newline), if any.
/// The token in the URL is not compared, as in mod_md.
pub fn http01_answer(store: &Store, host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    store
        .read(Group::Challenges, &host, HTTP01_FILE)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Builds a tls-alpn-01 certificate and key (PEM) for `domain` with `digest` =
/// SHA-256 of the key authorization.
pub fn tls_alpn01_cert(
    domain: &str,
    digest: &[u8],
) -> Result<(String, Zeroizing<String>), rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![domain.to_string()])?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, domain);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - Duration::from_secs(60);
    params.not_after = now + Duration::from_secs(7 * 86_400);
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

/// Writes the tls-alpn-01 certificate and key for `domain`.
pub fn setup_tls_alpn01(store: &Store, domain: &str, digest: &[u8]) -> Result<(), ChallengeError> {
    let (cert, key) = tls_alpn01_cert(domain, digest)?;
    store.save_key(Group::Challenges, domain, TLS_ALPN01_KEY_FILE, &key)?;
    store.write(
        Group::Challenges,
        domain,
        TLS_ALPN01_CERT_FILE,
        cert.as_bytes(),
    )?;
    Ok(())
}

/// The tls-alpn-01 certificate and key PEM for a TLS handshake with SNI `sni` that
/// offered only ALPN `acme-tls/1`, if a challenge is set up.
pub fn tls_alpn01_answer(store: &Store, sni: &str) -> Option<(String, Zeroizing<String>)> {
    let sni = sni.trim_end_matches('.').to_ascii_lowercase();
    let cert = store
        .read(Group::Challenges, &sni, TLS_ALPN01_CERT_FILE)
        .ok()??;
    let key = store
        .load_key(Group::Challenges, &sni, TLS_ALPN01_KEY_FILE)
        .ok()??;
    Some((String::from_utf8(cert).ok()?, key))
}

/// Runs the dns-01 command: `cmd [args] setup <domain> <txt>` or
/// `cmd [args] teardown <domain> [<txt> with version 2]`; it must exit 0.
pub fn run_dns01(
    cmd: &str,
    action: &'static str,
    domain: &str,
    txt: Option<&str>,
) -> Result<(), ChallengeError> {
    let mut parts = cmd.split_whitespace();
    let err = |detail: String| ChallengeError::Dns01 {
        cmd: cmd.to_string(),
        action,
        domain: domain.to_string(),
        detail,
    };
    let prog = parts.next().ok_or_else(|| err("empty command".into()))?;
    let mut c = Command::new(prog);
    c.args(parts).arg(action).arg(domain);
    if let Some(t) = txt {
        c.arg(t);
    }
    let status = c.status().map_err(|e| err(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(err(format!("exited with {status}")))
    }
}

/// Removes the challenge files of `domain`.
pub fn teardown_files(store: &Store, domain: &str) -> Result<(), StoreError> {
    store.purge(Group::Challenges, domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn tls_alpn_certificate() {
        let digest = [7u8; 32];
        let (cert, key) = tls_alpn01_cert("alpn.example", &digest).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let der = crate::cert::pem_chain(&cert).unwrap().remove(0);
        let (_, c) = X509Certificate::from_der(der.as_ref()).unwrap();
        let ext = c
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &digest);
        let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
        assert!((7 * 86_400..=7 * 86_400 + 60).contains(&life), "{life}");
        let info = crate::cert::info_der(&der).unwrap();
        assert_eq!(info.dns_names, vec!["alpn.example"]);
    }

    #[test]
    fn answers_from_store() {
        let base = std::env::temp_dir().join(format!("bastion-md-chal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let store = Store::open(&base).unwrap();
        assert!(http01_answer(&store, "h.example").is_none());
        setup_http01(&store, "h.example", "tok.thumb").unwrap();
        assert_eq!(
            http01_answer(&store, "H.example.").as_deref(),
            Some("tok.thumb")
        );
        setup_tls_alpn01(&store, "h.example", &[1u8; 32]).unwrap();
        let (c, k) = tls_alpn01_answer(&store, "h.example").unwrap();
        assert!(c.contains("CERTIFICATE") && k.contains("PRIVATE KEY"));
        teardown_files(&store, "h.example").unwrap();
        assert!(http01_answer(&store, "h.example").is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn dns01_command() {
        run_dns01("/bin/true", "setup", "d.example", Some("txt")).unwrap();
        let e = run_dns01("/bin/false", "teardown", "d.example", None).unwrap_err();
        assert!(e.to_string().contains("teardown d.example"), "{e}");
        assert!(run_dns01("/nonexistent/cmd", "setup", "d.example", None).is_err());
    }
}
