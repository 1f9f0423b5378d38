//! Encrypted-FastCGI directives (mod_encrypt's, plus scope, cipher, CA and cache
//! lifetimes) and their per-server configuration.

use super::app::AppServer;
use super::audit::AuditLog;
use crate::ServerConf;
use crate::httpd::cmd::{Cmd, CmdResult};
use bastion_seal::CipherSuite;
use bastion_seal::gateway::{EXTERNAL_SERVER_FORM, ExternalServer, KeyScope};
use bastion_seal::keyclient::KeyClient;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// Default `FastCgiMemcachedServer` (mod_encrypt's).
pub const DEFAULT_MEMCACHED: &str = "127.0.0.1:11211";
/// Default `FastCgiKeyCacheTTL`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default `FastCgiKeyServerTimeout`.
pub const DEFAULT_KEY_TIMEOUT: Duration = Duration::from_secs(5);

/// The encrypted-FastCGI part of a server's configuration.
#[derive(Default)]
pub struct FcgiServerConf {
    /// `FastCgiExternalServer`: this server's own first, then inherited ones.
    pub servers: Vec<Arc<AppServer>>,
    /// `FastCgiEncrypt` (default on).
    pub encrypt: Option<bool>,
    /// `FastCgiDecrypt` (default on).
    pub decrypt: Option<bool>,
    /// `FastCgiMemcachedServer` (default 127.0.0.1:11211; `none` disables).
    pub memcached: Option<Vec<String>>,
    /// `FastCgiUserName`.
    pub username: Option<String>,
    /// `FastCgiPassword`.
    pub password: Option<Zeroizing<String>>,
    /// `FastCgiLogpath` (resolved against ServerRoot).
    pub logpath: Option<PathBuf>,
    /// `FastCgiEncryptKeyScope` (default account).
    pub scope: Option<KeyScope>,
    /// `FastCgiCipher` (default aes-256-ctr, as mod_encrypt).
    pub cipher: Option<CipherSuite>,
    /// `FastCgiKeyServerCA`.
    pub ca: Option<PathBuf>,
    /// `FastCgiKeyCacheTTL`.
    pub cache_ttl: Option<Duration>,
    /// `FastCgiKeyServerTimeout`.
    pub key_timeout: Option<Duration>,
    /// The audit log, opened by the parent in post_config.
    pub audit: OnceLock<Option<Arc<AuditLog>>>,
    /// Key clients of this host by (master URL, data URL), made in the child on first use.
    pub clients: Mutex<HashMap<(String, String), Arc<KeyClient>>>,
}

impl FcgiServerConf {
    /// Inner values win; external servers accumulate (the host's own first).
    pub fn merge(base: &Self, add: &Self) -> Self {
        let mut servers = add.servers.clone();
        servers.extend(base.servers.iter().cloned());
        FcgiServerConf {
            servers,
            encrypt: add.encrypt.or(base.encrypt),
            decrypt: add.decrypt.or(base.decrypt),
            memcached: add.memcached.clone().or_else(|| base.memcached.clone()),
            username: add.username.clone().or_else(|| base.username.clone()),
            password: add.password.clone().or_else(|| base.password.clone()),
            logpath: add.logpath.clone().or_else(|| base.logpath.clone()),
            scope: add.scope.clone().or_else(|| base.scope.clone()),
            cipher: add.cipher.or(base.cipher),
            ca: add.ca.clone().or_else(|| base.ca.clone()),
            cache_ttl: add.cache_ttl.or(base.cache_ttl),
            key_timeout: add.key_timeout.or(base.key_timeout),
            audit: OnceLock::new(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether request bodies are encrypted.
    pub fn encrypt(&self) -> bool {
        self.encrypt.unwrap_or(true)
    }

    /// Whether response bodies are decrypted.
    pub fn decrypt(&self) -> bool {
        self.decrypt.unwrap_or(true)
    }

    /// The cipher for new objects.
    pub fn cipher(&self) -> CipherSuite {
        self.cipher.unwrap_or(CipherSuite::Aes256Ctr)
    }

    /// The key scope.
    pub fn scope(&self) -> KeyScope {
        self.scope.clone().unwrap_or_default()
    }

    /// memcached servers (empty: none).
    pub fn memcached(&self) -> Vec<String> {
        self.memcached
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_MEMCACHED.to_string()])
    }

    /// The audit log, if configured and opened.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.get().and_then(|a| a.as_deref())
    }

    /// Checks that encryption can work for every external server this host uses: key
    /// servers, account and CA. Returns what to change.
    pub fn check(&self) -> Result<(), String> {
        if !(self.encrypt() || self.decrypt()) {
            return Ok(());
        }
        for s in &self.servers {
            let spec = &s.spec;
            if spec.master_key_server.is_none() || spec.data_key_server.is_none() {
                return Err(format!(
                    "FastCgiExternalServer {} ({}): FastCgiEncrypt/FastCgiDecrypt are on \
                     (the default) but the line has no -masterkeyserver URL and -datakeyserver \
                     URL; add them, or set FastCgiEncrypt Off and FastCgiDecrypt Off",
                    spec.path, s.defined_at
                ));
            }
            if self.username.is_none() || self.password.is_none() {
                return Err(format!(
                    "FastCgiExternalServer {} ({}): encryption needs the module's key-server \
                     account: add FastCgiUserName and FastCgiPassword",
                    spec.path, s.defined_at
                ));
            }
            if self.ca.is_none() {
                return Err(format!(
                    "FastCgiExternalServer {} ({}): encryption needs FastCgiKeyServerCA \
                     file.pem (the CA that signs the key servers' certificates)",
                    spec.path, s.defined_at
                ));
            }
        }
        Ok(())
    }
}

fn conf(cmd: &mut Cmd) -> &mut FcgiServerConf {
    &mut cmd.server_config::<ServerConf>().fcgi
}

/// `FastCgiExternalServer path -host host:port|-socket path [options]`
pub fn cmd_external_server(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    let (path, opts) = args
        .split_first()
        .ok_or_else(|| format!("expected {EXTERNAL_SERVER_FORM}"))?;
    let path = cmd
        .server_root_relative(path)
        .to_string_lossy()
        .into_owned();
    let mut spec = ExternalServer::parse(&path, opts)
        .map_err(|e| format!("{e}; expected {EXTERNAL_SERVER_FORM}"))?;
    if let bastion_seal::gateway::AppAddress::Unix(p) = &spec.address {
        spec.address =
            bastion_seal::gateway::AppAddress::Unix(cmd.server_root_relative(&p.to_string_lossy()));
    }
    let (file, line) = cmd.location();
    if conf(cmd).servers.iter().any(|s| s.spec.path == spec.path) {
        return Err(format!("{} is already a FastCgiExternalServer", spec.path).into());
    }
    let server = AppServer::new(spec, format!("{file}:{line}"));
    conf(cmd).servers.push(Arc::new(server));
    Ok(())
}

/// `FastCgiEncrypt On|Off`
pub fn cmd_encrypt(cmd: &mut Cmd, on: bool) -> CmdResult {
    conf(cmd).encrypt = Some(on);
    Ok(())
}

/// `FastCgiDecrypt On|Off`
pub fn cmd_decrypt(cmd: &mut Cmd, on: bool) -> CmdResult {
    conf(cmd).decrypt = Some(on);
    Ok(())
}

/// `FastCgiMemcachedServer host:port|none` (repeatable)
pub fn cmd_memcached(cmd: &mut Cmd, value: &str) -> CmdResult {
    let c = conf(cmd);
    if value.eq_ignore_ascii_case("none") {
        c.memcached = Some(Vec::new());
        return Ok(());
    }
    match value.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {}
        _ => return Err(format!("{value:?}: expected host:port or none").into()),
    }
    c.memcached
        .get_or_insert_with(Vec::new)
        .push(value.to_string());
    Ok(())
}

/// `FastCgiUserName name`
pub fn cmd_username(cmd: &mut Cmd, value: &str) -> CmdResult {
    if value.is_empty() {
        return Err("expected the account name at the key servers".into());
    }
    conf(cmd).username = Some(value.to_string());
    Ok(())
}

/// `FastCgiPassword password`
pub fn cmd_password(cmd: &mut Cmd, value: &str) -> CmdResult {
    if value.is_empty() {
        return Err("expected the account's password at the key servers".into());
    }
    conf(cmd).password = Some(Zeroizing::new(value.to_string()));
    Ok(())
}

/// `FastCgiLogpath file`
pub fn cmd_logpath(cmd: &mut Cmd, value: &str) -> CmdResult {
    let p = cmd.server_root_relative(value);
    match p.parent() {
        Some(d) if d.is_dir() => {}
        _ => {
            return Err(format!(
                "expected a file in an existing directory, got {}",
                p.display()
            )
            .into());
        }
    }
    conf(cmd).logpath = Some(p);
    Ok(())
}

/// `FastCgiEncryptKeyScope account|user|header NAME|env NAME`
pub fn cmd_scope(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    conf(cmd).scope = Some(KeyScope::parse(args)?);
    Ok(())
}

/// `FastCgiCipher aes-256-ctr|aes-256-gcm`
pub fn cmd_cipher(cmd: &mut Cmd, value: &str) -> CmdResult {
    let c = CipherSuite::from_name(&value.to_ascii_lowercase())
        .ok_or_else(|| format!("{value:?}: expected aes-256-ctr or aes-256-gcm"))?;
    conf(cmd).cipher = Some(c);
    Ok(())
}

/// `FastCgiKeyServerCA file.pem`
pub fn cmd_ca(cmd: &mut Cmd, value: &str) -> CmdResult {
    let p = cmd.server_root_relative(value);
    if let Err(e) = std::fs::File::open(&p) {
        return Err(format!("expected a readable PEM file, but {}: {e}", p.display()).into());
    }
    conf(cmd).ca = Some(p);
    Ok(())
}

fn parse_seconds(value: &str, max: u64) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&n| (1..=max).contains(&n))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{value:?}: expected seconds (1-{max})"))
}

/// `FastCgiKeyCacheTTL seconds`
pub fn cmd_cache_ttl(cmd: &mut Cmd, value: &str) -> CmdResult {
    conf(cmd).cache_ttl = Some(parse_seconds(value, 86_400)?);
    Ok(())
}

/// `FastCgiKeyServerTimeout seconds`
pub fn cmd_key_timeout(cmd: &mut Cmd, value: &str) -> CmdResult {
    conf(cmd).key_timeout = Some(parse_seconds(value, 300)?);
    Ok(())
}
