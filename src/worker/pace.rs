//! Connection pacing: how many TCP connects a worker has in flight at once.
//!
//! Thousands of slots starting together would otherwise send thousands of SYNs in one burst.
//! A listen queue holds `net.core.somaxconn` (often 4096) connections; past that the kernel
//! drops SYNs, and each dropped one comes back only after the SYN retransmit timer (1 s, then
//! 3 s), so a burst shows up as seconds of tail latency, and a real server reads it as a SYN
//! flood. The window works like TCP's congestion window for connects: it starts at
//! [`INITIAL_WINDOW`], grows by one with each connect that succeeds quickly (doubling per
//! round trip while the server keeps up), and halves when a connect fails or takes so long that
//! a SYN must have been dropped ([`SLOW_CONNECT`]).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Connects in flight at the start.
pub const INITIAL_WINDOW: usize = 32;
/// The window never shrinks below this: a few connects always go ahead.
const MIN_WINDOW: usize = 4;
/// A connect at least this slow waited for a SYN to be sent again (the first retransmit
/// comes after 1 s): the server's queue was full. Beyond one long round trip on any real path.
pub const SLOW_CONNECT: Duration = Duration::from_millis(500);

/// The connect window of one worker (all on one thread).
#[derive(Debug)]
pub struct Pacer {
    window: Cell<usize>,
    in_flight: Cell<usize>,
    waiting: RefCell<Waiting>,
    /// Times the window was halved, for the log.
    pub backoffs: Cell<u64>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            window: Cell::new(INITIAL_WINDOW),
            in_flight: Cell::new(0),
            waiting: RefCell::default(),
            backoffs: Cell::new(0),
        }
    }
}

/// Connects waiting for room, in arrival order. A waiter that gives up (its request's deadline
/// passed) leaves at once, so that a wake-up is never spent on it while others wait.
#[derive(Debug, Default)]
struct Waiting {
    order: VecDeque<u64>,
    wakers: HashMap<u64, Waker>,
    next_ticket: u64,
}

impl Waiting {
    /// Queues a new waiter, or refreshes the waker of one still queued; returns its ticket.
    fn wait(&mut self, ticket: Option<u64>, waker: &Waker) -> u64 {
        if let Some(ticket) = ticket
            && let Some(queued) = self.wakers.get_mut(&ticket)
        {
            queued.clone_from(waker);
            return ticket;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.order.push_back(ticket);
        self.wakers.insert(ticket, waker.clone());
        ticket
    }

    fn forget(&mut self, ticket: u64) {
        self.wakers.remove(&ticket);
    }

    /// Wakes up to `n` waiters, the longest waiting first.
    fn wake(&mut self, mut n: usize) {
        while n > 0
            && let Some(ticket) = self.order.pop_front()
        {
            // Tickets of waiters that gave up have no waker left: skipped.
            if let Some(waker) = self.wakers.remove(&ticket) {
                waker.wake();
                n -= 1;
            }
        }
    }
}

/// Waits for room in the window (see [`Pacer::enter`]).
struct Enter<'a> {
    pacer: &'a Pacer,
    ticket: Option<u64>,
}

impl Future for Enter<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let pacer = self.pacer;
        if pacer.in_flight.get() < pacer.window.get() {
            if let Some(ticket) = self.ticket.take() {
                pacer.waiting.borrow_mut().forget(ticket);
            }
            pacer.in_flight.set(pacer.in_flight.get() + 1);
            return Poll::Ready(());
        }
        let ticket = pacer.waiting.borrow_mut().wait(self.ticket, cx.waker());
        self.ticket = Some(ticket);
        Poll::Pending
    }
}

impl Drop for Enter<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            self.pacer.waiting.borrow_mut().forget(ticket);
        }
    }
}

/// A connect's place in the window; [`Permit::done`] says how it went.
pub struct Permit<'a> {
    pacer: &'a Pacer,
}

impl Pacer {
    pub fn window(&self) -> usize {
        self.window.get()
    }

    /// Waits for room in the window.
    pub async fn enter(&self) -> Permit<'_> {
        Enter {
            pacer: self,
            ticket: None,
        }
        .await;
        Permit { pacer: self }
    }

    fn learn(&self, fast: bool) {
        let window = self.window.get();
        if fast {
            self.window.set(window + 1);
        } else {
            self.window.set((window / 2).max(MIN_WINDOW));
            self.backoffs.set(self.backoffs.get() + 1);
        }
    }

    fn leave(&self) {
        self.in_flight.set(self.in_flight.get() - 1);
        // Wake as many as there is room for; a woken slot that finds no room waits again.
        let room = self.window.get().saturating_sub(self.in_flight.get());
        self.waiting.borrow_mut().wake(room);
    }
}

impl Permit<'_> {
    /// The connect ended: `fast` when it succeeded within [`SLOW_CONNECT`].
    pub fn done(self, fast: bool) {
        self.pacer.learn(fast);
    }
}

impl Drop for Permit<'_> {
    /// Also when the connect was cancelled (the request's deadline passed): its place is freed.
    fn drop(&mut self) {
        self.pacer.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }

    #[test]
    fn the_window_bounds_connects_grows_on_success_and_halves_on_a_slow_one() {
        let pacer = Pacer::default();
        let permits: Vec<_> = (0..INITIAL_WINDOW)
            .map(|_| now_or_never(pacer.enter()).expect("room in the window"))
            .collect();
        assert!(
            now_or_never(pacer.enter()).is_none(),
            "one more than the window must wait"
        );
        for permit in permits {
            permit.done(true);
        }
        assert_eq!(pacer.window(), 2 * INITIAL_WINDOW);
        let slow = now_or_never(pacer.enter()).expect("room");
        slow.done(false);
        assert_eq!(pacer.window(), INITIAL_WINDOW);
        assert_eq!(pacer.backoffs.get(), 1);
        for _ in 0..10 {
            now_or_never(pacer.enter()).expect("room").done(false);
        }
        assert_eq!(pacer.window(), MIN_WINDOW);
    }

    #[test]
    fn a_cancelled_connect_frees_its_place() {
        let pacer = Pacer::default();
        let held: Vec<_> = (0..INITIAL_WINDOW)
            .map(|_| now_or_never(pacer.enter()).expect("room"))
            .collect();
        drop(held);
        assert_eq!(pacer.window(), INITIAL_WINDOW, "cancelled: no verdict");
        assert!(now_or_never(pacer.enter()).is_some());
    }

    /// A waker that counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiter_that_gives_up_never_takes_a_wake_up_from_one_still_waiting() {
        let pacer = Pacer::default();
        let mut held: Vec<_> = (0..INITIAL_WINDOW)
            .map(|_| now_or_never(pacer.enter()).expect("room"))
            .collect();
        let poll_with = |future: Pin<&mut Enter<'_>>, count: &std::sync::Arc<Count>| {
            let waker = Waker::from(count.clone());
            future.poll(&mut Context::from_waker(&waker))
        };
        let (gave_up, waits) = (
            std::sync::Arc::new(Count(0.into())),
            std::sync::Arc::new(Count(0.into())),
        );
        let mut first = Box::pin(Enter {
            pacer: &pacer,
            ticket: None,
        });
        let mut second = Box::pin(Enter {
            pacer: &pacer,
            ticket: None,
        });
        assert!(poll_with(first.as_mut(), &gave_up).is_pending());
        assert!(poll_with(second.as_mut(), &waits).is_pending());
        // Polled again (woken by something else): still one place in the queue.
        assert!(poll_with(second.as_mut(), &waits).is_pending());
        drop(first);
        // One place frees up: it goes to the one still waiting, not to the one that gave up.
        drop(held.pop());
        let woken = |c: &Count| c.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!((woken(&gave_up), woken(&waits)), (0, 1));
        assert!(poll_with(second.as_mut(), &waits).is_ready());
    }
}
