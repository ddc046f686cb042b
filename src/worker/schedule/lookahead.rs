//! The look-ahead of a worker whose host varies: items wait here in their host's queue until
//! the host may take one more request (`--host-concurrency`, `--host-rate`, a 429's pause), and a
//! slot takes the first item of any host that may — never waiting on a capped host while another
//! host's item is ready (no head-of-line blocking; scrapy's download slots are the model).
//!
//! Its depth is bounded ([`Lookahead::depth`] items, thousands): memory is flat in the job's
//! size, and deep enough that slots stay busy when each host's items sit next to each other in
//! the key file. A host that may start now sits in the ready list; one whose next start is
//! later, in the timers (a heap by time); one at its concurrency cap in neither, until one of its
//! requests ends. With nothing ready, one slot (the timekeeper) sleeps until the earliest timer
//! and the others are parked until a request's end or the timekeeper makes a host ready: no
//! slot spins.
//!
//! The items' entries are reused: a slot taking an item swaps its own (finished) item into the
//! freed entry, so a steady run allocates nothing here per item.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::hosts::{Finished, HostId, HostTable, NONE};
use super::item::{Item, Work};

/// Fewest items the look-ahead holds, whatever the concurrency.
pub const MIN_DEPTH: usize = 4096;
/// Most items it holds.
pub const MAX_DEPTH: usize = 65_536;

/// The longest the timekeeper sleeps before looking again (a retry queued meanwhile may be due
/// sooner; each such change also wakes it).
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// An item waiting in its host's queue.
struct Entry {
    work: Work,
    item: Item,
    since: Instant,
    next: u32,
}

/// What a slot found.
pub enum Taken {
    /// An item (its host's request counted as started).
    Work(Work),
    /// Nothing may start before this time (or before a request ends).
    Until(Option<Instant>),
}

/// The hosts, their queues of items and who is ready.
pub struct Lookahead {
    /// Shared with the slots, which space their hosts' writes (`HostTable::send_at`).
    pub(super) table: Rc<RefCell<HostTable>>,
    entries: RefCell<Vec<Entry>>,
    free: Cell<u32>,
    /// Items held in hosts' queues.
    held: Cell<usize>,
    depth: usize,
    /// `--host-concurrency`.
    cap: u16,
    ready: RefCell<VecDeque<HostId>>,
    timers: RefCell<BinaryHeap<Reverse<(Instant, HostId)>>>,
    /// Slots parked until a host gets ready; each with the flag it clears when it stops waiting.
    parked: RefCell<VecDeque<(Rc<Cell<bool>>, Waker)>>,
    /// The slot sleeping until the earliest timer, if any (with its flag, to know it).
    timekeeper: RefCell<Option<(Rc<Cell<bool>>, Waker)>>,
}

impl Lookahead {
    /// `cap`: `--host-concurrency`; `depth`: items held at most.
    pub fn new(table: Rc<RefCell<HostTable>>, cap: Option<usize>, depth: usize) -> Self {
        Self {
            table,
            entries: RefCell::new(Vec::new()),
            free: Cell::new(NONE),
            held: Cell::new(0),
            depth: depth.clamp(1, MAX_DEPTH),
            cap: cap.map_or(u16::MAX, |c| u16::try_from(c).unwrap_or(u16::MAX)),
            ready: RefCell::default(),
            timers: RefCell::default(),
            parked: RefCell::default(),
            timekeeper: RefCell::default(),
        }
    }

    /// The look-ahead's depth for `concurrency` slots: 16 items per slot, within bounds.
    pub fn depth_for(concurrency: usize) -> usize {
        concurrency.saturating_mul(16).clamp(MIN_DEPTH, MAX_DEPTH)
    }

    /// Whether it holds as many items as it may (new items wait in the cursor).
    pub fn is_full(&self) -> bool {
        self.held.get() >= self.depth
    }

    pub fn is_empty(&self) -> bool {
        self.held.get() == 0
    }

    /// A free entry, its item's buffers kept from the item it last held: the cursor reads the
    /// next item into it, then [`Lookahead::push`] queues it (or [`Lookahead::unused`] gives it
    /// back).
    pub fn vacant(&self) -> u32 {
        let mut entries = self.entries.borrow_mut();
        match self.free.get() {
            NONE => {
                entries.push(Entry {
                    work: Work {
                        index: 0,
                        attempts: 0,
                    },
                    item: Item::default(),
                    since: Instant::now(),
                    next: NONE,
                });
                (entries.len() - 1) as u32
            }
            free => {
                self.free.set(entries[free as usize].next);
                free
            }
        }
    }

    /// The item of entry `at`, to be filled.
    pub fn item_mut(&self, at: u32) -> std::cell::RefMut<'_, Item> {
        std::cell::RefMut::map(self.entries.borrow_mut(), |e| &mut e[at as usize].item)
    }

    /// Entry `at` was not filled after all.
    pub fn unused(&self, at: u32) {
        let mut entries = self.entries.borrow_mut();
        entries[at as usize].next = self.free.get();
        self.free.set(at);
    }

    /// Queues the item in entry `at` (`work` of it) at the end of host `host`'s queue.
    pub fn push(&self, at: u32, work: Work, host: HostId, now: Instant) {
        {
            let mut entries = self.entries.borrow_mut();
            let entry = &mut entries[at as usize];
            entry.work = work;
            entry.since = now;
            entry.next = NONE;
            entry.item.host = host;
            let mut table = self.table.borrow_mut();
            let h = table.get_mut(host);
            match h.tail {
                NONE => h.head = at,
                tail => entries[tail as usize].next = at,
            }
            h.tail = at;
        }
        self.held.set(self.held.get() + 1);
        self.schedule(host, now);
    }

    /// Puts `host` (with items waiting, not queued) where it belongs: ready, in the timers, or
    /// nowhere while it is at its cap.
    fn schedule(&self, host: HostId, now: Instant) {
        let mut table = self.table.borrow_mut();
        let robots = table.robots();
        let h = table.get_mut(host);
        if h.queued || h.head == NONE || h.at_cap(self.cap, robots) {
            return;
        }
        h.queued = true;
        match h.next_at.filter(|at| *at > now) {
            Some(at) => {
                self.timers.borrow_mut().push(Reverse((at, host)));
                self.wake_timekeeper();
            }
            None => {
                self.ready.borrow_mut().push_back(host);
                self.wake_one();
            }
        }
    }

    /// The first item of a host that may start now, swapped into `item` (which leaves its
    /// old contents in the freed entry); else when to look again.
    pub fn take(&self, item: &mut Item, now: Instant) -> Taken {
        self.due_timers(now);
        loop {
            let Some(host) = self.ready.borrow_mut().pop_front() else {
                let next = self.timers.borrow().peek().map(|Reverse((at, _))| *at);
                return Taken::Until(next);
            };
            let mut table = self.table.borrow_mut();
            let robots = table.robots();
            let h = table.get_mut(host);
            if h.at_cap(self.cap, robots) {
                h.queued = false;
                continue;
            }
            if let Some(at) = h.next_at.filter(|at| *at > now) {
                self.timers.borrow_mut().push(Reverse((at, host)));
                continue;
            }
            let at = h.head;
            let (work, since) = {
                let mut entries = self.entries.borrow_mut();
                let entry = &mut entries[at as usize];
                h.head = entry.next;
                if h.head == NONE {
                    h.tail = NONE;
                }
                std::mem::swap(item, &mut entry.item);
                entry.next = self.free.get();
                (entry.work, entry.since)
            };
            self.free.set(at);
            self.held.set(self.held.get() - 1);
            h.queued = false;
            table.start(host, now, since);
            drop(table);
            self.schedule(host, now);
            return Taken::Work(work);
        }
    }

    /// Moves the hosts whose time has come from the timers to the ready list.
    fn due_timers(&self, now: Instant) {
        let mut timers = self.timers.borrow_mut();
        let mut ready = self.ready.borrow_mut();
        while let Some(Reverse((at, host))) = timers.peek().copied()
            && at <= now
        {
            timers.pop();
            ready.push_back(host);
        }
    }

    /// A request of `host` ended: the host is told, and if that lets it start another of its
    /// items, a parked slot is woken for it.
    pub fn finish(&self, host: HostId, now: Instant, what: Finished) {
        if host == NONE {
            return;
        }
        self.table.borrow_mut().finish(host, now, what);
        self.schedule(host, now);
    }

    /// Waits until a host may be ready: until `until` for the timekeeper (the first slot to
    /// wait with a time), until woken for the others.
    pub async fn wait(&self, until: Option<Instant>) {
        let keeps_time = until.is_some() && self.timekeeper.borrow().is_none();
        let waiting = Rc::new(Cell::new(true));
        let mut sleep = keeps_time.then(|| {
            let at = until.map_or(LOOK_AGAIN, |at| {
                at.saturating_duration_since(Instant::now()).min(LOOK_AGAIN)
            });
            Box::pin(monoio::time::sleep(at))
        });
        let mut polled = false;
        std::future::poll_fn(|cx| {
            if polled {
                return Poll::Ready(());
            }
            polled = true;
            if let Some(sleep) = sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                *self.timekeeper.borrow_mut() = Some((waiting.clone(), cx.waker().clone()));
            } else {
                let waker = cx.waker().clone();
                self.parked.borrow_mut().push_back((waiting.clone(), waker));
            }
            Poll::Pending
        })
        .await;
        waiting.set(false);
        let mut timekeeper = self.timekeeper.borrow_mut();
        if timekeeper
            .as_ref()
            .is_some_and(|(w, _)| Rc::ptr_eq(w, &waiting))
        {
            *timekeeper = None;
        }
    }

    /// Wakes one parked slot (one still waiting), or the timekeeper when none is parked.
    fn wake_one(&self) {
        let mut parked = self.parked.borrow_mut();
        while let Some((waiting, waker)) = parked.pop_front() {
            if waiting.get() {
                waiting.set(false);
                waker.wake();
                return;
            }
        }
        drop(parked);
        self.wake_timekeeper();
    }

    /// Wakes the timekeeper to look at the timers again (one came sooner, or it must hand
    /// its role on).
    pub fn wake_timekeeper(&self) {
        if let Some((_, waker)) = self.timekeeper.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Wakes every waiting slot: the work is done or stopped.
    pub fn wake_all(&self) {
        for (waiting, waker) in self.parked.take() {
            if waiting.get() {
                waker.wake();
            }
        }
        self.wake_timekeeper();
    }

    /// After a slot took an item: if more hosts are ready, or timers (or `retries` waiting
    /// outside) wait with no timekeeper, another slot is woken for them.
    pub fn hand_on(&self, retries: bool) {
        let more_ready = !self.ready.borrow().is_empty();
        let timed = retries || !self.timers.borrow().is_empty();
        let unkept = self.timekeeper.borrow().is_none() && timed;
        if more_ready || unkept {
            self.wake_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(index: u64) -> Work {
        Work { index, attempts: 0 }
    }

    fn lookahead(rate: Option<f64>, cap: Option<usize>) -> Lookahead {
        let table = HostTable::new(rate, Duration::from_secs(60));
        Lookahead::new(Rc::new(RefCell::new(table)), cap, 8)
    }

    fn push(l: &Lookahead, index: u64, host: &str, now: Instant) -> HostId {
        let at = l.vacant();
        let id = l.table.borrow_mut().id_of(host, 80, now);
        l.push(at, work(index), id, now);
        id
    }

    fn taken(l: &Lookahead, now: Instant) -> Option<u64> {
        match l.take(&mut Item::default(), now) {
            Taken::Work(w) => Some(w.index),
            Taken::Until(_) => None,
        }
    }

    #[test]
    fn a_capped_host_blocks_only_itself() {
        let l = lookahead(None, Some(2));
        let now = Instant::now();
        for index in 0..5 {
            push(&l, index, "hot", now);
        }
        let cold = push(&l, 5, "cold", now);
        let hot = l.table.borrow_mut().id_of("hot", 80, now);
        // The cold one past the hot host's other items (hosts take turns), and two of the hot.
        assert_eq!(taken(&l, now), Some(0));
        assert_eq!(taken(&l, now), Some(5));
        assert_eq!(taken(&l, now), Some(1));
        assert_eq!(taken(&l, now), None, "hot is at its cap");
        l.finish(cold, now, Finished::default());
        assert_eq!(taken(&l, now), None, "cold's end frees nothing of hot's");
        l.finish(hot, now, Finished::default());
        assert_eq!(taken(&l, now), Some(2));
        assert_eq!(l.held.get(), 2);
    }

    #[test]
    fn with_robots_a_new_hosts_first_item_goes_alone_and_others_go_meanwhile() {
        let table = HostTable::new(None, Duration::from_secs(60)).with_robots(true);
        let l = Lookahead::new(Rc::new(RefCell::new(table)), Some(4), 16);
        let now = Instant::now();
        for index in 0..5 {
            push(&l, index, "slow", now);
        }
        let fast = push(&l, 5, "fast", now);
        push(&l, 6, "fast", now);
        let slow = l.table.borrow_mut().id_of("slow", 80, now);
        // One of slow's (fetching its robots.txt), then fast's first alone too.
        assert_eq!(taken(&l, now), Some(0));
        assert_eq!(taken(&l, now), Some(5));
        assert_eq!(taken(&l, now), None, "each host's first is under way");
        l.finish(fast, now, Finished::default());
        assert_eq!(taken(&l, now), Some(6), "fast's rules known: its others go");
        assert_eq!(taken(&l, now), None, "slow still waits for its robots.txt");
        l.finish(slow, now, Finished::default());
        // Then slow up to its cap of 4.
        let next: Vec<_> = (0..5).map(|_| taken(&l, now)).collect();
        assert_eq!(next, [Some(1), Some(2), Some(3), Some(4), None]);
    }

    #[test]
    fn a_host_rate_spaces_its_items_while_others_go() {
        let l = lookahead(Some(10.0), None);
        let now = Instant::now();
        push(&l, 0, "a", now);
        push(&l, 1, "a", now);
        push(&l, 2, "b", now);
        assert_eq!(taken(&l, now), Some(0));
        assert_eq!(taken(&l, now), Some(2));
        let spacing = crate::assignment::spacing_of(10.0);
        match l.take(&mut Item::default(), now) {
            Taken::Until(Some(at)) => assert_eq!(at, now + spacing),
            _ => panic!("a waits for its spacing"),
        }
        assert_eq!(taken(&l, now + spacing), Some(1));
        assert!(l.is_empty());
    }

    #[test]
    fn a_429_pauses_its_host_and_the_others_go_on() {
        let l = lookahead(None, None);
        let now = Instant::now();
        let a = push(&l, 0, "a", now);
        assert_eq!(taken(&l, now), Some(0));
        push(&l, 1, "a", now);
        push(&l, 2, "b", now);
        let refused = Finished {
            status: Some(429),
            retry_after: Some(Duration::from_secs(2)),
            ..Finished::default()
        };
        l.finish(a, now, refused);
        assert_eq!(taken(&l, now), Some(2));
        assert_eq!(taken(&l, now + Duration::from_secs(1)), None);
        assert_eq!(taken(&l, now + Duration::from_secs(2)), Some(1));
    }

    #[test]
    fn entries_are_reused_and_items_swapped() {
        let l = lookahead(None, None);
        let now = Instant::now();
        let at = l.vacant();
        l.item_mut(at).values = crate::template::Values::one(b"first");
        let id = l.table.borrow_mut().id_of("a", 80, now);
        l.push(at, work(0), id, now);
        let mut mine = Item {
            values: crate::template::Values::one(b"old"),
            ..Item::default()
        };
        assert!(matches!(l.take(&mut mine, now), Taken::Work(_)));
        assert_eq!(mine.values.id(), b"first");
        let again = l.vacant();
        assert_eq!(again, at, "the freed entry");
        assert_eq!(
            l.item_mut(again).values.id(),
            b"old",
            "holding the slot's old buffers"
        );
        assert_eq!(l.entries.borrow().len(), 1);
    }
}
