//! The encryption engine of mod_bastion: plain Rust, no httpd, no C.
//!
//! * [`format`]: the MENC v2 object header (magic, version, cipher, key id,
//!   salt) and the length arithmetic of the two body layouts.
//! * [`keys`]: data and master keys, per-object key derivation (HKDF-SHA256)
//!   and data-key wrapping (AES-256-SIV).
//! * [`stream`]: streaming encryptor and decryptor with bounded memory for
//!   AES-256-CTR and segmented AES-256-GCM, and plaintext range planning.
//! * [`fcgi`]: a FastCGI 1.0 codec (records, params, events) and the CGI
//!   response-header parser, plus a small blocking client.
//! * [`cache`]: a bounded in-process cache of unwrapped data keys with TTL.
//! * [`gateway`]: the policy of the encrypting FastCGI gateway (directive
//!   values, key scope, hidden headers, client ranges).
//! * [`keyclient`]: a blocking client for the key servers, with the process
//!   cache and memcached (wrapped keys only) in front.
//!
//! The byte layout is specified in `docs/format.md` of the repository.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod fcgi;
pub mod format;
pub mod gateway;
pub mod keyclient;
pub mod keys;
pub mod stream;

pub use format::{CipherSuite, FormatError, Header};
pub use keys::{DataKey, KeyError, KeyId, MasterKey};
pub use stream::{Decryptor, Encryptor, RangePlan, StreamError};
