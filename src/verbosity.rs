//! How much a process says on stderr besides errors: `-q` (errors only), normal, or `-v` (each
//! shard's start and end, each retry). One setting per process, set once at start; the
//! supervisor hands it to its workers in their spec.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Verbosity {
    Quiet = 0,
    Normal = 1,
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets this process's verbosity.
pub fn set(level: Verbosity) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// True when lines of `level` are to be said.
pub fn says(level: Verbosity) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

/// A line on stderr that `-q` leaves out (progress notes, the summary).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if $crate::verbosity::says($crate::verbosity::Verbosity::Normal) {
            eprintln!($($arg)*);
        }
    };
}

/// A line on stderr that only `-v` asks for (shards starting and ending, retries).
#[macro_export]
macro_rules! detail {
    ($($arg:tt)*) => {
        if $crate::verbosity::says($crate::verbosity::Verbosity::Verbose) {
            eprintln!($($arg)*);
        }
    };
}
