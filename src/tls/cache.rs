//! TLS sessions in httpd's shared object cache, so any child resumes a session any other
//! child started (TLS 1.2 session ids, TLS 1.3 stateful tickets).

use crate::httpd::socache::Socache;
use std::sync::Arc;
use std::time::Duration;

/// The mutex type name (`Mutex bastion-tls-cache ...` configures it).
pub const MUTEX_TYPE: &std::ffi::CStr = c"bastion-tls-cache";
/// The default cache when `TLSSessionCache` is not set: shmcb with room for tens of
/// thousands of sessions.
pub const DEFAULT_SPEC: &str = "shmcb:bastion-tls-sessions(10240000)";

/// A rustls session store backend over an `ap_socache`.
pub struct SocacheBackend(pub Arc<Socache>);

impl bastion_tls::SessionBackend for SocacheBackend {
    fn put(&self, key: &[u8], value: &[u8], ttl: Duration) -> bool {
        self.0.store(key, value, ttl.as_secs().max(1))
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.retrieve(key)
    }
    fn remove(&self, key: &[u8]) -> bool {
        self.0.remove(key)
    }
}
