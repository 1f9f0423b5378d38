//! The managed-domain (ACME) engine of mod_bastion, the Rust replacement for mod_md.
//!
//! Plain Rust with no httpd in it: typed values in, typed results out.
//!
//! - [`model`]: an `MDomain` and its settings, directive parsers, configuration checks.
//! - [`store`]: mod_md's store layout on disk, atomic writes, keys encrypted at rest,
//!   staging → domains promotion.
//! - [`renewal`]: when to renew (windows, ARI) and how long to back off after errors.
//! - [`challenge`]: challenge material written by the driver and answered by the glue.
//! - [`cert`]: validity, names and ARI identifier of certificates.
//! - [`acme`]: the resumable ACME driver over instant-acme.
//! - [`ocsp`]: OCSP stapling: requests, fetches, checks and refresh times of responses.
//! - [`status`]: the `md-status`, certificate-status and mod_status reports.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acme;
pub mod cert;
pub mod challenge;
pub mod model;
pub mod ocsp;
pub mod renewal;
pub mod status;
pub mod store;

pub use acme::{Driver, DriverConfig, Error, Outcome};
pub use model::{ChallengeType, KeySpec, ManagedDomain, RenewMode, Timeslice};
pub use store::{Group, Store};
