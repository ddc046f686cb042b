//! The health of the run's proxies, one entry per proxy for all of a worker's dialers (the run's
//! origin, a redirect's, each `{id}` host's): a proxy that fails sits out (benched) for 1 s,
//! doubling with each failure in a row up to a minute, and what each carried (connections,
//! rows, failures, time benched) is tallied for the summary. New connections are shared out by
//! the requests each proxy has sent.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::net::{NetSpec, Proxy};
use crate::stats::ProxyTally;

/// How long a proxy sits out after its first failure in a row, and at most.
const FIRST_BENCH: Duration = Duration::from_secs(1);
const MAX_BENCH: Duration = Duration::from_secs(60);

/// One proxy's health, shared by every dialer of a worker (the run's origin, a redirect's,
/// each `{id}` host's): a proxy benched for one is benched for all.
pub struct ProxyHealth {
    /// The proxy as shown (credentials left out).
    label: String,
    /// Failures in a row, and until when the proxy sits out after the last.
    streak: Cell<u32>,
    benched_until: Cell<Option<Instant>>,
    tally: RefCell<ProxyTally>,
    /// Requests sent through it (each attempt), what new connections are shared out by.
    sent: Cell<u64>,
}

impl ProxyHealth {
    pub(super) fn benched(&self, now: Instant) -> bool {
        self.benched_until.get().is_some_and(|until| until > now)
    }

    /// Benches the proxy after a failure: for 1 s after one failure, doubling with each in a
    /// row, up to [`MAX_BENCH`].
    pub fn failed(&self) {
        let streak = self.streak.get().saturating_add(1);
        self.streak.set(streak);
        let doubling = 2u32.saturating_pow(streak.saturating_sub(1).min(16));
        let bench = FIRST_BENCH.saturating_mul(doubling).min(MAX_BENCH);
        let now = Instant::now();
        let until = now + bench;
        // Time on the bench is counted once where benches overlap (slots that dialed it
        // together fail together).
        let from = self.benched_until.get().filter(|u| *u > now).unwrap_or(now);
        let mut tally = self.tally.borrow_mut();
        tally.failures += 1;
        tally.bench_ms += until.saturating_duration_since(from).as_millis() as u64;
        self.benched_until.set(Some(until.max(from)));
    }

    /// A connection through it is up; `proven`: the target is reached (a tunnel or SOCKS
    /// connection), which ends a streak of failures. A forwarding proxy proves nothing by
    /// accepting a connection: its answer does.
    pub(super) fn carried(&self, proven: bool) {
        if proven {
            self.streak.set(0);
        }
        self.tally.borrow_mut().connections += 1;
    }

    /// Requests sent through it so far.
    pub(super) fn sent(&self) -> u64 {
        self.sent.get()
    }

    /// One more request about to go through it.
    pub fn sending(&self) {
        self.sent.set(self.sent.get() + 1);
    }

    /// One more row answered through this proxy.
    pub fn count_row(&self) {
        self.streak.set(0);
        self.tally.borrow_mut().rows += 1;
    }

    /// What it carried so far; its bench time up to now.
    fn tally(&self, now: Instant) -> ProxyTally {
        let mut tally = *self.tally.borrow();
        let ahead = self
            .benched_until
            .get()
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        tally.bench_ms = tally.bench_ms.saturating_sub(ahead.as_millis() as u64);
        tally
    }
}

/// The health of every proxy the run names, one entry each, for all of a worker's dialers.
#[derive(Default)]
pub struct ProxyBoard {
    entries: RefCell<Vec<(Proxy, Rc<ProxyHealth>)>>,
}

impl ProxyBoard {
    pub fn new(net: &NetSpec) -> ProxyBoard {
        let board = ProxyBoard::default();
        let named = net
            .proxy_pool
            .iter()
            .chain(&net.http_proxy)
            .chain(&net.https_proxy);
        for proxy in named {
            board.health_of(proxy);
        }
        board
    }

    /// The health of `proxy`, shared with every other dialer that goes through it.
    pub(super) fn health_of(&self, proxy: &Proxy) -> Rc<ProxyHealth> {
        let mut entries = self.entries.borrow_mut();
        if let Some((_, health)) = entries.iter().find(|(p, _)| p == proxy) {
            return health.clone();
        }
        let health = Rc::new(ProxyHealth {
            label: proxy.shown(),
            streak: Cell::new(0),
            benched_until: Cell::new(None),
            tally: RefCell::default(),
            sent: Cell::new(0),
        });
        entries.push((proxy.clone(), health.clone()));
        health
    }

    /// What each proxy carried so far, by the proxy as shown.
    pub fn tallies(&self) -> Vec<(String, ProxyTally)> {
        let now = Instant::now();
        self.entries
            .borrow()
            .iter()
            .map(|(_, health)| (health.label.clone(), health.tally(now)))
            .collect()
    }
}
