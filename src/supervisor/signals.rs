//! Ctrl-C and SIGTERM for a run. The signals are blocked in every supervisor thread and taken by
//! one waiting thread: the first asks every worker to stop (SIGTERM: no new ids, a grace period
//! for in-flight requests); a second kills them (SIGKILL) so the run ends at once. Either way the
//! writer keeps running until the pipes close, so the CSV ends with whole rows.
//!
//! Workers run in their own process group, so a terminal's Ctrl-C reaches only the supervisor,
//! which relays it exactly once.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Shared between the signal thread and the supervisor.
#[derive(Default)]
pub struct Stop {
    /// The first stop signal received (0 = none).
    signal: AtomicI32,
    /// The workers were asked to stop without a signal (`--abort-after`, a failed write).
    terminated: AtomicBool,
    workers: Mutex<Vec<Pid>>,
}

impl Stop {
    /// The signal that stopped the run, if any.
    pub fn signal(&self) -> Option<Signal> {
        Signal::try_from(self.signal.load(Ordering::SeqCst)).ok()
    }

    /// Registers a started worker; if a stop was already asked for, passes it on at once.
    pub fn add_worker(&self, pid: u32) {
        let pid = Pid::from_raw(pid as i32);
        if let Ok(mut workers) = self.workers.lock() {
            workers.push(pid);
        }
        if self.signal().is_some() {
            let _ = kill(pid, Signal::SIGTERM);
        }
    }

    /// Asks every worker to stop as after Ctrl-C (no new ids, the grace period for in-flight
    /// requests), without counting as an interruption by a signal.
    pub fn terminate_workers(&self) {
        self.terminated.store(true, Ordering::SeqCst);
        self.signal_workers(Signal::SIGTERM);
    }

    /// Kills every worker at once (nothing they send can be written any more).
    pub fn kill_workers(&self) {
        self.terminated.store(true, Ordering::SeqCst);
        self.signal_workers(Signal::SIGKILL);
    }

    /// The run is stopping: no worker that ends is to be replaced.
    pub fn stopping(&self) -> bool {
        self.signal().is_some() || self.terminated.load(Ordering::SeqCst)
    }

    /// A stop as Ctrl-C asks for it: the first asks every worker to stop (the grace period for
    /// in-flight requests), the next kills them. (The signal thread calls it; so can a test.)
    pub fn request(&self, signal: Signal) {
        let first = self
            .signal
            .compare_exchange(0, signal as i32, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if first {
            crate::note!(
                "\nringscrape: {signal}: stopping (in-flight requests get the grace period; again to stop now)"
            );
            self.signal_workers(Signal::SIGTERM);
        } else {
            crate::say!("\nringscrape: {signal} again: stopping now");
            self.signal_workers(Signal::SIGKILL);
        }
    }

    fn signal_workers(&self, signal: Signal) {
        if let Ok(workers) = self.workers.lock() {
            for pid in workers.iter() {
                let _ = kill(*pid, signal);
            }
        }
    }
}

/// Blocks SIGINT/SIGTERM in the calling thread (threads started later inherit that) and starts
/// the thread that handles them. Call before starting any other thread.
pub fn watch() -> nix::Result<Arc<Stop>> {
    let signals = crate::runtime::block_stop_signals()?;
    let stop = Arc::new(Stop::default());
    let handler = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(signal) = signals.wait() {
                handler.request(signal);
            }
        })
        .map_err(|_| nix::Error::EAGAIN)?;
    Ok(stop)
}

/// The conventional exit code for a run ended by `signal`: 128 + its number.
pub fn exit_code(signal: Signal) -> u8 {
    128 + signal as u8
}
