//! The MENC v2 object header and the length arithmetic of object bodies.
//!
//! Layout (all integers big-endian; `docs/format.md` is normative):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4  | magic `"MENC"` |
//! | 4  | 1  | version, `2` |
//! | 5  | 1  | cipher: `1` AES-256-CTR, `2` AES-256-GCM segmented |
//! | 6  | 1  | seg_log2: `0` for CTR; 12..=20 for GCM (writers use 16) |
//! | 7  | 1  | flags, `0` |
//! | 8  | 2  | header_len = 47 + L |
//! | 10 | 4  | key version |
//! | 14 | 32 | HKDF salt |
//! | 46 | 1  | L, length of the client scope (1..=200) |
//! | 47 | L  | client scope, visible ASCII |

use std::fmt;

use crate::keys::{KeyError, KeyId, MAX_CLIENT_LEN, random_bytes};

/// The four magic bytes that start every object.
pub const MAGIC: [u8; 4] = *b"MENC";
/// The format version this crate reads and writes.
pub const VERSION: u8 = 2;
/// Length of the fixed part of the header (everything but the client scope).
pub const FIXED_HEADER_LEN: usize = 47;
/// Longest possible header.
pub const MAX_HEADER_LEN: usize = FIXED_HEADER_LEN + MAX_CLIENT_LEN;
/// Length of the HKDF salt.
pub const SALT_LEN: usize = 32;
/// GCM tag length, appended to every segment.
pub const TAG_LEN: usize = 16;
/// Default (and written) GCM segment size exponent: 64 KiB.
pub const DEFAULT_SEG_LOG2: u8 = 16;
/// Smallest accepted GCM segment size exponent (4 KiB).
pub const MIN_SEG_LOG2: u8 = 12;
/// Largest accepted GCM segment size exponent (1 MiB), which bounds the
/// decryptor's buffer.
pub const MAX_SEG_LOG2: u8 = 20;

/// Errors from header parsing and length arithmetic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// The object does not start with `MENC`.
    #[error("not a MENC object (bad magic)")]
    BadMagic,
    /// The version byte is not 2.
    #[error("unsupported MENC version {0}")]
    UnsupportedVersion(u8),
    /// The cipher byte is unknown.
    #[error("unknown cipher id {0}")]
    UnknownCipher(u8),
    /// The segment size exponent does not fit the cipher.
    #[error("invalid segment size exponent {seg_log2} for {cipher}")]
    BadSegmentSize {
        /// The cipher of the header.
        cipher: CipherSuite,
        /// The exponent found.
        seg_log2: u8,
    },
    /// Reserved flag bits are set.
    #[error("unsupported header flags {0:#04x}")]
    UnsupportedFlags(u8),
    /// `header_len` disagrees with the client scope length.
    #[error("header length field {field} does not match computed length {computed}")]
    HeaderLength {
        /// The value of the header_len field.
        field: u16,
        /// 47 + client scope length.
        computed: usize,
    },
    /// The client scope is invalid.
    #[error("invalid key id in header: {0}")]
    KeyId(#[from] KeyError),
    /// The input ended inside the header.
    #[error("object truncated inside the header ({got} of {need} bytes)")]
    Truncated {
        /// Bytes available.
        got: usize,
        /// Bytes needed (at least).
        need: usize,
    },
    /// A body length is impossible for this header (for instance a GCM body
    /// whose last segment is shorter than a tag).
    #[error("invalid ciphertext length {0} for this object")]
    BadLength(u64),
    /// A length computation overflowed.
    #[error("length overflow")]
    Overflow,
}

/// The body cipher of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// AES-256-CTR, 128-bit big-endian counter; body length = plaintext length.
    /// Confidentiality only: no integrity.
    Aes256Ctr,
    /// AES-256-GCM over segments of 2^seg_log2 plaintext bytes, each with a
    /// 16-byte tag and a final-segment flag in its nonce.
    Aes256Gcm,
}

impl CipherSuite {
    /// The cipher id byte in the header.
    pub fn id(self) -> u8 {
        match self {
            CipherSuite::Aes256Ctr => 1,
            CipherSuite::Aes256Gcm => 2,
        }
    }

    /// The suite for a cipher id byte.
    pub fn from_id(id: u8) -> Result<Self, FormatError> {
        match id {
            1 => Ok(CipherSuite::Aes256Ctr),
            2 => Ok(CipherSuite::Aes256Gcm),
            other => Err(FormatError::UnknownCipher(other)),
        }
    }

    /// Parses a configuration name: `aes-256-ctr` or `aes-256-gcm`
    /// (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "aes-256-ctr" => Some(CipherSuite::Aes256Ctr),
            "aes-256-gcm" => Some(CipherSuite::Aes256Gcm),
            _ => None,
        }
    }

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            CipherSuite::Aes256Ctr => "aes-256-ctr",
            CipherSuite::Aes256Gcm => "aes-256-gcm",
        }
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed or freshly made object header.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    cipher: CipherSuite,
    seg_log2: u8,
    key_id: KeyId,
    salt: [u8; SALT_LEN],
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("cipher", &self.cipher)
            .field("seg_log2", &self.seg_log2)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Header {
    /// A header for a new object with a random salt and the default segment
    /// size.
    pub fn new(cipher: CipherSuite, key_id: KeyId) -> Result<Self, KeyError> {
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        Ok(Self::with_salt(cipher, key_id, salt))
    }

    /// A header with a given salt (for test vectors; production code uses
    /// [`Header::new`]: a salt must never be reused under one data key).
    pub fn with_salt(cipher: CipherSuite, key_id: KeyId, salt: [u8; SALT_LEN]) -> Self {
        let seg_log2 = match cipher {
            CipherSuite::Aes256Ctr => 0,
            CipherSuite::Aes256Gcm => DEFAULT_SEG_LOG2,
        };
        Self {
            cipher,
            seg_log2,
            key_id,
            salt,
        }
    }

    /// The body cipher.
    pub fn cipher(&self) -> CipherSuite {
        self.cipher
    }

    /// Which data key encrypts this object.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The HKDF salt.
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// GCM plaintext segment size in bytes (0 for CTR).
    pub fn segment_size(&self) -> usize {
        match self.cipher {
            CipherSuite::Aes256Ctr => 0,
            CipherSuite::Aes256Gcm => 1usize << self.seg_log2,
        }
    }

    /// Length of the serialized header: 47 + client scope length.
    pub fn len(&self) -> usize {
        FIXED_HEADER_LEN + self.key_id.client().len()
    }

    /// Always false: a header has at least 48 bytes. (Present for the
    /// `len`/`is_empty` convention.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Serializes the header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let client = self.key_id.client().as_bytes();
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.cipher.id());
        out.push(self.seg_log2);
        out.push(0);
        out.extend_from_slice(&(self.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.key_id.version().to_be_bytes());
        out.extend_from_slice(&self.salt);
        out.push(client.len() as u8);
        out.extend_from_slice(client);
        debug_assert_eq!(out.len(), self.len());
        out
    }

    /// Parses a header at the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` is a valid but incomplete prefix (read
    /// more), `Ok(Some((header, header_len)))` when complete. Errors are
    /// reported as early as the offending byte is seen.
    pub fn parse_prefix(buf: &[u8]) -> Result<Option<(Header, usize)>, FormatError> {
        let n = buf.len().min(4);
        if buf[..n] != MAGIC[..n] {
            return Err(FormatError::BadMagic);
        }
        if buf.len() > 4 && buf[4] != VERSION {
            return Err(FormatError::UnsupportedVersion(buf[4]));
        }
        if buf.len() < 8 {
            return Ok(None);
        }
        let cipher = CipherSuite::from_id(buf[5])?;
        let seg_log2 = buf[6];
        let seg_ok = match cipher {
            CipherSuite::Aes256Ctr => seg_log2 == 0,
            CipherSuite::Aes256Gcm => (MIN_SEG_LOG2..=MAX_SEG_LOG2).contains(&seg_log2),
        };
        if !seg_ok {
            return Err(FormatError::BadSegmentSize { cipher, seg_log2 });
        }
        if buf[7] != 0 {
            return Err(FormatError::UnsupportedFlags(buf[7]));
        }
        if buf.len() < FIXED_HEADER_LEN {
            return Ok(None);
        }
        let field = u16::from_be_bytes([buf[8], buf[9]]);
        let client_len = buf[46] as usize;
        let computed = FIXED_HEADER_LEN + client_len;
        if field as usize != computed || client_len == 0 || client_len > MAX_CLIENT_LEN {
            return Err(FormatError::HeaderLength { field, computed });
        }
        if buf.len() < computed {
            return Ok(None);
        }
        let version = u32::from_be_bytes([buf[10], buf[11], buf[12], buf[13]]);
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&buf[14..46]);
        let client = &buf[FIXED_HEADER_LEN..computed];
        // KeyId::new checks visible ASCII, so from_utf8_lossy never alters it.
        let key_id = KeyId::new(String::from_utf8_lossy(client).into_owned(), version)?;
        Ok(Some((
            Header {
                cipher,
                seg_log2,
                key_id,
                salt,
            },
            computed,
        )))
    }

    /// Parses a header that must be complete in `buf`; returns it and its
    /// length (the offset of the body).
    pub fn parse(buf: &[u8]) -> Result<(Header, usize), FormatError> {
        Self::parse_prefix(buf)?.ok_or(FormatError::Truncated {
            got: buf.len(),
            need: if buf.len() < FIXED_HEADER_LEN {
                FIXED_HEADER_LEN + 1
            } else {
                FIXED_HEADER_LEN + buf[46] as usize
            },
        })
    }

    /// Number of GCM segments for a plaintext length: `max(1, ceil(P / S))`
    /// (1 for CTR, which has no segments).
    pub fn segment_count(&self, plaintext_len: u64) -> u64 {
        match self.cipher {
            CipherSuite::Aes256Ctr => 1,
            CipherSuite::Aes256Gcm => plaintext_len.div_ceil(self.segment_size() as u64).max(1),
        }
    }

    /// Length of the body (after the header) for a plaintext length.
    /// CTR: `P`. GCM: `P + 16 * max(1, ceil(P / S))`.
    pub fn body_len(&self, plaintext_len: u64) -> Result<u64, FormatError> {
        match self.cipher {
            CipherSuite::Aes256Ctr => Ok(plaintext_len),
            CipherSuite::Aes256Gcm => self
                .segment_count(plaintext_len)
                .checked_mul(TAG_LEN as u64)
                .and_then(|t| t.checked_add(plaintext_len))
                .ok_or(FormatError::Overflow),
        }
    }

    /// Total object length (header + body) for a plaintext length, for
    /// `Content-Length` on the way to the application.
    pub fn object_len(&self, plaintext_len: u64) -> Result<u64, FormatError> {
        self.body_len(plaintext_len)?
            .checked_add(self.len() as u64)
            .ok_or(FormatError::Overflow)
    }

    /// Plaintext length of an object of `object_len` bytes (header
    /// included), for `Content-Length` on the way to the client.
    pub fn plaintext_len(&self, object_len: u64) -> Result<u64, FormatError> {
        let body = object_len
            .checked_sub(self.len() as u64)
            .ok_or(FormatError::BadLength(object_len))?;
        match self.cipher {
            CipherSuite::Aes256Ctr => Ok(body),
            CipherSuite::Aes256Gcm => {
                let seg_ct = (self.segment_size() + TAG_LEN) as u64;
                let n = body.div_ceil(seg_ct);
                let last = body - (n.saturating_sub(1)) * seg_ct;
                if n == 0 || last < TAG_LEN as u64 || n > u64::from(u32::MAX) + 1 {
                    return Err(FormatError::BadLength(object_len));
                }
                Ok(body - n * TAG_LEN as u64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(cipher: CipherSuite) -> Header {
        Header::with_salt(cipher, KeyId::new("alice", 7).unwrap(), [0xab; 32])
    }

    #[test]
    fn round_trip() {
        for c in [CipherSuite::Aes256Ctr, CipherSuite::Aes256Gcm] {
            let h = hdr(c);
            let b = h.to_bytes();
            assert_eq!(b.len(), 52);
            assert_eq!(&b[..4], b"MENC");
            let (p, n) = Header::parse(&b).unwrap();
            assert_eq!(p, h);
            assert_eq!(n, 52);
            // with trailing body bytes
            let mut more = b.clone();
            more.extend_from_slice(b"body");
            assert_eq!(Header::parse(&more).unwrap().1, 52);
        }
    }

    #[test]
    fn incremental_prefixes() {
        let b = hdr(CipherSuite::Aes256Gcm).to_bytes();
        for i in 0..b.len() {
            assert_eq!(Header::parse_prefix(&b[..i]).unwrap(), None, "prefix {i}");
            assert!(matches!(
                Header::parse(&b[..i]),
                Err(FormatError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn strict_errors() {
        let good = hdr(CipherSuite::Aes256Gcm).to_bytes();
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            Header::parse(&b).unwrap_err()
        };
        assert_eq!(Header::parse(b"MENX").unwrap_err(), FormatError::BadMagic);
        assert_eq!(
            Header::parse_prefix(b"X").unwrap_err(),
            FormatError::BadMagic
        );
        assert_eq!(with(4, 1), FormatError::UnsupportedVersion(1));
        assert_eq!(with(5, 3), FormatError::UnknownCipher(3));
        assert!(matches!(with(6, 11), FormatError::BadSegmentSize { .. }));
        assert!(matches!(with(6, 21), FormatError::BadSegmentSize { .. }));
        assert!(matches!(with(5, 1), FormatError::BadSegmentSize { .. }));
        assert_eq!(with(7, 1), FormatError::UnsupportedFlags(1));
        assert!(matches!(with(9, 99), FormatError::HeaderLength { .. }));
        assert!(matches!(with(46, 6), FormatError::HeaderLength { .. }));
        assert!(matches!(with(47, b' '), FormatError::KeyId(_)));
        assert!(matches!(with(47, 0xff), FormatError::KeyId(_)));
        // zero-length client
        let mut b = good[..47].to_vec();
        b[46] = 0;
        b[8..10].copy_from_slice(&47u16.to_be_bytes());
        assert!(matches!(
            Header::parse(&b).unwrap_err(),
            FormatError::HeaderLength { .. }
        ));
        // a GCM header with another accepted segment size parses
        let mut b = good.clone();
        b[6] = 12;
        assert_eq!(Header::parse(&b).unwrap().0.segment_size(), 4096);
    }

    #[test]
    fn lengths() {
        let g = hdr(CipherSuite::Aes256Gcm);
        let s = 65536u64;
        for (p, body) in [
            (0, 16),
            (1, 17),
            (s - 1, s + 15),
            (s, s + 16),
            (s + 1, s + 1 + 32),
            (3 * s, 3 * s + 48),
        ] {
            assert_eq!(g.body_len(p).unwrap(), body, "p={p}");
            let obj = g.object_len(p).unwrap();
            assert_eq!(obj, body + 52);
            assert_eq!(g.plaintext_len(obj).unwrap(), p);
        }
        // impossible lengths: body shorter than a tag, or a last segment < 16
        assert!(g.plaintext_len(52 + 15).is_err());
        assert!(g.plaintext_len(52 + s + 16 + 5).is_err());
        assert!(g.plaintext_len(10).is_err());
        let c = hdr(CipherSuite::Aes256Ctr);
        assert_eq!(c.object_len(100).unwrap(), 152);
        assert_eq!(c.plaintext_len(152).unwrap(), 100);
    }

    #[test]
    fn cipher_names() {
        assert_eq!(
            CipherSuite::from_name("AES-256-GCM"),
            Some(CipherSuite::Aes256Gcm)
        );
        assert_eq!(CipherSuite::from_name("aes-128-ctr"), None);
        assert_eq!(CipherSuite::Aes256Ctr.to_string(), "aes-256-ctr");
    }
}
