//! `--arrow-copy`: every row the writer writes goes to the run's output and, after it, to an
//! Arrow IPC stream (the `arrow` format's writer: same schema, same batches) in a file or on
//! stdout — what a Python caller reads batches from while the output stays exact and resumable.
//!
//! The copy failing does not fail the output: its reader going away (a closed pipe: the caller
//! stopped reading) or a failed write stops the run as Ctrl-C does, through the callback the
//! supervisor gives, and the rows still coming are written to the output alone.

use std::io;
use std::sync::Arc;

use super::target::Output;
use super::writer::WriteRows;
use crate::model::Record;

/// Where the copy goes, and what stops the run when it cannot be written any more.
pub struct ArrowCopyTo<'a> {
    pub output: &'a Output,
    pub stop_run: Arc<dyn Fn() + Send + Sync>,
}

/// The output's rows, and their copy while it can be written.
pub struct CopiedRows {
    rows: Box<dyn WriteRows>,
    copy: Option<Box<dyn WriteRows>>,
    /// The copy as messages name it.
    shown: String,
    stop_run: Arc<dyn Fn() + Send + Sync>,
}

impl CopiedRows {
    /// `rows`, each also written to `copy` (shown as `shown`).
    pub fn new(
        rows: Box<dyn WriteRows>,
        copy: Box<dyn WriteRows>,
        shown: String,
        stop_run: Arc<dyn Fn() + Send + Sync>,
    ) -> CopiedRows {
        CopiedRows {
            rows,
            copy: Some(copy),
            shown,
            stop_run,
        }
    }

    /// Does `step` to the copy; when it fails, says why once, drops the copy and stops the run.
    fn on_copy(&mut self, step: impl FnOnce(&mut dyn WriteRows) -> io::Result<()>) {
        let Some(copy) = self.copy.as_mut() else {
            return;
        };
        let Err(e) = step(copy.as_mut()) else {
            return;
        };
        self.copy = None;
        if e.kind() == io::ErrorKind::BrokenPipe {
            crate::note!(
                "ringscrape: --arrow-copy {}: its reader went away; stopping as Ctrl-C does (--resume completes the output)",
                self.shown
            );
        } else {
            crate::say!(
                "ringscrape: --arrow-copy {}: {e}; stopping as Ctrl-C does (--resume completes the output)",
                self.shown
            );
        }
        (self.stop_run)();
    }
}

impl WriteRows for CopiedRows {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.rows.write(record)?;
        self.on_copy(|copy| copy.write(record));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.rows.flush()?;
        self.on_copy(|copy| copy.flush());
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let finished = self.rows.finish();
        self.on_copy(|copy| copy.finish());
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Rows counted; each write fails with `fails` from the `from`-th on.
    struct Counted {
        rows: Arc<AtomicUsize>,
        from: usize,
        fails: io::ErrorKind,
    }

    impl WriteRows for Counted {
        fn write(&mut self, _record: &Record) -> io::Result<()> {
            if self.rows.load(Ordering::SeqCst) >= self.from {
                return Err(self.fails.into());
            }
            self.rows.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_copy_stops_the_run_once_and_the_output_keeps_every_row() {
        let (output, copied) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let stops = Arc::new(AtomicUsize::new(0));
        let counting = stops.clone();
        let mut rows = CopiedRows::new(
            Box::new(Counted {
                rows: output.clone(),
                from: usize::MAX,
                fails: io::ErrorKind::Other,
            }),
            Box::new(Counted {
                rows: copied.clone(),
                from: 3,
                fails: io::ErrorKind::BrokenPipe,
            }),
            "-".into(),
            Arc::new(move || {
                counting.fetch_add(1, Ordering::SeqCst);
            }),
        );
        for _ in 0..10 {
            rows.write(&Record::default())
                .expect("the output takes every row");
        }
        rows.finish().expect("finish");
        assert_eq!(output.load(Ordering::SeqCst), 10);
        assert_eq!(copied.load(Ordering::SeqCst), 3);
        assert_eq!(stops.load(Ordering::SeqCst), 1, "stopped once");
    }
}
