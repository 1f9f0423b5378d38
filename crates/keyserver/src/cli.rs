//! The command line.
//!
//! ```text
//! bastion-keyserver init --config FILE
//! bastion-keyserver user add NAME [--role ROLE] [--permissions P,...] [--clients C,...] [--replace] --config FILE
//! bastion-keyserver user remove NAME --config FILE
//! bastion-keyserver user list --config FILE
//! bastion-keyserver rotate master --config FILE
//! bastion-keyserver rotate data CLIENT --config FILE
//! bastion-keyserver serve --config FILE
//! ```
//!
//! Passwords are never arguments: the master password comes from the file
//! or environment variable the configuration names, and `user add` reads
//! the new account's password from the first line of standard input.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::audit::{AuditEvent, AuditLog};
use crate::auth::{Account, ClientScopes, Permission, ROLE_NAMES, role_permissions};
use crate::config::Config;
use crate::crypto::hash_password;
use crate::server;
use crate::store::Store;
use crate::util::unix_now;

/// Usage text.
pub const USAGE: &str = "\
usage:
  bastion-keyserver init --config FILE
  bastion-keyserver user add NAME [--role ROLE] [--permissions P,...] [--clients C,...] [--replace] --config FILE
  bastion-keyserver user remove NAME --config FILE
  bastion-keyserver user list --config FILE
  bastion-keyserver rotate master --config FILE
  bastion-keyserver rotate data CLIENT --config FILE
  bastion-keyserver serve --config FILE

user add reads the new account's password from the first line of standard input.
roles: module (default: master-read,data-read,data-create), reader, data-server,
       operator, admin
permissions: master-read, master-wrap, master-rotate, data-read, data-create, data-rotate
";

/// A parsed command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Create the store (and master key 1 for master/both).
    Init,
    /// Add (or with `replace`, replace) an account.
    UserAdd {
        /// Account name.
        name: String,
        /// Permissions.
        permissions: BTreeSet<Permission>,
        /// Client scopes.
        clients: ClientScopes,
        /// Overwrite an existing account.
        replace: bool,
    },
    /// Remove an account.
    UserRemove {
        /// Account name.
        name: String,
    },
    /// List accounts.
    UserList,
    /// Add a master key.
    RotateMaster,
    /// Add a data key version for a client.
    RotateData {
        /// The client scope.
        client: String,
    },
    /// Run the server.
    Serve,
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// A command with its configuration file.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    /// What to do.
    pub command: Command,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
}

/// Errors from the command line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments.
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    /// The command failed.
    #[error("{0}")]
    Failed(String),
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Invocation, CliError> {
    let mut config = None;
    let mut role = None;
    let mut perms = None;
    let mut clients = None;
    let mut replace = false;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        match a.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(value(a)?)),
            "--role" => role = Some(value(a)?),
            "--permissions" => perms = Some(value(a)?),
            "--clients" => clients = Some(value(a)?),
            "--replace" => replace = true,
            "-h" | "--help" => {
                return Ok(Invocation {
                    command: Command::Help,
                    config: None,
                });
            }
            "-V" | "--version" => {
                return Ok(Invocation {
                    command: Command::Version,
                    config: None,
                });
            }
            s if s.starts_with('-') => return Err(usage(format!("unknown option {s}"))),
            s => words.push(s.to_string()),
        }
    }
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let user_add = matches!(w.as_slice(), ["user", "add", _]);
    if !user_add && (role.is_some() || perms.is_some() || clients.is_some() || replace) {
        return Err(usage(
            "--role, --permissions, --clients and --replace are for `user add`",
        ));
    }
    let command = match w.as_slice() {
        ["init"] => Command::Init,
        ["serve"] => Command::Serve,
        ["user", "list"] => Command::UserList,
        ["user", "remove", name] => Command::UserRemove {
            name: name.to_string(),
        },
        ["user", "add", name] => {
            if !valid_name(name) {
                return Err(usage("account names are 1..=128 visible ASCII characters"));
            }
            let mut permissions = BTreeSet::new();
            if role.is_none() && perms.is_none() {
                role = Some("module".into());
            }
            if let Some(r) = &role {
                permissions = role_permissions(r).ok_or_else(|| {
                    usage(format!(
                        "unknown role {r:?}; roles: {}",
                        ROLE_NAMES.join(", ")
                    ))
                })?;
            }
            if let Some(p) = &perms {
                for name in p.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    permissions.insert(
                        Permission::parse(name)
                            .ok_or_else(|| usage(format!("unknown permission {name:?}")))?,
                    );
                }
            }
            let clients = match &clients {
                Some(c) => ClientScopes::parse(c).ok_or_else(|| usage("--clients is empty"))?,
                None => ClientScopes::any(),
            };
            Command::UserAdd {
                name: name.to_string(),
                permissions,
                clients,
                replace,
            }
        }
        ["rotate", "master"] => Command::RotateMaster,
        ["rotate", "data", client] => Command::RotateData {
            client: client.to_string(),
        },
        [] => return Err(usage("no command")),
        _ => return Err(usage(format!("unknown command: {}", words.join(" ")))),
    };
    if config.is_none() {
        return Err(usage("--config FILE is required"));
    }
    Ok(Invocation { command, config })
}

/// Reads one password line from standard input (at least 8 characters).
pub fn read_password_stdin() -> Result<Zeroizing<String>, CliError> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| failed(format!("reading the password from standard input: {e}")))?;
    let pw = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    if pw.chars().count() < 8 {
        return Err(failed(
            "the password (first line of standard input) must have at least 8 characters",
        ));
    }
    Ok(pw)
}

fn open_store(cfg: &Config) -> Result<Store, CliError> {
    let pw = cfg.master_password().map_err(failed)?;
    Store::open(&cfg.database, pw.as_bytes())
        .map_err(|e| failed(format!("{}: {e}", cfg.database.display())))
}

fn audit(cfg: &Config, event: AuditEvent<'_>) -> Result<(), CliError> {
    AuditLog::open(&cfg.audit_log)
        .and_then(|log| log.record(&event))
        .map_err(|e| failed(format!("audit log {}: {e}", cfg.audit_log.display())))
}

/// Runs a parsed command. Output for people goes to standard output.
pub fn run(inv: Invocation) -> Result<(), CliError> {
    let cfg = match (&inv.command, &inv.config) {
        (Command::Help, _) => {
            print!("{USAGE}");
            return Ok(());
        }
        (Command::Version, _) => {
            println!("bastion-keyserver {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        (_, Some(p)) => Config::load(p).map_err(failed)?,
        (_, None) => return Err(usage("--config FILE is required")),
    };
    match inv.command {
        Command::Init => {
            let pw = cfg.master_password().map_err(failed)?;
            let store = Store::create(&cfg.database, pw.as_bytes(), &cfg.argon2.kek())
                .map_err(|e| failed(format!("{}: {e}", cfg.database.display())))?;
            let mk = if cfg.role.serves_master() {
                Some(store.add_master_key().map_err(failed)?)
            } else {
                None
            };
            audit(
                &cfg,
                AuditEvent {
                    account: "cli",
                    operation: "init",
                    master_key_id: mk,
                    result: "ok",
                    ..Default::default()
                },
            )?;
            match mk {
                Some(id) => println!(
                    "initialised {} with master key {id}",
                    cfg.database.display()
                ),
                None => println!("initialised {}", cfg.database.display()),
            }
        }
        Command::UserAdd {
            name,
            permissions,
            clients,
            replace,
        } => {
            let store = open_store(&cfg)?;
            let pw = read_password_stdin()?;
            let account = Account {
                password_hash: hash_password(pw.as_bytes(), &cfg.argon2.password())
                    .map_err(failed)?,
                permissions,
                clients,
                created: unix_now(),
            };
            if !store.put_user(&name, &account, replace).map_err(failed)? {
                return Err(failed(format!("account {name} exists (use --replace)")));
            }
            audit(
                &cfg,
                AuditEvent {
                    account: "cli",
                    operation: "user.add",
                    subject: Some(&name),
                    result: "ok",
                    ..Default::default()
                },
            )?;
            let p: Vec<&str> = account.permissions.iter().map(|p| p.name()).collect();
            println!(
                "account {name}: permissions {}; clients {}",
                p.join(","),
                account.clients.patterns().join(",")
            );
        }
        Command::UserRemove { name } => {
            let store = open_store(&cfg)?;
            let existed = store.remove_user(&name).map_err(failed)?;
            audit(
                &cfg,
                AuditEvent {
                    account: "cli",
                    operation: "user.remove",
                    subject: Some(&name),
                    result: if existed { "ok" } else { "not_found" },
                    ..Default::default()
                },
            )?;
            if !existed {
                return Err(failed(format!("no account {name}")));
            }
            println!("removed account {name}");
        }
        Command::UserList => {
            let store = open_store(&cfg)?;
            for (name, a) in store.users().map_err(failed)? {
                let p: Vec<&str> = a.permissions.iter().map(|p| p.name()).collect();
                println!(
                    "{name}\t{}\t{}",
                    p.join(","),
                    a.clients.patterns().join(",")
                );
            }
        }
        Command::RotateMaster | Command::RotateData { .. } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(failed)?;
            let service = server::build_service(&cfg, rt.handle().clone()).map_err(failed)?;
            let (event, outcome) = match &inv.command {
                Command::RotateMaster => match service.rotate_master() {
                    Ok(id) => (
                        AuditEvent {
                            operation: "master.rotate",
                            master_key_id: Some(id),
                            result: "ok",
                            ..Default::default()
                        },
                        Ok(format!("master key {id} is now current")),
                    ),
                    Err(e) => (
                        AuditEvent {
                            operation: "master.rotate",
                            result: e.audit_result(),
                            ..Default::default()
                        },
                        Err(e),
                    ),
                },
                Command::RotateData { client } => match service.rotate_data(client) {
                    Ok(rec) => (
                        AuditEvent {
                            operation: "data.rotate",
                            client: Some(client),
                            version: Some(rec.id.version()),
                            master_key_id: Some(rec.master_key_id),
                            result: "created",
                            ..Default::default()
                        },
                        Ok(format!(
                            "data key {client} version {} (wrapped under master key {}) is now current",
                            rec.id.version(),
                            rec.master_key_id
                        )),
                    ),
                    Err(e) => (
                        AuditEvent {
                            operation: "data.rotate",
                            client: Some(client),
                            result: e.audit_result(),
                            ..Default::default()
                        },
                        Err(e),
                    ),
                },
                _ => unreachable!(),
            };
            service
                .audit(&AuditEvent {
                    account: "cli",
                    ..event
                })
                .map_err(|e| failed(format!("audit log: {e}")))?;
            println!("{}", outcome.map_err(|e| failed(e.message))?);
        }
        Command::Serve => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(failed)?;
            rt.block_on(server::run(cfg)).map_err(failed)?;
        }
        Command::Help | Command::Version => unreachable!(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses() {
        let i = parse(&args("init --config k.toml")).unwrap();
        assert_eq!(i.command, Command::Init);
        assert_eq!(i.config.unwrap(), PathBuf::from("k.toml"));
        let i = parse(&args("user add mod -c k.toml")).unwrap();
        match i.command {
            Command::UserAdd {
                permissions,
                clients,
                replace,
                ..
            } => {
                assert_eq!(permissions, role_permissions("module").unwrap());
                assert!(clients.allows("x"));
                assert!(!replace);
            }
            c => panic!("{c:?}"),
        }
        let i = parse(&args(
            "user add d --permissions master-wrap,data-read --clients a,b* --replace --config k",
        ))
        .unwrap();
        match i.command {
            Command::UserAdd {
                permissions,
                clients,
                replace,
                ..
            } => {
                assert_eq!(permissions.len(), 2);
                assert!(clients.allows("bz") && !clients.allows("c"));
                assert!(replace);
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            parse(&args("rotate data alice --config k"))
                .unwrap()
                .command,
            Command::RotateData {
                client: "alice".into()
            }
        );
        assert_eq!(
            parse(&args("rotate master --config k")).unwrap().command,
            Command::RotateMaster
        );
        assert_eq!(parse(&args("--help")).unwrap().command, Command::Help);
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "init",
            "serve --config",
            "user add --config k",
            "user add a --role god --config k",
            "user add a --permissions everything --config k",
            "rotate master --role admin --config k",
            "rotate data --config k",
            "frobnicate --config k",
            "init --password x --config k",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }
}
