//! OCSP stapling (`MDStapling`, `MDStapleOthers`): a provider for httpd's `ssl_ocsp_prime`
//! and `ssl_ocsp_get_resp` hooks, consumed by the TLS filter and by mod_ssl.
//!
//! - post_config (parent): the settings, the store, the watchdog task registered; the
//!   certificates primed in the same pass (by the TLS filter or mod_ssl) are kept in memory
//!   and inherited by the children.
//! - the watchdog task (one child, its own thread): fetches a response for every primed
//!   certificate at start and again inside the renew window before it expires, and writes
//!   it to `ocsp/<md|other>/ocsp-<id>.json`.
//! - every child, during the handshake: the current response from that file, read again
//!   only when its modification time changed (looked at no more than once a second).

use super::{md_conf, md_for, runtime};
use crate::httpd::optional::{WatchdogState, watchdog_singleton};
use crate::httpd::{Conn, Pool, Server, Status, state, status};
use bastion_md::ocsp::{self, Policy, Stored, Target, Verified};
use bastion_md::store::{Group, parse_http_date};
use bastion_md::{Store, store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// The settings and the store, set in post_config when stapling is on anywhere.
struct Settings {
    store: Store,
    policy: Policy,
    /// `MDStapling` outside `<MDomain>`.
    global: bool,
    /// `MDStapleOthers`.
    others: bool,
}

/// One primed certificate.
struct Entry {
    target: Target,
    /// `ocsp/<group>/`: the MD's name or `other`.
    group: String,
    cache: Mutex<Cache>,
}

/// A child's copy of the response file.
#[derive(Default)]
struct Cache {
    checked: Option<Instant>,
    mtime: Option<SystemTime>,
    der: Option<Vec<u8>>,
    until: Option<SystemTime>,
}

static SETTINGS: RwLock<Option<Arc<Settings>>> = RwLock::new(None);
/// Primed certificates by the id the TLS module gave.
static PRIMED: RwLock<Option<HashMap<Vec<u8>, Arc<Entry>>>> = RwLock::new(None);

fn settings() -> Option<Arc<Settings>> {
    SETTINGS.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// How often a child looks at a response file's modification time.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How long the watchdog waits for a responder.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// post_config (both passes, parent; after the managed domains' post_config, before the
/// TLS modules prime their certificates).
pub fn post_config(p: &Pool, _ptemp: &Pool, main: Server<'static>) -> Status {
    *PRIMED.write().unwrap_or_else(|p| p.into_inner()) = Some(HashMap::new());
    let c = md_conf(&main);
    let global = c.stapling.unwrap_or(false);
    let any_md = runtime().is_some_and(|rt| rt.mds.iter().any(|m| m.stapling));
    if !global && !any_md {
        *SETTINGS.write().unwrap_or_else(|p| p.into_inner()) = None;
        return status::OK;
    }
    let dir = c
        .store_dir
        .clone()
        .unwrap_or_else(|| p.server_root_relative("md"));
    let store = match Store::open(&dir) {
        Ok(s) => s,
        Err(e) => return super::fail(&format!("MDStoreDir {}: {e}", dir.display())),
    };
    let (uid, gid) = state::worker_ids();
    let odir = store.group_dir(Group::Ocsp);
    if let Err(e) = super::chown_tree(&odir, uid, gid) {
        return super::fail(&format!("{}: giving it to the User: {e}", odir.display()));
    }
    let policy = Policy {
        renew_window: c
            .stapling_renew_window
            .unwrap_or(ocsp::DEFAULT_RENEW_WINDOW),
        keep: c.stapling_keep.unwrap_or(ocsp::DEFAULT_KEEP),
    };
    *SETTINGS.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Settings {
        store,
        policy,
        global,
        others: c.staple_others.unwrap_or(true),
    }));
    if !state::is_first_config_pass()
        && let Err(e) = watchdog_singleton(c"bastion-ocsp", Duration::from_secs(1), p, watchdog)
    {
        return super::fail(&e);
    }
    status::OK
}

/// ssl_ocsp_prime: takes on a certificate of a managed domain with `MDStapling on`, or any
/// other one when `MDStapling on` is global and `MDStapleOthers` is on (its default), if the
/// certificate names a responder and its issuer is in the chain.
pub fn prime(s: Server, _p: &Pool, id: &[u8], pem: &str) -> bool {
    let Some(st) = settings() else { return false };
    let host = s.hostname().unwrap_or("").to_string();
    let group = match runtime().as_ref().and_then(|rt| md_for(rt, &s).cloned()) {
        Some(md) if md.stapling => md.name,
        Some(_) => return false,
        None if st.global && st.others => ocsp::OTHERS.to_string(),
        None => return false,
    };
    let target = match Target::from_pem(pem) {
        Ok(t) => t,
        Err(e) => {
            tracing::info!("OCSP stapling: not for a certificate of {host}: {e}");
            return false;
        }
    };
    tracing::debug!(
        "OCSP stapling: certificate {} of {host} ({}), responder {}",
        target.subject,
        target.id,
        target.url
    );
    let entry = Arc::new(Entry {
        target,
        group,
        cache: Mutex::new(Cache::default()),
    });
    PRIMED
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(id.to_vec(), entry);
    true
}

/// ssl_ocsp_get_resp: the current response for a certificate this module primed (others
/// are declined, so other providers answer for theirs).
pub fn get_resp(_s: Server, _c: Conn, id: &[u8]) -> Option<Vec<u8>> {
    let entry = PRIMED
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()?
        .get(id)?
        .clone();
    let st = settings()?;
    let mut c = entry.cache.lock().unwrap_or_else(|p| p.into_inner());
    if c.checked.is_none_or(|t| t.elapsed() >= LOOK_EVERY) {
        c.checked = Some(Instant::now());
        let file = ocsp::file_name(&entry.target.id);
        let mtime = st
            .store
            .path(Group::Ocsp, &entry.group, &file)
            .ok()
            .and_then(|p| p.metadata().ok())
            .and_then(|m| m.modified().ok());
        if mtime != c.mtime {
            c.mtime = mtime;
            let stored = ocsp::load(&st.store, &entry.group, &entry.target.id)
                .ok()
                .flatten();
            c.until = stored
                .as_ref()
                .and_then(|s| s.valid.as_ref())
                .and_then(|v| parse_http_date(&v.until));
            c.der = stored.and_then(|s| s.current(SystemTime::now()));
        }
    }
    match c.until {
        Some(u) if u > SystemTime::now() => c.der.clone(),
        _ => None,
    }
}

/// The watchdog child's state.
struct Fetcher {
    tokio: tokio::runtime::Runtime,
    client: ocsp::Client,
    due: HashMap<(String, String), SystemTime>,
    /// When `MDMessageCmd <reason> <md>` last ran.
    notified: HashMap<(&'static str, String), SystemTime>,
}

/// `MDMessageCmd ocsp-renewed|ocsp-errored <md>` for managed domains, at most once a day
/// (renewed) or an hour (errored) per domain, as mod_md limits them (here in memory, per
/// watchdog child).
fn notify(f: &mut Fetcher, reason: &'static str, group: &str, now: SystemTime) {
    if group == ocsp::OTHERS {
        return;
    }
    let Some(cmd) = runtime().and_then(|rt| rt.message_cmd.clone()) else {
        return;
    };
    let every = if reason == "ocsp-renewed" {
        Duration::from_secs(86400)
    } else {
        Duration::from_secs(3600)
    };
    let key = (reason, group.to_string());
    if f.notified.get(&key).is_some_and(|t| *t + every > now) {
        return;
    }
    f.notified.insert(key, now);
    super::run_cmd(&Some(cmd), &[reason, group]);
}

static FETCHER: Mutex<Option<Fetcher>> = Mutex::new(None);

fn held_refresh(policy: &Policy, s: &Stored, now: SystemTime) -> Option<SystemTime> {
    s.current(now)?;
    let v = s.valid.as_ref()?;
    Some(policy.refresh_at(&Verified {
        status: s.status?,
        this_update: parse_http_date(&v.from)?,
        next_update: parse_http_date(&v.until)?,
    }))
}

/// The watchdog task: fetches responses that are missing or inside their renew window.
fn watchdog(ws: WatchdogState, _p: &Pool) {
    if ws == WatchdogState::Stopping {
        *FETCHER.lock().unwrap_or_else(|p| p.into_inner()) = None;
        return;
    }
    if ws != WatchdogState::Running {
        return;
    }
    let Some(st) = settings() else { return };
    let entries: Vec<Arc<Entry>> = {
        let primed = PRIMED.read().unwrap_or_else(|p| p.into_inner());
        let mut seen = std::collections::HashSet::new();
        primed
            .iter()
            .flat_map(|m| m.values())
            .filter(|e| seen.insert((e.group.clone(), e.target.id.clone())))
            .cloned()
            .collect()
    };
    if entries.is_empty() {
        return;
    }
    let now = SystemTime::now();
    let mut guard = FETCHER.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let Some(tokio) = super::watchdog_runtime("OCSP stapling: the fetch runtime") else {
            return;
        };
        let removed = ocsp::cleanup(&st.store, st.policy.keep, now);
        if removed > 0 {
            tracing::info!(
                "OCSP stapling: removed {removed} response(s) unused for longer than MDStaplingKeepResponse"
            );
        }
        let mut due = HashMap::new();
        for e in &entries {
            let held = ocsp::load(&st.store, &e.group, &e.target.id)
                .ok()
                .flatten()
                .and_then(|s| held_refresh(&st.policy, &s, now));
            due.insert((e.group.clone(), e.target.id.clone()), held.unwrap_or(now));
        }
        let client = {
            let _enter = tokio.enter();
            ocsp::client()
        };
        *guard = Some(Fetcher {
            tokio,
            client,
            due,
            notified: HashMap::new(),
        });
    }
    let f = guard.as_mut().expect("fetcher state");
    for e in &entries {
        let key = (e.group.clone(), e.target.id.clone());
        if f.due.get(&key).is_some_and(|t| *t > now) {
            continue;
        }
        let (next, ok) = refresh(f, &st, e, now);
        f.due.insert(key, next);
        notify(
            f,
            if ok { "ocsp-renewed" } else { "ocsp-errored" },
            &e.group,
            now,
        );
    }
}

/// Fetches, checks and stores one response; returns when to fetch again and whether a new
/// response was stored.
fn refresh(f: &Fetcher, st: &Settings, e: &Entry, now: SystemTime) -> (SystemTime, bool) {
    let t = &e.target;
    let mut stored = ocsp::load(&st.store, &e.group, &t.id)
        .ok()
        .flatten()
        .unwrap_or_default();
    stored.id = t.id.clone();
    stored.url = t.url.clone();
    let r = f
        .tokio
        .block_on(ocsp::fetch(&f.client, t, FETCH_TIMEOUT))
        .and_then(|der| t.verify(&der, now).map(|v| (der, v)));
    let next = match r {
        Ok((der, v)) => {
            let before = stored.status;
            stored.set_response(&der, &v, now);
            let next = st.policy.refresh_at(&v).max(now + Duration::from_secs(1));
            if v.status == ocsp::CertState::Revoked && before != Some(v.status) {
                tracing::warn!(
                    "OCSP stapling: the certificate {} ({}) is REVOKED, says {}",
                    t.subject,
                    e.group,
                    t.url
                );
            }
            tracing::info!(
                "OCSP stapling: response for {} ({}) from {}: {}, valid until {}; next update {}",
                t.subject,
                e.group,
                t.url,
                v.status.as_str(),
                store::http_date(v.next_update),
                store::http_date(next)
            );
            (next, true)
        }
        Err(err) => {
            stored.errors += 1;
            stored.error = Some(err.to_string());
            let held = held_refresh(&st.policy, &stored, now);
            let next = st.policy.retry_at(now, stored.errors, held);
            tracing::warn!(
                "OCSP stapling: no response for {} ({}): {err}; {} so far, next try {}",
                t.subject,
                e.group,
                match stored.errors {
                    1 => "1 failure".to_string(),
                    n => format!("{n} failures"),
                },
                store::http_date(next)
            );
            (next, false)
        }
    };
    if let Err(err) = ocsp::save(&st.store, &e.group, &stored) {
        tracing::error!(
            "OCSP stapling: storing the response for {}: {err}",
            t.subject
        );
    }
    next
}
