//! A bounded in-process cache of unwrapped data keys with a TTL.
//!
//! Unwrapped keys live only here (memcached holds wrapped keys). Entries are
//! [`DataKey`]s, which zeroize their bytes when dropped: on expiry, eviction,
//! removal, replacement and when the cache itself is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::keys::{DataKey, KeyId};

struct Entry {
    key: DataKey,
    expires: Instant,
    last_used: u64,
}

/// Bounded TTL cache of data keys keyed by [`KeyId`] (client scope and
/// key version). Time is passed in, so the policy is testable; see
/// [`SharedKeyCache`] for a thread-safe wrapper on the real clock.
pub struct KeyCache {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<KeyId, Entry>,
    tick: u64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("len", &self.entries.len())
            .finish()
    }
}

impl KeyCache {
    /// A cache of at most `capacity` keys (at least 1), each kept at most
    /// `ttl` after insertion.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl,
            entries: HashMap::new(),
            tick: 0,
        }
    }

    /// The key for `id` if present and not expired at `now`. An expired
    /// entry is dropped (and zeroized).
    pub fn get(&mut self, id: &KeyId, now: Instant) -> Option<DataKey> {
        self.tick += 1;
        let tick = self.tick;
        match self.entries.get_mut(id) {
            Some(e) if now < e.expires => {
                e.last_used = tick;
                Some(e.key.clone())
            }
            Some(_) => {
                self.entries.remove(id);
                None
            }
            None => None,
        }
    }

    /// Stores a key, replacing any entry for `id`. When full, drops expired
    /// entries first, then the least recently used one.
    pub fn insert(&mut self, id: KeyId, key: DataKey, now: Instant) {
        self.tick += 1;
        if !self.entries.contains_key(&id) && self.entries.len() >= self.capacity {
            self.purge_expired(now);
            if self.entries.len() >= self.capacity
                && let Some(victim) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&victim);
            }
        }
        let expires = now.checked_add(self.ttl).unwrap_or(now);
        self.entries.insert(
            id,
            Entry {
                key,
                expires,
                last_used: self.tick,
            },
        );
    }

    /// Drops the entry for `id`, if any.
    pub fn remove(&mut self, id: &KeyId) {
        self.entries.remove(id);
    }

    /// Drops every entry expired at `now`.
    pub fn purge_expired(&mut self, now: Instant) {
        self.entries.retain(|_, e| now < e.expires);
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Number of entries (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A [`KeyCache`] behind a mutex, on the real clock, for worker threads.
#[derive(Debug)]
pub struct SharedKeyCache(Mutex<KeyCache>);

impl SharedKeyCache {
    /// See [`KeyCache::new`].
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self(Mutex::new(KeyCache::new(capacity, ttl)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        // A panic while holding the lock cannot leave the map inconsistent
        // in a way that matters for a cache: keep using it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`KeyCache::get`].
    pub fn get(&self, id: &KeyId) -> Option<DataKey> {
        self.lock().get(id, Instant::now())
    }

    /// See [`KeyCache::insert`].
    pub fn insert(&self, id: KeyId, key: DataKey) {
        self.lock().insert(id, key, Instant::now());
    }

    /// See [`KeyCache::remove`].
    pub fn remove(&self, id: &KeyId) {
        self.lock().remove(id);
    }

    /// See [`KeyCache::clear`].
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: &str, v: u32) -> KeyId {
        KeyId::new(c, v).unwrap()
    }

    #[test]
    fn ttl_and_versions() {
        let t0 = Instant::now();
        let mut c = KeyCache::new(10, Duration::from_secs(60));
        c.insert(id("a", 1), DataKey::from_bytes([1; 32]), t0);
        c.insert(id("a", 2), DataKey::from_bytes([2; 32]), t0);
        assert_eq!(c.get(&id("a", 1), t0).unwrap().expose_secret(), &[1; 32]);
        assert_eq!(c.get(&id("a", 2), t0).unwrap().expose_secret(), &[2; 32]);
        assert!(c.get(&id("b", 1), t0).is_none());
        let later = t0 + Duration::from_secs(61);
        assert!(c.get(&id("a", 1), later).is_none());
        assert_eq!(c.len(), 1);
        c.purge_expired(later);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_lru() {
        let t0 = Instant::now();
        let mut c = KeyCache::new(2, Duration::from_secs(60));
        c.insert(id("a", 1), DataKey::from_bytes([1; 32]), t0);
        c.insert(id("b", 1), DataKey::from_bytes([2; 32]), t0);
        assert!(c.get(&id("a", 1), t0).is_some()); // b is now least recent
        c.insert(id("c", 1), DataKey::from_bytes([3; 32]), t0);
        assert_eq!(c.len(), 2);
        assert!(c.get(&id("b", 1), t0).is_none());
        assert!(c.get(&id("a", 1), t0).is_some());
        // replacing does not evict
        c.insert(id("a", 1), DataKey::from_bytes([9; 32]), t0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&id("a", 1), t0).unwrap().expose_secret(), &[9; 32]);
        c.remove(&id("a", 1));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn shared() {
        let c = SharedKeyCache::new(4, Duration::from_secs(60));
        c.insert(id("a", 1), DataKey::from_bytes([1; 32]));
        assert!(c.get(&id("a", 1)).is_some());
        c.clear();
        assert!(c.get(&id("a", 1)).is_none());
    }
}
