//! Values of the `SSL_*` variables (mod_ssl / mod_tls names) for a connection.
//!
//! mod_tls sets `HTTPS`, `SSL_TLS_SNI`, `SSL_PROTOCOL` and `SSL_CIPHER` always, the
//! [`std_env_vars`](ConnectionInfo::std_env_vars) set with `TLSOptions StdEnvVars`
//! and `SSL_SERVER_CERT` with `ExportCertData`. Unlike mod_tls, the server
//! certificate fields that mod_ssl provides (`SSL_SERVER_S_DN`, ...) are computed
//! here. `SSL_CIPHER` is the IANA name, as in mod_tls. `SSL_SESSION_ID` is never
//! provided. Client-certificate variables are not, as client certificates are not
//! supported. Name lookup is ASCII case-insensitive, as in mod_ssl.

use rustls::{CipherSuite, ProtocolVersion};

use crate::certs::{CertInfo, DistinguishedName};
use crate::ciphers;
use crate::protocol::protocol_name;

/// What the variables are computed from.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionInfo<'a> {
    /// The negotiated protocol version.
    pub protocol: Option<ProtocolVersion>,
    /// The negotiated cipher suite.
    pub cipher: Option<CipherSuite>,
    /// The SNI host name sent by the client.
    pub sni: Option<&'a str>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// The leaf certificate the server presented.
    pub server_cert: Option<&'a CertInfo>,
    /// The rustls version, e.g. `0.23.46` (`SSL_VERSION_LIBRARY` = `rustls/<this>`).
    pub library_version: &'a str,
    /// The module's version string for `SSL_VERSION_INTERFACE`, e.g.
    /// `mod_bastion/0.1.0`.
    pub interface_version: &'a str,
}

/// The DN component suffixes of mod_ssl and the attribute short names they map to.
const DN_PARTS: &[(&str, &str)] = &[
    ("C", "C"),
    ("ST", "ST"),
    ("SP", "ST"),
    ("L", "L"),
    ("O", "O"),
    ("OU", "OU"),
    ("CN", "CN"),
    ("T", "title"),
    ("I", "initials"),
    ("G", "GN"),
    ("S", "SN"),
    ("D", "description"),
    ("UID", "UID"),
    ("EMAIL", "emailAddress"),
];

/// The suffixes listed by `StdEnvVars` (without the `SP` alias).
const DN_LISTED: &[&str] = &[
    "C", "ST", "L", "O", "OU", "CN", "T", "I", "G", "S", "D", "UID", "Email",
];

/// Variables listed by `StdEnvVars`, in mod_ssl's order (DN parts and SAN entries
/// follow).
const STD_NAMES: &[&str] = &[
    "SSL_VERSION_INTERFACE",
    "SSL_VERSION_LIBRARY",
    "SSL_PROTOCOL",
    "SSL_SECURE_RENEG",
    "SSL_COMPRESS_METHOD",
    "SSL_CIPHER",
    "SSL_CIPHER_EXPORT",
    "SSL_CIPHER_USEKEYSIZE",
    "SSL_CIPHER_ALGKEYSIZE",
    "SSL_CLIENT_VERIFY",
    "SSL_SERVER_M_VERSION",
    "SSL_SERVER_M_SERIAL",
    "SSL_SERVER_V_START",
    "SSL_SERVER_V_END",
    "SSL_SERVER_S_DN",
    "SSL_SERVER_I_DN",
    "SSL_SERVER_A_KEY",
    "SSL_SERVER_A_SIG",
    "SSL_SESSION_RESUMED",
    "SSL_TLS_SNI",
];

fn dn_component(dn: &DistinguishedName, spec: &str) -> Option<String> {
    // spec is e.g. "CN", "OU_1"
    let (part, idx) = match spec.rsplit_once('_') {
        Some((p, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (p, n.parse::<usize>().ok()?)
        }
        _ => (spec, 0),
    };
    let attr = DN_PARTS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(part))
        .map(|(_, a)| *a)?;
    dn.values(attr).nth(idx).map(str::to_string)
}

impl ConnectionInfo<'_> {
    /// The value of one variable, or `None` if it is unknown or has no value.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let n = name.to_ascii_uppercase();
        let cert = self.server_cert;
        match n.as_str() {
            "HTTPS" => Some("on".into()),
            "SSL_TLS_SNI" => self.sni.map(str::to_string),
            "SSL_PROTOCOL" => self.protocol.map(protocol_name),
            "SSL_CIPHER" => self.cipher.map(|c| ciphers::iana_name(c).into_owned()),
            "SSL_CIPHER_USEKEYSIZE" => self
                .cipher
                .and_then(ciphers::key_sizes)
                .map(|(u, _)| u.to_string()),
            "SSL_CIPHER_ALGKEYSIZE" => self
                .cipher
                .and_then(ciphers::key_sizes)
                .map(|(_, a)| a.to_string()),
            "SSL_CIPHER_EXPORT" | "SSL_SECURE_RENEG" => Some("false".into()),
            "SSL_COMPRESS_METHOD" => Some("NULL".into()),
            "SSL_CLIENT_VERIFY" => Some("NONE".into()),
            "SSL_SESSION_RESUMED" => Some(if self.resumed { "Resumed" } else { "Initial" }.into()),
            "SSL_VERSION_LIBRARY" => Some(format!("rustls/{}", self.library_version)),
            "SSL_VERSION_INTERFACE" => Some(self.interface_version.to_string()),
            "SSL_SESSION_ID" => None,
            "SSL_SERVER_M_VERSION" => cert.map(|c| c.version.to_string()),
            "SSL_SERVER_M_SERIAL" => cert.map(|c| c.serial_hex.clone()),
            "SSL_SERVER_V_START" => cert.map(|c| c.not_before.clone()),
            "SSL_SERVER_V_END" => cert.map(|c| c.not_after.clone()),
            "SSL_SERVER_S_DN" => cert.map(|c| c.subject.to_rfc2253()),
            "SSL_SERVER_I_DN" => cert.map(|c| c.issuer.to_rfc2253()),
            "SSL_SERVER_A_KEY" => cert.map(|c| c.key_algorithm.clone()),
            "SSL_SERVER_A_SIG" => cert.map(|c| c.signature_algorithm.clone()),
            "SSL_SERVER_CERT" => cert.map(|c| c.pem.clone()),
            other => {
                let cert = cert?;
                if let Some(spec) = other.strip_prefix("SSL_SERVER_S_DN_") {
                    dn_component(&cert.subject, spec)
                } else if let Some(spec) = other.strip_prefix("SSL_SERVER_I_DN_") {
                    dn_component(&cert.issuer, spec)
                } else if let Some(i) = other.strip_prefix("SSL_SERVER_SAN_DNS_") {
                    let i: usize = i.parse().ok()?;
                    cert.dns_names.get(i).cloned()
                } else {
                    None
                }
            }
        }
    }

    fn collect(&self, names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .filter_map(|n| self.lookup(n).map(|v| (n.to_string(), v)))
            .collect()
    }

    /// The variables mod_tls always sets: `HTTPS`, `SSL_TLS_SNI`, `SSL_PROTOCOL`,
    /// `SSL_CIPHER` (those with a value).
    pub fn always(&self) -> Vec<(String, String)> {
        self.collect(&["HTTPS", "SSL_TLS_SNI", "SSL_PROTOCOL", "SSL_CIPHER"])
    }

    /// The `StdEnvVars` set: mod_ssl's standard variables that can be computed,
    /// then the server DN components (`SSL_SERVER_S_DN_CN`, `..._OU_1`, ...) and
    /// SAN DNS names (`SSL_SERVER_SAN_DNS_0`, ...).
    pub fn std_env_vars(&self) -> Vec<(String, String)> {
        let mut out = self.collect(STD_NAMES);
        if let Some(cert) = self.server_cert {
            for (prefix, dn) in [
                ("SSL_SERVER_S_DN_", &cert.subject),
                ("SSL_SERVER_I_DN_", &cert.issuer),
            ] {
                for part in DN_LISTED {
                    let attr = DN_PARTS
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(part))
                        .map(|(_, a)| *a)
                        .unwrap_or(part);
                    for (i, v) in dn.values(attr).enumerate() {
                        let name = if i == 0 {
                            format!("{prefix}{part}")
                        } else {
                            format!("{prefix}{part}_{i}")
                        };
                        out.push((name, v.to_string()));
                    }
                }
            }
            for (i, n) in cert.dns_names.iter().enumerate() {
                out.push((format!("SSL_SERVER_SAN_DNS_{i}"), n.clone()));
            }
        }
        out
    }

    /// The `ExportCertData` set: `SSL_SERVER_CERT`.
    pub fn export_cert_data(&self) -> Vec<(String, String)> {
        self.collect(&["SSL_SERVER_CERT"])
    }
}

/// Free-function form of [`ConnectionInfo::lookup`].
pub fn lookup(info: &ConnectionInfo<'_>, name: &str) -> Option<String> {
    info.lookup(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn values() {
        let l = loaded(Kind::EcP256, &["a.example", "www.a.example"]);
        let info = ConnectionInfo {
            protocol: Some(ProtocolVersion::TLSv1_3),
            cipher: Some(CipherSuite::TLS13_AES_256_GCM_SHA384),
            sni: Some("a.example"),
            resumed: false,
            server_cert: Some(&l.info),
            library_version: "0.23.46",
            interface_version: "mod_bastion/0.1.0",
        };
        let v = |n: &str| info.lookup(n);
        assert_eq!(v("HTTPS").as_deref(), Some("on"));
        assert_eq!(v("SSL_PROTOCOL").as_deref(), Some("TLSv1.3"));
        assert_eq!(v("ssl_cipher").as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        assert_eq!(v("SSL_CIPHER_USEKEYSIZE").as_deref(), Some("256"));
        assert_eq!(v("SSL_CIPHER_ALGKEYSIZE").as_deref(), Some("256"));
        assert_eq!(v("SSL_SESSION_RESUMED").as_deref(), Some("Initial"));
        assert_eq!(v("SSL_VERSION_LIBRARY").as_deref(), Some("rustls/0.23.46"));
        assert_eq!(v("SSL_SECURE_RENEG").as_deref(), Some("false"));
        assert_eq!(v("SSL_COMPRESS_METHOD").as_deref(), Some("NULL"));
        assert_eq!(v("SSL_CIPHER_EXPORT").as_deref(), Some("false"));
        assert_eq!(v("SSL_CLIENT_VERIFY").as_deref(), Some("NONE"));
        assert_eq!(v("SSL_SESSION_ID"), None);
        assert_eq!(
            v("SSL_SERVER_S_DN").as_deref(),
            Some("CN=a.example,O=Bastion Test")
        );
        assert_eq!(
            v("SSL_SERVER_I_DN").as_deref(),
            Some("CN=Bastion Test CA,O=Bastion Test")
        );
        assert_eq!(v("SSL_SERVER_S_DN_CN").as_deref(), Some("a.example"));
        assert_eq!(v("SSL_SERVER_S_DN_CN_0").as_deref(), Some("a.example"));
        assert_eq!(v("SSL_SERVER_S_DN_CN_1"), None);
        assert_eq!(v("SSL_SERVER_I_DN_O").as_deref(), Some("Bastion Test"));
        assert_eq!(v("SSL_SERVER_SAN_DNS_1").as_deref(), Some("www.a.example"));
        assert_eq!(v("SSL_SERVER_M_SERIAL").as_deref(), Some("0102A0FF"));
        assert_eq!(v("SSL_SERVER_M_VERSION").as_deref(), Some("3"));
        assert_eq!(v("SSL_SERVER_A_KEY").as_deref(), Some("id-ecPublicKey"));
        assert_eq!(v("SSL_SERVER_A_SIG").as_deref(), Some("ecdsa-with-SHA256"));
        assert!(v("SSL_SERVER_V_END").unwrap().ends_with(" GMT"));
        assert!(
            v("SSL_SERVER_CERT")
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(v("SSL_NOPE"), None);

        let always = info.always();
        assert_eq!(always.len(), 4);
        let std = info.std_env_vars();
        assert!(
            std.iter()
                .any(|(k, v)| k == "SSL_SERVER_S_DN_CN" && v == "a.example")
        );
        assert!(std.iter().any(|(k, _)| k == "SSL_SERVER_SAN_DNS_0"));
        assert!(
            std.iter()
                .any(|(k, v)| k == "SSL_VERSION_INTERFACE" && v == "mod_bastion/0.1.0")
        );
        assert!(
            !std.iter()
                .any(|(k, _)| k == "SSL_SESSION_ID" || k == "SSL_SERVER_CERT")
        );
        let exp = info.export_cert_data();
        assert_eq!(exp.len(), 1);
        assert_eq!(exp[0].0, "SSL_SERVER_CERT");
    }

    #[test]
    fn tls12_and_resumed() {
        let info = ConnectionInfo {
            protocol: Some(ProtocolVersion::TLSv1_2),
            cipher: Some(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            resumed: true,
            ..Default::default()
        };
        assert_eq!(lookup(&info, "SSL_PROTOCOL").as_deref(), Some("TLSv1.2"));
        assert_eq!(
            lookup(&info, "SSL_CIPHER").as_deref(),
            Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        );
        assert_eq!(
            lookup(&info, "SSL_CIPHER_USEKEYSIZE").as_deref(),
            Some("128")
        );
        assert_eq!(
            lookup(&info, "SSL_SESSION_RESUMED").as_deref(),
            Some("Resumed")
        );
        assert_eq!(lookup(&info, "SSL_SERVER_S_DN"), None);
        assert_eq!(lookup(&info, "SSL_TLS_SNI"), None);
        assert_eq!(info.always().len(), 3);
    }
}
