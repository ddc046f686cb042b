//! Connection pacing: how many TCP connects a worker has in flight at once, and why that
//! number moves.
//!
//! Thousands of slots starting together would otherwise send thousands of SYNs in one burst.
//! A listen queue holds `net.core.somaxconn` (often 4096) connections; past that the kernel
//! drops SYNs, and each dropped one comes back only after the SYN retransmit timer (1 s, then
//! 3 s), so a burst shows up as seconds of tail latency, and a real server reads it as a SYN
//! flood. The window works like TCP's congestion window for connects: it starts at
//! [`INITIAL_WINDOW`] and grows by one with each connect that succeeds (doubling per round trip
//! while the server keeps up).
//!
//! What makes it shrink is the server, not the network. A connect that waits much longer than
//! the path's round trip has lost its SYN (or the SYN-ACK): on a lossy path a few percent do,
//! at random; behind a full listen queue most of a burst does. So a late connect leaves the
//! window at once (no new connect waits behind a retransmit) and is raced by a new one (the
//! slot waits a round trip more, not the kernel's 1 s), and the window halves only when,
//! over a round of connects, more than [`OVERLOAD_SHARE`] of them were late or refused
//! (`ECONNREFUSED`, a reset, `EAGAIN`): a server pushing back, which random loss of a few
//! percent never looks like. `-v` says each time the window halves, and why.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Connects in flight at the start: a new worker's first connections go out in one round trip
/// (a listen queue of nginx's default 511 takes them), and the window doubles from there.
const INITIAL_WINDOW: usize = 256;
/// The window never shrinks below this: a few connects always go ahead.
const MIN_WINDOW: usize = 4;
/// A connect is late, its SYN presumed lost, after this many of the path's shortest connect
/// times ...
const LATE_RTTS: u32 = 4;
/// ... but never sooner than this (a loopback connect's round trip is microseconds, and the
/// kernel's port search alone can take milliseconds) ...
const LATE_FLOOR: Duration = Duration::from_millis(200);
/// ... and always before the kernel's first SYN retransmit (1 s): a retransmitted SYN is
/// always late. Also the wait before any connect has finished.
const LATE_CEILING: Duration = Duration::from_millis(900);
/// Over a round of connects, the share late or refused beyond which the server is taken to be
/// pushing back. 1% loss each way makes ~2% of connects late; a full listen queue, most.
const OVERLOAD_SHARE: f64 = 0.25;
/// A round is at least this many connects, so that a handful cannot make a share.
const MIN_ROUND: usize = 16;

/// How one connect went, for the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Connected within the late mark.
    OnTime,
    /// Still connecting at the late mark: a SYN (or SYN-ACK) was lost.
    Late,
    /// The server refused or reset it, or the kernel had no room (`EAGAIN`).
    PushedBack,
    /// Failed some other way (no route, …): says nothing about the server's load.
    Other,
}

impl Outcome {
    fn of<T>(result: &io::Result<T>) -> Outcome {
        match result {
            Ok(_) => Outcome::OnTime,
            Err(e) if is_push_back(e) => Outcome::PushedBack,
            Err(_) => Outcome::Other,
        }
    }
}

fn is_push_back(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::WouldBlock
    )
}

/// The connects of the round under way.
#[derive(Debug, Default, Clone, Copy)]
struct Round {
    /// Connects that end the round (the window when it began).
    length: usize,
    on_time: usize,
    late: usize,
    pushed_back: usize,
}

impl Round {
    fn counted(&self) -> usize {
        self.on_time + self.late + self.pushed_back
    }
}

/// The connect window of one worker (all on one thread).
#[derive(Debug)]
pub struct Pacer {
    window: Cell<usize>,
    in_flight: Cell<usize>,
    waiting: RefCell<Waiting>,
    /// The shortest connect seen: the path's round trip.
    shortest: Cell<Option<Duration>>,
    round: Cell<Round>,
    /// Times the window was halved, for the log.
    pub backoffs: Cell<u64>,
    /// Connects that were late, for the log.
    pub late: Cell<u64>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            window: Cell::new(INITIAL_WINDOW),
            in_flight: Cell::new(0),
            waiting: RefCell::default(),
            shortest: Cell::new(None),
            round: Cell::new(Round {
                length: INITIAL_WINDOW,
                ..Round::default()
            }),
            backoffs: Cell::new(0),
            late: Cell::new(0),
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

/// A connect's place in the window, held until it connects, fails or turns late.
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

    /// How long a connect may take before its SYN is presumed lost.
    fn late_after(&self) -> Duration {
        self.shortest.get().map_or(LATE_CEILING, |rtt| {
            (rtt * LATE_RTTS).clamp(LATE_FLOOR, LATE_CEILING)
        })
    }

    fn learn(&self, outcome: Outcome, took: Duration) {
        let mut round = self.round.get();
        match outcome {
            Outcome::OnTime => {
                let shortest = self.shortest.get().map_or(took, |s| s.min(took));
                self.shortest.set(Some(shortest));
                self.window.set(self.window.get() + 1);
                round.on_time += 1;
            }
            Outcome::Late => {
                self.late.set(self.late.get() + 1);
                round.late += 1;
            }
            Outcome::PushedBack => round.pushed_back += 1,
            Outcome::Other => return,
        }
        if round.counted() >= round.length.max(MIN_ROUND) {
            self.end_round(&round);
            round = Round {
                length: self.window.get(),
                ..Round::default()
            };
        }
        self.round.set(round);
    }

    /// Halves the window when the round's connects say the server is pushing back.
    fn end_round(&self, round: &Round) {
        let share = (round.late + round.pushed_back) as f64 / round.counted() as f64;
        if share <= OVERLOAD_SHARE {
            return;
        }
        let from = self.window.get();
        let to = (from / 2).max(MIN_WINDOW);
        self.window.set(to);
        self.backoffs.set(self.backoffs.get() + 1);
        crate::detail!(
            "ringscrape: connect window {from} -> {to}: of the last {} connects, {} waited over \
             {} ms (SYNs dropped) and {} were refused: the server is not keeping up",
            round.counted(),
            round.late,
            self.late_after().as_millis(),
            round.pushed_back
        );
    }

    fn leave(&self) {
        self.in_flight.set(self.in_flight.get() - 1);
        // Wake as many as there is room for; a woken slot that finds no room waits again.
        let room = self.window.get().saturating_sub(self.in_flight.get());
        self.waiting.borrow_mut().wake(room);
    }

    /// Runs `first` within the window. If it turns late (its SYN presumed lost), it goes on
    /// outside the window and a second connect from `again` (a new socket, a new SYN) races it
    /// within the window, and a third if the second turns late too: the slot waits a round
    /// trip or two more, not for the kernel's 1 s retransmit. The first to connect is kept
    /// (the others' sockets are closed); when all fail, the first's error is returned.
    pub async fn connect<T, F>(
        &self,
        first: F,
        mut again: impl FnMut() -> Option<F>,
    ) -> io::Result<T>
    where
        F: Future<Output = io::Result<T>>,
    {
        let mut first = std::pin::pin!(first);
        if let Some(result) = self.in_window(first.as_mut()).await {
            return result;
        }
        let Some(second) = again() else {
            return first.await;
        };
        let second = async {
            let mut second = std::pin::pin!(second);
            if let Some(result) = self.in_window(second.as_mut()).await {
                return result;
            }
            match again() {
                None => second.await,
                Some(third) => {
                    either_connects(second, std::pin::pin!(self.to_the_end(third))).await
                }
            }
        };
        either_connects(first, std::pin::pin!(second)).await
    }

    /// Runs `attempt` in the window until it ends or turns late (`None`).
    async fn in_window<T>(
        &self,
        attempt: Pin<&mut impl Future<Output = io::Result<T>>>,
    ) -> Option<io::Result<T>> {
        self.enter().await.until_late(attempt).await
    }

    /// Runs `attempt` in the window, and on outside it if it turns late.
    async fn to_the_end<T>(&self, attempt: impl Future<Output = io::Result<T>>) -> io::Result<T> {
        let mut attempt = std::pin::pin!(attempt);
        match self.in_window(attempt.as_mut()).await {
            Some(result) => result,
            None => attempt.await,
        }
    }
}

impl Permit<'_> {
    /// Polls `connect` while holding the place in the window, until it ends (`Some`, and the
    /// window learns how) or turns late (`None`: counted, and the place given up).
    async fn until_late<T>(
        self,
        mut connect: Pin<&mut impl Future<Output = io::Result<T>>>,
    ) -> Option<io::Result<T>> {
        let pacer = self.pacer;
        let started = Instant::now();
        // Boxed: see `wait::pause`. First looked at after the least a mark can be: before any
        // connect has ended, the mark is the ceiling, and it comes down as they end.
        let mut mark = Box::pin(monoio::time::sleep(LATE_FLOOR));
        let before_mark = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = connect.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            // The mark moves as the first connects teach the path's round trip.
            while mark.as_mut().poll(cx).is_ready() {
                let late_after = pacer.late_after();
                if started.elapsed() >= late_after {
                    return Poll::Ready(None);
                }
                mark.as_mut()
                    .reset(monoio::time::Instant::from_std(started + late_after));
            }
            Poll::Pending
        })
        .await;
        let outcome = before_mark.as_ref().map_or(Outcome::Late, Outcome::of);
        pacer.learn(outcome, started.elapsed());
        before_mark
    }
}

/// The first of two connects to succeed; when both fail, `a`'s error.
async fn either_connects<T>(
    mut a: Pin<&mut impl Future<Output = io::Result<T>>>,
    mut b: Pin<&mut impl Future<Output = io::Result<T>>>,
) -> io::Result<T> {
    let (mut a_failed, mut b_failed) = (None, None);
    std::future::poll_fn(|cx| {
        if a_failed.is_none()
            && let Poll::Ready(result) = a.as_mut().poll(cx)
        {
            match result {
                Ok(connected) => return Poll::Ready(Ok(connected)),
                Err(e) => a_failed = Some(e),
            }
        }
        if b_failed.is_none()
            && let Poll::Ready(result) = b.as_mut().poll(cx)
        {
            match result {
                Ok(connected) => return Poll::Ready(Ok(connected)),
                Err(e) => b_failed = Some(e),
            }
        }
        match (a_failed.take(), b_failed.is_some()) {
            (Some(e), true) => Poll::Ready(Err(e)),
            (a, _) => {
                a_failed = a;
                Poll::Pending
            }
        }
    })
    .await
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

    const QUICK: Duration = Duration::from_millis(50);

    #[test]
    fn the_window_bounds_connects_and_grows_by_one_per_connect_on_time() {
        let pacer = Pacer::default();
        let permits: Vec<_> = (0..INITIAL_WINDOW)
            .map(|_| now_or_never(pacer.enter()).expect("room in the window"))
            .collect();
        assert!(
            now_or_never(pacer.enter()).is_none(),
            "one more than the window must wait"
        );
        for permit in permits {
            pacer.learn(Outcome::OnTime, QUICK);
            drop(permit);
        }
        assert_eq!(pacer.window(), 2 * INITIAL_WINDOW);
        assert_eq!(pacer.late_after(), LATE_FLOOR, "4 × 50 ms");
    }

    #[test]
    fn random_loss_of_a_few_percent_never_shrinks_the_window() {
        let pacer = Pacer::default();
        // 1% loss each way: about one connect in fifty waits for a retransmitted SYN.
        for n in 0..10_000 {
            let outcome = if n % 50 == 0 {
                Outcome::Late
            } else {
                Outcome::OnTime
            };
            pacer.learn(outcome, QUICK);
        }
        assert_eq!(pacer.backoffs.get(), 0);
        assert_eq!(pacer.late.get(), 200);
        assert_eq!(pacer.window(), INITIAL_WINDOW + 9_800);
    }

    #[test]
    fn a_round_mostly_late_or_refused_halves_the_window_once() {
        let pacer = Pacer::default();
        // A full listen queue: of a round of 256, most SYNs are dropped, some refused.
        for n in 0..INITIAL_WINDOW {
            let outcome = match n % 4 {
                0 => Outcome::OnTime,
                1 => Outcome::PushedBack,
                _ => Outcome::Late,
            };
            pacer.learn(outcome, QUICK);
        }
        assert_eq!(pacer.backoffs.get(), 1, "one halving per round");
        assert_eq!(pacer.window(), (INITIAL_WINDOW + 64) / 2);
        // Failures that say nothing of the server's load count for nothing.
        for _ in 0..1000 {
            pacer.learn(Outcome::Other, QUICK);
        }
        assert_eq!(pacer.backoffs.get(), 1);
        // Each round is as long as the window when it began: 160 connects, then 80.
        for _ in 0..160 + 80 {
            pacer.learn(Outcome::Late, QUICK);
        }
        assert_eq!((pacer.window(), pacer.backoffs.get()), (40, 3));
    }

    #[test]
    fn refused_and_reset_connects_are_the_server_pushing_back_others_are_not() {
        let refused: io::Result<()> = Err(io::ErrorKind::ConnectionRefused.into());
        let unreachable: io::Result<()> = Err(io::ErrorKind::HostUnreachable.into());
        assert_eq!(Outcome::of(&refused), Outcome::PushedBack);
        assert_eq!(Outcome::of(&unreachable), Outcome::Other);
        assert_eq!(Outcome::of(&Ok::<(), io::Error>(())), Outcome::OnTime);
    }

    async fn connects_after(ms: u64, which: u32) -> io::Result<u32> {
        monoio::time::sleep(Duration::from_millis(ms)).await;
        Ok(which)
    }

    /// Runs `test` on a runtime with timers, with a pacer that has seen a loopback round trip
    /// (so that a connect is late after the 200 ms floor).
    fn on_a_loopback_path<F: Future<Output = ()>>(test: impl FnOnce(&'static Pacer) -> F) {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        let pacer: &'static Pacer = Box::leak(Box::default());
        pacer.shortest.set(Some(Duration::from_micros(50)));
        runtime.block_on(test(pacer));
    }

    #[test]
    fn a_late_connect_leaves_the_window_and_a_second_one_races_it() {
        on_a_loopback_path(|pacer| async move {
            let held: Vec<_> = (0..INITIAL_WINDOW - 1)
                .map(|_| now_or_never(pacer.enter()).expect("room"))
                .collect();
            let started = Instant::now();
            // A connect whose SYN was lost: it ends 1 s on, long past the 200 ms mark. Raced
            // at the mark by a second one that takes 50 ms.
            // The window's last place: a connect whose SYN was lost ends 1 s on, long past
            // the 200 ms mark. There it leaves the window, and a second one, which takes 50 ms,
            // goes in its place (the window being full otherwise) and wins the race.
            let mut next = 1;
            let again = || {
                next += 1;
                Some(connects_after(50, next))
            };
            let connected = pacer.connect(connects_after(1000, 1), again);
            assert_eq!(connected.await.expect("connected"), 2, "the second won");
            let took = started.elapsed();
            assert!(
                took >= LATE_FLOOR + Duration::from_millis(50) && took < Duration::from_millis(400),
                "{took:?}"
            );
            assert_eq!((pacer.late.get(), pacer.backoffs.get()), (1, 0));
            assert!(
                now_or_never(pacer.enter()).is_some(),
                "both places given back"
            );
            drop(held);
        });
    }

    #[test]
    fn when_the_second_connect_is_late_too_a_third_one_races_both() {
        on_a_loopback_path(|pacer| async move {
            let started = Instant::now();
            // Two SYNs lost: the third try, 400 ms on, connects in 50 ms.
            let mut tries = [connects_after(1000, 2), connects_after(50, 3)].into_iter();
            let connected = pacer.connect(connects_after(1000, 1), || tries.next());
            assert_eq!(connected.await.expect("connected"), 3);
            let took = started.elapsed();
            assert!(
                took >= 2 * LATE_FLOOR + Duration::from_millis(50)
                    && took < Duration::from_millis(700),
                "{took:?}"
            );
            assert_eq!(pacer.late.get(), 2);
        });
    }
}
