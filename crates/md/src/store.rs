//! mod_md's on-disk store: layout, atomic writes, permissions, private keys
//! encrypted at rest, staging → domains promotion and the archive.
//!
//! ```text
//! md_store.json                      {"store":{"version":3},"key":"<base64url 48 bytes>"}   0600
//! accounts/ACME-<host>-NNNN/         account.json, account.pem (encrypted)
//! domains/<md>/                      md.json, privkey[.spec].pem (plain), pubcert[.spec].pem  0700/0600
//! staging/<md>/                      md.json, job.json, order.json, privkey*.pem (encrypted), pubcert*.pem
//! challenges/<dns>/                  acme-http-01.txt, acme-tls-alpn-01[.spec].{cert,key}.pem
//! archive/<md>.<n>/                  earlier domains/<md>
//! tmp/<md>/                          used while promoting
//! ocsp/                              reserved for stapling
//! ```
//!
//! Every write goes to a temporary file in the target directory, is fsynced, renamed
//! over the target, and the directory is fsynced: a `kill -9` leaves either the old
//! or the new file, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use crate::model::{KeySpec, ManagedDomain};

/// The store format version written to `md_store.json` (mod_md's current one).
pub const STORE_VERSION: u32 = 3;
const ENC_LABEL: &str = "BASTION ENCRYPTED PRIVATE KEY";
const ENC_INFO: &[u8] = b"bastion-md private key v1";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON file could not be read or written.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// An encrypted key could not be decrypted (wrong or lost `md_store.json`).
    #[error("{0}: cannot decrypt private key (was md_store.json replaced?)")]
    Decrypt(PathBuf),
    /// A name that would escape its directory.
    #[error("invalid store name \"{0}\"")]
    BadName(String),
    /// Staging is missing files needed for promotion.
    #[error("staging/{name} is incomplete: missing {missing}")]
    Incomplete {
        /// The MD.
        name: String,
        /// The missing file.
        missing: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A top-level directory of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `accounts/`: ACME accounts (keys encrypted).
    Accounts,
    /// `domains/`: active certificates and keys (plain, root only).
    Domains,
    /// `staging/`: results of a running or finished order (keys encrypted).
    Staging,
    /// `challenges/`: challenge answers, read by every child.
    Challenges,
    /// `archive/`: earlier `domains/<md>` directories.
    Archive,
    /// `tmp/`: scratch space for promotion.
    Tmp,
    /// `ocsp/`: stapling data.
    Ocsp,
}

impl Group {
    /// All groups.
    pub const ALL: [Group; 7] = [
        Group::Accounts,
        Group::Domains,
        Group::Staging,
        Group::Challenges,
        Group::Archive,
        Group::Tmp,
        Group::Ocsp,
    ];

    /// The directory name.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Domains => "domains",
            Self::Staging => "staging",
            Self::Challenges => "challenges",
            Self::Archive => "archive",
            Self::Tmp => "tmp",
            Self::Ocsp => "ocsp",
        }
    }

    /// Private keys in these groups are stored in plain PEM (as mod_md does).
    pub fn keys_plain(self) -> bool {
        matches!(
            self,
            Self::Domains | Self::Challenges | Self::Tmp | Self::Archive
        )
    }

    fn dir_mode(self) -> u32 {
        match self {
            Self::Domains | Self::Archive | Self::Tmp => 0o700,
            _ => 0o755,
        }
    }

    fn file_mode(self) -> u32 {
        match self {
            Self::Domains | Self::Archive | Self::Tmp => 0o600,
            _ => 0o644,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoreMeta {
    store: StoreVersion,
    key: String,
}

#[derive(Serialize, Deserialize)]
struct StoreVersion {
    version: u32,
}

/// An opened store rooted at a base directory.
pub struct Store {
    base: PathBuf,
    seed: Zeroizing<Vec<u8>>,
    key: LessSafeKey,
    /// Public files read ahead by a privileged process for processes that may not read
    /// them (httpd children and `domains/`, which is root-only): see [`Store::preload`].
    preloaded: std::collections::HashMap<PathBuf, Vec<u8>>,
}

/// A second handle on the same store, with the key already in memory (for a child process
/// that may not read `md_store.json` itself).
impl Clone for Store {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            seed: self.seed.clone(),
            key: derive_key(&self.seed).expect("key derived once already"),
            preloaded: self.preloaded.clone(),
        }
    }
}

fn derive_key(seed: &[u8]) -> Option<LessSafeKey> {
    let salt = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, b"bastion-md");
    let prk = salt.extract(seed);
    let okm = prk.expand(&[ENC_INFO], &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("base", &self.base).finish()
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.starts_with('.')
    {
        return Err(StoreError::BadName(name.to_string()));
    }
    Ok(())
}

/// Creates `dir` (and parents) with `mode` if missing.
fn ensure_dir(dir: &Path, mode: u32) -> Result<(), StoreError> {
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(io("chmod", dir))?;
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

/// Writes `data` to `path` atomically with `mode`: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::BadName(path.display().to_string()))?;
    let fname = path.file_name().and_then(|f| f.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        ".{fname}.tmp.{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        f.write_all(data).map_err(io("write", &tmp))?;
        // The umask may have narrowed the mode given at creation; make it exact.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("chmod", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename", path))?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl Store {
    /// Opens the store at `base`, creating the layout and `md_store.json` (with a fresh
    /// 48-byte key) when missing. Run this in the parent before the children start.
    pub fn open(base: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let base = base.into();
        ensure_dir(&base, 0o755)?;
        for g in Group::ALL {
            ensure_dir(&base.join(g.dir_name()), g.dir_mode())?;
        }
        let meta_path = base.join("md_store.json");
        let key_bytes: Zeroizing<Vec<u8>> = match fs::read(&meta_path) {
            Ok(bytes) => {
                let meta: StoreMeta =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
                        path: meta_path.clone(),
                        source,
                    })?;
                Zeroizing::new(
                    URL_SAFE_NO_PAD
                        .decode(meta.key.trim_end_matches('='))
                        .map_err(|_| StoreError::Decrypt(meta_path.clone()))?,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = Zeroizing::new(vec![0u8; 48]);
                aws_lc_rs::rand::fill(&mut k)
                    .map_err(|_| StoreError::Decrypt(meta_path.clone()))?;
                let meta = StoreMeta {
                    store: StoreVersion {
                        version: STORE_VERSION,
                    },
                    key: URL_SAFE_NO_PAD.encode(&*k),
                };
                let json = Zeroizing::new(serde_json::to_vec_pretty(&meta).unwrap_or_default());
                write_atomic(&meta_path, &json, 0o600)?;
                k
            }
            Err(e) => return Err(io("read", &meta_path)(e)),
        };
        let key = derive_key(&key_bytes).ok_or_else(|| StoreError::Decrypt(meta_path.clone()))?;
        Ok(Self {
            base,
            seed: key_bytes,
            key,
            preloaded: Default::default(),
        })
    }

    /// The store's root directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The directory of a group.
    pub fn group_dir(&self, g: Group) -> PathBuf {
        self.base.join(g.dir_name())
    }

    /// `<group>/<name>/`.
    pub fn dir(&self, g: Group, name: &str) -> Result<PathBuf, StoreError> {
        check_name(name)?;
        Ok(self.group_dir(g).join(name))
    }

    /// `<group>/<name>/<file>`.
    pub fn path(&self, g: Group, name: &str, file: &str) -> Result<PathBuf, StoreError> {
        check_name(file)?;
        Ok(self.dir(g, name)?.join(file))
    }

    /// Directories the httpd `User` must own (the glue chowns them as root): the
    /// watchdog child writes staging, challenges, ocsp and (new) accounts there.
    pub fn worker_owned_dirs(&self) -> Vec<PathBuf> {
        [
            Group::Staging,
            Group::Challenges,
            Group::Ocsp,
            Group::Accounts,
        ]
        .iter()
        .map(|g| self.group_dir(*g))
        .collect()
    }

    /// Writes a file atomically with the group's permissions.
    pub fn write(&self, g: Group, name: &str, file: &str, data: &[u8]) -> Result<(), StoreError> {
        let dir = self.dir(g, name)?;
        ensure_dir(&dir, g.dir_mode())?;
        write_atomic(&dir.join(file), data, g.file_mode())
    }

    /// Reads a file; `None` when it does not exist.
    pub fn read(&self, g: Group, name: &str, file: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let p = self.path(g, name, file)?;
        if let Some(b) = self.preloaded.get(&p) {
            return Ok(Some(b.clone()));
        }
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    /// True if the file exists.
    pub fn exists(&self, g: Group, name: &str, file: &str) -> bool {
        self.path(g, name, file)
            .map(|p| self.preloaded.contains_key(&p) || p.is_file())
            .unwrap_or(false)
    }

    /// Reads a public file (a certificate, `md.json`) now and answers later reads of it
    /// from memory: the parent preloads what the children (which may not read `domains/`)
    /// show in status pages. Never use it for keys.
    pub fn preload(&mut self, g: Group, name: &str, file: &str) -> Result<(), StoreError> {
        let p = self.path(g, name, file)?;
        match fs::read(&p) {
            Ok(b) => {
                self.preloaded.insert(p, b);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    /// Removes a file if present.
    pub fn remove(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError> {
        let p = self.path(g, name, file)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &p)(e)),
        }
    }

    /// Renames `from` to `to` inside one MD's directory of a group (atomic; the directory
    /// is synced).
    pub fn rename(&self, g: Group, name: &str, from: &str, to: &str) -> Result<(), StoreError> {
        let a = self.path(g, name, from)?;
        let b = self.path(g, name, to)?;
        fs::rename(&a, &b).map_err(io("rename", &a))?;
        fsync_dir(&self.dir(g, name)?)
    }

    /// Writes a value as pretty JSON.
    pub fn write_json<T: Serialize>(
        &self,
        g: Group,
        name: &str,
        file: &str,
        v: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(v).map_err(|source| StoreError::Json {
            path: PathBuf::from(file),
            source,
        })?;
        self.write(g, name, file, &bytes)
    }

    /// Reads a JSON file; `None` when it does not exist.
    pub fn read_json<T: DeserializeOwned>(
        &self,
        g: Group,
        name: &str,
        file: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.read(g, name, file)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| StoreError::Json {
                    path: self.path(g, name, file).unwrap_or_default(),
                    source,
                }),
        }
    }

    /// Saves an MD's `md.json`.
    pub fn save_md(&self, g: Group, md: &ManagedDomain) -> Result<(), StoreError> {
        self.write_json(g, &md.name, "md.json", md)
    }

    /// Loads an MD's `md.json`.
    pub fn load_md(&self, g: Group, name: &str) -> Result<Option<ManagedDomain>, StoreError> {
        self.read_json(g, name, "md.json")
    }

    /// Names (subdirectories) in a group.
    pub fn list(&self, g: Group) -> Result<Vec<String>, StoreError> {
        let dir = self.group_dir(g);
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io("list", &dir))? {
            let e = e.map_err(io("list", &dir))?;
            if e.path().is_dir()
                && let Some(n) = e.file_name().to_str()
                && !n.starts_with('.')
            {
                out.push(n.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes `<group>/<name>/` and everything in it.
    pub fn purge(&self, g: Group, name: &str) -> Result<(), StoreError> {
        let dir = self.dir(g, name)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => fsync_dir(&self.group_dir(g)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &dir)(e)),
        }
    }

    /// Saves a private key PEM: encrypted (AES-256-GCM under the store key) unless the
    /// group keeps keys plain; always mode 0600.
    pub fn save_key(&self, g: Group, name: &str, file: &str, pem: &str) -> Result<(), StoreError> {
        let dir = self.dir(g, name)?;
        ensure_dir(&dir, g.dir_mode())?;
        let data = if g.keys_plain() {
            Zeroizing::new(pem.as_bytes().to_vec())
        } else {
            self.encrypt(pem.as_bytes())?
        };
        write_atomic(&dir.join(file), &data, 0o600)
    }

    /// Loads a private key PEM saved by [`Store::save_key`] (either form).
    pub fn load_key(
        &self,
        g: Group,
        name: &str,
        file: &str,
    ) -> Result<Option<Zeroizing<String>>, StoreError> {
        let Some(data) = self.read(g, name, file)?.map(Zeroizing::new) else {
            return Ok(None);
        };
        let path = self.path(g, name, file)?;
        let text = std::str::from_utf8(&data).map_err(|_| StoreError::Decrypt(path.clone()))?;
        if text.contains(ENC_LABEL) {
            let plain = self
                .decrypt(text)
                .ok_or(StoreError::Decrypt(path.clone()))?;
            let s = String::from_utf8(plain.to_vec()).map_err(|_| StoreError::Decrypt(path))?;
            Ok(Some(Zeroizing::new(s)))
        } else {
            Ok(Some(Zeroizing::new(text.to_string())))
        }
    }

    fn encrypt(&self, plain: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| StoreError::Decrypt(self.base.clone()))?;
        let mut buf = Zeroizing::new(plain.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ENC_INFO),
                &mut *buf,
            )
            .map_err(|_| StoreError::Decrypt(self.base.clone()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&buf);
        let b64 = STANDARD.encode(&blob);
        let mut pem = format!("-----BEGIN {ENC_LABEL}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {ENC_LABEL}-----\n"));
        Ok(Zeroizing::new(pem.into_bytes()))
    }

    fn decrypt(&self, pem: &str) -> Option<Zeroizing<Vec<u8>>> {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let blob = STANDARD.decode(body.trim()).ok()?;
        if blob.len() < NONCE_LEN + 16 {
            return None;
        }
        let (n, ct) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(ENC_INFO), &mut buf)
            .ok()?
            .len();
        buf.truncate(plain);
        Some(buf)
    }

    /// True if `staging/<name>` holds a key and a certificate for every spec of `md`.
    pub fn staging_complete(&self, md: &ManagedDomain) -> Result<(), StoreError> {
        for spec in &md.pkeys {
            for f in [privkey_file(spec), pubcert_file(spec)] {
                if !self.exists(Group::Staging, &md.name, &f) {
                    return Err(StoreError::Incomplete {
                        name: md.name.clone(),
                        missing: f,
                    });
                }
            }
        }
        Ok(())
    }

    /// Promotes a complete `staging/<name>` into `domains/<name>` as mod_md's parent
    /// does at (re)start: staging is copied to `tmp/<name>` with keys decrypted, the
    /// current `domains/<name>` moves to `archive/<name>.<n>`, `tmp/<name>` is renamed
    /// to `domains/<name>`, then staging and the MD's challenges are purged.
    /// Returns `false` when there is nothing complete to promote.
    pub fn promote_staging(&self, name: &str) -> Result<bool, StoreError> {
        let Some(md) = self.load_md(Group::Staging, name)? else {
            return Ok(false);
        };
        if self.staging_complete(&md).is_err() {
            return Ok(false);
        }
        self.purge(Group::Tmp, name)?;
        let sdir = self.dir(Group::Staging, name)?;
        ensure_dir(&self.dir(Group::Tmp, name)?, Group::Tmp.dir_mode())?;
        for e in fs::read_dir(&sdir).map_err(io("list", &sdir))? {
            let e = e.map_err(io("list", &sdir))?;
            let Some(f) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if f.starts_with('.')
                || f.starts_with(NEXT_PREFIX)
                || f == "job.json"
                || f == "order.json"
                || !e.path().is_file()
            {
                continue;
            }
            if f.starts_with("privkey") {
                if let Some(k) = self.load_key(Group::Staging, name, &f)? {
                    self.save_key(Group::Tmp, name, &f, &k)?;
                }
            } else if let Some(b) = self.read(Group::Staging, name, &f)? {
                self.write(Group::Tmp, name, &f, &b)?;
            }
        }
        let ddir = self.dir(Group::Domains, name)?;
        if ddir.exists() {
            let mut n = 0u32;
            let arch = loop {
                let cand = self.dir(Group::Archive, &format!("{name}.{n}"))?;
                if !cand.exists() {
                    break cand;
                }
                n += 1;
            };
            fs::rename(&ddir, &arch).map_err(io("archive", &ddir))?;
            fsync_dir(&self.group_dir(Group::Archive))?;
        }
        let tdir = self.dir(Group::Tmp, name)?;
        fs::rename(&tdir, &ddir).map_err(io("activate", &tdir))?;
        fs::set_permissions(&ddir, fs::Permissions::from_mode(Group::Domains.dir_mode()))
            .map_err(io("chmod", &ddir))?;
        fsync_dir(&self.group_dir(Group::Domains))?;
        self.purge(Group::Staging, name)?;
        for d in &md.domains {
            self.purge(Group::Challenges, d)?;
        }
        Ok(true)
    }
}

/// `privkey.pem` for RSA, `privkey.<spec>.pem` otherwise.
pub fn privkey_file(spec: &KeySpec) -> String {
    format!("privkey{}.pem", spec.file_suffix())
}

/// `pubcert.pem` for RSA, `pubcert.<spec>.pem` otherwise (leaf + chain).
pub fn pubcert_file(spec: &KeySpec) -> String {
    format!("pubcert{}.pem", spec.file_suffix())
}

/// The prefix of the files an order in progress writes in `staging/<md>/` (its key and, once
/// issued, its certificate): a complete staged set from an earlier renewal keeps its plain
/// names, and is served and promoted, until the new order has its whole set.
pub const NEXT_PREFIX: &str = "next-";

/// `next-<file>`: where an order in progress keeps `file`.
pub fn next_file(file: &str) -> String {
    format!("{NEXT_PREFIX}{file}")
}

/// The http-01 answer file in `challenges/<dns>/`.
pub const HTTP01_FILE: &str = "acme-http-01.txt";

/// The tls-alpn-01 certificate (PEM) in `challenges/<dns>/`.
pub const TLS_ALPN01_CERT_FILE: &str = "acme-tls-alpn-01.cert.pem";
/// The tls-alpn-01 private key (PEM, plain) in `challenges/<dns>/`.
pub const TLS_ALPN01_KEY_FILE: &str = "acme-tls-alpn-01.key.pem";

/// One entry of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogEntry {
    /// When (RFC 822 GMT).
    pub when: String,
    /// Event type (`progress`, `error`, `renewed`...).
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened.
    pub detail: String,
}

/// The last result of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLast {
    /// 0 on success, otherwise an error code.
    pub status: i32,
    /// ACME problem type, if the CA sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What was being done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
}

/// The log of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLog {
    /// Newest first, at most 128.
    pub entries: Vec<JobLogEntry>,
}

/// A renewal job's state as `staging/<md>/job.json` (mod_md's `md_job_t` fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Job {
    /// The MD.
    pub name: String,
    /// New certificates are staged.
    #[serde(default)]
    pub finished: bool,
    /// The glue reported the renewal.
    #[serde(default)]
    pub notified: bool,
    /// The glue reported `renewed`.
    #[serde(default)]
    pub notified_renewed: bool,
    /// When to run next (RFC 822 GMT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// When it last ran (RFC 822 GMT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// notBefore of the staged certificate (RFC 822 GMT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// Consecutive errors.
    #[serde(default)]
    pub errors: u32,
    /// The last result.
    #[serde(default)]
    pub last: JobLast,
    /// Log entries.
    #[serde(default)]
    pub log: JobLog,
}

impl Job {
    /// Adds a log entry (newest first, at most 128).
    pub fn log(&mut self, now: SystemTime, kind: &str, detail: impl Into<String>) {
        self.log.entries.insert(
            0,
            JobLogEntry {
                when: http_date(now),
                kind: kind.into(),
                detail: detail.into(),
            },
        );
        self.log.entries.truncate(128);
    }

    /// `next-run` as a time.
    pub fn next_run_time(&self) -> Option<SystemTime> {
        self.next_run.as_deref().and_then(parse_http_date)
    }
}

/// IMF-fixdate as mod_md writes times in job.json (`Sun, 06 Nov 1994 08:49:37 GMT`).
const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Formats a time as RFC 822/IMF-fixdate GMT (`Sun, 06 Nov 1994 08:49:37 GMT`), as
/// mod_md writes times in job.json.
pub fn http_date(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(HTTP_DATE)
        .unwrap_or_default()
}

/// Parses what [`http_date`] writes.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let t = time::PrimitiveDateTime::parse(s.trim(), HTTP_DATE).ok()?;
    Some(t.assume_utc().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bastion-md-{tag}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn layout_and_meta() {
        let base = tempdir("layout");
        let s = Store::open(&base).unwrap();
        for g in Group::ALL {
            assert!(base.join(g.dir_name()).is_dir());
        }
        assert_eq!(mode(&base.join("md_store.json")), 0o600);
        assert_eq!(mode(&base.join("domains")), 0o700);
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(base.join("md_store.json")).unwrap()).unwrap();
        assert_eq!(meta["store"]["version"], 3);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(meta["key"].as_str().unwrap())
                .unwrap()
                .len(),
            48
        );
        assert_eq!(s.worker_owned_dirs().len(), 4);
        assert!(s.path(Group::Domains, "../x", "f").is_err());
        assert!(s.path(Group::Domains, "x", "a/b").is_err());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn keys_encrypted_outside_domains() {
        let base = tempdir("keys");
        let s = Store::open(&base).unwrap();
        let pem = "-----BEGIN PRIVATE KEY-----\nMAAA\n-----END PRIVATE KEY-----\n";
        s.save_key(Group::Staging, "a.example", "privkey.pem", pem)
            .unwrap();
        let raw = fs::read_to_string(base.join("staging/a.example/privkey.pem")).unwrap();
        assert!(raw.contains(ENC_LABEL) && !raw.contains("MAAA"));
        assert_eq!(mode(&base.join("staging/a.example/privkey.pem")), 0o600);
        assert_eq!(
            s.load_key(Group::Staging, "a.example", "privkey.pem")
                .unwrap()
                .unwrap()
                .as_str(),
            pem
        );
        // The same store key after reopening.
        let s2 = Store::open(&base).unwrap();
        assert!(
            s2.load_key(Group::Staging, "a.example", "privkey.pem")
                .unwrap()
                .is_some()
        );
        s.save_key(Group::Domains, "a.example", "privkey.pem", pem)
            .unwrap();
        assert_eq!(
            fs::read_to_string(base.join("domains/a.example/privkey.pem")).unwrap(),
            pem
        );
        // A different store key cannot decrypt.
        fs::remove_file(base.join("md_store.json")).unwrap();
        let s3 = Store::open(&base).unwrap();
        assert!(matches!(
            s3.load_key(Group::Staging, "a.example", "privkey.pem"),
            Err(StoreError::Decrypt(_))
        ));
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let base = tempdir("atomic");
        let s = Store::open(&base).unwrap();
        for i in 0..5 {
            s.write(
                Group::Challenges,
                "x.example",
                HTTP01_FILE,
                format!("v{i}").as_bytes(),
            )
            .unwrap();
        }
        let names: Vec<_> = fs::read_dir(base.join("challenges/x.example"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        assert_eq!(
            s.read(Group::Challenges, "x.example", HTTP01_FILE)
                .unwrap()
                .unwrap(),
            b"v4"
        );
        assert!(
            s.read(Group::Challenges, "x.example", "none")
                .unwrap()
                .is_none()
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn promote_and_archive() {
        let base = tempdir("promote");
        let s = Store::open(&base).unwrap();
        let mut md = ManagedDomain::new("p.example", &["www.p.example"]).unwrap();
        md.pkeys = vec![KeySpec::Rsa(2048), KeySpec::P256];
        assert!(!s.promote_staging("p.example").unwrap());
        s.save_md(Group::Staging, &md).unwrap();
        s.save_key(Group::Staging, "p.example", "privkey.pem", "KEY1")
            .unwrap();
        s.write(Group::Staging, "p.example", "pubcert.pem", b"CERT1")
            .unwrap();
        s.save_key(Group::Staging, "p.example", "privkey.secp256r1.pem", "KEY2")
            .unwrap();
        // Incomplete: the EC certificate is missing.
        assert!(!s.promote_staging("p.example").unwrap());
        s.write(
            Group::Staging,
            "p.example",
            "pubcert.secp256r1.pem",
            b"CERT2",
        )
        .unwrap();
        s.write_json(Group::Staging, "p.example", "job.json", &Job::default())
            .unwrap();
        s.write(Group::Challenges, "www.p.example", HTTP01_FILE, b"x")
            .unwrap();
        assert!(s.promote_staging("p.example").unwrap());
        let d = base.join("domains/p.example");
        assert_eq!(fs::read_to_string(d.join("privkey.pem")).unwrap(), "KEY1");
        assert_eq!(
            fs::read_to_string(d.join("privkey.secp256r1.pem")).unwrap(),
            "KEY2"
        );
        assert_eq!(mode(&d.join("privkey.pem")), 0o600);
        assert_eq!(mode(&d), 0o700);
        assert!(!d.join("job.json").exists());
        assert!(!base.join("staging/p.example").exists());
        assert!(!base.join("challenges/www.p.example").exists());
        // A second round archives the first.
        s.save_md(Group::Staging, &md).unwrap();
        for (k, c) in [
            ("privkey.pem", "pubcert.pem"),
            ("privkey.secp256r1.pem", "pubcert.secp256r1.pem"),
        ] {
            s.save_key(Group::Staging, "p.example", k, "NEW").unwrap();
            s.write(Group::Staging, "p.example", c, b"NEWCERT").unwrap();
        }
        assert!(s.promote_staging("p.example").unwrap());
        assert_eq!(
            fs::read_to_string(base.join("archive/p.example.0/pubcert.pem")).unwrap(),
            "CERT1"
        );
        assert_eq!(
            fs::read_to_string(d.join("pubcert.pem")).unwrap(),
            "NEWCERT"
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn dates() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        let t2 = UNIX_EPOCH + Duration::from_secs(1_709_251_200); // 2024-03-01
        assert_eq!(parse_http_date(&http_date(t2)), Some(t2));
        assert!(http_date(t2).starts_with("Fri, 01 Mar 2024"));
        let mut j = Job::default();
        for i in 0..200 {
            j.log(t, "progress", format!("{i}"));
        }
        assert_eq!(j.log.entries.len(), 128);
        assert_eq!(j.log.entries[0].detail, "199");
    }
}
