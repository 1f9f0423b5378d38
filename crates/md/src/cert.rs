//! Facts about certificates the engine needs: validity, names, ARI identifier.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::renewal::Validity;

/// What the engine reads from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// notBefore/notAfter.
    pub validity: Validity,
    /// DNS names of the subjectAltName extension, lowercased.
    pub dns_names: Vec<String>,
    /// The serial number, hex.
    pub serial: String,
    /// The RFC 9773 certificate identifier `b64url(AKI).b64url(serial)`, if the
    /// certificate has an authority key identifier.
    pub ari_id: Option<String>,
}

impl CertInfo {
    /// True if the certificate's SANs cover every name (wildcards match one label).
    pub fn covers(&self, names: &[String]) -> bool {
        names.iter().all(|n| {
            let n = n.to_ascii_lowercase();
            self.dns_names.iter().any(|d| {
                d == &n
                    || d.strip_prefix("*.").is_some_and(|suffix| {
                        n.split_once('.')
                            .is_some_and(|(_, rest)| rest == suffix && !n.starts_with("*."))
                    })
            })
        })
    }
}

/// Errors reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// No certificate in the PEM text.
    #[error("no certificate found in PEM")]
    Empty,
    /// The PEM or DER could not be parsed.
    #[error("cannot parse certificate: {0}")]
    Parse(String),
}

/// Splits a PEM chain (leaf first) into DER certificates.
pub fn pem_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let v: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    if v.is_empty() {
        return Err(CertError::Empty);
    }
    Ok(v)
}

fn to_system(t: x509_parser::time::ASN1Time) -> SystemTime {
    let ts = t.timestamp();
    if ts >= 0 {
        UNIX_EPOCH + Duration::from_secs(ts as u64)
    } else {
        UNIX_EPOCH
    }
}

/// Reads the leaf (first) certificate of a PEM chain.
pub fn leaf_info(pem: &str) -> Result<CertInfo, CertError> {
    let chain = pem_chain(pem)?;
    info_der(&chain[0])
}

/// Reads one DER certificate.
pub fn info_der(der: &CertificateDer<'_>) -> Result<CertInfo, CertError> {
    let (_, c) =
        X509Certificate::from_der(der.as_ref()).map_err(|e| CertError::Parse(e.to_string()))?;
    let mut dns_names = Vec::new();
    for ext in c.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for n in &san.general_names {
                if let GeneralName::DNSName(d) = n {
                    dns_names.push(d.to_ascii_lowercase());
                }
            }
        }
    }
    let ari_id = instant_acme::CertificateIdentifier::try_from(&CertificateDer::from(der.as_ref()))
        .ok()
        .map(|id| id.to_string());
    Ok(CertInfo {
        validity: Validity {
            not_before: to_system(c.validity().not_before),
            not_after: to_system(c.validity().not_after),
        },
        dns_names,
        serial: c.raw_serial_as_string().replace(':', ""),
        ari_id,
    })
}

/// A self-signed certificate and key (PEM) for `domains`, valid for 7 days: what a
/// managed domain is served with before its first certificate exists (every request then
/// gets 503, as with mod_md). The key is P-256.
pub fn fallback_cert(
    domains: &[String],
) -> Result<(String, zeroize::Zeroizing<String>), rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(domains.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Temporary Certificate (no certificate issued yet)",
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - std::time::Duration::from_secs(60);
    params.not_after = now + std::time::Duration::from_secs(7 * 86_400);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), zeroize::Zeroizing::new(key.serialize_pem())))
}
