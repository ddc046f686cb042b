//! The worker's names: one cache per worker, in front of its one resolver thread (`lookup.rs`).
//! An answer is kept for its TTL (a missing name for its negative TTL, a failure for
//! [`FAILED_TTL`]), so each name is asked once while the cache holds it; tasks asking for a name
//! already being looked up wait for that one lookup. At most [`NAMES`] names are kept, the least
//! lately used dropped first. Answers reach the loop through a socket pair a task of the loop
//! reads, which wakes the waiters of each answered name: nothing polls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::lookup::{Answer, LookupThread, Outcome};

/// Names kept per worker: at about 200 bytes each (name, addresses, times, map slot; estimated,
/// not measured), 20 MB at most.
const NAMES: usize = 100_000;
/// How long a lookup that failed after its retries (timeouts, SERVFAIL) answers for its name
/// before the name is asked again: the items behind it fail at once instead of each waiting.
pub const FAILED_TTL: Duration = Duration::from_secs(5);

/// What is known of a name.
#[derive(Debug, Clone)]
pub enum Known {
    Addrs(Rc<[IpAddr]>),
    /// Why the name has no address (or the lookup failed).
    Missing(Rc<str>),
}

/// A name's last answer, and until when it holds.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub known: Known,
    /// When the answer came.
    pub at: Instant,
    /// When it is to be asked again (its TTL).
    pub until: Instant,
}

impl Resolved {
    /// Holds at `now` for one that wants answers no older than `max_age`.
    fn holds(&self, now: Instant, max_age: Option<Duration>) -> bool {
        now < self.until && max_age.is_none_or(|age| now < self.at + age)
    }
}

#[derive(Default)]
struct Entry {
    last: Option<Resolved>,
    /// A lookup of the name is under way.
    asking: bool,
    /// Tasks waiting for the lookup under way.
    waiters: Vec<Waker>,
    /// Answers so far (a waiter waits for the next).
    answers: u64,
    /// When it was last asked for, in the cache's ticks (for dropping the least lately used).
    used: u64,
}

/// A worker's cache of names and its resolver thread.
pub struct Names {
    thread: LookupThread,
    entries: RefCell<HashMap<Rc<str>, Entry>>,
    tick: Cell<u64>,
    capacity: usize,
}

thread_local! {
    /// The worker's one `Names` (a worker is one thread), made when first needed.
    static NAMES_OF_WORKER: RefCell<Option<Rc<Names>>> = const { RefCell::new(None) };
}

impl Names {
    /// The worker's names, its resolver thread started (and the task reading its answers
    /// spawned on the worker's runtime) on the first call.
    pub fn of_worker() -> Result<Rc<Names>, String> {
        if let Some(names) = NAMES_OF_WORKER.with(|n| n.borrow().clone()) {
            return Ok(names);
        }
        let names = Rc::new(Self::start(NAMES)?);
        NAMES_OF_WORKER.with(|n| *n.borrow_mut() = Some(names.clone()));
        Ok(names)
    }

    fn start(capacity: usize) -> Result<Names, String> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| format!("no socket pair for the resolver: {e}"))?;
        theirs
            .set_nonblocking(true)
            .map_err(|e| format!("resolver socket: {e}"))?;
        let thread = LookupThread::start(theirs).map_err(|e| format!("no resolver thread: {e}"))?;
        let wake =
            monoio::net::UnixStream::from_std(ours).map_err(|e| format!("resolver socket: {e}"))?;
        monoio::spawn(read_answers(wake));
        Ok(Names {
            thread,
            entries: RefCell::default(),
            tick: Cell::new(0),
            capacity,
        })
    }

    /// `name`'s last answer if it holds (no older than `max_age`); else, one that came after
    /// this call, looked up once however many ask. `wait`: false returns at once what is known
    /// (stale or nothing), a lookup started when none is under way.
    pub async fn resolve(
        &self,
        name: &str,
        max_age: Option<Duration>,
        wait: bool,
    ) -> Option<Resolved> {
        let seen = {
            let mut entries = self.entries.borrow_mut();
            let tick = self.tick.get() + 1;
            self.tick.set(tick);
            let entry = entries.entry(name.into()).or_default();
            entry.used = tick;
            if let Some(last) = &entry.last
                && last.holds(Instant::now(), max_age)
            {
                return Some(last.clone());
            }
            if !entry.asking {
                entry.asking = true;
                self.thread.ask(name);
            }
            if !wait {
                return entry.last.clone();
            }
            entry.answers
        };
        std::future::poll_fn(|cx| {
            let mut entries = self.entries.borrow_mut();
            let Some(entry) = entries.get_mut(name) else {
                // Dropped as least lately used while the lookup was under way: nothing to say.
                return Poll::Ready(None);
            };
            if entry.answers > seen {
                return Poll::Ready(entry.last.clone());
            }
            entry.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Keeps `answer` and wakes the tasks waiting for it.
    fn answered(&self, answer: Answer) {
        let mut entries = self.entries.borrow_mut();
        let entry = entries.entry(answer.name.into()).or_default();
        entry.asking = false;
        entry.answers += 1;
        entry.last = Some(resolved(answer.outcome, Instant::now()));
        for waker in entry.waiters.drain(..) {
            waker.wake();
        }
        if entries.len() > self.capacity {
            forget_least_used(&mut entries, self.capacity);
        }
    }
}

/// What an outcome means for the cache, as of `now`.
fn resolved(outcome: Outcome, now: Instant) -> Resolved {
    let (known, ttl) = match outcome {
        Outcome::Found { addrs, ttl } => (Known::Addrs(addrs.into()), ttl),
        Outcome::NoAddress { why, ttl } => (Known::Missing(why.into()), ttl),
        Outcome::Failed(why) => (Known::Missing(why.into()), FAILED_TTL),
    };
    Resolved {
        known,
        at: now,
        until: now + ttl,
    }
}

/// Drops the eighth of `entries` least lately used (none under way), so that the scan this
/// takes comes once every `capacity / 8` new names.
fn forget_least_used(entries: &mut HashMap<Rc<str>, Entry>, capacity: usize) {
    let idle = entries.values().filter(|e| !e.asking).map(|e| e.used);
    let drop = entries.len().saturating_sub(capacity * 7 / 8);
    if let Some(cut) = crate::worker::lru::cutoff(idle, drop) {
        entries.retain(|_, e| e.asking || e.used > cut);
    }
}

/// The task that takes the resolver thread's answers as its bytes arrive.
async fn read_answers(mut wake: monoio::net::UnixStream) {
    use monoio::io::AsyncReadRent;
    let mut buf = vec![0u8; 64];
    loop {
        let (read, back) = wake.read(buf).await;
        buf = back;
        match read {
            // The thread is gone (never while the worker runs).
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Some(names) = NAMES_OF_WORKER.with(|n| n.borrow().clone()) else {
            continue;
        };
        for answer in names.thread.take_answers() {
            names.answered(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(used: u64, asking: bool) -> Entry {
        Entry {
            used,
            asking,
            ..Entry::default()
        }
    }

    #[test]
    fn the_least_lately_used_names_go_first_and_none_under_way() {
        let mut entries: HashMap<Rc<str>, Entry> = (0..80u64)
            .map(|k| (Rc::from(format!("n{k}")), entry(k, k == 0)))
            .collect();
        forget_least_used(&mut entries, 64);
        // 80 down to 56 (7/8 of 64): the 24 least used go, but n0 is being looked up.
        assert_eq!(entries.len(), 56);
        assert!(entries.contains_key("n0"));
        assert!(!entries.contains_key("n1") && !entries.contains_key("n24"));
        assert!(entries.contains_key("n25") && entries.contains_key("n79"));
    }

    #[test]
    fn an_answer_holds_for_its_ttl_and_no_longer_than_asked() {
        let now = Instant::now();
        let found = Outcome::Found {
            addrs: vec![IpAddr::from([127, 0, 0, 1])],
            ttl: Duration::from_secs(300),
        };
        let answer = resolved(found, now);
        assert!(answer.holds(now + Duration::from_secs(299), None));
        assert!(!answer.holds(now + Duration::from_secs(300), None));
        let refresh = Some(Duration::from_secs(60));
        assert!(!answer.holds(now + Duration::from_secs(61), refresh));
        let failed = resolved(Outcome::Failed("timeout".into()), now);
        assert!(failed.holds(now, None) && !failed.holds(now + FAILED_TTL, None));
        assert!(matches!(failed.known, Known::Missing(_)));
    }
}
