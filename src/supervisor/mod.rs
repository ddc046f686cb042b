//! The supervisor: checks and raises the open-files limit, splits the range into shards, starts
//! one pinned worker process per shard, turns their pipes into CSV rows (its main thread is the
//! writer), and decides the exit status from how every worker ended.

mod limits;
mod pipes;
mod spawn;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

pub use limits::LimitError;
pub use pipes::Batch;

use crate::config::{Output, RunConfig};
use crate::ids::IdRange;
use crate::progress::Progress;
use crate::stats::{Summary, WorkerStats};
use crate::worker::WorkerSpec;
use crate::writer::{self, RowWriter, WriterReport};
use pipes::{PipeEnd, StatsBoard, read_worker_pipe};

/// Batches in flight between pipe readers and the writer (×1024 rows): the backpressure bound.
const CHANNEL_BATCHES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error("--output {0}: {1}")]
    OpenOutput(PathBuf, io::Error),
    #[error("starting the worker for shard {0}: {1}")]
    Spawn(usize, io::Error),
    #[error("writing the CSV: {0}")]
    Write(#[from] csv::Error),
}

impl SupervisorError {
    /// True when the run was refused before it started because of what the user asked for.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SupervisorError::Limits(LimitError::PerWorker { .. } | LimitError::System { .. })
                | SupervisorError::OpenOutput(..)
        )
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    /// Every id of the range has exactly one row.
    pub complete: bool,
    pub rows: u64,
}

struct Worker {
    shard: usize,
    ids: IdRange,
    child: Child,
    reader: JoinHandle<PipeEnd>,
}

/// Runs a whole scrape.
pub fn run(cfg: &RunConfig) -> Result<RunReport, SupervisorError> {
    limits::raise_nofile(cfg.shards, cfg.concurrency)?;
    let out = writer::open_output(&cfg.output, cfg.overwrite).map_err(|e| {
        let path = match &cfg.output {
            Output::File(path) => path.clone(),
            Output::Stdout => PathBuf::from("-"),
        };
        SupervisorError::OpenOutput(path, e)
    })?;
    let rows = RowWriter::new(out, true)?;
    let started = Instant::now();
    let shards = cfg.ids.split(cfg.shards);
    let board: StatsBoard = Arc::new(Mutex::new(vec![WorkerStats::new(); shards.len()]));
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    let workers = start_workers(cfg, &shards, &tx, &board)?;
    drop(tx);

    let progress = Progress::new(cfg.ids.len(), cfg.progress);
    let written = writer::write_rows(rx, rows, &progress, shards.len());
    progress.finish();
    let mut workers = workers;
    if written.is_err() {
        // Nothing can be recorded any more: stop fetching.
        for worker in &mut workers {
            let _ = worker.child.kill();
        }
    }
    let failed_shards = collect_workers(workers, written.as_ref().ok());
    let report = written?;

    let mut total = WorkerStats::new();
    if let Ok(board) = board.lock() {
        board.iter().for_each(|stats| total.merge(stats));
    }
    eprintln!(
        "{}",
        Summary {
            stats: &total,
            rows_written: report.rows,
            wall: started.elapsed(),
        }
    );
    let complete = failed_shards == 0 && report.rows == cfg.ids.len();
    if failed_shards == 0 && !complete {
        eprintln!(
            "ringscrape: {} rows written for {} ids",
            report.rows,
            cfg.ids.len()
        );
    }
    Ok(RunReport {
        complete,
        rows: report.rows,
    })
}

fn start_workers(
    cfg: &RunConfig,
    shards: &[IdRange],
    tx: &crossbeam_channel::Sender<Batch>,
    board: &StatsBoard,
) -> Result<Vec<Worker>, SupervisorError> {
    let cores = spawn::allowed_cores();
    let mut workers: Vec<Worker> = Vec::with_capacity(shards.len());
    for (shard, ids) in shards.iter().copied().enumerate() {
        let spec = WorkerSpec {
            shard,
            url: cfg.template.as_str().to_string(),
            ids,
            concurrency: cfg.concurrency,
            timeout_ms: cfg.limits.timeout.as_millis() as u64,
            connect_timeout_ms: cfg.limits.connect_timeout.as_millis() as u64,
        };
        let mut child = match spawn::spawn_worker(&spec) {
            Ok(child) => child,
            Err(e) => {
                for worker in &mut workers {
                    let _ = worker.child.kill();
                }
                return Err(SupervisorError::Spawn(shard, e));
            }
        };
        let core = cores[shard % cores.len()];
        if let Err(e) = spawn::pin_to_core(child.id(), core) {
            eprintln!("ringscrape: could not pin shard {shard} to core {core}: {e}");
        }
        let pipe = child.stdout.take().expect("worker stdout is piped");
        let (tx, board) = (tx.clone(), board.clone());
        let reader = thread::Builder::new()
            .name(format!("pipe-{shard}"))
            .spawn(move || read_worker_pipe(shard, pipe, tx, board))
            .map_err(|e| SupervisorError::Spawn(shard, e))?;
        workers.push(Worker {
            shard,
            ids,
            child,
            reader,
        });
    }
    Ok(workers)
}

/// Waits for every worker and reports each that did not finish cleanly; returns how many failed.
fn collect_workers(workers: Vec<Worker>, written: Option<&WriterReport>) -> usize {
    let mut failed = 0;
    for mut worker in workers {
        let status = worker.child.wait();
        let pipe = worker.reader.join().unwrap_or_else(|_| PipeEnd {
            records: 0,
            error: Some("pipe reader panicked".into()),
        });
        let rows = written.map_or(pipe.records, |w| w.rows_by_shard[worker.shard]);
        let problem = match (&status, &pipe.error) {
            (Ok(status), None) if status.success() => None,
            (Ok(status), pipe_error) => Some(describe_exit(*status, pipe_error.as_deref())),
            (Err(e), _) => Some(format!("could not be waited for: {e}")),
        };
        if let Some(problem) = problem {
            failed += 1;
            eprintln!(
                "ringscrape: shard {} (ids {}) failed: {}; {} of its {} ids have rows",
                worker.shard,
                worker.ids,
                problem,
                rows,
                worker.ids.len()
            );
        }
    }
    failed
}

fn describe_exit(status: ExitStatus, pipe_error: Option<&str>) -> String {
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
