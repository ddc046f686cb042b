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

/// Writes `text` and a line end to stderr in one `write` (so that the lines of many workers
/// sharing one stderr never interleave mid-line), and ignores a failure: a closed stderr (`2>&1 |
/// head`, a log reader gone) must not end a run that is writing its rows.
pub fn say_line(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut line = text.to_string();
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A line on stderr, always (errors, what a failed run leaves).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::verbosity::say_line(format_args!($($arg)*))
    };
}

/// A line on stderr that `-q` leaves out (progress notes, the summary).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if $crate::verbosity::says($crate::verbosity::Verbosity::Normal) {
            $crate::say!($($arg)*);
        }
    };
}

/// A line on stderr that only `-v` asks for (shards starting and ending, retries).
#[macro_export]
macro_rules! detail {
    ($($arg:tt)*) => {
        if $crate::verbosity::says($crate::verbosity::Verbosity::Verbose) {
            $crate::say!($($arg)*);
        }
    };
}
