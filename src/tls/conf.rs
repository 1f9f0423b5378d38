//! TLS directives and their per-server / per-directory configuration.

use crate::httpd::cmd::{Allowed, Cmd, CmdResult};
use crate::{DirConf, ServerConf};
use bastion_tls::{EngineAddr, MinProtocol};
use rustls::CipherSuite;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// One `TLSCertificate cert [key]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate (chain) file, resolved against ServerRoot.
    pub cert: PathBuf,
    /// The key file; `None` when the key is in the certificate file.
    pub key: Option<PathBuf>,
}

/// The TLS part of a server's configuration.
#[derive(Default)]
pub struct TlsServerConf {
    /// `TLSEngine` addresses written in this server's part of the configuration.
    pub engines: Vec<EngineAddr>,
    /// `TLSCertificate`: this server's own first, then the main server's.
    pub certificates: Vec<CertFiles>,
    /// `TLSProtocol`.
    pub protocol: Option<MinProtocol>,
    /// `TLSCiphersPrefer`.
    pub prefer: Option<Vec<CipherSuite>>,
    /// `TLSCiphersSuppress`.
    pub suppress: Option<Vec<CipherSuite>>,
    /// `TLSHonorClientOrder` (default on).
    pub honor_client_order: Option<bool>,
    /// `TLSStrictSNI` (default on).
    pub strict_sni: Option<bool>,
    /// `TLSSessionTickets` (default on).
    pub session_tickets: Option<bool>,
    /// `TLSSessionCache` (main server only).
    pub session_cache: Option<bastion_tls::SessionCacheSpec>,
    /// The host's TLS runtime, built in post_config when the host serves TLS.
    pub runtime: OnceLock<Arc<super::Vhost>>,
    /// Module-wide TLS state (main server only), built in post_config.
    pub global: OnceLock<Arc<super::TlsGlobal>>,
}

impl TlsServerConf {
    /// Inner values win; certificates accumulate (the host's own first).
    pub fn merge(base: &Self, add: &Self) -> Self {
        let mut certificates = add.certificates.clone();
        certificates.extend(
            base.certificates
                .iter()
                .filter(|c| !add.certificates.contains(c))
                .cloned(),
        );
        TlsServerConf {
            engines: add.engines.clone(),
            certificates,
            protocol: add.protocol.or(base.protocol),
            prefer: add.prefer.clone().or_else(|| base.prefer.clone()),
            suppress: add.suppress.clone().or_else(|| base.suppress.clone()),
            honor_client_order: add.honor_client_order.or(base.honor_client_order),
            strict_sni: add.strict_sni.or(base.strict_sni),
            session_tickets: add.session_tickets.or(base.session_tickets),
            session_cache: add
                .session_cache
                .clone()
                .or_else(|| base.session_cache.clone()),
            runtime: OnceLock::new(),
            global: OnceLock::new(),
        }
    }
}

/// The TLS part of a directory's configuration (`TLSOptions`).
pub type TlsDirConf = bastion_tls::TlsOptions;

fn tls(cmd: &mut Cmd) -> &mut TlsServerConf {
    &mut cmd.server_config::<ServerConf>().tls
}

/// `TLSEngine [addr:]port`
pub fn cmd_engine(cmd: &mut Cmd, value: &str) -> CmdResult {
    let addr = EngineAddr::parse(value)?;
    tls(cmd).engines.push(addr);
    Ok(())
}

/// `TLSCertificate cert.pem [key.pem]`
pub fn cmd_certificate(cmd: &mut Cmd, cert: &str, key: Option<&str>) -> CmdResult {
    let cert = cmd.server_root_relative(cert);
    let key = key.map(|k| cmd.server_root_relative(k));
    for f in std::iter::once(&cert).chain(key.as_ref()) {
        if !f.is_file() {
            let what = if f.is_dir() {
                "is a directory"
            } else {
                "does not exist"
            };
            return Err(format!("expected a readable PEM file, but {} {what}", f.display()).into());
        }
        if let Err(e) = std::fs::File::open(f) {
            return Err(format!(
                "expected a readable PEM file, but {} cannot be read: {e}",
                f.display()
            )
            .into());
        }
    }
    tls(cmd).certificates.push(CertFiles { cert, key });
    Ok(())
}

/// `TLSProtocol default|TLSv1.2+|TLSv1.3+|TLSv0x0303+`
pub fn cmd_protocol(cmd: &mut Cmd, value: &str) -> CmdResult {
    tls(cmd).protocol = Some(MinProtocol::parse(value)?);
    Ok(())
}

/// `TLSCiphersPrefer name...|default`
pub fn cmd_ciphers_prefer(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    tls(cmd).prefer = Some(bastion_tls::options::cipher_list(args, "default")?);
    Ok(())
}

/// `TLSCiphersSuppress name...|none`
pub fn cmd_ciphers_suppress(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    tls(cmd).suppress = Some(bastion_tls::options::cipher_list(args, "none")?);
    Ok(())
}

/// `TLSHonorClientOrder on|off`
pub fn cmd_honor_client_order(cmd: &mut Cmd, on: bool) -> CmdResult {
    tls(cmd).honor_client_order = Some(on);
    Ok(())
}

/// `TLSStrictSNI on|off`
pub fn cmd_strict_sni(cmd: &mut Cmd, on: bool) -> CmdResult {
    tls(cmd).strict_sni = Some(on);
    Ok(())
}

/// `TLSSessionTickets on|off`
pub fn cmd_session_tickets(cmd: &mut Cmd, on: bool) -> CmdResult {
    tls(cmd).session_tickets = Some(on);
    Ok(())
}

/// `TLSSessionCache none|default|provider[:args]` (main server only)
pub fn cmd_session_cache(cmd: &mut Cmd, value: &str) -> CmdResult {
    cmd.check(Allowed::GlobalOnly)?;
    tls(cmd).session_cache = Some(bastion_tls::SessionCacheSpec::parse(value)?);
    Ok(())
}

/// `TLSOptions [+|-]StdEnvVars|ExportCertData|Defaults ...`
///
/// An option without a sign replaces the inherited set (as in mod_ssl); with a sign it
/// adds or removes one option and inherits the rest.
pub fn cmd_options(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    cmd.dir_config::<DirConf>().tls.apply(args)?;
    Ok(())
}

/// The backend part of a directory's (or `<Proxy>` section's) configuration (`TLSProxy*`).
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct TlsProxyConf {
    /// `TLSProxyEngine`.
    pub engine: Option<bool>,
    /// `TLSProxyCA`.
    pub ca: Option<PathBuf>,
    /// `TLSProxyProtocol`.
    pub protocol: Option<MinProtocol>,
    /// `TLSProxyCiphersPrefer`.
    pub prefer: Option<Vec<CipherSuite>>,
    /// `TLSProxyCiphersSuppress`.
    pub suppress: Option<Vec<CipherSuite>>,
    /// `TLSProxyMachineCertificate`.
    pub machine_cert: Option<CertFiles>,
}

impl TlsProxyConf {
    /// Inner values win, each on its own.
    pub fn merge(base: &Self, add: &Self) -> Self {
        TlsProxyConf {
            engine: add.engine.or(base.engine),
            ca: add.ca.clone().or_else(|| base.ca.clone()),
            protocol: add.protocol.or(base.protocol),
            prefer: add.prefer.clone().or_else(|| base.prefer.clone()),
            suppress: add.suppress.clone().or_else(|| base.suppress.clone()),
            machine_cert: add
                .machine_cert
                .clone()
                .or_else(|| base.machine_cert.clone()),
        }
    }

    /// The engine's description of these settings.
    pub fn spec(&self) -> bastion_tls::client::ClientSpec {
        bastion_tls::client::ClientSpec {
            ca_file: self.ca.clone(),
            min_protocol: self.protocol.unwrap_or_default(),
            prefer: self.prefer.clone().unwrap_or_default(),
            suppress: self.suppress.clone().unwrap_or_default(),
            machine_cert: self
                .machine_cert
                .as_ref()
                .map(|c| (c.cert.clone(), c.key.clone())),
        }
    }
}

fn proxy(cmd: &mut Cmd) -> &mut TlsProxyConf {
    &mut cmd.dir_config::<DirConf>().tls_proxy
}

fn readable_file(cmd: &Cmd, path: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let p = cmd.server_root_relative(path);
    if !p.is_file() {
        let what = if p.is_dir() {
            "is a directory"
        } else {
            "does not exist"
        };
        return Err(format!("expected a readable PEM file, but {} {what}", p.display()).into());
    }
    std::fs::File::open(&p).map_err(|e| {
        format!(
            "expected a readable PEM file, but {} cannot be read: {e}",
            p.display()
        )
    })?;
    Ok(p)
}

/// `TLSProxyEngine on|off`
pub fn cmd_proxy_engine(cmd: &mut Cmd, on: bool) -> CmdResult {
    proxy(cmd).engine = Some(on);
    Ok(())
}

/// `TLSProxyCA file.pem`
pub fn cmd_proxy_ca(cmd: &mut Cmd, file: &str) -> CmdResult {
    let p = readable_file(cmd, file)?;
    proxy(cmd).ca = Some(p);
    Ok(())
}

/// `TLSProxyProtocol ...`
pub fn cmd_proxy_protocol(cmd: &mut Cmd, value: &str) -> CmdResult {
    proxy(cmd).protocol = Some(MinProtocol::parse(value)?);
    Ok(())
}

/// `TLSProxyCiphersPrefer ...`
pub fn cmd_proxy_ciphers_prefer(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    proxy(cmd).prefer = Some(bastion_tls::options::cipher_list(args, "default")?);
    Ok(())
}

/// `TLSProxyCiphersSuppress ...`
pub fn cmd_proxy_ciphers_suppress(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    proxy(cmd).suppress = Some(bastion_tls::options::cipher_list(args, "none")?);
    Ok(())
}

/// `TLSProxyMachineCertificate cert.pem [key.pem]`
pub fn cmd_proxy_machine_cert(cmd: &mut Cmd, cert: &str, key: Option<&str>) -> CmdResult {
    let cert = readable_file(cmd, cert)?;
    let key = key.map(|k| readable_file(cmd, k)).transpose()?;
    proxy(cmd).machine_cert = Some(CertFiles { cert, key });
    Ok(())
}
