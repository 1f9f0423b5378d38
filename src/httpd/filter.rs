//! Filters (filled in with the TLS filter).
