//! Managed-domain directives (mod_md's) and their configuration.
//!
//! Settings given outside `<MDomain>` apply to every managed domain; settings inside a
//! `<MDomain ...>` section apply to that one and win. They are recorded in order and applied
//! to each `ManagedDomain` when the configuration is complete ([`MdConf::resolve`]).

use crate::ServerConf;
use crate::httpd::cmd::{Allowed, Cmd, CmdResult};
use bastion_md::model::{
    self, ChallengeType, Eab, KeySpec, ManagedDomain, RenewMode, RequireHttps, Timeslice,
};
use std::path::PathBuf;
use std::time::Duration;

/// One per-domain setting, as written.
#[derive(Debug, Clone)]
pub enum Setting {
    /// `MDCertificateAuthority`
    Ca(Vec<String>),
    /// `MDCertificateAgreement`
    Agreement(String),
    /// `MDContactEmail`
    Contact(String),
    /// `MDRenewMode` / `MDDriveMode`
    RenewMode(RenewMode),
    /// `MDRenewWindow`
    RenewWindow(Timeslice),
    /// `MDWarnWindow`
    WarnWindow(Timeslice),
    /// `MDPrivateKeys`
    Keys(Vec<KeySpec>),
    /// `MDCAChallenges`
    Challenges(Vec<ChallengeType>),
    /// `MDRequireHttps`
    RequireHttps(RequireHttps),
    /// `MDProfile`
    Profile(String),
    /// `MDExternalAccountBinding`
    Eab(Option<Eab>),
    /// `MDRenewViaARI`
    Ari(bool),
    /// `MDChallengeDns01`
    Dns01(String),
    /// `MDMustStaple`
    MustStaple(bool),
    /// `MDStapling`
    Stapling(bool),
}

impl Setting {
    fn apply(&self, md: &mut ManagedDomain) {
        match self {
            Setting::Ca(urls) => md.ca.urls = urls.clone(),
            Setting::Agreement(a) => md.ca.agreement = Some(a.clone()),
            Setting::Contact(c) => md.contacts = vec![c.clone()],
            Setting::RenewMode(m) => md.renew_mode = *m,
            Setting::RenewWindow(t) => md.renew_window = *t,
            Setting::WarnWindow(t) => md.warn_window = *t,
            Setting::Keys(k) => md.pkeys = k.clone(),
            Setting::Challenges(c) => md.ca.challenges = c.clone(),
            Setting::RequireHttps(r) => md.require_https = *r,
            Setting::Profile(p) => md.profile = Some(p.clone()),
            Setting::Eab(e) => md.eab = e.clone(),
            Setting::Ari(b) => md.ari = *b,
            Setting::Dns01(c) => md.dns01_cmd = Some(c.clone()),
            Setting::MustStaple(b) => md.must_staple = *b,
            Setting::Stapling(b) => md.stapling = *b,
        }
    }
}

/// One `MDomain` line or `<MDomain>` section.
#[derive(Debug, Clone)]
pub struct MdDecl {
    /// The names and mode as given.
    pub md: ManagedDomain,
    /// Settings inside the section.
    pub settings: Vec<Setting>,
    /// `MDMembers auto|manual` inside the section (None: the global value).
    pub members_auto: Option<bool>,
    /// `MDCertificateFile` / `MDCertificateKeyFile`: a static certificate.
    pub cert_file: Option<PathBuf>,
    /// See `cert_file`.
    pub key_file: Option<PathBuf>,
    /// `file:line`.
    pub defined_at: String,
}

/// The managed-domain part of the main server's configuration.
#[derive(Debug, Clone, Default)]
pub struct MdConf {
    /// Settings outside sections, in order.
    pub global: Vec<Setting>,
    /// The managed domains.
    pub mds: Vec<MdDecl>,
    /// Index into `mds` while a `<MDomain>` section is being read.
    pub section: Option<usize>,
    /// `MDMembers` outside sections (default auto).
    pub members_auto: Option<bool>,
    /// `MDStoreDir` (default `md` under ServerRoot).
    pub store_dir: Option<PathBuf>,
    /// `MDPortMap`: (80 → local http port, 443 → local https port).
    pub port_map: Option<(u16, u16)>,
    /// `MDCACertificateFile`.
    pub ca_file: Option<PathBuf>,
    /// `MDRetryDelay`.
    pub retry_delay: Option<Duration>,
    /// `MDCheckInterval`.
    pub check_interval: Option<Duration>,
    /// `MDInitialDelay`.
    pub initial_delay: Option<Duration>,
    /// `MDActivationDelay`.
    pub activation_delay: Option<Duration>,
    /// `MDRetryFailover`.
    pub retry_failover: Option<u32>,
    /// `MDChallengeDns01Version 2`: the TXT value is passed to teardown too.
    pub dns01_version2: Option<bool>,
    /// `MDMessageCmd`.
    pub message_cmd: Option<String>,
    /// `MDNotifyCmd`.
    pub notify_cmd: Option<String>,
    /// `MDServerStatus` (default on).
    pub server_status: Option<bool>,
    /// `MDCertificateStatus` (default on).
    pub certificate_status: Option<bool>,
    /// `MDStapling` (default off).
    pub stapling: Option<bool>,
    /// `MDStapleOthers` (default on).
    pub staple_others: Option<bool>,
    /// `MDStaplingKeepResponse` (default 7d).
    pub stapling_keep: Option<Duration>,
    /// `MDStaplingRenewWindow` (default 33%).
    pub stapling_renew_window: Option<Timeslice>,
}

impl MdConf {
    /// Whether any managed domain is configured.
    pub fn active(&self) -> bool {
        !self.mds.is_empty()
    }

    /// The managed domains with every setting applied (global first, then the section's),
    /// contacts defaulting to `server_admin`.
    pub fn resolve(&self, server_admin: Option<&str>) -> Vec<(ManagedDomain, &MdDecl)> {
        self.mds
            .iter()
            .map(|d| {
                let mut md = d.md.clone();
                let mode = md.renew_mode;
                let explicit_mode = d.md.renew_mode != RenewMode::Auto;
                for s in self.global.iter().chain(&d.settings) {
                    s.apply(&mut md);
                }
                if explicit_mode {
                    md.renew_mode = mode;
                }
                if md.contacts.is_empty()
                    && let Some(a) = server_admin.filter(|a| a.contains('@'))
                    && let Ok(c) = model::parse_contact(a)
                {
                    md.contacts = vec![c];
                }
                (md, d)
            })
            .collect()
    }
}

fn md(cmd: &mut Cmd) -> &mut MdConf {
    &mut cmd.server_config::<ServerConf>().md
}

fn push(cmd: &mut Cmd, s: Setting) -> CmdResult {
    cmd.check(Allowed::GlobalOnly)?;
    let c = md(cmd);
    match c.section {
        Some(i) => c.mds[i].settings.push(s),
        None => c.global.push(s),
    }
    Ok(())
}

fn global_only(cmd: &mut Cmd) -> CmdResult {
    cmd.check(Allowed::GlobalOnly)?;
    if md(cmd).section.is_some() {
        return Err(format!(
            "{} is a global setting; move it out of <MDomain>",
            cmd.name()
        )
        .into());
    }
    Ok(())
}

fn location(cmd: &Cmd) -> String {
    let (f, l) = cmd.location();
    format!("{f}:{l}")
}

/// `MDomain name... [auto|manual]`
pub fn cmd_mdomain(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    cmd.check(Allowed::GlobalOnly)?;
    let m = ManagedDomain::from_directive(args)?;
    let at = location(cmd);
    md(cmd).mds.push(MdDecl {
        md: m,
        settings: Vec::new(),
        members_auto: None,
        cert_file: None,
        key_file: None,
        defined_at: at,
    });
    Ok(())
}

/// `<MDomain name... [auto|manual]>` ... `</MDomain>`
pub fn cmd_mdomain_section(cmd: &mut Cmd, raw: &str) -> CmdResult {
    cmd.check(Allowed::GlobalOnly)?;
    let args = cmd.container_args(raw)?.to_string();
    let words: Vec<&str> = args.split_whitespace().collect();
    if md(cmd).section.is_some() {
        return Err("<MDomain> sections cannot be nested".into());
    }
    cmd_mdomain(cmd, &words)?;
    let idx = md(cmd).mds.len() - 1;
    md(cmd).section = Some(idx);
    let r = cmd.walk_nested();
    md(cmd).section = None;
    r
}

/// `MDMember name` / `MDMembers name...|auto|manual`
pub fn cmd_members(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    cmd.check(Allowed::GlobalOnly)?;
    let c = md(cmd);
    let auto = match args {
        [a] if a.eq_ignore_ascii_case("auto") => Some(true),
        [a] if a.eq_ignore_ascii_case("manual") => Some(false),
        _ => None,
    };
    match (c.section, auto) {
        (None, Some(a)) => c.members_auto = Some(a),
        (Some(i), Some(a)) => c.mds[i].members_auto = Some(a),
        (None, None) => {
            return Err(
                "names are added inside <MDomain ...> sections; outside, only \
                        MDMembers auto|manual is allowed"
                    .into(),
            );
        }
        (Some(i), None) => {
            for a in args {
                let d = model::parse_domain(a)?;
                if !c.mds[i].md.domains.contains(&d) {
                    c.mds[i].md.domains.push(d);
                }
            }
        }
    }
    Ok(())
}

/// `MDCertificateAuthority url|name...`
pub fn cmd_ca(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    push(cmd, Setting::Ca(model::parse_ca_urls(args)?))
}

/// `MDCertificateAgreement accepted|url`
pub fn cmd_agreement(cmd: &mut Cmd, v: &str) -> CmdResult {
    push(cmd, Setting::Agreement(v.to_string()))
}

/// `MDContactEmail address`
pub fn cmd_contact(cmd: &mut Cmd, v: &str) -> CmdResult {
    push(cmd, Setting::Contact(model::parse_contact(v)?))
}

/// `MDRenewMode auto|always|manual` (and `MDDriveMode`)
pub fn cmd_renew_mode(cmd: &mut Cmd, v: &str) -> CmdResult {
    push(cmd, Setting::RenewMode(RenewMode::parse(v)?))
}

/// `MDRenewWindow duration|percent`
pub fn cmd_renew_window(cmd: &mut Cmd, v: &str) -> CmdResult {
    push(cmd, Setting::RenewWindow(Timeslice::parse(v)?))
}

/// `MDWarnWindow duration|percent`
pub fn cmd_warn_window(cmd: &mut Cmd, v: &str) -> CmdResult {
    push(cmd, Setting::WarnWindow(Timeslice::parse(v)?))
}

/// `MDPrivateKeys spec...`
pub fn cmd_private_keys(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    push(cmd, Setting::Keys(KeySpec::parse_list(args)?))
}

/// `MDCAChallenges type...`
pub fn cmd_challenges(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    let v = args
        .iter()
        .map(|a| ChallengeType::parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        return Err("expected one or more of http-01, tls-alpn-01, dns-01".into());
    }
    push(cmd, Setting::Challenges(v))
}

/// `MDRequireHttps off|temporary|permanent`
pub fn cmd_require_https(cmd: &mut Cmd, v: &str) -> CmdResult {
    push(cmd, Setting::RequireHttps(RequireHttps::parse(v)?))
}

/// `MDProfile name`
pub fn cmd_profile(cmd: &mut Cmd, v: &str) -> CmdResult {
    push(cmd, Setting::Profile(v.to_string()))
}

/// `MDExternalAccountBinding key-id hmac-64 | none | file`
pub fn cmd_eab(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    push(cmd, Setting::Eab(Eab::parse(args)?))
}

/// `MDRenewViaARI on|off`
pub fn cmd_ari(cmd: &mut Cmd, on: bool) -> CmdResult {
    push(cmd, Setting::Ari(on))
}

/// `MDMustStaple on|off`
pub fn cmd_must_staple(cmd: &mut Cmd, on: bool) -> CmdResult {
    push(cmd, Setting::MustStaple(on))
}

/// `MDChallengeDns01 command`
pub fn cmd_dns01(cmd: &mut Cmd, v: &str) -> CmdResult {
    let p = cmd.server_root_relative(v.split_whitespace().next().unwrap_or(""));
    let rest: Vec<&str> = v.split_whitespace().skip(1).collect();
    let full = std::iter::once(p.to_string_lossy().into_owned())
        .chain(rest.iter().map(|s| s.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    push(cmd, Setting::Dns01(full))
}

/// The `<MDomain>` section a directive stands in, or the error saying where it belongs.
fn section_of(cmd: &mut Cmd, directive: &str) -> Result<usize, String> {
    md(cmd)
        .section
        .ok_or_else(|| format!("{directive} belongs inside an <MDomain ...> section"))
}

/// `MDCertificateFile file` (inside `<MDomain>`)
pub fn cmd_cert_file(cmd: &mut Cmd, v: &str) -> CmdResult {
    let p = cmd.server_root_relative(v);
    let i = section_of(cmd, "MDCertificateFile")?;
    md(cmd).mds[i].cert_file = Some(p);
    Ok(())
}

/// `MDCertificateKeyFile file` (inside `<MDomain>`)
pub fn cmd_key_file(cmd: &mut Cmd, v: &str) -> CmdResult {
    let p = cmd.server_root_relative(v);
    let i = section_of(cmd, "MDCertificateKeyFile")?;
    md(cmd).mds[i].key_file = Some(p);
    Ok(())
}

/// `MDStoreDir path`
pub fn cmd_store_dir(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    let p = cmd.server_root_relative(v);
    md(cmd).store_dir = Some(p);
    Ok(())
}

/// `MDPortMap 80:n 443:m`
pub fn cmd_port_map(cmd: &mut Cmd, args: &[&str]) -> CmdResult {
    global_only(cmd)?;
    let (mut http, mut https) = (80u16, 443u16);
    let form = "expected MDPortMap 80:port 443:port (a mapped port may be '-')";
    for a in args {
        let (from, to) = a.split_once(':').ok_or(form)?;
        let to: u16 = if to == "-" {
            0
        } else {
            to.parse().map_err(|_| form)?
        };
        match from {
            "80" | "http" => http = to,
            "443" | "https" => https = to,
            _ => return Err(form.into()),
        }
    }
    md(cmd).port_map = Some((http, https));
    Ok(())
}

/// `MDCACertificateFile file.pem`
pub fn cmd_ca_file(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    let p = cmd.server_root_relative(v);
    if !p.is_file() {
        return Err(format!("expected a PEM file, {} does not exist", p.display()).into());
    }
    md(cmd).ca_file = Some(p);
    Ok(())
}

fn duration(v: &str) -> Result<Duration, Box<dyn std::error::Error>> {
    Ok(model::parse_duration(v, "s")?)
}

/// `MDRetryDelay duration`
pub fn cmd_retry_delay(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    md(cmd).retry_delay = Some(duration(v)?);
    Ok(())
}

/// `MDCheckInterval duration`
pub fn cmd_check_interval(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    let d = duration(v)?;
    if d < Duration::from_secs(1) {
        return Err("expected at least 1s".into());
    }
    md(cmd).check_interval = Some(d);
    Ok(())
}

/// `MDInitialDelay duration`
pub fn cmd_initial_delay(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    md(cmd).initial_delay = Some(duration(v)?);
    Ok(())
}

/// `MDActivationDelay duration`
pub fn cmd_activation_delay(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    md(cmd).activation_delay = Some(duration(v)?);
    Ok(())
}

/// `MDRetryFailover number`
pub fn cmd_retry_failover(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    match v.parse::<u32>() {
        Ok(n) if n > 0 => {
            md(cmd).retry_failover = Some(n);
            Ok(())
        }
        _ => Err(format!("expected a number of errors (1 or more), not '{v}'").into()),
    }
}

/// `MDChallengeDns01Version 1|2`
pub fn cmd_dns01_version(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    md(cmd).dns01_version2 = Some(match v {
        "1" => false,
        "2" => true,
        _ => return Err(format!("expected 1 or 2, not '{v}'").into()),
    });
    Ok(())
}

fn command(cmd: &mut Cmd, v: &str) -> Result<String, Box<dyn std::error::Error>> {
    let first = v.split_whitespace().next().ok_or("expected a command")?;
    let p = cmd.server_root_relative(first);
    let rest: Vec<&str> = v.split_whitespace().skip(1).collect();
    Ok(std::iter::once(p.to_string_lossy().into_owned())
        .chain(rest.iter().map(|s| s.to_string()))
        .collect::<Vec<_>>()
        .join(" "))
}

/// `MDMessageCmd command`
pub fn cmd_message_cmd(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    let c = command(cmd, v)?;
    md(cmd).message_cmd = Some(c);
    Ok(())
}

/// `MDNotifyCmd command`
pub fn cmd_notify_cmd(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    let c = command(cmd, v)?;
    md(cmd).notify_cmd = Some(c);
    Ok(())
}

/// `MDServerStatus on|off`
pub fn cmd_server_status(cmd: &mut Cmd, on: bool) -> CmdResult {
    global_only(cmd)?;
    md(cmd).server_status = Some(on);
    Ok(())
}

/// `MDCertificateStatus on|off`
pub fn cmd_certificate_status(cmd: &mut Cmd, on: bool) -> CmdResult {
    global_only(cmd)?;
    md(cmd).certificate_status = Some(on);
    Ok(())
}

/// `MDStapling on|off`: globally (every managed domain, and the condition for
/// `MDStapleOthers`) or inside `<MDomain>` for that one.
pub fn cmd_stapling(cmd: &mut Cmd, on: bool) -> CmdResult {
    push(cmd, Setting::Stapling(on))?;
    if md(cmd).section.is_none() {
        md(cmd).stapling = Some(on);
    }
    Ok(())
}

/// `MDStapleOthers on|off`
pub fn cmd_staple_others(cmd: &mut Cmd, on: bool) -> CmdResult {
    global_only(cmd)?;
    md(cmd).staple_others = Some(on);
    Ok(())
}

/// `MDStaplingKeepResponse duration`
pub fn cmd_stapling_keep(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    md(cmd).stapling_keep = Some(model::parse_duration(v, "d")?);
    Ok(())
}

/// `MDStaplingRenewWindow duration|N%`
pub fn cmd_stapling_renew_window(cmd: &mut Cmd, v: &str) -> CmdResult {
    global_only(cmd)?;
    md(cmd).stapling_renew_window = Some(Timeslice::parse(v)?);
    Ok(())
}
