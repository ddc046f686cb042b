//! How a worker's tasks wait: [`pause`] and [`pause_until`] (boxed timers, so that no slot's
//! future carries monoio's 640-byte `Sleep` inline), and [`Parked`] for a condition that certain
//! events change (they wake the waiters to look again).

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Sleeps for `duration`: what a slot's task awaits instead of `monoio::time::sleep`.
///
/// monoio's `Sleep` is 640 bytes aligned to 128 (its timer entry is cache-padded for threads a
/// single-threaded runtime never has). Held inline anywhere in a slot's future, it made the
/// whole future 128-aligned and padded at every level: boxed, each slot's task is smaller by
/// more than a kilobyte, which thousands of slots pay for at once. Only waits (rare: a rate
/// gate, a retry not due yet) pay for the box.
pub async fn pause(duration: Duration) {
    Box::pin(monoio::time::sleep(duration)).await
}

/// [`pause`] until `at`.
pub async fn pause_until(at: Instant) {
    Box::pin(monoio::time::sleep_until(monoio::time::Instant::from_std(
        at,
    )))
    .await
}

/// Tasks waiting for a condition that only certain events change (the pipe draining, bodies let
/// go): each such event wakes them all to look again. Parked, not polling on a timer.
#[derive(Debug, Default)]
pub struct Parked(RefCell<Vec<std::task::Waker>>);

impl Parked {
    /// Waits until `ready()` holds, looking again each time [`Parked::wake_all`] is called.
    pub async fn until(&self, mut ready: impl FnMut() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                return std::task::Poll::Ready(());
            }
            self.0.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await;
    }

    pub fn wake_all(&self) {
        for waker in self.0.take() {
            waker.wake();
        }
    }
}
