//! Accounts, permissions and bearer tokens.
//!
//! An [`Account`] has an Argon2id password hash, a set of [`Permission`]s
//! and the client scopes it may touch ([`ClientScopes`]). It is stored
//! sealed under the KEK (see [`crate::store`]), so an account row cannot be
//! forged or edited without the master password.
//!
//! `POST /auth` trades a name and password for a random token that expires
//! after the configured lifetime ([`TokenStore`]). Tokens live in memory
//! only: a restart logs every client out, and clients re-authenticate on
//! `401`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// One thing an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// `GET /master/key[/<id>]`: receive master keys (the module).
    MasterRead,
    /// `POST /master/wrap`: have a data key generated and receive it only
    /// wrapped (a separate data key server).
    MasterWrap,
    /// `POST /master/rotate`.
    MasterRotate,
    /// `GET /data/key/<client>[/<version>]` for existing keys.
    DataRead,
    /// `GET /data/key/<client>` creates version 1 when the client has none.
    DataCreate,
    /// `POST /data/key/<client>/rotate`.
    DataRotate,
}

impl Permission {
    /// Every permission, in a fixed order.
    pub const ALL: [Permission; 6] = [
        Permission::MasterRead,
        Permission::MasterWrap,
        Permission::MasterRotate,
        Permission::DataRead,
        Permission::DataCreate,
        Permission::DataRotate,
    ];

    /// The name used in the CLI, the API and the docs, e.g. `master-read`.
    pub fn name(self) -> &'static str {
        match self {
            Permission::MasterRead => "master-read",
            Permission::MasterWrap => "master-wrap",
            Permission::MasterRotate => "master-rotate",
            Permission::DataRead => "data-read",
            Permission::DataCreate => "data-create",
            Permission::DataRotate => "data-rotate",
        }
    }

    /// Parses a permission name.
    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Named permission sets for `user add --role`.
pub fn role_permissions(role: &str) -> Option<BTreeSet<Permission>> {
    use Permission::*;
    let v: &[Permission] = match role {
        // What mod_bastion needs: master keys, and data keys created on demand.
        "module" => &[MasterRead, DataRead, DataCreate],
        // Reads keys, creates none (e.g. a decrypt-only host).
        "reader" => &[MasterRead, DataRead],
        // A data key server talking to a separate master key server.
        "data-server" => &[MasterWrap],
        // Operators: rotation through the API.
        "operator" => &[MasterRotate, DataRotate],
        "admin" => &Permission::ALL,
        _ => return None,
    };
    Some(v.iter().copied().collect())
}

/// The role names accepted by [`role_permissions`].
pub const ROLE_NAMES: &[&str] = &["module", "reader", "data-server", "operator", "admin"];

/// Which client scopes an account may touch: exact names, `prefix*`
/// patterns, or `*` for all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientScopes(Vec<String>);

impl ClientScopes {
    /// Every client.
    pub fn any() -> Self {
        ClientScopes(vec!["*".into()])
    }

    /// From a comma-separated list (`alice,tenant-*`). Empty entries are
    /// ignored; an empty list is refused.
    pub fn parse(list: &str) -> Option<Self> {
        let v: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        (!v.is_empty()).then_some(ClientScopes(v))
    }

    /// Whether `client` is covered.
    pub fn allows(&self, client: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => client.starts_with(prefix),
            None => p == client,
        })
    }

    /// The patterns.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

/// A stored account (without its name, which is the row key).
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    /// Argon2id PHC string.
    pub password_hash: String,
    /// What the account may do.
    pub permissions: BTreeSet<Permission>,
    /// Which clients it may touch.
    pub clients: ClientScopes,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("password_hash", &"<redacted>")
            .field("permissions", &self.permissions)
            .field("clients", &self.clients)
            .field("created", &self.created)
            .finish()
    }
}

impl Account {
    /// Whether the account has `p`.
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

/// A live session behind a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The account name.
    pub account: String,
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

/// In-memory bearer tokens with expiry.
#[derive(Debug)]
pub struct TokenStore {
    lifetime_ms: u64,
    max: usize,
    map: Mutex<HashMap<String, Session>>,
}

/// Errors from issuing tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Too many live tokens.
    #[error("too many live tokens")]
    Full,
    /// The random number generator failed.
    #[error("random number generator failed")]
    Random,
}

impl TokenStore {
    /// A store whose tokens live `lifetime_secs`, holding at most `max`.
    pub fn new(lifetime_secs: u64, max: usize) -> Self {
        TokenStore {
            lifetime_ms: lifetime_secs.saturating_mul(1000),
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a token for `account` at `now_ms`: 32 random bytes in
    /// unpadded base64url. Returns the token and its expiry.
    pub fn issue(&self, account: &str, now_ms: u64) -> Result<(String, u64), TokenError> {
        let mut raw = [0u8; 32];
        bastion_seal::keys::random_bytes(&mut raw).map_err(|_| TokenError::Random)?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let expires_ms = now_ms.saturating_add(self.lifetime_ms);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max {
            map.retain(|_, s| s.expires_ms > now_ms);
            if map.len() >= self.max {
                return Err(TokenError::Full);
            }
        }
        map.insert(
            token.clone(),
            Session {
                account: account.to_string(),
                expires_ms,
            },
        );
        Ok((token, expires_ms))
    }

    /// The session of a live token at `now_ms`; an expired one is removed.
    pub fn check(&self, token: &str, now_ms: u64) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(token) {
            Some(s) if s.expires_ms > now_ms => Some(s.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// Drops every token of `account` (after it was removed or changed).
    pub fn revoke_account(&self, account: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.account != account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.name()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
        assert_eq!(Permission::parse("root"), None);
        for r in ROLE_NAMES {
            assert!(role_permissions(r).is_some());
        }
        assert!(
            role_permissions("module")
                .unwrap()
                .contains(&Permission::DataCreate)
        );
        assert!(
            !role_permissions("module")
                .unwrap()
                .contains(&Permission::MasterRotate)
        );
    }

    #[test]
    fn scopes() {
        let s = ClientScopes::parse("alice, tenant-*").unwrap();
        assert!(s.allows("alice"));
        assert!(!s.allows("alice2"));
        assert!(s.allows("tenant-7"));
        assert!(!s.allows("bob"));
        assert!(ClientScopes::any().allows("anything"));
        assert!(ClientScopes::parse(" , ").is_none());
    }

    #[test]
    fn tokens_expire() {
        let t = TokenStore::new(10, 2);
        let (tok, exp) = t.issue("mod", 1_000).unwrap();
        assert_eq!(exp, 11_000);
        assert_eq!(t.check(&tok, 10_999).unwrap().account, "mod");
        assert!(t.check(&tok, 11_000).is_none());
        assert!(t.check(&tok, 5_000).is_none(), "expired tokens are removed");
        assert!(t.check("nope", 1_000).is_none());
        let (a, _) = t.issue("a", 0).unwrap();
        t.issue("b", 0).unwrap();
        assert!(matches!(t.issue("c", 1), Err(TokenError::Full)));
        // Expired ones make room.
        t.issue("c", 20_000).unwrap();
        assert_ne!(a.len(), 0);
        t.revoke_account("c");
        assert!(t.map.lock().unwrap().is_empty());
    }
}
