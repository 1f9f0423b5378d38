//! Per-virtual-host rustls [`ServerConfig`]s, built once at startup.
//!
//! Each virtual host gets its own [`CryptoProvider`], derived from aws-lc-rs'
//! default one with the host's ordered cipher suites and the key exchange groups
//! X25519MLKEM768, X25519, secp256r1, secp384r1 (in that order).
//!
//! ALPN: the glue settles the protocol itself (httpd's `ap_select_protocol`) after
//! reading the ClientHello, then accepts with a config whose `alpn_protocols` holds
//! exactly that protocol. [`AlpnVariants`] precomputes those configs so that no
//! connection builds one.
//!
//! Resumption: with a ticketer, TLS 1.3 resumes statelessly with tickets and TLS 1.2
//! with tickets or, for clients without ticket support, session ids in the session
//! store. Without a ticketer, rustls issues TLS 1.3 *stateful* tickets (random ids
//! keyed into the session store), so `send_tls13_tickets` stays at rustls' default;
//! only with neither ticketer nor store is it set to 0, as no ticket could resume.

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::server::{
    NoServerSessionStorage, ProducesTickets, ResolvesServerCert, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{
    CipherSuite, ProtocolVersion, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};

use crate::ciphers::{self, CipherError, CipherWarning};
use crate::protocol::MinProtocol;
use crate::resolver::{ChallengeResolver, VhostCertResolver};

/// The ALPN protocol id of tls-alpn-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Errors from building a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A TLS virtual host has no certificate.
    #[error("no certificate configured")]
    NoCertificates,
    /// The cipher configuration leaves nothing usable.
    #[error(transparent)]
    Ciphers(#[from] CipherError),
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where a virtual host's certificates come from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// Loaded keys in `TLSCertificate` order; served by a [`VhostCertResolver`].
    Keys(Vec<Arc<CertifiedKey>>),
    /// A resolver of the caller's own.
    Resolver(Arc<dyn ResolvesServerCert>),
}

/// Everything that makes a virtual host's TLS configuration.
#[derive(Debug, Clone)]
pub struct VhostSpec {
    /// The certificates.
    pub certificates: CertSource,
    /// `TLSProtocol`.
    pub min_protocol: MinProtocol,
    /// `TLSCiphersPrefer`, parsed with [`ciphers::parse_list`].
    pub prefer: Vec<CipherSuite>,
    /// `TLSCiphersSuppress`, parsed with [`ciphers::parse_list`].
    pub suppress: Vec<CipherSuite>,
    /// `TLSHonorClientOrder` (default on).
    pub honor_client_order: bool,
    /// ALPN protocols of the base config (usually empty: see [`AlpnVariants`]).
    pub alpn: Vec<Vec<u8>>,
    /// The session store (e.g. a [`SessionStore`](crate::session::SessionStore)
    /// over the shared cache); `None` for no stateful resumption.
    pub session_storage: Option<Arc<dyn StoresServerSessions>>,
    /// The ticketer (e.g. a [`DerivedTicketer`](crate::tickets::DerivedTicketer));
    /// `None` for no stateless tickets.
    pub ticketer: Option<Arc<dyn ProducesTickets>>,
}

impl VhostSpec {
    /// A spec with mod_tls' defaults: all versions, provider cipher order, client
    /// order honored, no ALPN, no session store, no tickets.
    pub fn new(certificates: CertSource) -> Self {
        Self {
            certificates,
            min_protocol: MinProtocol::Default,
            prefer: Vec::new(),
            suppress: Vec::new(),
            honor_client_order: true,
            alpn: Vec::new(),
            session_storage: None,
            ticketer: None,
        }
    }
}

/// A built virtual host.
#[derive(Debug, Clone)]
pub struct BuiltVhost {
    /// The configuration to accept connections with.
    pub config: Arc<ServerConfig>,
    /// The resolver, when built from [`CertSource::Keys`] (for OCSP updates).
    pub resolver: Option<Arc<VhostCertResolver>>,
    /// The enabled cipher suites, in preference order.
    pub suites: Vec<SupportedCipherSuite>,
    /// The enabled protocol versions.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// Cipher findings for the glue to log as warnings.
    pub warnings: Vec<CipherWarning>,
}

impl BuiltVhost {
    /// Whether a connection negotiated with `version` and `suite` (perhaps on another
    /// virtual host) satisfies this host's settings: mod_tls answers 421 otherwise.
    pub fn accepts(&self, version: ProtocolVersion, suite: CipherSuite) -> bool {
        self.versions.iter().any(|v| v.version == version)
            && self.suites.iter().any(|s| s.suite() == suite)
    }

    /// The leaf certificate (DER) of the key at `index` in [`CertSource::Keys`] order.
    pub fn leaf(&self, index: usize) -> Option<Vec<u8>> {
        let keys = self.resolver.as_ref()?.keys();
        Some(keys.get(index)?.cert.first()?.as_ref().to_vec())
    }

    /// Whether a request for this host may be served on a session negotiated by another
    /// host, with `version`, `suite` and the leaf certificate `leaf` (DER): this host serves
    /// that same certificate and allows that version and suite (mod_tls' rule; otherwise the
    /// request is answered with 421). Hosts with their own resolver never accept.
    pub fn accepts_session(
        &self,
        version: ProtocolVersion,
        suite: CipherSuite,
        leaf: &[u8],
    ) -> bool {
        self.accepts(version, suite)
            && self.resolver.as_ref().is_some_and(|r| {
                r.keys()
                    .iter()
                    .any(|k| k.cert.first().is_some_and(|c| c.as_ref() == leaf))
            })
    }
}

/// The key exchange groups, most preferred first.
pub fn kx_groups() -> Vec<&'static dyn SupportedKxGroup> {
    use rustls::crypto::aws_lc_rs::kx_group;
    vec![
        kx_group::X25519MLKEM768,
        kx_group::X25519,
        kx_group::SECP256R1,
        kx_group::SECP384R1,
    ]
}

/// The aws-lc-rs provider with `suites` (in order) and [`kx_groups`].
pub fn build_provider(suites: Vec<SupportedCipherSuite>) -> CryptoProvider {
    CryptoProvider {
        cipher_suites: suites,
        kx_groups: kx_groups(),
        ..crate::base_provider()
    }
}

/// Build a virtual host's configuration.
pub fn build_vhost(spec: &VhostSpec) -> Result<BuiltVhost, ConfigError> {
    let base = crate::base_provider();
    let sel = ciphers::select_suites(
        &base.cipher_suites,
        spec.min_protocol,
        &spec.prefer,
        &spec.suppress,
    )?;
    let (cert_resolver, resolver): (Arc<dyn ResolvesServerCert>, _) = match &spec.certificates {
        CertSource::Keys(keys) if keys.is_empty() => return Err(ConfigError::NoCertificates),
        CertSource::Keys(keys) => {
            let r = Arc::new(VhostCertResolver::new(keys.clone()));
            (r.clone(), Some(r))
        }
        CertSource::Resolver(r) => (r.clone(), None),
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(build_provider(sel.suites.clone())))
            .with_protocol_versions(&sel.versions)?
            .with_no_client_auth()
            .with_cert_resolver(cert_resolver);
    config.ignore_client_order = !spec.honor_client_order;
    config.alpn_protocols = spec.alpn.clone();
    config.max_early_data_size = 0;
    match &spec.session_storage {
        Some(store) => config.session_storage = store.clone(),
        None => config.session_storage = Arc::new(NoServerSessionStorage {}),
    }
    if let Some(t) = &spec.ticketer {
        config.ticketer = t.clone();
    }
    if spec.session_storage.is_none() && spec.ticketer.is_none() {
        config.send_tls13_tickets = 0;
    }
    Ok(BuiltVhost {
        config: Arc::new(config),
        resolver,
        suites: sel.suites,
        versions: sel.versions,
        warnings: sel.warnings,
    })
}

/// A copy of `config` whose ALPN list is exactly `protocol`.
pub fn with_alpn(config: &ServerConfig, protocol: &[u8]) -> Arc<ServerConfig> {
    let mut c = config.clone();
    c.alpn_protocols = vec![protocol.to_vec()];
    Arc::new(c)
}

/// A virtual host's configs per settled ALPN protocol, built ahead of time.
#[derive(Debug, Clone)]
pub struct AlpnVariants {
    base: Arc<ServerConfig>,
    variants: Vec<(Vec<u8>, Arc<ServerConfig>)>,
}

impl AlpnVariants {
    /// Variants of `base` for each of `protocols`.
    pub fn new<'a>(base: Arc<ServerConfig>, protocols: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let variants = protocols
            .into_iter()
            .map(|p| (p.to_vec(), with_alpn(&base, p)))
            .collect();
        Self { base, variants }
    }

    /// Variants for `h2` and `http/1.1`.
    pub fn http(base: Arc<ServerConfig>) -> Self {
        Self::new(base, [b"h2".as_slice(), b"http/1.1".as_slice()])
    }

    /// The config for a settled protocol: the base config for `None` (no ALPN), the
    /// precomputed variant if there is one, else a variant built now (logged, as it
    /// costs a config copy per connection).
    pub fn get(&self, protocol: Option<&[u8]>) -> Arc<ServerConfig> {
        let Some(p) = protocol else {
            return self.base.clone();
        };
        if let Some((_, c)) = self.variants.iter().find(|(q, _)| q == p) {
            return c.clone();
        }
        tracing::debug!(protocol = %String::from_utf8_lossy(p), "building an ALPN config variant on demand");
        with_alpn(&self.base, p)
    }

    /// The base config (no ALPN protocols unless the spec had some).
    pub fn base(&self) -> &Arc<ServerConfig> {
        &self.base
    }
}

/// A config answering one tls-alpn-01 challenge: ALPN `acme-tls/1` only, the given
/// challenge certificate, TLS 1.2 and 1.3, no resumption.
pub fn challenge_config(key: Arc<CertifiedKey>) -> Result<Arc<ServerConfig>, ConfigError> {
    let provider = build_provider(crate::base_provider().cipher_suites);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&MinProtocol::Default.versions())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ChallengeResolver(key)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{MemoryBackend, SessionStore};
    use crate::testutil::*;
    use crate::tickets::{DEFAULT_PERIOD, DerivedTicketer, TicketSecret};
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    use rustls::{HandshakeKind, NamedGroup};

    fn spec(kinds: &[Kind]) -> VhostSpec {
        VhostSpec::new(CertSource::Keys(
            kinds
                .iter()
                .map(|k| loaded(*k, &["a.example"]).certified_key)
                .collect(),
        ))
    }

    fn default_client() -> Arc<rustls::ClientConfig> {
        Arc::new(client_config(crate::base_provider()))
    }

    #[test]
    fn default_handshake_is_post_quantum_tls13() {
        let built = build_vhost(&spec(&[Kind::EcP256])).unwrap();
        assert!(built.warnings.is_empty());
        let (_c, s) = handshake(&default_client(), &built.config, "a.example").unwrap();
        assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(
            s.negotiated_key_exchange_group().unwrap().name(),
            NamedGroup::X25519MLKEM768
        );
        assert_eq!(s.server_name(), Some("a.example"));
        assert!(built.accepts(
            ProtocolVersion::TLSv1_3,
            CipherSuite::TLS13_AES_128_GCM_SHA256
        ));
    }

    fn client_with_suites(suites: &[SupportedCipherSuite]) -> Arc<rustls::ClientConfig> {
        let p = CryptoProvider {
            cipher_suites: suites.to_vec(),
            ..crate::base_provider()
        };
        Arc::new(client_config(p))
    }

    #[test]
    fn server_preference_when_client_order_not_honored() {
        let client = client_with_suites(&[
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
        ]);
        let mut sp = spec(&[Kind::EcP256]);
        sp.prefer = ciphers::parse_list("TLS13_CHACHA20_POLY1305_SHA256").unwrap();
        sp.honor_client_order = false;
        let built = build_vhost(&sp).unwrap();
        let (_c, s) = handshake(&client, &built.config, "a.example").unwrap();
        assert_eq!(
            s.negotiated_cipher_suite().unwrap().suite(),
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );
        sp.honor_client_order = true;
        let built = build_vhost(&sp).unwrap();
        let (_c, s) = handshake(&client, &built.config, "a.example").unwrap();
        assert_eq!(
            s.negotiated_cipher_suite().unwrap().suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
        );
    }

    #[test]
    fn tls12_server_preference_and_suppress() {
        let client = client_with_suites(&[
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]);
        let mut sp = spec(&[Kind::EcP256]);
        sp.prefer = ciphers::parse_list("ECDHE-ECDSA-AES256-GCM-SHA384").unwrap();
        sp.suppress = ciphers::parse_list("ECDHE-ECDSA-AES128-GCM-SHA256").unwrap();
        sp.honor_client_order = false;
        let built = build_vhost(&sp).unwrap();
        let (_c, s) = handshake(&client, &built.config, "a.example").unwrap();
        assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLSv1_2));
        assert_eq!(
            s.negotiated_cipher_suite().unwrap().suite(),
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        );
        assert!(!built.accepts(
            ProtocolVersion::TLSv1_2,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        ));
    }

    #[test]
    fn tls13_only_rejects_tls12_client() {
        let mut sp = spec(&[Kind::EcP256]);
        sp.min_protocol = MinProtocol::Tls13;
        let built = build_vhost(&sp).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der()).unwrap();
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(crate::base_provider()))
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let err = handshake(&client, &built.config, "a.example").unwrap_err();
        assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err:?}");
    }

    #[test]
    fn certificate_by_client_signature_schemes() {
        let built = build_vhost(&spec(&[Kind::EcP256, Kind::Rsa])).unwrap();
        // Default client: ECDSA first.
        let (c, _s) = handshake(&default_client(), &built.config, "a.example").unwrap();
        let ec_leaf = c.peer_certificates().unwrap()[0].clone();
        let info = crate::certs::CertInfo::from_der(&ec_leaf).unwrap();
        assert_eq!(info.key_type, crate::certs::KeyType::Ec("P-256".into()));
        // A client that only verifies RSA signatures in handshakes.
        let mut p = crate::base_provider();
        let mapping: Vec<_> = p
            .signature_verification_algorithms
            .mapping
            .iter()
            .filter(|(s, _)| {
                matches!(
                    s,
                    rustls::SignatureScheme::RSA_PSS_SHA256
                        | rustls::SignatureScheme::RSA_PSS_SHA384
                        | rustls::SignatureScheme::RSA_PKCS1_SHA256
                )
            })
            .copied()
            .collect();
        p.signature_verification_algorithms.mapping = Box::leak(mapping.into_boxed_slice());
        let client = Arc::new(client_config(p));
        let (c, _s) = handshake(&client, &built.config, "a.example").unwrap();
        let info = crate::certs::CertInfo::from_der(&c.peer_certificates().unwrap()[0]).unwrap();
        assert_eq!(info.key_type, crate::certs::KeyType::Rsa);
    }

    #[test]
    fn resumption_with_tickets_across_configs() {
        let secret = TicketSecret::generate().unwrap();
        let keys = spec(&[Kind::EcP256]).certificates;
        let mk = || {
            let mut sp = VhostSpec::new(keys.clone());
            sp.ticketer = Some(Arc::new(
                DerivedTicketer::new(&secret, DEFAULT_PERIOD).unwrap(),
            ));
            build_vhost(&sp).unwrap()
        };
        let (a, b) = (mk(), mk());
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca_der()).unwrap();
            let client = Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(crate::base_provider()))
                    .with_protocol_versions(versions)
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            );
            let (_c, s) = handshake(&client, &a.config, "a.example").unwrap();
            assert_eq!(s.handshake_kind(), Some(HandshakeKind::Full));
            let (_c, s) = handshake(&client, &b.config, "a.example").unwrap();
            assert_eq!(
                s.handshake_kind(),
                Some(HandshakeKind::Resumed),
                "{versions:?}"
            );
        }
        // A config with another secret cannot resume.
        let mut sp = VhostSpec::new(keys.clone());
        sp.ticketer = Some(Arc::new(
            DerivedTicketer::new(&TicketSecret::generate().unwrap(), DEFAULT_PERIOD).unwrap(),
        ));
        let other = build_vhost(&sp).unwrap();
        let client = default_client();
        handshake(&client, &a.config, "a.example").unwrap();
        let (_c, s) = handshake(&client, &other.config, "a.example").unwrap();
        assert_eq!(s.handshake_kind(), Some(HandshakeKind::Full));
    }

    #[test]
    fn resumption_with_shared_session_store() {
        let backend = Arc::new(MemoryBackend::new(100));
        let keys = spec(&[Kind::EcP256]).certificates;
        let mk = || {
            let mut sp = VhostSpec::new(keys.clone());
            sp.session_storage = Some(Arc::new(SessionStore::new(
                backend.clone(),
                crate::session::DEFAULT_SESSION_TTL,
            )));
            build_vhost(&sp).unwrap()
        };
        let (a, b) = (mk(), mk());
        assert!(
            a.config.send_tls13_tickets > 0,
            "stateful TLS 1.3 tickets stay on"
        );
        let client = default_client();
        let (_c, s) = handshake(&client, &a.config, "a.example").unwrap();
        assert_eq!(s.handshake_kind(), Some(HandshakeKind::Full));
        assert!(!backend.is_empty());
        let (_c, s) = handshake(&client, &b.config, "a.example").unwrap();
        assert_eq!(s.handshake_kind(), Some(HandshakeKind::Resumed));
        // TLS 1.2 session ids.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der()).unwrap();
        let client12 = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(crate::base_provider()))
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        handshake(&client12, &a.config, "a.example").unwrap();
        let (_c, s) = handshake(&client12, &b.config, "a.example").unwrap();
        assert_eq!(s.handshake_kind(), Some(HandshakeKind::Resumed));
    }

    #[test]
    fn session_acceptance_needs_the_same_certificate_version_and_suite() {
        let ec = loaded(Kind::EcP256, &["a.example"]).certified_key;
        let rsa = loaded(Kind::Rsa, &["b.example"]).certified_key;
        let host = |keys: Vec<Arc<CertifiedKey>>, min: MinProtocol| {
            let mut sp = VhostSpec::new(CertSource::Keys(keys));
            sp.min_protocol = min;
            build_vhost(&sp).unwrap()
        };
        let a = host(vec![ec.clone()], MinProtocol::Default);
        let leaf = a.leaf(0).unwrap();
        assert_eq!(leaf, ec.cert[0].as_ref());
        assert!(a.leaf(1).is_none());
        let v13 = ProtocolVersion::TLSv1_3;
        let aes = CipherSuite::TLS13_AES_128_GCM_SHA256;
        // Same certificate (among others), same settings: accepted.
        let same = host(vec![rsa.clone(), ec.clone()], MinProtocol::Default);
        assert!(same.accepts_session(v13, aes, &leaf));
        // Another certificate: refused.
        let other = host(vec![rsa], MinProtocol::Default);
        assert!(!other.accepts_session(v13, aes, &leaf));
        // Same certificate, but TLS 1.2 is below its minimum: refused; TLS 1.3 accepted.
        let strict = host(vec![ec], MinProtocol::Tls13);
        assert!(strict.accepts_session(v13, aes, &leaf));
        assert!(!strict.accepts_session(
            ProtocolVersion::TLSv1_2,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            &leaf
        ));
    }

    #[test]
    fn no_store_no_tickets() {
        let built = build_vhost(&spec(&[Kind::EcP256])).unwrap();
        assert_eq!(built.config.send_tls13_tickets, 0);
        let client = default_client();
        handshake(&client, &built.config, "a.example").unwrap();
        let (_c, s) = handshake(&client, &built.config, "a.example").unwrap();
        assert_eq!(s.handshake_kind(), Some(HandshakeKind::Full));
    }

    #[test]
    fn alpn_variants() {
        let built = build_vhost(&spec(&[Kind::EcP256])).unwrap();
        let v = AlpnVariants::http(built.config.clone());
        let h2 = v.get(Some(b"h2"));
        assert!(Arc::ptr_eq(&h2, &v.get(Some(b"h2"))), "precomputed");
        assert_eq!(h2.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(v.get(None).alpn_protocols.is_empty());
        assert_eq!(
            v.get(Some(b"spdy/3")).alpn_protocols,
            vec![b"spdy/3".to_vec()]
        );
        let mut cc = client_config(crate::base_provider());
        cc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let (_c, s) = handshake(&Arc::new(cc), &v.get(Some(b"http/1.1")), "a.example").unwrap();
        assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
    }

    #[test]
    fn challenge_handshake() {
        let chall = loaded(Kind::EcP256, &["a.example"]).certified_key;
        let cfg = challenge_config(chall).unwrap();
        let mut cc = client_config(crate::base_provider());
        cc.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        let (_c, s) = handshake(&Arc::new(cc), &cfg, "a.example").unwrap();
        assert_eq!(s.alpn_protocol(), Some(ACME_TLS_ALPN));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            build_vhost(&VhostSpec::new(CertSource::Keys(vec![]))),
            Err(ConfigError::NoCertificates)
        ));
        let mut sp = spec(&[Kind::EcP256]);
        sp.min_protocol = MinProtocol::Tls13;
        sp.suppress = ciphers::parse_list(
            "TLS13_AES_128_GCM_SHA256 TLS13_AES_256_GCM_SHA384 TLS13_CHACHA20_POLY1305_SHA256",
        )
        .unwrap();
        assert!(matches!(build_vhost(&sp), Err(ConfigError::Ciphers(_))));
    }
}
