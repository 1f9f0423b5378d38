//! Managed domains: the typed configuration of one `MDomain`, parsers for
//! mod_md's directive values and the configuration checks mod_md makes.
//!
//! Every parser returns a [`ParseError`] whose message reads
//! `expected X, got "Y"`, so the glue can prefix it with `file:line: Directive:`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default renew window: 33% of the certificate's lifetime (`MDRenewWindow`).
pub const DEFAULT_RENEW_WINDOW: Timeslice = Timeslice::Percent(33);
/// Default warn window: 10% of the certificate's lifetime (`MDWarnWindow`).
pub const DEFAULT_WARN_WINDOW: Timeslice = Timeslice::Percent(10);
/// Let's Encrypt production directory, mod_md's default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A directive value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got \"{got}\"")]
pub struct ParseError {
    /// What the parser accepts.
    pub expected: String,
    /// What it was given.
    pub got: String,
}

impl ParseError {
    fn new(expected: impl Into<String>, got: impl Into<String>) -> Self {
        Self {
            expected: expected.into(),
            got: got.into(),
        }
    }
}

/// A configuration that mod_md would refuse, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// `MDRenewMode` (alias `MDDriveMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RenewMode {
    /// Never contact the CA (md.json value 0).
    Manual,
    /// Renew domains that are used by a vhost and have no static files (1).
    #[default]
    Auto,
    /// Renew even when not used or static files are configured (2).
    Always,
}

impl RenewMode {
    /// Parses `auto`, `always` or `manual` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "automatic" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "manual" => Ok(Self::Manual),
            _ => Err(ParseError::new("auto, always or manual", s)),
        }
    }

    /// The integer mod_md writes in md.json (`renew-mode`).
    pub fn as_int(self) -> i64 {
        match self {
            Self::Manual => 0,
            Self::Auto => 1,
            Self::Always => 2,
        }
    }

    /// The mode for an md.json integer.
    pub fn from_int(i: i64) -> Option<Self> {
        match i {
            0 => Some(Self::Manual),
            1 => Some(Self::Auto),
            2 => Some(Self::Always),
            _ => None,
        }
    }
}

impl Serialize for RenewMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.as_int())
    }
}

impl<'de> Deserialize<'de> for RenewMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = i64::deserialize(d)?;
        Self::from_int(i).ok_or_else(|| serde::de::Error::custom(format!("bad renew-mode {i}")))
    }
}

/// A private key specification (`MDPrivateKeys`); one certificate per spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// RSA with this many bits (2048, 3072 or 4096).
    Rsa(u32),
    /// ECDSA on NIST P-256 (`secp256r1`).
    P256,
    /// ECDSA on NIST P-384 (`secp384r1`).
    P384,
}

impl Default for KeySpec {
    fn default() -> Self {
        Self::Rsa(2048)
    }
}

const KEY_EXPECTED: &str = "RSA [2048|3072|4096], secp256r1 (P-256) or secp384r1 (P-384)";

impl KeySpec {
    /// Parses the arguments of `MDPrivateKeys` (e.g. `RSA 3072 secp256r1`, `rsa4096 P-384`).
    /// Duplicate types are refused.
    pub fn parse_list(args: &[&str]) -> Result<Vec<KeySpec>, ParseError> {
        let mut out: Vec<KeySpec> = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = args[i];
            let lower = a.to_ascii_lowercase();
            let spec = if lower == "rsa" {
                let bits = match args.get(i + 1).and_then(|b| b.parse::<u32>().ok()) {
                    Some(bits) => {
                        i += 1;
                        bits
                    }
                    None => 2048,
                };
                Self::rsa(bits, a)?
            } else if let Some(bits) = lower.strip_prefix("rsa") {
                let bits = bits
                    .parse::<u32>()
                    .map_err(|_| ParseError::new(KEY_EXPECTED, a))?;
                Self::rsa(bits, a)?
            } else {
                match lower.as_str() {
                    "secp256r1" | "p-256" | "p256" | "prime256v1" => Self::P256,
                    "secp384r1" | "p-384" | "p384" => Self::P384,
                    _ => return Err(ParseError::new(KEY_EXPECTED, a)),
                }
            };
            if out.iter().any(|s| s.name() == spec.name()) {
                return Err(ParseError::new("each key type once", args.join(" ")));
            }
            out.push(spec);
            i += 1;
        }
        if out.is_empty() {
            return Err(ParseError::new(KEY_EXPECTED, ""));
        }
        Ok(out)
    }

    fn rsa(bits: u32, got: &str) -> Result<Self, ParseError> {
        match bits {
            2048 | 3072 | 4096 => Ok(Self::Rsa(bits)),
            _ => Err(ParseError::new(
                "RSA key size 2048, 3072 or 4096",
                format!("{got} {bits}"),
            )),
        }
    }

    /// The spec's name as mod_md uses it in file names: `rsa`, `secp256r1`, `secp384r1`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rsa(_) => "rsa",
            Self::P256 => "secp256r1",
            Self::P384 => "secp384r1",
        }
    }

    /// File-name suffix: empty for RSA (`privkey.pem`), `.secp256r1` etc. otherwise.
    pub fn file_suffix(&self) -> String {
        match self {
            Self::Rsa(_) => String::new(),
            other => format!(".{}", other.name()),
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa(bits) => write!(f, "RSA {bits}"),
            other => f.write_str(other.name()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeySpecJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    bits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    curve: Option<String>,
}

impl Serialize for KeySpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let j = match self {
            Self::Rsa(bits) => KeySpecJson {
                kind: "RSA".into(),
                bits: Some(*bits),
                curve: None,
            },
            other => KeySpecJson {
                kind: "EC".into(),
                bits: None,
                curve: Some(other.name().into()),
            },
        };
        j.serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = KeySpecJson::deserialize(d)?;
        let arg = match (j.kind.as_str(), j.bits, j.curve) {
            ("RSA", bits, _) => format!("rsa{}", bits.unwrap_or(2048)),
            ("EC", _, Some(c)) => c,
            (k, _, _) => k.to_string(),
        };
        KeySpec::parse_list(&[&arg])
            .map(|v| v[0])
            .map_err(serde::de::Error::custom)
    }
}

/// An ACME challenge type (`MDCAChallenges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeType {
    /// `http-01`: a file under `/.well-known/acme-challenge/` on port 80.
    #[serde(rename = "http-01")]
    Http01,
    /// `tls-alpn-01`: a self-signed certificate for ALPN `acme-tls/1` on port 443.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// `dns-01`: a TXT record set by an external command.
    #[serde(rename = "dns-01")]
    Dns01,
}

impl ChallengeType {
    /// Parses `http-01`, `tls-alpn-01` or `dns-01`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "http-01" => Ok(Self::Http01),
            "tls-alpn-01" => Ok(Self::TlsAlpn01),
            "dns-01" => Ok(Self::Dns01),
            _ => Err(ParseError::new("http-01, tls-alpn-01 or dns-01", s)),
        }
    }

    /// The ACME name of the type.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Dns01 => "dns-01",
        }
    }
}

/// A window as mod_md's `md_timeslice_t`: a fixed duration or a percentage of the
/// certificate's lifetime. Serialized in its directive form (`33%`, `30d`, `45s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeslice {
    /// A fixed duration before `notAfter`.
    Duration(Duration),
    /// A percentage (0..=100) of `notAfter - notBefore`, before `notAfter`.
    Percent(u8),
}

impl Timeslice {
    /// Parses `N%` or a duration (default unit: days), as `MDRenewWindow` does.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<u8>() {
                Ok(n) if n <= 100 => Ok(Self::Percent(n)),
                _ => Err(ParseError::new(
                    "a percentage 0%..100% or a duration like 30d",
                    s,
                )),
            };
        }
        parse_duration(t, "d")
            .map(Self::Duration)
            .map_err(|_| ParseError::new("a percentage like 33% or a duration like 30d", s))
    }

    /// The length of the window for a certificate of the given lifetime.
    pub fn length(&self, lifetime: Duration) -> Duration {
        match self {
            Self::Duration(d) => *d,
            Self::Percent(p) => lifetime.mul_f64(f64::from(*p) / 100.0),
        }
    }
}

impl fmt::Display for Timeslice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percent(p) => write!(f, "{p}%"),
            Self::Duration(d) => f.write_str(&format_duration(*d)),
        }
    }
}

impl Serialize for Timeslice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timeslice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a mod_md duration: a number with an optional unit `d`, `h`, `mi`, `s`
/// or `ms`; `default_unit` applies when there is none (`MDRenewWindow`: days,
/// `MDRetryDelay`: seconds...).
pub fn parse_duration(s: &str, default_unit: &str) -> Result<Duration, ParseError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let err = || ParseError::new("a duration like 30d, 12h, 10mi, 30s or 500ms", s);
    let n: u64 = num.parse().map_err(|_| err())?;
    let unit = if unit.is_empty() { default_unit } else { unit };
    let secs = |mul: u64| n.checked_mul(mul).map(Duration::from_secs).ok_or_else(err);
    match unit.to_ascii_lowercase().as_str() {
        "d" => secs(86_400),
        "h" => secs(3_600),
        "mi" => secs(60),
        "s" => secs(1),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(err()),
    }
}

/// Formats a duration in the largest unit that divides it exactly (`30d`, `90s`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || (s == 0 && d.as_millis() > 0) {
        return format!("{}ms", d.as_millis());
    }
    for (unit, mul) in [("d", 86_400), ("h", 3_600), ("mi", 60)] {
        if s != 0 && s.is_multiple_of(mul) {
            return format!("{}{unit}", s / mul);
        }
    }
    format!("{s}s")
}

/// `MDRequireHttps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequireHttps {
    /// No redirect.
    #[default]
    Off,
    /// 302/307 redirects.
    Temporary,
    /// 301/308 redirects plus HSTS.
    Permanent,
}

impl RequireHttps {
    /// Parses `off`, `temporary` or `permanent`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "temporary" => Ok(Self::Temporary),
            "permanent" => Ok(Self::Permanent),
            _ => Err(ParseError::new("off, temporary or permanent", s)),
        }
    }
}

/// Parses `on`/`off` flags.
pub fn parse_flag(s: &str) -> Result<bool, ParseError> {
    match s.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ParseError::new("on or off", s)),
    }
}

/// External account binding (`MDExternalAccountBinding kid hmac`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct Eab {
    /// The key identifier given by the CA.
    pub kid: String,
    /// The HMAC key, base64url as the CA hands it out.
    pub hmac: String,
}

impl fmt::Debug for Eab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eab")
            .field("kid", &self.kid)
            .field("hmac", &"***")
            .finish()
    }
}

impl Eab {
    /// Parses `kid hmac`, or the contents of the JSON file form `{"kid":…,"hmac":…}`
    /// (pass the file's text as the single argument prefixed by nothing; the glue reads it).
    /// `none` clears the binding (returns `None`).
    pub fn parse(args: &[&str]) -> Result<Option<Self>, ParseError> {
        match args {
            [one] if one.eq_ignore_ascii_case("none") => Ok(None),
            [kid, hmac] => {
                decode_b64url(hmac)
                    .ok_or_else(|| ParseError::new("a base64url HMAC key", *hmac))?;
                Ok(Some(Self {
                    kid: (*kid).to_string(),
                    hmac: (*hmac).to_string(),
                }))
            }
            [json] if json.trim_start().starts_with('{') => {
                let e: Eab = serde_json::from_str(json)
                    .map_err(|_| ParseError::new(r#"a JSON file {"kid":…,"hmac":…}"#, "…"))?;
                Ok(Some(e))
            }
            _ => Err(ParseError::new(
                "kid hmac, a JSON file or none",
                args.join(" "),
            )),
        }
    }

    /// The raw HMAC key bytes.
    pub fn hmac_bytes(&self) -> Option<Vec<u8>> {
        decode_b64url(&self.hmac)
    }
}

pub(crate) fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD
        .decode(s.trim())
        .or_else(|_| URL_SAFE.decode(s.trim()))
        .ok()
}

/// Resolves `MDCertificateAuthority` arguments: URLs or the known names
/// `LetsEncrypt`, `LetsEncrypt-Test`, `Buypass`, `Buypass-Test`.
pub fn parse_ca_urls(args: &[&str]) -> Result<Vec<String>, ParseError> {
    if args.is_empty() {
        return Err(ParseError::new("a CA URL or a known CA name", ""));
    }
    args.iter()
        .map(|a| {
            let known = match a.to_ascii_lowercase().as_str() {
                "letsencrypt" => Some(LETS_ENCRYPT),
                "letsencrypt-test" => {
                    Some("https://acme-staging-v02.api.letsencrypt.org/directory")
                }
                "buypass" => Some("https://api.buypass.com/acme/directory"),
                "buypass-test" => Some("https://api.test4.buypass.no/acme/directory"),
                _ => None,
            };
            match known {
                Some(u) => Ok(u.to_string()),
                None if a.starts_with("https://") || a.starts_with("http://") => {
                    Ok((*a).to_string())
                }
                None => Err(ParseError::new(
                    "a https:// URL or LetsEncrypt, LetsEncrypt-Test, Buypass, Buypass-Test",
                    *a,
                )),
            }
        })
        .collect()
}

/// Turns `MDContactEmail`/`ServerAdmin` into an ACME contact (`mailto:`).
pub fn parse_contact(s: &str) -> Result<String, ParseError> {
    let addr = s.strip_prefix("mailto:").unwrap_or(s);
    let ok = addr
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
    if ok {
        Ok(format!("mailto:{addr}"))
    } else {
        Err(ParseError::new("an email address", s))
    }
}

/// Checks and normalizes (lowercase, no trailing dot) one DNS name of an MD.
pub fn parse_domain(s: &str) -> Result<String, ParseError> {
    let d = s.trim_end_matches('.').to_ascii_lowercase();
    let body = d.strip_prefix("*.").unwrap_or(&d);
    let ok = !body.is_empty()
        && d.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(ParseError::new(
            "a DNS name like www.example.org or *.example.org",
            s,
        ))
    }
}

/// CA settings of an MD (md.json `ca`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CaConfig {
    /// Directory URLs; more than one means failover in this order.
    pub urls: Vec<String>,
    /// `MDCertificateAgreement accepted` (or a ToS URL) was given.
    #[serde(default)]
    pub agreement: Option<String>,
    /// `MDCAChallenges`; empty means automatic choice.
    #[serde(default)]
    pub challenges: Vec<ChallengeType>,
    /// The account in `accounts/` last used for this MD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// One managed domain, as configured and as stored in `md.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ManagedDomain {
    /// The MD's name (its first domain).
    pub name: String,
    /// All DNS names, the name first; each becomes a SAN.
    pub domains: Vec<String>,
    /// `mailto:` contacts for the ACME account.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// Names added by `MDMembers auto` from vhosts.
    #[serde(default)]
    pub transitive: bool,
    /// CA URLs, agreement, challenges.
    pub ca: CaConfig,
    /// `MDRenewMode`.
    pub renew_mode: RenewMode,
    /// `MDRenewWindow`.
    pub renew_window: Timeslice,
    /// `MDWarnWindow`.
    pub warn_window: Timeslice,
    /// `MDPrivateKeys`: one certificate per spec.
    #[serde(rename = "privkey")]
    pub pkeys: Vec<KeySpec>,
    /// `MDRequireHttps`.
    #[serde(default)]
    pub require_https: RequireHttps,
    /// `MDMustStaple`.
    #[serde(default)]
    pub must_staple: bool,
    /// `MDStapling`: OCSP responses are fetched and stapled for its certificates.
    #[serde(default)]
    pub stapling: bool,
    /// `MDProfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `MDProfileMandatory`.
    #[serde(default)]
    pub profile_mandatory: bool,
    /// `MDExternalAccountBinding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab: Option<Eab>,
    /// `MDRenewViaARI`.
    #[serde(default = "yes", rename = "ari-renewals")]
    pub ari: bool,
    /// `MDChallengeDns01`: the command for dns-01 setup/teardown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "cmd-dns-01"
    )]
    pub dns01_cmd: Option<String>,
}

fn yes() -> bool {
    true
}

impl ManagedDomain {
    /// A domain with mod_md's defaults: auto renewal, Let's Encrypt, RSA 2048,
    /// renew window 33%, warn window 10%, ARI on.
    pub fn new(name: &str, domains: &[&str]) -> Result<Self, ParseError> {
        let mut all = vec![parse_domain(name)?];
        for d in domains {
            let d = parse_domain(d)?;
            if !all.contains(&d) {
                all.push(d);
            }
        }
        Ok(Self {
            name: all[0].clone(),
            domains: all,
            contacts: Vec::new(),
            transitive: false,
            ca: CaConfig {
                urls: vec![LETS_ENCRYPT.to_string()],
                ..CaConfig::default()
            },
            renew_mode: RenewMode::Auto,
            renew_window: DEFAULT_RENEW_WINDOW,
            warn_window: DEFAULT_WARN_WINDOW,
            pkeys: vec![KeySpec::default()],
            require_https: RequireHttps::Off,
            must_staple: false,
            stapling: false,
            profile: None,
            profile_mandatory: false,
            eab: None,
            ari: true,
            dns01_cmd: None,
        })
    }

    /// Parses the arguments of `MDomain name… [auto|manual]`.
    pub fn from_directive(args: &[&str]) -> Result<Self, ParseError> {
        let mut names = Vec::new();
        let mut mode = None;
        for a in args {
            match a.to_ascii_lowercase().as_str() {
                "auto" | "manual" | "always" => mode = Some(RenewMode::parse(a)?),
                _ => names.push(*a),
            }
        }
        let Some((first, rest)) = names.split_first() else {
            return Err(ParseError::new("at least one DNS name", args.join(" ")));
        };
        let mut md = Self::new(first, rest)?;
        if let Some(m) = mode {
            md.renew_mode = m;
        }
        Ok(md)
    }

    /// True if any name is a wildcard (`*.example.org`).
    pub fn has_wildcard(&self) -> bool {
        self.domains.iter().any(|d| d.starts_with("*."))
    }

    /// The challenge types to try, in preference order: the configured list, or the
    /// automatic `auto` list (what the glue found reachable: mod_md's order is
    /// tls-alpn-01, http-01), plus dns-01 when a command is set.
    pub fn challenge_preference(&self, auto: &[ChallengeType]) -> Vec<ChallengeType> {
        if !self.ca.challenges.is_empty() {
            return self.ca.challenges.clone();
        }
        let mut v = auto.to_vec();
        if self.dns01_cmd.is_some() && !v.contains(&ChallengeType::Dns01) {
            v.push(ChallengeType::Dns01);
        }
        v
    }
}

/// Checks that no DNS name belongs to two MDs (mod_md refuses overlaps).
pub fn check_overlaps(mds: &[ManagedDomain]) -> Result<(), ConfigError> {
    for (i, a) in mds.iter().enumerate() {
        for b in &mds[i + 1..] {
            if let Some(d) = a.domains.iter().find(|d| b.domains.contains(d)) {
                return Err(ConfigError(format!(
                    "MDomain {} and MDomain {} both contain \"{d}\": a name may belong to one \
                     managed domain only; remove it from one of them",
                    a.name, b.name
                )));
            }
        }
    }
    Ok(())
}

/// Checks one MD the way mod_md does at configuration time: wildcards need dns-01,
/// key specs and CA URLs present, a dns-01 command when dns-01 is the only choice.
pub fn check_domain(md: &ManagedDomain) -> Result<(), ConfigError> {
    if md.domains.is_empty() {
        return Err(ConfigError(format!(
            "MDomain {}: has no DNS names",
            md.name
        )));
    }
    if md.has_wildcard() {
        let dns = if md.ca.challenges.is_empty() {
            md.dns01_cmd.is_some()
        } else {
            md.ca.challenges.contains(&ChallengeType::Dns01)
        };
        if !dns || md.dns01_cmd.is_none() {
            return Err(ConfigError(format!(
                "MDomain {}: wildcard names need the dns-01 challenge; configure \
                 `MDChallengeDns01 <command>` and, if MDCAChallenges is set, include dns-01 in it",
                md.name
            )));
        }
    }
    if md.ca.challenges.len() == 1
        && md.ca.challenges[0] == ChallengeType::Dns01
        && md.dns01_cmd.is_none()
    {
        return Err(ConfigError(format!(
            "MDomain {}: MDCAChallenges dns-01 needs `MDChallengeDns01 <command>`",
            md.name
        )));
    }
    if md.pkeys.is_empty() {
        return Err(ConfigError(format!(
            "MDomain {}: no private key spec; set MDPrivateKeys",
            md.name
        )));
    }
    if md.ca.urls.is_empty() {
        return Err(ConfigError(format!(
            "MDomain {}: no CA; set MDCertificateAuthority",
            md.name
        )));
    }
    Ok(())
}

/// Checks what a new ACME account needs: accepted terms and a contact.
pub fn check_account_info(md: &ManagedDomain) -> Result<(), ConfigError> {
    if md.ca.agreement.is_none() {
        return Err(ConfigError(format!(
            "MDomain {}: the CA's terms of service must be accepted before an account is \
             created; configure `MDCertificateAgreement accepted`",
            md.name
        )));
    }
    if md.contacts.is_empty() {
        return Err(ConfigError(format!(
            "MDomain {}: no contact email for the ACME account; configure `MDContactEmail` \
             or `ServerAdmin`",
            md.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d", "d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(
            parse_duration("7", "d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(
            parse_duration("12h", "d").unwrap(),
            Duration::from_secs(43200)
        );
        assert_eq!(
            parse_duration("10mi", "s").unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(parse_duration("1s", "d").unwrap(), Duration::from_secs(1));
        assert_eq!(
            parse_duration("250ms", "s").unwrap(),
            Duration::from_millis(250)
        );
        let e = parse_duration("3w", "d").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a duration like 30d, 12h, 10mi, 30s or 500ms, got \"3w\""
        );
        assert!(parse_duration("", "d").is_err());
        assert_eq!(format_duration(Duration::from_secs(30 * 86400)), "30d");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn timeslices() {
        assert_eq!(Timeslice::parse("33%").unwrap(), Timeslice::Percent(33));
        assert_eq!(
            Timeslice::parse("30d").unwrap(),
            Timeslice::Duration(Duration::from_secs(30 * 86400))
        );
        assert!(Timeslice::parse("101%").is_err());
        assert!(Timeslice::parse("x%").is_err());
        let life = Duration::from_secs(90 * 86400);
        assert_eq!(
            Timeslice::Percent(10).length(life),
            Duration::from_secs(9 * 86400)
        );
        let j = serde_json::to_string(&Timeslice::parse("7d").unwrap()).unwrap();
        assert_eq!(j, "\"7d\"");
        let back: Timeslice = serde_json::from_str(&j).unwrap();
        assert_eq!(back, Timeslice::Duration(Duration::from_secs(7 * 86400)));
    }

    #[test]
    fn key_specs() {
        assert_eq!(
            KeySpec::parse_list(&["RSA"]).unwrap(),
            vec![KeySpec::Rsa(2048)]
        );
        assert_eq!(
            KeySpec::parse_list(&["rsa", "3072", "secp256r1"]).unwrap(),
            vec![KeySpec::Rsa(3072), KeySpec::P256]
        );
        assert_eq!(
            KeySpec::parse_list(&["rsa4096", "P-384"]).unwrap(),
            vec![KeySpec::Rsa(4096), KeySpec::P384]
        );
        assert!(KeySpec::parse_list(&["rsa", "1024"]).is_err());
        assert!(KeySpec::parse_list(&["P-256", "secp256r1"]).is_err());
        let e = KeySpec::parse_list(&["ed25519"]).unwrap_err();
        assert!(e.to_string().contains("got \"ed25519\""), "{e}");
        assert_eq!(KeySpec::P256.file_suffix(), ".secp256r1");
        assert_eq!(KeySpec::Rsa(2048).file_suffix(), "");
    }

    #[test]
    fn simple_parsers() {
        assert_eq!(RenewMode::parse("Always").unwrap(), RenewMode::Always);
        assert_eq!(
            RenewMode::parse("sometimes").unwrap_err().to_string(),
            "expected auto, always or manual, got \"sometimes\""
        );
        assert_eq!(
            ChallengeType::parse("TLS-ALPN-01").unwrap(),
            ChallengeType::TlsAlpn01
        );
        assert!(ChallengeType::parse("tls-sni-01").is_err());
        assert_eq!(
            RequireHttps::parse("permanent").unwrap(),
            RequireHttps::Permanent
        );
        assert!(parse_flag("yes").is_err());
        assert_eq!(
            parse_contact("admin@example.org").unwrap(),
            "mailto:admin@example.org"
        );
        assert!(parse_contact("admin").is_err());
        assert_eq!(parse_ca_urls(&["LetsEncrypt"]).unwrap(), vec![LETS_ENCRYPT]);
        assert!(parse_ca_urls(&["ftp://x"]).is_err());
        assert_eq!(parse_domain("WWW.Example.org.").unwrap(), "www.example.org");
        assert!(parse_domain("bad_name.org").is_err());
        assert!(parse_domain("-x.org").is_err());
        let eab = Eab::parse(&[
            "kid-1",
            "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
        ])
        .unwrap()
        .unwrap();
        assert!(format!("{eab:?}").contains("***"));
        assert!(eab.hmac_bytes().is_some());
        assert!(Eab::parse(&["none"]).unwrap().is_none());
        assert!(Eab::parse(&["kid", "!!"]).is_err());
        let j = Eab::parse(&[r#"{"kid":"k","hmac":"YWJj"}"#])
            .unwrap()
            .unwrap();
        assert_eq!(j.kid, "k");
    }

    #[test]
    fn mdomain_directive_and_json() {
        let md =
            ManagedDomain::from_directive(&["Example.org", "www.example.org", "manual"]).unwrap();
        assert_eq!(md.name, "example.org");
        assert_eq!(md.domains, vec!["example.org", "www.example.org"]);
        assert_eq!(md.renew_mode, RenewMode::Manual);
        let j = serde_json::to_value(&md).unwrap();
        assert_eq!(j["renew-mode"], 0);
        assert_eq!(j["renew-window"], "33%");
        assert_eq!(j["privkey"][0]["type"], "RSA");
        assert_eq!(j["ca"]["urls"][0], LETS_ENCRYPT);
        let back: ManagedDomain = serde_json::from_value(j).unwrap();
        assert_eq!(back, md);
        assert!(ManagedDomain::from_directive(&["auto"]).is_err());
    }

    #[test]
    fn config_checks() {
        let a = ManagedDomain::new("a.example", &["www.example"]).unwrap();
        let b = ManagedDomain::new("b.example", &["WWW.example"]).unwrap();
        let e = check_overlaps(&[a.clone(), b]).unwrap_err();
        assert!(e.0.contains("both contain \"www.example\""), "{e}");
        let c = ManagedDomain::new("c.example", &[]).unwrap();
        check_overlaps(&[a.clone(), c]).unwrap();

        let mut w = ManagedDomain::new("example.org", &["*.example.org"]).unwrap();
        assert!(check_domain(&w).unwrap_err().0.contains("MDChallengeDns01"));
        w.dns01_cmd = Some("/bin/dns".into());
        check_domain(&w).unwrap();
        w.ca.challenges = vec![ChallengeType::Http01];
        assert!(check_domain(&w).is_err());

        let mut m = a;
        assert!(
            check_account_info(&m)
                .unwrap_err()
                .0
                .contains("MDCertificateAgreement accepted")
        );
        m.ca.agreement = Some("accepted".into());
        assert!(
            check_account_info(&m)
                .unwrap_err()
                .0
                .contains("MDContactEmail")
        );
        m.contacts.push("mailto:a@b.example".into());
        check_account_info(&m).unwrap();
    }
}
