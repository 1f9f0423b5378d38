//! The TLS engine of mod_bastion.
//!
//! This crate holds everything about TLS that does not need httpd: parsing of the
//! `TLSProtocol` and cipher directives into typed values, loading certificates and
//! private keys, SNI host-name matching, certificate selection (with OCSP stapling),
//! session tickets and a session-store adapter, per-virtual-host rustls
//! [`ServerConfig`](rustls::ServerConfig) building, and the values of the `SSL_*`
//! request variables.
//!
//! It never calls httpd or any C API: the glue in the module turns directive strings
//! and httpd objects into the typed values taken here, and turns the typed errors
//! returned here into log lines and status codes.
//!
//! Cryptography is rustls 0.23 with the aws-lc-rs provider, always passed
//! explicitly (never installed as a process default).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod certs;
pub mod ciphers;
pub mod client;
pub mod config;
mod encoding;
pub mod listen;
pub mod options;
pub mod policy;
pub mod protocol;
pub mod resolver;
pub mod session;
pub mod sni;
pub mod tickets;
pub mod vars;

#[cfg(test)]
mod testutil;

pub use certs::{CertError, CertInfo, LoadedCert};
pub use ciphers::{CipherError, CipherSelection, CipherWarning};
pub use config::{AlpnVariants, BuiltVhost, CertSource, ConfigError, VhostSpec};
pub use listen::{EngineAddr, EngineAddrError};
pub use options::{SessionCacheSpec, TlsOptions};
pub use protocol::{MinProtocol, ProtocolError};
pub use resolver::{ChallengeResolver, VhostCertResolver};
pub use session::{MemoryBackend, SessionBackend, SessionStore};
pub use sni::VhostMatcher;
pub use tickets::{DerivedTicketer, TicketError, TicketSecret};
pub use vars::ConnectionInfo;

/// The aws-lc-rs crypto provider with rustls' defaults, the base from which every
/// configuration of this crate is derived.
pub fn base_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}
