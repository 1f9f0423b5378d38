//! TLS protocol versions: the `TLSProtocol` / `TLSProxyProtocol` directive values.
//!
//! mod_tls configures a *minimum* version only. rustls speaks TLS 1.2 and 1.3, so
//! the accepted values are `default` (1.2 and 1.3), `TLSv1.2+`, `TLSv1.3+` and the
//! numeric forms `TLSv0x0303+`, `TLSv0x0304+`. The `TLSv` prefix is
//! case-insensitive.

use std::fmt;
use std::str::FromStr;

use rustls::{ProtocolVersion, SupportedProtocolVersion};

/// The accepted spellings, as shown in error messages.
const EXPECTED: &str = "default, TLSv1.2+, TLSv1.3+, TLSv0x0303+, TLSv0x0304+";

/// Errors from parsing a `TLSProtocol` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The value is not one of the accepted spellings.
    #[error("expected one of {EXPECTED}; got \"{0}\"")]
    Invalid(String),
    /// The value names a real TLS/SSL version that rustls does not implement.
    #[error(
        "{version} is not supported by rustls (it supports TLSv1.2 and TLSv1.3); expected one of {EXPECTED}; got \"{value}\""
    )]
    Unsupported {
        /// The value as given.
        value: String,
        /// The version it names, e.g. `TLSv1.1`.
        version: String,
    },
}

/// The minimum TLS version of a virtual host (or proxy section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MinProtocol {
    /// `default`: every version rustls supports (today TLS 1.2 and 1.3).
    #[default]
    Default,
    /// `TLSv1.2+`.
    Tls12,
    /// `TLSv1.3+`.
    Tls13,
}

impl MinProtocol {
    /// Parse a `TLSProtocol` argument.
    pub fn parse(value: &str) -> Result<Self, ProtocolError> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("default") {
            return Ok(Self::Default);
        }
        let invalid = || ProtocolError::Invalid(value.to_string());
        let rest = match v.get(..4) {
            Some(prefix) if prefix.eq_ignore_ascii_case("tlsv") => &v[4..],
            _ => {
                // `SSLv3+` names a real, unsupported protocol.
                if v.len() >= 5 && v[..5].eq_ignore_ascii_case("sslv3") {
                    return Err(ProtocolError::Unsupported {
                        value: value.to_string(),
                        version: "SSLv3".to_string(),
                    });
                }
                return Err(invalid());
            }
        };
        let Some(num) = rest.strip_suffix('+') else {
            return Err(invalid());
        };
        let wire: u16 = if let Some(hex) = num.strip_prefix("0x").or_else(|| num.strip_prefix("0X"))
        {
            if hex.is_empty() || hex.len() > 4 {
                return Err(invalid());
            }
            u16::from_str_radix(hex, 16).map_err(|_| invalid())?
        } else {
            match num {
                "1.0" => 0x0301,
                "1.1" => 0x0302,
                "1.2" => 0x0303,
                "1.3" => 0x0304,
                _ => return Err(invalid()),
            }
        };
        match wire {
            0x0303 => Ok(Self::Tls12),
            0x0304 => Ok(Self::Tls13),
            0x0300..=0x0302 => Err(ProtocolError::Unsupported {
                value: value.to_string(),
                version: version_label(wire),
            }),
            _ => Err(invalid()),
        }
    }

    /// The rustls protocol versions enabled by this minimum, highest first.
    pub fn versions(self) -> Vec<&'static SupportedProtocolVersion> {
        match self {
            Self::Default | Self::Tls12 => vec![&rustls::version::TLS13, &rustls::version::TLS12],
            Self::Tls13 => vec![&rustls::version::TLS13],
        }
    }

    /// Whether a negotiated version satisfies this minimum (used by the glue for the
    /// 421 check when a request's virtual host differs from the SNI one).
    pub fn allows(self, version: ProtocolVersion) -> bool {
        let wire = u16::from(version);
        match self {
            Self::Default | Self::Tls12 => wire >= 0x0303,
            Self::Tls13 => wire >= 0x0304,
        }
    }
}

impl FromStr for MinProtocol {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for MinProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::Tls12 => "TLSv1.2+",
            Self::Tls13 => "TLSv1.3+",
        })
    }
}

fn version_label(wire: u16) -> String {
    match wire {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        other => format!("TLSv0x{other:04x}"),
    }
}

/// The name of a protocol version as `SSL_PROTOCOL` shows it (`TLSv1.2`, `TLSv1.3`);
/// unknown versions are shown as `TLSv0xNNNN`.
pub fn protocol_name(version: ProtocolVersion) -> String {
    version_label(u16::from(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_accepted_values() {
        assert_eq!(MinProtocol::parse("default").unwrap(), MinProtocol::Default);
        assert_eq!(MinProtocol::parse("DEFAULT").unwrap(), MinProtocol::Default);
        assert_eq!(MinProtocol::parse("TLSv1.2+").unwrap(), MinProtocol::Tls12);
        assert_eq!(MinProtocol::parse("tlsv1.3+").unwrap(), MinProtocol::Tls13);
        assert_eq!(
            MinProtocol::parse("TLSv0x0303+").unwrap(),
            MinProtocol::Tls12
        );
        assert_eq!(
            MinProtocol::parse("TlSv0x0304+").unwrap(),
            MinProtocol::Tls13
        );
        assert_eq!(
            "TLSv1.3+".parse::<MinProtocol>().unwrap(),
            MinProtocol::Tls13
        );
    }

    #[test]
    fn rejects_with_apachectl_style_messages() {
        let e = MinProtocol::parse("TLSv1.1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected one of default, TLSv1.2+, TLSv1.3+, TLSv0x0303+, TLSv0x0304+; got \"TLSv1.1\""
        );
        // A version without '+' is not accepted either.
        assert!(matches!(
            MinProtocol::parse("TLSv1.2"),
            Err(ProtocolError::Invalid(_))
        ));
        assert!(matches!(
            MinProtocol::parse("TLSv0x0305+"),
            Err(ProtocolError::Invalid(_))
        ));
        assert!(matches!(
            MinProtocol::parse("bogus"),
            Err(ProtocolError::Invalid(_))
        ));
        let e = MinProtocol::parse("TLSv1.1+").unwrap_err();
        assert!(matches!(e, ProtocolError::Unsupported { .. }));
        assert!(
            e.to_string()
                .starts_with("TLSv1.1 is not supported by rustls")
        );
        let e = MinProtocol::parse("TLSv0x0301+").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("TLSv1.0 is not supported by rustls")
        );
        assert!(matches!(
            MinProtocol::parse("SSLv3+"),
            Err(ProtocolError::Unsupported { .. })
        ));
    }

    #[test]
    fn versions_and_names() {
        assert_eq!(MinProtocol::Default.versions().len(), 2);
        assert_eq!(MinProtocol::Tls13.versions().len(), 1);
        assert_eq!(
            MinProtocol::Tls13.versions()[0].version,
            ProtocolVersion::TLSv1_3
        );
        assert!(MinProtocol::Tls12.allows(ProtocolVersion::TLSv1_3));
        assert!(!MinProtocol::Tls13.allows(ProtocolVersion::TLSv1_2));
        assert_eq!(protocol_name(ProtocolVersion::TLSv1_2), "TLSv1.2");
        assert_eq!(protocol_name(ProtocolVersion::TLSv1_3), "TLSv1.3");
        assert_eq!(MinProtocol::Tls13.to_string(), "TLSv1.3+");
    }
}
