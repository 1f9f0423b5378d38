//! Session tickets whose keys every httpd child process derives from one secret.
//!
//! The parent process makes a [`TicketSecret`] once; forked children inherit it and
//! build a [`DerivedTicketer`] from it, so a ticket issued by one child is accepted
//! by any other.
//!
//! Time is cut into periods of a configurable length (default 12 hours); period
//! `n = unix_seconds / period_seconds`. The key of period `n` is
//! `HKDF-SHA256(salt = none, ikm = secret, info = "bastion ticket key" || n as u64
//! big-endian)`, 32 bytes, used with AES-256-GCM (aws-lc-rs, the library rustls
//! already uses). Tickets are issued with the current period's key and accepted
//! with the current or the previous one, so a ticket lives between one and two
//! periods; [`lifetime`](rustls::server::ProducesTickets::lifetime) announces one.
//!
//! Ticket layout: `period (8 bytes, BE) || nonce (12 random bytes) ||
//! AES-256-GCM(plaintext) || tag (16)`, with the first 20 bytes as associated data.
//! Random 96-bit nonces keep the collision risk negligible for far more tickets
//! than a key issues in one period.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The HKDF info label (followed by the period number).
const LABEL: &[u8] = b"bastion ticket key";
const HEADER: usize = 8 + NONCE_LEN;
const TAG: usize = 16;
/// RFC 8446 §4.6.1: a ticket lifetime must not exceed seven days.
const MAX_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);
/// The default period length.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(12 * 3600);

/// Errors from ticket key setup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The secret is shorter than [`TicketSecret::MIN_LEN`].
    #[error("the session ticket secret must be at least {min} bytes, got {got}")]
    SecretTooShort {
        /// The minimum.
        min: usize,
        /// The length given.
        got: usize,
    },
    /// The period is zero, not whole seconds, or longer than seven days.
    #[error("the session ticket key period must be 1 second to 7 days in whole seconds, got {0:?}")]
    BadPeriod(Duration),
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// The secret all ticket keys derive from. Zeroized on drop; `Debug` shows no bytes.
#[derive(Clone)]
pub struct TicketSecret(Zeroizing<Vec<u8>>);

impl TicketSecret {
    /// The minimum length, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A fresh random 32-byte secret (to be made once, in the parent process).
    pub fn generate() -> Result<Self, TicketError> {
        let mut b = Zeroizing::new(vec![0u8; Self::MIN_LEN]);
        SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| TicketError::Random)?;
        Ok(Self(b))
    }

    /// A secret from bytes made elsewhere (at least [`Self::MIN_LEN`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TicketError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(TicketError::SecretTooShort {
                min: Self::MIN_LEN,
                got: bytes.len(),
            });
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// The secret bytes (for the glue to keep where a reloaded module finds them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketSecret({} bytes)", self.0.len())
    }
}

/// A source of Unix time in seconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A [`ProducesTickets`](rustls::server::ProducesTickets) with keys derived from a
/// [`TicketSecret`] per time period.
pub struct DerivedTicketer {
    prk: hkdf::Prk,
    period_secs: u64,
    clock: Clock,
    rng: SystemRandom,
    /// Recently used keys, newest last (at most three).
    keys: RwLock<Vec<(u64, Arc<LessSafeKey>)>>,
}

impl fmt::Debug for DerivedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedTicketer")
            .field("period_secs", &self.period_secs)
            .finish_non_exhaustive()
    }
}

impl DerivedTicketer {
    /// A ticketer over `secret` with keys rotating every `period`, on the system clock.
    pub fn new(secret: &TicketSecret, period: Duration) -> Result<Self, TicketError> {
        Self::with_clock(secret, period, Arc::new(system_clock))
    }

    /// As [`new`](Self::new), with the given clock (Unix seconds), for tests and
    /// deterministic behaviour.
    pub fn with_clock(
        secret: &TicketSecret,
        period: Duration,
        clock: Clock,
    ) -> Result<Self, TicketError> {
        if period.is_zero() || period.subsec_nanos() != 0 || period > MAX_PERIOD {
            return Err(TicketError::BadPeriod(period));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret.as_bytes());
        Ok(Self {
            prk,
            period_secs: period.as_secs(),
            clock,
            rng: SystemRandom::new(),
            keys: RwLock::new(Vec::with_capacity(3)),
        })
    }

    /// The period length.
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.period_secs)
    }

    fn current_period(&self) -> u64 {
        (self.clock)() / self.period_secs
    }

    fn derive(&self, period: u64) -> Option<LessSafeKey> {
        let n = period.to_be_bytes();
        let info: [&[u8]; 2] = [LABEL, &n];
        let okm = self.prk.expand(&info, &AES_256_GCM).ok()?;
        Some(LessSafeKey::new(UnboundKey::from(okm)))
    }

    fn key(&self, period: u64) -> Option<Arc<LessSafeKey>> {
        {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            if let Some((_, k)) = keys.iter().find(|(p, _)| *p == period) {
                return Some(k.clone());
            }
        }
        let key = Arc::new(self.derive(period)?);
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if !keys.iter().any(|(p, _)| *p == period) {
            keys.push((period, key.clone()));
            keys.sort_by_key(|(p, _)| *p);
            if keys.len() > 3 {
                keys.remove(0);
            }
        }
        Some(key)
    }

    fn seal(&self, period: u64, plain: &[u8]) -> Option<Vec<u8>> {
        let key = self.key(period)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(HEADER + plain.len() + TAG);
        out.extend_from_slice(&period.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let (header, body) = out.split_at_mut(HEADER);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&*header),
                body,
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn open(&self, now_period: u64, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < HEADER + TAG {
            return None;
        }
        let mut p = [0u8; 8];
        p.copy_from_slice(&ticket[..8]);
        let period = u64::from_be_bytes(p);
        if period != now_period && Some(period) != now_period.checked_sub(1) {
            return None;
        }
        let key = self.key(period)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ticket[8..HEADER]);
        let mut body = Zeroizing::new(ticket[HEADER..].to_vec());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&ticket[..HEADER]),
                &mut body,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

impl rustls::server::ProducesTickets for DerivedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.period_secs).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let t = self.seal(self.current_period(), plain);
        if t.is_none() {
            tracing::warn!("session ticket encryption failed");
        }
        t
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open(self.current_period(), cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn clocked(secret: &TicketSecret, t: Arc<AtomicU64>) -> DerivedTicketer {
        DerivedTicketer::with_clock(
            secret,
            DEFAULT_PERIOD,
            Arc::new(move || t.load(Ordering::SeqCst)),
        )
        .unwrap()
    }

    #[test]
    fn other_instance_same_secret_decrypts() {
        let secret = TicketSecret::generate().unwrap();
        let a = DerivedTicketer::new(&secret, DEFAULT_PERIOD).unwrap();
        let b = DerivedTicketer::new(
            &TicketSecret::from_bytes(secret.as_bytes()).unwrap(),
            DEFAULT_PERIOD,
        )
        .unwrap();
        let t = a.encrypt(b"session state").unwrap();
        assert_eq!(t.len(), 8 + 12 + 13 + 16);
        assert_eq!(b.decrypt(&t).unwrap(), b"session state");
        assert_eq!(a.lifetime(), 12 * 3600);
        // two tickets of the same plaintext differ (random nonce)
        assert_ne!(a.encrypt(b"x").unwrap(), a.encrypt(b"x").unwrap());
    }

    #[test]
    fn other_secret_and_tampering_rejected() {
        let a = DerivedTicketer::new(&TicketSecret::generate().unwrap(), DEFAULT_PERIOD).unwrap();
        let b = DerivedTicketer::new(&TicketSecret::generate().unwrap(), DEFAULT_PERIOD).unwrap();
        let t = a.encrypt(b"state").unwrap();
        assert!(b.decrypt(&t).is_none());
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 0x01;
            assert!(a.decrypt(&bad).is_none(), "byte {i}");
        }
        assert!(a.decrypt(&t[..t.len() - 1]).is_none());
        assert!(a.decrypt(b"").is_none());
    }

    #[test]
    fn rotation_accepts_previous_period_only() {
        let secret = TicketSecret::generate().unwrap();
        let now = Arc::new(AtomicU64::new(1_700_000_000));
        let issuer = clocked(&secret, now.clone());
        let later = Arc::new(AtomicU64::new(0));
        let other = clocked(&secret, later.clone());
        let t = issuer.encrypt(b"s").unwrap();
        let p = DEFAULT_PERIOD.as_secs();
        later.store(1_700_000_000, Ordering::SeqCst);
        assert!(other.decrypt(&t).is_some());
        later.store(1_700_000_000 + p, Ordering::SeqCst);
        assert!(other.decrypt(&t).is_some(), "previous period accepted");
        later.store(1_700_000_000 + 2 * p, Ordering::SeqCst);
        assert!(other.decrypt(&t).is_none(), "older rejected");
        // a ticket from the future (clock skew beyond a period) is rejected too
        later.store(1_700_000_000 - p, Ordering::SeqCst);
        assert!(other.decrypt(&t).is_none());
        // keys differ per period
        now.store(1_700_000_000 + p, Ordering::SeqCst);
        let t2 = issuer.encrypt(b"s").unwrap();
        assert_ne!(t[..8], t2[..8]);
    }

    #[test]
    fn setup_errors() {
        assert!(matches!(
            TicketSecret::from_bytes(&[0u8; 31]),
            Err(TicketError::SecretTooShort { min: 32, got: 31 })
        ));
        let s = TicketSecret::generate().unwrap();
        assert!(DerivedTicketer::new(&s, Duration::ZERO).is_err());
        assert!(DerivedTicketer::new(&s, Duration::from_millis(1500)).is_err());
        assert!(DerivedTicketer::new(&s, Duration::from_secs(8 * 24 * 3600)).is_err());
        assert_eq!(format!("{s:?}"), "TicketSecret(32 bytes)");
    }

    #[test]
    fn key_derivation_is_deterministic() {
        // Same secret and period → same key: a ticket sealed by one instance at a
        // fixed time opens in another instance at that time.
        let secret = TicketSecret::from_bytes(&[7u8; 32]).unwrap();
        let t = Arc::new(AtomicU64::new(86_400 * 365));
        let a = clocked(&secret, t.clone());
        let b = clocked(&secret, t);
        assert_eq!(b.decrypt(&a.encrypt(b"abc").unwrap()).unwrap(), b"abc");
    }
}
