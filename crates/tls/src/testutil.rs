//! Test helpers: certificates made with rcgen, temporary directories, and an
//! in-memory handshake driver.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber,
    SignatureAlgorithm,
};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// Key kinds for test certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    EcP256,
    EcP384,
    Ed25519,
    Rsa,
}

impl Kind {
    fn alg(self) -> &'static SignatureAlgorithm {
        match self {
            Kind::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Kind::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Kind::Ed25519 => &rcgen::PKCS_ED25519,
            Kind::Rsa => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

/// A generated leaf: chain PEM (leaf + CA) and PKCS#8 key PEM.
pub struct Generated {
    pub cert_pem: String,
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

struct Ca {
    cert_pem: String,
    key_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Bastion Test");
    params
        .distinguished_name
        .push(DnType::CommonName, "Bastion Test CA");
    params
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = ca_params().self_signed(&key).unwrap();
        Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    })
}

/// The test CA certificate (DER), for client root stores.
pub fn ca_der() -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(ca().cert_pem.as_bytes()).unwrap()
}

fn key_for(kind: Kind) -> KeyPair {
    // Key generation (RSA especially) is slow: one key per kind per test binary.
    static KEYS: OnceLock<Mutex<Vec<(Kind, String)>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Mutex::new(Vec::new()));
    let mut keys = keys.lock().unwrap();
    if let Some((_, pem)) = keys.iter().find(|(k, _)| *k == kind) {
        return KeyPair::from_pem_and_sign_algo(pem, kind.alg()).unwrap();
    }
    let kp = KeyPair::generate_for(kind.alg()).unwrap();
    keys.push((kind, kp.serialize_pem()));
    kp
}

/// A leaf for `names`, signed by the test CA, serial 0x0102A0FF,
/// subject `O=Bastion Test, CN=<first name>`.
pub fn leaf(kind: Kind, names: &[&str]) -> Generated {
    let ca = ca();
    let ca_key = KeyPair::from_pem(&ca.key_pem).unwrap();
    let issuer = Issuer::new(ca_params(), ca_key);
    let key = key_for(kind);
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Bastion Test");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.serial_number = Some(SerialNumber::from_slice(&[0x01, 0x02, 0xa0, 0xff]));
    let cert = params.signed_by(&key, &issuer).unwrap();
    Generated {
        cert_pem: format!("{}{}", cert.pem(), ca.cert_pem),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

/// Load a generated leaf into a `LoadedCert`.
pub fn loaded(kind: Kind, names: &[&str]) -> crate::certs::LoadedCert {
    let g = leaf(kind, names);
    crate::certs::load_pem(
        g.cert_pem.as_bytes(),
        Some(g.key_pem.as_bytes()),
        "test",
        &crate::base_provider(),
    )
    .unwrap()
}

/// Minimal DER reader: (tag, content, rest).
fn der_next(d: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = d[0];
    let (len, hdr) = if d[1] < 0x80 {
        (d[1] as usize, 2)
    } else {
        let n = (d[1] & 0x7f) as usize;
        let mut len = 0usize;
        for b in &d[2..2 + n] {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    (tag, &d[hdr..hdr + len], &d[hdr + len..])
}

/// The inner key of a PKCS#8 PrivateKeyInfo (PKCS#1 for RSA, SEC1 for EC).
fn pkcs8_inner(der: &[u8]) -> Vec<u8> {
    let (_, seq, _) = der_next(der);
    let (_, _version, rest) = der_next(seq);
    let (_, _alg, rest) = der_next(rest);
    let (tag, inner, _) = der_next(rest);
    assert_eq!(tag, 0x04);
    inner.to_vec()
}

pub fn to_sec1_pem(g: &Generated) -> String {
    crate::encoding::pem("EC PRIVATE KEY", &pkcs8_inner(&g.key_der))
}

pub fn to_pkcs1_pem(g: &Generated) -> String {
    crate::encoding::pem("RSA PRIVATE KEY", &pkcs8_inner(&g.key_der))
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "bastion-tls-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client config trusting the test CA, built on `provider`.
pub fn client_config(provider: rustls::crypto::CryptoProvider) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca_der()).unwrap();
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Move bytes between client and server until neither has anything to say.
pub fn pump(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..50 {
        let mut moved = false;
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets()?;
            }
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets()?;
            }
        }
        if !moved {
            return Ok(());
        }
    }
    Ok(())
}

/// Run a full handshake of a fresh client connection for `sni` against `server`.
pub fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    sni: &str,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let mut c = ClientConnection::new(
        client.clone(),
        ServerName::try_from(sni.to_string()).unwrap(),
    )?;
    let mut s = ServerConnection::new(server.clone())?;
    pump(&mut c, &mut s)?;
    assert!(!c.is_handshaking() && !s.is_handshaking());
    Ok((c, s))
}
