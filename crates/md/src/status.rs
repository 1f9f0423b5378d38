//! Status reports as mod_md gives them: the `md-status` handler's JSON, the public
//! `/.httpd/certificate-status` JSON and the lines mod_status prints for `?auto`.
//!
//! Pure functions over a [`Store`], the configured [`ManagedDomain`]s and the current
//! time; nothing here writes. Field names follow mod_md (`md_status.c`,
//! `mod_md_status.c`): per MD the public `md.json` fields (EAB hmac shown as `***`),
//! `state`, `cert{valid{from,until}, <spec>{valid, serial, sha256-fingerprint, ...}}`,
//! `renew-at`, `renew`, and `renewal` (the job in `staging/<md>/job.json` with the
//! staged certificates under `renewal.cert`). Times are RFC 822 GMT strings.
//!
//! `stapling` is the MD's `MDStapling`; each certificate with a stored OCSP response has
//! `ocsp{status, valid{from,until}, responder, last-update, errors, error}` (mod_md's
//! `cert.<spec>.ocsp`). `watched` (a virtual host uses the MD) depends on what only the
//! server knows and is reported as "renew mode is not manual"; the glue may overwrite it.

use std::time::SystemTime;

use aws_lc_rs::digest;
use serde_json::{Map, Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cert::{CertInfo, info_der, pem_chain};
use crate::model::{KeySpec, ManagedDomain, RenewMode};
use crate::renewal::Validity;
use crate::store::{Group, Job, Store, http_date, pubcert_file};

/// The `version` reported in the `md-status` JSON.
pub const STATUS_VERSION: &str = concat!("mod_bastion/", env!("CARGO_PKG_VERSION"));

/// mod_md's `md_state_t` values, as reported in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdState {
    /// 0: not known.
    Unknown,
    /// 1: a certificate is missing or does not cover all names.
    Incomplete,
    /// 2: every key spec has a certificate covering all names.
    Complete,
    /// 4: the stored certificates cannot be read.
    Error,
    /// 5: the configuration lacks something needed.
    MissingInformation,
}

impl MdState {
    /// The integer mod_md reports.
    pub fn as_int(self) -> i64 {
        match self {
            Self::Unknown => 0,
            Self::Incomplete => 1,
            Self::Complete => 2,
            Self::Error => 4,
            Self::MissingInformation => 5,
        }
    }
}

/// One certificate as the status reports it.
#[derive(Debug, Clone)]
pub struct CertStatus {
    /// What the engine reads anyway (validity, names, ARI id).
    pub info: CertInfo,
    /// Serial number as OpenSSL's `BN_bn2hex` prints it: uppercase hex, no leading zero bytes.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex without separators.
    pub sha256: String,
    /// The issuer's distinguished name.
    pub issuer: String,
}

/// Reads the leaf of a PEM chain for the status.
pub fn cert_status(pem: &str) -> Option<CertStatus> {
    let chain = pem_chain(pem).ok()?;
    let der = chain.first()?;
    let info = info_der(der).ok()?;
    let (_, c) = X509Certificate::from_der(der.as_ref()).ok()?;
    let raw = c.raw_serial();
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    let serial: String = raw[start..].iter().map(|b| format!("{b:02X}")).collect();
    let sha256: String = digest::digest(&digest::SHA256, der.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(CertStatus {
        info,
        serial,
        sha256,
        issuer: c.issuer().to_string(),
    })
}

fn valid_json(v: &Validity) -> Value {
    json!({ "from": http_date(v.not_before), "until": http_date(v.not_after) })
}

fn load_cert(
    store: &Store,
    g: Group,
    name: &str,
    spec: &KeySpec,
) -> Result<Option<CertStatus>, ()> {
    match store.read(g, name, &pubcert_file(spec)) {
        Ok(None) => Ok(None),
        Ok(Some(b)) => std::str::from_utf8(&b)
            .ok()
            .and_then(cert_status)
            .map(Some)
            .ok_or(()),
        Err(_) => Err(()),
    }
}

/// The certificates of `md` in a group, one per key spec (`None` where missing or unreadable).
fn certs(store: &Store, g: Group, md: &ManagedDomain) -> Vec<(KeySpec, Option<CertStatus>)> {
    md.pkeys
        .iter()
        .map(|s| (*s, load_cert(store, g, &md.name, s).ok().flatten()))
        .collect()
}

/// `{"valid":{...common period...}, "<spec>":{valid, serial, sha256-fingerprint, ...}}`.
fn certs_json(certs: &[(KeySpec, Option<CertStatus>)]) -> Value {
    let mut out = Map::new();
    let mut common: Option<Validity> = None;
    for (spec, c) in certs {
        let Some(c) = c else { continue };
        let v = c.info.validity;
        common = Some(match common {
            None => v,
            Some(p) => Validity {
                not_before: p.not_before.max(v.not_before),
                not_after: p.not_after.min(v.not_after),
            },
        });
        let mut j = Map::new();
        j.insert("issuer-name".into(), c.issuer.clone().into());
        j.insert("valid".into(), valid_json(&v));
        j.insert("serial".into(), c.serial.clone().into());
        j.insert("sha256-fingerprint".into(), c.sha256.clone().into());
        if let Some(id) = &c.info.ari_id {
            j.insert("ari-cert-id".into(), id.clone().into());
        }
        out.insert(spec.name().into(), Value::Object(j));
    }
    if let Some(v) = common {
        out.insert("valid".into(), valid_json(&v));
    }
    Value::Object(out)
}

/// The state of `md` from its certificates in `domains/` (mod_md's `state_init`), with
/// the description mod_md gives for incomplete ones.
pub fn md_state(store: &Store, md: &ManagedDomain) -> (MdState, Option<String>) {
    for spec in &md.pkeys {
        match load_cert(store, Group::Domains, &md.name, spec) {
            Ok(Some(c)) => {
                if !c.info.covers(&md.domains) {
                    return (
                        MdState::Incomplete,
                        Some(format!(
                            "certificate({}) does not cover all domains.",
                            spec.name()
                        )),
                    );
                }
            }
            Ok(None) => {
                return (
                    MdState::Incomplete,
                    Some(format!("certificate({}) is missing", spec.name())),
                );
            }
            Err(()) => return (MdState::Error, Some("error initializing".into())),
        }
    }
    (MdState::Complete, None)
}

/// When `md` is due for renewal by its renew window (mod_md's `md_reg_renew_at`): `now`
/// when incomplete, otherwise the earliest window start over its certificates.
pub fn renew_at(store: &Store, md: &ManagedDomain, now: SystemTime) -> Option<SystemTime> {
    let (state, _) = md_state(store, md);
    if state == MdState::Incomplete {
        return Some(now);
    }
    certs(store, Group::Domains, md)
        .iter()
        .filter_map(|(_, c)| c.as_ref())
        .map(|c| c.info.validity.window_start(&md.renew_window))
        .min()
}

/// True if `md` should be renewed at `now` by its renew window.
pub fn should_renew(store: &Store, md: &ManagedDomain, now: SystemTime) -> bool {
    renew_at(store, md, now).is_some_and(|t| t <= now)
}

/// The job in `staging/<md>/job.json`, if it looks valid: a finished, notified job
/// whose staged certificates are gone is ignored, as mod_md does.
pub fn load_job(store: &Store, md: &ManagedDomain) -> Option<Job> {
    let job: Job = store
        .read_json(Group::Staging, &md.name, "job.json")
        .ok()??;
    if job.finished
        && job.notified_renewed
        && md
            .pkeys
            .iter()
            .any(|s| !store.exists(Group::Staging, &md.name, &pubcert_file(s)))
    {
        return None;
    }
    Some(job)
}

fn public_md_json(md: &ManagedDomain) -> Map<String, Value> {
    let mut j = match serde_json::to_value(md) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(Value::Object(ca)) = j.get_mut("ca") {
        ca.insert("proto".into(), "ACME".into());
    }
    if let Some(Value::Object(eab)) = j.get_mut("eab")
        && eab.contains_key("hmac")
    {
        eab.insert("hmac".into(), "***".into());
    }
    j
}

/// The stored OCSP state of the MD's active certificate for `spec` (mod_md's `ocsp` object).
fn ocsp_json(store: &Store, md: &ManagedDomain, spec: &KeySpec) -> Option<Value> {
    let pem = store
        .read(Group::Domains, &md.name, &pubcert_file(spec))
        .ok()??;
    let chain = pem_chain(std::str::from_utf8(&pem).ok()?).ok()?;
    let id: String = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, chain.first()?.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let s = crate::ocsp::load(store, &md.name, &id).ok()??;
    let mut o = Map::new();
    if let Some(st) = s.status {
        o.insert("status".into(), st.as_str().into());
    }
    if let Some(v) = &s.valid {
        o.insert("valid".into(), json!({"from": v.from, "until": v.until}));
    }
    o.insert("responder".into(), s.url.into());
    if let Some(t) = s.last_update {
        o.insert("last-update".into(), t.into());
    }
    o.insert("errors".into(), s.errors.into());
    if let Some(e) = s.error {
        o.insert("error".into(), e.into());
    }
    Some(Value::Object(o))
}

/// The `md-status` JSON of one MD. `with_log` includes the job's log (mod_md does for
/// `/md-status/<name>`, not for the list).
pub fn md_json(store: &Store, md: &ManagedDomain, now: SystemTime, with_log: bool) -> Value {
    let mut j = public_md_json(md);
    let (state, descr) = md_state(store, md);
    j.insert("state".into(), state.as_int().into());
    if let Some(d) = descr {
        j.insert("state-descr".into(), d.into());
    }
    let mut cert = certs_json(&certs(store, Group::Domains, md));
    for spec in &md.pkeys {
        if let Some(o) = ocsp_json(store, md, spec)
            && let Some(Value::Object(c)) = cert.get_mut(spec.name())
        {
            c.insert("ocsp".into(), o);
        }
    }
    j.insert("cert".into(), cert);
    if let Some(t) = renew_at(store, md, now) {
        j.insert("renew-at".into(), http_date(t).into());
    }
    j.insert("stapling".into(), md.stapling.into());
    j.insert(
        "watched".into(),
        (md.renew_mode != RenewMode::Manual).into(),
    );
    let job = load_job(store, md);
    let renew = job.is_some() || should_renew(store, md, now);
    j.insert("renew".into(), renew.into());
    if let Some(job) = job {
        let mut jj = match serde_json::to_value(&job) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if !with_log {
            jj.remove("log");
        }
        jj.insert("cert".into(), certs_json(&certs(store, Group::Staging, md)));
        j.insert("renewal".into(), Value::Object(jj));
    }
    Value::Object(j)
}

/// The `md-status` JSON for all MDs: `{"version":…, "managed-domains":[…]}`, sorted by
/// name, without job logs.
pub fn status_json(store: &Store, mds: &[ManagedDomain], now: SystemTime) -> Value {
    let mut sorted: Vec<&ManagedDomain> = mds.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    json!({
        "version": STATUS_VERSION,
        "managed-domains": sorted.iter().map(|m| md_json(store, m, now, false)).collect::<Vec<_>>(),
    })
}

/// The MD that `name` names: an MD name or one of its DNS names (for `/md-status/<name>`
/// and for a request's host name).
pub fn find<'a>(mds: &'a [ManagedDomain], name: &str) -> Option<&'a ManagedDomain> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    mds.iter()
        .find(|m| m.name == n)
        .or_else(|| mds.iter().find(|m| m.domains.contains(&n)))
}

/// The public `/.httpd/certificate-status` JSON for `md`: `valid` of the active
/// certificates, per key spec `{valid, serial, sha256-fingerprint}`, and, while a job
/// exists, `renewal.cert` with the staged certificates (`{}` when none are staged yet).
pub fn certificate_status_json(store: &Store, md: &ManagedDomain, now: SystemTime) -> Value {
    let full = md_json(store, md, now, false);
    let mut resp = Map::new();
    if let Some(v) = full.pointer("/cert/valid") {
        resp.insert("valid".into(), v.clone());
    }
    for spec in &md.pkeys {
        let mut cj = Map::new();
        let base = format!("/cert/{}", spec.name());
        for key in ["valid", "serial", "sha256-fingerprint"] {
            if let Some(v) = full.pointer(&format!("{base}/{key}")) {
                cj.insert(key.into(), v.clone());
            }
        }
        resp.insert(spec.name().into(), Value::Object(cj));
    }
    if full.get("renewal").is_some() {
        let cert = full
            .pointer("/renewal/cert")
            .cloned()
            .unwrap_or_else(|| json!({}));
        resp.insert("renewal".into(), json!({ "cert": cert }));
    }
    Value::Object(resp)
}

/// mod_md's summary counts (`md_status_take_stock`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stock {
    /// All MDs.
    pub total: usize,
    /// Complete MDs.
    pub complete: usize,
    /// MDs due for renewal.
    pub renewing: usize,
    /// MDs in error, or whose renewal job has errors.
    pub errored: usize,
    /// MDs with new certificates staged and waiting for activation.
    pub ready: usize,
}

/// Counts MDs as mod_md does for `ManagedCertificates*`.
pub fn take_stock(store: &Store, mds: &[ManagedDomain], now: SystemTime) -> Stock {
    let mut s = Stock::default();
    for md in mds {
        s.total += 1;
        let (state, _) = md_state(store, md);
        match state {
            MdState::Complete | MdState::Incomplete => {
                if state == MdState::Complete {
                    s.complete += 1;
                }
                if should_renew(store, md, now) {
                    s.renewing += 1;
                    if let Some(job) = load_job(store, md) {
                        if job.errors > 0 || job.last.status != 0 {
                            s.errored += 1;
                        } else if job.finished {
                            s.ready += 1;
                        }
                    }
                }
            }
            _ => s.errored += 1,
        }
    }
    s
}

fn day(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn secs_from(now: SystemTime, t: SystemTime) -> i64 {
    match t.duration_since(now) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The `key: value` lines mod_status prints for `?auto`: the `ManagedCertificates*`
/// counts, then `ManagedDomain[i]…` lines per MD (sorted by name) as mod_md prints them:
/// `Domain`, `Names[j]`, `Status`, `ValidFrom`/`ValidUntil` (dates), `CAName`/`CAURL`,
/// and the activity (`ActivityRenew: <seconds>`, `Activity: Pending`, `Activity: Manual
/// renew`, or the job: `ActivityFinished`, `ActivityNewStaged`, `ActivityLastStatus`,
/// `ActivityLastProblem`, `ActivityLastDetail`, `ActivityRetries`, `ActivityNextRun`).
pub fn status_auto_text(store: &Store, mds: &[ManagedDomain], now: SystemTime) -> String {
    let s = take_stock(store, mds, now);
    let mut out = String::new();
    let p = "ManagedCertificates";
    out.push_str(&format!("{p}Total: {}\n", s.total));
    out.push_str(&format!("{p}OK: {}\n", s.complete));
    out.push_str(&format!("{p}Renew: {}\n", s.renewing));
    out.push_str(&format!("{p}Errored: {}\n", s.errored));
    out.push_str(&format!("{p}Ready: {}\n", s.ready));
    let mut sorted: Vec<&ManagedDomain> = mds.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for (i, md) in sorted.iter().enumerate() {
        let p = format!("ManagedDomain[{i}]");
        let j = md_json(store, md, now, false);
        out.push_str(&format!("{p}Domain: {}\n", md.name));
        for (k, d) in md.domains.iter().enumerate() {
            out.push_str(&format!("{p}Names[{k}]: {d}\n"));
        }
        let until = valid_until(&j);
        let st = status_word(store, md, until, now);
        out.push_str(&format!("{p}Status: {st}\n"));
        if let Some(from) = j
            .pointer("/cert/valid/from")
            .and_then(Value::as_str)
            .and_then(crate::store::parse_http_date)
            && from > now
        {
            out.push_str(&format!("{p}ValidFrom: {}\n", day(from)));
        }
        if let Some(u) = until {
            out.push_str(&format!("{p}ValidUntil: {}\n", day(u)));
        }
        for (k, url) in md.ca.urls.iter().enumerate() {
            let n = if k == 0 { String::new() } else { k.to_string() };
            out.push_str(&format!("{p}CAName{n}: {}\n", ca_name(url)));
            out.push_str(&format!("{p}CAURL{n}: {url}\n"));
        }
        let a = format!("{p}Activity");
        if let Some(job) = j.get("renewal") {
            let finished = job["finished"].as_bool().unwrap_or(false);
            let status = job
                .pointer("/last/status")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if status != 0 {
                out.push_str(&format!("{a}LastStatus: {status}\n"));
                let problem = job
                    .pointer("/last/problem")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                out.push_str(&format!("{a}LastProblem: {problem}\n"));
            }
            out.push_str(&format!(
                "{a}Finished: {}\n",
                if finished { "yes" } else { "no" }
            ));
            if finished {
                let n = job["cert"]
                    .as_object()
                    .map_or(0, |m| m.keys().filter(|k| *k != "valid").count());
                out.push_str(&format!("{a}NewStaged: {n}\n"));
            } else if let Some(d) = job.pointer("/last/detail").and_then(Value::as_str) {
                out.push_str(&format!("{a}LastDetail: {d}\n"));
            }
            let errors = job["errors"].as_u64().unwrap_or(0);
            if errors > 0 {
                out.push_str(&format!("{a}Retries: {errors}\n"));
            }
            if let Some(t) = job["next-run"]
                .as_str()
                .and_then(crate::store::parse_http_date)
                && t > now
                && !finished
            {
                out.push_str(&format!("{a}NextRun: {}\n", secs_from(now, t)));
            }
        } else if let Some(t) = j["renew-at"]
            .as_str()
            .and_then(crate::store::parse_http_date)
        {
            if t > now {
                out.push_str(&format!("{a}Renew: {}\n", secs_from(now, t)));
            } else {
                out.push_str(&format!("{a}: Pending\n"));
            }
        } else if md.renew_mode == RenewMode::Manual {
            out.push_str(&format!("{a}: Manual renew\n"));
        }
    }
    out
}

fn valid_until(j: &Value) -> Option<SystemTime> {
    j.pointer("/cert/valid/until")
        .and_then(Value::as_str)
        .and_then(crate::store::parse_http_date)
}

/// The status word mod_md shows for an MD: `good`, `expired`, `incomplete: <why>`, `error`,
/// `missing information` or `unknown`.
fn status_word(
    store: &Store,
    md: &ManagedDomain,
    until: Option<SystemTime>,
    now: SystemTime,
) -> String {
    let (state, descr) = md_state(store, md);
    match state {
        MdState::Incomplete => match descr {
            Some(d) => format!("incomplete: {d}"),
            None => "incomplete".into(),
        },
        MdState::Complete => {
            if until.is_none_or(|u| u > now) {
                "good".into()
            } else {
                "expired".into()
            }
        }
        MdState::Error => "error".into(),
        MdState::MissingInformation => "missing information".into(),
        MdState::Unknown => "unknown".into(),
    }
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The section mod_status shows on its HTML page: the `ManagedCertificates*` counts and
/// one table row per MD (sorted by name) with its names, status, validity, CA, whether it
/// is stapled and its activity, as mod_md's "Managed Certificates" table.
pub fn status_html(store: &Store, mds: &[ManagedDomain], now: SystemTime) -> String {
    let s = take_stock(store, mds, now);
    let mut out = String::from("<hr>\n<h2>Managed Certificates</h2>\n");
    out.push_str(&format!(
        "<p>{} total, {} ok, {} renewing, {} errored, {} ready</p>\n",
        s.total, s.complete, s.renewing, s.errored, s.ready
    ));
    out.push_str(
        "<table class=\"md_status\"><thead><tr><th>Domain</th><th>Names</th><th>Status</th>\
         <th>Valid</th><th>CA</th><th>Stapling</th><th>Activity</th></tr></thead><tbody>\n",
    );
    let mut sorted: Vec<&ManagedDomain> = mds.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for md in sorted {
        let j = md_json(store, md, now, false);
        let until = valid_until(&j);
        let valid = match until {
            Some(u) => format!("until {}", day(u)),
            None => "-".into(),
        };
        let ca: Vec<String> = md.ca.urls.iter().map(|u| ca_name(u)).collect();
        let activity = if let Some(job) = j.get("renewal") {
            if job["finished"].as_bool().unwrap_or(false) {
                "new certificate staged, activating".to_string()
            } else {
                let problem = job.pointer("/last/problem").and_then(Value::as_str);
                let detail = job.pointer("/last/detail").and_then(Value::as_str);
                match (problem, detail) {
                    (Some(p), Some(d)) if !p.is_empty() => format!("renewing: {p}: {d}"),
                    (_, Some(d)) => format!("renewing: {d}"),
                    _ => "renewing".to_string(),
                }
            }
        } else if let Some(t) = j["renew-at"]
            .as_str()
            .and_then(crate::store::parse_http_date)
        {
            if t > now {
                format!("renew on {}", day(t))
            } else {
                "renewal pending".into()
            }
        } else if md.renew_mode == RenewMode::Manual {
            "manual renew".into()
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(&md.name),
            html_escape(&md.domains.join(", ")),
            html_escape(&status_word(store, md, until, now)),
            html_escape(&valid),
            html_escape(&ca.join(", ")),
            if md.stapling { "on" } else { "off" },
            html_escape(&activity),
        ));
    }
    out.push_str("</tbody></table>\n");
    out
}

/// A short name for a CA URL: the known names mod_md uses, otherwise the host.
pub fn ca_name(url: &str) -> String {
    let known = [
        ("https://acme-v02.api.letsencrypt.org/", "letsencrypt.org"),
        (
            "https://acme-staging-v02.api.letsencrypt.org/",
            "letsencrypt.org (staging)",
        ),
        ("https://api.buypass.com/", "buypass.com"),
        ("https://api.test4.buypass.no/", "buypass.com (test)"),
    ];
    for (prefix, name) in known {
        if url.starts_with(prefix) {
            return name.into();
        }
    }
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or(url)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    use crate::store::JobLast;

    static N: AtomicU64 = AtomicU64::new(0);

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bastion-md-status-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A self-signed certificate for `names`, valid `[from, until]`, serial 0x00 0x1A 0x2B.
    fn cert(names: &[&str], from: SystemTime, until: SystemTime, ec384: bool) -> String {
        let key = if ec384 {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap()
        } else {
            rcgen::KeyPair::generate().unwrap()
        };
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.not_before = from.into();
        p.not_after = until.into();
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x1a, 0x2b]));
        p.self_signed(&key).unwrap().pem()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600) // 2026-01-01
    }

    fn md() -> ManagedDomain {
        let mut m = ManagedDomain::new("s.example", &["www.s.example"]).unwrap();
        m.pkeys = vec![KeySpec::Rsa(2048), KeySpec::P384];
        m.eab = Some(crate::model::Eab {
            kid: "kid-1".into(),
            hmac: "c2VjcmV0".into(),
        });
        m
    }

    #[test]
    fn incomplete_without_certificates() {
        let base = tempdir();
        let store = Store::open(&base).unwrap();
        let m = md();
        let now = t0();
        let j = md_json(&store, &m, now, true);
        assert_eq!(j["name"], "s.example");
        assert_eq!(j["domains"][1], "www.s.example");
        assert_eq!(j["state"], 1);
        assert_eq!(j["state-descr"], "certificate(rsa) is missing");
        assert_eq!(j["ca"]["proto"], "ACME");
        assert_eq!(j["eab"]["hmac"], "***");
        assert_eq!(j["eab"]["kid"], "kid-1");
        assert_eq!(j["renew-mode"], 1);
        assert_eq!(j["renew-window"], "33%");
        assert_eq!(j["cert"], json!({}));
        assert_eq!(j["renew-at"], http_date(now));
        assert_eq!(j["renew"], true);
        assert!(j.get("renewal").is_none());
        let cs = certificate_status_json(&store, &m, now);
        assert!(cs.get("valid").is_none());
        assert_eq!(cs["rsa"], json!({}));
        assert!(cs.get("renewal").is_none());
        let text = status_auto_text(&store, &[m], now);
        assert!(text.starts_with(
            "ManagedCertificatesTotal: 1\nManagedCertificatesOK: 0\n\
             ManagedCertificatesRenew: 1\nManagedCertificatesErrored: 0\n\
             ManagedCertificatesReady: 0\n"
        ));
        assert!(
            text.contains("ManagedDomain[0]Domain: s.example\n"),
            "{text}"
        );
        assert!(text.contains("ManagedDomain[0]Names[1]: www.s.example\n"));
        assert!(text.contains("ManagedDomain[0]Status: incomplete: certificate(rsa) is missing\n"));
        assert!(text.contains("ManagedDomain[0]CAName: letsencrypt.org\n"));
        assert!(
            text.contains("ManagedDomain[0]Activity: Pending\n"),
            "{text}"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn complete_with_staged_renewal() {
        let base = tempdir();
        let store = Store::open(&base).unwrap();
        let m = md();
        let now = t0() + DAY * 10;
        let names = ["s.example", "www.s.example"];
        let rsa = cert(&names, t0(), t0() + DAY * 90, false);
        let ec = cert(&names, t0() + DAY, t0() + DAY * 80, true);
        store
            .write(Group::Domains, &m.name, "pubcert.pem", rsa.as_bytes())
            .unwrap();
        store
            .write(
                Group::Domains,
                &m.name,
                "pubcert.secp384r1.pem",
                ec.as_bytes(),
            )
            .unwrap();
        // A stored OCSP response for the rsa certificate shows under cert.rsa.ocsp.
        let rsa_id: String = digest::digest(
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            pem_chain(&rsa).unwrap()[0].as_ref(),
        )
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
        crate::ocsp::save(
            &store,
            &m.name,
            &crate::ocsp::Stored {
                id: rsa_id,
                url: "http://ocsp.example/".into(),
                status: Some(crate::ocsp::CertState::Good),
                valid: Some(crate::ocsp::Period {
                    from: http_date(now),
                    until: http_date(now + DAY),
                }),
                response: Some("AAAA".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let mut m = m;
        m.stapling = true;
        let j = md_json(&store, &m, now, false);
        assert_eq!(j["stapling"], true);
        assert_eq!(j["cert"]["rsa"]["ocsp"]["status"], "good", "{j:#}");
        assert_eq!(
            j["cert"]["rsa"]["ocsp"]["valid"]["until"],
            http_date(now + DAY)
        );
        assert_eq!(
            j["cert"]["rsa"]["ocsp"]["responder"],
            "http://ocsp.example/"
        );
        assert!(j["cert"]["secp384r1"].get("ocsp").is_none());
        assert_eq!(j["state"], 2, "{j:#}");
        assert!(j.get("state-descr").is_none());
        assert_eq!(j["cert"]["rsa"]["serial"], "1A2B");
        let fp = j["cert"]["rsa"]["sha256-fingerprint"].as_str().unwrap();
        let der = &pem_chain(&rsa).unwrap()[0];
        let want: String = digest::digest(&digest::SHA256, der.as_ref())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(fp, want);
        assert_eq!(
            j["cert"]["rsa"]["valid"]["until"],
            http_date(t0() + DAY * 90)
        );
        // The common period: latest start, earliest end.
        assert_eq!(j["cert"]["valid"]["from"], http_date(t0() + DAY));
        assert_eq!(j["cert"]["valid"]["until"], http_date(t0() + DAY * 80));
        // 33% of the EC certificate's 79 days before day 80.
        let ra = (t0() + DAY * 80) - DAY.mul_f64(79.0 * 0.33);
        assert_eq!(j["renew-at"], http_date(ra));
        assert_eq!(j["renew"], false);
        assert!(j.get("renewal").is_none());
        let text = status_auto_text(&store, std::slice::from_ref(&m), now);
        assert!(text.contains("ManagedCertificatesOK: 1\n"));
        assert!(text.contains("ManagedCertificatesRenew: 0\n"));
        assert!(text.contains("ManagedDomain[0]Status: good\n"), "{text}");
        assert!(
            text.contains("ManagedDomain[0]ValidUntil: 2026-03-22\n"),
            "{text}"
        );
        assert!(text.contains("ManagedDomain[0]ActivityRenew: "), "{text}");

        // Inside the renew window with a finished job and staged certificates.
        let later = t0() + DAY * 60;
        store
            .write(Group::Staging, &m.name, "pubcert.pem", rsa.as_bytes())
            .unwrap();
        let mut job = Job {
            name: m.name.clone(),
            finished: true,
            ..Job::default()
        };
        job.log(later, "renewed", "certificates staged");
        store
            .write_json(Group::Staging, &m.name, "job.json", &job)
            .unwrap();
        let j = md_json(&store, &m, later, false);
        assert_eq!(j["renew"], true);
        assert_eq!(j["renewal"]["finished"], true);
        assert!(j["renewal"].get("log").is_none());
        assert_eq!(j["renewal"]["cert"]["rsa"]["serial"], "1A2B");
        assert!(j["renewal"]["cert"].get("secp384r1").is_none());
        let j = md_json(&store, &m, later, true);
        assert_eq!(j["renewal"]["log"]["entries"][0]["type"], "renewed");
        let cs = certificate_status_json(&store, &m, later);
        assert_eq!(cs["rsa"]["serial"], "1A2B");
        assert!(cs["rsa"].get("issuer-name").is_none());
        assert!(cs["secp384r1"]["sha256-fingerprint"].is_string());
        assert_eq!(cs["renewal"]["cert"]["rsa"]["serial"], "1A2B");
        let text = status_auto_text(&store, std::slice::from_ref(&m), later);
        assert!(text.contains("ManagedCertificatesRenew: 1\n"), "{text}");
        assert!(text.contains("ManagedCertificatesReady: 1\n"), "{text}");
        assert!(text.contains("ManagedDomain[0]ActivityFinished: yes\n"));
        assert!(
            text.contains("ManagedDomain[0]ActivityNewStaged: 1\n"),
            "{text}"
        );

        // A failed job counts as errored and shows its problem.
        job.finished = false;
        job.errors = 2;
        job.next_run = Some(http_date(later + DAY));
        job.last = JobLast {
            status: 1,
            problem: Some("urn:ietf:params:acme:error:rejectedIdentifier".into()),
            detail: Some("creating the order: nope".into()),
            activity: None,
        };
        store
            .write_json(Group::Staging, &m.name, "job.json", &job)
            .unwrap();
        let s = take_stock(&store, std::slice::from_ref(&m), later);
        assert_eq!((s.errored, s.ready, s.renewing), (1, 0, 1));
        let text = status_auto_text(&store, std::slice::from_ref(&m), later);
        assert!(text.contains(
            "ManagedDomain[0]ActivityLastProblem: urn:ietf:params:acme:error:rejectedIdentifier\n"
        ));
        assert!(text.contains("ManagedDomain[0]ActivityLastDetail: creating the order: nope\n"));
        assert!(text.contains("ManagedDomain[0]ActivityRetries: 2\n"));
        assert!(
            text.contains("ManagedDomain[0]ActivityNextRun: 86400\n"),
            "{text}"
        );

        // Expired.
        let text = status_auto_text(&store, std::slice::from_ref(&m), t0() + DAY * 100);
        assert!(text.contains("ManagedDomain[0]Status: expired\n"), "{text}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn list_find_and_wrong_names() {
        let base = tempdir();
        let store = Store::open(&base).unwrap();
        let a = ManagedDomain::new("b.example", &[]).unwrap();
        let mut b = ManagedDomain::new("a.example", &["www.a.example"]).unwrap();
        b.renew_mode = RenewMode::Manual;
        // A certificate that does not cover www.a.example.
        let c = cert(&["a.example"], t0(), t0() + DAY * 90, false);
        store
            .write(Group::Domains, "a.example", "pubcert.pem", c.as_bytes())
            .unwrap();
        let mds = vec![a, b];
        let j = status_json(&store, &mds, t0());
        assert_eq!(j["version"], STATUS_VERSION);
        assert_eq!(j["managed-domains"][0]["name"], "a.example");
        assert_eq!(j["managed-domains"][0]["watched"], false);
        assert_eq!(
            j["managed-domains"][0]["state-descr"],
            "certificate(rsa) does not cover all domains."
        );
        assert_eq!(find(&mds, "WWW.a.example.").unwrap().name, "a.example");
        assert_eq!(find(&mds, "b.example").unwrap().name, "b.example");
        assert!(find(&mds, "c.example").is_none());
        // Garbage in domains/ is an error state.
        store
            .write(Group::Domains, "b.example", "pubcert.pem", b"garbage")
            .unwrap();
        assert_eq!(md_state(&store, &mds[0]).0, MdState::Error);
        let s = take_stock(&store, &mds, t0());
        assert_eq!((s.total, s.errored, s.complete), (2, 1, 0));
        assert_eq!(ca_name("https://localhost:14000/dir"), "localhost:14000");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
