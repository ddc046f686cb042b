//! The shards run to their end: one pinned worker process per shard started (each followed by
//! its keeper), their rows written by this thread as they come, with the views and watchers of
//! the run beside, then every worker collected and what the summary needs gathered.

use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::credentials::Credentials;
use super::driver_note::DriverNote;
use super::error::SupervisorError;
use super::failures::{answers_so_far, target_of};
use super::keeper::{Keeper, ShardEnd, describe_exit};
use super::launch::Launch;
use super::outcome::{Ended, stdout_went_away};
use super::pipes::StatsBoard;
use super::resume_line::resume_command;
use super::signals::Stop;
use super::{spawn, views};
use crate::assignment::WorkerSpec;
use crate::config::RunConfig;
use crate::diagnosis::Diagnosis;
use crate::ids::{IdRange, IdSet};
use crate::inflight::InFlightTable;
use crate::metrics::{self, Metrics};
use crate::model::Continuation;
use crate::output::batch::{self, BYTES_IN_FLIGHT, BatchReceiver, BatchSender, BytesInFlight};
use crate::output::lock::OutputLock;
use crate::output::writer::{self, AbortWatch, RowObserver, WriteRows, WriterReport};
use crate::output::{Kept, Output};
use crate::progress::Progress;
use crate::stats::WorkerStats;
use crate::timeline::IdMap;

/// Batches in flight between pipe readers and the writer (×1024 rows): the backpressure bound.
const CHANNEL_BATCHES: usize = 64;

/// One worker's share: its ids, and (when resuming) those of them that already have a row and
/// those whose chain of pages goes on.
pub(super) struct ShardPlan {
    ids: IdRange,
    skip: Option<IdSet>,
    continuations: Vec<Continuation>,
}

struct Worker {
    shard: usize,
    ids: IdRange,
    /// Follows the shard's workers to its end (see `keeper`).
    keeper: JoinHandle<ShardEnd>,
}

/// The output ready for rows, and what is already done.
pub(super) struct Prepared {
    /// `--metrics`, bound before anything else starts (a busy address refuses the run).
    pub(super) metrics: Option<std::net::TcpListener>,
    /// `--dashboard`, bound likewise.
    pub(super) dashboard: Option<std::net::TcpListener>,
    /// The output's locks, held until the run ends.
    pub(super) _locks: Vec<OutputLock>,
    pub(super) rows: Box<dyn WriteRows>,
    /// Items that have a row from an earlier run.
    pub(super) kept: u64,
    /// The rows of an earlier run kept, and which failed.
    pub(super) kept_rows: Kept,
    /// Empty lines of a key file: not items.
    pub(super) empties: u64,
    /// Items no worker is to fetch: those kept and the empty lines.
    pub(super) skip: Option<IdSet>,
    /// Items whose chain of pages goes on from a kept page.
    pub(super) open: Vec<Continuation>,
    /// What each item came to over the id space (an earlier run's when resuming).
    pub(super) map: IdMap,
}

/// Starts the workers, writes their rows until every shard has ended, and gathers what the
/// summary needs.
pub(super) fn run_shards(
    cfg: &RunConfig,
    launch: &Launch,
    plan: &[ShardPlan],
    prepared: Prepared,
    credentials: Option<Arc<Credentials>>,
) -> Result<Ended, SupervisorError> {
    let Prepared {
        metrics: metrics_listener,
        dashboard,
        _locks,
        rows,
        kept,
        kept_rows,
        empties,
        skip: _,
        open: _,
        map,
    } = prepared;
    let stop = &launch.stop;
    let started = Instant::now();
    let board: StatsBoard = Arc::new(Mutex::new(vec![WorkerStats::new(); plan.len()]));
    let items = cfg.job.items().len() - empties;
    let listeners = (metrics_listener, dashboard);
    let (metrics, mut showing) =
        start_views(cfg, listeners, &board, (started, map), (items, kept))?;
    let refresher = keep_credentials_fresh(credentials.as_ref(), stop)?;
    let (tx, rx) = batch::channel(CHANNEL_BATCHES);
    let workers = start_workers(cfg, launch, plan, &tx, &board, credentials.as_ref())?;
    drop(tx);

    let progress = Progress::new(items - kept, cfg.progress);
    let diagnosis = Diagnosis::new(target_of(cfg));
    let driver_note = DriverNote::default();
    let watching = Watching {
        progress: &progress,
        diagnosis: &diagnosis,
        driver_note: &driver_note,
        board: &board,
        metrics: metrics.clone(),
        showing: &mut showing,
    };
    let report = write_shards_rows(cfg, stop, rx, rows, plan.len(), watching);
    progress.finish();
    let views = showing.finish(&report);
    if let Some(error) = &report.failed {
        // Nothing can be recorded any more: stop fetching. The workers are not to blame.
        if !stdout_went_away(&cfg.output, Some(error)) {
            let path = cfg.output.path();
            crate::say!("error: writing {}: {error}", path.display());
        }
        stop.kill_workers();
    }
    let failed_shards = collect_workers(workers, &report, cfg.by_host);
    // A run too short for a second's look says it now.
    driver_note.look(&board, |line| crate::say!("{line}"));
    let auth_failed = finish_credentials(credentials.as_ref(), refresher);
    let on_disk = rows_on_disk_after(cfg, &report);
    let workers = board.lock().map(|board| board.clone()).unwrap_or_default();
    if report.failed.is_none()
        && let Some(line) = diagnosis.first_rows(&report.first, &answers_so_far(&board), true)
    {
        crate::say!("{line}");
    }
    Ok(Ended {
        report,
        views,
        workers,
        failed_shards,
        on_disk,
        kept,
        kept_rows,
        empties,
        items,
        wall: started.elapsed(),
        auto_concurrency: cfg.fetch.auto_concurrency,
        output: cfg.output.clone(),
        keys_on_stdin: cfg.job.reads_stdin(),
        resume_command: resume_command(&launch.argv, &launch.given_elsewhere),
        interrupted: stop.signal(),
        auth_failed,
        max_failed: cfg.max_failed,
    })
}

/// `--metrics` and `--dashboard` served on their bound listeners, and the views of the run
/// (the live page, `--report`) started over `items` of which `kept` were done before.
fn start_views(
    cfg: &RunConfig,
    (metrics_listener, dashboard): (Option<TcpListener>, Option<TcpListener>),
    board: &StatsBoard,
    (started, map): (Instant, IdMap),
    (items, kept): (u64, u64),
) -> Result<(Option<Arc<Metrics>>, views::Showing), SupervisorError> {
    // The dashboard serves the metrics too.
    let metrics =
        (metrics_listener.is_some() || dashboard.is_some()).then(|| Arc::new(Metrics::new()));
    if let (Some(listener), Some(metrics)) = (metrics_listener, &metrics) {
        start_metrics(listener, metrics, board)
            .map_err(|e| SupervisorError::Listen("metrics", shown(cfg.metrics), e))?;
    }
    let showing = views::Showing::start(
        dashboard,
        metrics.clone(),
        cfg.report.clone(),
        board,
        (started, map),
        (items, kept),
    )
    .map_err(|e| SupervisorError::Listen("dashboard", shown(cfg.dashboard), e))?;
    Ok((metrics, showing))
}

/// With `--auth-command`: the thread that runs it again when due; a failure stops the workers.
fn keep_credentials_fresh(
    credentials: Option<&Arc<Credentials>>,
    stop: &Arc<Stop>,
) -> Result<Option<JoinHandle<()>>, SupervisorError> {
    let Some(credentials) = credentials else {
        return Ok(None);
    };
    let stop = stop.clone();
    let thread = credentials.keep_fresh(move |message| {
        crate::say!("ringscrape: stopping: {message}");
        stop.terminate_workers();
    });
    Ok(Some(thread.map_err(SupervisorError::AuthThread)?))
}

/// What watches the rows as they are written: the progress line, the diagnosis of the first
/// answers and of an abort, the note of workers on epoll, the metrics and the live views.
struct Watching<'a> {
    progress: &'a Progress,
    diagnosis: &'a Diagnosis,
    driver_note: &'a DriverNote,
    board: &'a StatsBoard,
    metrics: Option<Arc<Metrics>>,
    showing: &'a mut views::Showing,
}

/// Writes the rows of `shards` shards from `rx` until every one has ended (or the writer
/// failed); `--abort-after` stops the workers.
fn write_shards_rows(
    cfg: &RunConfig,
    stop: &Stop,
    rx: BatchReceiver,
    rows: Box<dyn WriteRows>,
    shards: usize,
    watching: Watching<'_>,
) -> WriterReport {
    let Watching {
        progress,
        diagnosis,
        driver_note,
        board,
        metrics,
        showing,
    } = watching;
    let stop_on = writer::AbortOn {
        watch: AbortWatch::new(cfg.abort_after),
        abort: |kind| {
            let line = diagnosis.abort(cfg.abort_after, kind, &answers_so_far(board));
            progress.suspend(|| crate::say!("{line}"));
            stop.terminate_workers();
        },
    };
    // Each second: the diagnosis of the first rows, and whether the workers are on epoll.
    let mut looks = writer::EachSecond(|report: &WriterReport| {
        if let Some(line) = diagnosis.first_rows(&report.first, &answers_so_far(board), false) {
            progress.suspend(|| crate::say!("{line}"));
        }
        driver_note.look(board, |line| progress.suspend(|| crate::say!("{line}")));
    });
    let (mut progress_line, mut counting) = (progress.clone(), metrics);
    let mut observers: Vec<&mut dyn RowObserver> = vec![&mut progress_line, showing, &mut looks];
    observers.extend(counting.as_mut().map(|m| m as &mut dyn RowObserver));
    writer::write_rows(rx, rows, shards, stop_on, &mut observers)
}

/// Stops refreshing `--auth-command`'s credentials; true when they could not be had.
fn finish_credentials(
    credentials: Option<&Arc<Credentials>>,
    refresher: Option<JoinHandle<()>>,
) -> bool {
    let auth_failed = credentials.is_some_and(|c| c.failed().is_some());
    if let Some(credentials) = credentials {
        crate::detail!(
            "ringscrape: --auth-command ran {} times",
            credentials.runs()
        );
        credentials.finish();
    }
    if let Some(refresher) = refresher {
        let _ = refresher.join();
    }
    auth_failed
}

/// After a failed write (a full disk) the rows handed to the writer are not those on disk:
/// the file's whole rows (Parquet: its readable parts' rows) are what a reader finds.
fn rows_on_disk_after(cfg: &RunConfig, report: &WriterReport) -> Option<(u64, u64)> {
    match &cfg.output {
        Output::File(path) if report.failed.is_some() => {
            crate::output::rows_on_disk(path, cfg.format).ok()
        }
        _ => None,
    }
}

/// Serves `--metrics` on its bound listener, the workers' figures read from the board.
fn start_metrics(
    listener: std::net::TcpListener,
    metrics: &Arc<Metrics>,
    board: &StatsBoard,
) -> io::Result<()> {
    let bound = metrics::serve(listener, metrics.clone(), views::refresh_metrics(board))?;
    crate::note!("ringscrape: metrics on http://{bound}/metrics");
    Ok(())
}

/// Splits the work: the whole range evenly, or, when resuming, the ids still without a row
/// evenly (shards with nothing left are not started).
pub(super) fn plan_shards(
    cfg: &RunConfig,
    done: Option<&IdSet>,
    open: &[Continuation],
) -> Vec<ShardPlan> {
    if cfg.by_host {
        return shards_by_host(cfg, done, open);
    }
    let Some(done) = done else {
        return cfg
            .job
            .items()
            .split(cfg.shards)
            .into_iter()
            .map(|ids| ShardPlan {
                ids,
                skip: None,
                continuations: Vec::new(),
            })
            .collect();
    };
    done.split_remaining(cfg.shards)
        .into_iter()
        .map(|ids| ShardPlan {
            ids,
            skip: Some(done.restrict(ids)),
            continuations: open
                .iter()
                .filter(|c| ids.contains(c.index))
                .cloned()
                .collect(),
        })
        .filter(|plan| {
            plan.skip
                .as_ref()
                .is_some_and(|skip| skip.count() < plan.ids.len())
        })
        .collect()
}

/// When the host varies, every shard walks the whole range and keeps the items whose host hashes
/// to it: each shard's plan is the whole range, with every item done so far to skip, and every
/// chain of pages that goes on (a worker takes those of its own items). All shards start: which
/// has items left is known only from their hosts.
fn shards_by_host(cfg: &RunConfig, done: Option<&IdSet>, open: &[Continuation]) -> Vec<ShardPlan> {
    let ids = cfg.job.items();
    (0..cfg.shards)
        .map(|_| ShardPlan {
            ids,
            skip: done.map(|done| done.restrict(ids)),
            continuations: open.to_vec(),
        })
        .collect()
}

fn start_workers(
    cfg: &RunConfig,
    launch: &Launch,
    plan: &[ShardPlan],
    tx: &BatchSender,
    board: &StatsBoard,
    credentials: Option<&Arc<Credentials>>,
) -> Result<Vec<Worker>, SupervisorError> {
    let stop = &launch.stop;
    let cores = spawn::allowed_cores();
    let in_flight = BytesInFlight::new(BYTES_IN_FLIGHT);
    let mut workers: Vec<Worker> = Vec::with_capacity(plan.len());
    for (shard, part) in plan.iter().enumerate() {
        let failed = |e| {
            stop.kill_workers();
            SupervisorError::Spawn(shard, e)
        };
        let table = InFlightTable::create(cfg.fetch.concurrency).map_err(failed)?;
        let spec = spec_for(cfg, shard, part, plan.len(), &table);
        let child = spawn::spawn_worker(
            &launch.worker_exe,
            &spec,
            part.skip.as_ref(),
            credentials.map(Arc::as_ref),
        )
        .map_err(failed)?;
        stop.add_worker(child.id());
        let core = cores[shard % cores.len()];
        pin_started(child.id(), shard, core, part.ids);
        let keeper = Keeper {
            spec,
            skip: part.skip.clone(),
            exe: launch.worker_exe.clone(),
            core,
            stop: stop.clone(),
            table,
            // A record frame holds at most one body of --max-body plus its captured headers.
            max_frame: crate::wire::MAX_FRAME_LEN + cfg.fetch.limits.max_body_bytes,
            tx: tx.clone(),
            board: board.clone(),
            in_flight: in_flight.clone(),
            credentials: credentials.cloned(),
        };
        let keeper = thread::Builder::new()
            .name(format!("shard-{shard}"))
            .spawn(move || keeper.run(child))
            .map_err(failed)?;
        workers.push(Worker {
            shard,
            ids: part.ids,
            keeper,
        });
    }
    Ok(workers)
}

/// What the worker of `shard` (one of `shards`) is told: the run's fetch settings, its share of
/// `--rate`, its items and where their keys come from, and its in-flight `table`.
fn spec_for(
    cfg: &RunConfig,
    shard: usize,
    part: &ShardPlan,
    shards: usize,
    table: &InFlightTable,
) -> WorkerSpec {
    WorkerSpec {
        shard,
        in_flight_table: Some(table.path()),
        host_shards: cfg.by_host.then_some(shards),
        fetch: cfg.fetch.clone(),
        rate: cfg.rate.map(|r| r / shards as f64),
        // Routed by host, a host's quota is one worker's to use.
        quota_share: (cfg.rate_limit_headers).then(|| {
            if cfg.by_host {
                1.0
            } else {
                1.0 / shards as f64
            }
        }),
        ids: part.ids,
        continuations: part.continuations.clone(),
        keys: cfg.job.shard_keys(part.ids),
    }
}

/// Pins a shard's new worker `pid` to `core` (a failure is said, not fatal) and notes its start.
fn pin_started(pid: u32, shard: usize, core: usize, ids: IdRange) {
    if let Err(e) = spawn::pin_to_core(pid, core) {
        crate::say!("ringscrape: could not pin shard {shard} to core {core}: {e}");
    }
    crate::detail!("ringscrape: shard {shard}: started, pid {pid}, core {core}, ids {ids}");
}

/// Waits for every worker and reports each that did not finish cleanly; returns how many failed.
fn collect_workers(workers: Vec<Worker>, written: &WriterReport, by_host: bool) -> usize {
    let mut failed = 0;
    for worker in workers {
        let end = worker.keeper.join().unwrap_or_else(|_| ShardEnd {
            exit: Err(io::Error::other("its keeper thread panicked")),
            pipe_error: None,
            crashes: 0,
        });
        if written.failed.is_some() {
            // Stopped by us because nothing could be written any more: not the worker's fault.
            continue;
        }
        let rows = written.rows_by_shard[worker.shard];
        if end.crashes > 0 {
            crate::say!(
                "ringscrape: shard {}: {} ids killed the worker that fetched them: rows with error `crash`",
                worker.shard,
                end.crashes
            );
        }
        let problem = match (&end.exit, &end.pipe_error) {
            (Ok(status), None) if status.success() => None,
            (Ok(status), pipe_error) => Some(describe_exit(*status, pipe_error.as_deref())),
            (Err(e), _) => Some(format!("could not be waited for: {e}")),
        };
        if let Some(problem) = problem {
            failed += 1;
            // Routed by host, a shard's items are spread over the range: how many is not known.
            let of_its = match by_host {
                true => String::new(),
                false => format!(" of its {}", worker.ids.len()),
            };
            crate::say!(
                "ringscrape: shard {} (ids {}) failed: {}; {}{of_its} items have rows",
                worker.shard,
                worker.ids,
                problem,
                rows,
            );
        } else {
            crate::detail!("ringscrape: shard {}: done, {rows} rows", worker.shard);
        }
    }
    failed
}

/// A listening address as its error names it (`--metrics 127.0.0.1:9184: …`).
fn shown(addr: Option<std::net::SocketAddr>) -> String {
    addr.map(|addr| addr.to_string()).unwrap_or_default()
}
