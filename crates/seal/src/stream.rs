//! Streaming encryption and decryption of MENC v2 objects with bounded memory.
//!
//! Both directions are push-based: feed input with `push`/`push_into` as it
//! arrives, send the returned bytes on, and call `finish` at the end of input.
//! Memory held between calls is at most one segment (64 KiB + 16 bytes) for
//! GCM and nothing for CTR; the output of one call is about the size of its
//! input.
//!
//! * [`Encryptor`] writes the header first, then the body.
//! * [`Decryptor`] takes a parsed [`Header`] (use [`HeaderReader`] to collect
//!   it from a stream, then look up the data key it names) and decrypts the
//!   body. For GCM it releases a segment's plaintext only after its tag has
//!   verified, and detects tampering, truncation, reordering and trailing
//!   data.
//! * [`RangePlan`] maps a plaintext byte range to the object byte range to
//!   fetch, and [`Decryptor::ranged`] decrypts exactly that.

use std::ops::Range;

use aes::Aes256;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

use crate::format::{CipherSuite, FormatError, Header, TAG_LEN};
use crate::keys::{DataKey, KeyError, KeyId, derive_object_keys};

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// Largest number of GCM segments in one object (the index is 32 bits).
pub const MAX_SEGMENTS: u64 = 1 << 32;

/// Errors from the streaming encryptor and decryptor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    /// A header or length problem.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A key problem (for instance the random number generator failed).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A GCM segment failed authentication: tampered, reordered, or
    /// encrypted under another key.
    #[error("segment {segment} of object under {key_id} failed authentication")]
    Authentication {
        /// Index of the failing segment.
        segment: u64,
        /// The key the object names.
        key_id: KeyId,
    },
    /// The object ended before its final segment.
    #[error("object under {key_id} truncated after {segments} segments (no final segment)")]
    Truncated {
        /// Segments verified before the end of input.
        segments: u64,
        /// The key the object names.
        key_id: KeyId,
    },
    /// Bytes follow the final segment (or the end of the requested range).
    #[error("unexpected data after segment {segment} of object under {key_id}")]
    TrailingData {
        /// Index of the last legitimate segment.
        segment: u64,
        /// The key the object names.
        key_id: KeyId,
    },
    /// The plaintext is too long for 2^32 segments.
    #[error("plaintext too long for one object")]
    TooManySegments,
    /// A requested plaintext range is empty or beyond the end.
    #[error("invalid plaintext range {start}..{end} for a plaintext of {len} bytes")]
    BadRange {
        /// Start of the range.
        start: u64,
        /// End (exclusive).
        end: u64,
        /// Plaintext length.
        len: u64,
    },
    /// A previous error already failed this stream.
    #[error("stream already failed")]
    Poisoned,
}

fn segment_nonce(prefix: &[u8; 7], index: u64, last: bool) -> Nonce<Aes256Gcm> {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&(index as u32).to_be_bytes());
    n[11] = u8::from(last);
    n.into()
}

/// The keyed state shared by both GCM directions.
struct GcmKeys {
    cipher: Aes256Gcm,
    prefix: [u8; 7],
    aad: Vec<u8>,
}

impl GcmKeys {
    fn new(data_key: &DataKey, header: &Header, header_bytes: Vec<u8>) -> Self {
        let ok = derive_object_keys(data_key, header.salt(), &header_bytes);
        Self {
            cipher: Aes256Gcm::new_from_slice(ok.key()).expect("32-byte key"),
            prefix: ok.nonce_prefix(),
            aad: header_bytes,
        }
    }

    /// Appends `plain` sealed as segment `index` (ciphertext then tag) to `out`.
    fn seal(&self, index: u64, last: bool, plain: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &segment_nonce(&self.prefix, index, last),
                &self.aad,
                (&mut out[start..]).into(),
            )
            .expect("segment within GCM limits");
        out.extend_from_slice(&tag);
    }

    /// Opens `seg` (ciphertext then tag) in place; on success the first
    /// `seg.len() - 16` bytes are plaintext. On failure `seg` is unchanged.
    fn open(&self, index: u64, last: bool, seg: &mut [u8]) -> bool {
        let (ct, tag) = seg.split_at_mut(seg.len() - TAG_LEN);
        let tag = Tag::<Aes256Gcm>::try_from(&*tag).expect("16-byte tag");
        self.cipher
            .decrypt_inout_detached(
                &segment_nonce(&self.prefix, index, last),
                &self.aad,
                ct.into(),
                &tag,
            )
            .is_ok()
    }
}

fn ctr_cipher(data_key: &DataKey, header: &Header, header_bytes: &[u8]) -> Box<Aes256Ctr> {
    let ok = derive_object_keys(data_key, header.salt(), header_bytes);
    Box::new(Aes256Ctr::new_from_slices(ok.key(), ok.iv()).expect("32-byte key, 16-byte IV"))
}

enum EncInner {
    Ctr(Box<Aes256Ctr>),
    Gcm {
        keys: Box<GcmKeys>,
        seg: usize,
        buf: Vec<u8>,
        index: u64,
    },
}

/// Streaming encryptor: header first, then the body.
pub struct Encryptor {
    header: Header,
    header_bytes: Option<Vec<u8>>,
    inner: EncInner,
    plaintext_len: u64,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("header", &self.header)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Starts a new object under `key_id` with a fresh random salt.
    pub fn new(
        data_key: &DataKey,
        key_id: KeyId,
        cipher: CipherSuite,
    ) -> Result<Self, StreamError> {
        Ok(Self::with_header(data_key, Header::new(cipher, key_id)?))
    }

    /// Starts an object with a given header. Production code uses
    /// [`Encryptor::new`]; a header (salt) must never be reused under one
    /// data key.
    pub fn with_header(data_key: &DataKey, header: Header) -> Self {
        let header_bytes = header.to_bytes();
        let inner = match header.cipher() {
            CipherSuite::Aes256Ctr => EncInner::Ctr(ctr_cipher(data_key, &header, &header_bytes)),
            CipherSuite::Aes256Gcm => EncInner::Gcm {
                keys: Box::new(GcmKeys::new(data_key, &header, header_bytes.clone())),
                seg: header.segment_size(),
                buf: Vec::with_capacity(header.segment_size()),
                index: 0,
            },
        };
        Self {
            header,
            header_bytes: Some(header_bytes),
            inner,
            plaintext_len: 0,
        }
    }

    /// The object header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Encrypts `input`, appending ready output to `out` (the header is
    /// emitted by the first call).
    pub fn push_into(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if let Some(h) = self.header_bytes.take() {
            out.extend_from_slice(&h);
        }
        self.plaintext_len += input.len() as u64;
        match &mut self.inner {
            EncInner::Ctr(c) => {
                let start = out.len();
                out.extend_from_slice(input);
                c.apply_keystream(&mut out[start..]);
            }
            EncInner::Gcm {
                keys,
                seg,
                buf,
                index,
            } => loop {
                // A full buffer is sealed as non-final only once more input
                // proves that it is not the last segment.
                if buf.len() == *seg && !input.is_empty() {
                    check_index(*index)?;
                    keys.seal(*index, false, buf, out);
                    *index += 1;
                    buf.clear();
                }
                if input.is_empty() {
                    break;
                }
                if buf.is_empty() && input.len() > *seg {
                    check_index(*index)?;
                    keys.seal(*index, false, &input[..*seg], out);
                    *index += 1;
                    input = &input[*seg..];
                    continue;
                }
                let take = (*seg - buf.len()).min(input.len());
                buf.extend_from_slice(&input[..take]);
                input = &input[take..];
            },
        }
        Ok(())
    }

    /// Encrypts `input` and returns the ready output.
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::with_capacity(input.len() + TAG_LEN + 256);
        self.push_into(input, &mut out)?;
        Ok(out)
    }

    /// Ends the object: returns the trailing bytes (for GCM the final
    /// segment; for an empty CTR object, the header alone).
    pub fn finish(mut self) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        if let Some(h) = self.header_bytes.take() {
            out.extend_from_slice(&h);
        }
        if let EncInner::Gcm {
            keys, buf, index, ..
        } = &self.inner
        {
            check_index(*index)?;
            keys.seal(*index, true, buf, &mut out);
        }
        Ok(out)
    }
}

fn check_index(index: u64) -> Result<(), StreamError> {
    if index >= MAX_SEGMENTS {
        Err(StreamError::TooManySegments)
    } else {
        Ok(())
    }
}

/// Collects an object header from the start of a stream.
#[derive(Debug, Default)]
pub struct HeaderReader {
    buf: Vec<u8>,
}

impl HeaderReader {
    /// A reader with nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes. Returns `Ok(None)` until the header is complete, then the
    /// header and the body bytes that followed it in `input`. Fails as soon
    /// as the bytes cannot start a valid header. Holds at most 247 bytes.
    pub fn push(&mut self, input: &[u8]) -> Result<Option<(Header, Vec<u8>)>, FormatError> {
        let room = crate::format::MAX_HEADER_LEN.saturating_sub(self.buf.len());
        let take = room.min(input.len());
        self.buf.extend_from_slice(&input[..take]);
        match Header::parse_prefix(&self.buf)? {
            None => Ok(None),
            Some((h, n)) => {
                let mut rest = self.buf.split_off(n);
                rest.extend_from_slice(&input[take..]);
                self.buf.clear();
                Ok(Some((h, rest)))
            }
        }
    }

    /// Bytes buffered so far (for an error message at end of input).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Which plaintext bytes a ranged read yields and which object bytes it
/// needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    /// The bytes of the stored object to fetch (half-open, offsets from the
    /// start of the object, header included). For an HTTP `Range` header use
    /// `bytes={start}-{end - 1}`.
    pub object_range: Range<u64>,
    /// The plaintext bytes the plan yields (half-open).
    pub plaintext_range: Range<u64>,
    first_segment: u64,
    last_segment: u64,
    last_is_final: bool,
    skip: u64,
}

impl RangePlan {
    /// Plans the read of `plaintext` (half-open, non-empty, within the
    /// plaintext) from an object of `object_len` bytes with this header.
    ///
    /// CTR: exactly the same bytes shifted by the header length. GCM: the
    /// whole segments that cover the range.
    pub fn new(
        header: &Header,
        object_len: u64,
        plaintext: Range<u64>,
    ) -> Result<Self, StreamError> {
        let p = header.plaintext_len(object_len)?;
        if plaintext.start >= plaintext.end || plaintext.end > p {
            return Err(StreamError::BadRange {
                start: plaintext.start,
                end: plaintext.end,
                len: p,
            });
        }
        let h = header.len() as u64;
        match header.cipher() {
            CipherSuite::Aes256Ctr => Ok(Self {
                object_range: h + plaintext.start..h + plaintext.end,
                plaintext_range: plaintext,
                first_segment: 0,
                last_segment: 0,
                last_is_final: true,
                skip: 0,
            }),
            CipherSuite::Aes256Gcm => {
                let s = header.segment_size() as u64;
                let seg_ct = s + TAG_LEN as u64;
                let first = plaintext.start / s;
                let last = (plaintext.end - 1) / s;
                let n = header.segment_count(p);
                Ok(Self {
                    object_range: h + first * seg_ct..(h + (last + 1) * seg_ct).min(object_len),
                    skip: plaintext.start - first * s,
                    plaintext_range: plaintext,
                    first_segment: first,
                    last_segment: last,
                    last_is_final: last + 1 == n,
                })
            }
        }
    }

    /// Number of plaintext bytes the plan yields.
    pub fn len(&self) -> u64 {
        self.plaintext_range.end - self.plaintext_range.start
    }

    /// Always false: plans are never empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum DecInner {
    Ctr(Box<Aes256Ctr>),
    Gcm {
        keys: Box<GcmKeys>,
        seg_ct: usize,
        buf: Vec<u8>,
        index: u64,
        /// For ranged reads: the last segment to read and whether it is the
        /// object's final one. `None`: read to the end, finality from the
        /// end of input.
        end: Option<(u64, bool)>,
        /// Plaintext bytes still to drop at the front.
        skip: u64,
    },
}

/// Streaming decryptor for the body of an object.
pub struct Decryptor {
    key_id: KeyId,
    inner: DecInner,
    /// Plaintext bytes still to release (ranged reads).
    remaining: Option<u64>,
    failed: bool,
    done: bool,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("key_id", &self.key_id)
            .field("remaining", &self.remaining)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Decrypts a whole body: feed it the bytes that follow the header.
    pub fn new(data_key: &DataKey, header: &Header) -> Self {
        let hb = header.to_bytes();
        let inner = match header.cipher() {
            CipherSuite::Aes256Ctr => DecInner::Ctr(ctr_cipher(data_key, header, &hb)),
            CipherSuite::Aes256Gcm => DecInner::Gcm {
                keys: Box::new(GcmKeys::new(data_key, header, hb)),
                seg_ct: header.segment_size() + TAG_LEN,
                buf: Vec::with_capacity(header.segment_size() + TAG_LEN),
                index: 0,
                end: None,
                skip: 0,
            },
        };
        Self {
            key_id: header.key_id().clone(),
            inner,
            remaining: None,
            failed: false,
            done: false,
        }
    }

    /// Decrypts a ranged read: feed it exactly the object bytes
    /// `plan.object_range`; it yields exactly `plan.plaintext_range`.
    pub fn ranged(data_key: &DataKey, header: &Header, plan: &RangePlan) -> Self {
        let mut d = Self::new(data_key, header);
        d.remaining = Some(plan.len());
        match &mut d.inner {
            DecInner::Ctr(c) => c.seek(plan.plaintext_range.start),
            DecInner::Gcm {
                index, end, skip, ..
            } => {
                *index = plan.first_segment;
                *end = Some((plan.last_segment, plan.last_is_final));
                *skip = plan.skip;
            }
        }
        d
    }

    /// Decrypts a CTR body starting at plaintext offset `offset`: feed it the
    /// object bytes from `header.len() + offset` on. (GCM objects need
    /// [`Decryptor::ranged`].)
    pub fn ctr_at_offset(data_key: &DataKey, header: &Header, offset: u64) -> Self {
        let mut d = Self::new(data_key, header);
        if let DecInner::Ctr(c) = &mut d.inner {
            c.seek(offset);
        }
        d
    }

    /// Decrypts `input`, appending verified plaintext to `out`.
    pub fn push_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        let r = self.push_inner(input, out);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Decrypts `input` and returns the verified plaintext ready so far.
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::with_capacity(input.len());
        self.push_into(input, &mut out)?;
        Ok(out)
    }

    /// Ends the body: returns the last verified plaintext, or the error that
    /// shows the body incomplete or forged.
    pub fn finish(mut self) -> Result<Vec<u8>, StreamError> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        let mut out = Vec::new();
        let truncated = |segments: u64, key_id: &KeyId| StreamError::Truncated {
            segments,
            key_id: key_id.clone(),
        };
        let mut segments = 0;
        if let DecInner::Gcm {
            keys,
            seg_ct,
            buf,
            index,
            end,
            skip,
        } = &mut self.inner
        {
            let finished = self.done || end.is_some_and(|(l, _)| *index > l);
            if !finished {
                let last = match *end {
                    None => true,
                    Some((l, f)) => {
                        // A non-final last segment is full size and would
                        // have been opened already.
                        if *index != l || (!f && buf.len() < *seg_ct) {
                            return Err(truncated(*index, &self.key_id));
                        }
                        f
                    }
                };
                if buf.len() < TAG_LEN {
                    return Err(truncated(*index, &self.key_id));
                }
                open_one(
                    keys,
                    *index,
                    last,
                    false,
                    buf,
                    skip,
                    &mut self.remaining,
                    &self.key_id,
                    &mut out,
                )?;
                *index += 1;
            }
            segments = *index;
        }
        if self.remaining.is_some_and(|r| r > 0) {
            return Err(truncated(segments, &self.key_id));
        }
        Ok(out)
    }

    fn push_inner(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        let key_id = &self.key_id;
        match &mut self.inner {
            DecInner::Ctr(c) => {
                let n = input.len() as u64;
                if let Some(r) = &mut self.remaining {
                    if n > *r {
                        return Err(StreamError::TrailingData {
                            segment: 0,
                            key_id: key_id.clone(),
                        });
                    }
                    *r -= n;
                }
                let start = out.len();
                out.extend_from_slice(input);
                c.apply_keystream(&mut out[start..]);
            }
            DecInner::Gcm {
                keys,
                seg_ct,
                buf,
                index,
                end,
                skip,
            } => loop {
                if buf.len() == *seg_ct {
                    match *end {
                        None => {
                            if input.is_empty() {
                                break;
                            }
                            open_one(
                                keys,
                                *index,
                                false,
                                true,
                                buf,
                                skip,
                                &mut self.remaining,
                                key_id,
                                out,
                            )?;
                        }
                        Some((last, last_final)) => {
                            let is_last = *index == last;
                            open_one(
                                keys,
                                *index,
                                is_last && last_final,
                                !input.is_empty(),
                                buf,
                                skip,
                                &mut self.remaining,
                                key_id,
                                out,
                            )?;
                            if is_last {
                                self.done = true;
                            }
                        }
                    }
                    buf.clear();
                    *index += 1;
                }
                if input.is_empty() {
                    break;
                }
                if self.done || end.is_some_and(|(l, _)| *index > l) {
                    return Err(StreamError::TrailingData {
                        segment: index.saturating_sub(1),
                        key_id: key_id.clone(),
                    });
                }
                check_index(*index)?;
                let take = (*seg_ct - buf.len()).min(input.len());
                buf.extend_from_slice(&input[..take]);
                input = &input[take..];
            },
        }
        Ok(())
    }
}

/// Opens one buffered segment, diagnoses a failure, and releases the
/// plaintext (after trimming) to `out`.
#[allow(clippy::too_many_arguments)]
fn open_one(
    keys: &GcmKeys,
    index: u64,
    last: bool,
    more_follows: bool,
    buf: &mut [u8],
    skip: &mut u64,
    remaining: &mut Option<u64>,
    key_id: &KeyId,
    out: &mut Vec<u8>,
) -> Result<(), StreamError> {
    if !keys.open(index, last, buf) {
        // Tell truncation and extension apart from tampering: the segment
        // may be genuine with the other finality flag.
        let other = keys.open(index, !last, buf);
        let err = if other && last {
            StreamError::Truncated {
                segments: index + 1,
                key_id: key_id.clone(),
            }
        } else if other && more_follows {
            StreamError::TrailingData {
                segment: index,
                key_id: key_id.clone(),
            }
        } else {
            StreamError::Authentication {
                segment: index,
                key_id: key_id.clone(),
            }
        };
        tracing::debug!(key_id = %key_id, segment = index, error = %err, "MENC segment rejected");
        return Err(err);
    }
    let plain = &buf[..buf.len() - TAG_LEN];
    let from = (*skip).min(plain.len() as u64) as usize;
    *skip -= from as u64;
    let mut avail = &plain[from..];
    if let Some(r) = remaining {
        let n = (*r).min(avail.len() as u64) as usize;
        avail = &avail[..n];
        *r -= n as u64;
    }
    out.extend_from_slice(avail);
    Ok(())
}

#[cfg(test)]
mod tests;
