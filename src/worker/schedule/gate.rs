//! The rate gate every attempt passes before it is sent: paces a worker's requests evenly
//! (`--rate`: this worker's share of R per second; no bursts, so no one-second window runs over),
//! and without `--rate` slows down when the server answers 429 — to the rate it was answering
//! without 429 (measured over the last second), when 429s are more than a few percent of the
//! answers; then back up by a few percent every 100 ms while they stay rare. A 429 with
//! `Retry-After` pauses the whole worker until then. Other retryable
//! answers (502/503/504) are about their id alone and don't touch the gate. Unless
//! `--no-rate-limit-headers`, the quota the answers' rate-limit headers say paces it too (see
//! `quota`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::quota::{Pacing, Quota, QuotaSchedule, Reading, State};

/// A send may go this much early rather than sleep for less (timer granularity).
const SLACK: Duration = Duration::from_millis(1);
/// Answers are counted in buckets of this length over [`WINDOW_BUCKETS`] of them.
const BUCKET: Duration = Duration::from_millis(100);
const WINDOW_BUCKETS: usize = 10;
/// Adaptive rate: the cut is to this share of the rate answered without 429…
const CUT_TO: f64 = 0.9;
/// …and every [`BUCKET`] without a 429 the rate grows by this share.
const GROWTH: f64 = 0.02;
/// No rate is set below this many requests per second.
const MIN_RATE: f64 = 1.0;
/// 429s up to this share of the answers in the window are noise (two requests that happened
/// to arrive close together at a strict limiter), not a sign to slow down…
const TOLERATED_429: f64 = 0.05;
/// …and so are fewer than this many: at a low rate a couple of 429s are a large share, and
/// cutting on them spirals the rate down.
const TOLERATED_429_COUNT: u64 = 10;
/// A rate is measured from at least this many answers.
const MIN_ANSWERS_TO_MEASURE: u64 = 10;

/// One worker's gate (all its slots share it, on one thread).
pub struct Gate {
    /// `--rate` share: fixed. `None`: adaptive.
    fixed: Option<f64>,
    /// Requests per second now allowed; `None`: unlimited.
    rate: Cell<Option<f64>>,
    next_at: Cell<Option<Instant>>,
    paused_until: Cell<Option<Instant>>,
    /// Answers other than 429, and 429s, per bucket, newest at `bucket_at`.
    answered: [Cell<u32>; WINDOW_BUCKETS],
    refused: [Cell<u32>; WINDOW_BUCKETS],
    bucket_at: Cell<Instant>,
    bucket: Cell<usize>,
    /// The first request: early in a run the window is shorter than a second, and connecting
    /// and starting up must not count as time in which the server answered nothing.
    started: Cell<Option<Instant>>,
    last_change: Cell<Instant>,
    /// Slots waiting in the gate now, since when, and the total time any waited.
    waiting: Cell<usize>,
    waiting_since: Cell<Instant>,
    throttled: Cell<Duration>,
    /// The quota the rate-limit headers say, and requests passed and not yet back (the
    /// server has not counted them in what it says is left).
    quota: Option<QuotaSchedule>,
    sending: Cell<usize>,
}

impl Gate {
    /// `rate`: this worker's requests per second (`--rate` divided among the shards), or
    /// `None` for the adaptive gate.
    pub fn new(rate: Option<f64>) -> Self {
        let now = Instant::now();
        Self {
            fixed: rate,
            rate: Cell::new(rate),
            next_at: Cell::new(None),
            paused_until: Cell::new(None),
            answered: Default::default(),
            refused: Default::default(),
            bucket_at: Cell::new(now),
            bucket: Cell::new(0),
            started: Cell::new(None),
            last_change: Cell::new(now),
            waiting: Cell::new(0),
            waiting_since: Cell::new(now),
            throttled: Cell::new(Duration::ZERO),
            quota: None,
            sending: Cell::new(0),
        }
    }

    /// Paced also by the quota the answers' rate-limit headers say, of which this gate sends
    /// `share` (1/N when N workers send to the same server).
    pub fn with_quota(mut self, share: Option<f64>) -> Self {
        self.quota = share.map(|share| QuotaSchedule::new(Quota::new(share)));
        self
    }

    /// Time requests waited because of the rate-limit headers.
    pub fn paced_by_quota(&self) -> Duration {
        self.quota
            .as_ref()
            .map_or(Duration::ZERO, QuotaSchedule::waited)
    }

    /// An answer's rate-limit headers said `reading` (with `retry_after`; a reset at most
    /// `max_wait` away): the pacing from now on. Returns what was read and the pacing when it
    /// is worth saying (`-v`).
    pub fn read_quota(
        &self,
        reading: &Reading,
        retry_after: Option<Duration>,
        max_wait: Duration,
        now: Instant,
    ) -> Option<(State, Pacing)> {
        let quota = self.quota.as_ref()?;
        let state = reading.state(super::quota::unix_now(), retry_after, max_wait)?;
        let pacing = quota.observe(&state, now, self.sending.get())?;
        Some((state, pacing))
    }

    /// Whether the servers' rate-limit headers are obeyed (not `--no-rate-limit-headers`).
    pub fn heeds_quota(&self) -> bool {
        self.quota.is_some()
    }

    /// A request that passed the gate is back (answered or failed).
    pub fn returned(&self) {
        self.sending.set(self.sending.get().saturating_sub(1));
    }

    /// Time during which at least one slot waited in the gate.
    pub fn throttled(&self) -> Duration {
        let now_waiting = if self.waiting.get() > 0 {
            self.waiting_since.get().elapsed()
        } else {
            Duration::ZERO
        };
        self.throttled.get() + now_waiting
    }

    /// Waits until this worker may send one more request; returns the time it passed (read
    /// once here, so that the caller need not read the clock again to time the request).
    pub async fn pass(&self) -> Instant {
        let now = Instant::now();
        if self.started.get().is_none() {
            self.started.set(Some(now));
            self.bucket_at.set(now);
        }
        let Some(mut at) = self.reserve(now) else {
            self.sending.set(self.sending.get() + 1);
            return now;
        };
        self.begin_wait();
        let mut woke = now;
        loop {
            crate::worker::wait::pause_until(at.max(woke)).await;
            woke = Instant::now();
            // An answer said meanwhile that the quota is used up: wait for its reset.
            match &self.quota {
                Some(quota) if quota.not_before().is_some_and(|t| t > woke + SLACK) => {
                    at = quota.hold(woke, woke);
                }
                _ => break,
            }
        }
        self.end_wait();
        // In flight from now on (not while waiting here: the server counts it only once sent).
        self.sending.set(self.sending.get() + 1);
        woke
    }

    /// The time this request may go, if it must wait; takes its place in the schedule.
    fn reserve(&self, now: Instant) -> Option<Instant> {
        let paused = self.paused_until.get().filter(|until| *until > now);
        let start = paused.unwrap_or(now);
        let at = match self.rate.get() {
            None => start,
            Some(rate) => {
                // Never earlier than now: unused time is not saved up into a burst.
                let at = self.next_at.get().map_or(start, |next| next.max(start));
                self.next_at
                    .set(Some(at + Duration::from_secs_f64(1.0 / rate)));
                at
            }
        };
        let at = match &self.quota {
            Some(quota) => quota.hold(at, now),
            None => at,
        };
        (at > now + SLACK).then_some(at)
    }

    fn begin_wait(&self) {
        if self.waiting.get() == 0 {
            self.waiting_since.set(Instant::now());
        }
        self.waiting.set(self.waiting.get() + 1);
    }

    fn end_wait(&self) {
        self.waiting.set(self.waiting.get() - 1);
        if self.waiting.get() == 0 {
            self.throttled
                .set(self.throttled.get() + self.waiting_since.get().elapsed());
        }
    }

    /// An answer other than 429 arrived: counts towards the rate the server accepts, and lets
    /// an adaptive rate grow back.
    pub fn answered(&self, now: Instant) {
        self.roll(now);
        let bucket = &self.answered[self.bucket.get()];
        bucket.set(bucket.get().saturating_add(1));
        let since = now.duration_since(self.last_change.get());
        if self.fixed.is_none()
            && let Some(rate) = self.rate.get()
            && since >= BUCKET
            && self.refused_share() <= TOLERATED_429
        {
            // Growth by the time passed, not by the answers counted: at a low rate answers
            // are rare, and growing once per answer would take minutes to recover.
            let steps = since.as_secs_f64() / BUCKET.as_secs_f64();
            self.rate.set(Some(rate * (1.0 + GROWTH).powf(steps)));
            self.last_change.set(now);
        }
    }

    /// A 429 arrived. With `retry_after`, the worker pauses until then; either way an adaptive
    /// gate cuts its rate to what the server answered without 429 over the last second (once
    /// per [`BUCKET`]: the answers to requests already in flight don't cut it again).
    pub fn too_many(&self, now: Instant, retry_after: Option<Duration>) {
        if let Some(wait) = retry_after {
            let until = now + wait;
            if self.paused_until.get().is_none_or(|p| p < until) {
                self.paused_until.set(Some(until));
            }
        }
        if self.fixed.is_some() {
            return;
        }
        self.roll(now);
        let bucket = &self.refused[self.bucket.get()];
        bucket.set(bucket.get().saturating_add(1));
        let recently_cut =
            self.rate.get().is_some() && now.duration_since(self.last_change.get()) < BUCKET;
        if recently_cut || (self.rate.get().is_some() && self.refused_share() <= TOLERATED_429) {
            return;
        }
        self.last_change.set(now);
        if self.answered_in_window() < MIN_ANSWERS_TO_MEASURE {
            // Too few answers to tell the server's rate (another shard may have used up its
            // allowance): hold back for a moment instead of guessing a rate near zero.
            let until = now + BUCKET;
            if self.paused_until.get().is_none_or(|p| p < until) {
                self.paused_until.set(Some(until));
            }
            return;
        }
        let accepted = self.accepted_rate(now);
        let cut = match self.rate.get() {
            Some(rate) => (accepted * CUT_TO).min(rate * CUT_TO),
            None => accepted * CUT_TO,
        };
        self.rate.set(Some(cut.max(MIN_RATE)));
    }

    /// The share of 429s among the answers in the window; 0 while there are too few of them
    /// to mean anything.
    fn refused_share(&self) -> f64 {
        let refused: u64 = self.refused.iter().map(|b| u64::from(b.get())).sum();
        let answered: u64 = self.answered.iter().map(|b| u64::from(b.get())).sum();
        if refused < TOLERATED_429_COUNT {
            return 0.0;
        }
        refused as f64 / (refused + answered).max(1) as f64
    }

    fn answered_in_window(&self) -> u64 {
        self.answered.iter().map(|b| u64::from(b.get())).sum()
    }

    /// Answers other than 429 per second over the window (as much of it as has passed).
    fn accepted_rate(&self, now: Instant) -> f64 {
        let total: u64 = self.answered.iter().map(|b| u64::from(b.get())).sum();
        // The buckets hold the current one (partly passed) and the ones before it, but never
        // more than the run has lasted.
        let window =
            now.duration_since(self.bucket_at.get()) + BUCKET * (WINDOW_BUCKETS as u32 - 1);
        let since_start = now.duration_since(self.started.get().unwrap_or(now));
        let span = window.min(since_start).max(Duration::from_millis(1));
        total as f64 / span.as_secs_f64()
    }

    /// Moves the window forward to `now`, emptying the buckets it passes.
    fn roll(&self, now: Instant) {
        while now.duration_since(self.bucket_at.get()) >= BUCKET {
            let next = (self.bucket.get() + 1) % WINDOW_BUCKETS;
            self.answered[next].set(0);
            self.refused[next].set(0);
            self.bucket.set(next);
            self.bucket_at.set(self.bucket_at.get() + BUCKET);
        }
    }

    /// Requests per second now allowed (`None`: unlimited).
    #[cfg(test)]
    fn rate(&self) -> Option<f64> {
        self.rate.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_rate_spaces_requests_evenly_and_saves_no_burst() {
        let gate = Gate::new(Some(1000.0));
        let now = Instant::now();
        let times: Vec<Option<Instant>> = (0..5).map(|_| gate.reserve(now)).collect();
        // The first goes at once; then one per millisecond (within the slack, the second too).
        assert_eq!(times[0], None);
        assert_eq!(times[4], Some(now + Duration::from_millis(4)));
        // After an idle second, the next one goes at once, and the one after it 1 ms later:
        // the idle time bought no burst.
        let later = now + Duration::from_secs(1);
        assert_eq!(gate.reserve(later), None);
        assert_eq!(gate.next_at.get(), Some(later + Duration::from_millis(1)));
    }

    #[test]
    fn a_429_cuts_an_adaptive_rate_to_what_was_answered_then_it_grows_back() {
        let gate = Gate::new(None);
        let start = Instant::now();
        gate.started.set(Some(start));
        gate.bucket_at.set(start);
        assert_eq!(gate.rate(), None, "unlimited until a 429");
        // 2,000 answers over one second.
        for k in 0..2000u32 {
            gate.answered(start + Duration::from_micros(u64::from(k) * 500));
        }
        let t = start + Duration::from_secs(1);
        gate.too_many(t, None);
        let cut = gate.rate().expect("limited");
        assert!((1700.0..=1900.0).contains(&cut), "{cut}");
        // Early in a run the window is what has passed: 100 answers in 50 ms are 2,000/s.
        let early = Gate::new(None);
        let begun = Instant::now();
        early.started.set(Some(begun));
        early.bucket_at.set(begun);
        for k in 0..100u32 {
            early.answered(begun + Duration::from_micros(u64::from(k) * 500));
        }
        early.too_many(begun + Duration::from_millis(50), None);
        let early_cut = early.rate().expect("limited");
        assert!((1700.0..=1900.0).contains(&early_cut), "{early_cut}");
        // More 429s right after (answers to requests already sent) don't cut again.
        gate.too_many(t + Duration::from_millis(10), None);
        assert_eq!(gate.rate(), Some(cut));
        // Later, a few 429s among many answers are noise: no cut.
        gate.too_many(t + Duration::from_millis(120), None);
        assert_eq!(gate.rate(), Some(cut));
        // Answers without 429 let it grow, a little per 100 ms.
        gate.answered(t + Duration::from_millis(150));
        let grown = gate.rate().expect("limited");
        assert!(grown > cut && grown < cut * 1.05, "{grown}");
        // A 429 before any answer (another shard used the allowance up) sets no rate: the
        // worker holds back for a moment.
        let blind = Gate::new(None);
        let t0 = Instant::now();
        blind.started.set(Some(t0));
        blind.bucket_at.set(t0);
        blind.too_many(t0 + Duration::from_millis(1), None);
        assert_eq!(blind.rate(), None);
        assert_eq!(
            blind.reserve(t0 + Duration::from_millis(1)),
            Some(t0 + Duration::from_millis(101))
        );
    }

    #[test]
    fn a_quota_used_up_holds_requests_until_its_reset_and_in_flight_ones_count() {
        use super::super::quota::{Family, Field};
        let gate = Gate::new(None).with_quota(Some(1.0));
        let now = Instant::now();
        let mut reading = Reading::default();
        reading.take(Field::Remaining(Family::X), b"2");
        reading.take(Field::Reset(Family::X), b"3");
        // 2 left, 2 in flight: none more until the reset.
        gate.sending.set(2);
        assert!(
            gate.read_quota(&reading, None, Duration::MAX, now)
                .is_some(),
            "said"
        );
        assert_eq!(gate.reserve(now), Some(now + Duration::from_secs(3)));
        gate.returned();
        gate.returned();
        // Nothing in flight: the 2 left spread over the 3 s (less the rounding: 2.5 s).
        let fresh = Gate::new(None).with_quota(Some(1.0));
        fresh.read_quota(&reading, None, Duration::MAX, now);
        assert_eq!(fresh.reserve(now), None);
        assert_eq!(fresh.reserve(now), Some(now + Duration::from_millis(1250)));
        assert_eq!(fresh.paced_by_quota(), Duration::from_millis(1250));
        // Turned off: nothing read, nothing held.
        let off = Gate::new(None);
        assert!(off.read_quota(&reading, None, Duration::MAX, now).is_none());
        assert_eq!(off.reserve(now), None);
    }

    #[test]
    fn a_429_with_retry_after_pauses_the_worker() {
        let gate = Gate::new(Some(1e6));
        let now = Instant::now();
        gate.too_many(now, Some(Duration::from_secs(2)));
        assert_eq!(gate.rate(), Some(1e6), "a fixed rate stays");
        assert_eq!(gate.reserve(now), Some(now + Duration::from_secs(2)));
    }
}
