//! `a2md`: show and change the managed domains of a mod_bastion (mod_md layout) store
//! from the command line, and drive ACME orders outside the server — for clusters
//! where the server must not drive itself, or to try a CA by hand.
//!
//! Every file is written through the engine's [`Store`] (atomic writes, the store's
//! permissions, keys encrypted at rest outside `domains/`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use bastion_md::model::{self, ChallengeType, KeySpec, RenewMode, Timeslice};
use bastion_md::store::{Group, Job, http_date};
use bastion_md::{Driver, DriverConfig, ManagedDomain, Outcome, Store, status};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

/// mod_md's store is `md` under ServerRoot; Debian's ServerRoot is /etc/apache2.
const DEFAULT_STORE: &str = "/etc/apache2/md";

#[derive(Parser, Debug)]
#[command(
    name = "a2md",
    about = "Show and manipulate Apache managed domains (mod_bastion's mod_md store)",
    disable_version_flag = true
)]
struct Cli {
    /// The ACME server's directory URL (or LetsEncrypt, LetsEncrypt-Test, Buypass, Buypass-Test).
    #[arg(short = 'a', long = "acme", value_name = "URL", global = true)]
    acme: Option<String>,
    /// PEM file with the root certificate to trust for the ACME server.
    #[arg(short = 'C', long = "cafile", value_name = "FILE", global = true)]
    cafile: Option<PathBuf>,
    /// The store directory.
    #[arg(short = 'd', long = "dir", value_name = "STORE", default_value = DEFAULT_STORE, global = true)]
    dir: PathBuf,
    /// Print JSON: {"status":n,"output":[…]}.
    #[arg(short = 'j', long = "json", global = true)]
    json: bool,
    /// You agree to the CA's terms of service (its URL, or `accepted`).
    #[arg(short = 't', long = "terms", value_name = "URL", global = true)]
    terms: Option<String>,
    /// More output on stderr (repeat for more).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output on stderr.
    #[arg(short = 'q', long = "quiet", global = true)]
    quiet: bool,
    /// Print the version.
    #[arg(short = 'V', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List all managed domains (or the named ones) with their status.
    List {
        /// MD names or DNS names.
        names: Vec<String>,
    },
    /// Add a managed domain: the first name is its name, all become SANs.
    Add {
        /// DNS names.
        #[arg(required = true)]
        domains: Vec<String>,
    },
    /// Change an MD: update NAME [ASPECT ARGS...], ASPECT one of domains, ca, account,
    /// contacts, agreement, challenges, private-keys, renew-mode, renew-window, warn-window
    Update {
        /// The MD's name.
        name: String,
        /// What to change, then its new value(s).
        #[arg(num_args = 0.., allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Drive all (or the named) MDs to a certificate, then activate it in domains/.
    Drive {
        /// Use this challenge type (http-01, tls-alpn-01, dns-01).
        #[arg(short = 'c', long = "challenge", value_name = "TYPE")]
        challenge: Option<String>,
        /// Discard staged data and earlier errors (and their backoff) first.
        #[arg(short = 'r', long = "reset")]
        reset: bool,
        /// MD names.
        names: Vec<String>,
    },
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        cmd: StoreCmd,
    },
    /// ACME accounts.
    Acme {
        #[command(subcommand)]
        cmd: AcmeCmd,
    },
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    /// List what the store holds, per group.
    List,
    /// Remove MDs from domains/ (their certificates and keys).
    Remove {
        /// Be silent about MDs that do not exist.
        #[arg(short = 'f', long = "force")]
        force: bool,
        /// MD names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove everything the store holds for MDs: domains/, staging/, tmp/, archive/
    /// and the challenges of their names.
    Purge {
        /// Be silent about MDs that do not exist.
        #[arg(short = 'f', long = "force")]
        force: bool,
        /// MD names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AcmeCmd {
    /// Register a new account at the CA given with -a, agreeing to its terms (-t).
    Newreg {
        /// Contact email addresses.
        #[arg(required = true)]
        contacts: Vec<String>,
    },
    /// Deactivate accounts at their CA.
    Delreg {
        /// Account names in accounts/.
        #[arg(required = true)]
        accounts: Vec<String>,
    },
    /// Record agreement to the CA's terms (-t, default `accepted`) for accounts.
    Agree {
        /// Account names in accounts/.
        #[arg(required = true)]
        accounts: Vec<String>,
    },
    /// Check that accounts exist at their CA.
    Validate {
        /// Account names in accounts/.
        #[arg(required = true)]
        accounts: Vec<String>,
    },
}

/// An error with the message for stderr.
#[derive(Debug)]
struct Fail(String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(e.to_string())
    }
}

macro_rules! fail {
    ($($t:tt)*) => { return Err(Fail(format!($($t)*))) };
}

/// Collects output: human lines on stdout as they come, or JSON items printed at the end.
struct Out {
    json: bool,
    items: Vec<Value>,
}

impl Out {
    fn line(&mut self, s: impl AsRef<str>) {
        if !self.json {
            println!("{}", s.as_ref());
        }
    }

    fn item(&mut self, v: Value) {
        self.items.push(v);
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if cli.version {
        println!("version: {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, 2) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
    let mut out = Out {
        json: cli.json,
        items: Vec::new(),
    };
    let result = match &cli.cmd {
        None => Err(Fail(
            "a command is missing: list, add, update, drive, store or acme (see a2md --help)"
                .into(),
        )),
        Some(cmd) => run(&cli, cmd, &mut out),
    };
    let code = match &result {
        Ok(()) => 0,
        Err(Fail(msg)) => {
            eprintln!("a2md: {msg}");
            1
        }
    };
    if cli.json {
        let mut j = json!({ "status": code, "output": out.items });
        if let Err(Fail(msg)) = &result {
            j["description"] = msg.clone().into();
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&j).unwrap_or_else(|_| "{}".into())
        );
    }
    ExitCode::from(code)
}

fn open_store(cli: &Cli) -> Result<Store, Fail> {
    Store::open(&cli.dir).map_err(|e| Fail(format!("store {}: {e}", cli.dir.display())))
}

/// All MDs in domains/, sorted by name.
fn load_mds(store: &Store) -> Result<Vec<ManagedDomain>, Fail> {
    let mut v = Vec::new();
    for name in store.list(Group::Domains)? {
        if let Some(md) = store.load_md(Group::Domains, &name)? {
            v.push(md);
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

fn load_md(store: &Store, name: &str) -> Result<ManagedDomain, Fail> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    match store.load_md(Group::Domains, &n) {
        Ok(Some(md)) => Ok(md),
        Ok(None) => fail!("managed domain not found: {name}"),
        Err(e) => Err(e.into()),
    }
}

fn ca_urls(cli: &Cli) -> Result<Option<Vec<String>>, Fail> {
    match &cli.acme {
        None => Ok(None),
        Some(a) => Ok(Some(
            model::parse_ca_urls(&[a.as_str()]).map_err(|e| Fail(format!("-a: {e}")))?,
        )),
    }
}

fn driver_config(cli: &Cli) -> DriverConfig {
    DriverConfig {
        ca_file: cli.cafile.clone(),
        ..DriverConfig::default()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail(format!("cannot start the async runtime: {e}")))
}

fn run(cli: &Cli, cmd: &Cmd, out: &mut Out) -> Result<(), Fail> {
    match cmd {
        Cmd::List { names } => cmd_list(cli, names, out),
        Cmd::Add { domains } => cmd_add(cli, domains, out),
        Cmd::Update { name, args } => cmd_update(cli, name, args, out),
        Cmd::Drive {
            challenge,
            reset,
            names,
        } => cmd_drive(cli, challenge.as_deref(), *reset, names, out),
        Cmd::Store { cmd } => cmd_store(cli, cmd, out),
        Cmd::Acme { cmd } => cmd_acme(cli, cmd, out),
    }
}

fn state_word(j: &Value) -> String {
    match j["state"].as_i64() {
        Some(1) => "incomplete",
        Some(2) => "complete",
        Some(4) => "error",
        Some(5) => "missing-info",
        _ => "unknown",
    }
    .to_string()
}

/// Prints MDs: a table, or their md-status JSON.
fn print_mds(store: &Store, mds: &[ManagedDomain], out: &mut Out) {
    let now = SystemTime::now();
    let rows: Vec<Value> = mds
        .iter()
        .map(|m| status::md_json(store, m, now, false))
        .collect();
    if out.json {
        out.items.extend(rows);
        return;
    }
    let header = ["NAME", "STATE", "RENEW", "VALID-UNTIL", "CA", "DOMAINS"];
    let table: Vec<[String; 6]> = rows
        .iter()
        .zip(mds)
        .map(|(j, m)| {
            let until = j
                .pointer("/cert/valid/until")
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string();
            let renew = if j.get("renewal").is_some_and(|r| r["finished"] == true) {
                "staged"
            } else if j["renew"] == true {
                "due"
            } else {
                "no"
            };
            [
                m.name.clone(),
                state_word(j),
                renew.to_string(),
                until,
                m.ca.urls.first().map_or("-".into(), |u| status::ca_name(u)),
                m.domains.join(" "),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let fmt = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    out.line(fmt(&header.map(String::from)));
    for r in &table {
        out.line(fmt(r));
    }
}

fn cmd_list(cli: &Cli, names: &[String], out: &mut Out) -> Result<(), Fail> {
    let store = open_store(cli)?;
    let all = load_mds(&store)?;
    let mds: Vec<ManagedDomain> = if names.is_empty() {
        all
    } else {
        let mut v = Vec::new();
        for n in names {
            match status::find(&all, n) {
                Some(m) => v.push(m.clone()),
                None => fail!("managed domain not found: {n}"),
            }
        }
        v
    };
    print_mds(&store, &mds, out);
    Ok(())
}

fn cmd_add(cli: &Cli, domains: &[String], out: &mut Out) -> Result<(), Fail> {
    let store = open_store(cli)?;
    let (first, rest) = domains
        .split_first()
        .ok_or_else(|| Fail("add needs at least one DNS name".into()))?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let mut md = ManagedDomain::new(first, &rest)?;
    if let Some(urls) = ca_urls(cli)? {
        md.ca.urls = urls;
    }
    md.ca.agreement = cli.terms.clone();
    let existing = load_mds(&store)?;
    if existing.iter().any(|m| m.name == md.name) {
        fail!(
            "managed domain {} exists already; change it with `a2md update {} ...`",
            md.name,
            md.name
        );
    }
    let mut all = existing;
    all.push(md.clone());
    model::check_overlaps(&all)?;
    store.save_md(Group::Domains, &md)?;
    print_mds(&store, std::slice::from_ref(&md), out);
    Ok(())
}

fn cmd_update(cli: &Cli, name: &str, args: &[String], out: &mut Out) -> Result<(), Fail> {
    let store = open_store(cli)?;
    let mut md = load_md(&store, name)?;
    let before = md.clone();
    if let Some(urls) = ca_urls(cli)? {
        md.ca.urls = urls;
    }
    if let Some((aspect, vals)) = args.split_first() {
        let v: Vec<&str> = vals.iter().map(String::as_str).collect();
        let need = |what: &str| -> Result<(), Fail> {
            if v.is_empty() {
                fail!("update {name} {aspect} needs {what}");
            }
            Ok(())
        };
        match aspect.as_str() {
            "domains" => {
                need("at least one DNS name")?;
                let mut ds = Vec::new();
                for d in &v {
                    let d = model::parse_domain(d)?;
                    if !ds.contains(&d) {
                        ds.push(d);
                    }
                }
                if !ds.contains(&md.name) {
                    fail!(
                        "update {name} domains: the MD's name {} must stay among its domains",
                        md.name
                    );
                }
                ds.retain(|d| *d != md.name);
                ds.insert(0, md.name.clone());
                md.domains = ds;
                let mut all: Vec<ManagedDomain> = load_mds(&store)?
                    .into_iter()
                    .filter(|m| m.name != md.name)
                    .collect();
                all.push(md.clone());
                model::check_overlaps(&all)?;
            }
            "ca" => {
                need("a CA URL")?;
                let mut v = v.clone();
                // mod_md's form `ca <url> [proto]`: ACME is the only protocol.
                if v.len() > 1 && v[v.len() - 1].eq_ignore_ascii_case("ACME") {
                    v.pop();
                }
                md.ca.urls = model::parse_ca_urls(&v)?;
            }
            "account" => {
                need("an account name from accounts/")?;
                if !store.exists(Group::Accounts, v[0], "account.json") {
                    fail!("unknown account: {} (see `a2md store list`)", v[0]);
                }
                md.ca.account = Some(v[0].to_string());
            }
            "contacts" => {
                need("at least one contact email")?;
                md.contacts = v
                    .iter()
                    .map(|c| model::parse_contact(c))
                    .collect::<Result<_, _>>()?;
            }
            "agreement" => {
                need("the terms-of-service URL or `accepted`")?;
                md.ca.agreement = Some(v[0].to_string());
            }
            "challenges" => {
                need("challenge types (http-01, tls-alpn-01, dns-01)")?;
                md.ca.challenges = v
                    .iter()
                    .map(|c| ChallengeType::parse(c))
                    .collect::<Result<_, _>>()?;
            }
            "private-keys" | "pkeys" => {
                need("key specs like `RSA 2048 secp256r1`")?;
                md.pkeys = KeySpec::parse_list(&v)?;
            }
            "renew-mode" | "drive-mode" => {
                need("auto, always or manual")?;
                md.renew_mode = RenewMode::parse(v[0])?;
            }
            "renew-window" => {
                need("a window like 33% or 30d")?;
                md.renew_window = Timeslice::parse(v[0])?;
            }
            "warn-window" => {
                need("a window like 10% or 7d")?;
                md.warn_window = Timeslice::parse(v[0])?;
            }
            other => fail!(
                "unknown update aspect: {other} (domains, ca, account, contacts, agreement, \
                 challenges, private-keys, renew-mode, renew-window or warn-window)"
            ),
        }
    }
    model::check_domain(&md)?;
    if md == before {
        tracing::info!("{}: no changes necessary", md.name);
    } else {
        store.save_md(Group::Domains, &md)?;
    }
    print_mds(&store, std::slice::from_ref(&md), out);
    Ok(())
}

fn cmd_drive(
    cli: &Cli,
    challenge: Option<&str>,
    reset: bool,
    names: &[String],
    out: &mut Out,
) -> Result<(), Fail> {
    let store = open_store(cli)?;
    let mds = if names.is_empty() {
        load_mds(&store)?
    } else {
        names
            .iter()
            .map(|n| load_md(&store, n))
            .collect::<Result<Vec<_>, _>>()?
    };
    let challenge = challenge
        .map(ChallengeType::parse)
        .transpose()
        .map_err(|e| Fail(format!("-c: {e}")))?;
    let mut config = driver_config(cli);
    if let Some(c) = challenge {
        config.auto_challenges = vec![c];
    }
    let rt = runtime()?;
    let mut driver = Driver::new(open_store(cli)?, config);
    for md in mds {
        let mut run_md = md.clone();
        // a2md drives whatever the renew mode: it is the manual way.
        if run_md.renew_mode == RenewMode::Manual {
            run_md.renew_mode = RenewMode::Auto;
        }
        if let Some(c) = challenge {
            run_md.ca.challenges = vec![c];
        }
        if run_md.ca.agreement.is_none() {
            run_md.ca.agreement = cli.terms.clone();
        }
        if reset {
            store.purge(Group::Staging, &md.name)?;
            out.line(format!("{}: staging reset", md.name));
        }
        let (state, _) = status::md_state(&store, &md);
        let mut result = rt.block_on(driver.drive(&run_md));
        // With a validation timeout the driver finishes in one call; resume if the CA was slow.
        for _ in 0..10 {
            match &result {
                Ok(Outcome::Pending { next_run }) => {
                    let wait = next_run
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .min(Duration::from_secs(30));
                    out.line(format!("{}: order pending at the CA, waiting", md.name));
                    std::thread::sleep(wait);
                    result = rt.block_on(driver.drive(&run_md));
                }
                _ => break,
            }
        }
        let outcome = result.map_err(|e| Fail(format!("{}: {e}", md.name)))?;
        let (what, activate) = match outcome {
            Outcome::Renewed { .. } if state == status::MdState::Complete => {
                ("renewed, new certificates staged", true)
            }
            Outcome::Renewed { .. } => ("new certificates staged", true),
            Outcome::Staged { .. } => ("certificates were staged earlier", true),
            Outcome::NotDue { .. } | Outcome::Manual { .. } => ("complete.", false),
            Outcome::Pending { .. } => fail!(
                "{}: the CA has not finished the order yet; run `a2md drive {}` again later",
                md.name,
                md.name
            ),
            Outcome::Backoff { next_run } => {
                let job: Job = driver.job(&md.name).unwrap_or_default();
                fail!(
                    "{}: backing off after {} error(s) until {} (last: {}); retry now with \
                     `a2md drive -r {}`",
                    md.name,
                    job.errors,
                    http_date(next_run),
                    job.last.detail.as_deref().unwrap_or("unknown"),
                    md.name
                )
            }
        };
        out.line(format!("{}: {what}", md.name));
        let mut activated = false;
        if activate {
            activated = store.promote_staging(&md.name)?;
            // Keep the MD's own settings (the staged md.json has this run's overrides).
            store.save_md(Group::Domains, &md)?;
            if activated {
                out.line(format!(
                    "{}: certificates activated in domains/ (a graceful restart of httpd \
                     serves them)",
                    md.name
                ));
            }
        }
        let now = SystemTime::now();
        let mut j = status::md_json(&store, &md, now, false);
        j["activated"] = activated.into();
        out.item(j);
    }
    Ok(())
}

fn cmd_store(cli: &Cli, cmd: &StoreCmd, out: &mut Out) -> Result<(), Fail> {
    let store = open_store(cli)?;
    match cmd {
        StoreCmd::List => {
            let mut j = serde_json::Map::new();
            for g in Group::ALL {
                let names = store.list(g)?;
                for n in &names {
                    out.line(format!("{}/{n}", g.dir_name()));
                }
                j.insert(g.dir_name().into(), names.into());
            }
            out.item(Value::Object(j));
        }
        StoreCmd::Remove { force, names } => {
            for n in names {
                let n = n.trim_end_matches('.').to_ascii_lowercase();
                if !store.dir(Group::Domains, &n)?.is_dir() {
                    if *force {
                        continue;
                    }
                    fail!("managed domain not found: {n}");
                }
                store.purge(Group::Domains, &n)?;
                out.line(format!("removed: {n}"));
                out.item(json!({ "removed": n }));
            }
        }
        StoreCmd::Purge { force, names } => {
            for n in names {
                let n = n.trim_end_matches('.').to_ascii_lowercase();
                let md = store
                    .load_md(Group::Domains, &n)
                    .ok()
                    .flatten()
                    .or_else(|| store.load_md(Group::Staging, &n).ok().flatten());
                let archives: Vec<String> = store
                    .list(Group::Archive)?
                    .into_iter()
                    .filter(|a| {
                        a.strip_prefix(&n)
                            .and_then(|r| r.strip_prefix('.'))
                            .is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()))
                    })
                    .collect();
                let present = [Group::Domains, Group::Staging, Group::Tmp]
                    .iter()
                    .any(|g| store.dir(*g, &n).is_ok_and(|d| d.is_dir()))
                    || !archives.is_empty();
                if !present {
                    if *force {
                        continue;
                    }
                    fail!("nothing stored for: {n}");
                }
                for g in [Group::Domains, Group::Staging, Group::Tmp] {
                    store.purge(g, &n)?;
                }
                for a in &archives {
                    store.purge(Group::Archive, a)?;
                }
                for d in md.map(|m| m.domains).unwrap_or_else(|| vec![n.clone()]) {
                    store.purge(Group::Challenges, &d)?;
                }
                out.line(format!("purged: {n}"));
                out.item(json!({ "purged": n }));
            }
        }
    }
    Ok(())
}

fn cmd_acme(cli: &Cli, cmd: &AcmeCmd, out: &mut Out) -> Result<(), Fail> {
    let rt = runtime()?;
    let mut driver = Driver::new(open_store(cli)?, driver_config(cli));
    match cmd {
        AcmeCmd::Newreg { contacts } => {
            let Some(urls) = ca_urls(cli)? else {
                fail!("acme newreg needs the CA's directory URL: a2md -a URL acme newreg ...");
            };
            let Some(terms) = &cli.terms else {
                fail!(
                    "the CA's terms of service must be accepted to register: add -t accepted \
                     (or -t <terms URL>)"
                );
            };
            let contacts = contacts
                .iter()
                .map(|c| model::parse_contact(c))
                .collect::<Result<Vec<_>, _>>()?;
            let name = rt.block_on(driver.register_account(&urls[0], &contacts, Some(terms)))?;
            out.line(format!("registered: {name}"));
            let j: Option<Value> =
                driver
                    .store()
                    .read_json(Group::Accounts, &name, "account.json")?;
            out.item(json!({ "account": name, "account.json": j }));
        }
        AcmeCmd::Delreg { accounts } => {
            for a in accounts {
                rt.block_on(driver.deactivate_account(a))?;
                out.line(format!("deleted: {a}"));
                out.item(json!({ "deleted": a }));
            }
        }
        AcmeCmd::Agree { accounts } => {
            let terms = cli.terms.as_deref().unwrap_or("accepted");
            for a in accounts {
                rt.block_on(driver.agree_account(a, terms))?;
                out.line(format!("agreed terms-of-service: {a} ({terms})"));
                out.item(json!({ "account": a, "agreement": terms }));
            }
        }
        AcmeCmd::Validate { accounts } => {
            for a in accounts {
                let j = rt.block_on(driver.validate_account(a))?;
                out.line(format!("account valid: {a} ({})", j.url));
                out.item(json!({ "account": a, "valid": true, "url": j.url }));
            }
        }
    }
    Ok(())
}
