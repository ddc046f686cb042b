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
use std::collections::VecDeque;
use std::task::{Poll, Waker};
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
    waiting: RefCell<VecDeque<Waker>>,
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
        std::future::poll_fn(|cx| {
            if self.in_flight.get() < self.window.get() {
                self.in_flight.set(self.in_flight.get() + 1);
                Poll::Ready(())
            } else {
                self.waiting.borrow_mut().push_back(cx.waker().clone());
                Poll::Pending
            }
        })
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
        let mut waiting = self.waiting.borrow_mut();
        let woken = room.min(waiting.len());
        for waker in waiting.drain(..woken) {
            waker.wake();
        }
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

    fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(Waker::noop());
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
}
