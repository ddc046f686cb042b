//! Process set-up shared by every kind of ringscrape process: the single-threaded monoio runtime
//! (for a worker, or a `serve` thread) — io_uring first, epoll (monoio's legacy driver) when
//! io_uring can't be set up, never silently: the caller is handed the [`DriverChoice`] to say or
//! pass on (a worker sends it to the supervisor, which says it once per run) — and the
//! stop-signal mask.

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

/// [`DRIVER_ENV`] set to something it does not take.
#[derive(Debug, thiserror::Error)]
#[error(
    "RINGSCRAPE_DRIVER={0:?}: give epoll to force the epoll driver, or io_uring (the default: epoll only where io_uring is refused)"
)]
pub struct DriverEnvError(String);

/// Whether [`DRIVER_ENV`] forces epoll: `epoll` in any case, blanks around it allowed; unset,
/// empty or `io_uring` is the default. Anything else is refused (a typo run on io_uring as if
/// it had been read would be a silent mistake); `run`, `tune` and `serve` check it at start.
pub fn epoll_forced() -> Result<bool, DriverEnvError> {
    epoll_asked(std::env::var_os(DRIVER_ENV).as_deref())
}

/// [`epoll_forced`] for the variable's value (`None`: unset).
fn epoll_asked(value: Option<&std::ffi::OsStr>) -> Result<bool, DriverEnvError> {
    let Some(value) = value else {
        return Ok(false);
    };
    let text = value.to_string_lossy();
    match text.trim().to_ascii_lowercase().as_str() {
        "epoll" => Ok(true),
        "" | "io_uring" => Ok(false),
        _ => Err(DriverEnvError(text.into_owned())),
    }
}

/// Which event loop a runtime ended up on (`io_uring` or `epoll` in documents, as [`Driver::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// The driver a runtime ended up on, and why not io_uring when not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverChoice {
    IoUring,
    /// `RINGSCRAPE_DRIVER=epoll` asked for epoll.
    EpollForced,
    /// io_uring could not be set up (a container's seccomp profile, `io_uring_disabled`, an old
    /// kernel): the kernel's answer, short (`Operation not permitted`).
    EpollFallback(String),
}

/// The longest io_uring error kept: a summary line, not a log.
const MAX_REFUSAL_CHARS: usize = 120;

impl DriverChoice {
    /// Epoll because io_uring could not be set up, for `error`: an OS error as its description
    /// alone (`Operation not permitted`, not `… (os error 1)`), anything else as it reads.
    pub fn fallback(error: &io::Error) -> DriverChoice {
        let text = match error.raw_os_error() {
            Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
            None => error.to_string(),
        };
        DriverChoice::EpollFallback(text.chars().take(MAX_REFUSAL_CHARS).collect())
    }

    pub fn driver(&self) -> Driver {
        match self {
            DriverChoice::IoUring => Driver::IoUring,
            DriverChoice::EpollForced | DriverChoice::EpollFallback(_) => Driver::Epoll,
        }
    }

    /// Why not io_uring, in the words the summary and `--summary-json` use:
    /// `RINGSCRAPE_DRIVER=epoll` or `io_uring unavailable: Operation not permitted`.
    pub fn why_not_io_uring(&self) -> Option<String> {
        match self {
            DriverChoice::IoUring => None,
            DriverChoice::EpollForced => Some(format!("{DRIVER_ENV}=epoll")),
            DriverChoice::EpollFallback(error) => Some(format!("io_uring unavailable: {error}")),
        }
    }

    /// The stderr line that says a runtime is on epoll (`None` on io_uring).
    pub fn epoll_line(&self) -> Option<String> {
        match self {
            DriverChoice::IoUring => None,
            DriverChoice::EpollForced => Some(format!(
                "ringscrape: {DRIVER_ENV}=epoll; using the epoll driver"
            )),
            DriverChoice::EpollFallback(error) => Some(format!(
                "ringscrape: io_uring unavailable ({error}); falling back to epoll (see \"In \
                 containers\" in docs/guide.md)"
            )),
        }
    }
}

impl Driver {
    /// The name the summary and `--summary-json` use.
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Runs `make()`'s future to completion on a fresh runtime with timers enabled (the HTTP client's
/// pool and every request deadline need them). `ring_entries` sizes the io_uring queue. Says
/// nothing: `make` is handed the choice, to say or pass on.
pub fn block_on<F, Fut>(ring_entries: u32, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce(DriverChoice) -> Fut,
    Fut: Future,
{
    // Checked at start (`epoll_forced`'s callers): a value it refuses is the default here.
    let forced_epoll = epoll_forced().unwrap_or(false);
    let choice = if forced_epoll {
        DriverChoice::EpollForced
    } else {
        match io_uring_runtime(ring_entries) {
            Ok(mut runtime) => {
                DRIVER.with(|d| d.set(Some(Driver::IoUring)));
                return Ok(runtime.block_on(make(DriverChoice::IoUring)));
            }
            Err(e) => DriverChoice::fallback(&e),
        }
    };
    let mut runtime = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?;
    DRIVER.with(|d| d.set(Some(Driver::Epoll)));
    Ok(runtime.block_on(make(choice)))
}

/// An io_uring runtime whose completions wait for the thread to ask for them, where the kernel
/// has it: deferred task running (6.1+, with the single issuer it needs: the ring is made and
/// used by this thread alone) runs the completions' work only in the thread's own
/// `io_uring_enter` that waits for events, never as an interruption; cooperative task running
/// (5.19+) where not, which took about a tenth off the kernel time per request on `/log`
/// (bench/results.md); a plain ring on older kernels. Deferred over cooperative: HTTPS −3 to
/// −6% CPU per request, plain +1%, HTTP/2 level (bench/README.md, issue 40's fourth pass).
/// monoio's loop waits for events whenever it has no task left to run, and no task of ours
/// re-wakes itself without I/O, so completions are never held back for long.
fn io_uring_runtime(ring_entries: u32) -> io::Result<monoio::Runtime<TimeDriver<IoUringDriver>>> {
    let build = |ring: io_uring::Builder| {
        RuntimeBuilder::<IoUringDriver>::new()
            .enable_timer()
            .with_entries(ring_entries)
            .uring_builder(ring)
            .build()
    };
    let mut deferred = io_uring::IoUring::builder();
    deferred.setup_single_issuer().setup_defer_taskrun();
    let mut cooperative = io_uring::IoUring::builder();
    cooperative.setup_coop_taskrun();
    build(deferred)
        .or_else(|_| build(cooperative))
        .or_else(|_| build(io_uring::IoUring::builder()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_variable_takes_epoll_in_any_case_or_the_default_and_refuses_the_rest() {
        let asked = |v: &str| epoll_asked(Some(std::ffi::OsStr::new(v))).map_err(|e| e.to_string());
        assert_eq!(epoll_asked(None).ok(), Some(false));
        for epoll in ["epoll", "EPOLL", " Epoll\n"] {
            assert_eq!(asked(epoll), Ok(true), "{epoll:?}");
        }
        for default in ["", "  ", "io_uring", "IO_URING"] {
            assert_eq!(asked(default), Ok(false), "{default:?}");
        }
        for typo in ["epol", "uring", "bogus", "epoll,io_uring"] {
            let refused = asked(typo).expect_err(typo);
            assert!(refused.starts_with(&format!("RINGSCRAPE_DRIVER={typo:?}: give epoll")));
        }
    }

    #[test]
    fn a_refused_io_uring_is_said_by_the_kernels_words_short() {
        let refused = DriverChoice::fallback(&io::Error::from_raw_os_error(nix::libc::EPERM));
        assert_eq!(
            refused,
            DriverChoice::EpollFallback("Operation not permitted".into())
        );
        assert_eq!(refused.driver(), Driver::Epoll);
        assert_eq!(
            refused.why_not_io_uring().as_deref(),
            Some("io_uring unavailable: Operation not permitted")
        );
        let long = io::Error::other("x".repeat(500));
        let DriverChoice::EpollFallback(text) = DriverChoice::fallback(&long) else {
            panic!("a fallback");
        };
        assert_eq!(text.len(), MAX_REFUSAL_CHARS);
        assert_eq!(DriverChoice::IoUring.why_not_io_uring(), None);
        assert_eq!(DriverChoice::IoUring.epoll_line(), None);
    }
}
