//! The worker's budget for answer bodies held in memory (`--body-memory`): the bodies its
//! slots are receiving, the windows their decoders hold (a zstd frame's up to 8 MiB, a brotli
//! stream's up to 16 MiB: sized from the stream's header, waited for before the first bytes
//! are decoded), plus the records waiting for the pipe to the supervisor. Without it a
//! worker holds concurrency × `--max-body` (256 slots × 16 MiB = 4 GiB by default).
//!
//! A slot asks before it reads more of a body over HTTP/1.1 ([`BodyBudget::grow`]); while the
//! budget is spent it waits, and the server's bytes wait in the socket (TCP flow control holds
//! the server back). No new request starts while the budget is spent ([`BodyBudget::admit`]).
//!
//! Waiting slots hold what they have, so a budget smaller than what they hold together could
//! stop them all. The oldest holder (the first to take bytes of those holding any) is therefore
//! never made to wait: it finishes, lets go, and the next oldest becomes the one that may go
//! on. So a worker holds at most the budget plus one body (`--max-body`), plus one read per
//! slot that decoding expanded.
//!
//! Over HTTP/2 a stream that stopped reading would keep its share of the connection's flow
//! control window from the other streams on it, the oldest holder among them; there the budget
//! only holds back new requests, and what a stream receives is counted, not waited for.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use crate::worker::wait::Parked;

/// What one slot holds of the budget.
#[derive(Debug, Default)]
pub struct Hold {
    /// When it began holding: older holders go first.
    ticket: Option<u64>,
    bytes: usize,
}

/// One worker's budget (all its slots are on one thread).
#[derive(Debug)]
pub struct BodyBudget {
    limit: usize,
    /// Held by slots.
    held: Cell<usize>,
    /// Records encoded and waiting for the pipe.
    backlog: Cell<usize>,
    /// Tickets of the slots holding bytes; the first is the oldest.
    holders: RefCell<BTreeSet<u64>>,
    next_ticket: Cell<u64>,
    /// Slots waiting for room: woken to look again when bytes are let go (a hold shrinks, or
    /// the pipe's backlog does), the only changes that can make room. Parked, not polling: with
    /// hundreds of slots waiting, a look every millisecond each was hundreds of thousands of
    /// wake-ups a second.
    waiters: Parked,
    /// Times a slot waited before reading more.
    pub waits: Cell<u64>,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            held: Cell::new(0),
            backlog: Cell::new(0),
            holders: RefCell::default(),
            next_ticket: Cell::new(0),
            waiters: Parked::default(),
            waits: Cell::new(0),
        }
    }

    /// Bytes in use: held by slots and waiting for the pipe.
    pub fn in_use(&self) -> usize {
        self.held.get() + self.backlog.get()
    }

    /// Bytes of records waiting for the pipe, as the sink says after each push or write.
    pub fn set_backlog(&self, bytes: usize) {
        if bytes < self.backlog.replace(bytes) {
            self.waiters.wake_all();
        }
    }

    /// Before a new request: waits while the budget is spent. Those holding it go on, and the
    /// pipe drains, so this ends.
    pub async fn admit(&self) {
        self.waiters.until(|| self.in_use() < self.limit).await;
    }

    /// `hold` is to become `bytes`: at once when that fits, or when `hold` is the oldest
    /// holder; otherwise after others let go.
    pub async fn grow(&self, hold: &mut Hold, bytes: usize) {
        if bytes <= hold.bytes {
            return;
        }
        if !self.fits(hold, bytes) {
            self.waits.set(self.waits.get() + 1);
            // Holding something already, it keeps its place in the line while it waits.
            self.waiters.until(|| self.fits(hold, bytes)).await;
        }
        self.settle(hold, bytes);
    }

    /// `hold` is now `bytes`, whatever the budget says (what was received is held; a body
    /// handed on, or a buffer dropped, lets go).
    pub fn settle(&self, hold: &mut Hold, bytes: usize) {
        self.held.set(self.held.get() - hold.bytes + bytes);
        let shrank = bytes < hold.bytes;
        hold.bytes = bytes;
        match (hold.ticket, bytes) {
            (None, 1..) => {
                let ticket = self.next_ticket.get();
                self.next_ticket.set(ticket + 1);
                self.holders.borrow_mut().insert(ticket);
                hold.ticket = Some(ticket);
            }
            (Some(ticket), 0) => {
                self.holders.borrow_mut().remove(&ticket);
                hold.ticket = None;
            }
            _ => {}
        }
        // Room for others, and maybe a new oldest holder.
        if shrank {
            self.waiters.wake_all();
        }
    }

    /// The oldest holder passes the other holders' bytes (they may be waiting for it), not
    /// the pipe's backlog, which drains without any slot: it waits for that, down to nothing
    /// when its body alone is larger than the budget.
    fn fits(&self, hold: &Hold, bytes: usize) -> bool {
        let oldest = self.holders.borrow().first().copied();
        let backlog = self.backlog.get();
        let room_beside_backlog = backlog + bytes <= self.limit || backlog == 0;
        self.in_use() - hold.bytes + bytes <= self.limit
            || (hold.ticket.is_some() && hold.ticket == oldest && room_beside_backlog)
            || (oldest.is_none() && self.in_use() == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run<F: Future>(work: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(work)
    }

    #[test]
    fn within_the_budget_nobody_waits_and_letting_go_returns_the_bytes() {
        let budget = BodyBudget::new(100);
        let (mut a, mut b) = (Hold::default(), Hold::default());
        run(async {
            budget.grow(&mut a, 60).await;
            budget.grow(&mut b, 40).await;
        });
        assert_eq!((budget.in_use(), budget.waits.get()), (100, 0));
        budget.settle(&mut a, 0);
        budget.settle(&mut b, 0);
        assert_eq!(budget.in_use(), 0);
        assert!(budget.holders.borrow().is_empty());
    }

    #[test]
    fn the_oldest_holder_may_pass_the_budget_and_a_younger_one_waits_for_it() {
        let budget = std::rc::Rc::new(BodyBudget::new(100));
        let order = std::rc::Rc::new(RefCell::new(Vec::new()));
        run({
            let (budget, order) = (budget.clone(), order.clone());
            async move {
                let mut old = Hold::default();
                let mut young = Hold::default();
                budget.grow(&mut old, 50).await;
                budget.grow(&mut young, 50).await;
                let waiter = {
                    let (budget, order) = (budget.clone(), order.clone());
                    monoio::spawn(async move {
                        // Over the budget, and not the oldest: waits.
                        budget.grow(&mut young, 80).await;
                        order.borrow_mut().push("young grew");
                        budget.settle(&mut young, 0);
                    })
                };
                monoio::time::sleep(Duration::from_millis(5)).await;
                // The oldest passes the budget at once (150 of 100), then lets go.
                budget.grow(&mut old, 100).await;
                order.borrow_mut().push("old grew");
                assert_eq!(budget.in_use(), 150);
                budget.settle(&mut old, 0);
                waiter.await;
            }
        });
        assert_eq!(*order.borrow(), ["old grew", "young grew"]);
        assert_eq!((budget.in_use(), budget.waits.get()), (0, 1));
    }

    #[test]
    fn the_pipe_backlog_counts_and_a_new_request_waits_for_it_to_drain() {
        let budget = std::rc::Rc::new(BodyBudget::new(100));
        budget.set_backlog(100);
        run({
            let budget = budget.clone();
            async move {
                let drain = {
                    let budget = budget.clone();
                    monoio::spawn(async move {
                        monoio::time::sleep(Duration::from_millis(5)).await;
                        budget.set_backlog(10);
                    })
                };
                budget.admit().await;
                assert_eq!(budget.in_use(), 10);
                drain.await;
            }
        });
    }
}
