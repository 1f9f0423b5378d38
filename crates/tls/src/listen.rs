//! `TLSEngine [addr:]port`: which listening addresses speak TLS.

use std::net::IpAddr;

/// An address `TLSEngine` names: a port, optionally bound to one IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineAddr {
    /// The IP address, or `None` for every address (`443`, `*:443`, `0.0.0.0:443`, `[::]:443`).
    pub ip: Option<IpAddr>,
    /// The port.
    pub port: u16,
}

/// A `TLSEngine` value that is not `[addr:]port`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected [addr:]port (e.g. 443, 127.0.0.1:443, [::1]:443, *:443), got \"{0}\"")]
pub struct EngineAddrError(pub String);

impl EngineAddr {
    /// Parses `443`, `*:443`, `127.0.0.1:443`, `[::1]:443`.
    pub fn parse(value: &str) -> Result<EngineAddr, EngineAddrError> {
        let err = || EngineAddrError(value.to_string());
        let v = value.trim();
        let (host, port) = match v.rfind(':') {
            None => (None, v),
            Some(i) => (Some(&v[..i]), &v[i + 1..]),
        };
        let port: u16 = port.parse().map_err(|_| err())?;
        if port == 0 {
            return Err(err());
        }
        let ip = match host {
            None | Some("*") | Some("_default_") => None,
            Some(h) => {
                let h = h
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(h);
                let ip: IpAddr = h.parse().map_err(|_| err())?;
                (!ip.is_unspecified()).then_some(ip)
            }
        };
        Ok(EngineAddr { ip, port })
    }

    /// Whether a connection to `ip:port` (the local side) is covered. Both the address and
    /// the port matter (mod_tls compared only the port and the address length).
    pub fn matches(&self, ip: Option<IpAddr>, port: u16) -> bool {
        if self.port != port {
            return false;
        }
        match (self.ip, ip) {
            (None, _) => true,
            (Some(a), Some(b)) => a == canonical(b),
            (Some(_), None) => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl std::fmt::Display for EngineAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            None => write!(f, "*:{}", self.port),
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.port),
            Some(a) => write!(f, "{a}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            EngineAddr::parse("443").unwrap(),
            EngineAddr {
                ip: None,
                port: 443
            }
        );
        assert_eq!(
            EngineAddr::parse("*:8443").unwrap(),
            EngineAddr {
                ip: None,
                port: 8443
            }
        );
        assert_eq!(EngineAddr::parse("0.0.0.0:443").unwrap().ip, None);
        assert_eq!(
            EngineAddr::parse("127.0.0.1:443").unwrap().ip,
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            EngineAddr::parse("[::1]:443").unwrap().ip,
            Some("::1".parse().unwrap())
        );
        for bad in [
            "",
            "https",
            "0",
            "70000",
            "1.2.3:443",
            "host.example:443",
            ":",
        ] {
            assert!(EngineAddr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            EngineAddr::parse("x").unwrap_err().to_string(),
            "expected [addr:]port (e.g. 443, 127.0.0.1:443, [::1]:443, *:443), got \"x\""
        );
    }

    #[test]
    fn address_and_port_both_matter() {
        let a = EngineAddr::parse("127.0.0.1:443").unwrap();
        assert!(a.matches(Some("127.0.0.1".parse().unwrap()), 443));
        assert!(!a.matches(Some("127.0.0.2".parse().unwrap()), 443));
        assert!(!a.matches(Some("127.0.0.1".parse().unwrap()), 444));
        assert!(a.matches(Some("::ffff:127.0.0.1".parse().unwrap()), 443));
        let any = EngineAddr::parse("443").unwrap();
        assert!(any.matches(Some("10.1.2.3".parse().unwrap()), 443));
        assert!(!any.matches(None, 80));
    }
}
