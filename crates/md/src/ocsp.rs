//! OCSP stapling (RFC 6960): the request for a certificate, the fetch from the responder its
//! Authority Information Access names, the checks on the answer, when to fetch again, and the
//! responses kept in the store's `ocsp/` group.
//!
//! ```text
//! ocsp/<md name | "other">/ocsp-<id>.json   {"id","url","status","valid":{"from","until"},
//!                                             "response":"<base64url DER>","last-update",
//!                                             "errors","error"}
//! ```
//!
//! `<id>` is the lowercase hex SHA-1 of the certificate (DER), as mod_md names its files.
//! The formats come from RustCrypto's `x509-ocsp`; signatures are checked with aws-lc-rs.

use crate::store::{self, Group, Store, StoreError};
use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use der::asn1::{AnyRef, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Reader, SliceReader};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, ExtendedKeyUsage};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest, Version,
};

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const AIA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// How far a responder's clock may be ahead of ours.
const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// How long a response without `nextUpdate` is used before asking again.
const NO_NEXT_UPDATE: Duration = Duration::from_secs(3600);

/// `MDStaplingKeepResponse` default: 7 days.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(7 * 86400);
/// `MDStaplingRenewWindow` default: 33% of the response's lifetime.
pub const DEFAULT_RENEW_WINDOW: crate::model::Timeslice = crate::model::Timeslice::Percent(33);

/// What can go wrong while stapling.
#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    /// The PEM holds no certificate, or one that does not parse.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The chain does not contain the certificate's issuer.
    #[error("the issuer of the certificate is not in its chain")]
    NoIssuer,
    /// The certificate names no OCSP responder (http) in its Authority Information Access.
    #[error("the certificate names no OCSP responder")]
    NoResponder,
    /// The responder could not be reached or answered with an HTTP error.
    #[error("responder {url}: {detail}")]
    Http {
        /// The responder.
        url: String,
        /// What happened.
        detail: String,
    },
    /// The answer is not a usable OCSP response for this certificate.
    #[error("invalid response: {0}")]
    Invalid(String),
    /// Reading or writing the store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(e: impl std::fmt::Display) -> OcspError {
    OcspError::Invalid(e.to_string())
}

/// A certificate taken on for stapling: its id, its responder and the request to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// Lowercase hex SHA-1 of the certificate (DER): the store file's name.
    pub id: String,
    /// The OCSP responder (first `http://` OCSP URI of the AIA extension).
    pub url: String,
    /// The subject of the certificate, for log lines.
    pub subject: String,
    /// The DER `OCSPRequest` to POST.
    pub request: Vec<u8>,
    cert_id: CertId,
    issuer: Certificate,
}

fn sha1(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The responder URLs a certificate names (AIA, access method id-ad-ocsp).
pub fn responder_urls(cert: &Certificate) -> Vec<String> {
    let Some(exts) = &cert.tbs_certificate.extensions else {
        return Vec::new();
    };
    exts.iter()
        .filter(|e| e.extn_id == AIA)
        .filter_map(|e| AuthorityInfoAccessSyntax::from_der(e.extn_value.as_bytes()).ok())
        .flat_map(|aia| aia.0)
        .filter(|d| d.access_method == AD_OCSP)
        .filter_map(|d| match d.access_location {
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

impl Target {
    /// The target for the first certificate of `pem`, whose issuer must follow it in `pem`
    /// (the chain as httpd's `ap_ssl_ocsp_prime` passes it).
    pub fn from_pem(pem: &str) -> Result<Target, OcspError> {
        let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| OcspError::Certificate(e.to_string()))?;
        let (leaf_der, rest) = ders
            .split_first()
            .ok_or_else(|| OcspError::Certificate("no certificate".into()))?;
        let leaf =
            Certificate::from_der(leaf_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
        let issuer = rest
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok())
            .find(|c| c.tbs_certificate.subject == leaf.tbs_certificate.issuer)
            .ok_or(OcspError::NoIssuer)?;
        let url = responder_urls(&leaf)
            .into_iter()
            .find(|u| u.starts_with("http://"))
            .ok_or(OcspError::NoResponder)?;
        let cert_id = CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: SHA1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(sha1(
                &issuer.tbs_certificate.subject.to_der().map_err(invalid)?,
            ))
            .map_err(invalid)?,
            issuer_key_hash: OctetString::new(sha1(
                issuer
                    .tbs_certificate
                    .subject_public_key_info
                    .subject_public_key
                    .raw_bytes(),
            ))
            .map_err(invalid)?,
            serial_number: leaf.tbs_certificate.serial_number.clone(),
        };
        let request = OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: vec![Request {
                    req_cert: cert_id.clone(),
                    single_request_extensions: None,
                }],
                request_extensions: None,
            },
            optional_signature: None,
        }
        .to_der()
        .map_err(invalid)?;
        Ok(Target {
            id: hex(&sha1(leaf_der)),
            url,
            subject: leaf.tbs_certificate.subject.to_string(),
            request,
            cert_id,
            issuer,
        })
    }

    /// Checks an OCSP response (DER) for this certificate at `now`: successful, a basic
    /// response signed by the issuer or by a responder the issuer delegated to
    /// (id-kp-OCSPSigning), with a single response for this certificate that is current.
    pub fn verify(&self, der: &[u8], now: SystemTime) -> Result<Verified, OcspError> {
        let resp = OcspResponse::from_der(der).map_err(invalid)?;
        if resp.response_status != OcspResponseStatus::Successful {
            return Err(invalid(format!(
                "responder status {:?}",
                resp.response_status
            )));
        }
        let bytes = resp
            .response_bytes
            .ok_or_else(|| invalid("no response bytes"))?;
        if bytes.response_type != OCSP_BASIC {
            return Err(invalid("not a basic OCSP response"));
        }
        let raw = bytes.response.as_bytes();
        let basic = BasicOcspResponse::from_der(raw).map_err(invalid)?;
        let tbs = first_element(raw)?;
        let signer = self.signer(&basic, now)?;
        verify_signature(
            &signer.tbs_certificate.subject_public_key_info,
            &basic.signature_algorithm,
            &tbs,
            basic.signature.as_bytes(),
        )
        .map_err(|e| invalid(format!("response signature: {e}")))?;
        let single = basic
            .tbs_response_data
            .responses
            .iter()
            .find(|r| same_cert(&r.cert_id, &self.cert_id))
            .ok_or_else(|| invalid("no answer for this certificate"))?;
        let this_update = single.this_update.0.to_system_time();
        if this_update > now + CLOCK_SKEW {
            return Err(invalid("thisUpdate is in the future"));
        }
        let next_update = single.next_update.map(|t| t.0.to_system_time());
        if next_update.is_some_and(|n| n <= now) {
            return Err(invalid("the response has expired (nextUpdate passed)"));
        }
        let status = match single.cert_status {
            CertStatus::Good(_) => CertState::Good,
            CertStatus::Revoked(_) => CertState::Revoked,
            CertStatus::Unknown(_) => CertState::Unknown,
        };
        Ok(Verified {
            status,
            this_update,
            next_update: next_update.unwrap_or(now + NO_NEXT_UPDATE),
        })
    }

    /// The certificate that signed `basic`: the issuer, or a delegated responder certificate
    /// from the response that the issuer signed for OCSP signing.
    fn signer(&self, basic: &BasicOcspResponse, now: SystemTime) -> Result<Certificate, OcspError> {
        use x509_ocsp::ResponderId;
        let matches = |c: &Certificate| match &basic.tbs_response_data.responder_id {
            ResponderId::ByName(n) => &c.tbs_certificate.subject == n,
            ResponderId::ByKey(k) => {
                sha1(
                    c.tbs_certificate
                        .subject_public_key_info
                        .subject_public_key
                        .raw_bytes(),
                ) == k.as_bytes()
            }
        };
        if matches(&self.issuer) {
            return Ok(self.issuer.clone());
        }
        let delegated = basic
            .certs
            .iter()
            .flatten()
            .find(|c| matches(c))
            .ok_or_else(|| invalid("signed by an unknown responder"))?;
        if delegated.tbs_certificate.issuer != self.issuer.tbs_certificate.subject {
            return Err(invalid("the responder certificate is not from the issuer"));
        }
        let der = delegated.to_der().map_err(invalid)?;
        verify_signature(
            &self.issuer.tbs_certificate.subject_public_key_info,
            &delegated.signature_algorithm,
            &first_element(&der)?,
            delegated.signature.as_bytes(),
        )
        .map_err(|e| invalid(format!("responder certificate signature: {e}")))?;
        let v = &delegated.tbs_certificate.validity;
        if v.not_before.to_system_time() > now + CLOCK_SKEW || v.not_after.to_system_time() < now {
            return Err(invalid("the responder certificate is not valid now"));
        }
        let ocsp_signing = delegated
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == EKU)
            .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
            .any(|eku| eku.0.contains(&KP_OCSP_SIGNING));
        if !ocsp_signing {
            return Err(invalid("the responder certificate is not for OCSP signing"));
        }
        Ok(delegated.clone())
    }
}

fn same_cert(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number.as_bytes() == b.serial_number.as_bytes()
}

/// The encoded first element of a DER SEQUENCE (the signed part of a certificate or a basic
/// response), byte for byte as received.
fn first_element(der: &[u8]) -> Result<Vec<u8>, OcspError> {
    let mut r = SliceReader::new(der).map_err(invalid)?;
    let header = der::Header::decode(&mut r).map_err(invalid)?;
    if header.tag != der::Tag::Sequence {
        return Err(invalid("not a SEQUENCE"));
    }
    let first: AnyRef<'_> = r.decode().map_err(invalid)?;
    first.to_der().map_err(invalid)
}

fn verify_signature(
    key: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    msg: &[u8],
    sig: Option<&[u8]>,
) -> Result<(), String> {
    let sig = sig.ok_or("unaligned signature bits")?;
    let key_alg = key.algorithm.oid;
    let curve = key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let v: &'static dyn VerificationAlgorithm = match (key_alg, alg.oid, curve) {
        (RSA, RSA_SHA256, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (RSA, RSA_SHA384, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (RSA, RSA_SHA512, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (RSA, RSA_SHA1, _) => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (EC, ECDSA_SHA256, Some(P256)) => &signature::ECDSA_P256_SHA256_ASN1,
        (EC, ECDSA_SHA384, Some(P256)) => &signature::ECDSA_P256_SHA384_ASN1,
        (EC, ECDSA_SHA256, Some(P384)) => &signature::ECDSA_P384_SHA256_ASN1,
        (EC, ECDSA_SHA384, Some(P384)) => &signature::ECDSA_P384_SHA384_ASN1,
        (ED25519, ED25519, _) => &signature::ED25519,
        (k, s, _) => return Err(format!("unsupported algorithms (key {k}, signature {s})")),
    };
    let raw = key
        .subject_public_key
        .as_bytes()
        .ok_or("unaligned key bits")?;
    UnparsedPublicKey::new(v, raw)
        .verify(msg, sig)
        .map_err(|_| "does not verify".to_string())
}

/// The certificate's status in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertState {
    /// Not revoked.
    Good,
    /// Revoked.
    Revoked,
    /// The responder does not know the certificate.
    Unknown,
}

impl CertState {
    /// `good`, `revoked`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Good => "good",
            CertState::Revoked => "revoked",
            CertState::Unknown => "unknown",
        }
    }
}

/// A response that passed [`Target::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The certificate's status.
    pub status: CertState,
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate (or one hour on, when the responder gives none).
    pub next_update: SystemTime,
}

/// Refresh policy: `MDStaplingRenewWindow` and `MDStaplingKeepResponse`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long before nextUpdate a new response is fetched (a duration or a percentage of
    /// the response's lifetime).
    pub renew_window: crate::model::Timeslice,
    /// How long response files nobody updates stay in the store.
    pub keep: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            renew_window: DEFAULT_RENEW_WINDOW,
            keep: DEFAULT_KEEP,
        }
    }
}

impl Policy {
    /// When to fetch a new response in place of `v`: the renew window before nextUpdate.
    pub fn refresh_at(&self, v: &Verified) -> SystemTime {
        let life = v
            .next_update
            .duration_since(v.this_update)
            .unwrap_or_default();
        let window = self.renew_window.length(life).min(life);
        v.next_update - window
    }

    /// When to try again after `errors` failures in a row (5 s doubling, at most 10 min),
    /// never later than the refresh time of the response still held, if any.
    pub fn retry_at(&self, now: SystemTime, errors: u32, held: Option<SystemTime>) -> SystemTime {
        let backoff = Duration::from_secs(5u64 << errors.saturating_sub(1).min(7))
            .min(Duration::from_secs(600));
        let at = now + backoff;
        match held {
            Some(h) if h > now && h < at => h,
            _ => at,
        }
    }
}

/// Builds the HTTP client used for responders (plain HTTP, as OCSP is).
pub type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// A client for [`fetch`].
pub fn client() -> Client {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(http)
}

/// POSTs the target's request to its responder and returns the body (at most 64 KiB), within
/// `timeout`. Needs a tokio runtime with time and I/O enabled.
pub async fn fetch(client: &Client, t: &Target, timeout: Duration) -> Result<Vec<u8>, OcspError> {
    use http_body_util::BodyExt;
    let http = |detail: String| OcspError::Http {
        url: t.url.clone(),
        detail,
    };
    let req = hyper::Request::post(&t.url)
        .header("content-type", "application/ocsp-request")
        .header("accept", "application/ocsp-response")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            t.request.clone(),
        )))
        .map_err(|e| http(e.to_string()))?;
    let work = async {
        let resp = client.request(req).await.map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                s = format!("{s}: {inner}");
                src = inner.source();
            }
            http(s)
        })?;
        if !resp.status().is_success() {
            return Err(http(format!("HTTP status {}", resp.status())));
        }
        let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| http(e.to_string()))?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| http(format!("no answer within {}s", timeout.as_secs())))?
}

/// A response's validity, as HTTP dates (mod_md's `valid` object).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Period {
    /// thisUpdate.
    pub from: String,
    /// nextUpdate.
    pub until: String,
}

/// One response file, `ocsp/<group>/ocsp-<id>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stored {
    /// The certificate id (hex SHA-1).
    pub id: String,
    /// The responder.
    pub url: String,
    /// `good`, `revoked` or `unknown` (absent before the first response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CertState>,
    /// thisUpdate and nextUpdate of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<Period>,
    /// The response, DER in base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// When the response was fetched.
    #[serde(
        rename = "last-update",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_update: Option<String>,
    /// Failed fetches since the last good one.
    #[serde(default)]
    pub errors: u32,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Stored {
    /// The response (DER) if it is still current at `now`.
    pub fn current(&self, now: SystemTime) -> Option<Vec<u8>> {
        let until = self
            .valid
            .as_ref()
            .and_then(|v| store::parse_http_date(&v.until))?;
        if until <= now {
            return None;
        }
        URL_SAFE_NO_PAD.decode(self.response.as_ref()?).ok()
    }

    /// Records a verified response fetched at `now`.
    pub fn set_response(&mut self, der: &[u8], v: &Verified, now: SystemTime) {
        self.status = Some(v.status);
        self.valid = Some(Period {
            from: store::http_date(v.this_update),
            until: store::http_date(v.next_update),
        });
        self.response = Some(URL_SAFE_NO_PAD.encode(der));
        self.last_update = Some(store::http_date(now));
        self.errors = 0;
        self.error = None;
    }
}

/// The file name of a target's response.
pub fn file_name(id: &str) -> String {
    format!("ocsp-{id}.json")
}

/// The group name for responses of certificates outside managed domains (mod_md's).
pub const OTHERS: &str = "other";

/// Reads `ocsp/<group>/ocsp-<id>.json`.
pub fn load(store: &Store, group: &str, id: &str) -> Result<Option<Stored>, OcspError> {
    Ok(store.read_json(Group::Ocsp, group, &file_name(id))?)
}

/// Writes `ocsp/<group>/ocsp-<id>.json` atomically (0644: every child reads it).
pub fn save(store: &Store, group: &str, s: &Stored) -> Result<(), OcspError> {
    Ok(store.write_json(Group::Ocsp, group, &file_name(&s.id), s)?)
}

/// Removes response files not written for longer than `keep` (`MDStaplingKeepResponse`).
/// Returns how many were removed.
pub fn cleanup(store: &Store, keep: Duration, now: SystemTime) -> usize {
    let mut n = 0;
    for group in store.list(Group::Ocsp).unwrap_or_default() {
        let Ok(dir) = store.dir(Group::Ocsp, &group) else {
            continue;
        };
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("ocsp-") && name.ends_with(".json")) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m + keep < now);
            if old && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    use der::asn1::{BitString, GeneralizedTime};
    use x509_ocsp::{
        OcspGeneralizedTime, ResponderId, ResponseBytes, ResponseData, SingleResponse,
    };

    struct Pki {
        ca_key: rcgen::KeyPair,
        ca: rcgen::Certificate,
        ca_params: rcgen::CertificateParams,
        chain: String,
    }

    /// A responder certificate issued by the PKI's CA, with or without id-kp-OCSPSigning.
    fn delegated(pki: &Pki, ocsp_signing: bool) -> (rcgen::KeyPair, rcgen::Certificate) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Delegated Responder");
        if ocsp_signing {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning];
        }
        let issuer = rcgen::Issuer::new(pki.ca_params.clone(), &pki.ca_key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        (key, cert)
    }

    fn aia(url: &str) -> rcgen::CustomExtension {
        let v = AuthorityInfoAccessSyntax(vec![x509_cert::ext::pkix::AccessDescription {
            access_method: AD_OCSP,
            access_location: GeneralName::UniformResourceIdentifier(
                der::asn1::Ia5String::new(url).unwrap(),
            ),
        }]);
        rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], v.to_der().unwrap())
    }

    fn pki(with_aia: bool) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let ca = p.clone().self_signed(&ca_key).unwrap();
        let ca_params = p;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        if with_aia {
            p.custom_extensions.push(aia("http://127.0.0.1:1/ocsp"));
        }
        let issuer = rcgen::Issuer::new(ca_params.clone(), &ca_key);
        let leaf = p.signed_by(&key, &issuer).unwrap();
        let chain = format!("{}{}", leaf.pem(), ca.pem());
        Pki {
            ca_key,
            ca,
            ca_params,
            chain,
        }
    }

    fn gt(t: SystemTime) -> OcspGeneralizedTime {
        OcspGeneralizedTime(
            GeneralizedTime::from_unix_duration(
                t.duration_since(SystemTime::UNIX_EPOCH).unwrap()
                    - Duration::from_nanos(
                        t.duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap()
                            .subsec_nanos() as u64,
                    ),
            )
            .unwrap(),
        )
    }

    fn respond(
        pki: &Pki,
        t: &Target,
        status: CertStatus,
        this: SystemTime,
        next: SystemTime,
    ) -> Vec<u8> {
        respond_by(&pki.ca_key, pki.ca.der(), false, t, status, this, next)
    }

    /// A response signed by `key`, whose certificate `signer` is named as the responder (by
    /// name) and included in the response when `include`.
    fn respond_by(
        key: &rcgen::KeyPair,
        signer: &[u8],
        include: bool,
        t: &Target,
        status: CertStatus,
        this: SystemTime,
        next: SystemTime,
    ) -> Vec<u8> {
        let signer = Certificate::from_der(signer).unwrap();
        let data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByName(signer.tbs_certificate.subject.clone()),
            produced_at: gt(this),
            responses: vec![SingleResponse {
                cert_id: t.cert_id.clone(),
                cert_status: status,
                this_update: gt(this),
                next_update: Some(gt(next)),
                single_extensions: None,
            }],
            response_extensions: None,
        };
        let tbs = data.to_der().unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der())
            .unwrap();
        let sig = kp.sign(&SystemRandom::new(), &tbs).unwrap();
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_SHA256,
                parameters: None,
            },
            signature: BitString::from_bytes(sig.as_ref()).unwrap(),
            certs: include.then(|| vec![signer.clone()]),
        };
        OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: OCSP_BASIC,
                response: OctetString::new(basic.to_der().unwrap()).unwrap(),
            }),
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn target_from_chain() {
        let pki = pki(true);
        let t = Target::from_pem(&pki.chain).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:1/ocsp");
        assert_eq!(t.id.len(), 40);
        let req = OcspRequest::from_der(&t.request).unwrap();
        assert_eq!(req.tbs_request.request_list.len(), 1);
        let leaf = CertificateDer::pem_slice_iter(pki.chain.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let leaf = Certificate::from_der(&leaf).unwrap();
        assert_eq!(
            req.tbs_request.request_list[0].req_cert.serial_number,
            leaf.tbs_certificate.serial_number
        );
    }

    #[test]
    fn target_needs_issuer_and_responder() {
        let pki = pki(false);
        assert!(matches!(
            Target::from_pem(&pki.chain),
            Err(OcspError::NoResponder)
        ));
        let pki = pki_leaf_only();
        assert!(matches!(Target::from_pem(&pki), Err(OcspError::NoIssuer)));
    }

    fn pki_leaf_only() -> String {
        let p = pki(true);
        p.chain
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap()
            .to_string()
    }

    #[test]
    fn verify_good_revoked_expired_tampered() {
        let pki = pki(true);
        let t = Target::from_pem(&pki.chain).unwrap();
        let now = SystemTime::now();
        let next = now + Duration::from_secs(3600);
        let good = respond(&pki, &t, CertStatus::good(), now, next);
        let v = t.verify(&good, now).unwrap();
        assert_eq!(v.status, CertState::Good);
        assert!(v.next_update > now);
        let revoked = respond(
            &pki,
            &t,
            CertStatus::revoked(x509_ocsp::RevokedInfo {
                revocation_time: gt(now),
                revocation_reason: None,
            }),
            now,
            next,
        );
        assert_eq!(t.verify(&revoked, now).unwrap().status, CertState::Revoked);
        // expired
        assert!(t.verify(&good, next + Duration::from_secs(1)).is_err());
        // a flipped bit in the signed part
        let mut bad = good.clone();
        let i = bad.len() / 2;
        bad[i] ^= 1;
        assert!(t.verify(&bad, now).is_err());
        // another certificate's target (other CA) does not accept it
        let other = Target::from_pem(&self::pki(true).chain).unwrap();
        assert!(other.verify(&good, now).is_err());
    }

    #[test]
    fn delegated_responder_needs_ocsp_signing_from_the_issuer() {
        let pki = pki(true);
        let t = Target::from_pem(&pki.chain).unwrap();
        let now = SystemTime::now();
        let next = now + Duration::from_secs(600);
        let (key, cert) = delegated(&pki, true);
        let ok = respond_by(&key, cert.der(), true, &t, CertStatus::good(), now, next);
        assert_eq!(t.verify(&ok, now).unwrap().status, CertState::Good);
        // Not included in the response: unknown signer.
        let missing = respond_by(&key, cert.der(), false, &t, CertStatus::good(), now, next);
        assert!(t.verify(&missing, now).is_err());
        // Without id-kp-OCSPSigning.
        let (key, cert) = delegated(&pki, false);
        let no_eku = respond_by(&key, cert.der(), true, &t, CertStatus::good(), now, next);
        let e = t.verify(&no_eku, now).unwrap_err().to_string();
        assert!(e.contains("not for OCSP signing"), "{e}");
        // A responder certificate from another CA (same subject names).
        let other = self::pki(true);
        let (key, cert) = delegated(&other, true);
        let foreign = respond_by(&key, cert.der(), true, &t, CertStatus::good(), now, next);
        assert!(t.verify(&foreign, now).is_err());
    }

    #[test]
    fn refresh_and_retry() {
        let p = Policy::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let v = Verified {
            status: CertState::Good,
            this_update: t0,
            next_update: t0 + Duration::from_secs(300),
        };
        assert_eq!(p.refresh_at(&v), t0 + Duration::from_secs(201));
        let p2 = Policy {
            renew_window: crate::model::Timeslice::Duration(Duration::from_secs(60)),
            ..p
        };
        assert_eq!(p2.refresh_at(&v), t0 + Duration::from_secs(240));
        assert_eq!(p.retry_at(t0, 1, None), t0 + Duration::from_secs(5));
        assert_eq!(p.retry_at(t0, 3, None), t0 + Duration::from_secs(20));
        assert_eq!(p.retry_at(t0, 30, None), t0 + Duration::from_secs(600));
        assert_eq!(
            p.retry_at(t0, 30, Some(t0 + Duration::from_secs(7))),
            t0 + Duration::from_secs(7)
        );
    }

    #[test]
    fn stored_roundtrip_and_expiry() {
        let pki = pki(true);
        let t = Target::from_pem(&pki.chain).unwrap();
        let now = SystemTime::now();
        let der = respond(
            &pki,
            &t,
            CertStatus::good(),
            now,
            now + Duration::from_secs(60),
        );
        let v = t.verify(&der, now).unwrap();
        let mut s = Stored {
            id: t.id.clone(),
            url: t.url.clone(),
            ..Stored::default()
        };
        s.set_response(&der, &v, now);
        let dir = std::env::temp_dir().join(format!("ocsp-test-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        save(&store, "a.test", &s).unwrap();
        let back = load(&store, "a.test", &t.id).unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.current(now).as_deref(), Some(der.as_slice()));
        assert!(back.current(now + Duration::from_secs(61)).is_none());
        assert_eq!(cleanup(&store, Duration::from_secs(3600), now), 0);
        assert_eq!(
            cleanup(&store, Duration::ZERO, now + Duration::from_secs(10)),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
