//! A worker's hosts (runs whose host varies): for each host its requests in flight, the earliest
//! time its next request may start (its rate's spacing, a 429's `Retry-After`, a quota), where its
//! waiting items' list starts and ends (the items themselves are the look-ahead's), and its
//! figures for the views. Every item of a host is this worker's (`route`), so these are the
//! host's figures for the whole machine.
//!
//! Memory is bounded: an idle host costs one 96-byte entry, its name and a slot in the index
//! (177 bytes with 100,000 hosts, measured by a unit test below), and when the table holds [`MAX_HOSTS`] hosts the
//! idle ones are forgotten, their figures kept only if they rank in a top list.
//!
//! Other parts pace a host through [`HostTable::pace_until`] ("don't start before T": a
//! `Retry-After`, a quota's reset) and [`HostTable::set_min_spacing`] ("starts at least D apart":
//! a quota's pace); both only ever slow a host down. (robots.txt's `Crawl-delay` is waited for
//! in the slot, `worker::robots`; `--robots` only has a new host's first item go alone here.)

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::quota::{Pacing, Quota, State};
use super::route::host_hash;
use crate::assignment::spacing_of;
use crate::stats::{HostBoard, HostFigures};

/// A host's place in the table.
pub type HostId = u32;

/// No entry (an empty list, an item without a host).
pub const NONE: u32 = u32::MAX;

/// Hosts held before the idle ones are forgotten (~45 MB at most per worker).
pub const MAX_HOSTS: usize = 1 << 18;

/// Hosts each ranking sends to the supervisor.
pub const TOP: usize = 10;

/// One host. Kept small: a run may touch millions (96 bytes, checked by a test).
#[derive(Debug)]
pub struct Host {
    /// `host[:port]` as its URLs give it; `None` for a free entry.
    name: Option<Box<str>>,
    /// The earliest its next request may start.
    pub(super) next_at: Option<Instant>,
    /// When its last request was written (see [`HostTable::send_at`]).
    sent_at: Option<Instant>,
    /// First and last of its items waiting in the look-ahead (`NONE`: none).
    pub(super) head: u32,
    pub(super) tail: u32,
    /// Starts at least this far apart (microseconds), besides `--host-rate`'s spacing.
    min_spacing_us: u32,
    pub(super) in_flight: u16,
    /// In the look-ahead's ready list or timers (at most once).
    pub(super) queued: bool,
    /// Its answers state a quota that paces it (what holds its items back is the quota's).
    quota_paced: bool,
    figures: Counters,
}

impl Host {
    /// Whether it has as many requests in flight as it may (`cap`: `--host-concurrency`). With
    /// `robots` (`--robots`), one until a request of it has ended: the first, which fetches or
    /// waits for its robots.txt, goes alone, so that its other items wait in the look-ahead for
    /// its rules, not in slots that other hosts could use. (None has ended while every request
    /// started is in flight: told by the counts, the entry stays 96 bytes.)
    pub(super) fn at_cap(&self, cap: u16, robots: bool) -> bool {
        let none_ended = self.figures.requests == u32::from(self.in_flight);
        let cap = if robots && none_ended {
            cap.min(1)
        } else {
            cap
        };
        self.in_flight >= cap
    }
}

/// A host's figures, compact (see [`HostFigures`] for their meaning).
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    requests: u32,
    errors: u32,
    throttled: u32,
    answered: u32,
    paced_us: u64,
    latency_us_sum: u64,
}

/// What a finished request of a host came to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finished {
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// Its `Retry-After`, if any.
    pub retry_after: Option<Duration>,
    /// The item's row is an error (no retry follows).
    pub error: bool,
    /// Latency of an answered request, in microseconds.
    pub latency_us: Option<u32>,
}

/// Hashes are FNV-1a of the host already: used as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The worker's hosts.
pub struct HostTable {
    hosts: Vec<Host>,
    /// Host hash → entry; a hash two hosts share (never seen in 64 bits, but possible) moves
    /// the second to the next hash value.
    index: HashMap<u64, HostId, BuildHasherDefault<Identity>>,
    free: Vec<HostId>,
    /// Hosts touched, forgotten ones included.
    touched: u64,
    /// The best of each ranking among forgotten hosts.
    forgotten: Vec<HostFigures>,
    /// `--host-rate`'s spacing.
    spacing: Duration,
    /// Longest pause a host's answer may ask for (`--max-retry-after`).
    max_pause: Duration,
    /// How long hosts' starts were held back by the quotas their answers stated.
    quota_held: Duration,
    /// When `-v` last said a host's quota (at most once a second per worker).
    quota_said: Option<Instant>,
    /// `--robots`: a new host takes one item at a time until its first request ends.
    robots: bool,
}

/// A 429 without `Retry-After` pauses its host this long.
pub const PAUSE_AFTER_429: Duration = Duration::from_secs(1);

impl HostTable {
    /// `rate`: `--host-rate`; `max_pause`: `--max-retry-after`.
    pub fn new(rate: Option<f64>, max_pause: Duration) -> Self {
        Self {
            hosts: Vec::new(),
            index: HashMap::default(),
            free: Vec::new(),
            touched: 0,
            forgotten: Vec::new(),
            spacing: rate.map_or(Duration::ZERO, spacing_of),
            max_pause,
            quota_held: Duration::ZERO,
            quota_said: None,
            robots: false,
        }
    }

    /// `--robots`: each new host's first item goes alone (see [`Host::at_cap`]).
    pub fn with_robots(mut self, robots: bool) -> Self {
        self.robots = robots;
        self
    }

    /// Whether `--robots` is on (for [`Host::at_cap`]).
    pub(super) fn robots(&self) -> bool {
        self.robots
    }

    /// `host[:port]` of entry `id` (empty for a free entry).
    pub fn name(&self, id: HostId) -> &str {
        self.hosts[id as usize].name.as_deref().unwrap_or_default()
    }

    /// The quota host `id`'s answer stated (rate-limit headers): its starts are held until the
    /// quota allows and spaced so that what is left lasts until the reset. Every item of a host
    /// is this worker's, so the whole quota is the worker's to use.
    pub fn heed_quota(&mut self, id: HostId, state: &State, now: Instant) -> Pacing {
        let host = &mut self.hosts[id as usize];
        host.quota_paced = true;
        let pacing = Quota::new(1.0).pacing(state, now, usize::from(host.in_flight));
        self.pace_until(id, pacing.not_before);
        self.set_min_spacing(id, pacing.spacing);
        pacing
    }

    /// How long hosts paced by their quotas were held back, summed over hosts (a host's
    /// waiting items counted once).
    pub fn quota_held(&self) -> Duration {
        self.quota_held
    }

    /// True at most once a second: whether `-v` may say another host's quota now.
    pub fn may_say_quota(&mut self, now: Instant) -> bool {
        let due = self
            .quota_said
            .is_none_or(|said| now.saturating_duration_since(said) >= Duration::from_secs(1));
        if due {
            self.quota_said = Some(now);
        }
        due
    }

    /// The entry of `name` (`host[:port]`), made if new. Names are compared without case, as
    /// DNS does (and as items are routed to workers): `LOCALHOST` is `localhost`, its limits
    /// one host's.
    pub fn id_of(&mut self, name: &str, port: u16, now: Instant) -> HostId {
        let mut hash = host_hash(name, port);
        loop {
            match self.index.get(&hash) {
                Some(&id)
                    if self.hosts[id as usize]
                        .name
                        .as_deref()
                        .is_some_and(|known| known.eq_ignore_ascii_case(name)) =>
                {
                    return id;
                }
                Some(_) => hash = hash.wrapping_add(1),
                None => break,
            }
        }
        if self.hosts.len() - self.free.len() >= MAX_HOSTS {
            self.forget_idle(now);
        }
        let host = Host {
            name: Some(name.into()),
            next_at: None,
            sent_at: None,
            head: NONE,
            tail: NONE,
            min_spacing_us: 0,
            quota_paced: false,
            in_flight: 0,
            queued: false,
            figures: Counters::default(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.hosts[id as usize] = host;
                id
            }
            None => {
                self.hosts.push(host);
                (self.hosts.len() - 1) as HostId
            }
        };
        self.index.insert(hash, id);
        self.touched += 1;
        id
    }

    #[cfg(test)]
    pub fn get(&self, id: HostId) -> &Host {
        &self.hosts[id as usize]
    }

    pub fn get_mut(&mut self, id: HostId) -> &mut Host {
        &mut self.hosts[id as usize]
    }

    /// The host's request starts now (`now`), after an item waited since `since`: counted,
    /// and its next start spaced.
    pub fn start(&mut self, id: HostId, now: Instant, since: Instant) {
        let spacing = self.spacing;
        let host = &mut self.hosts[id as usize];
        // What the host's own pacing held the item back, not the wait for a free slot.
        let paced = host
            .next_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(since));
        host.figures.paced_us = host.figures.paced_us.saturating_add(micros(paced));
        if host.quota_paced {
            // The host's time held, not its items': from its last write (or the item's coming,
            // if later) to now. Summed over waiting items, 2 hosts paced through a 6 s run
            // came to 274 s.
            let from = host.sent_at.map_or(since, |sent| sent.max(since));
            self.quota_held += host
                .next_at
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(from));
        }
        host.figures.requests = host.figures.requests.saturating_add(1);
        host.in_flight = host.in_flight.saturating_add(1);
        let spacing = spacing.max(Duration::from_micros(u64::from(host.min_spacing_us)));
        host.next_at = (!spacing.is_zero()).then(|| now + spacing);
    }

    /// A request of the host is about to be written, its connection open: when it may go, if
    /// it must wait. Starts are spaced when items are taken, but a connect may wait (the
    /// connect window, a lost SYN) and then two of a host's requests would reach it together:
    /// writes are kept the spacing apart as well, as the server's limiter counts them.
    pub fn send_at(&mut self, id: HostId, now: Instant) -> Option<Instant> {
        let host = &mut self.hosts[id as usize];
        let spacing = self
            .spacing
            .max(Duration::from_micros(u64::from(host.min_spacing_us)));
        if spacing.is_zero() {
            return None;
        }
        let at = host.sent_at.map_or(now, |sent| (sent + spacing).max(now));
        host.sent_at = Some(at);
        (at > now).then_some(at)
    }

    /// The host's request is being written now, after waiting for [`HostTable::send_at`]'s
    /// time: the next write is spaced from now, not from the time booked. A write that woke late
    /// (a busy loop) followed by one on time would otherwise put R + 1 writes into a second.
    pub fn sent(&mut self, id: HostId, now: Instant) {
        let host = &mut self.hosts[id as usize];
        host.sent_at = Some(host.sent_at.map_or(now, |booked| booked.max(now)));
    }

    /// A request of the host ended: counted, and a 429 (or a 503 with `Retry-After`) pauses
    /// the host — that host only.
    pub fn finish(&mut self, id: HostId, now: Instant, what: Finished) {
        let host = &mut self.hosts[id as usize];
        host.in_flight = host.in_flight.saturating_sub(1);
        let figures = &mut host.figures;
        if what.error {
            figures.errors = figures.errors.saturating_add(1);
        }
        if let Some(latency) = what.latency_us.filter(|_| what.status.is_some()) {
            figures.answered = figures.answered.saturating_add(1);
            figures.latency_us_sum = figures.latency_us_sum.saturating_add(u64::from(latency));
        }
        let pause = match (what.status, what.retry_after) {
            (Some(429), wait) => Some(wait.unwrap_or(PAUSE_AFTER_429)),
            (Some(503), Some(wait)) => Some(wait),
            _ => None,
        };
        if matches!(what.status, Some(429 | 503)) {
            figures.throttled = figures.throttled.saturating_add(1);
        }
        if let Some(pause) = pause {
            self.pace_until(id, now + pause.min(self.max_pause));
        }
    }

    /// The host starts no request before `at` (a `Retry-After`, a quota's reset). A later
    /// pause already set stays.
    pub fn pace_until(&mut self, id: HostId, at: Instant) {
        let host = &mut self.hosts[id as usize];
        if host.next_at.is_none_or(|next| next < at) {
            host.next_at = Some(at);
        }
    }

    /// The host's starts are at least `spacing` apart from now on (robots.txt's `Crawl-delay`,
    /// a quota's pace), besides `--host-rate`'s. The wider of the two holds.
    pub fn set_min_spacing(&mut self, id: HostId, spacing: Duration) {
        let host = &mut self.hosts[id as usize];
        host.min_spacing_us = u32::try_from(spacing.as_micros()).unwrap_or(u32::MAX);
    }

    /// Hosts touched and the top of each ranking, for the worker's stats (every second: the
    /// hosts are ranked in place, and only the few that rank are copied out).
    pub fn board(&self) -> HostBoard {
        let live = self
            .hosts
            .iter()
            .filter_map(|host| Some((host.name.as_deref()?, host.figures)));
        let forgotten = self
            .forgotten
            .iter()
            .map(|f| (f.host.as_str(), Counters::of(f)));
        HostBoard {
            touched: self.touched,
            top: top_of(live.chain(forgotten).collect()),
        }
    }

    /// Forgets every host with nothing in flight, nothing waiting and no pause ahead, keeping
    /// the figures of those that rank.
    fn forget_idle(&mut self, now: Instant) {
        let board = self.board();
        let mut forgotten = 0;
        for (id, host) in self.hosts.iter_mut().enumerate() {
            let idle = host.in_flight == 0
                && host.head == NONE
                && !host.queued
                && host.next_at.is_none_or(|at| at <= now)
                && host.sent_at.is_none_or(|at| at <= now);
            if idle && host.name.is_some() {
                host.name = None;
                self.free.push(id as HostId);
                forgotten += 1;
            }
        }
        self.index
            .retain(|_, id| self.hosts[*id as usize].name.is_some());
        let kept: std::collections::HashSet<&str> = self
            .hosts
            .iter()
            .filter_map(|h| h.name.as_deref())
            .collect();
        self.forgotten = board
            .top
            .into_iter()
            .filter(|f| !kept.contains(f.host.as_str()))
            .collect();
        crate::detail!("ringscrape: {forgotten} idle hosts forgotten (table full)");
    }
}

impl Counters {
    fn of(f: &HostFigures) -> Counters {
        let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Counters {
            requests: small(f.requests),
            errors: small(f.errors),
            throttled: small(f.throttled),
            answered: small(f.answered),
            paced_us: f.paced_us,
            latency_us_sum: f.latency_us_sum,
        }
    }

    fn figures(&self, host: &str) -> HostFigures {
        HostFigures {
            host: host.to_string(),
            requests: u64::from(self.requests),
            errors: u64::from(self.errors),
            throttled: u64::from(self.throttled),
            paced_us: self.paced_us,
            latency_us_sum: self.latency_us_sum,
            answered: u64::from(self.answered),
        }
    }

    fn mean_latency_us(&self) -> u64 {
        self.latency_us_sum / u64::from(self.answered.max(1))
    }
}

/// The hosts among `all` in the top [`TOP`] of any ranking: slowest mean latency (of those
/// answered), most throttled, most failing (a host with no 429/503 or no error ranks in
/// neither of those).
fn top_of(mut all: Vec<(&str, Counters)>) -> Vec<HostFigures> {
    let rankings: [fn(&Counters) -> u64; 3] = [
        Counters::mean_latency_us,
        |c| u64::from(c.throttled),
        |c| u64::from(c.errors),
    ];
    let mut top: Vec<HostFigures> = Vec::new();
    for key in rankings {
        let by = |(_, c): &(&str, Counters)| std::cmp::Reverse(key(c));
        if all.len() > TOP {
            all.select_nth_unstable_by_key(TOP, by);
        }
        let mut best: Vec<&(&str, Counters)> =
            all.iter().take(TOP).filter(|(_, c)| key(c) > 0).collect();
        best.sort_by_key(|entry| by(entry));
        for (name, counters) in best {
            if !top.iter().any(|t| t.host == *name) {
                top.push(counters.figures(name));
            }
        }
    }
    top
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_counts_the_time_its_host_was_held_not_each_waiting_item() {
        let mut table = HostTable::new(None, Duration::from_secs(60));
        let t0 = Instant::now();
        let host = table.id_of("api.test", 80, t0);
        let used_up = State {
            remaining: 0,
            reset: Duration::from_secs(2),
            rounded: false,
            limit: Some(10),
        };
        table.heed_quota(host, &used_up, t0);
        // Three items waited from t0; each starts when the host may, is written at once.
        for _ in 0..3 {
            let at = table.get(host).next_at.expect("held");
            table.start(host, at, t0);
            let write = table.send_at(host, at).unwrap_or(at);
            table.sent(host, write);
            let answered = Finished {
                status: Some(200),
                ..Finished::default()
            };
            table.finish(host, write, answered);
        }
        let held = table.quota_held();
        // 2 s to the reset and two spacings after it, not 2 s for each of the three items.
        assert!(held >= Duration::from_secs(2), "{held:?}");
        assert!(held < Duration::from_secs(3), "{held:?}");
    }

    #[test]
    fn a_host_name_is_one_host_whatever_its_case() {
        let mut table = HostTable::new(None, Duration::from_secs(60));
        let now = Instant::now();
        let lower = table.id_of("localhost:8003", 8003, now);
        assert_eq!(table.id_of("LOCALHOST:8003", 8003, now), lower);
        assert_eq!(table.id_of("LocalHost:8003", 8003, now), lower);
        assert_ne!(table.id_of("localhost:8004", 8004, now), lower);
        assert_eq!(table.board().touched, 2);
    }

    #[test]
    fn a_host_entry_stays_small() {
        assert!(
            std::mem::size_of::<Host>() <= 96,
            "{}",
            std::mem::size_of::<Host>()
        );
    }

    /// Bytes an idle host costs: its entry, its name and its slot in the index, by the
    /// capacities the table holds (each name's allocation rounded up to malloc's 16 bytes plus
    /// its 8-byte header).
    #[test]
    fn an_idle_host_costs_under_200_bytes() {
        let now = Instant::now();
        let mut table = HostTable::new(Some(5.0), Duration::from_secs(60));
        let hosts = 100_000u32;
        for k in 0..hosts {
            let name = format!("127.{}.{}.{}:8080", k >> 16, (k >> 8) & 255, k & 255);
            let id = table.id_of(&name, 8080, now);
            table.start(id, now, now);
            table.finish(id, now, Finished::default());
        }
        let entries = table.hosts.capacity() * std::mem::size_of::<Host>();
        let index = table.index.capacity() * (std::mem::size_of::<(u64, HostId)>() + 1);
        let names: usize = table
            .hosts
            .iter()
            .filter_map(|h| h.name.as_deref())
            .map(|name| (name.len() + 8).next_multiple_of(16))
            .sum();
        let per_host = (entries + index + names) / hosts as usize;
        eprintln!(
            "bytes per idle host: {per_host} (entries {entries}, index {index}, names {names})"
        );
        assert!(per_host <= 200, "{per_host} bytes per idle host");
        assert_eq!(table.board().touched, u64::from(hosts));
    }

    #[test]
    fn a_429_pauses_its_host_only_and_retry_after_is_capped() {
        let now = Instant::now();
        let mut table = HostTable::new(None, Duration::from_secs(10));
        let a = table.id_of("a.example", 443, now);
        let b = table.id_of("b.example", 443, now);
        table.start(a, now, now);
        table.start(b, now, now);
        assert_eq!(table.get(a).next_at, None, "no rate: no spacing");
        let four_two_nine = Finished {
            status: Some(429),
            retry_after: Some(Duration::from_secs(2)),
            ..Finished::default()
        };
        table.finish(a, now, four_two_nine);
        table.finish(b, now, Finished::default());
        assert_eq!(table.get(a).next_at, Some(now + Duration::from_secs(2)));
        assert_eq!(table.get(b).next_at, None);
        let long = Finished {
            retry_after: Some(Duration::from_secs(3600)),
            ..four_two_nine
        };
        table.finish(b, now, long);
        assert_eq!(table.get(b).next_at, Some(now + Duration::from_secs(10)));
        assert_eq!(
            table.board().top.iter().map(|f| f.throttled).sum::<u64>(),
            2
        );
    }

    #[test]
    fn a_rate_spaces_starts_and_a_min_spacing_widens_it() {
        let now = Instant::now();
        let mut table = HostTable::new(Some(0.5), Duration::from_secs(60));
        let a = table.id_of("a", 80, now);
        table.start(a, now, now);
        assert_eq!(table.get(a).next_at, Some(now + spacing_of(0.5)));
        table.set_min_spacing(a, Duration::from_secs(5));
        table.start(a, now, now);
        assert_eq!(table.get(a).next_at, Some(now + Duration::from_secs(5)));
        // A pause sooner than the spacing does not bring it forward.
        table.pace_until(a, now + Duration::from_secs(1));
        assert_eq!(table.get(a).next_at, Some(now + Duration::from_secs(5)));
    }

    #[test]
    fn a_full_table_forgets_idle_hosts_but_keeps_the_ranking_ones() {
        let now = Instant::now();
        let mut table = HostTable::new(None, Duration::from_secs(60));
        let failing = table.id_of("failing", 80, now);
        table.start(failing, now, now);
        let error = Finished {
            error: true,
            ..Finished::default()
        };
        table.finish(failing, now, error);
        table.forget_idle(now);
        assert_eq!(table.free.len(), 1);
        let again = table.id_of("other", 80, now);
        assert_eq!(again, failing, "the entry is reused");
        let board = table.board();
        assert_eq!(board.touched, 2);
        assert!(
            board
                .top
                .iter()
                .any(|f| f.host == "failing" && f.errors == 1)
        );
    }
}
