//! How many of a worker's slots may have a request in flight: all of them (`--concurrency N`),
//! or a limit found during the run (`--concurrency auto`).
//!
//! The adaptive limit follows the gradient idea of Netflix's concurrency-limits (and Envoy's
//! adaptive concurrency): the latency of a lightly loaded server is the baseline; while answers
//! come back within [`TOLERANCE`] × the baseline the limit grows (by √limit per window), and
//! when latency grows beyond that the limit shrinks in proportion — unless throughput grew with
//! it, since then the extra requests are being served rather than queued. A server that works
//! on K requests at a time and queues the rest settles the limit a little above K, where its
//! queue stays short.
//!
//! Slot `i` may start a request only while `i < limit`; slots above the limit park until it
//! grows. When the work runs out (or a stop signal arrives), [`Limiter::release`] lets every
//! parked slot run, find no work and end.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Where an adaptive limit starts.
const INITIAL_LIMIT: f64 = 8.0;
/// Latency within this factor of the baseline counts as unloaded.
const TOLERANCE: f64 = 1.5;
/// A window lasts at least this long and holds at least [`WINDOW_ANSWERS`] answers.
const WINDOW: Duration = Duration::from_millis(100);
const WINDOW_ANSWERS: u32 = 8;
/// Every this many windows, two windows run at half the limit (the first lets the requests sent
/// at the full limit drain) and the second one's latency becomes the new baseline: the server's unloaded latency may have changed, and a baseline that only ever
/// falls would hold the limit down after a lucky window (one that drifted up would let the
/// limit creep up with the queue it builds).
const PROBE_EVERY: u32 = 150;
/// Throughput must grow by this factor for grown latency to be accepted.
const THROUGHPUT_GAIN: f64 = 1.1;

pub struct Limiter {
    slots: usize,
    limit: Cell<usize>,
    adaptive: Option<RefCell<Gradient>>,
    parked: RefCell<Vec<Option<Waker>>>,
}

impl Limiter {
    /// Every one of `slots` may run.
    pub fn fixed(slots: usize) -> Limiter {
        Limiter::new(slots, None)
    }

    /// A limit between 1 and `slots`, found from the answers' latency.
    pub fn adaptive(slots: usize, now: Instant) -> Limiter {
        let gradient = Gradient::new(slots as f64, now);
        Limiter::new(slots, Some(RefCell::new(gradient)))
    }

    fn new(slots: usize, adaptive: Option<RefCell<Gradient>>) -> Limiter {
        let limit = match &adaptive {
            Some(gradient) => gradient.borrow().whole(),
            None => slots,
        };
        Limiter {
            slots,
            limit: Cell::new(limit),
            adaptive,
            parked: RefCell::new((0..slots).map(|_| None).collect()),
        }
    }

    /// The limit the answers settled on (the slot count for a fixed limit).
    pub fn current(&self) -> usize {
        match &self.adaptive {
            Some(gradient) => gradient.borrow().whole(),
            None => self.slots,
        }
    }

    /// Waits until slot `slot` may start a request.
    pub fn admit(&self, slot: usize) -> Admit<'_> {
        Admit {
            limiter: self,
            slot,
        }
    }

    /// Takes in one answered request's latency; may move the limit.
    /// Whether the limit moves with latency (`--concurrency auto`), i.e. wants [`answered`].
    ///
    /// [`answered`]: Limiter::answered
    pub fn adapts(&self) -> bool {
        self.adaptive.is_some()
    }

    pub fn answered(&self, latency: Duration, now: Instant) {
        let Some(gradient) = &self.adaptive else {
            return;
        };
        let Some(limit) = gradient.borrow_mut().sample(latency, now) else {
            return;
        };
        self.set(limit);
    }

    /// Lets every slot run (the work is over: parked slots must see that and end).
    pub fn release(&self) {
        self.set(self.slots);
    }

    fn set(&self, limit: usize) {
        let old = self.limit.replace(limit.clamp(1, self.slots));
        if limit > old {
            let mut parked = self.parked.borrow_mut();
            for waker in parked[old..limit.min(self.slots)].iter_mut() {
                if let Some(waker) = waker.take() {
                    waker.wake();
                }
            }
        }
    }
}

/// Ready when its slot is below the limit.
pub struct Admit<'a> {
    limiter: &'a Limiter,
    slot: usize,
}

impl Future for Admit<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.slot < self.limiter.limit.get() {
            return Poll::Ready(());
        }
        if let Some(place) = self.limiter.parked.borrow_mut().get_mut(self.slot) {
            *place = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Where a baseline probe is; the limits are those to go back to.
enum Probe {
    Off,
    Draining(f64),
    Measuring(f64),
}

/// The adaptive limit's state: the current window and what earlier ones taught.
struct Gradient {
    limit: f64,
    max: f64,
    /// Lowest mean latency of a window since the last probe, in seconds.
    baseline: Option<f64>,
    windows_since_probe: u32,
    probe: Probe,
    window_start: Instant,
    answers: u32,
    latency_sum: f64,
    /// The previous window's throughput (answers per second) and limit.
    previous: Option<(f64, f64)>,
}

impl Gradient {
    fn new(max: f64, now: Instant) -> Gradient {
        Gradient {
            limit: INITIAL_LIMIT.min(max),
            max,
            baseline: None,
            windows_since_probe: 0,
            probe: Probe::Off,
            window_start: now,
            answers: 0,
            latency_sum: 0.0,
            previous: None,
        }
    }

    fn whole(&self) -> usize {
        self.limit.round().max(1.0) as usize
    }

    /// Adds one answer; at the end of a window returns the new limit.
    fn sample(&mut self, latency: Duration, now: Instant) -> Option<usize> {
        self.answers += 1;
        self.latency_sum += latency.as_secs_f64();
        let elapsed = now.duration_since(self.window_start);
        if elapsed < WINDOW || self.answers < WINDOW_ANSWERS {
            return None;
        }
        let latency = self.latency_sum / f64::from(self.answers);
        let throughput = f64::from(self.answers) / elapsed.as_secs_f64();
        self.answers = 0;
        self.latency_sum = 0.0;
        self.window_start = now;
        match std::mem::replace(&mut self.probe, Probe::Off) {
            Probe::Draining(limit) => {
                self.probe = Probe::Measuring(limit);
                return None;
            }
            Probe::Measuring(limit) => {
                self.baseline = Some(latency);
                self.limit = limit;
                return Some(self.whole());
            }
            Probe::Off => {}
        }
        self.windows_since_probe += 1;
        if self.windows_since_probe >= PROBE_EVERY {
            self.windows_since_probe = 0;
            self.probe = Probe::Draining(self.limit);
            self.limit = (self.limit / 2.0).max(1.0);
            return Some(self.whole());
        }
        let baseline = self.baseline.map_or(latency, |base| base.min(latency));
        self.baseline = Some(baseline);
        let mut gradient = (TOLERANCE * baseline / latency).clamp(0.5, 1.0);
        if let Some((previous_throughput, previous_limit)) = self.previous
            && self.limit > previous_limit
            && throughput > previous_throughput * THROUGHPUT_GAIN
        {
            gradient = 1.0;
        }
        self.previous = Some((throughput, self.limit));
        let headroom = self.limit.sqrt().max(1.0);
        let target = self.limit * gradient + headroom;
        // Grow at once, shrink smoothly: one slow window should not halve the limit.
        let next = if target >= self.limit {
            target
        } else {
            0.7 * self.limit + 0.3 * target
        };
        self.limit = next.clamp(1.0, self.max);
        Some(self.whole())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that works on `capacity` requests at a time, each taking `service`, with the
    /// rest queued: the latency and throughput `limit` requests in flight see.
    fn queueing_server(limit: usize, capacity: usize, service: Duration) -> (Duration, f64) {
        let queued = limit as f64 / capacity as f64;
        let latency = service.mul_f64(queued.max(1.0));
        (latency, limit as f64 / latency.as_secs_f64())
    }

    /// Drives a limiter against the model for `windows` windows; returns the limits it set.
    fn drive(windows: usize, capacity: usize) -> Vec<usize> {
        let service = Duration::from_millis(50);
        let mut now = Instant::now();
        let limiter = Limiter::adaptive(1024, now);
        let mut limits = Vec::new();
        for _ in 0..windows {
            let (latency, throughput) = queueing_server(limiter.current(), capacity, service);
            let answers = (throughput * WINDOW.as_secs_f64()).ceil() as u32 + WINDOW_ANSWERS;
            let step = WINDOW.div_f64(f64::from(answers - 1));
            for _ in 0..answers {
                now += step;
                limiter.answered(latency, now);
            }
            limits.push(limiter.current());
        }
        limits
    }

    #[test]
    fn settles_a_little_above_the_servers_capacity() {
        // 400 windows: two probes included.
        let limits = drive(400, 64);
        // Probe windows run at half the limit on purpose.
        let probes: Vec<usize> = (1..limits.len())
            .filter(|&n| limits[n] * 10 < limits[n - 1] * 6)
            .collect();
        assert!(probes.len() >= 2, "{limits:?}");
        let settled: Vec<usize> = (100..limits.len())
            .filter(|n| !probes.iter().any(|p| (*p..*p + 3).contains(n)))
            .map(|n| limits[n])
            .collect();
        let (low, high) = (
            *settled.iter().min().expect("limits"),
            *settled.iter().max().expect("limits"),
        );
        // At 64 the server is full; at 96 (1.5 × 64) queueing latency reaches the tolerance,
        // and the √limit headroom carries it a little further.
        assert!(low >= 64 && high <= 140, "settled between {low} and {high}");
        let (latency, _) = queueing_server(high, 64, Duration::from_millis(50));
        assert!(latency <= Duration::from_millis(120), "{latency:?}");
    }

    #[test]
    fn grows_quickly_from_the_start() {
        let limits = drive(30, 10_000);
        assert!(limits[29] >= 200, "{limits:?}");
    }

    #[test]
    fn parked_slots_wait_for_the_limit_and_all_run_on_release() {
        let limiter = Limiter::adaptive(16, Instant::now());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let initial = limiter.current();
        assert_eq!(initial, INITIAL_LIMIT as usize);
        assert!(Pin::new(&mut limiter.admit(0)).poll(&mut cx).is_ready());
        let mut above = limiter.admit(initial);
        assert!(Pin::new(&mut above).poll(&mut cx).is_pending());
        limiter.release();
        assert!(Pin::new(&mut above).poll(&mut cx).is_ready());
        let fixed = Limiter::fixed(4);
        assert!(Pin::new(&mut fixed.admit(3)).poll(&mut cx).is_ready());
        assert_eq!(fixed.current(), 4);
    }
}
