//! Server-side TLS session storage over a pluggable backend.
//!
//! The glue implements [`SessionBackend`] over httpd's `ap_socache` (shared memory),
//! so that a session made in one child process resumes in another. rustls uses the
//! store for TLS 1.2 session ids and, when no ticketer is configured, for TLS 1.3
//! stateful tickets.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// A key-value cache with expiry, shared across processes by the glue.
///
/// Values hold session secrets: implementations should not log them and should
/// wipe them when evicted where they can.
pub trait SessionBackend: Send + Sync {
    /// Store `value` under `key` for `ttl`. Returns whether it was stored.
    fn put(&self, key: &[u8], value: &[u8], ttl: Duration) -> bool;
    /// The value stored under `key`, if present and not expired.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Remove `key`. Returns whether something was removed.
    fn remove(&self, key: &[u8]) -> bool;
}

/// The default session lifetime (mod_tls uses 300 s).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(300);

/// A [`rustls::server::StoresServerSessions`] over a [`SessionBackend`].
pub struct SessionStore<B> {
    backend: B,
    ttl: Duration,
}

impl<B: SessionBackend> SessionStore<B> {
    /// A store keeping sessions for `ttl`.
    pub fn new(backend: B, ttl: Duration) -> Self {
        Self { backend, ttl }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The session lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl<B> fmt::Debug for SessionStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<B: SessionBackend> rustls::server::StoresServerSessions for SessionStore<B> {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let value = Zeroizing::new(value);
        let ok = self.backend.put(&key, &value, self.ttl);
        if !ok {
            tracing::debug!("session cache refused a session");
        }
        ok
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.backend.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.backend.get(key)?;
        self.backend.remove(key);
        Some(v)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// An in-process [`SessionBackend`] with a capacity bound, for tests and for
/// servers without a shared cache. When full, expired entries are dropped first,
/// then the entry closest to expiry.
pub struct MemoryBackend {
    capacity: usize,
    map: Mutex<HashMap<Vec<u8>, Stored>>,
}

/// A stored value and its expiry.
type Stored = (Zeroizing<Vec<u8>>, Instant);

impl MemoryBackend {
    /// A backend holding at most `capacity` sessions.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The number of entries (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl SessionBackend for MemoryBackend {
    fn put(&self, key: &[u8], value: &[u8], ttl: Duration) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(key) {
            map.retain(|_, (_, exp)| *exp > now);
            let oldest = (map.len() >= self.capacity)
                .then(|| {
                    map.iter()
                        .min_by_key(|(_, (_, exp))| *exp)
                        .map(|(k, _)| k.clone())
                })
                .flatten();
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(key.to_vec(), (Zeroizing::new(value.to_vec()), now + ttl));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some((v, exp)) if *exp > Instant::now() => Some(v.to_vec()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn remove(&self, key: &[u8]) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
            .is_some()
    }
}

impl<T: SessionBackend + ?Sized> SessionBackend for std::sync::Arc<T> {
    fn put(&self, key: &[u8], value: &[u8], ttl: Duration) -> bool {
        (**self).put(key, value, ttl)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        (**self).get(key)
    }
    fn remove(&self, key: &[u8]) -> bool {
        (**self).remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::StoresServerSessions;

    #[test]
    fn put_get_take() {
        let s = SessionStore::new(MemoryBackend::new(10), DEFAULT_SESSION_TTL);
        assert!(s.can_cache());
        assert!(s.put(b"k".to_vec(), b"v".to_vec()));
        assert_eq!(s.get(b"k").unwrap(), b"v");
        assert_eq!(s.take(b"k").unwrap(), b"v");
        assert!(s.get(b"k").is_none());
        assert!(s.take(b"k").is_none());
    }

    #[test]
    fn expiry_and_capacity() {
        let b = MemoryBackend::new(2);
        assert!(b.put(b"a", b"1", Duration::ZERO));
        assert!(b.get(b"a").is_none(), "expired");
        assert!(b.put(b"a", b"1", Duration::from_secs(10)));
        assert!(b.put(b"b", b"2", Duration::from_secs(20)));
        assert!(b.put(b"c", b"3", Duration::from_secs(30)));
        assert_eq!(b.len(), 2);
        assert!(b.get(b"a").is_none(), "closest to expiry evicted");
        assert!(b.get(b"c").is_some());
        assert!(b.remove(b"c"));
        assert!(!b.remove(b"c"));
        assert!(!MemoryBackend::new(0).put(b"a", b"1", Duration::from_secs(1)));
    }
}
