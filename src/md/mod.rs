//! Managed domains (mod_md's job): configuration checks, the store, the ACME watchdog task,
//! challenge answers and the certificates offered to the TLS filter (and mod_ssl) through
//! httpd's SSL provider hooks.
//!
//! The engine (`bastion_md`) does the ACME work and the store; this file wires it to httpd:
//! - check_config: the MDs with all settings applied, checked (also for `apachectl -t`);
//! - post_config (parent, as root): store opened and synced, staged certificates promoted,
//!   fallback certificates made, worker directories handed to `User`, the watchdog registered;
//! - the watchdog task (one child, one thread, a current-thread tokio runtime): drives orders;
//! - every child: http-01 answers (post_read_request), tls-alpn-01 answers
//!   (ssl_answer_challenge), certificate files (ssl_add_cert_files / fallback);
//! - OCSP stapling ([`ocsp`]): its own watchdog task and the ssl_ocsp_* provider hooks.

pub mod conf;
pub mod https;
pub mod ocsp;
pub mod pages;

use crate::ServerConf;
use crate::httpd::log::{Level, log_startup};
use crate::httpd::optional::{WatchdogState, watchdog_singleton};
use crate::httpd::{Conn, Pool, Request, Server, Status, state, status};
use bastion_md::model::{self, ChallengeType, ManagedDomain, RenewMode};
use bastion_md::store::{self, Group};
use bastion_md::{Driver, DriverConfig, Outcome, Store, challenge};
use conf::MdConf;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// What the children need: the store (opened by the parent, its key in memory) and the
/// resolved managed domains.
pub struct Runtime {
    store: Store,
    /// `MDCertificateStatus` (default on).
    certificate_status: bool,
    /// `MDServerStatus` (default on): a section in mod_status's page.
    server_status: bool,
    mds: Vec<ManagedDomain>,
    statics: HashMap<String, StaticFiles>,
    driver: DriverConfig,
    initial_delay: Duration,
    /// `MDActivationDelay`.
    activation_delay: Duration,
    notify_cmd: Option<String>,
    message_cmd: Option<String>,
}

static RUNTIME: RwLock<Option<Arc<Runtime>>> = RwLock::new(None);

fn runtime() -> Option<Arc<Runtime>> {
    RUNTIME.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn md_conf<'a>(main: &Server<'a>) -> &'a MdConf {
    &main.config::<ServerConf>().md
}

fn names_of(s: &Server<'_>) -> Vec<String> {
    let mut v: Vec<String> = s.hostname().into_iter().map(str::to_string).collect();
    v.extend(s.aliases().into_iter().map(str::to_string));
    v.extend(s.wild_aliases().into_iter().map(str::to_string));
    v.iter_mut()
        .for_each(|n| *n = n.trim_end_matches('.').to_ascii_lowercase());
    v
}

fn covers(md: &ManagedDomain, name: &str) -> bool {
    md.domains.iter().any(|d| {
        d == name
            || d.strip_prefix("*.")
                .is_some_and(|suffix| name.split_once('.').is_some_and(|(_, rest)| rest == suffix))
    })
}

/// A static certificate and key (`MDCertificateFile`, `MDCertificateKeyFile`).
type StaticFiles = (PathBuf, PathBuf);

/// The MDs with every setting applied, `MDMembers auto` names added from the virtual hosts,
/// and checked as mod_md checks them.
fn resolve(main: &Server<'static>) -> Result<Vec<(ManagedDomain, Option<StaticFiles>)>, String> {
    let c = md_conf(main);
    let mut out = Vec::new();
    for (mut md, decl) in c.resolve(main.admin()) {
        let auto = decl.members_auto.or(c.members_auto).unwrap_or(true);
        for s in main.iter() {
            let names = names_of(&s);
            if !names.iter().any(|n| covers(&md, n)) {
                continue;
            }
            let missing: Vec<&String> = names.iter().filter(|n| !covers(&md, n)).collect();
            if missing.is_empty() {
                continue;
            }
            if auto {
                for n in missing {
                    if !n.starts_with("*.") || md.dns01_cmd.is_some() {
                        md.domains.push(n.clone());
                    }
                }
            } else {
                return Err(format!(
                    "MDomain {} ({}): the virtual host {} also answers to {}, which the \
                     managed domain does not cover; add them with MDMember inside \
                     <MDomain {}>, or set MDMembers auto",
                    md.name,
                    decl.defined_at,
                    s.defined_at(),
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    md.name
                ));
            }
        }
        let statics = match (&decl.cert_file, &decl.key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "MDomain {} ({}): MDCertificateFile and MDCertificateKeyFile go together",
                    md.name, decl.defined_at
                ));
            }
        };
        model::check_domain(&md).map_err(|e| format!("{} ({})", e.0, decl.defined_at))?;
        if statics.is_none() && md.renew_mode != RenewMode::Manual {
            model::check_account_info(&md).map_err(|e| format!("{} ({})", e.0, decl.defined_at))?;
        }
        out.push((md, statics));
    }
    let only: Vec<ManagedDomain> = out.iter().map(|(m, _)| m.clone()).collect();
    model::check_overlaps(&only).map_err(|e| e.0)?;
    Ok(out)
}

fn fail(msg: &str) -> Status {
    log_startup(Level::Emerg, &format!("mod_bastion: {msg}"));
    status::INTERNAL_SERVER_ERROR
}

/// check_config: the managed domains are consistent (runs for `apachectl -t` too).
pub fn check_config(_p: &Pool, _ptemp: &Pool, main: Server<'static>) -> Status {
    if !md_conf(&main).active() {
        return status::OK;
    }
    match resolve(&main) {
        Ok(_) => status::OK,
        Err(e) => fail(&e),
    }
}

fn chown_tree(dir: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            chown_tree(&e.path(), uid, gid)?;
        } else {
            std::os::unix::fs::lchown(e.path(), Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

/// post_config (second pass, parent): store, promotion, fallbacks, watchdog.
pub fn post_config(p: &Pool, _ptemp: &Pool, main: Server<'static>) -> Status {
    let c = md_conf(&main);
    if !c.active() {
        *RUNTIME.write().unwrap_or_else(|p| p.into_inner()) = None;
        return status::OK;
    }
    // Both passes: mod_ssl loads its certificates (ours included, through the provider
    // hooks) already in httpd's first, trial pass, and fails without them.
    let first_pass = state::is_first_config_pass();
    let resolved = match resolve(&main) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let dir = c
        .store_dir
        .clone()
        .unwrap_or_else(|| p.server_root_relative("md"));
    let mut store = match Store::open(&dir) {
        Ok(s) => s,
        Err(e) => return fail(&format!("MDStoreDir {}: {e}", dir.display())),
    };
    let mut mds = Vec::new();
    let mut statics = HashMap::new();
    for (md, st) in resolved {
        if let Some(files) = st {
            statics.insert(md.name.clone(), files);
            mds.push(md);
            continue;
        }
        // A complete set of staged certificates becomes the live one (mod_md does this at
        // every start, so a renewal waits at most for the next restart there).
        let delay = c.activation_delay.unwrap_or(Duration::ZERO);
        let staged = store.staging_complete(&md).is_ok();
        if staged && !staged_due(&store, &md, delay) && !first_pass {
            tracing::info!(
                "{}: a new certificate is staged; it goes live {}s after its notBefore (MDActivationDelay)",
                md.name,
                delay.as_secs()
            );
        }
        // Each staged key must match its certificate (a set cut short is never promoted).
        let staged = staged
            && match staged_keys(&store, &md) {
                Ok(_) => true,
                Err(e) => {
                    tracing::error!("{}: the staged certificates are not used: {e}", md.name);
                    false
                }
            };
        if staged && staged_due(&store, &md, delay) {
            match store.promote_staging(&md.name) {
                Ok(true) => tracing::info!("{}: new certificate activated", md.name),
                Ok(false) => {}
                Err(e) => tracing::error!("{}: activating the staged certificate: {e}", md.name),
            }
        }
        if let Err(e) = store.save_md(Group::Domains, &md) {
            return fail(&format!("MDomain {}: writing md.json: {e}", md.name));
        }
        if !has_certs(&store, &md) && !has_fallback(&store, &md) {
            match bastion_md::cert::fallback_cert(&md.domains) {
                Ok((cert, key)) => {
                    let r = store
                        .save_key(Group::Domains, &md.name, FALLBACK_KEY, &key)
                        .and_then(|_| {
                            store.write(Group::Domains, &md.name, FALLBACK_CERT, cert.as_bytes())
                        });
                    if let Err(e) = r {
                        return fail(&format!("MDomain {}: fallback certificate: {e}", md.name));
                    }
                }
                Err(e) => return fail(&format!("MDomain {}: fallback certificate: {e}", md.name)),
            }
        }
        mds.push(md);
    }
    // The children (User) may not read domains/: they see its public files from memory
    // (status pages, and the watchdog's renewal decisions).
    for md in &mds {
        let files = md
            .pkeys
            .iter()
            .map(store::pubcert_file)
            .chain(["md.json".to_string()]);
        for f in files {
            if let Err(e) = store.preload(Group::Domains, &md.name, &f) {
                return fail(&format!("MDomain {}: {e}", md.name));
            }
        }
    }
    let (uid, gid) = state::worker_ids();
    for d in store.worker_owned_dirs() {
        if let Err(e) = chown_tree(&d, uid, gid) {
            return fail(&format!("{}: giving it to the User: {e}", d.display()));
        }
    }
    let driver = DriverConfig {
        ca_file: c.ca_file.clone(),
        retry_delay: c
            .retry_delay
            .unwrap_or(bastion_md::renewal::DEFAULT_RETRY_DELAY),
        check_interval: c
            .check_interval
            .unwrap_or(bastion_md::renewal::DEFAULT_CHECK_INTERVAL),
        auto_challenges: auto_challenges(&main, c),
        retry_failover: c
            .retry_failover
            .unwrap_or(DriverConfig::default().retry_failover),
        dns01_version2: c.dns01_version2.unwrap_or(false),
        ..DriverConfig::default()
    };
    let managed = mds
        .iter()
        .filter(|m| !statics.contains_key(&m.name))
        .count();
    *RUNTIME.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Runtime {
        store,
        certificate_status: c.certificate_status.unwrap_or(true),
        server_status: c.server_status.unwrap_or(true),
        mds,
        statics,
        driver,
        initial_delay: c.initial_delay.unwrap_or(Duration::ZERO),
        activation_delay: c.activation_delay.unwrap_or(Duration::ZERO),
        notify_cmd: c.notify_cmd.clone(),
        message_cmd: c.message_cmd.clone(),
    }));
    if managed > 0
        && !first_pass
        && let Err(e) = watchdog_singleton(c"bastion-md", Duration::from_secs(1), p, watchdog)
    {
        return fail(&e);
    }
    status::OK
}

/// The challenge types the server can answer: tls-alpn-01 when the TLS filter serves the
/// public https port, http-01 when the http port is served (MDPortMap maps 80/443 to the
/// local ports).
fn auto_challenges(main: &Server<'static>, c: &MdConf) -> Vec<ChallengeType> {
    let (http, https) = c.port_map.unwrap_or((80, 443));
    let mut ports = Vec::new();
    for s in main.iter() {
        for a in s.addrs() {
            ports.push(a.port);
        }
    }
    let tls_ports: Vec<u16> = main
        .config::<ServerConf>()
        .tls
        .engines
        .iter()
        .map(|e| e.port)
        .chain(main.iter().flat_map(|s| {
            s.config::<ServerConf>()
                .tls
                .engines
                .iter()
                .map(|e| e.port)
                .collect::<Vec<_>>()
        }))
        .collect();
    let mut v = Vec::new();
    if https != 0 && tls_ports.contains(&https) {
        v.push(ChallengeType::TlsAlpn01);
    }
    if http != 0 && (ports.contains(&http) || ports.contains(&0)) {
        v.push(ChallengeType::Http01);
    }
    if v.is_empty() {
        v = vec![ChallengeType::Http01, ChallengeType::TlsAlpn01];
    }
    v
}

const FALLBACK_CERT: &str = "fallback-pubcert.pem";
const FALLBACK_KEY: &str = "fallback-privkey.pem";

fn has_certs(store: &Store, md: &ManagedDomain) -> bool {
    md.pkeys.iter().all(|k| {
        store.exists(Group::Domains, &md.name, &store::pubcert_file(k))
            && store.exists(Group::Domains, &md.name, &store::privkey_file(k))
    })
}

/// Whether a complete staged set may go live: `MDActivationDelay` has passed since the
/// latest notBefore of its certificates (mod_md's rule, against clients whose clocks lag).
fn staged_due(store: &Store, md: &ManagedDomain, delay: Duration) -> bool {
    let latest = md
        .pkeys
        .iter()
        .filter_map(|k| {
            let pem = store
                .read(Group::Staging, &md.name, &store::pubcert_file(k))
                .ok()??;
            let pem = String::from_utf8(pem).ok()?;
            bastion_md::cert::leaf_info(&pem).ok()
        })
        .map(|i| i.validity.not_before)
        .max();
    match latest {
        Some(nb) => SystemTime::now() >= nb + delay,
        None => false,
    }
}

fn has_fallback(store: &Store, md: &ManagedDomain) -> bool {
    store.exists(Group::Domains, &md.name, FALLBACK_CERT)
        && store.exists(Group::Domains, &md.name, FALLBACK_KEY)
}

/// Whether the MD has a real certificate in this process: a static one, one in domains/
/// (as of the last start), or a staged one this child activated since.
fn has_real_cert(rt: &Runtime, md: &ManagedDomain) -> bool {
    rt.statics.contains_key(&md.name)
        || has_certs(&rt.store, md)
        || ACTIVATED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|m| m.contains_key(&md.name))
}

fn md_for<'r>(rt: &'r Runtime, s: &Server<'_>) -> Option<&'r ManagedDomain> {
    let names = names_of(s);
    rt.mds
        .iter()
        .find(|m| names.first().is_some_and(|n| covers(m, n)))
}

fn path(store: &Store, md: &ManagedDomain, file: &str) -> String {
    store
        .path(Group::Domains, &md.name, file)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// ssl_add_cert_files: the live certificates of the MD that covers the host.
pub fn add_cert_files(s: Server, _p: &Pool) -> Vec<(String, String)> {
    let Some(rt) = runtime() else {
        return Vec::new();
    };
    let Some(md) = md_for(&rt, &s) else {
        return Vec::new();
    };
    if let Some((c, k)) = rt.statics.get(&md.name) {
        return vec![(
            c.to_string_lossy().into_owned(),
            k.to_string_lossy().into_owned(),
        )];
    }
    if !has_certs(&rt.store, md) {
        return Vec::new();
    }
    md.pkeys
        .iter()
        .map(|k| {
            (
                path(&rt.store, md, &store::pubcert_file(k)),
                path(&rt.store, md, &store::privkey_file(k)),
            )
        })
        .collect()
}

/// ssl_add_fallback_cert_files: a self-signed certificate until the first one is issued
/// (the TLS filter then answers every request with 503).
pub fn add_fallback_cert_files(s: Server, _p: &Pool) -> Vec<(String, String)> {
    let Some(rt) = runtime() else {
        return Vec::new();
    };
    match md_for(&rt, &s) {
        Some(md) if !rt.statics.contains_key(&md.name) && has_fallback(&rt.store, md) => {
            vec![(
                path(&rt.store, md, FALLBACK_CERT),
                path(&rt.store, md, FALLBACK_KEY),
            )]
        }
        _ => Vec::new(),
    }
}

/// ssl_answer_challenge: the tls-alpn-01 certificate for `name`, if a challenge is set up.
pub fn answer_challenge(_c: Conn, name: &str) -> Option<(String, String)> {
    let rt = runtime()?;
    let (cert, key) = challenge::tls_alpn01_answer(&rt.store, name)?;
    tracing::debug!("answering the tls-alpn-01 challenge for {name}");
    Some((cert, key.to_string()))
}

/// The ALPN protocol of tls-alpn-01 (RFC 8737).
const ACME_TLS_1: &std::ffi::CStr = c"acme-tls/1";

/// protocol_propose: `acme-tls/1` on TLS connections of another module (mod_ssl) whose
/// client offers it, as mod_md does: mod_ssl then switches to it and asks
/// ap_ssl_answer_challenge for the certificate (`Protocols ... acme-tls/1` must allow it).
/// Our TLS filter answers tls-alpn-01 itself, before it selects a protocol.
pub fn propose_acme_tls(c: Conn, _s: Server, offered: &[&str]) -> Option<&'static std::ffi::CStr> {
    let proto = ACME_TLS_1.to_str().ok()?;
    (offered.contains(&proto)
        && runtime().is_some()
        && !crate::tls::hooks::conn_is_ssl(c)
        && crate::httpd::ssl::conn_is_ssl(&c))
    .then_some(ACME_TLS_1)
}

/// protocol_switch: accepts the switch to `acme-tls/1` (the connection only carries the
/// challenge handshake).
pub fn switch_acme_tls(_c: Conn, _s: Server, protocol: &str) -> Status {
    if runtime().is_some() && ACME_TLS_1.to_str() == Ok(protocol) {
        status::OK
    } else {
        status::DECLINED
    }
}

const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// post_read_request: http-01 answers from the store, on every child.
pub fn http_challenge(r: &mut Request) -> Status {
    if !r.uri().starts_with(ACME_CHALLENGE) {
        return status::DECLINED;
    }
    let Some(rt) = runtime() else {
        return status::DECLINED;
    };
    let host = r.hostname().unwrap_or("").to_string();
    if !rt.mds.iter().any(|m| covers(m, &host)) {
        return status::DECLINED;
    }
    let Some(answer) = challenge::http01_answer(&rt.store, &host) else {
        return status::NOT_FOUND;
    };
    tracing::debug!("answering the http-01 challenge for {host}");
    r.set_status(200);
    r.set_content_type("text/plain");
    r.set_content_length(answer.len() as u64);
    let mut bb = r.brigade();
    if !r.header_only() {
        bb.push_copy(answer.as_bytes());
    }
    bb.push_eos();
    let _ = r.pass(&mut bb);
    status::DONE
}

/// The watchdog child's state: the tokio runtime, the driver and when each MD is due.
struct Drive {
    tokio: tokio::runtime::Runtime,
    driver: Driver,
    due: HashMap<String, SystemTime>,
}

static DRIVE: Mutex<Option<Drive>> = Mutex::new(None);

fn run_cmd(cmd: &Option<String>, args: &[&str]) {
    let Some(cmd) = cmd else { return };
    let mut parts = cmd.split_whitespace();
    let Some(prog) = parts.next() else { return };
    match std::process::Command::new(prog)
        .args(parts)
        .args(args)
        .status()
    {
        Ok(s) if s.success() => tracing::debug!("{cmd} {}: ok", args.join(" ")),
        Ok(s) => tracing::warn!("{cmd} {}: exited with {s}", args.join(" ")),
        Err(e) => tracing::warn!("{cmd} {}: {e}", args.join(" ")),
    }
}

/// A current-thread tokio runtime for a watchdog task (made in the watchdog's thread, never
/// in the parent); `None`, logged, if it cannot be made.
pub(crate) fn watchdog_runtime(what: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!("{what} cannot be started: {e}");
            None
        }
    }
}

/// The watchdog task: every second, drive the MDs that are due.
fn watchdog(st: WatchdogState, _p: &Pool) {
    if st != WatchdogState::Running {
        if st == WatchdogState::Stopping {
            *DRIVE.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        return;
    }
    let Some(rt) = runtime() else { return };
    let mut guard = DRIVE.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let Some(tokio) = watchdog_runtime("managed domains: the ACME runtime") else {
            return;
        };
        let start = SystemTime::now() + rt.initial_delay;
        *guard = Some(Drive {
            tokio,
            driver: Driver::new(rt.store.clone(), rt.driver.clone()),
            due: rt.mds.iter().map(|m| (m.name.clone(), start)).collect(),
        });
    }
    let d = guard.as_mut().expect("drive state");
    let now = SystemTime::now();
    for md in &rt.mds {
        if rt.statics.contains_key(&md.name) {
            continue;
        }
        if d.due.get(&md.name).is_some_and(|t| *t > now) {
            continue;
        }
        let r = d.tokio.block_on(d.driver.drive(md));
        let next = match r {
            Ok(o) => {
                match o {
                    Outcome::Renewed { .. } => {
                        tracing::info!(
                            "The Managed Domain {} has been setup and changes will be \
                             activated on next (graceful) server restart.",
                            md.name
                        );
                        run_cmd(&rt.notify_cmd, &[&md.name]);
                        run_cmd(&rt.message_cmd, &["renewed", &md.name]);
                    }
                    Outcome::NotDue { warn: true, .. } => {
                        run_cmd(&rt.message_cmd, &["expiring", &md.name]);
                    }
                    _ => {}
                }
                o.next_run()
            }
            Err(e) => {
                let next = d
                    .driver
                    .next_run(&md.name)
                    .unwrap_or(now + Duration::from_secs(5));
                // The one line an administrator sees for a failed attempt (the engine logs
                // its own account at debug).
                tracing::warn!(
                    "{}: renewal failed: {e}; next attempt in {} s",
                    md.name,
                    next.duration_since(now).unwrap_or_default().as_secs()
                );
                run_cmd(&rt.message_cmd, &["errored", &md.name]);
                next
            }
        };
        d.due.insert(md.name.clone(), next);
    }
}

/// When this child last looked for staged certificates (seconds since the epoch).
static LAST_LOOK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Per MD, the staged certificate this child has activated (its file's mtime).
static ACTIVATED: Mutex<Option<HashMap<String, SystemTime>>> = Mutex::new(None);
/// How often a child looks for newly staged certificates.
const LOOK_EVERY_SECS: u64 = 2;

/// Activation without a restart (what mod_md lacks): at most every 2 seconds, on a new
/// connection, each child looks for a complete set of staged certificates it does not serve
/// yet and swaps them into the TLS hosts the managed domain covers. The parent still
/// promotes staging to domains/ at its next start.
pub fn activate_staged(main: &Server<'_>) {
    use std::sync::atomic::Ordering;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST_LOOK.load(Ordering::Relaxed);
    if now < last + LOOK_EVERY_SECS
        || LAST_LOOK
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let Some(rt) = runtime() else { return };
    for md in &rt.mds {
        if rt.statics.contains_key(&md.name) || rt.store.staging_complete(md).is_err() {
            continue;
        }
        let Some(first) = md.pkeys.first() else {
            continue;
        };
        let stamp = rt
            .store
            .path(Group::Staging, &md.name, &store::pubcert_file(first))
            .ok()
            .and_then(|p| p.metadata().ok())
            .and_then(|m| m.modified().ok());
        let Some(stamp) = stamp else { continue };
        {
            let mut seen = ACTIVATED.lock().unwrap_or_else(|p| p.into_inner());
            let seen = seen.get_or_insert_with(HashMap::new);
            if seen.get(&md.name) == Some(&stamp) || !staged_due(&rt.store, md, rt.activation_delay)
            {
                continue;
            }
            seen.insert(md.name.clone(), stamp);
        }
        let keys = match staged_keys(&rt.store, md) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(
                    "{}: the staged certificate cannot be activated: {e}",
                    md.name
                );
                continue;
            }
        };
        let mut hosts = 0;
        for s in main.iter() {
            let names = names_of(&s);
            if names.first().is_some_and(|n| covers(md, n))
                && let Some(v) = crate::tls::vhost_of(&s)
                && v.activate(keys.clone())
            {
                hosts += 1;
            }
        }
        tracing::info!(
            "{}: new certificate active in this child ({hosts} virtual host(s)), without a restart",
            md.name
        );
    }
}

fn staged_keys(
    store: &Store,
    md: &ManagedDomain,
) -> Result<Vec<bastion_tls::resolver::CertEntry>, String> {
    let provider = bastion_tls::base_provider();
    md.pkeys
        .iter()
        .map(|spec| {
            let cert = store
                .read(Group::Staging, &md.name, &store::pubcert_file(spec))
                .map_err(|e| e.to_string())?
                .ok_or("no certificate")?;
            let key = store
                .load_key(Group::Staging, &md.name, &store::privkey_file(spec))
                .map_err(|e| e.to_string())?
                .ok_or("no key")?;
            // No stapling id: the stapling provider learns of a certificate at startup, so
            // a certificate activated without a restart is stapled after the next one.
            bastion_tls::certs::load_pem(&cert, Some(key.as_bytes()), &md.name, &provider)
                .map(|l| bastion_tls::resolver::CertEntry {
                    key: l.certified_key,
                    info: Some(l.info),
                    ocsp_id: None,
                })
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// pre_connection: activates newly staged certificates before this connection's handshake.
pub fn pre_connection(c: Conn) -> Status {
    if c.master().is_none()
        && !c.is_outgoing()
        && let Some(main) = Server::main()
    {
        activate_staged(&main);
    }
    status::DECLINED
}
