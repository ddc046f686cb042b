//! One thread per shard keeps its worker going to the end of the shard: it forwards the
//! worker's pipe (see `pipes`), and when the worker dies with items in flight it finds the one
//! that killed it.
//!
//! An answer can kill a worker in a way nothing inside it can catch: a user's jq filter that
//! recurses without end overflows the stack, and the process aborts. Before, every row the
//! worker had not yet sent was lost with it, and `--resume` died on the same answer again and
//! again. Now the keeper reads which items were in flight from the shard's in-flight table
//! (`crate::inflight`), fetches those again one at a time in a worker of one slot, writes a
//! `crash` row for an item that kills that worker too, and starts a worker for the rest of the
//! shard. One answer costs one row, never the shard. After [`MAX_CRASH_ROWS`] such rows the
//! shard gives up (it fails as before, and `--resume` goes on past them).
//!
//! With `--next` an item is a chain of pages, each a row. An item is done when its last row
//! went by; a chain whose first pages went by goes on, in the probe and in the worker after it,
//! from the page after them ([`Forwarded`]), so those pages are neither fetched nor written
//! again, and the `crash` row names the page that kills. (Before, the item counted as done at
//! its first row, or was fetched again from page 0 and its pages' rows lost with the probe.)

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::Arc;

use super::credentials::Credentials;
use super::pipes::{Forwarded, PipeEnd, PipeSinks, StatsBoard, read_worker_pipe};
use super::signals::Stop;
use super::spawn;
use crate::assignment::WorkerSpec;
use crate::ids::IdSet;
use crate::inflight::InFlightTable;
use crate::job::ItemReader;
use crate::model::{Captured, ErrorKind, Record};
use crate::output::batch::{Batch, BatchSender, BytesInFlight};
use crate::template::Values;

/// `crash` rows a shard writes before it gives up: a filter that kills on every answer would
/// otherwise start a worker per item.
pub const MAX_CRASH_ROWS: u64 = 64;

/// Everything a shard's workers are started from, and where their output goes.
pub struct Keeper {
    pub spec: WorkerSpec,
    /// Items of the shard that already have a row (resuming) or need none.
    pub skip: Option<IdSet>,
    pub exe: PathBuf,
    pub core: usize,
    pub stop: Arc<Stop>,
    pub table: InFlightTable,
    pub max_frame: usize,
    pub tx: BatchSender,
    pub board: StatsBoard,
    pub in_flight: Arc<BytesInFlight>,
    /// `--auth-command`: what each new worker is handed, and told of by its 401s.
    pub credentials: Option<Arc<Credentials>>,
}

/// How a shard ended.
#[derive(Debug)]
pub struct ShardEnd {
    /// How its last worker exited.
    pub exit: io::Result<ExitStatus>,
    pub pipe_error: Option<String>,
    /// Items that killed the worker fetching them, written as `crash` rows.
    pub crashes: u64,
}

impl Keeper {
    /// Follows `first` and the workers after it to the end of the shard.
    pub fn run(self, first: Child) -> ShardEnd {
        let mut forwarded = Forwarded::new(self.spec.ids);
        let mut crashes = 0;
        let mut child = first;
        loop {
            let (exit, pipe) = self.follow(&mut child, &mut forwarded);
            let end = |exit, pipe: PipeEnd, crashes| ShardEnd {
                exit,
                pipe_error: pipe.error,
                crashes,
            };
            if !self.may_replace(&exit, &pipe, crashes) {
                return end(exit, pipe, crashes);
            }
            let mut suspects = self.table.take_items();
            suspects.retain(|item| !forwarded.done.contains(*item));
            if suspects.is_empty() {
                // It died between answers (at start, say): nothing to single out.
                return end(exit, pipe, crashes);
            }
            crate::say!(
                "ringscrape: shard {}: the worker {}; fetching its {} items in flight one at a time",
                self.spec.shard,
                describe(&exit),
                suspects.len()
            );
            while !suspects.is_empty() {
                let skip = IdSet::all_but(self.spec.ids, &suspects);
                let mut probe = match self.start(1, &skip, &forwarded) {
                    Ok(probe) => probe,
                    Err(e) => return end(Err(e), pipe, crashes),
                };
                let (exit, pipe) = self.follow(&mut probe, &mut forwarded);
                let died = self.may_replace(&exit, &pipe, crashes);
                let killer = self.table.take_items().into_iter().next();
                match killer {
                    Some(item) if died && !forwarded.done.contains(item) => {
                        // The probe's rows went by one by one: the page that killed is the
                        // one after them.
                        let page = forwarded
                            .continuations(&self.spec.continuations)
                            .iter()
                            .find(|c| c.index == item)
                            .map_or(0, |c| c.page);
                        crate::say!(
                            "ringscrape: shard {}: item {item}{} kills the worker that fetches it ({}): written as error `crash`",
                            self.spec.shard,
                            match page {
                                0 => String::new(),
                                page => format!(" page {page}"),
                            },
                            describe(&exit)
                        );
                        if !self.write_crash_row(item, page) {
                            return end(exit, pipe, crashes);
                        }
                        forwarded.open.remove(&item);
                        forwarded.done.insert(item);
                        crashes += 1;
                    }
                    _ if exit.as_ref().is_ok_and(ExitStatus::success) => {}
                    _ => return end(exit, pipe, crashes),
                }
                suspects.retain(|item| !forwarded.done.contains(*item));
            }
            let mut skip = forwarded.done.clone();
            if let Some(earlier) = &self.skip {
                skip.union_with(earlier);
            }
            child = match self.start(self.spec.fetch.concurrency, &skip, &forwarded) {
                Ok(child) => child,
                Err(e) => return end(Err(e), pipe, crashes),
            };
        }
    }

    /// A worker that ended so is to be replaced: it crashed (not asked to stop, nor killed from
    /// outside), the writer still takes rows, and the shard has not given up.
    fn may_replace(&self, exit: &io::Result<ExitStatus>, pipe: &PipeEnd, crashes: u64) -> bool {
        let crashed = exit.as_ref().is_ok_and(|status| crashed(*status));
        crashed && !pipe.writer_gone && !self.stop.stopping() && crashes < MAX_CRASH_ROWS
    }

    /// Forwards `child`'s pipe to its end, then waits for it.
    fn follow(
        &self,
        child: &mut Child,
        forwarded: &mut Forwarded,
    ) -> (io::Result<ExitStatus>, PipeEnd) {
        let shard = self.spec.shard;
        let carried = self
            .board
            .lock()
            .map(|board| board[shard].clone())
            .unwrap_or_default();
        let pipe = match child.stdout.take() {
            Some(pipe) => read_worker_pipe(
                pipe,
                self.max_frame,
                PipeSinks {
                    shard,
                    tx: &self.tx,
                    board: &self.board,
                    in_flight: &self.in_flight,
                    carried: &carried,
                    forwarded,
                    credentials: self.credentials.as_deref(),
                },
            ),
            None => PipeEnd::default(),
        };
        (child.wait(), pipe)
    }

    /// A worker of the shard with `concurrency` slots that skips `skip` and goes on with the
    /// chains of pages `forwarded` holds open.
    fn start(&self, concurrency: usize, skip: &IdSet, forwarded: &Forwarded) -> io::Result<Child> {
        let mut spec = self.spec.clone();
        spec.continuations = forwarded.continuations(&self.spec.continuations);
        if concurrency != spec.fetch.concurrency {
            spec.fetch.concurrency = concurrency;
            spec.fetch.auto_concurrency = false;
        }
        let child = spawn::spawn_worker(&self.exe, &spec, Some(skip), self.credentials.as_deref())?;
        self.stop.add_worker(child.id());
        let _ = spawn::pin_to_core(child.id(), self.core);
        crate::detail!(
            "ringscrape: shard {}: started again, pid {}, {concurrency} slots, {} ids left",
            spec.shard,
            child.id(),
            spec.ids.len() - skip.count()
        );
        Ok(child)
    }

    /// The row of an item (at `page` of its chain) that killed its worker; false when the
    /// writer is gone.
    fn write_crash_row(&self, item: u64, page: u32) -> bool {
        let values = ItemReader::open(&self.spec.keys).ok().and_then(|mut keys| {
            let mut values = Values::default();
            keys.values_for(item, &mut values).ok()?;
            Some(values)
        });
        let mut captured = Captured::default();
        if let Some(values) = values {
            self.spec.keys.row_values().fill(&values, &mut captured);
        }
        let record = Record {
            index: item,
            page,
            more: false,
            status: None,
            bytes: 0,
            latency_us: 0,
            attempts: 1,
            error: Some(ErrorKind::Crash),
            captured,
        };
        self.tx
            .send(Batch {
                shard: self.spec.shard,
                records: vec![record],
                held: self.in_flight.hold(0),
            })
            .is_ok()
    }
}

/// The worker ended itself abnormally: a signal it raised (abort on a stack overflow, a bad
/// memory access) or a panic's exit code. A kill from outside (SIGKILL, SIGTERM) or a clean
/// error exit (a key file it cannot open) is not the doing of an answer, and is not replaced.
fn crashed(status: ExitStatus) -> bool {
    use nix::sys::signal::Signal;
    const PANIC_EXIT: i32 = 101;
    let raised = [
        Signal::SIGABRT,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ];
    match (status.signal(), status.code()) {
        (Some(signal), _) => raised.iter().any(|s| *s as i32 == signal),
        (None, code) => code == Some(PANIC_EXIT),
    }
}

fn describe(exit: &io::Result<ExitStatus>) -> String {
    match exit {
        Ok(status) => describe_exit(*status, None),
        Err(e) => format!("could not be waited for: {e}"),
    }
}

/// How a worker ended, in words; with what its pipe said, if anything.
pub fn describe_exit(status: ExitStatus, pipe_error: Option<&str>) -> String {
    let how = match (status.code(), status.signal()) {
        (Some(0), _) => "exited cleanly".to_string(),
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => {
            let name = nix::sys::signal::Signal::try_from(signal).map_or("unknown", |s| s.as_str());
            format!("killed by signal {signal} ({name})")
        }
        (None, None) => "ended abnormally".to_string(),
    };
    match pipe_error {
        Some(error) => format!("{how}, {error}"),
        None => how,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_worker_that_ended_itself_abnormally_crashed() {
        let signalled = |signal: i32| ExitStatus::from_raw(signal);
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        assert!(crashed(signalled(6)), "abort (a stack overflow)");
        assert!(crashed(signalled(11)), "a bad memory access");
        assert!(crashed(exited(101)), "a panic");
        assert!(!crashed(signalled(9)), "killed from outside");
        assert!(!crashed(signalled(15)), "asked to stop");
        assert!(!crashed(exited(0)));
        assert!(!crashed(exited(1)), "an error it said");
    }
}
