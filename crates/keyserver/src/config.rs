//! The configuration file (TOML).
//!
//! ```toml
//! listen = "0.0.0.0:8443"
//! role = "both"                       # master | data | both
//! database = "/var/lib/bastion-keyserver/keys.db"
//! audit_log = "/var/log/bastion-keyserver/audit.log"
//! token_lifetime = 3600               # seconds
//! refresh_interval = 3600             # seconds, advisory, echoed in key responses
//! master_password_file = "/etc/bastion-keyserver/master-password"
//! # master_password_env = "BASTION_KEYSERVER_MASTER_PASSWORD"
//!
//! [tls]
//! certificate = "/etc/bastion-keyserver/cert.pem"
//! key = "/etc/bastion-keyserver/key.pem"
//!
//! [argon2]                            # optional
//! kek_memory_kib = 65536
//! kek_iterations = 3
//! password_memory_kib = 19456
//! password_iterations = 2
//!
//! [upstream_master]                   # role = "data" only
//! url = "https://master.example:8443"
//! username = "data-server"
//! password_file = "/etc/bastion-keyserver/upstream-password"
//! ca_file = "/etc/bastion-keyserver/master-ca.pem"
//! # server_name = "master.example"
//! ```
//!
//! Relative paths are relative to the directory of the configuration file.
//! Secrets are never in the file itself: only where to read them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::crypto::KdfParams;

/// Errors from reading the configuration or a secret it points to.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("{0}")]
    Invalid(String),
}

/// Which keys this server holds and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Master keys only.
    Master,
    /// Data keys only (needs `[upstream_master]` to create keys).
    Data,
    /// Both, in one store.
    Both,
}

impl Role {
    /// Whether `/master/...` is served.
    pub fn serves_master(self) -> bool {
        matches!(self, Role::Master | Role::Both)
    }

    /// Whether `/data/...` is served.
    pub fn serves_data(self) -> bool {
        matches!(self, Role::Data | Role::Both)
    }

    /// `master`, `data` or `both`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Data => "data",
            Role::Both => "both",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// TLS certificate chain and private key (PEM files).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Argon2id costs used by `init` (the KEK; stored in the database, so a
/// later change does not affect an existing store) and by `user add`
/// (stored in each PHC string).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Config {
    /// KEK memory in KiB (default 65536).
    pub kek_memory_kib: u32,
    /// KEK passes (default 3).
    pub kek_iterations: u32,
    /// Password hash memory in KiB (default 19456).
    pub password_memory_kib: u32,
    /// Password hash passes (default 2).
    pub password_iterations: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Argon2Config {
            kek_memory_kib: KdfParams::KEK_DEFAULT.memory_kib,
            kek_iterations: KdfParams::KEK_DEFAULT.iterations,
            password_memory_kib: KdfParams::PASSWORD_DEFAULT.memory_kib,
            password_iterations: KdfParams::PASSWORD_DEFAULT.iterations,
        }
    }
}

impl Argon2Config {
    /// Cost of the KEK derivation.
    pub fn kek(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.kek_memory_kib,
            iterations: self.kek_iterations,
            parallelism: 1,
        }
    }

    /// Cost of account password hashes.
    pub fn password(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.password_memory_kib,
            iterations: self.password_iterations,
            parallelism: 1,
        }
    }
}

/// Where a data-only server gets wrapped data keys: a master key server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamMaster {
    /// `https://host:port` of the master key server.
    pub url: String,
    /// Account on the master server (needs `master-wrap`).
    pub username: String,
    /// File holding that account's password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding that account's password.
    pub password_env: Option<String>,
    /// PEM file of the CA certificate(s) to trust for the master server.
    pub ca_file: PathBuf,
    /// TLS server name to verify, if not the URL's host.
    pub server_name: Option<String>,
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on (HTTPS only).
    pub listen: SocketAddr,
    /// Which keys this server holds.
    pub role: Role,
    /// SQLite database path.
    pub database: PathBuf,
    /// Audit log path (JSON lines, appended).
    pub audit_log: PathBuf,
    /// Token lifetime in seconds (default 3600).
    #[serde(default = "default_lifetime")]
    pub token_lifetime: u64,
    /// Advisory refresh interval in seconds returned with keys (default 3600).
    #[serde(default = "default_lifetime")]
    pub refresh_interval: u64,
    /// File holding the master password (first line).
    pub master_password_file: Option<PathBuf>,
    /// Environment variable holding the master password.
    pub master_password_env: Option<String>,
    /// Server certificate and key.
    pub tls: TlsConfig,
    /// Argon2id costs.
    #[serde(default)]
    pub argon2: Argon2Config,
    /// The master key server, for `role = "data"`.
    pub upstream_master: Option<UpstreamMaster>,
    /// Most concurrent connections (default 256).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_lifetime() -> u64 {
    3600
}

fn default_max_connections() -> usize {
    256
}

/// Reads a secret: the first line of a file, or an environment variable.
/// Exactly one of the two must be given. Trailing `\r`/`\n` are removed;
/// an empty secret is refused.
pub fn read_secret(
    what: &str,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Zeroizing<String>, ConfigError> {
    let raw = match (file, env) {
        (Some(p), None) => {
            #[allow(clippy::collapsible_if)]
            if let Ok(meta) = std::fs::metadata(p) {
                if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
                    tracing::warn!(
                        "{} is readable by group or others; chmod 600 it",
                        p.display()
                    );
                }
            }
            Zeroizing::new(
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
            )
        }
        (None, Some(var)) => Zeroizing::new(std::env::var(var).map_err(|_| {
            ConfigError::Invalid(format!("{what}: environment variable {var} is not set"))
        })?),
        _ => {
            return Err(ConfigError::Invalid(format!(
                "{what}: set exactly one of the file and the environment variable"
            )));
        }
    };
    let line = raw.split('\n').next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(ConfigError::Invalid(format!("{what} is empty")));
    }
    Ok(Zeroizing::new(line.to_string()))
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            ConfigError::Invalid(m) => ConfigError::Invalid(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            message: e.to_string(),
        })?;
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut c.database);
        abs(&mut c.audit_log);
        abs(&mut c.tls.certificate);
        abs(&mut c.tls.key);
        if let Some(p) = c.master_password_file.as_mut() {
            abs(p);
        }
        if let Some(u) = c.upstream_master.as_mut() {
            abs(&mut u.ca_file);
            if let Some(p) = u.password_file.as_mut() {
                abs(p);
            }
        }
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.master_password_file.is_some() == self.master_password_env.is_some() {
            return bad("set exactly one of master_password_file and master_password_env");
        }
        if self.token_lifetime == 0 || self.token_lifetime > 86_400 {
            return bad("token_lifetime must be 1..=86400 seconds");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        match (&self.role, &self.upstream_master) {
            (Role::Data, None) => {
                return bad(
                    "role = \"data\" needs an [upstream_master] section to create data keys",
                );
            }
            (Role::Master | Role::Both, Some(_)) => {
                return bad("[upstream_master] is only for role = \"data\"");
            }
            _ => {}
        }
        if let Some(u) = &self.upstream_master {
            if !u.url.starts_with("https://") {
                return bad("upstream_master.url must start with https://");
            }
            if u.password_file.is_some() == u.password_env.is_some() {
                return bad("set exactly one of upstream_master.password_file and password_env");
            }
        }
        let a = &self.argon2;
        if a.kek_memory_kib < 8
            || a.password_memory_kib < 8
            || a.kek_iterations == 0
            || a.password_iterations == 0
        {
            return bad("argon2 costs must be at least 8 KiB and 1 pass");
        }
        Ok(())
    }

    /// Reads the master password from the configured file or variable.
    pub fn master_password(&self) -> Result<Zeroizing<String>, ConfigError> {
        read_secret(
            "master password",
            self.master_password_file.as_deref(),
            self.master_password_env.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
listen = "127.0.0.1:8443"
role = "both"
database = "keys.db"
audit_log = "/var/log/audit.log"
master_password_env = "X"
[tls]
certificate = "c.pem"
key = "k.pem"
"#;

    #[test]
    fn parses_and_resolves_paths() {
        let c = Config::parse(MIN, Path::new("/etc/bks")).unwrap();
        assert_eq!(c.role, Role::Both);
        assert_eq!(c.database, Path::new("/etc/bks/keys.db"));
        assert_eq!(c.audit_log, Path::new("/var/log/audit.log"));
        assert_eq!(c.tls.key, Path::new("/etc/bks/k.pem"));
        assert_eq!(c.token_lifetime, 3600);
        assert_eq!(c.argon2.kek(), KdfParams::KEK_DEFAULT);
    }

    #[test]
    fn rejects_bad_configs() {
        let base = Path::new("/");
        assert!(Config::parse(&MIN.replace("both", "root"), base).is_err());
        assert!(Config::parse(&format!("{MIN}\nextra = 1"), base).is_err());
        assert!(
            Config::parse(&MIN.replace("master_password_env = \"X\"", ""), base).is_err(),
            "a master password source is required"
        );
        let data = MIN.replace("\"both\"", "\"data\"");
        assert!(Config::parse(&data, base).is_err(), "data needs upstream");
        let data = format!(
            "{data}\n[upstream_master]\nurl = \"https://m:1\"\nusername = \"d\"\npassword_env = \"P\"\nca_file = \"ca.pem\"\n"
        );
        let c = Config::parse(&data, base).unwrap();
        assert_eq!(c.upstream_master.unwrap().ca_file, Path::new("/ca.pem"));
        assert!(Config::parse(&data.replace("https://", "http://"), base).is_err());
    }

    #[test]
    fn secrets() {
        let dir = std::env::temp_dir().join(format!("bks-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\r\nignored\n").unwrap();
        assert_eq!(&*read_secret("pw", Some(&f), None).unwrap(), "s3cret");
        std::fs::write(&f, "\n").unwrap();
        assert!(read_secret("pw", Some(&f), None).is_err());
        assert!(read_secret("pw", None, Some("BKS_SURELY_UNSET_VAR")).is_err());
        assert!(read_secret("pw", Some(&f), Some("X")).is_err());
    }
}
