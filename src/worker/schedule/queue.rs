//! What a slot works on next: an item whose retry is due, else a new item from the cursor. A
//! retry waiting for its backoff or `Retry-After` waits here, in a heap ordered by due time, not
//! in a slot: the slot takes the next item meanwhile, so a storm of `Retry-After: 1` costs no
//! throughput (before, each waiting retry held its slot: 200 ids over 16 slots with two 503s
//! each took 26 s). The heap is bounded: when it holds `max_waiting` retries, slots take no new
//! items until retries fall due, so memory stays flat through a long storm of 503s.
//!
//! When the host varies, new items and due retries alike go through the look-ahead
//! (`lookahead`): each waits in its host's queue until the host may take one more request.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::cursor::Cursor;
use super::hosts::{Finished, HostId, NONE};
pub use super::item::{Item, Work};
use super::lookahead::{Lookahead, Taken};
use crate::model::Continuation;
use crate::request::RequestTemplate;
use crate::stats::HostBoard;
use crate::worker::pages::Chain;

/// A retry waiting for its time.
struct Due {
    at: Instant,
    /// Tie-breaker: equal times leave in the order they came.
    seq: u64,
    work: Work,
    item: Item,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Longest a slot sleeps before looking again (a retry queued meanwhile may be due sooner).
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// The cursor of new items and the heap of waiting retries of one worker.
pub struct WorkQueue {
    cursor: Cursor,
    retries: RefCell<BinaryHeap<Reverse<Due>>>,
    seq: Cell<u64>,
    max_waiting: usize,
    /// `--next` when resuming: items whose chain goes on from a page already written.
    continuations: RefCell<std::collections::HashMap<u64, Chain>>,
    /// When the host varies: the hosts' queues, and the template that names an item's host.
    hosts: Option<(Lookahead, RequestTemplate)>,
    /// The cursor has no more items.
    exhausted: Cell<bool>,
}

/// What [`WorkQueue::poll`] found.
enum Next {
    Work(Work),
    WaitUntil(Instant),
    Done,
    /// Nothing to do until a request ends (hosts at their caps).
    Parked,
}

impl WorkQueue {
    /// `max_waiting`: retries held at most before new items wait (a few per slot is plenty).
    /// `continuations`: items whose chain of pages goes on from a page already written.
    pub fn new(cursor: Cursor, max_waiting: usize, continuations: &[Continuation]) -> Self {
        let continuations = continuations
            .iter()
            .map(|c| (c.index, Chain::from(c.page, c.next.clone().into_bytes())))
            .collect();
        Self {
            cursor,
            retries: RefCell::new(BinaryHeap::new()),
            seq: Cell::new(0),
            max_waiting: max_waiting.max(1),
            continuations: RefCell::new(continuations),
            hosts: None,
            exhausted: Cell::new(false),
        }
    }

    /// Where item `index`'s chain of pages goes on from (a resumed run's), else its start.
    /// Looked up only while some are left: hashing every item's index (SipHash) for an empty
    /// map was 1.4% of the worker's instructions per request.
    fn continuation_of(&self, index: u64) -> Chain {
        let mut continuations = self.continuations.borrow_mut();
        match continuations.is_empty() {
            true => Chain::default(),
            false => continuations.remove(&index).unwrap_or_default(),
        }
    }

    /// Items go through `lookahead`, each in the queue of its host as `template` names it.
    pub fn by_host(mut self, lookahead: Lookahead, template: RequestTemplate) -> Self {
        self.hosts = Some((lookahead, template));
        self
    }

    /// A request of `host` ended (an item's attempt): its host learns what came of it.
    pub fn finished(&self, host: HostId, what: Finished) {
        if let Some((hosts, _)) = &self.hosts {
            hosts.finish(host, Instant::now(), what);
        }
    }

    /// The hosts touched and the top of each ranking (runs whose host varies).
    pub fn host_board(&self) -> Option<HostBoard> {
        self.hosts
            .as_ref()
            .map(|(hosts, _)| hosts.table.borrow().board())
    }

    /// How long hosts' starts were held back by the quotas they stated (runs whose host varies).
    pub fn host_quota_held(&self) -> std::time::Duration {
        self.hosts
            .as_ref()
            .map_or(std::time::Duration::ZERO, |(hosts, _)| {
                hosts.table.borrow().quota_held()
            })
    }

    /// Stops handing out work (new items and retries alike): a stop signal, a broken pipe.
    pub fn stop(&self) {
        self.cursor.stop();
        if let Some((hosts, _)) = &self.hosts {
            hosts.wake_all();
        }
    }

    /// Retries waiting.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.retries.borrow().len()
    }

    /// Queues `work` (with its item) to be tried at `at`: a retry, or the next page of a chain.
    pub fn retry_at(&self, at: Instant, work: Work, item: &Item) {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        self.retries.borrow_mut().push(Reverse(Due {
            at,
            seq,
            work,
            item: item.clone(),
        }));
        if let Some((hosts, _)) = &self.hosts {
            // It may be due before the time the timekeeper sleeps to.
            hosts.wake_timekeeper();
        }
    }

    /// The next work, its item written into `item`: a due retry first, then a new item; waits
    /// while only retries that are not due yet remain. `None` when there is nothing left (or
    /// the queue was stopped); a retry queued later by another slot is that slot's to take.
    pub async fn next(&self, item: &mut Item) -> Option<Work> {
        if let Some((hosts, template)) = &self.hosts {
            return self.next_by_host(hosts, template, item).await;
        }
        loop {
            // The clock is read only when a retry waits: most items are new ones.
            let now = if self.retries.borrow().is_empty() {
                None
            } else {
                Some(Instant::now())
            };
            match self.poll(item, now) {
                Next::Work(work) => return Some(work),
                Next::Done | Next::Parked => return None,
                Next::WaitUntil(at) => {
                    let wait = at.saturating_duration_since(Instant::now()).min(LOOK_AGAIN);
                    crate::worker::wait::pause(wait.max(Duration::from_millis(1))).await;
                }
            }
        }
    }

    /// [`WorkQueue::next`] through the hosts' queues: the first item of a host that may start
    /// now; else waits for a host's time to come or a request to end.
    async fn next_by_host(
        &self,
        hosts: &Lookahead,
        template: &RequestTemplate,
        item: &mut Item,
    ) -> Option<Work> {
        loop {
            match self.poll_by_host(hosts, template, item, Instant::now()) {
                Next::Work(work) => {
                    hosts.hand_on(!self.retries.borrow().is_empty());
                    return Some(work);
                }
                Next::Done => {
                    hosts.wake_all();
                    return None;
                }
                Next::WaitUntil(at) => hosts.wait(Some(at)).await,
                Next::Parked => hosts.wait(None).await,
            }
        }
    }

    /// Due retries join their hosts' queues (they are in memory already, so the look-ahead's
    /// bound does not hold them back); then new items, one at a time while the look-ahead has
    /// room, until a host may start one.
    fn poll_by_host(
        &self,
        hosts: &Lookahead,
        template: &RequestTemplate,
        item: &mut Item,
        now: Instant,
    ) -> Next {
        if self.cursor.is_stopped() {
            return Next::Done;
        }
        loop {
            let due = {
                let mut retries = self.retries.borrow_mut();
                match retries.peek() {
                    Some(Reverse(due)) if due.at <= now => retries.pop(),
                    _ => None,
                }
            };
            let Some(Reverse(due)) = due else { break };
            let at = hosts.vacant();
            *hosts.item_mut(at) = due.item;
            if let Some(work) = self.queue_for_host(hosts, template, at, due.work, item, now) {
                return Next::Work(work);
            }
        }
        loop {
            if let Taken::Work(work) = hosts.take(item, now) {
                return Next::Work(work);
            }
            if hosts.is_full()
                || self.exhausted.get()
                || self.retries.borrow().len() >= self.max_waiting
            {
                break;
            }
            let at = hosts.vacant();
            let index = self.cursor.next(&mut hosts.item_mut(at).values);
            let Some(index) = index else {
                hosts.unused(at);
                self.exhausted.set(!self.cursor.is_stopped());
                break;
            };
            hosts.item_mut(at).chain = self.continuation_of(index);
            let work = Work { index, attempts: 0 };
            if let Some(work) = self.queue_for_host(hosts, template, at, work, item, now) {
                return Next::Work(work);
            }
        }
        if self.cursor.is_stopped() {
            return Next::Done;
        }
        let retry_at = self.retries.borrow().peek().map(|Reverse(due)| due.at);
        let host_at = match hosts.take(item, now) {
            Taken::Work(work) => return Next::Work(work),
            Taken::Until(at) => at,
        };
        match (retry_at, host_at) {
            (Some(a), Some(b)) => Next::WaitUntil(a.min(b)),
            (Some(at), None) | (None, Some(at)) => Next::WaitUntil(at),
            (None, None) if self.exhausted.get() && hosts.is_empty() => Next::Done,
            (None, None) => Next::Parked,
        }
    }

    /// Queues the item in entry `at` with its host; an item whose values name no host (its
    /// row says `request`, nothing is sent) is handed out at once, in `item`.
    fn queue_for_host(
        &self,
        hosts: &Lookahead,
        template: &RequestTemplate,
        at: u32,
        work: Work,
        item: &mut Item,
        now: Instant,
    ) -> Option<Work> {
        let origin = {
            let entry = hosts.item_mut(at);
            match &entry.values.malformed {
                None => template.origin_of(&entry.values).ok(),
                Some(_) => None,
            }
        };
        let Some(origin) = origin else {
            std::mem::swap(item, &mut *hosts.item_mut(at));
            item.host = NONE;
            hosts.unused(at);
            return Some(work);
        };
        let host = hosts
            .table
            .borrow_mut()
            .id_of(&origin.authority, origin.port, now);
        hosts.push(at, work, host, now);
        None
    }

    /// `now` may be `None` when no retry waits.
    fn poll(&self, item: &mut Item, now: Option<Instant>) -> Next {
        if self.cursor.is_stopped() {
            return Next::Done;
        }
        let mut retries = self.retries.borrow_mut();
        if retries
            .peek()
            .is_some_and(|Reverse(due)| now.is_some_and(|now| due.at <= now))
            && let Some(Reverse(due)) = retries.pop()
        {
            *item = due.item;
            return Next::Work(due.work);
        }
        if retries.len() < self.max_waiting
            && let Some(index) = self.cursor.next(&mut item.values)
        {
            item.chain = self.continuation_of(index);
            return Next::Work(Work { index, attempts: 0 });
        }
        match retries.peek() {
            Some(Reverse(due)) => Next::WaitUntil(due.at),
            None => Next::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::IdRange;
    use crate::job::ItemReader;
    use crate::template::Values;

    fn item(key: &[u8]) -> Item {
        Item {
            values: Values::one(key),
            ..Item::default()
        }
    }

    fn queue(ids: IdRange) -> WorkQueue {
        WorkQueue::new(Cursor::new(ids, None, ItemReader::Numbers), 4, &[])
    }

    #[test]
    fn due_retries_come_before_new_items_and_waiting_ones_after() {
        let q = queue(IdRange::new(0, 3));
        let now = Instant::now();
        let mut key = Item::default();
        assert!(matches!(
            q.poll(&mut key, Some(now)),
            Next::Work(Work {
                index: 0,
                attempts: 0
            })
        ));
        q.retry_at(
            now + Duration::from_secs(1),
            Work {
                index: 0,
                attempts: 1,
            },
            &item(b"0"),
        );
        q.retry_at(
            now,
            Work {
                index: 7,
                attempts: 2,
            },
            &item(b"seven"),
        );
        assert!(matches!(
            q.poll(&mut key, Some(now)),
            Next::Work(Work {
                index: 7,
                attempts: 2
            })
        ));
        assert_eq!(key.values.id(), b"seven", "the retry's own values");
        assert!(matches!(
            q.poll(&mut key, Some(now)),
            Next::Work(Work { index: 1, .. })
        ));
        assert!(matches!(
            q.poll(&mut key, Some(now)),
            Next::Work(Work { index: 2, .. })
        ));
        // Only the retry that is not due yet is left: wait for it, then take it.
        assert!(
            matches!(q.poll(&mut key, Some(now)), Next::WaitUntil(at) if at == now + Duration::from_secs(1))
        );
        let later = now + Duration::from_secs(2);
        assert!(matches!(
            q.poll(&mut key, Some(later)),
            Next::Work(Work {
                index: 0,
                attempts: 1
            })
        ));
        assert!(matches!(q.poll(&mut key, Some(later)), Next::Done));
    }

    #[test]
    fn a_full_heap_of_retries_holds_back_new_items() {
        let q = queue(IdRange::new(0, 100));
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        for index in 50..54 {
            q.retry_at(later, Work { index, attempts: 1 }, &item(b"k"));
        }
        let mut key = Item::default();
        assert!(
            matches!(q.poll(&mut key, Some(now)), Next::WaitUntil(at) if at == later),
            "4 waiting: no new item"
        );
        assert!(matches!(
            q.poll(&mut key, Some(later)),
            Next::Work(Work {
                index: 50,
                attempts: 1
            })
        ));
        assert!(
            matches!(
                q.poll(&mut key, Some(later)),
                Next::Work(Work { index: 51, .. })
            ),
            "due retries first"
        );
    }

    #[test]
    fn a_stopped_queue_hands_out_nothing_not_even_retries() {
        let q = queue(IdRange::new(0, 10));
        let now = Instant::now();
        q.retry_at(
            now,
            Work {
                index: 3,
                attempts: 1,
            },
            &item(b"3"),
        );
        q.stop();
        assert!(matches!(
            q.poll(&mut Item::default(), Some(now)),
            Next::Done
        ));
        assert_eq!(q.waiting(), 1, "left for --resume");
    }
}
