//! The envelope for keys at rest, and password hashing.
//!
//! * The **key-encryption key** (KEK) is 64 bytes derived from the master
//!   password with Argon2id and a random salt kept in the store
//!   ([`Kek::derive`]). It never leaves the process and is zeroized on drop.
//! * Every stored secret (master keys, wrapped data keys, account records)
//!   is **sealed** with AES-256-SIV (RFC 5297) under the KEK
//!   ([`Kek::seal`]); the associated data names the record (kind and id), so
//!   a sealed value moved to another row does not open.
//! * Account passwords are stored as Argon2id PHC strings
//!   ([`hash_password`], [`verify_password`]).

use std::fmt;

use aes_siv::aead::KeyInit;
use aes_siv::siv::Aes256Siv;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// Length of the key-encryption key: AES-256-SIV takes two 256-bit keys.
pub const KEK_LEN: usize = 64;
/// Length of the random Argon2id salt kept in the store.
pub const SALT_LEN: usize = 16;
/// First associated-data component of every sealed record.
pub const SEAL_LABEL: &[u8] = b"bastion-ks/v1";

/// Errors from the at-rest envelope and password hashing.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Argon2 rejected its parameters or inputs.
    #[error("argon2: {0}")]
    Argon2(String),
    /// A sealed record did not open: wrong master password, a record moved
    /// to another row, or a damaged database.
    #[error("cannot open sealed {0}: wrong master password or damaged store")]
    Open(String),
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl KdfParams {
    /// Default cost for deriving the KEK: 64 MiB, 3 passes, 1 lane (done
    /// once per process start).
    pub const KEK_DEFAULT: KdfParams = KdfParams {
        memory_kib: 65_536,
        iterations: 3,
        parallelism: 1,
    };
    /// Default cost for account password hashes: 19 MiB, 2 passes, 1 lane
    /// (OWASP's recommendation for Argon2id; done once per `/auth`).
    pub const PASSWORD_DEFAULT: KdfParams = KdfParams {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    fn argon2(&self, output_len: Option<usize>) -> Result<Argon2<'static>, CryptoError> {
        let params = Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            output_len,
        )
        .map_err(|e| CryptoError::Argon2(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The 64-byte key-encryption key. Zeroized on drop; `Debug` is redacted.
pub struct Kek(Zeroizing<[u8; KEK_LEN]>);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// Derives the KEK: `Argon2id(password, salt, params) -> 64 bytes`.
    pub fn derive(password: &[u8], salt: &[u8], params: &KdfParams) -> Result<Kek, CryptoError> {
        let mut out = Zeroizing::new([0u8; KEK_LEN]);
        params
            .argon2(Some(KEK_LEN))?
            .hash_password_into(password, salt, &mut out[..])
            .map_err(|e| CryptoError::Argon2(e.to_string()))?;
        Ok(Kek(out))
    }

    /// A KEK from raw bytes (tests).
    pub fn from_bytes(bytes: [u8; KEK_LEN]) -> Kek {
        Kek(Zeroizing::new(bytes))
    }

    fn siv(&self) -> Aes256Siv {
        Aes256Siv::new_from_slice(&self.0[..]).expect("64-byte AES-256-SIV key")
    }

    fn ad<'a>(ad: &[&'a [u8]]) -> Vec<&'a [u8]> {
        let mut v = Vec::with_capacity(ad.len() + 1);
        v.push(SEAL_LABEL);
        v.extend_from_slice(ad);
        v
    }

    /// Seals `plaintext` with AES-256-SIV; the associated data is
    /// `["bastion-ks/v1", ad...]`. The result is 16 bytes longer.
    pub fn seal(&self, ad: &[&[u8]], plaintext: &[u8]) -> Vec<u8> {
        self.siv()
            .encrypt(Self::ad(ad), plaintext)
            .expect("AES-SIV encryption with few AD components cannot fail")
    }

    /// Opens a value sealed by [`Kek::seal`] with the same associated data.
    /// `what` names the record in the error.
    pub fn open(
        &self,
        ad: &[&[u8]],
        sealed: &[u8],
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.siv()
            .decrypt(Self::ad(ad), sealed)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open(what.to_string()))
    }
}

/// Hashes an account password to an Argon2id PHC string
/// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) with a random salt.
pub fn hash_password(password: &[u8], params: &KdfParams) -> Result<String, CryptoError> {
    params
        .argon2(None)?
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| CryptoError::Argon2(e.to_string()))
}

/// Checks a password against a PHC string made by [`hash_password`]. The
/// cost parameters come from the string. `false` for a wrong password or a
/// malformed hash.
pub fn verify_password(password: &[u8], phc: &str) -> bool {
    Argon2::default().verify_password(password, phc).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn kek_is_deterministic_and_salted() {
        let a = Kek::derive(b"pw", b"0123456789abcdef", &FAST).unwrap();
        let b = Kek::derive(b"pw", b"0123456789abcdef", &FAST).unwrap();
        let c = Kek::derive(b"pw", b"0123456789abcdeX", &FAST).unwrap();
        let d = Kek::derive(b"pX", b"0123456789abcdef", &FAST).unwrap();
        assert_eq!(a.0[..], b.0[..]);
        assert_ne!(a.0[..], c.0[..]);
        assert_ne!(a.0[..], d.0[..]);
        assert_eq!(format!("{a:?}"), "Kek(<redacted>)");
    }

    #[test]
    fn seal_binds_associated_data() {
        let k = Kek::from_bytes([7; 64]);
        let s = k.seal(&[b"master", &1u32.to_be_bytes()], b"secret");
        assert_eq!(s.len(), 6 + 16);
        assert!(!s.windows(6).any(|w| w == b"secret"));
        let p = k.open(&[b"master", &1u32.to_be_bytes()], &s, "x").unwrap();
        assert_eq!(&p[..], b"secret");
        assert!(k.open(&[b"master", &2u32.to_be_bytes()], &s, "x").is_err());
        assert!(k.open(&[b"data", &1u32.to_be_bytes()], &s, "x").is_err());
        let other = Kek::from_bytes([8; 64]);
        assert!(
            other
                .open(&[b"master", &1u32.to_be_bytes()], &s, "x")
                .is_err()
        );
        let mut bad = s.clone();
        bad[0] ^= 1;
        assert!(
            k.open(&[b"master", &1u32.to_be_bytes()], &bad, "x")
                .is_err()
        );
    }

    #[test]
    fn password_hashes() {
        let h = hash_password(b"correct horse", &FAST).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_password(b"correct horse", &h));
        assert!(!verify_password(b"correct hors", &h));
        assert!(!verify_password(b"x", "not a hash"));
        assert_ne!(h, hash_password(b"correct horse", &FAST).unwrap());
    }
}
