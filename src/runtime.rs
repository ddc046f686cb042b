//! Process set-up shared by every kind of ringscrape process: the single-threaded monoio runtime
//! (for a worker, or a `serve` thread) — io_uring first, epoll (monoio's legacy driver) when
//! io_uring can't be set up, said once on stderr, never silently — and the stop-signal mask.

use std::future::Future;
use std::io;

use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use nix::sys::signal::{SigSet, Signal};

/// Descriptors a worker needs besides its sockets: io_uring, pipes, std streams, DNS, slack.
pub const MARGIN_PER_PROCESS: u64 = 64;

/// Descriptors one slot may hold at once: its socket, an old one it may briefly hold while
/// opening a fresh one, and (`spools_bodies`, under `--bodies-dir`) its body's spool file. The
/// supervisor raises the open-files limit for this (`supervisor/limits.rs`); a worker keeps what
/// is left beyond it for idle connections.
pub fn files_per_slot(spools_bodies: bool) -> u64 {
    2 + u64::from(spools_bodies)
}

/// Set to `epoll` to skip io_uring (to test the fallback, or on kernels where it misbehaves).
pub const DRIVER_ENV: &str = "RINGSCRAPE_DRIVER";

/// Which event loop a runtime ended up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

thread_local! {
    /// The driver of the runtime this thread runs, once [`block_on`] has chosen it.
    static DRIVER: std::cell::Cell<Option<Driver>> = const { std::cell::Cell::new(None) };
}

/// The driver of this thread's runtime (`None` outside one). Sockets made by hand must suit it:
/// io_uring runs them blocking, epoll non-blocking.
pub fn current_driver() -> Option<Driver> {
    DRIVER.with(|d| d.get())
}

/// Runs `make()`'s future to completion on a fresh runtime with timers enabled (the HTTP client's
/// pool and every request deadline need them). `ring_entries` sizes the io_uring queue.
pub fn block_on<F, Fut>(ring_entries: u32, make: F) -> io::Result<(Driver, Fut::Output)>
where
    F: FnOnce(Driver) -> Fut,
    Fut: Future,
{
    let forced_epoll = std::env::var(DRIVER_ENV).is_ok_and(|v| v == "epoll");
    if !forced_epoll {
        match io_uring_runtime(ring_entries) {
            Ok(mut runtime) => {
                DRIVER.with(|d| d.set(Some(Driver::IoUring)));
                return Ok((Driver::IoUring, runtime.block_on(make(Driver::IoUring))));
            }
            Err(e) => crate::say!("ringscrape: io_uring unavailable ({e}); falling back to epoll"),
        }
    } else {
        crate::say!("ringscrape: {DRIVER_ENV}=epoll; using the epoll driver");
    }
    let mut runtime = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?;
    DRIVER.with(|d| d.set(Some(Driver::Epoll)));
    Ok((Driver::Epoll, runtime.block_on(make(Driver::Epoll))))
}

/// An io_uring runtime, with cooperative task running where the kernel has it (5.19+): the
/// kernel then no longer interrupts the thread to post each completion but lets it collect
/// them at its next `io_uring_enter`, which took about a tenth off the kernel time per request
/// on `/log` (bench/results.md). Older kernels refuse the flag; they get a plain ring.
fn io_uring_runtime(ring_entries: u32) -> io::Result<monoio::Runtime<TimeDriver<IoUringDriver>>> {
    let build = |ring: io_uring::Builder| {
        RuntimeBuilder::<IoUringDriver>::new()
            .enable_timer()
            .with_entries(ring_entries)
            .uring_builder(ring)
            .build()
    };
    let mut cooperative = io_uring::IoUring::builder();
    cooperative.setup_coop_taskrun();
    build(cooperative).or_else(|_| build(io_uring::IoUring::builder()))
}

/// Blocks SIGINT and SIGTERM in the calling thread — threads it starts later inherit the mask —
/// and returns the set, so that exactly one place receives them, with `SigSet::wait`, instead of
/// an async handler interrupting whatever thread runs. Call before starting other threads.
pub fn block_stop_signals() -> nix::Result<SigSet> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    Ok(signals)
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: &impl std::os::fd::AsFd, on: bool) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    fcntl(fd, FcntlArg::F_SETFL(flags)).map(|_| ())
}
