//! `bastion-keyserver`: the master and data key server of mod_bastion.
//!
//! One binary serves one of three roles:
//!
//! * **master**: holds 64-byte AES-256-SIV master keys and hands them to
//!   authorised accounts (`GET /master/key[/<id>]`); it can also generate a
//!   fresh data key and return it only wrapped (`POST /master/wrap`), which
//!   is how a separate data key server creates keys without ever holding a
//!   master key;
//! * **data**: holds each client's versioned data keys, wrapped under a
//!   master key with [`bastion_seal::keys::wrap_data_key`]
//!   (`GET /data/key/<client>[/<version>]`, `POST /data/key/<client>/rotate`);
//! * **both**: the two on one host, for a small site.
//!
//! Everything in the SQLite store is sealed again at rest with AES-256-SIV
//! under a key-encryption key derived from the master password with
//! Argon2id ([`crypto`]). Accounts have Argon2id password hashes and
//! permissions ([`auth`]); tokens expire; every operation writes one JSON
//! line to the audit log ([`audit`]). The JSON API ([`api`]) is served over
//! HTTPS only, with rustls and the aws-lc-rs provider ([`server`]).
//!
//! The protocol is described in `docs/keyserver.md` of the repository.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod crypto;
pub mod server;
pub mod store;
pub mod util;

pub use config::{Config, Role};
pub use store::Store;
