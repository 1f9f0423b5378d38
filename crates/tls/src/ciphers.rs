//! TLS cipher suites: names, the `TLSCiphersPrefer` / `TLSCiphersSuppress` lists, and
//! the final ordered suite list of a virtual host.
//!
//! A cipher can be named in four ways (all case-insensitive):
//! - its IANA name, e.g. `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`;
//! - its OpenSSL name, e.g. `ECDHE-ECDSA-AES256-GCM-SHA384` (TLS 1.3 suites use
//!   their IANA names in OpenSSL too);
//! - for TLS 1.3 suites, a `TLS13_` alias, e.g. `TLS13_AES_128_GCM_SHA256`;
//! - its 16-bit identifier, `TLS_CIPHER_0xNNNN`, accepted for any value.
//!
//! An unknown name is an error. A known cipher that the aws-lc-rs provider does not
//! implement is not an error when preferred: it becomes a [`CipherWarning`] for the
//! glue to log, so that a configuration survives rustls dropping a suite.

use std::borrow::Cow;
use std::fmt;

use rustls::{CipherSuite, SupportedCipherSuite};

use crate::protocol::MinProtocol;

/// One entry of the cipher table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherInfo {
    /// The 16-bit identifier, as sent on the wire.
    pub id: u16,
    /// The IANA name.
    pub iana: &'static str,
    /// The OpenSSL name, where OpenSSL has one that differs from the IANA name.
    pub openssl: Option<&'static str>,
    /// Whether this is a TLS 1.3 suite (which also has a `TLS13_*` alias).
    pub tls13: bool,
    /// Effective key bits (`SSL_CIPHER_USEKEYSIZE`).
    pub use_bits: u16,
    /// Key bits of the algorithm (`SSL_CIPHER_ALGKEYSIZE`).
    pub alg_bits: u16,
}

const fn c12(id: u16, iana: &'static str, openssl: &'static str, bits: u16) -> CipherInfo {
    CipherInfo {
        id,
        iana,
        openssl: Some(openssl),
        tls13: false,
        use_bits: bits,
        alg_bits: bits,
    }
}

const fn c13(id: u16, iana: &'static str, bits: u16) -> CipherInfo {
    CipherInfo {
        id,
        iana,
        openssl: None,
        tls13: true,
        use_bits: bits,
        alg_bits: bits,
    }
}

/// The cipher table: all TLS 1.3 suites and the commonly configured TLS 1.2 (and a
/// few legacy) suites of the IANA registry.
pub static CIPHERS: &[CipherInfo] = &[
    // TLS 1.3 (RFC 8446, RFC 8998)
    c13(0x1301, "TLS_AES_128_GCM_SHA256", 128),
    c13(0x1302, "TLS_AES_256_GCM_SHA384", 256),
    c13(0x1303, "TLS_CHACHA20_POLY1305_SHA256", 256),
    c13(0x1304, "TLS_AES_128_CCM_SHA256", 128),
    c13(0x1305, "TLS_AES_128_CCM_8_SHA256", 128),
    c13(0x00C6, "TLS_SM4_GCM_SM3", 128),
    c13(0x00C7, "TLS_SM4_CCM_SM3", 128),
    // ECDHE-ECDSA
    c12(
        0xC02B,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        128,
    ),
    c12(
        0xC02C,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        256,
    ),
    c12(
        0xCCA9,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        256,
    ),
    c12(
        0xC023,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "ECDHE-ECDSA-AES128-SHA256",
        128,
    ),
    c12(
        0xC024,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        "ECDHE-ECDSA-AES256-SHA384",
        256,
    ),
    c12(
        0xC009,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "ECDHE-ECDSA-AES128-SHA",
        128,
    ),
    c12(
        0xC00A,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "ECDHE-ECDSA-AES256-SHA",
        256,
    ),
    c12(
        0xC0AC,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
        "ECDHE-ECDSA-AES128-CCM",
        128,
    ),
    c12(
        0xC0AD,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
        "ECDHE-ECDSA-AES256-CCM",
        256,
    ),
    c12(
        0xC0AE,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
        "ECDHE-ECDSA-AES128-CCM8",
        128,
    ),
    c12(
        0xC0AF,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
        "ECDHE-ECDSA-AES256-CCM8",
        256,
    ),
    // ECDHE-RSA
    c12(
        0xC02F,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        128,
    ),
    c12(
        0xC030,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        256,
    ),
    c12(
        0xCCA8,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
        256,
    ),
    c12(
        0xC027,
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        "ECDHE-RSA-AES128-SHA256",
        128,
    ),
    c12(
        0xC028,
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        "ECDHE-RSA-AES256-SHA384",
        256,
    ),
    c12(
        0xC013,
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "ECDHE-RSA-AES128-SHA",
        128,
    ),
    c12(
        0xC014,
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "ECDHE-RSA-AES256-SHA",
        256,
    ),
    c12(
        0xC012,
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "ECDHE-RSA-DES-CBC3-SHA",
        168,
    ),
    // DHE-RSA
    c12(
        0x009E,
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        "DHE-RSA-AES128-GCM-SHA256",
        128,
    ),
    c12(
        0x009F,
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        "DHE-RSA-AES256-GCM-SHA384",
        256,
    ),
    c12(
        0xCCAA,
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "DHE-RSA-CHACHA20-POLY1305",
        256,
    ),
    c12(
        0x0067,
        "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        "DHE-RSA-AES128-SHA256",
        128,
    ),
    c12(
        0x006B,
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        "DHE-RSA-AES256-SHA256",
        256,
    ),
    c12(
        0x0033,
        "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        "DHE-RSA-AES128-SHA",
        128,
    ),
    c12(
        0x0039,
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        "DHE-RSA-AES256-SHA",
        256,
    ),
    c12(
        0xC09E,
        "TLS_DHE_RSA_WITH_AES_128_CCM",
        "DHE-RSA-AES128-CCM",
        128,
    ),
    c12(
        0xC09F,
        "TLS_DHE_RSA_WITH_AES_256_CCM",
        "DHE-RSA-AES256-CCM",
        256,
    ),
    c12(
        0xC0A2,
        "TLS_DHE_RSA_WITH_AES_128_CCM_8",
        "DHE-RSA-AES128-CCM8",
        128,
    ),
    c12(
        0xC0A3,
        "TLS_DHE_RSA_WITH_AES_256_CCM_8",
        "DHE-RSA-AES256-CCM8",
        256,
    ),
    // RSA key exchange
    c12(
        0x009C,
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "AES128-GCM-SHA256",
        128,
    ),
    c12(
        0x009D,
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "AES256-GCM-SHA384",
        256,
    ),
    c12(
        0x003C,
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "AES128-SHA256",
        128,
    ),
    c12(
        0x003D,
        "TLS_RSA_WITH_AES_256_CBC_SHA256",
        "AES256-SHA256",
        256,
    ),
    c12(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", 128),
    c12(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA", 256),
    c12(0xC09C, "TLS_RSA_WITH_AES_128_CCM", "AES128-CCM", 128),
    c12(0xC09D, "TLS_RSA_WITH_AES_256_CCM", "AES256-CCM", 256),
    c12(0xC0A0, "TLS_RSA_WITH_AES_128_CCM_8", "AES128-CCM8", 128),
    c12(0xC0A1, "TLS_RSA_WITH_AES_256_CCM_8", "AES256-CCM8", 256),
    c12(
        0x0041,
        "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
        "CAMELLIA128-SHA",
        128,
    ),
    c12(
        0x0084,
        "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
        "CAMELLIA256-SHA",
        256,
    ),
    CipherInfo {
        id: 0x000A,
        iana: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        openssl: Some("DES-CBC3-SHA"),
        tls13: false,
        use_bits: 112,
        alg_bits: 168,
    },
    c12(0x0005, "TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA", 128),
    c12(0x0004, "TLS_RSA_WITH_RC4_128_MD5", "RC4-MD5", 128),
    // PSK
    c12(
        0x00A8,
        "TLS_PSK_WITH_AES_128_GCM_SHA256",
        "PSK-AES128-GCM-SHA256",
        128,
    ),
    c12(
        0x00A9,
        "TLS_PSK_WITH_AES_256_GCM_SHA384",
        "PSK-AES256-GCM-SHA384",
        256,
    ),
    c12(
        0xCCAB,
        "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
        "PSK-CHACHA20-POLY1305",
        256,
    ),
    c12(
        0xCCAC,
        "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-PSK-CHACHA20-POLY1305",
        256,
    ),
    // Legacy names that still appear in old configurations.
    CipherInfo {
        id: 0xFEFE,
        iana: "SSL_RSA_FIPS_WITH_DES_CBC_SHA",
        openssl: None,
        tls13: false,
        use_bits: 56,
        alg_bits: 56,
    },
    CipherInfo {
        id: 0x0000,
        iana: "TLS_NULL_WITH_NULL_NULL",
        openssl: None,
        tls13: false,
        use_bits: 0,
        alg_bits: 0,
    },
];

/// Errors from cipher names and lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// The name is none of the known names.
    #[error(
        "unknown cipher \"{0}\" (use an IANA name, an OpenSSL name, TLS13_* or TLS_CIPHER_0xNNNN)"
    )]
    Unknown(String),
    /// A `TLS_CIPHER_0x` name whose number is not 1 to 4 hex digits.
    #[error("invalid cipher id \"{0}\": expected TLS_CIPHER_0x followed by 1 to 4 hex digits")]
    InvalidId(String),
    /// Suppressing left no cipher suite for any enabled protocol version.
    #[error("no cipher suite is left for {protocols} after TLSCiphersSuppress")]
    NoSuitesLeft {
        /// The enabled protocol versions, e.g. `TLSv1.2, TLSv1.3`.
        protocols: String,
    },
}

/// A non-fatal finding about a cipher list, for the glue to log as a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherWarning {
    /// A preferred cipher is known but not implemented by the crypto provider.
    Unsupported {
        /// The suite.
        suite: CipherSuite,
    },
}

impl fmt::Display for CipherWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported { suite } => write!(
                f,
                "cipher {} (0x{:04x}) is not supported by rustls (aws-lc-rs); preference ignored",
                iana_name(*suite),
                u16::from(*suite)
            ),
        }
    }
}

/// The table entry for a suite, if it is in the table.
pub fn info(suite: CipherSuite) -> Option<&'static CipherInfo> {
    let id = u16::from(suite);
    CIPHERS.iter().find(|c| c.id == id)
}

/// Parse one cipher name in any of the accepted forms.
pub fn parse_name(name: &str) -> Result<CipherSuite, CipherError> {
    let n = name.trim();
    if n.len() > 13 && n[..13].eq_ignore_ascii_case("TLS_CIPHER_0x") {
        let hex = &n[13..];
        if hex.is_empty() || hex.len() > 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CipherError::InvalidId(name.to_string()));
        }
        let id =
            u16::from_str_radix(hex, 16).map_err(|_| CipherError::InvalidId(name.to_string()))?;
        return Ok(CipherSuite::from(id));
    }
    if n.len() > 6 && n[..6].eq_ignore_ascii_case("TLS13_") {
        let rest = &n[6..];
        return CIPHERS
            .iter()
            .find(|c| c.tls13 && c.iana[4..].eq_ignore_ascii_case(rest))
            .map(|c| CipherSuite::from(c.id))
            .ok_or_else(|| CipherError::Unknown(name.to_string()));
    }
    CIPHERS
        .iter()
        .find(|c| {
            c.iana.eq_ignore_ascii_case(n) || c.openssl.is_some_and(|o| o.eq_ignore_ascii_case(n))
        })
        .map(|c| CipherSuite::from(c.id))
        .ok_or_else(|| CipherError::Unknown(name.to_string()))
}

/// Parse a cipher list separated by `:`, `,` or whitespace. Duplicates are dropped.
///
/// A list that is exactly `default` or `none` (the directives' "reset" words) gives an
/// empty list.
pub fn parse_list(list: &str) -> Result<Vec<CipherSuite>, CipherError> {
    let t = list.trim();
    if t.eq_ignore_ascii_case("default") || t.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out: Vec<CipherSuite> = Vec::new();
    for name in t
        .split(|ch: char| ch == ':' || ch == ',' || ch.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let suite = parse_name(name)?;
        if !out.contains(&suite) {
            out.push(suite);
        }
    }
    Ok(out)
}

/// The outcome of [`select_suites`].
#[derive(Debug, Clone)]
pub struct CipherSelection {
    /// The enabled suites, in server preference order.
    pub suites: Vec<SupportedCipherSuite>,
    /// The protocol versions that still have at least one suite, highest first.
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    /// Findings for the glue to log as warnings.
    pub warnings: Vec<CipherWarning>,
}

/// Compute the ordered suite list of a virtual host.
///
/// `available` is the provider's suite list (in its default preference order).
/// Suites of versions below `min` are dropped; `prefer` suites come first, in the
/// given order; `suppress` suites are removed (suppressing an unsupported suite is
/// silently fine). A version left without suites is disabled (logged at info); an
/// empty result is [`CipherError::NoSuitesLeft`].
pub fn select_suites(
    available: &[SupportedCipherSuite],
    min: MinProtocol,
    prefer: &[CipherSuite],
    suppress: &[CipherSuite],
) -> Result<CipherSelection, CipherError> {
    let versions = min.versions();
    let mut warnings = Vec::new();
    let enabled = |s: &SupportedCipherSuite| {
        versions.iter().any(|v| v.version == s.version().version) && !suppress.contains(&s.suite())
    };
    let mut suites: Vec<SupportedCipherSuite> = Vec::with_capacity(available.len());
    for p in prefer {
        match available.iter().find(|s| s.suite() == *p) {
            Some(s) if enabled(s) => {
                if !suites.iter().any(|x| x.suite() == s.suite()) {
                    suites.push(*s);
                }
            }
            Some(_) => {
                tracing::debug!(cipher = %iana_name(*p), "preferred cipher is suppressed or of a disabled protocol version");
            }
            None => warnings.push(CipherWarning::Unsupported { suite: *p }),
        }
    }
    for s in available {
        if enabled(s) && !suites.iter().any(|x| x.suite() == s.suite()) {
            suites.push(*s);
        }
    }
    if suites.is_empty() {
        let protocols = versions
            .iter()
            .map(|v| crate::protocol::protocol_name(v.version))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CipherError::NoSuitesLeft { protocols });
    }
    let kept: Vec<_> = versions
        .into_iter()
        .filter(|v| {
            let any = suites.iter().any(|s| s.version().version == v.version);
            if !any {
                tracing::info!(
                    protocol = %crate::protocol::protocol_name(v.version),
                    "all cipher suites of this protocol version are suppressed; it is disabled"
                );
            }
            any
        })
        .collect();
    Ok(CipherSelection {
        suites,
        versions: kept,
        warnings,
    })
}

/// The IANA name of a suite (as `SSL_CIPHER` shows it in mod_tls); `TLS_CIPHER_0xNNNN`
/// for suites in neither the table nor rustls.
pub fn iana_name(suite: CipherSuite) -> Cow<'static, str> {
    if let Some(i) = info(suite) {
        return Cow::Borrowed(i.iana);
    }
    match suite.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(format!("TLS_CIPHER_0x{:04x}", u16::from(suite))),
    }
}

/// The OpenSSL-style name of a suite (the IANA name for TLS 1.3 suites and for suites
/// OpenSSL has no name for).
pub fn openssl_name(suite: CipherSuite) -> Cow<'static, str> {
    match info(suite).and_then(|i| i.openssl) {
        Some(o) => Cow::Borrowed(o),
        None => iana_name(suite),
    }
}

/// `(use_bits, alg_bits)` of a suite, for `SSL_CIPHER_USEKEYSIZE` and
/// `SSL_CIPHER_ALGKEYSIZE`.
pub fn key_sizes(suite: CipherSuite) -> Option<(u16, u16)> {
    info(suite).map(|i| (i.use_bits, i.alg_bits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;

    #[test]
    fn table_is_consistent() {
        for (i, a) in CIPHERS.iter().enumerate() {
            for b in &CIPHERS[i + 1..] {
                assert_ne!(a.id, b.id, "{} / {}", a.iana, b.iana);
                assert!(!a.iana.eq_ignore_ascii_case(b.iana));
            }
            if a.tls13 {
                assert!(a.iana.starts_with("TLS_"));
            }
        }
        // Every suite the provider supports has a table entry with key sizes.
        for s in crate::base_provider().cipher_suites {
            assert!(info(s.suite()).is_some(), "{:?}", s.suite());
            // and the IANA name agrees with rustls' name
            let rustls_name = s.suite().as_str().unwrap().replace("TLS13_", "TLS_");
            assert_eq!(iana_name(s.suite()), rustls_name);
        }
    }

    #[test]
    fn parses_every_form() {
        let want = CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384;
        assert_eq!(
            parse_name("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384").unwrap(),
            want
        );
        assert_eq!(parse_name("ECDHE-ECDSA-AES256-SHA384").unwrap(), want);
        assert_eq!(parse_name("ecdhe-ecdsa-aes256-sha384").unwrap(), want);
        assert_eq!(parse_name("TLS_CIPHER_0xc024").unwrap(), want);
        assert_eq!(parse_name("TLS_CIPHER_0xC024").unwrap(), want);
        assert_eq!(
            parse_name("TLS13_AES_128_GCM_SHA256").unwrap(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert_eq!(
            parse_name("TLS_AES_128_GCM_SHA256").unwrap(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        // Unknown ids are accepted in numeric form.
        assert_eq!(u16::from(parse_name("TLS_CIPHER_0xabcd").unwrap()), 0xabcd);
        assert!(matches!(
            parse_name("TLS_CIPHER_0x12345"),
            Err(CipherError::InvalidId(_))
        ));
        assert!(matches!(
            parse_name("TLS_CIPHER_0xzz"),
            Err(CipherError::InvalidId(_))
        ));
        assert!(matches!(
            parse_name("NOT-A-CIPHER"),
            Err(CipherError::Unknown(_))
        ));
        assert!(matches!(
            parse_name("TLS13_ECDHE-RSA-AES128-SHA"),
            Err(CipherError::Unknown(_))
        ));
    }

    #[test]
    fn parses_lists() {
        let l = parse_list("ECDHE-RSA-AES128-GCM-SHA256:TLS13_AES_256_GCM_SHA384  TLS_CIPHER_0x1303\tECDHE-RSA-AES128-GCM-SHA256").unwrap();
        assert_eq!(
            l,
            vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            ]
        );
        assert!(parse_list("default").unwrap().is_empty());
        assert!(parse_list("none").unwrap().is_empty());
        assert!(parse_list("AES128-SHA:bogus").is_err());
    }

    #[test]
    fn prefer_and_suppress() {
        let avail = crate::base_provider().cipher_suites;
        let prefer = parse_list("TLS13_CHACHA20_POLY1305_SHA256 ECDHE-ECDSA-AES128-GCM-SHA256 SSL_RSA_FIPS_WITH_DES_CBC_SHA AES128-SHA").unwrap();
        let suppress = parse_list("TLS_AES_256_GCM_SHA384:AES256-SHA").unwrap();
        let sel = select_suites(&avail, MinProtocol::Default, &prefer, &suppress).unwrap();
        assert_eq!(
            sel.suites[0].suite(),
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );
        assert_eq!(
            sel.suites[1].suite(),
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        );
        assert!(
            !sel.suites
                .iter()
                .any(|s| s.suite() == CipherSuite::TLS13_AES_256_GCM_SHA384)
        );
        assert_eq!(sel.suites.len(), avail.len() - 1);
        assert_eq!(sel.warnings.len(), 2);
        assert_eq!(sel.versions.len(), 2);
        assert!(
            sel.warnings[0]
                .to_string()
                .contains("SSL_RSA_FIPS_WITH_DES_CBC_SHA")
        );
    }

    #[test]
    fn suppressing_a_whole_version() {
        let avail = crate::base_provider().cipher_suites;
        let all13 = parse_list(
            "TLS13_AES_128_GCM_SHA256 TLS13_AES_256_GCM_SHA384 TLS13_CHACHA20_POLY1305_SHA256",
        )
        .unwrap();
        // Only 1.3 enabled and all 1.3 suites suppressed: error.
        let e = select_suites(&avail, MinProtocol::Tls13, &[], &all13).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no cipher suite is left for TLSv1.3 after TLSCiphersSuppress"
        );
        // Both enabled: 1.3 is disabled, 1.2 stays.
        let sel = select_suites(&avail, MinProtocol::Default, &[], &all13).unwrap();
        assert_eq!(sel.versions.len(), 1);
        assert_eq!(sel.versions[0].version, rustls::ProtocolVersion::TLSv1_2);
        // Everything suppressed.
        let all: Vec<_> = avail.iter().map(|s| s.suite()).collect();
        assert!(select_suites(&avail, MinProtocol::Default, &[], &all).is_err());
        // 1.3 only drops 1.2 suites.
        let sel = select_suites(&avail, MinProtocol::Tls13, &[], &[]).unwrap();
        assert!(sel.suites.iter().all(|s| s.tls13().is_some()));
    }

    #[test]
    fn names_and_sizes() {
        let s = cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256.suite();
        assert_eq!(iana_name(s), "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256");
        assert_eq!(openssl_name(s), "ECDHE-RSA-CHACHA20-POLY1305");
        assert_eq!(key_sizes(s), Some((256, 256)));
        let s = cs::TLS13_AES_128_GCM_SHA256.suite();
        assert_eq!(openssl_name(s), "TLS_AES_128_GCM_SHA256");
        assert_eq!(key_sizes(s), Some((128, 128)));
        assert_eq!(
            key_sizes(CipherSuite::TLS_RSA_WITH_3DES_EDE_CBC_SHA),
            Some((112, 168))
        );
        assert_eq!(iana_name(CipherSuite::from(0xabcd)), "TLS_CIPHER_0xabcd");
    }
}
