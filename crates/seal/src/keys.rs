//! Key material: data keys, master keys, per-object key derivation and
//! data-key wrapping.
//!
//! Hierarchy (see `docs/format.md`):
//! * a **master key** (64 bytes, AES-256-SIV) lives on the master key server;
//! * each client has versioned **data keys** (32 bytes), stored on the data key
//!   server wrapped under the master key with [`wrap_data_key`];
//! * each object gets a fresh **object key** and IV/nonce prefix derived from
//!   the data key and a random 32-byte salt with HKDF-SHA256
//!   ([`derive_object_keys`]).
//!
//! No type here prints key bytes in `Debug`, and all key buffers are zeroized
//! on drop.

use std::fmt;

use aes_siv::aead::KeyInit;
use aes_siv::siv::Aes256Siv;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of a data key in bytes (AES-256).
pub const DATA_KEY_LEN: usize = 32;
/// Length of a master key in bytes: AES-256-SIV (RFC 5297) takes two
/// 256-bit keys, one for S2V/CMAC and one for CTR.
pub const MASTER_KEY_LEN: usize = 64;
/// Length of a wrapped data key: 16-byte synthetic IV followed by the
/// 32-byte encrypted data key.
pub const WRAPPED_KEY_LEN: usize = 16 + DATA_KEY_LEN;
/// Longest client scope accepted in a [`KeyId`], in bytes.
pub const MAX_CLIENT_LEN: usize = 200;
/// HKDF `info` label that starts the per-object derivation.
pub const OBJECT_KEY_LABEL: &[u8] = b"menc2/obj";
/// First associated-data component of a data-key wrap.
pub const WRAP_LABEL: &[u8] = b"menc2/wrap";

/// Errors from key handling.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// A key had the wrong number of bytes.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength {
        /// Which key.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The client scope of a key id is empty, too long or has bytes outside
    /// visible ASCII.
    #[error("invalid client scope {0:?}: expected 1..=200 visible ASCII characters (0x21..=0x7e)")]
    BadClient(String),
    /// Unwrapping failed: wrong master key, wrong client or key version,
    /// or a damaged wrapped key.
    #[error("cannot unwrap data key for {0}: wrong master key, wrong key id, or damaged")]
    Unwrap(KeyId),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}

/// Fills `buf` with random bytes from the operating system.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|e| KeyError::Random(e.to_string()))
}

/// Identifies a data key: the client scope it belongs to and its version.
///
/// The client scope is 1..=200 bytes of visible ASCII (0x21..=0x7e), so it is
/// safe in a memcached key and in a log line.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId {
    client: String,
    version: u32,
}

impl KeyId {
    /// Validates a client scope and pairs it with a key version.
    pub fn new(client: impl Into<String>, version: u32) -> Result<Self, KeyError> {
        let client = client.into();
        if client.is_empty()
            || client.len() > MAX_CLIENT_LEN
            || !client.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(KeyError::BadClient(client));
        }
        Ok(Self { client, version })
    }

    /// The client scope.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The data key version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The memcached key under which the *wrapped* data key and its metadata
    /// are cached: `menc2:dk:<client>:<version>` (at most 221 bytes, within
    /// memcached's 250).
    pub fn memcached_key(&self) -> String {
        format!("menc2:dk:{}:{}", self.client, self.version)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#v{}", self.client, self.version)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A client's 32-byte data key. Zeroized on drop; `Debug` never prints it.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies a key from a slice, which must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; DATA_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::BadLength {
            what: "data key",
            expected: DATA_KEY_LEN,
            got: bytes.len(),
        })?;
        Ok(Self::from_bytes(arr))
    }

    /// Generates a fresh random data key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        random_bytes(&mut key[..])?;
        Ok(Self(key))
    }

    /// The key bytes. Handle with care: never log them.
    pub fn expose_secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A 64-byte AES-256-SIV master key. Zeroized on drop; `Debug` never prints it.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies a key from a slice, which must be exactly 64 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; MASTER_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::BadLength {
            what: "master key",
            expected: MASTER_KEY_LEN,
            got: bytes.len(),
        })?;
        Ok(Self::from_bytes(arr))
    }

    /// Generates a fresh random master key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        random_bytes(&mut key[..])?;
        Ok(Self(key))
    }

    /// The key bytes. Handle with care: never log them.
    pub fn expose_secret(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }

    fn siv(&self) -> Aes256Siv {
        // The length is fixed by the type, so this cannot fail.
        Aes256Siv::new_from_slice(&self.0[..]).expect("64-byte AES-256-SIV key")
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn wrap_ad(key_id: &KeyId) -> [Vec<u8>; 3] {
    [
        WRAP_LABEL.to_vec(),
        key_id.client.as_bytes().to_vec(),
        key_id.version.to_be_bytes().to_vec(),
    ]
}

/// Wraps a data key under a master key with AES-256-SIV (RFC 5297).
///
/// The associated data is the vector `["menc2/wrap", client, BE32(version)]`,
/// so a wrapped key only unwraps for the client and version it was made for.
/// The result is 48 bytes: the synthetic IV then the ciphertext.
/// Wrapping is deterministic (SIV needs no nonce).
pub fn wrap_data_key(master: &MasterKey, data_key: &DataKey, key_id: &KeyId) -> Vec<u8> {
    master
        .siv()
        .encrypt(wrap_ad(key_id), &data_key.0[..])
        .expect("AES-SIV encryption of 32 bytes with 3 AD components cannot fail")
}

/// Unwraps a data key wrapped by [`wrap_data_key`].
///
/// Fails with [`KeyError::Unwrap`] for a wrong master key, a wrong key id or
/// a damaged blob, and with [`KeyError::BadLength`] for a blob that is not
/// 48 bytes.
pub fn unwrap_data_key(
    master: &MasterKey,
    wrapped: &[u8],
    key_id: &KeyId,
) -> Result<DataKey, KeyError> {
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(KeyError::BadLength {
            what: "wrapped data key",
            expected: WRAPPED_KEY_LEN,
            got: wrapped.len(),
        });
    }
    let plain = Zeroizing::new(
        master
            .siv()
            .decrypt(wrap_ad(key_id), wrapped)
            .map_err(|_| KeyError::Unwrap(key_id.clone()))?,
    );
    DataKey::from_slice(&plain)
}

/// The per-object secrets derived from a data key and an object header.
pub struct ObjectKeys {
    key: Zeroizing<[u8; 32]>,
    iv: [u8; 16],
}

impl ObjectKeys {
    /// The AES-256 object key (HKDF output bytes 0..32).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// HKDF output bytes 32..48: the initial counter block for AES-256-CTR;
    /// its first 7 bytes are the segment nonce prefix for AES-256-GCM.
    pub fn iv(&self) -> &[u8; 16] {
        &self.iv
    }

    /// The 7-byte GCM segment nonce prefix (HKDF output bytes 32..39).
    pub fn nonce_prefix(&self) -> [u8; 7] {
        let mut p = [0u8; 7];
        p.copy_from_slice(&self.iv[..7]);
        p
    }
}

impl fmt::Debug for ObjectKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObjectKeys(<redacted>)")
    }
}

/// Derives the per-object key and IV:
/// `OKM = HKDF-SHA256(ikm = data key, salt, info = "menc2/obj" || header, L = 48)`.
///
/// `header` is the complete serialized object header (which contains `salt`).
pub fn derive_object_keys(data_key: &DataKey, salt: &[u8; 32], header: &[u8]) -> ObjectKeys {
    let hk = Hkdf::<Sha256>::new(Some(salt), &data_key.0[..]);
    let mut okm = Zeroizing::new([0u8; 48]);
    hk.expand_multi_info(&[OBJECT_KEY_LABEL, header], &mut okm[..])
        .expect("48 bytes is a valid HKDF-SHA256 output length");
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&okm[32..]);
    ObjectKeys { key, iv }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        let mut b = [0u8; 64];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        MasterKey::from_bytes(b)
    }

    fn dk() -> DataKey {
        DataKey::from_bytes([0x11; 32])
    }

    #[test]
    fn key_id_validation() {
        assert!(KeyId::new("alice", 1).is_ok());
        assert!(KeyId::new("", 1).is_err());
        assert!(KeyId::new("a b", 1).is_err());
        assert!(KeyId::new("a\nb", 1).is_err());
        assert!(KeyId::new("é", 1).is_err());
        assert!(KeyId::new("x".repeat(200), 1).is_ok());
        assert!(KeyId::new("x".repeat(201), 1).is_err());
        let id = KeyId::new("tenant-7", 42).unwrap();
        assert_eq!(id.memcached_key(), "menc2:dk:tenant-7:42");
        assert_eq!(id.to_string(), "tenant-7#v42");
    }

    #[test]
    fn debug_never_prints_bytes() {
        let s = format!("{:?} {:?}", dk(), master());
        assert!(!s.contains("17"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn wrap_round_trip_and_failures() {
        let id = KeyId::new("alice", 3).unwrap();
        let w = wrap_data_key(&master(), &dk(), &id);
        assert_eq!(w.len(), WRAPPED_KEY_LEN);
        let back = unwrap_data_key(&master(), &w, &id).unwrap();
        assert_eq!(back.expose_secret(), dk().expose_secret());

        let other_master = MasterKey::from_bytes([9; 64]);
        assert_eq!(
            unwrap_data_key(&other_master, &w, &id).unwrap_err(),
            KeyError::Unwrap(id.clone())
        );
        let other_client = KeyId::new("bob", 3).unwrap();
        assert!(unwrap_data_key(&master(), &w, &other_client).is_err());
        let other_version = KeyId::new("alice", 4).unwrap();
        assert!(unwrap_data_key(&master(), &w, &other_version).is_err());
        let mut bad = w.clone();
        bad[20] ^= 1;
        assert!(unwrap_data_key(&master(), &bad, &id).is_err());
        assert!(matches!(
            unwrap_data_key(&master(), &w[..47], &id),
            Err(KeyError::BadLength { .. })
        ));
    }

    /// Test vector for docs/format.md (checked independently with Python's
    /// `cryptography` AESSIV).
    #[test]
    fn wrap_vector() {
        let id = KeyId::new("alice", 1).unwrap();
        let w = wrap_data_key(&master(), &dk(), &id);
        assert_eq!(hex(&w), WRAP_VECTOR);
    }

    pub(crate) const WRAP_VECTOR: &str = "343ca43f53390d480e007053dd4119cdab8dfd8db6b42f7cecb2eb0b9521178d05d2b653cea778c459ae0bbe2fa6f4e2";

    pub(crate) fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn lengths_checked() {
        assert!(DataKey::from_slice(&[0; 31]).is_err());
        assert!(MasterKey::from_slice(&[0; 32]).is_err());
        assert!(DataKey::generate().is_ok());
        assert_ne!(
            DataKey::generate().unwrap().expose_secret(),
            DataKey::generate().unwrap().expose_secret()
        );
    }

    #[test]
    fn derivation_depends_on_salt_and_header() {
        let a = derive_object_keys(&dk(), &[1; 32], b"h");
        let b = derive_object_keys(&dk(), &[2; 32], b"h");
        let c = derive_object_keys(&dk(), &[1; 32], b"g");
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        assert_ne!(a.iv(), b.iv());
        assert_eq!(&a.nonce_prefix()[..], &a.iv()[..7]);
    }
}
