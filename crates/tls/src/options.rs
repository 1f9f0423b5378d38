//! Values of `TLSOptions`, `TLSSessionCache` and the cipher-list directives.

use crate::ciphers::{self, CipherError};
use rustls::CipherSuite;

/// `TLSOptions`: which `SSL_*` variables go into the request environment. `None` = inherit.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// `StdEnvVars`: the full set of `SSL_*` variables.
    pub std_env_vars: Option<bool>,
    /// `ExportCertData`: `SSL_SERVER_CERT`.
    pub export_cert_data: Option<bool>,
}

/// A `TLSOptions` word that is not an option.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected [+|-]StdEnvVars, ExportCertData or Defaults, got \"{0}\"")]
pub struct OptionsError(pub String);

impl TlsOptions {
    const RESET: TlsOptions = TlsOptions {
        std_env_vars: Some(false),
        export_cert_data: Some(false),
    };

    /// Applies one `TLSOptions` line. As in mod_ssl, an option without a sign replaces the
    /// inherited set (once per line); `+`/`-` add or remove one option and inherit the rest;
    /// `Defaults` resets to all off.
    pub fn apply(&mut self, args: &[&str]) -> Result<(), OptionsError> {
        let mut reset_done = false;
        for a in args {
            let (sign, name) = match a.as_bytes().first() {
                Some(b'+') => (Some(true), &a[1..]),
                Some(b'-') => (Some(false), &a[1..]),
                _ => (None, *a),
            };
            if sign.is_none() && !reset_done {
                *self = Self::RESET;
                reset_done = true;
            }
            let on = sign.unwrap_or(true);
            if name.eq_ignore_ascii_case("StdEnvVars") {
                self.std_env_vars = Some(on);
            } else if name.eq_ignore_ascii_case("ExportCertData") {
                self.export_cert_data = Some(on);
            } else if name.eq_ignore_ascii_case("Defaults") {
                *self = Self::RESET;
            } else {
                return Err(OptionsError(a.to_string()));
            }
        }
        Ok(())
    }

    /// Inner settings win, each option on its own (an inherited `ExportCertData` survives a
    /// `+StdEnvVars` below it; mod_tls lost it).
    pub fn merge(base: &Self, add: &Self) -> Self {
        TlsOptions {
            std_env_vars: add.std_env_vars.or(base.std_env_vars),
            export_cert_data: add.export_cert_data.or(base.export_cert_data),
        }
    }
}

/// `TLSSessionCache`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCacheSpec {
    /// `none`: no shared session cache (tickets still resume).
    None,
    /// `default`: the module's default cache.
    Default,
    /// `provider[:args]`, an httpd socache.
    Provider(String),
}

/// A `TLSSessionCache` value that is none of the forms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "expected none, default or provider[:args] (e.g. shmcb:tls_sessions(1024000)), got \"{0}\""
)]
pub struct SessionCacheError(pub String);

impl SessionCacheSpec {
    /// Parses `none`, `default`, or `provider[:args]` (provider: letters, digits, `_`).
    pub fn parse(value: &str) -> Result<SessionCacheSpec, SessionCacheError> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("none") {
            return Ok(SessionCacheSpec::None);
        }
        if v.eq_ignore_ascii_case("default") {
            return Ok(SessionCacheSpec::Default);
        }
        let provider = v.split(':').next().unwrap_or("");
        if provider.is_empty()
            || !provider
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(SessionCacheError(v.to_string()));
        }
        Ok(SessionCacheSpec::Provider(v.to_string()))
    }
}

/// Errors of the cipher-list directives.
#[derive(Debug, thiserror::Error)]
pub enum CipherListError {
    /// No value given.
    #[error("expected cipher names (IANA, OpenSSL, TLS13_* or TLS_CIPHER_0xNNNN) or {0}")]
    Empty(&'static str),
    /// A name is unknown or malformed.
    #[error(transparent)]
    Cipher(#[from] CipherError),
}

/// The suites of a `TLSCiphersPrefer`/`TLSCiphersSuppress` line (its words, each a name or a
/// `:`-separated list); `empty_word` (`default`/`none`) alone means no suites.
pub fn cipher_list(
    args: &[&str],
    empty_word: &'static str,
) -> Result<Vec<CipherSuite>, CipherListError> {
    if args.is_empty() {
        return Err(CipherListError::Empty(empty_word));
    }
    let joined = args.join(" ");
    let v = joined.trim();
    if v.eq_ignore_ascii_case(empty_word) {
        return Ok(Vec::new());
    }
    Ok(ciphers::parse_list(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(lines: &[&[&str]]) -> TlsOptions {
        let mut o = TlsOptions::default();
        for l in lines {
            o.apply(l).unwrap();
        }
        o
    }

    #[test]
    fn signed_options_add_and_remove() {
        assert_eq!(
            opts(&[&["+StdEnvVars"]]),
            TlsOptions {
                std_env_vars: Some(true),
                export_cert_data: None
            }
        );
        assert_eq!(
            opts(&[&["+StdEnvVars", "-ExportCertData"]]),
            TlsOptions {
                std_env_vars: Some(true),
                export_cert_data: Some(false)
            }
        );
    }

    #[test]
    fn unsigned_options_replace_once_per_line() {
        let o = opts(&[&["+ExportCertData"], &["StdEnvVars", "ExportCertData"]]);
        assert_eq!(
            o,
            TlsOptions {
                std_env_vars: Some(true),
                export_cert_data: Some(true)
            }
        );
        let o = opts(&[&["+ExportCertData"], &["StdEnvVars"]]);
        assert_eq!(
            o,
            TlsOptions {
                std_env_vars: Some(true),
                export_cert_data: Some(false)
            }
        );
        assert_eq!(opts(&[&["+StdEnvVars"], &["Defaults"]]), TlsOptions::RESET);
    }

    #[test]
    fn merge_keeps_each_option() {
        let base = TlsOptions {
            std_env_vars: None,
            export_cert_data: Some(true),
        };
        let add = TlsOptions {
            std_env_vars: Some(true),
            export_cert_data: None,
        };
        assert_eq!(
            TlsOptions::merge(&base, &add),
            TlsOptions {
                std_env_vars: Some(true),
                export_cert_data: Some(true)
            }
        );
    }

    #[test]
    fn bad_option() {
        let mut o = TlsOptions::default();
        assert_eq!(
            o.apply(&["+Bogus"]).unwrap_err().to_string(),
            "expected [+|-]StdEnvVars, ExportCertData or Defaults, got \"+Bogus\""
        );
    }

    #[test]
    fn session_cache_specs() {
        assert_eq!(
            SessionCacheSpec::parse("none").unwrap(),
            SessionCacheSpec::None
        );
        assert_eq!(
            SessionCacheSpec::parse("Default").unwrap(),
            SessionCacheSpec::Default
        );
        assert_eq!(
            SessionCacheSpec::parse("shmcb:/run/x(1000)").unwrap(),
            SessionCacheSpec::Provider("shmcb:/run/x(1000)".into())
        );
        assert!(SessionCacheSpec::parse("bad spec!").is_err());
        assert!(SessionCacheSpec::parse(":x").is_err());
    }

    #[test]
    fn cipher_lists() {
        assert!(matches!(
            cipher_list(&[], "none"),
            Err(CipherListError::Empty("none"))
        ));
        assert!(cipher_list(&["none"], "none").unwrap().is_empty());
        assert_eq!(
            cipher_list(&["TLS13_AES_128_GCM_SHA256:TLS_CIPHER_0x1303"], "default")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            cipher_list(
                &["TLS13_AES_128_GCM_SHA256", "TLS_CIPHER_0x1303"],
                "default"
            )
            .unwrap()
            .len(),
            2
        );
        assert!(cipher_list(&["TLS_NO_SUCH"], "default").is_err());
    }
}
