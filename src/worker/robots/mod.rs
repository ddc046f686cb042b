//! `--robots`: what each origin's robots.txt allows, fetched once per worker and kept (the
//! slots asking for an origin whose file is on its way wait for that one fetch), and the
//! spacing its `Crawl-delay` asks for across the worker's slots.
//!
//! Memory: an origin costs [`HOST_BYTES`] plus its rules (24 bytes and the pattern each); the
//! least recently used origins are let go past [`MAX_HOSTS`] origins or [`MAX_RULES_BYTES`] in
//! all (an origin let go is fetched again when next asked).

mod get;
mod rules;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::request::Origin;
use crate::worker::wait::{Parked, pause_until};
pub use get::{DialerFor, Said};

/// Origins whose robots.txt a worker keeps at once.
const MAX_HOSTS: usize = 16_384;
/// Bytes of kept robots.txt outcomes (rules and origins) a worker holds at most, beside the one
/// origin being added (whose rules are at most [`MAX_ROBOTS_BYTES`] of patterns).
const MAX_RULES_BYTES: usize = 32 << 20;
/// What one kept origin costs beside its rules' patterns and its host name: the map's entry,
/// the shared outcome and its allocation.
pub const HOST_BYTES: usize = std::mem::size_of::<(Origin, Host)>()
    + std::mem::size_of::<Said>()
    + 2 * std::mem::size_of::<usize>()
    + 1;

/// One origin's robots.txt: on its way (`said` is `None`), or what it said.
struct Host {
    said: Option<Rc<Said>>,
    /// When it was last asked (the cache's clock): the least recent go first.
    used: u64,
    /// `Crawl-delay`: no request of this worker to the origin starts before this.
    next_start: Option<Instant>,
    /// What it holds, counted in the cache's total.
    bytes: usize,
}

/// The robots.txt of the origins a worker sends to.
pub struct Robots {
    /// The `User-Agent` sent, whose product token the rules are read for.
    user_agent: String,
    /// Workers that may each send to any origin: a `Crawl-delay` spaces each one's requests by
    /// the delay times this, so that the host sees the delay between the run's requests.
    workers: u32,
    hosts: RefCell<HashMap<Origin, Host>>,
    bytes: Cell<usize>,
    clock: Cell<u64>,
    /// Slots waiting for an origin's robots.txt on its way.
    fetched: Parked,
}

impl Robots {
    pub fn new(user_agent: &str, workers: u32) -> Robots {
        Robots {
            user_agent: user_agent.to_string(),
            workers: workers.max(1),
            hosts: RefCell::default(),
            bytes: Cell::new(0),
            clock: Cell::new(0),
            fetched: Parked::default(),
        }
    }

    /// Whether `target` (path and query) on `origin` may be fetched: `Err` says why not. The
    /// origin's robots.txt is fetched first unless known (with `dialer_for`, within
    /// `deadline`); while it is on its way, other callers for the origin wait for it.
    pub async fn allows(
        &self,
        origin: &Origin,
        target: &[u8],
        dialer_for: DialerFor<'_>,
        deadline: Duration,
    ) -> Result<(), String> {
        let said = self.said(origin, dialer_for, deadline).await;
        match said.allows(target) {
            true => Ok(()),
            false => Err(match &*said {
                Said::DisallowAll { why } => format!("robots.txt unreachable ({why})"),
                _ => format!("robots.txt disallows {}", String::from_utf8_lossy(target)),
            }),
        }
    }

    /// `Crawl-delay`: waits until a request to `origin` may start, and books the next start
    /// the delay (times the workers) later. No wait for an origin without one.
    pub async fn space(&self, origin: &Origin) {
        let now = Instant::now();
        if let Some(start) = self.book(origin, now).filter(|start| *start > now) {
            pause_until(start).await;
        }
    }

    /// When a request to `origin` asked for at `now` may start (`None`: at once, no
    /// `Crawl-delay`), the next start booked after it.
    fn book(&self, origin: &Origin, now: Instant) -> Option<Instant> {
        let delay = self.crawl_delay(origin)?;
        let mut hosts = self.hosts.borrow_mut();
        let host = hosts.get_mut(origin)?;
        let start = host.next_start.map_or(now, |next| next.max(now));
        host.next_start = Some(start + delay * self.workers);
        Some(start)
    }

    /// The `Crawl-delay` `origin`'s robots.txt gave our user agent, if known (for the per-host
    /// pacing to take over).
    pub fn crawl_delay(&self, origin: &Origin) -> Option<Duration> {
        let hosts = self.hosts.borrow();
        let said = hosts.get(origin)?.said.as_ref()?;
        said.crawl_delay().filter(|delay| !delay.is_zero())
    }

    /// What `origin`'s robots.txt said: kept, on its way (waited for), or fetched now.
    async fn said(
        &self,
        origin: &Origin,
        dialer_for: DialerFor<'_>,
        deadline: Duration,
    ) -> Rc<Said> {
        loop {
            match self.known_or_claim(origin) {
                Lookup::Known(said) => return said,
                Lookup::Claimed => break,
                Lookup::OnItsWay => {
                    self.fetched.until(|| !self.on_its_way(origin)).await;
                }
            }
        }
        let claim = Claim {
            robots: self,
            origin: Some(origin),
        };
        let said = Rc::new(get::get(origin, &self.user_agent, dialer_for, deadline).await);
        crate::detail!(
            "ringscrape: robots.txt of {}://{}: {}",
            origin.scheme.as_str(),
            origin.authority,
            said.describe()
        );
        claim.settle(said.clone());
        said
    }

    /// The origin's outcome if kept; else it is claimed for the caller to fetch, unless
    /// another is fetching it.
    fn known_or_claim(&self, origin: &Origin) -> Lookup {
        let used = self.clock.get() + 1;
        self.clock.set(used);
        let mut hosts = self.hosts.borrow_mut();
        match hosts.get_mut(origin) {
            Some(host) => match &host.said {
                Some(said) => {
                    host.used = used;
                    Lookup::Known(said.clone())
                }
                None => Lookup::OnItsWay,
            },
            None => {
                let host = Host {
                    said: None,
                    used,
                    next_start: None,
                    bytes: 0,
                };
                hosts.insert(origin.clone(), host);
                Lookup::Claimed
            }
        }
    }

    fn on_its_way(&self, origin: &Origin) -> bool {
        self.hosts
            .borrow()
            .get(origin)
            .is_some_and(|host| host.said.is_none())
    }

    /// Lets go of the least recently used quarter of the kept origins (never one on its way)
    /// while there are too many or they hold too much.
    fn make_room(&self) {
        let mut hosts = self.hosts.borrow_mut();
        while hosts.len() > MAX_HOSTS || self.bytes.get() > MAX_RULES_BYTES {
            let kept = hosts.values().filter(|host| host.said.is_some());
            let settled = kept.clone().count();
            if settled < 2 {
                return;
            }
            let stamps = kept.map(|host| host.used);
            let Some(cutoff) = crate::worker::lru::cutoff(stamps, (settled / 4).max(1)) else {
                return;
            };
            let mut freed = 0;
            hosts.retain(|_, host| {
                let goes = host.said.is_some() && host.used <= cutoff;
                if goes {
                    freed += host.bytes;
                }
                !goes
            });
            self.bytes.set(self.bytes.get().saturating_sub(freed));
        }
    }
}

/// What the cache knows of an origin when asked.
enum Lookup {
    Known(Rc<Said>),
    /// Nobody is fetching it: the caller now is.
    Claimed,
    OnItsWay,
}

/// An origin claimed for fetching: settled with its outcome, or, if the fetch is dropped half
/// way (its slot's task ended), given up so that a waiting slot fetches it instead.
struct Claim<'a> {
    robots: &'a Robots,
    origin: Option<&'a Origin>,
}

impl Claim<'_> {
    fn settle(mut self, said: Rc<Said>) {
        let Some(origin) = self.origin.take() else {
            return;
        };
        let robots = self.robots;
        let bytes = HOST_BYTES + origin.host.len() + origin.authority.len() + said.bytes();
        if let Some(host) = robots.hosts.borrow_mut().get_mut(origin) {
            host.said = Some(said);
            host.bytes = bytes;
            robots.bytes.set(robots.bytes.get() + bytes);
        }
        robots.make_room();
        robots.fetched.wake_all();
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(origin) = self.origin.take() {
            self.robots.hosts.borrow_mut().remove(origin);
            self.robots.fetched.wake_all();
        }
    }
}

#[cfg(test)]
mod tests;
