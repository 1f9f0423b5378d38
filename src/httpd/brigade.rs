//! Bucket brigades (filled in with the TLS filter).
