//! Certificates and private keys: loading PEM files (`TLSCertificate cert [key]`) or
//! in-memory PEM, building rustls [`CertifiedKey`]s, and the leaf certificate facts
//! that the `SSL_SERVER_*` variables show.
//!
//! Keys may be PKCS#8, SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`); RSA,
//! ECDSA P-256/P-384 and Ed25519 are accepted (whatever the aws-lc-rs key provider
//! loads). Encrypted keys are rejected. Key bytes are read into zeroizing buffers.
//!
//! Distinguished names are formatted as mod_ssl does by default (OpenSSL's
//! `XN_FLAG_RFC2253` without `ASN1_STRFLGS_ESC_MSB`): RDNs in reverse certificate
//! order (most specific first), separated by `,`, multi-valued RDNs joined by `+`,
//! OpenSSL short attribute names, RFC 2253 escaping, UTF-8 left unescaped; e.g.
//! `CN=a.example,O=Org,C=DE`.

use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use zeroize::Zeroizing;

use crate::encoding;

/// The largest PEM file accepted (certificate chains, keys): 1 MiB.
pub const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Errors from loading certificates and keys. Each names the file (or the in-memory
/// source) it is about.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The file could not be read.
    #[error("{origin}: cannot read: {error}")]
    Io {
        /// The file.
        origin: String,
        /// The cause.
        #[source]
        error: std::io::Error,
    },
    /// The file is larger than [`MAX_PEM_FILE`].
    #[error("{origin}: larger than {MAX_PEM_FILE} bytes")]
    TooLarge {
        /// The file.
        origin: String,
    },
    /// The PEM syntax is broken.
    #[error("{origin}: invalid PEM: {detail}")]
    Pem {
        /// The file.
        origin: String,
        /// What is wrong.
        detail: String,
    },
    /// No `CERTIFICATE` section.
    #[error("{origin}: no certificate found")]
    NoCertificate {
        /// The file.
        origin: String,
    },
    /// No private key section.
    #[error(
        "{origin}: no private key found (expected PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
    )]
    NoKey {
        /// The file.
        origin: String,
    },
    /// The private key is encrypted.
    #[error(
        "{origin}: the private key is encrypted, which is not supported; store it unencrypted with restricted file permissions"
    )]
    EncryptedKey {
        /// The file.
        origin: String,
    },
    /// The key provider rejected the key (unknown algorithm, unsupported curve, ...).
    #[error("{origin}: unsupported private key: {detail}")]
    UnsupportedKey {
        /// The file.
        origin: String,
        /// What rustls said.
        detail: String,
    },
    /// The private key does not belong to the leaf certificate.
    #[error("{cert}: the private key from {key} does not match the certificate")]
    KeyMismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
    /// The leaf certificate cannot be parsed.
    #[error("{origin}: invalid certificate: {detail}")]
    BadCertificate {
        /// The file.
        origin: String,
        /// What is wrong.
        detail: String,
    },
}

/// A loaded certificate: the rustls key to serve and the facts about its leaf.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// Chain and signing key, ready for a resolver.
    pub certified_key: Arc<CertifiedKey>,
    /// Facts about the leaf certificate.
    pub info: Arc<CertInfo>,
    /// Where the certificate came from (a path, or the name given for memory PEM).
    /// mod_tls uses this as the key's id, also for OCSP.
    pub origin: String,
}

/// Load a certificate chain and its key from PEM files. With `key_file` `None`, the
/// key is read from `cert_file`.
pub fn load_files(
    cert_file: &Path,
    key_file: Option<&Path>,
    provider: &CryptoProvider,
) -> Result<LoadedCert, CertError> {
    let cert_origin = cert_file.display().to_string();
    let cert_bytes = read_limited(cert_file)?;
    match key_file {
        Some(kf) if kf != cert_file => {
            let key_origin = kf.display().to_string();
            let key_bytes = read_limited(kf)?;
            build(&cert_bytes, &cert_origin, &key_bytes, &key_origin, provider)
        }
        _ => build(
            &cert_bytes,
            &cert_origin,
            &cert_bytes,
            &cert_origin,
            provider,
        ),
    }
}

/// Load a certificate chain and key from PEM text in memory (e.g. a tls-alpn-01
/// challenge certificate handed over by another module). With `key_pem` `None`, the
/// key is looked for in `cert_pem`. `origin` names the source in errors.
pub fn load_pem(
    cert_pem: &[u8],
    key_pem: Option<&[u8]>,
    origin: &str,
    provider: &CryptoProvider,
) -> Result<LoadedCert, CertError> {
    build(
        cert_pem,
        origin,
        key_pem.unwrap_or(cert_pem),
        origin,
        provider,
    )
}

fn read_limited(path: &Path) -> Result<Zeroizing<Vec<u8>>, CertError> {
    let origin = || path.display().to_string();
    let file = std::fs::File::open(path).map_err(|error| CertError::Io {
        origin: origin(),
        error,
    })?;
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|error| CertError::Io {
            origin: origin(),
            error,
        })?;
    if buf.len() as u64 > MAX_PEM_FILE {
        return Err(CertError::TooLarge { origin: origin() });
    }
    Ok(buf)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn is_encrypted(pem: &[u8]) -> bool {
    contains(pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(pem, b"Proc-Type: 4,ENCRYPTED")
}

fn parse_chain(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem {
            origin: origin.to_string(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            origin: origin.to_string(),
        });
    }
    Ok(chain)
}

fn parse_key(pem: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    if is_encrypted(pem) {
        return Err(CertError::EncryptedKey {
            origin: origin.to_string(),
        });
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => CertError::NoKey {
            origin: origin.to_string(),
        },
        other => CertError::Pem {
            origin: origin.to_string(),
            detail: other.to_string(),
        },
    })
}

fn build(
    cert_pem: &[u8],
    cert_origin: &str,
    key_pem: &[u8],
    key_origin: &str,
    provider: &CryptoProvider,
) -> Result<LoadedCert, CertError> {
    // Check the key first: an encrypted legacy key also breaks certificate parsing
    // when both share a file, and the key error is the useful one.
    let key = parse_key(key_pem, key_origin)?;
    let chain = parse_chain(cert_pem, cert_origin)?;
    let info = CertInfo::from_der(&chain[0]).map_err(|detail| CertError::BadCertificate {
        origin: cert_origin.to_string(),
        detail,
    })?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertError::UnsupportedKey {
                origin: key_origin.to_string(),
                detail: e.to_string(),
            })?;
    let ck = CertifiedKey::new(chain, signing_key);
    match ck.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            tracing::debug!(
                cert = cert_origin,
                "cannot verify that key and certificate match"
            );
        }
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(CertError::KeyMismatch {
                cert: cert_origin.to_string(),
                key: key_origin.to_string(),
            });
        }
        // webpki refuses to parse some valid certificates as end-entity certificates, e.g. a
        // tls-alpn-01 challenge certificate with its critical acmeIdentifier extension
        // (RFC 8737). Compare the public keys directly then.
        Err(e) => {
            let spki_matches = ck.key.public_key().is_some_and(|spki| {
                x509_parser::parse_x509_certificate(ck.cert[0].as_ref())
                    .is_ok_and(|(_, c)| c.tbs_certificate.subject_pki.raw == spki.as_ref())
            });
            if !spki_matches {
                return Err(CertError::BadCertificate {
                    origin: cert_origin.to_string(),
                    detail: e.to_string(),
                });
            }
        }
    }
    tracing::debug!(
        cert = cert_origin,
        subject = %info.subject.to_rfc2253(),
        not_after = %info.not_after,
        "loaded certificate"
    );
    Ok(LoadedCert {
        certified_key: Arc::new(ck),
        info: Arc::new(info),
        origin: cert_origin.to_string(),
    })
}

/// The public key algorithm of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyType {
    /// RSA.
    Rsa,
    /// ECDSA on the named curve (`P-256`, `P-384`, `P-521`, or a dotted OID).
    Ec(String),
    /// Ed25519.
    Ed25519,
    /// Anything else, as the OpenSSL name or dotted OID of the algorithm.
    Other(String),
}

/// A distinguished name, as a list of RDNs in certificate order, each a list of
/// `(short attribute name, value)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DistinguishedName {
    /// The RDNs in the order they appear in the certificate (usually `C` first).
    pub rdns: Vec<Vec<(String, String)>>,
}

impl DistinguishedName {
    /// The RFC 2253 form mod_ssl shows in `SSL_*_S_DN` / `SSL_*_I_DN`.
    pub fn to_rfc2253(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, (k, v)) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                out.push_str(k);
                out.push('=');
                escape_2253(v, &mut out);
            }
        }
        out
    }

    /// The values of an attribute (by short name, case-insensitive), in certificate
    /// order.
    pub fn values<'a>(&'a self, attr: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.rdns
            .iter()
            .flatten()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(attr))
            .map(|(_, v)| v.as_str())
    }
}

fn escape_2253(v: &str, out: &mut String) {
    let n = v.chars().count();
    for (i, ch) in v.chars().enumerate() {
        match ch {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Facts about a leaf certificate, in the formats mod_ssl uses for its variables.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject DN.
    pub subject: DistinguishedName,
    /// Issuer DN.
    pub issuer: DistinguishedName,
    /// Serial number, uppercase hex, two digits per byte, no leading zero bytes
    /// (as OpenSSL's `i2a_ASN1_INTEGER`).
    pub serial_hex: String,
    /// X.509 version as mod_ssl shows it (`3` for v3).
    pub version: u32,
    /// notBefore as `Mmm dd hh:mm:ss yyyy GMT`.
    pub not_before: String,
    /// notAfter as `Mmm dd hh:mm:ss yyyy GMT`.
    pub not_after: String,
    /// notBefore, seconds since the Unix epoch.
    pub not_before_unix: i64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// The DNS names of the subjectAltName extension, in order.
    pub dns_names: Vec<String>,
    /// The public key type.
    pub key_type: KeyType,
    /// The public key size in bits (Ed25519: 256).
    pub key_bits: u32,
    /// The public key algorithm as OpenSSL names it (`rsaEncryption`,
    /// `id-ecPublicKey`, `ED25519`), for `SSL_SERVER_A_KEY`.
    pub key_algorithm: String,
    /// The signature algorithm as OpenSSL names it (`sha256WithRSAEncryption`,
    /// `ecdsa-with-SHA256`, ...), for `SSL_SERVER_A_SIG`.
    pub signature_algorithm: String,
    /// The leaf certificate in PEM.
    pub pem: String,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Format a Unix time as OpenSSL's `ASN1_TIME_print` does: `Nov  3 10:49:37 2026 GMT`.
pub fn format_openssl_time(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{} {:2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

fn attr_short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        _ => return None,
    })
}

fn algorithm_name(oid: &str) -> &'static str {
    match oid {
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.10045.2.1" => "id-ecPublicKey",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        _ => "UNKNOWN",
    }
}

fn attr_value(attr: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    if let Ok(s) = attr.as_str() {
        return s.to_string();
    }
    let raw = attr.as_slice();
    // BMPString (tag 30) is UTF-16BE; anything else: lossy UTF-8.
    if attr.attr_value().tag().0 == 30 && raw.len().is_multiple_of(2) {
        let units: Vec<u16> = raw
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    String::from_utf8_lossy(raw).into_owned()
}

fn dn(name: &x509_parser::x509::X509Name<'_>) -> DistinguishedName {
    DistinguishedName {
        rdns: name
            .iter_rdn()
            .map(|rdn| {
                rdn.iter()
                    .map(|a| {
                        let oid = a.attr_type().to_id_string();
                        let key = attr_short_name(&oid).map(str::to_string).unwrap_or(oid);
                        (key, attr_value(a))
                    })
                    .collect()
            })
            .collect(),
    }
}

fn rsa_bits(modulus: &[u8]) -> u32 {
    let m: &[u8] = {
        let start = modulus
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(modulus.len());
        &modulus[start..]
    };
    match m.first() {
        Some(first) => (m.len() as u32) * 8 - first.leading_zeros(),
        None => 0,
    }
}

impl CertInfo {
    /// Parse the facts from a DER certificate. The error is a description.
    pub fn from_der(der: &CertificateDer<'_>) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
        let serial = cert.raw_serial();
        let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
        let serial_hex = if start == serial.len() {
            "00".to_string()
        } else {
            encoding::hex_upper(&serial[start..])
        };
        let validity = cert.validity();
        let not_before_unix = validity.not_before.timestamp();
        let not_after_unix = validity.not_after.timestamp();

        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for gn in &san.value.general_names {
                if let GeneralName::DNSName(n) = gn {
                    dns_names.push((*n).to_string());
                }
            }
        }

        let spki = cert.public_key();
        let key_oid = spki.algorithm.algorithm.to_id_string();
        let key_algorithm = algorithm_name(&key_oid).to_string();
        let (key_type, key_bits) = match key_oid.as_str() {
            "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => {
                let bits = match spki.parsed() {
                    Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => rsa_bits(rsa.modulus),
                    _ => 0,
                };
                (KeyType::Rsa, bits)
            }
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => (KeyType::Ec("P-256".into()), 256),
                    "1.3.132.0.34" => (KeyType::Ec("P-384".into()), 384),
                    "1.3.132.0.35" => (KeyType::Ec("P-521".into()), 521),
                    _ => {
                        let bits = spki.parsed().map(|k| k.key_size() as u32).unwrap_or(0);
                        (KeyType::Ec(curve), bits)
                    }
                }
            }
            "1.3.101.112" => (KeyType::Ed25519, 256),
            _ => (
                KeyType::Other(if key_algorithm == "UNKNOWN" {
                    key_oid.clone()
                } else {
                    key_algorithm.clone()
                }),
                spki.parsed().map(|k| k.key_size() as u32).unwrap_or(0),
            ),
        };
        let sig_oid = cert.signature_algorithm.algorithm.to_id_string();

        Ok(Self {
            subject: dn(cert.subject()),
            issuer: dn(cert.issuer()),
            serial_hex,
            version: cert.version().0 + 1,
            not_before: format_openssl_time(not_before_unix),
            not_after: format_openssl_time(not_after_unix),
            not_before_unix,
            not_after_unix,
            dns_names,
            key_type,
            key_bits,
            key_algorithm,
            signature_algorithm: algorithm_name(&sig_oid).to_string(),
            pem: encoding::pem("CERTIFICATE", der.as_ref()),
        })
    }

    /// The first subject CN, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.subject.values("CN").next()
    }

    /// The names this certificate is for: the SAN DNS names, or, without any, the
    /// subject CN (legacy certificates).
    pub fn names(&self) -> Vec<&str> {
        if self.dns_names.is_empty() {
            self.common_name().into_iter().collect()
        } else {
            self.dns_names.iter().map(String::as_str).collect()
        }
    }

    /// Whether this certificate covers `host` (exact or RFC 6125 left-most-label
    /// wildcard, case-insensitive).
    pub fn covers(&self, host: &str) -> bool {
        self.names()
            .iter()
            .any(|n| crate::sni::cert_name_matches(n, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn time_format() {
        // 2026-11-23 10:49:37 UTC
        assert_eq!(
            format_openssl_time(1_795_430_977),
            "Nov 23 10:49:37 2026 GMT"
        );
        assert_eq!(format_openssl_time(0), "Jan  1 00:00:00 1970 GMT");
        // 2000-02-29 23:59:59
        assert_eq!(format_openssl_time(951_868_799), "Feb 29 23:59:59 2000 GMT");
        assert_eq!(
            format_openssl_time(4_102_444_800),
            "Jan  1 00:00:00 2100 GMT"
        );
    }

    #[test]
    fn dn_escaping_and_order() {
        let d = DistinguishedName {
            rdns: vec![
                vec![("C".into(), "DE".into())],
                vec![("O".into(), "Acme, Inc.".into())],
                vec![("CN".into(), " a+b ".into()), ("UID".into(), "#1".into())],
            ],
        };
        assert_eq!(
            d.to_rfc2253(),
            "CN=\\ a\\+b\\ +UID=\\#1,O=Acme\\, Inc.,C=DE"
        );
        assert_eq!(d.values("o").collect::<Vec<_>>(), vec!["Acme, Inc."]);
    }

    #[test]
    fn loads_each_key_kind_from_files() {
        let dir = TempDir::new("certs");
        let p = crate::base_provider();
        for kind in [Kind::EcP256, Kind::EcP384, Kind::Ed25519, Kind::Rsa] {
            let g = leaf(kind, &["a.example", "*.b.example"]);
            let cert = dir.write(&format!("{kind:?}.crt"), &g.cert_pem);
            let key = dir.write(&format!("{kind:?}.key"), &g.key_pem);
            let l = load_files(&cert, Some(&key), &p).unwrap();
            assert_eq!(l.certified_key.cert.len(), 2, "leaf + CA");
            assert_eq!(l.info.dns_names, vec!["a.example", "*.b.example"]);
            assert!(l.info.covers("x.b.example"));
            assert!(!l.info.covers("b.example"));
            assert_eq!(l.info.subject.to_rfc2253(), "CN=a.example,O=Bastion Test");
            assert_eq!(
                l.info.issuer.to_rfc2253(),
                "CN=Bastion Test CA,O=Bastion Test"
            );
            assert_eq!(l.info.version, 3);
            assert!(l.info.pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
            assert!(l.info.not_after.ends_with(" GMT"));
            match kind {
                Kind::EcP256 => {
                    assert_eq!(l.info.key_type, KeyType::Ec("P-256".into()));
                    assert_eq!(l.info.key_bits, 256);
                    assert_eq!(l.info.key_algorithm, "id-ecPublicKey");
                }
                Kind::EcP384 => assert_eq!(l.info.key_bits, 384),
                Kind::Ed25519 => assert_eq!(l.info.key_type, KeyType::Ed25519),
                Kind::Rsa => {
                    assert_eq!(l.info.key_type, KeyType::Rsa);
                    assert_eq!(l.info.key_bits, 2048);
                    assert_eq!(l.info.key_algorithm, "rsaEncryption");
                }
            }
            // The CA signs with ECDSA P-256 + SHA-256.
            assert_eq!(l.info.signature_algorithm, "ecdsa-with-SHA256");
            // Key in the same file.
            let both = dir.write(
                &format!("{kind:?}.pem"),
                &format!("{}{}", g.cert_pem, g.key_pem),
            );
            load_files(&both, None, &p).unwrap();
        }
    }

    #[test]
    fn pkcs1_and_sec1_keys() {
        let p = crate::base_provider();
        let g = leaf(Kind::EcP256, &["a.example"]);
        let sec1 = to_sec1_pem(&g);
        load_pem(g.cert_pem.as_bytes(), Some(sec1.as_bytes()), "mem", &p).unwrap();
        let g = leaf(Kind::Rsa, &["a.example"]);
        let pkcs1 = to_pkcs1_pem(&g);
        load_pem(g.cert_pem.as_bytes(), Some(pkcs1.as_bytes()), "mem", &p).unwrap();
    }

    #[test]
    fn errors_name_the_file() {
        let dir = TempDir::new("certerr");
        let p = crate::base_provider();
        let a = leaf(Kind::EcP256, &["a.example"]);
        let b = leaf(Kind::EcP384, &["b.example"]); // test keys are cached per kind
        let cert = dir.write("a.crt", &a.cert_pem);
        let wrong = dir.write("b.key", &b.key_pem);
        let e = load_files(&cert, Some(&wrong), &p).unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("a.crt") && e.to_string().contains("b.key"));

        let missing = dir.path().join("missing.pem");
        let e = load_files(&missing, None, &p).unwrap_err();
        assert!(matches!(e, CertError::Io { .. }));
        assert!(e.to_string().contains("missing.pem"));

        let e = load_files(&cert, None, &p).unwrap_err();
        assert!(matches!(e, CertError::NoKey { .. }), "{e}");

        let enc = dir.write(
            "enc.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let e = load_files(&cert, Some(&enc), &p).unwrap_err();
        assert!(matches!(e, CertError::EncryptedKey { .. }));
        assert!(e.to_string().contains("enc.key"));
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let e = load_pem(a.cert_pem.as_bytes(), Some(legacy.as_bytes()), "mem", &p).unwrap_err();
        assert!(matches!(e, CertError::EncryptedKey { .. }));

        let keyonly = dir.write("k.pem", &a.key_pem);
        let e = load_files(&keyonly, None, &p).unwrap_err();
        assert!(matches!(e, CertError::NoCertificate { .. }), "{e}");
    }

    #[test]
    fn serial_and_rsa_bits() {
        assert_eq!(rsa_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(rsa_bits(&[0x01, 0xff]), 9);
        let g = leaf(Kind::EcP256, &["a.example"]);
        let l = load_pem(
            g.cert_pem.as_bytes(),
            Some(g.key_pem.as_bytes()),
            "m",
            &crate::base_provider(),
        )
        .unwrap();
        assert_eq!(l.info.serial_hex, "0102A0FF");
    }
}
