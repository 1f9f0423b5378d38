//! The ACME driver over instant-acme: account, order, challenges, finalization,
//! download, staging — resumable from the store after a crash or a recycled child.
//!
//! The glue calls [`Driver::drive`] for each MD from its watchdog task, inside a
//! current-thread tokio runtime, and schedules the next call from the returned
//! [`Outcome`] (or, on error, from [`Driver::next_run`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeStatus, ExternalAccountKey, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::cert::{CertError, CertInfo, leaf_info};
use crate::challenge::{self, ChallengeError};
use crate::model::{self, ChallengeType, ConfigError, KeySpec, ManagedDomain, RenewMode};
use crate::renewal::{self, AriSchedule, Validity};
use crate::store::{self, Group, Job, Store, StoreError, http_date, parse_http_date};

/// Errors during a drive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work; the message says what to change.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA or the connection to it failed.
    #[error("{activity}: {detail}")]
    Acme {
        /// What the driver was doing.
        activity: &'static str,
        /// The ACME problem type, if the CA sent one.
        problem: Option<String>,
        /// The details.
        detail: String,
    },
    /// A challenge could not be set up.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// None of the challenge types we may use is offered for a name.
    #[error(
        "{domain}: the CA offers {offered:?}, none of the allowed {allowed:?}; check MDCAChallenges"
    )]
    NoChallenge {
        /// The DNS name.
        domain: String,
        /// Types the CA offered.
        offered: Vec<String>,
        /// Types we could answer.
        allowed: Vec<&'static str>,
    },
    /// A key or CSR could not be made.
    #[error("key/CSR: {0}")]
    Key(#[from] rcgen::Error),
    /// A certificate could not be read.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The issued certificate does not cover the MD's names.
    #[error("the certificate from the CA does not cover {0:?}")]
    Names(Vec<String>),
}

impl Error {
    /// The ACME problem type, for backoff decisions.
    pub fn problem(&self) -> Option<&str> {
        match self {
            Self::Acme { problem, .. } => problem.as_deref(),
            _ => None,
        }
    }

    fn acme(activity: &'static str) -> impl FnOnce(instant_acme::Error) -> Error {
        move |e| match e {
            instant_acme::Error::Api(p) => Error::Acme {
                activity,
                problem: p.r#type.clone(),
                detail: p.to_string(),
            },
            other => Error::Acme {
                activity,
                problem: None,
                detail: other.to_string(),
            },
        }
    }
}

/// Settings of the driver (global directives, what the glue found out).
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// `MDCACertificateFile`: a PEM file with the root to trust for the CA (the first
    /// certificate in it); `None`: the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// `MDRetryDelay`.
    pub retry_delay: Duration,
    /// `MDCheckInterval`.
    pub check_interval: Duration,
    /// `MDRetryFailover`: errors before the next CA URL is tried.
    pub retry_failover: u32,
    /// How long one call waits for validation and issuance (mod_md: 5 minutes). Zero:
    /// return [`Outcome::Pending`] right after the challenges are set ready.
    pub validation_timeout: Duration,
    /// Challenge types usable when MDCAChallenges is not set, in preference order
    /// (the glue knows which ports are reachable and whether `acme-tls/1` is on).
    pub auto_challenges: Vec<ChallengeType>,
    /// `MDChallengeDns01Version 2`: pass the TXT value to teardown too.
    pub dns01_version2: bool,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            retry_delay: renewal::DEFAULT_RETRY_DELAY,
            check_interval: renewal::DEFAULT_CHECK_INTERVAL,
            retry_failover: 13,
            validation_timeout: Duration::from_secs(300),
            auto_challenges: vec![ChallengeType::TlsAlpn01, ChallengeType::Http01],
            dns01_version2: false,
        }
    }
}

/// What a call to [`Driver::drive`] did and when to call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `MDRenewMode manual`: nothing to do.
    Manual {
        /// When to look again.
        next_run: SystemTime,
    },
    /// The current certificates are good.
    NotDue {
        /// When to look again.
        next_run: SystemTime,
        /// Inside the warn window (raise `expiring`).
        warn: bool,
    },
    /// New certificates were staged by this call (raise `renewed`; activate at the
    /// next restart with [`Store::promote_staging`]).
    Renewed {
        /// When to look again.
        next_run: SystemTime,
    },
    /// New certificates were staged earlier and wait for activation.
    Staged {
        /// When to look again.
        next_run: SystemTime,
    },
    /// An order is in progress at the CA; call again at `next_run`.
    Pending {
        /// When to look again.
        next_run: SystemTime,
    },
    /// Earlier errors: backing off until `next_run`.
    Backoff {
        /// When to try again.
        next_run: SystemTime,
    },
}

impl Outcome {
    /// When the glue should call [`Driver::drive`] for this MD again.
    pub fn next_run(&self) -> SystemTime {
        match *self {
            Self::Manual { next_run }
            | Self::NotDue { next_run, .. }
            | Self::Renewed { next_run }
            | Self::Staged { next_run }
            | Self::Pending { next_run }
            | Self::Backoff { next_run } => next_run,
        }
    }
}

/// `accounts/<name>/account.json`, mod_md's fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountJson {
    /// `valid` or `deactivated`.
    pub status: String,
    /// The account URL at the CA (its id).
    pub url: String,
    /// The CA's directory URL.
    #[serde(rename = "ca-url")]
    pub ca_url: String,
    /// Contacts registered.
    #[serde(default)]
    pub contact: Vec<String>,
    /// Agreement given.
    #[serde(default)]
    pub agreement: Option<String>,
    /// The EAB key id the account was bound with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab: Option<AccountEab>,
}

/// The EAB part of `account.json` (the kid only; the hmac stays in the config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountEab {
    /// The key id.
    pub kid: String,
}

/// One key spec's order in `staging/<md>/order.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpecOrder {
    /// The key spec.
    pub spec: KeySpec,
    /// The order URL once created.
    #[serde(default)]
    pub url: Option<String>,
    /// Challenges set up for it (`<type>:<domain>`), torn down afterwards.
    #[serde(default)]
    pub challenges: Vec<String>,
}

/// `staging/<md>/order.json`: what an interrupted drive resumes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderRecord {
    /// The account used (name in `accounts/`).
    pub account: String,
    /// The CA directory URL.
    #[serde(rename = "ca-url")]
    pub ca_url: String,
    /// The names ordered.
    pub domains: Vec<String>,
    /// Per key spec.
    pub orders: Vec<SpecOrder>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AriJson {
    start: String,
    end: String,
    chosen: String,
    #[serde(rename = "next-fetch")]
    next_fetch: String,
}

enum Step {
    Done,
    Pending,
}

/// Drives ACME orders for managed domains, with all state in a [`Store`].
pub struct Driver {
    store: Store,
    config: DriverConfig,
    accounts: HashMap<String, Account>,
    /// Per MD, drives in a row that ended in `badNonce` (after instant-acme's own retries).
    bad_nonces: HashMap<String, u32>,
}

/// How many drives in a row may end in `badNonce` before it counts as an error: the CA
/// rejecting nonces now and then (which instant-acme retries only twice) is no reason to
/// give up the order and back off.
const MAX_BAD_NONCE_RESUMES: u32 = 10;

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish()
    }
}

fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut s = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// mod_md's account directory name: `ACME-<last ≤16 chars of the CA host>-NNNN`.
pub fn account_dir_prefix(ca_url: &str) -> String {
    let host = ca_url
        .split("://")
        .nth(1)
        .unwrap_or(ca_url)
        .split(['/', ':'])
        .next()
        .unwrap_or("ca");
    let tail: String = host
        .chars()
        .rev()
        .take(16)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("ACME-{tail}")
}

/// Generates a private key for a spec.
pub fn generate_key(spec: &KeySpec) -> Result<KeyPair, rcgen::Error> {
    match spec {
        KeySpec::Rsa(bits) => {
            let size = match bits {
                3072 => rcgen::RsaKeySize::_3072,
                4096 => rcgen::RsaKeySize::_4096,
                _ => rcgen::RsaKeySize::_2048,
            };
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        }
        KeySpec::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeySpec::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
    }
}

/// A DER CSR for `md`'s names signed by `key` (with TLS Feature status_request
/// when must-staple is on).
pub fn make_csr(md: &ManagedDomain, key: &KeyPair) -> Result<Vec<u8>, rcgen::Error> {
    let mut params = CertificateParams::new(md.domains.clone())?;
    params.distinguished_name = DistinguishedName::new();
    if md.must_staple {
        // id-pe-tlsfeature: SEQUENCE { INTEGER 5 (status_request) }
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 24],
                vec![0x30, 0x03, 0x02, 0x01, 0x05],
            ));
    }
    Ok(params.serialize_request(key)?.der().to_vec())
}

impl Driver {
    /// A driver over `store`. Cheap: accounts are loaded from the store on demand.
    pub fn new(store: Store, config: DriverConfig) -> Self {
        Self {
            store,
            config,
            accounts: HashMap::new(),
            bad_nonces: HashMap::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The job record of an MD (`staging/<md>/job.json`), default if none.
    pub fn job(&self, name: &str) -> Result<Job, Error> {
        Ok(self
            .store
            .read_json::<Job>(Group::Staging, name, "job.json")?
            .unwrap_or_else(|| Job {
                name: name.to_string(),
                ..Job::default()
            }))
    }

    /// When the MD's job wants to run next (after an error: the backoff time).
    pub fn next_run(&self, name: &str) -> Option<SystemTime> {
        self.job(name).ok().and_then(|j| j.next_run_time())
    }

    fn save_job(&self, job: &Job) -> Result<(), Error> {
        Ok(self
            .store
            .write_json(Group::Staging, &job.name, "job.json", job)?)
    }

    /// The current certificates of `md` in `domains/`: the validity of the one that
    /// expires first, or `None` if any spec lacks a certificate covering all names.
    pub fn current_cert(&self, md: &ManagedDomain) -> Option<(Validity, CertInfo)> {
        self.cert_in(Group::Domains, md)
    }

    /// As [`Driver::current_cert`], for the certificates in `group`.
    fn cert_in(&self, group: Group, md: &ManagedDomain) -> Option<(Validity, CertInfo)> {
        let mut best: Option<(Validity, CertInfo)> = None;
        for spec in &md.pkeys {
            let pem = self
                .store
                .read(group, &md.name, &store::pubcert_file(spec))
                .ok()??;
            let info = leaf_info(std::str::from_utf8(&pem).ok()?).ok()?;
            if !info.covers(&md.domains) {
                return None;
            }
            if best
                .as_ref()
                .is_none_or(|(v, _)| info.validity.not_after < v.not_after)
            {
                best = Some((info.validity, info));
            }
        }
        best
    }

    fn load_ari(&self, name: &str) -> Option<AriSchedule> {
        let j: AriJson = self
            .store
            .read_json(Group::Staging, name, "ari.json")
            .ok()??;
        Some(AriSchedule {
            start: parse_http_date(&j.start)?,
            end: parse_http_date(&j.end)?,
            chosen: parse_http_date(&j.chosen)?,
            next_fetch: parse_http_date(&j.next_fetch)?,
        })
    }

    /// Drives `md` one step toward a fresh staged certificate per key spec: decides
    /// whether renewal is due (renew window, ARI), creates or resumes the order in
    /// `staging/<md>/order.json`, answers challenges, finalizes, downloads and stages.
    /// Errors are recorded in `staging/<md>/job.json` with mod_md's backoff, whose
    /// time [`Driver::next_run`] returns.
    pub async fn drive(&mut self, md: &ManagedDomain) -> Result<Outcome, Error> {
        let now = SystemTime::now();
        let periodic = now + renewal::jittered(self.config.check_interval, renewal::random_unit());
        if md.renew_mode == RenewMode::Manual {
            return Ok(Outcome::Manual { next_run: periodic });
        }
        let mut job = self.job(&md.name)?;
        if job.errors > 0
            && let Some(t) = job.next_run_time()
            && t > now
        {
            return Ok(Outcome::Backoff { next_run: t });
        }
        let staged_md = self.store.load_md(Group::Staging, &md.name)?;
        // Staged certificates wait for the next restart to move to domains/, but the glue
        // serves them right away: they are the current ones, and they too must be renewed
        // when their window comes, even if the server is never restarted.
        // A complete staged set (also while a newer order runs next to it) is what is served.
        let staged_set = staged_md
            .as_ref()
            .is_some_and(|s| s.domains == md.domains && s.pkeys == md.pkeys)
            && self.store.staging_complete(md).is_ok();
        let staged = job.finished && staged_set;
        let in_progress = !staged
            && self
                .store
                .read_json::<OrderRecord>(Group::Staging, &md.name, "order.json")?
                .is_some();
        let current = if staged_set {
            self.cert_in(Group::Staging, md)
        } else {
            self.current_cert(md)
        };
        if !in_progress {
            let mut ari = self.load_ari(&md.name);
            if let Some((_, info)) = &current
                && renewal::ari_fetch_due(now, md, ari.as_ref())
                && let Some(id) = &info.ari_id
            {
                match self.fetch_ari(md, id).await {
                    Ok(Some(a)) => ari = Some(a),
                    Ok(None) => {}
                    Err(e) => debug!(md = %md.name, "ARI not available: {e}"),
                }
            }
            let d = renewal::decide(
                now,
                md,
                current.as_ref().map(|(v, _)| *v),
                ari.as_ref(),
                self.config.check_interval,
            );
            if !d.renew {
                let next_run = d.next_check.min(periodic);
                if staged {
                    return Ok(Outcome::Staged { next_run });
                }
                return Ok(Outcome::NotDue {
                    next_run,
                    warn: d.warn,
                });
            }
            info!(md = %md.name, reason = ?d.reason, "renewal due");
        }
        job.name = md.name.clone();
        job.last_run = Some(http_date(now));
        let replaces = current.and_then(|(_, i)| i.ari_id);
        let result = self.run_order(md, &mut job, replaces.as_deref()).await;
        let nonces = self.bad_nonces.entry(md.name.clone()).or_default();
        match &result {
            Err(e) if e.problem() == Some(BAD_NONCE) && *nonces < MAX_BAD_NONCE_RESUMES => {
                *nonces += 1;
                info!(md = %md.name, "the CA rejected a nonce again: resuming the order shortly ({e})");
                let next = now + Duration::from_secs(1);
                job.next_run = Some(http_date(next));
                self.save_job(&job)?;
                return Ok(Outcome::Pending { next_run: next });
            }
            _ => *nonces = 0,
        }
        match result {
            Ok(Step::Done) => {
                job.finished = true;
                job.errors = 0;
                job.last = store::JobLast::default();
                // Look again when the new certificates' renew window opens, if that comes
                // before the periodic check (short-lived certificates).
                let next = self
                    .cert_in(Group::Staging, md)
                    .map(|(v, _)| v.window_start(&md.renew_window))
                    .map_or(periodic, |t| t.max(now).min(periodic));
                job.next_run = Some(http_date(next));
                job.log(
                    now,
                    "renewed",
                    "certificates staged, activated on next (graceful) server restart",
                );
                self.save_job(&job)?;
                info!(md = %md.name, "certificates staged, activated on next (graceful) server restart");
                Ok(Outcome::Renewed { next_run: next })
            }
            Ok(Step::Pending) => {
                let next = now
                    + Duration::from_secs(1)
                        .max(self.config.retry_delay.min(Duration::from_secs(30)));
                job.next_run = Some(http_date(next));
                self.save_job(&job)?;
                Ok(Outcome::Pending { next_run: next })
            }
            Err(e) => {
                job.errors += 1;
                // A configuration error needs the admin, like mod_md's input problems.
                let delay = if matches!(e, Error::Config(_)) {
                    renewal::MAX_ERROR_DELAY
                } else {
                    renewal::error_delay(
                        job.errors,
                        self.config.retry_delay,
                        e.problem(),
                        renewal::random_unit(),
                    )
                };
                job.next_run = Some(http_date(now + delay));
                job.last = store::JobLast {
                    status: 1,
                    problem: e.problem().map(str::to_string),
                    detail: Some(e.to_string()),
                    activity: None,
                };
                job.log(now, "error", e.to_string());
                // Callers report the failure (the server's watchdog at warn, a2md on its
                // output); this is the engine's own account.
                debug!(md = %md.name, errors = job.errors, "renewal failed: {e}");
                // A failed order is not resumed: the next attempt starts fresh.
                self.discard_order(md)?;
                self.save_job(&job)?;
                Err(e)
            }
        }
    }

    /// Removes what an order in progress keeps in staging (order.json, `next-*` files),
    /// leaving a complete staged set, job.json and md.json.
    fn clear_order_files(&self, md: &ManagedDomain) -> Result<(), Error> {
        self.store.remove(Group::Staging, &md.name, "order.json")?;
        for spec in &md.pkeys {
            for f in [store::privkey_file(spec), store::pubcert_file(spec)] {
                self.store
                    .remove(Group::Staging, &md.name, &store::next_file(&f))?;
            }
        }
        Ok(())
    }

    fn discard_order(&self, md: &ManagedDomain) -> Result<(), Error> {
        if let Some(rec) =
            self.store
                .read_json::<OrderRecord>(Group::Staging, &md.name, "order.json")?
        {
            for o in &rec.orders {
                self.teardown(md, &o.challenges);
            }
        }
        self.store.remove(Group::Staging, &md.name, "order.json")?;
        Ok(())
    }

    fn teardown(&self, md: &ManagedDomain, challenges: &[String]) {
        for c in challenges {
            let Some((kind, domain)) = c.split_once(':') else {
                continue;
            };
            if kind == ChallengeType::Dns01.as_str() {
                // `dns-01:<domain>:<txt>` with MDChallengeDns01Version 2.
                let (domain, txt) = match domain.split_once(':') {
                    Some((d, t)) => (d, Some(t)),
                    None => (domain, None),
                };
                if let Some(cmd) = &md.dns01_cmd
                    && let Err(e) = challenge::run_dns01(cmd, "teardown", domain, txt)
                {
                    warn!("{e}");
                }
            } else if let Err(e) = challenge::teardown_files(&self.store, domain) {
                warn!("{e}");
            }
        }
    }

    async fn fetch_ari(
        &mut self,
        md: &ManagedDomain,
        id: &str,
    ) -> Result<Option<AriSchedule>, Error> {
        let Some(ca) = md.ca.urls.first() else {
            return Ok(None);
        };
        // Only with an existing account: ARI is no reason to register one.
        let Some((_, account)) = self.find_account(md, ca).await? else {
            return Ok(None);
        };
        let cid = parse_cert_id(id);
        let (info, retry) = account
            .renewal_info(&cid)
            .await
            .map_err(Error::acme("fetching renewal info"))?;
        let now = SystemTime::now();
        let a = AriSchedule::new(
            now,
            SystemTime::from(info.suggested_window.start),
            SystemTime::from(info.suggested_window.end),
            Some(retry),
            renewal::random_unit(),
        );
        if let Some(u) = &info.explanation_url {
            info!(md = %md.name, "ARI explanation: {u}");
        }
        self.store.write_json(
            Group::Staging,
            &md.name,
            "ari.json",
            &AriJson {
                start: http_date(a.start),
                end: http_date(a.end),
                chosen: http_date(a.chosen),
                next_fetch: http_date(a.next_fetch),
            },
        )?;
        Ok(Some(a))
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, Error> {
        match &self.config.ca_file {
            Some(p) => Account::builder_with_root(p),
            None => Account::builder(),
        }
        .map_err(Error::acme("setting up the HTTP client"))
    }

    /// Finds a stored account for `ca_url` matching the MD's EAB kid.
    async fn find_account(
        &mut self,
        md: &ManagedDomain,
        ca_url: &str,
    ) -> Result<Option<(String, Account)>, Error> {
        let want_kid = md.eab.as_ref().map(|e| e.kid.clone());
        for name in self.store.list(Group::Accounts)? {
            let Some(j) =
                self.store
                    .read_json::<AccountJson>(Group::Accounts, &name, "account.json")?
            else {
                continue;
            };
            if j.status != "valid"
                || j.ca_url != ca_url
                || j.eab.as_ref().map(|e| &e.kid) != want_kid.as_ref()
            {
                continue;
            }
            if let Some(a) = self.accounts.get(&name) {
                return Ok(Some((name, a.clone())));
            }
            let Some(pem) = self.store.load_key(Group::Accounts, &name, "account.pem")? else {
                continue;
            };
            let Ok(der) = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()) else {
                warn!(account = %name, "unreadable account key, skipped");
                continue;
            };
            let account = self
                .builder()?
                .from_parts(j.url.clone(), der, ca_url.to_string())
                .await
                .map_err(Error::acme("loading the account"))?;
            self.accounts.insert(name.clone(), account.clone());
            return Ok(Some((name, account)));
        }
        Ok(None)
    }

    /// An account for `ca_url`: a stored one, or a newly registered one (stored in
    /// `accounts/ACME-<host>-NNNN/`).
    async fn account(
        &mut self,
        md: &ManagedDomain,
        ca_url: &str,
    ) -> Result<(String, Account), Error> {
        if let Some(found) = self.find_account(md, ca_url).await? {
            return Ok(found);
        }
        model::check_account_info(md)?;
        self.create_account(md, ca_url).await
    }

    /// Registers a new account at `ca_url` for `md`'s contacts, agreement and EAB and
    /// stores it in `accounts/ACME-<host>-NNNN/`.
    async fn create_account(
        &mut self,
        md: &ManagedDomain,
        ca_url: &str,
    ) -> Result<(String, Account), Error> {
        let contacts: Vec<&str> = md.contacts.iter().map(String::as_str).collect();
        let eab = match &md.eab {
            Some(e) => Some(ExternalAccountKey::new(
                e.kid.clone(),
                &Zeroizing::new(e.hmac_bytes().ok_or_else(|| {
                    ConfigError(format!(
                        "MDomain {}: MDExternalAccountBinding hmac is not base64url",
                        md.name
                    ))
                })?),
            )),
            None => None,
        };
        let (account, creds) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                ca_url.to_string(),
                eab.as_ref(),
            )
            .await
            .map_err(Error::acme("registering an account"))?;
        let prefix = account_dir_prefix(ca_url);
        let existing = self.store.list(Group::Accounts)?;
        let name = (0..)
            .map(|n| format!("{prefix}-{n:04}"))
            .find(|n| !existing.contains(n))
            .unwrap_or(prefix);
        let pem = pem_encode("PRIVATE KEY", creds.private_key().secret_pkcs8_der());
        self.store
            .save_key(Group::Accounts, &name, "account.pem", &pem)?;
        self.store.write_json(
            Group::Accounts,
            &name,
            "account.json",
            &AccountJson {
                status: "valid".into(),
                url: account.id().to_string(),
                ca_url: ca_url.to_string(),
                contact: md.contacts.clone(),
                agreement: md.ca.agreement.clone(),
                eab: md.eab.as_ref().map(|e| AccountEab { kid: e.kid.clone() }),
            },
        )?;
        info!(md = %md.name, account = %name, "registered ACME account");
        self.accounts.insert(name.clone(), account.clone());
        Ok((name, account))
    }

    fn ca_for(&self, md: &ManagedDomain, job: &Job) -> String {
        let n = md.ca.urls.len().max(1);
        let idx = (job.errors / self.config.retry_failover.max(1)) as usize % n;
        md.ca.urls.get(idx).cloned().unwrap_or_default()
    }

    async fn run_order(
        &mut self,
        md: &ManagedDomain,
        job: &mut Job,
        replaces: Option<&str>,
    ) -> Result<Step, Error> {
        model::check_domain(md)?;
        let mut rec = self
            .store
            .read_json::<OrderRecord>(Group::Staging, &md.name, "order.json")?
            .filter(|r| r.domains == md.domains && md.ca.urls.contains(&r.ca_url));
        if rec.is_none() || job.finished {
            // A fresh start: drop whatever an earlier, different order left behind, but keep
            // a complete staged set for these names: it is being served (children activate
            // staged sets without a restart) and is what the next restart promotes, until
            // this order has its whole set.
            let keep = self
                .store
                .load_md(Group::Staging, &md.name)?
                .is_some_and(|s| s.domains == md.domains && s.pkeys == md.pkeys)
                && self.store.staging_complete(md).is_ok();
            if keep {
                self.clear_order_files(md)?;
            } else {
                self.store.purge(Group::Staging, &md.name)?;
            }
            job.finished = false;
        }
        self.store.save_md(Group::Staging, md)?;
        let ca_url = rec
            .as_ref()
            .map_or_else(|| self.ca_for(md, job), |r| r.ca_url.clone());
        let (acct_name, account) = self.account(md, &ca_url).await?;
        let rec = match rec.take() {
            Some(r) if r.account == acct_name => r,
            _ => OrderRecord {
                account: acct_name,
                ca_url: ca_url.clone(),
                domains: md.domains.clone(),
                orders: md
                    .pkeys
                    .iter()
                    .map(|s| SpecOrder {
                        spec: *s,
                        url: None,
                        challenges: Vec::new(),
                    })
                    .collect(),
            },
        };
        let mut rec = rec;
        self.store
            .write_json(Group::Staging, &md.name, "order.json", &rec)?;
        job.log(
            SystemTime::now(),
            "progress",
            format!("ordering from {ca_url}"),
        );

        for i in 0..rec.orders.len() {
            let spec = rec.orders[i].spec;
            let cert_file = store::next_file(&store::pubcert_file(&spec));
            if let Some(pem) = self.store.read(Group::Staging, &md.name, &cert_file)?
                && leaf_info(&String::from_utf8_lossy(&pem)).is_ok_and(|c| c.covers(&md.domains))
            {
                continue;
            }
            match self.run_spec(md, &account, &mut rec, i, replaces).await? {
                Step::Pending => return Ok(Step::Pending),
                Step::Done => {}
            }
        }
        // The whole new set replaces the staged one: key before certificate per key type,
        // the first key type last (children look at its certificate's time to notice a new
        // set). A kill in between leaves order.json, and the resumed order re-issues what
        // is missing; a mismatched pair is never served (keys are checked when loaded).
        for spec in md.pkeys.iter().rev() {
            for f in [store::privkey_file(spec), store::pubcert_file(spec)] {
                self.store
                    .rename(Group::Staging, &md.name, &store::next_file(&f), &f)?;
            }
        }
        for o in &rec.orders {
            self.teardown(md, &o.challenges);
        }
        self.store.remove(Group::Staging, &md.name, "order.json")?;
        if let Some(pem) =
            self.store
                .read(Group::Staging, &md.name, &store::pubcert_file(&md.pkeys[0]))?
            && let Ok(info) = leaf_info(&String::from_utf8_lossy(&pem))
        {
            job.valid_from = Some(http_date(info.validity.not_before));
        }
        Ok(Step::Done)
    }

    async fn new_order(
        &self,
        md: &ManagedDomain,
        account: &Account,
        replaces: Option<&str>,
    ) -> Result<instant_acme::Order, Error> {
        let ids: Vec<Identifier> = md
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let profile = match &md.profile {
            Some(p) if account.profiles().any(|m| m.name == p) => Some(p.as_str()),
            Some(p) if md.profile_mandatory => {
                return Err(ConfigError(format!(
                    "MDomain {}: the CA does not offer profile \"{p}\"; change MDProfile or set \
                     MDProfileMandatory off",
                    md.name
                ))
                .into());
            }
            Some(p) => {
                info!(md = %md.name, "CA does not offer profile \"{p}\", ordering without");
                None
            }
            None => None,
        };
        let mut new = NewOrder::new(&ids);
        if let Some(p) = profile {
            new = new.profile(p);
        }
        if let Some(r) = replaces {
            match account.new_order(&new.replaces(parse_cert_id(r))).await {
                Err(instant_acme::Error::Unsupported(_)) => {}
                other => return other.map_err(Error::acme("creating the order")),
            }
            new = NewOrder::new(&ids);
            if let Some(p) = profile {
                new = new.profile(p);
            }
        }
        account
            .new_order(&new)
            .await
            .map_err(Error::acme("creating the order"))
    }

    async fn run_spec(
        &mut self,
        md: &ManagedDomain,
        account: &Account,
        rec: &mut OrderRecord,
        i: usize,
        replaces: Option<&str>,
    ) -> Result<Step, Error> {
        let spec = rec.orders[i].spec;
        let mut order = match rec.orders[i].url.clone() {
            Some(url) => match account.order(url).await {
                Ok(o) => {
                    debug!(md = %md.name, %spec, "resumed order");
                    o
                }
                Err(_) => {
                    info!(md = %md.name, %spec, "stored order unusable, creating a new one");
                    self.new_order(md, account, replaces).await?
                }
            },
            None => self.new_order(md, account, replaces).await?,
        };
        rec.orders[i].url = Some(order.url().to_string());
        self.store
            .write_json(Group::Staging, &md.name, "order.json", rec)?;
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(500))
            .backoff(1.5)
            .timeout(self.config.validation_timeout.max(Duration::from_secs(1)));

        if order.state().status == OrderStatus::Pending {
            self.setup_challenges(md, &mut order, rec, i).await?;
            if self.config.validation_timeout.is_zero() {
                return Ok(Step::Pending);
            }
            let status = order.poll_ready(&retry).await.map_err(|e| match e {
                instant_acme::Error::Timeout(_) => Error::Acme {
                    activity: "waiting for validation",
                    problem: None,
                    detail: "the CA did not validate in time".into(),
                },
                other => Error::acme("waiting for validation")(other),
            })?;
            if status == OrderStatus::Invalid {
                return Err(self.invalid_detail(&mut order).await);
            }
        }
        let key_file = store::next_file(&store::privkey_file(&spec));
        match order.state().status {
            OrderStatus::Ready => {
                let key = match self.store.load_key(Group::Staging, &md.name, &key_file)? {
                    Some(pem) => KeyPair::from_pem(&pem)?,
                    None => {
                        let k = generate_key(&spec)?;
                        self.store.save_key(
                            Group::Staging,
                            &md.name,
                            &key_file,
                            &Zeroizing::new(k.serialize_pem()),
                        )?;
                        k
                    }
                };
                let csr = make_csr(md, &key)?;
                order
                    .finalize_csr(&csr)
                    .await
                    .map_err(Error::acme("finalizing the order"))?;
            }
            OrderStatus::Processing | OrderStatus::Valid => {
                if !self.store.exists(Group::Staging, &md.name, &key_file) {
                    // Finalized with a key we no longer have: start over.
                    rec.orders[i].url = None;
                    self.store
                        .write_json(Group::Staging, &md.name, "order.json", rec)?;
                    return Err(Error::Acme {
                        activity: "resuming the order",
                        problem: None,
                        detail: "order finalized but its private key is missing".into(),
                    });
                }
            }
            OrderStatus::Invalid => return Err(self.invalid_detail(&mut order).await),
            OrderStatus::Pending => {
                return Ok(Step::Pending);
            }
        }
        let chain = order
            .poll_certificate(&retry)
            .await
            .map_err(Error::acme("retrieving the certificate"))?;
        let info = leaf_info(&chain)?;
        if !info.covers(&md.domains) {
            return Err(Error::Names(md.domains.clone()));
        }
        self.store.write(
            Group::Staging,
            &md.name,
            &store::next_file(&store::pubcert_file(&spec)),
            chain.as_bytes(),
        )?;
        info!(md = %md.name, %spec, serial = %info.serial, "received certificate");
        Ok(Step::Done)
    }

    async fn invalid_detail(&self, order: &mut instant_acme::Order) -> Error {
        let mut detail = String::from("the order became invalid");
        let mut problem = None;
        let mut authz = order.authorizations();
        while let Some(Ok(a)) = authz.next().await {
            for c in &a.challenges {
                if let Some(e) = &c.error {
                    detail = format!("{}: {e}", a.identifier());
                    problem = e.r#type.clone();
                }
            }
        }
        Error::Acme {
            activity: "validating",
            problem,
            detail,
        }
    }

    /// Sets up and readies one challenge per pending authorization, recording each as
    /// `<type>:<domain>` in `rec.orders[i].challenges` (and order.json) *before* it is set
    /// up: a process killed in between leaves no challenge that teardown does not know.
    async fn setup_challenges(
        &self,
        md: &ManagedDomain,
        order: &mut instant_acme::Order,
        rec: &mut OrderRecord,
        i: usize,
    ) -> Result<(), Error> {
        let prefs = md.challenge_preference(&self.config.auto_challenges);
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let mut a = a.map_err(Error::acme("fetching authorizations"))?;
            match a.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(Error::Acme {
                        activity: "checking authorizations",
                        problem: None,
                        detail: format!("{}: authorization is {other:?}", a.identifier()),
                    });
                }
            }
            let id = a.identifier();
            let domain = match id.identifier {
                Identifier::Dns(d) => d.clone(),
                other => format!("{other:?}"),
            };
            let wildcard = id.wildcard;
            let offered: Vec<instant_acme::ChallengeType> =
                a.challenges.iter().map(|c| c.r#type.clone()).collect();
            let Some(kind) = prefs
                .iter()
                .copied()
                .filter(|k| !wildcard || *k == ChallengeType::Dns01)
                .find(|k| offered.contains(&to_acme(*k)))
            else {
                return Err(Error::NoChallenge {
                    domain,
                    offered: offered.iter().map(|o| format!("{o:?}")).collect(),
                    allowed: prefs.iter().map(|p| p.as_str()).collect(),
                });
            };
            let Some(mut ch) = a.challenge(to_acme(kind)) else {
                continue;
            };
            let key_authz = ch.key_authorization();
            // What teardown needs; the TXT value too for MDChallengeDns01Version 2.
            let record = match kind {
                ChallengeType::Dns01 if self.config.dns01_version2 => {
                    format!("{}:{domain}:{}", kind.as_str(), key_authz.dns_value())
                }
                _ => format!("{}:{domain}", kind.as_str()),
            };
            if !rec.orders[i].challenges.contains(&record) {
                rec.orders[i].challenges.push(record);
                self.store
                    .write_json(Group::Staging, &md.name, "order.json", &*rec)?;
            }
            match kind {
                ChallengeType::Http01 => {
                    challenge::setup_http01(&self.store, &domain, key_authz.as_str())?
                }
                ChallengeType::TlsAlpn01 => {
                    challenge::setup_tls_alpn01(&self.store, &domain, key_authz.digest().as_ref())?
                }
                ChallengeType::Dns01 => {
                    let cmd = md.dns01_cmd.as_deref().unwrap_or_default();
                    challenge::run_dns01(cmd, "setup", &domain, Some(&key_authz.dns_value()))?;
                }
            }
            debug!(md = %md.name, %domain, kind = kind.as_str(), "challenge set up");
            if ch.status == ChallengeStatus::Pending {
                ch.set_ready()
                    .await
                    .map_err(Error::acme("signalling challenge ready"))?;
            }
        }
        Ok(())
    }
}

/// Account operations for tools such as `a2md acme …`, on accounts in `accounts/`.
impl Driver {
    /// Registers a new account at `ca_url` (always a new one, even if the store holds an
    /// account for that CA) and returns its name in `accounts/`. The CA's terms must be
    /// accepted (`agreement`) and at least one `mailto:` contact given.
    pub async fn register_account(
        &mut self,
        ca_url: &str,
        contacts: &[String],
        agreement: Option<&str>,
    ) -> Result<String, Error> {
        let mut md = ManagedDomain::new("account.invalid", &[])
            .map_err(|e| Error::Config(ConfigError(format!("internal: {e}"))))?;
        md.name = "a2md".into();
        md.ca.urls = vec![ca_url.to_string()];
        md.ca.agreement = agreement.map(str::to_string);
        md.contacts = contacts.to_vec();
        model::check_account_info(&md)?;
        Ok(self.create_account(&md, ca_url).await?.0)
    }

    fn stored_account(
        &self,
        name: &str,
    ) -> Result<(AccountJson, PrivatePkcs8KeyDer<'static>), Error> {
        let missing = || Error::Config(ConfigError(format!("unknown account: {name}")));
        let j = self
            .store
            .read_json::<AccountJson>(Group::Accounts, name, "account.json")?
            .ok_or_else(missing)?;
        let pem = self
            .store
            .load_key(Group::Accounts, name, "account.pem")?
            .ok_or_else(missing)?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
            Error::Config(ConfigError(format!(
                "account {name}: account.pem is not a PKCS#8 key"
            )))
        })?;
        Ok((j, der))
    }

    /// Asks the CA whether the stored account `name` exists there (a newAccount request
    /// with `onlyReturnExisting`) and returns its `account.json`.
    pub async fn validate_account(&mut self, name: &str) -> Result<AccountJson, Error> {
        let (j, der) = self.stored_account(name)?;
        let key = instant_acme::Key::from_pkcs8_der(der.clone_key())
            .map_err(Error::acme("loading the account key"))?;
        let _existing = self
            .builder()?
            .from_key(
                (key, rustls_pki_types::PrivateKeyDer::Pkcs8(der)),
                j.ca_url.clone(),
            )
            .await
            .map_err(Error::acme("looking up the account"))?;
        Ok(j)
    }

    /// Records `agreement` (a terms-of-service URL or `accepted`) for the stored account
    /// `name` after checking that the CA knows it. Accounts are always registered with
    /// the terms agreed, so nothing more is sent to the CA.
    pub async fn agree_account(&mut self, name: &str, agreement: &str) -> Result<(), Error> {
        let mut j = self.validate_account(name).await?;
        j.agreement = Some(agreement.to_string());
        self.store
            .write_json(Group::Accounts, name, "account.json", &j)?;
        Ok(())
    }

    /// Deactivates the stored account `name` at its CA and marks it `deactivated` in
    /// its `account.json`, so no MD uses it again.
    pub async fn deactivate_account(&mut self, name: &str) -> Result<(), Error> {
        let (mut j, der) = self.stored_account(name)?;
        let account = self
            .builder()?
            .from_parts(j.url.clone(), der, j.ca_url.clone())
            .await
            .map_err(Error::acme("loading the account"))?;
        account
            .deactivate()
            .await
            .map_err(Error::acme("deactivating the account"))?;
        self.accounts.remove(name);
        j.status = "deactivated".into();
        self.store
            .write_json(Group::Accounts, name, "account.json", &j)?;
        Ok(())
    }
}

/// The ACME problem type of a rejected anti-replay nonce.
const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";

fn to_acme(k: ChallengeType) -> instant_acme::ChallengeType {
    match k {
        ChallengeType::Http01 => instant_acme::ChallengeType::Http01,
        ChallengeType::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
        ChallengeType::Dns01 => instant_acme::ChallengeType::Dns01,
    }
}

fn parse_cert_id(id: &str) -> instant_acme::CertificateIdentifier<'static> {
    let (aki, serial) = id.split_once('.').unwrap_or((id, ""));
    instant_acme::CertificateIdentifier {
        authority_key_identifier: aki.to_string().into(),
        serial: serial.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    #[test]
    fn account_names() {
        assert_eq!(
            account_dir_prefix("https://acme-v02.api.letsencrypt.org/directory"),
            "ACME-.letsencrypt.org"
        );
        assert_eq!(
            account_dir_prefix("https://localhost:14000/dir"),
            "ACME-localhost"
        );
    }

    #[test]
    fn keys_and_csrs() {
        let mut md = ManagedDomain::new("csr.example", &["www.csr.example"]).unwrap();
        md.must_staple = true;
        for spec in [KeySpec::P256, KeySpec::P384, KeySpec::Rsa(2048)] {
            let k = generate_key(&spec).unwrap();
            let pem = k.serialize_pem();
            let back = KeyPair::from_pem(&pem).unwrap();
            let der = make_csr(&md, &back).unwrap();
            let (_, csr) =
                x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                    .unwrap();
            let exts: Vec<String> = csr
                .requested_extensions()
                .into_iter()
                .flatten()
                .map(|e| format!("{e:?}"))
                .collect();
            let all = exts.join(" ");
            assert!(
                all.contains("csr.example") && all.contains("www.csr.example"),
                "{all}"
            );
        }
    }

    #[test]
    fn cert_id_roundtrip() {
        let id = parse_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
        assert_eq!(id.to_string(), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    }

    #[test]
    fn outcome_next_run() {
        let t = SystemTime::UNIX_EPOCH;
        assert_eq!(Outcome::Pending { next_run: t }.next_run(), t);
        assert_eq!(
            Outcome::NotDue {
                next_run: t,
                warn: true
            }
            .next_run(),
            t
        );
    }
}
