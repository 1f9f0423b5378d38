//! The SQLite key store.
//!
//! Tables (schema version 1):
//!
//! | table | columns | sealed content |
//! |---|---|---|
//! | `meta` | `name`, `value` | none: KDF salt and costs, schema version, a check value |
//! | `master_keys` | `id`, `created`, `sealed` | the 64-byte master key |
//! | `data_keys` | `client`, `version`, `master_key_id`, `created`, `sealed` | the 48-byte wrapped data key |
//! | `users` | `name`, `created`, `sealed` | the [`Account`] as JSON |
//!
//! Every `sealed` value is AES-256-SIV under the KEK ([`Kek`]) with
//! associated data naming the row (`master`+id, `data`+client+version+master
//! key id, `user`+name), so rows cannot be swapped or edited. A data key is
//! thus encrypted twice at rest: wrapped under its master key (which the
//! data key server does not hold in a split deployment) and sealed under the
//! KEK. Opening a store derives the KEK from the master password and checks
//! it against the `check` value, so a wrong password fails at start.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bastion_seal::keys::{KeyId, MASTER_KEY_LEN, MasterKey, WRAPPED_KEY_LEN};
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::auth::Account;
use crate::crypto::{CryptoError, KdfParams, Kek, SALT_LEN};
use crate::util::unix_now;

const SCHEMA_VERSION: &str = "1";
const CHECK_PLAINTEXT: &[u8] = b"bastion-keyserver store check";

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `init` on a store that already exists.
    #[error("{0} is already initialised")]
    AlreadyInitialised(String),
    /// Opening a file that is not an initialised store.
    #[error("{0} is not an initialised key store (run `bastion-keyserver init`)")]
    NotInitialised(String),
    /// The master password does not open the store.
    #[error("wrong master password for this store")]
    WrongPassword,
    /// A sealed record did not open, or has the wrong size.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A record is malformed.
    #[error("damaged record: {0}")]
    Damaged(String),
    /// Key generation failed.
    #[error("key generation: {0}")]
    Key(#[from] bastion_seal::keys::KeyError),
}

/// A data key record: everything the module needs to unwrap it, given the
/// master key `master_key_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataKeyRecord {
    /// Client scope and version.
    pub id: KeyId,
    /// The id of the master key that wraps it.
    pub master_key_id: u32,
    /// The 48-byte AES-256-SIV wrapped data key (`wrap_data_key` output).
    pub wrapped: Vec<u8>,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// A master key with its metadata.
#[derive(Debug)]
pub struct MasterKeyRecord {
    /// Its id (1, 2, ...; the largest is current).
    pub id: u32,
    /// The key.
    pub key: MasterKey,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// An open, unlocked key store. Not `Sync`: share it behind a `Mutex`.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    kek: Kek,
}

fn master_ad(id: u32) -> [u8; 4] {
    id.to_be_bytes()
}

impl Store {
    fn connect(path: &Path) -> Result<Connection, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(conn)
    }

    /// Creates and initialises a new store at `path` (the file is created
    /// with mode 0600 and must not hold a store already), with a fresh
    /// random KDF salt.
    pub fn create(path: &Path, password: &[u8], kdf: &KdfParams) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Create {
                path: shown.clone(),
                source,
            })?;
        let conn = Self::connect(path)?;
        let exists: bool = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::AlreadyInitialised(shown));
        }
        let mut salt = [0u8; SALT_LEN];
        bastion_seal::keys::random_bytes(&mut salt)?;
        let kek = Kek::derive(password, &salt, kdf)?;
        let check = kek.seal(&[b"check"], CHECK_PLAINTEXT);
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE master_keys (id INTEGER PRIMARY KEY, created INTEGER NOT NULL,
                                       sealed BLOB NOT NULL);
             CREATE TABLE data_keys (client TEXT NOT NULL, version INTEGER NOT NULL,
                                     master_key_id INTEGER NOT NULL, created INTEGER NOT NULL,
                                     sealed BLOB NOT NULL, PRIMARY KEY (client, version));
             CREATE TABLE users (name TEXT PRIMARY KEY, created INTEGER NOT NULL,
                                 sealed BLOB NOT NULL);",
        )?;
        let meta: [(&str, Vec<u8>); 7] = [
            ("schema_version", SCHEMA_VERSION.as_bytes().to_vec()),
            ("kdf", b"argon2id-v19".to_vec()),
            ("kdf_salt", salt.to_vec()),
            ("kdf_memory_kib", kdf.memory_kib.to_string().into_bytes()),
            ("kdf_iterations", kdf.iterations.to_string().into_bytes()),
            ("kdf_parallelism", kdf.parallelism.to_string().into_bytes()),
            ("check", check),
        ];
        for (name, value) in meta {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)",
                params![name, value],
            )?;
        }
        tx.commit()?;
        Ok(Store { conn, kek })
    }

    /// Opens an initialised store and unlocks it with the master password.
    pub fn open(path: &Path, password: &[u8]) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::NotInitialised(shown));
        }
        let conn = Self::connect(path)?;
        let meta = |name: &str| -> Result<Vec<u8>, StoreError> {
            conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(..) => StoreError::NotInitialised(shown.clone()),
                e => StoreError::Sqlite(e),
            })?
            .ok_or_else(|| StoreError::NotInitialised(shown.clone()))
        };
        let num = |name: &str| -> Result<u32, StoreError> {
            String::from_utf8(meta(name)?)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Damaged(format!("meta {name}")))
        };
        if meta("schema_version")? != SCHEMA_VERSION.as_bytes() {
            return Err(StoreError::Damaged("unknown schema version".into()));
        }
        if meta("kdf")? != b"argon2id-v19" {
            return Err(StoreError::Damaged("unknown kdf".into()));
        }
        let kdf = KdfParams {
            memory_kib: num("kdf_memory_kib")?,
            iterations: num("kdf_iterations")?,
            parallelism: num("kdf_parallelism")?,
        };
        let salt = meta("kdf_salt")?;
        let check = meta("check")?;
        let kek = Kek::derive(password, &salt, &kdf)?;
        match kek.open(&[b"check"], &check, "check") {
            Ok(p) if &p[..] == CHECK_PLAINTEXT => {}
            _ => return Err(StoreError::WrongPassword),
        }
        Ok(Store { conn, kek })
    }

    // ---- master keys ----

    /// Generates a new master key with the next id (1 for the first) and
    /// stores it; it becomes current. Returns its id.
    pub fn add_master_key(&self) -> Result<u32, StoreError> {
        let key = MasterKey::generate()?;
        let tx = self.conn.unchecked_transaction()?;
        let id: u32 = tx.query_row(
            "SELECT COALESCE(MAX(id), 0) + 1 FROM master_keys",
            [],
            |r| r.get(0),
        )?;
        let sealed = self
            .kek
            .seal(&[b"master", &master_ad(id)], key.expose_secret());
        tx.execute(
            "INSERT INTO master_keys (id, created, sealed) VALUES (?1, ?2, ?3)",
            params![id, unix_now() as i64, sealed],
        )?;
        tx.commit()?;
        Ok(id)
    }

    fn master_row(
        &self,
        id: u32,
        created: i64,
        sealed: &[u8],
    ) -> Result<MasterKeyRecord, StoreError> {
        let plain = self.kek.open(
            &[b"master", &master_ad(id)],
            sealed,
            &format!("master key {id}"),
        )?;
        if plain.len() != MASTER_KEY_LEN {
            return Err(StoreError::Damaged(format!("master key {id} length")));
        }
        Ok(MasterKeyRecord {
            id,
            key: MasterKey::from_slice(&plain)?,
            created: created.max(0) as u64,
        })
    }

    /// The master key `id`, if any.
    pub fn master_key(&self, id: u32) -> Result<Option<MasterKeyRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT created, sealed FROM master_keys WHERE id = ?1",
                [id],
                |r| Ok((r.get::<_, i64>(0)?, Zeroizing::new(r.get::<_, Vec<u8>>(1)?))),
            )
            .optional()?;
        row.map(|(c, s)| self.master_row(id, c, &s)).transpose()
    }

    /// The current (newest) master key, if any.
    pub fn current_master_key(&self) -> Result<Option<MasterKeyRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, created, sealed FROM master_keys ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, i64>(1)?,
                        Zeroizing::new(r.get::<_, Vec<u8>>(2)?),
                    ))
                },
            )
            .optional()?;
        row.map(|(id, c, s)| self.master_row(id, c, &s)).transpose()
    }

    // ---- data keys ----

    fn data_ad(id: &KeyId, master_key_id: u32) -> [Vec<u8>; 4] {
        [
            b"data".to_vec(),
            id.client().as_bytes().to_vec(),
            id.version().to_be_bytes().to_vec(),
            master_key_id.to_be_bytes().to_vec(),
        ]
    }

    fn data_row(
        &self,
        client: &str,
        version: u32,
        master_key_id: u32,
        created: i64,
        sealed: &[u8],
    ) -> Result<DataKeyRecord, StoreError> {
        let id = KeyId::new(client, version)?;
        let ad = Self::data_ad(&id, master_key_id);
        let ad: Vec<&[u8]> = ad.iter().map(|v| &v[..]).collect();
        let wrapped = self.kek.open(&ad, sealed, &format!("data key {id}"))?;
        if wrapped.len() != WRAPPED_KEY_LEN {
            return Err(StoreError::Damaged(format!("data key {id} length")));
        }
        Ok(DataKeyRecord {
            id,
            master_key_id,
            wrapped: wrapped.to_vec(),
            created: created.max(0) as u64,
        })
    }

    /// The data key `client`/`version`, if any.
    pub fn data_key(
        &self,
        client: &str,
        version: u32,
    ) -> Result<Option<DataKeyRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT master_key_id, created, sealed FROM data_keys
                 WHERE client = ?1 AND version = ?2",
                params![client, version],
                |r| {
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(m, c, s)| self.data_row(client, version, m, c, &s))
            .transpose()
    }

    /// The newest data key of `client`, if any.
    pub fn latest_data_key(&self, client: &str) -> Result<Option<DataKeyRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT version, master_key_id, created, sealed FROM data_keys
                 WHERE client = ?1 ORDER BY version DESC LIMIT 1",
                [client],
                |r| {
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(v, m, c, s)| self.data_row(client, v, m, c, &s))
            .transpose()
    }

    /// Stores a data key record. Returns `false` (and stores nothing) if
    /// that client and version exist already.
    pub fn insert_data_key(&self, rec: &DataKeyRecord) -> Result<bool, StoreError> {
        if rec.wrapped.len() != WRAPPED_KEY_LEN {
            return Err(StoreError::Damaged("wrapped data key length".into()));
        }
        let ad = Self::data_ad(&rec.id, rec.master_key_id);
        let ad: Vec<&[u8]> = ad.iter().map(|v| &v[..]).collect();
        let sealed = self.kek.seal(&ad, &rec.wrapped);
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO data_keys (client, version, master_key_id, created, sealed)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                rec.id.client(),
                rec.id.version(),
                rec.master_key_id,
                rec.created as i64,
                sealed
            ],
        )?;
        Ok(n == 1)
    }

    // ---- users ----

    /// Stores an account. With `replace = false`, returns `false` if the
    /// name is taken.
    pub fn put_user(
        &self,
        name: &str,
        account: &Account,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let json = Zeroizing::new(
            serde_json::to_vec(account).map_err(|e| StoreError::Damaged(e.to_string()))?,
        );
        let sealed = self.kek.seal(&[b"user", name.as_bytes()], &json);
        let sql = if replace {
            "INSERT OR REPLACE INTO users (name, created, sealed) VALUES (?1, ?2, ?3)"
        } else {
            "INSERT OR IGNORE INTO users (name, created, sealed) VALUES (?1, ?2, ?3)"
        };
        let n = self
            .conn
            .execute(sql, params![name, account.created as i64, sealed])?;
        Ok(n == 1)
    }

    /// The account `name`, if any.
    pub fn user(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let sealed = self
            .conn
            .query_row("SELECT sealed FROM users WHERE name = ?1", [name], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let json = self.kek.open(
            &[b"user", name.as_bytes()],
            &sealed,
            &format!("user {name}"),
        )?;
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| StoreError::Damaged(format!("user {name}: {e}")))
    }

    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<(String, Account)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT name FROM users ORDER BY name")?;
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(a) = self.user(&n)? {
                out.push((n, a));
            }
        }
        Ok(out)
    }

    /// Removes an account. Returns whether it existed.
    pub fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM users WHERE name = ?1", [name])?
            == 1)
    }

    /// Replaces the KEK seal of one row by the raw bytes given (tests only:
    /// to simulate tampering).
    #[doc(hidden)]
    pub fn raw_execute(&self, sql: &str) -> Result<usize, StoreError> {
        Ok(self.conn.execute(sql, [])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ClientScopes, Permission};
    use bastion_seal::keys::{DataKey, unwrap_data_key, wrap_data_key};

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "bks-store-{}-{}-{}",
            name,
            std::process::id(),
            crate::util::unix_now_millis()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("keys.db")
    }

    #[test]
    fn create_open_and_wrong_password() {
        let p = tmp("open");
        {
            let s = Store::create(&p, b"pw", &FAST).unwrap();
            assert_eq!(s.add_master_key().unwrap(), 1);
        }
        assert!(matches!(
            Store::create(&p, b"pw", &FAST),
            Err(StoreError::AlreadyInitialised(_))
        ));
        assert!(matches!(
            Store::open(&p, b"nope"),
            Err(StoreError::WrongPassword)
        ));
        let s = Store::open(&p, b"pw").unwrap();
        assert_eq!(s.current_master_key().unwrap().unwrap().id, 1);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "store must not be group/world readable");
        let q = p.with_file_name("missing.db");
        assert!(matches!(
            Store::open(&q, b"pw"),
            Err(StoreError::NotInitialised(_))
        ));
    }

    #[test]
    fn master_keys_rotate_and_stay_sealed() {
        let p = tmp("master");
        let s = Store::create(&p, b"pw", &FAST).unwrap();
        assert!(s.current_master_key().unwrap().is_none());
        let a = s.add_master_key().unwrap();
        let b = s.add_master_key().unwrap();
        assert_eq!((a, b), (1, 2));
        let k1 = s.master_key(1).unwrap().unwrap();
        let cur = s.current_master_key().unwrap().unwrap();
        assert_eq!(cur.id, 2);
        assert_ne!(k1.key.expose_secret(), cur.key.expose_secret());
        assert!(s.master_key(3).unwrap().is_none());
        drop(s);
        // Raw key bytes never appear in the file.
        let file = std::fs::read(&p).unwrap();
        let s = Store::open(&p, b"pw").unwrap();
        let k1 = s.master_key(1).unwrap().unwrap();
        assert!(!file.windows(16).any(|w| w == &k1.key.expose_secret()[..16]));
        // Swapping sealed values between rows is detected.
        s.raw_execute("UPDATE master_keys SET sealed = (SELECT sealed FROM master_keys WHERE id = 2) WHERE id = 1")
            .unwrap();
        assert!(matches!(s.master_key(1), Err(StoreError::Crypto(_))));
    }

    #[test]
    fn data_keys_versions() {
        let p = tmp("data");
        let s = Store::create(&p, b"pw", &FAST).unwrap();
        let mid = s.add_master_key().unwrap();
        let mk = s.master_key(mid).unwrap().unwrap().key;
        assert!(s.latest_data_key("alice").unwrap().is_none());
        for v in 1..=2 {
            let id = KeyId::new("alice", v).unwrap();
            let dk = DataKey::generate().unwrap();
            let rec = DataKeyRecord {
                wrapped: wrap_data_key(&mk, &dk, &id),
                id,
                master_key_id: mid,
                created: 5,
            };
            assert!(s.insert_data_key(&rec).unwrap());
            assert!(!s.insert_data_key(&rec).unwrap(), "no overwrite");
        }
        let latest = s.latest_data_key("alice").unwrap().unwrap();
        assert_eq!(latest.id.version(), 2);
        let v1 = s.data_key("alice", 1).unwrap().unwrap();
        assert_eq!(v1.created, 5);
        assert!(unwrap_data_key(&mk, &v1.wrapped, &v1.id).is_ok());
        assert!(s.data_key("alice", 3).unwrap().is_none());
        assert!(s.data_key("bob", 1).unwrap().is_none());
        // Changing the master key id column breaks the seal.
        s.raw_execute("UPDATE data_keys SET master_key_id = 9 WHERE version = 1")
            .unwrap();
        assert!(s.data_key("alice", 1).is_err());
    }

    #[test]
    fn users_round_trip() {
        let p = tmp("users");
        let s = Store::create(&p, b"pw", &FAST).unwrap();
        let acct = Account {
            password_hash: "$argon2id$x".into(),
            permissions: [Permission::DataRead].into_iter().collect(),
            clients: ClientScopes::any(),
            created: 1,
        };
        assert!(s.put_user("mod", &acct, false).unwrap());
        assert!(!s.put_user("mod", &acct, false).unwrap());
        assert!(s.put_user("mod", &acct, true).unwrap());
        let back = s.user("mod").unwrap().unwrap();
        assert!(back.can(Permission::DataRead));
        assert!(!back.can(Permission::MasterRead));
        assert_eq!(s.users().unwrap().len(), 1);
        // A row copied under another name does not open.
        s.raw_execute("INSERT INTO users (name, created, sealed) SELECT 'evil', created, sealed FROM users WHERE name='mod'")
            .unwrap();
        assert!(s.user("evil").is_err());
        assert!(s.remove_user("mod").unwrap());
        assert!(s.user("mod").unwrap().is_none());
    }
}
