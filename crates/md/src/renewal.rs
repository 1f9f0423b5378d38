//! When to renew: renew and warn windows, ARI (RFC 9773) and error backoff.
//!
//! Pure functions over `now`, the certificate's validity, the configuration and
//! the last errors. Randomness comes in as `u` in `[0, 1)` so every decision is
//! reproducible in tests; [`random_unit`] gives a real one.

use std::time::{Duration, SystemTime};

use crate::model::{ManagedDomain, Timeslice};

/// mod_md's cap on error backoff and the wait after "bad input" problems.
pub const MAX_ERROR_DELAY: Duration = Duration::from_secs(24 * 3600);
/// mod_md's default first retry delay (`MDRetryDelay`).
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(30);
/// mod_md's default watchdog period (`MDCheckInterval`).
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// How long to wait before asking for ARI again when the CA gives no Retry-After.
pub const DEFAULT_ARI_RETRY: Duration = Duration::from_secs(6 * 3600);

/// The validity period of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
}

impl Validity {
    /// notAfter − notBefore (zero if inverted).
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// The start of a window before notAfter.
    pub fn window_start(&self, window: &Timeslice) -> SystemTime {
        let len = window.length(self.lifetime());
        self.not_after.checked_sub(len).unwrap_or(self.not_before)
    }
}

/// An ARI answer as the driver keeps it: the suggested window, the point chosen in it
/// and when to ask again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AriSchedule {
    /// suggestedWindow.start.
    pub start: SystemTime,
    /// suggestedWindow.end.
    pub end: SystemTime,
    /// The uniformly random time in `[start, end]` chosen once for this window.
    pub chosen: SystemTime,
    /// Do not fetch renewalInfo again before this (Retry-After).
    pub next_fetch: SystemTime,
}

impl AriSchedule {
    /// Builds the schedule for a fresh ARI answer: picks `start + u·(end−start)` (RFC 9773
    /// §4.2, unlike mod_md's `start ± len/2`) and honours Retry-After, bounded to
    /// `[1 min, 7 d]`; without Retry-After, asks again after [`DEFAULT_ARI_RETRY`].
    pub fn new(
        now: SystemTime,
        start: SystemTime,
        end: SystemTime,
        retry_after: Option<Duration>,
        u: f64,
    ) -> Self {
        let len = end.duration_since(start).unwrap_or_default();
        let chosen = start + len.mul_f64(u.clamp(0.0, 1.0));
        let retry = retry_after
            .unwrap_or(DEFAULT_ARI_RETRY)
            .clamp(Duration::from_secs(60), Duration::from_secs(7 * 86_400));
        Self {
            start,
            end,
            chosen,
            next_fetch: now + retry,
        }
    }

    /// True if the window (or the chosen point in it) has been reached.
    pub fn due(&self, now: SystemTime) -> bool {
        now >= self.chosen
    }
}

/// Why [`decide`] says what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// There is no certificate yet (or it does not cover the names).
    NoCertificate,
    /// The renew window has been reached.
    RenewWindow,
    /// The ARI window (chosen point) has been reached.
    Ari,
    /// Nothing to do yet.
    NotDue,
    /// `MDRenewMode manual`: never renew.
    Manual,
}

/// The renewal decision for one MD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Start an order now.
    pub renew: bool,
    /// Why.
    pub reason: Reason,
    /// When renewal becomes due (now if `renew`); `None` for manual mode.
    pub renew_at: Option<SystemTime>,
    /// The certificate is inside the warn window (raise `expiring`).
    pub warn: bool,
    /// When to look again: the earliest of renew_at, the next ARI fetch and
    /// `now + check_interval`.
    pub next_check: SystemTime,
}

/// Decides whether `md` must be renewed at `now`, given the validity of its current
/// certificate (`None`: no certificate), an ARI schedule if one was fetched, and the
/// watchdog period. ARI works in addition to the renew window: whichever comes first.
pub fn decide(
    now: SystemTime,
    md: &ManagedDomain,
    cert: Option<Validity>,
    ari: Option<&AriSchedule>,
    check_interval: Duration,
) -> Decision {
    let periodic = now + check_interval;
    let warn = cert.is_some_and(|v| now >= v.window_start(&md.warn_window));
    if md.renew_mode == crate::model::RenewMode::Manual {
        return Decision {
            renew: false,
            reason: Reason::Manual,
            renew_at: None,
            warn,
            next_check: periodic,
        };
    }
    let Some(v) = cert else {
        return Decision {
            renew: true,
            reason: Reason::NoCertificate,
            renew_at: Some(now),
            warn: false,
            next_check: now,
        };
    };
    let window_at = v.window_start(&md.renew_window);
    let ari = ari.filter(|_| md.ari);
    let (renew_at, reason) = match ari {
        Some(a) if a.chosen < window_at => (a.chosen, Reason::Ari),
        _ => (window_at, Reason::RenewWindow),
    };
    if now >= renew_at {
        return Decision {
            renew: true,
            reason,
            renew_at: Some(now),
            warn,
            next_check: now,
        };
    }
    let mut next = periodic.min(renew_at);
    if let Some(a) = ari {
        next = next.min(a.next_fetch.max(now));
    }
    Decision {
        renew: false,
        reason: Reason::NotDue,
        renew_at: Some(renew_at),
        warn,
        next_check: next,
    }
}

/// True if fresh ARI information should be fetched now.
pub fn ari_fetch_due(now: SystemTime, md: &ManagedDomain, ari: Option<&AriSchedule>) -> bool {
    md.ari && ari.is_none_or(|a| now >= a.next_fetch)
}

/// ACME problem types that mean "bad input": retrying soon will not help, so mod_md
/// waits [`MAX_ERROR_DELAY`] (its `Problems[]` entries marked input-related).
pub fn is_input_problem(problem_type: &str) -> bool {
    let t = problem_type
        .rsplit_once("acme:error:")
        .map_or(problem_type, |(_, t)| t);
    matches!(
        t,
        "badCSR"
            | "badSignatureAlgorithm"
            | "invalidContact"
            | "unsupportedContact"
            | "malformed"
            | "rejectedIdentifier"
            | "unsupportedIdentifier"
            | "userActionRequired"
            | "badRevocationReason"
            | "externalAccountRequired"
    )
}

/// mod_md's retry delay after `errors` consecutive failures (≥ 1): `retry_delay ·
/// 2^(errors−1)`, jittered by ±50% (`u` in `[0,1)`), capped at 24 h; an input problem
/// waits 24 h straight away.
pub fn error_delay(
    errors: u32,
    retry_delay: Duration,
    problem_type: Option<&str>,
    u: f64,
) -> Duration {
    if problem_type.is_some_and(is_input_problem) {
        return MAX_ERROR_DELAY;
    }
    let exp = errors.saturating_sub(1).min(30);
    let base = retry_delay
        .checked_mul(1u32 << exp)
        .unwrap_or(MAX_ERROR_DELAY)
        .min(MAX_ERROR_DELAY);
    base.mul_f64(0.5 + u.clamp(0.0, 1.0)).min(MAX_ERROR_DELAY)
}

/// Jitters the watchdog period by ±50% (mod_md's `MDCheckInterval` behaviour).
pub fn jittered(interval: Duration, u: f64) -> Duration {
    interval.mul_f64(0.5 + u.clamp(0.0, 1.0))
}

/// A uniformly random number in `[0, 1)` from the system RNG.
pub fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RenewMode;
    use std::time::UNIX_EPOCH;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(days: u32) -> SystemTime {
        UNIX_EPOCH + DAY * days + Duration::from_secs(1_000_000_000)
    }

    fn md() -> ManagedDomain {
        ManagedDomain::new("r.example", &[]).unwrap()
    }

    fn cert90() -> Validity {
        Validity {
            not_before: t(0),
            not_after: t(90),
        }
    }

    #[test]
    fn no_certificate_renews_now() {
        let d = decide(t(5), &md(), None, None, DEFAULT_CHECK_INTERVAL);
        assert!(d.renew);
        assert_eq!(d.reason, Reason::NoCertificate);
    }

    #[test]
    fn percent_window() {
        let m = md(); // 33% of 90 d = 29.7 d before day 90
        let d = decide(t(60), &m, Some(cert90()), None, DEFAULT_CHECK_INTERVAL);
        assert!(!d.renew);
        assert_eq!(d.renew_at, Some(t(90) - DAY.mul_f64(29.7)));
        // Due within the check interval: look again exactly when it is due.
        assert_eq!(d.next_check, d.renew_at.unwrap());
        let d = decide(t(50), &m, Some(cert90()), None, DEFAULT_CHECK_INTERVAL);
        assert_eq!(d.next_check, t(50) + DEFAULT_CHECK_INTERVAL);
        let d = decide(t(61), &m, Some(cert90()), None, DEFAULT_CHECK_INTERVAL);
        assert!(d.renew);
        assert_eq!(d.reason, Reason::RenewWindow);
        assert!(!d.warn);
        // 10% warn window: day 81.
        let d = decide(t(82), &m, Some(cert90()), None, DEFAULT_CHECK_INTERVAL);
        assert!(d.warn);
    }

    #[test]
    fn absolute_window_and_manual() {
        let mut m = md();
        m.renew_window = Timeslice::parse("14d").unwrap();
        let d = decide(t(70), &m, Some(cert90()), None, DEFAULT_CHECK_INTERVAL);
        assert!(!d.renew);
        assert_eq!(d.renew_at, Some(t(76)));
        // next_check is never later than renew_at.
        let d = decide(t(75) + DAY / 2 + DAY / 4, &m, Some(cert90()), None, DAY);
        assert_eq!(d.next_check, t(76));
        assert!(decide(t(77), &m, Some(cert90()), None, DAY).renew);
        m.renew_mode = RenewMode::Manual;
        let d = decide(t(89), &m, Some(cert90()), None, DAY);
        assert!(!d.renew);
        assert_eq!(d.reason, Reason::Manual);
        assert!(d.warn);
    }

    #[test]
    fn ari_window_uniform_and_earlier() {
        let m = md();
        let a = AriSchedule::new(t(10), t(30), t(40), Some(Duration::from_secs(3600)), 0.5);
        assert_eq!(a.chosen, t(35));
        assert_eq!(a.next_fetch, t(10) + Duration::from_secs(3600));
        let d = decide(t(20), &m, Some(cert90()), Some(&a), DEFAULT_CHECK_INTERVAL);
        assert!(!d.renew);
        assert_eq!(d.renew_at, Some(t(35)));
        // The ARI answer is stale (Retry-After passed): look again now.
        assert_eq!(d.next_check, t(20));
        let d = decide(t(36), &m, Some(cert90()), Some(&a), DEFAULT_CHECK_INTERVAL);
        assert!(d.renew);
        assert_eq!(d.reason, Reason::Ari);
        // With ARI off, the renew window rules.
        let mut off = md();
        off.ari = false;
        assert!(
            !decide(
                t(36),
                &off,
                Some(cert90()),
                Some(&a),
                DEFAULT_CHECK_INTERVAL
            )
            .renew
        );
        // A later ARI window does not delay the renew window.
        let late = AriSchedule::new(t(10), t(85), t(88), None, 0.0);
        assert!(decide(t(61), &m, Some(cert90()), Some(&late), DAY).renew);
        // Bounds of the uniform choice and of Retry-After.
        assert_eq!(
            AriSchedule::new(t(0), t(30), t(40), None, 0.0).chosen,
            t(30)
        );
        assert_eq!(
            AriSchedule::new(t(0), t(30), t(40), None, 1.0).chosen,
            t(40)
        );
        assert_eq!(
            AriSchedule::new(t(0), t(30), t(40), None, 0.0).next_fetch,
            t(0) + DEFAULT_ARI_RETRY
        );
        assert_eq!(
            AriSchedule::new(t(0), t(30), t(40), Some(Duration::ZERO), 0.0).next_fetch,
            t(0) + Duration::from_secs(60)
        );
        assert!(ari_fetch_due(t(0), &m, None));
        assert!(!ari_fetch_due(t(0), &m, Some(&a)));
        assert!(ari_fetch_due(t(11), &m, Some(&a)));
        assert!(!ari_fetch_due(t(11), &off, Some(&a)));
    }

    #[test]
    fn backoff() {
        let r = Duration::from_secs(30);
        assert_eq!(error_delay(1, r, None, 0.5), r);
        assert_eq!(error_delay(2, r, None, 0.5), r * 2);
        assert_eq!(error_delay(4, r, None, 0.5), r * 8);
        assert_eq!(error_delay(3, r, None, 0.0), r * 2); // -50%
        assert_eq!(error_delay(3, r, None, 0.999_999).as_secs(), 179); // ~+50%
        assert_eq!(error_delay(40, r, None, 0.5), MAX_ERROR_DELAY);
        assert_eq!(error_delay(40, r, None, 0.99), MAX_ERROR_DELAY);
        assert_eq!(error_delay(40, r, None, 0.0), MAX_ERROR_DELAY / 2);
        assert_eq!(
            error_delay(
                1,
                r,
                Some("urn:ietf:params:acme:error:rejectedIdentifier"),
                0.1
            ),
            MAX_ERROR_DELAY
        );
        assert_eq!(
            error_delay(1, r, Some("urn:ietf:params:acme:error:badCSR"), 0.1),
            MAX_ERROR_DELAY
        );
        assert_eq!(
            error_delay(1, r, Some("urn:ietf:params:acme:error:connection"), 0.5),
            r
        );
        assert!(!is_input_problem("urn:ietf:params:acme:error:rateLimited"));
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
        assert_eq!(jittered(DAY, 0.5), DAY);
    }
}
