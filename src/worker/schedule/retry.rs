//! When to try an id again, and how long to wait first: exponential backoff with full jitter,
//! or the server's `Retry-After` (capped) when it sent one.

use std::time::{Duration, SystemTime};

use crate::model::{ErrorKind, RetryPolicy};

/// Statuses that mean "try again later" rather than an answer.
const RETRY_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// What an attempt ended with, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    Error(ErrorKind),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Status { status, .. } => write!(f, "status {status}"),
            Verdict::Error(kind) => write!(f, "{}", kind.as_str()),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`, or `None` when the outcome is final.
    pub fn next_delay(
        &self,
        verdict: Verdict,
        attempts: u32,
        rng: &mut fastrand::Rng,
    ) -> Option<Duration> {
        if attempts > self.retries {
            return None;
        }
        let retry_after = match verdict {
            Verdict::Status {
                status,
                retry_after,
            } if RETRY_STATUSES.contains(&status) => retry_after,
            Verdict::Error(kind) if is_transient(kind) => None,
            _ => return None,
        };
        Some(match retry_after {
            Some(wait) => wait.min(self.max_retry_after),
            None => self.backoff(attempts, rng),
        })
    }

    /// Full jitter: uniform in `0..=min(cap, base × 2^(attempts-1))`.
    fn backoff(&self, attempts: u32, rng: &mut fastrand::Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let ceiling = exp.min(self.cap);
        Duration::from_micros(rng.u64(0..=ceiling.as_micros() as u64))
    }
}

/// Errors worth another try: the server or the network may do better next time.
fn is_transient(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Connect
            | ErrorKind::Dns
            | ErrorKind::Proxy
            | ErrorKind::Timeout
            | ErrorKind::Reset
            | ErrorKind::Closed
            | ErrorKind::Protocol
    )
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        }
    }

    fn status(status: u16, retry_after: Option<u64>) -> Verdict {
        Verdict::Status {
            status,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn retries_transient_failures_until_the_budget_is_spent() {
        let mut rng = fastrand::Rng::with_seed(1);
        let p = policy();
        for attempts in 1..=3 {
            assert!(
                p.next_delay(status(503, None), attempts, &mut rng)
                    .is_some()
            );
            assert!(
                p.next_delay(Verdict::Error(ErrorKind::Reset), attempts, &mut rng)
                    .is_some()
            );
        }
        assert_eq!(
            p.next_delay(status(503, None), 4, &mut rng),
            None,
            "3 retries = 4 attempts"
        );
    }

    #[test]
    fn final_answers_are_not_retried() {
        let mut rng = fastrand::Rng::with_seed(1);
        let p = policy();
        for verdict in [
            status(200, None),
            status(404, None),
            status(500, None),
            Verdict::Error(ErrorKind::BodyTooLarge),
            Verdict::Error(ErrorKind::Tls),
        ] {
            assert_eq!(p.next_delay(verdict, 1, &mut rng), None, "{verdict:?}");
        }
    }

    #[test]
    fn backoff_is_jittered_below_an_exponential_ceiling_and_the_cap() {
        let mut rng = fastrand::Rng::with_seed(7);
        let p = policy();
        for attempts in 1..=3 {
            let ceiling = Duration::from_millis(100 * (1 << (attempts - 1))).min(p.cap);
            let waits: Vec<Duration> = (0..200)
                .map(|_| {
                    p.next_delay(status(502, None), attempts, &mut rng)
                        .expect("retry")
                })
                .collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "attempt {attempts}");
            assert!(
                waits.iter().any(|w| *w < ceiling / 2),
                "jitter spreads waits"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let mut rng = fastrand::Rng::with_seed(1);
        let p = policy();
        assert_eq!(
            p.next_delay(status(429, Some(2)), 1, &mut rng),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.next_delay(status(503, Some(600)), 1, &mut rng),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
