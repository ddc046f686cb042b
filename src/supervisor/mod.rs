//! The supervisor: checks and raises the open-files limit, splits the range into shards, starts
//! one pinned worker process per shard, turns their pipes into rows (its main thread is the
//! writer), and returns the run's outcome (the summary, what is missing) for the caller to print.

mod credentials;
mod failures;
mod keeper;
mod limits;
mod outcome;
mod pipes;
mod resume_line;
mod signals;
mod spawn;
mod views;

use outcome::{Ended, stdout_went_away, summarize, too_many_failed};
pub use outcome::{Missing, RunOutcome};
use resume_line::resume_command;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

pub use limits::LimitError;
pub use signals::exit_code as signal_exit_code;

use crate::assignment::WorkerSpec;
use crate::cli::GivenElsewhere;
use crate::config::RunConfig;
use crate::diagnosis::Diagnosis;
use crate::ids::{IdRange, IdSet};
use crate::inflight::InFlightTable;
use crate::job::Keys;
use crate::metrics::{self, Metrics};
use crate::model::{BodyColumn, Continuation};
use crate::output::batch::{BYTES_IN_FLIGHT, Batch, BytesInFlight};
use crate::output::job_record::JobRecord;
use crate::output::lock::OutputLock;
use crate::output::writer::{self, AbortWatch, RowObserver, WriteRows, WriterReport};
use crate::output::{Kept, OpenError, Output, Spec};
use crate::progress::Progress;
use crate::stats::WorkerStats;
use crate::timeline::IdMap;
pub use credentials::AuthError;
use credentials::Credentials;
pub use failures::TooManyFailed;
use failures::{answers_so_far, target_of};
use keeper::{Keeper, ShardEnd, describe_exit};
use pipes::StatsBoard;
pub use signals::Stop;

/// Batches in flight between pipe readers and the writer (×1024 rows): the backpressure bound.
const CHANNEL_BATCHES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error(transparent)]
    Output(#[from] OpenError),
    #[error("--{0} {1}: {2}")]
    Listen(&'static str, String, io::Error),
    #[error("starting the worker for shard {0}: {1}")]
    Spawn(usize, io::Error),
    #[error("setting up signal handling: {0}")]
    Signals(nix::Error),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("starting the --auth-command thread: {0}")]
    AuthThread(io::Error),
    #[error("reading a key file's head again: {0}")]
    KeyFile(io::Error),
    #[error(
        "--url: the host {0} does not resolve ({2}): check its spelling, or give its address with --resolve {0}:{1}:ADDR"
    )]
    Unresolved(String, u16, io::Error),
}

impl SupervisorError {
    /// True when the run could not start because the target's credentials could not be had
    /// (exit 3, as `--abort-after`).
    pub fn is_target_down(&self) -> bool {
        matches!(self, SupervisorError::Auth(_))
    }

    /// True when the run was refused before it started because of what the user asked for.
    pub fn is_usage(&self) -> bool {
        match self {
            SupervisorError::Output(e) => e.is_usage(),
            _ => matches!(
                self,
                SupervisorError::Limits(LimitError::PerWorker { .. } | LimitError::System { .. })
                    | SupervisorError::Listen(..)
                    | SupervisorError::Unresolved(..)
            ),
        }
    }
}

/// What a run is given by its environment: where the worker program is, where stop requests
/// come from, and the command line to repeat when telling how to resume. A test can run a scrape
/// in its own process with the built binary as the worker and a stop of its own.
pub struct Launch {
    pub worker_exe: PathBuf,
    pub stop: Arc<Stop>,
    pub argv: Vec<String>,
    /// Flags the command line did not hold (from `RINGSCRAPE_*` variables, the config file
    /// found by default), written out in the resume line.
    pub given_elsewhere: Vec<GivenElsewhere>,
}

impl Launch {
    /// This process's: its own executable, Ctrl-C and SIGTERM, its command line. Call before
    /// any other thread is started (the stop signals are blocked in every thread).
    pub fn from_process(given_elsewhere: Vec<GivenElsewhere>) -> Result<Launch, SupervisorError> {
        Ok(Launch {
            worker_exe: std::env::current_exe().map_err(|e| SupervisorError::Spawn(0, e))?,
            stop: signals::watch().map_err(SupervisorError::Signals)?,
            argv: std::env::args().collect(),
            given_elsewhere,
        })
    }
}

/// One worker's share: its ids, and (when resuming) those of them that already have a row and
/// those whose chain of pages goes on.
struct ShardPlan {
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

/// Runs a whole scrape: checks and notes before anything starts, the output prepared (locked,
/// opened or resumed), the shards run to their end, and the outcome summed up.
pub fn run(cfg: &RunConfig, launch: &Launch) -> Result<RunOutcome, SupervisorError> {
    preflight(cfg)?;
    let credentials = cfg
        .auth
        .as_ref()
        .map(Credentials::fetch_first)
        .transpose()?;
    let prepared = prepare_output(cfg)?;
    let plan = plan_shards(cfg, prepared.skip.as_ref(), &prepared.open);
    if plan.is_empty() {
        crate::note!(
            "ringscrape: nothing to do: every id of {} has a row in {}",
            cfg.ids,
            cfg.output.path().display()
        );
        return Ok(RunOutcome {
            complete: true,
            interrupted: None,
            aborted: false,
            stdout_closed: false,
            summary: None,
            missing: None,
            too_many_failed: too_many_failed(
                cfg.max_failed,
                &WorkerStats::new(),
                &prepared.kept_rows,
            ),
        });
    }
    let ended = run_shards(cfg, launch, &plan, prepared, credentials)?;
    Ok(summarize(ended))
}

/// The open-files limit raised for the run, and what the user should know before it starts.
fn preflight(cfg: &RunConfig) -> Result<(), SupervisorError> {
    crate::verbosity::set(cfg.fetch.verbosity);
    let slots = limits::Slots {
        concurrency: cfg.fetch.concurrency,
        auto: cfg.fetch.auto_concurrency,
        files_each: limits::files_per_slot(matches!(cfg.fetch.schema.body, BodyColumn::Files(_))),
    };
    limits::raise_nofile(cfg.shards, slots)?;
    // HTTP/2 multiplexes: a few connections whatever the concurrency. Each source address has
    // the port range to itself.
    let sources = cfg.fetch.net.local_addrs.len().max(1);
    let connections = (cfg.shards * cfg.fetch.concurrency / sources) as u64;
    if !cfg.fetch.http2
        && let Some(advice) = limits::port_advice_here(connections)
    {
        crate::note!("{advice}");
    }
    if let Some(node) = &cfg.node {
        let items = if cfg.key_file.is_some() {
            "lines"
        } else if cfg.product.is_some() {
            "items"
        } else {
            "ids"
        };
        crate::note!(
            "ringscrape: node {} of {} (from {}): {items} {}",
            node.index,
            node.count,
            node.source,
            cfg.ids
        );
    }
    if cfg.fetch.trust.insecure {
        crate::note!("ringscrape: warning: --insecure: TLS certificates are not verified");
    }
    // A name that does not resolve would fail every request the same way: say so now, before
    // any worker starts or any file is made. A host from the keys is each item's own (`dns`
    // rows).
    if let Some((host, port)) = target_of(cfg).host_to_resolve() {
        crate::diagnosis::check_resolves(host, port)
            .map_err(|e| SupervisorError::Unresolved(host.to_string(), port, e))?;
    }
    Ok(())
}

/// The output ready for rows, and what is already done.
struct Prepared {
    /// `--metrics`, bound before anything else starts (a busy address refuses the run).
    metrics: Option<std::net::TcpListener>,
    /// `--dashboard`, bound likewise.
    dashboard: Option<std::net::TcpListener>,
    /// The output's locks, held until the run ends.
    _locks: Vec<OutputLock>,
    rows: Box<dyn WriteRows>,
    /// Items that have a row from an earlier run.
    kept: u64,
    /// The rows of an earlier run kept, and which failed.
    kept_rows: Kept,
    /// Empty lines of a key file: not items.
    empties: u64,
    /// Items no worker is to fetch: those kept and the empty lines.
    skip: Option<IdSet>,
    /// Items whose chain of pages goes on from a kept page.
    open: Vec<Continuation>,
    /// What each item came to over the id space (an earlier run's when resuming).
    map: IdMap,
}

fn prepare_output(cfg: &RunConfig) -> Result<Prepared, SupervisorError> {
    let bind = |flag: &'static str, addr: &Option<String>| match addr {
        Some(addr) => metrics::bind(addr)
            .map(Some)
            .map_err(|e| SupervisorError::Listen(flag, addr.clone(), e)),
        None => Ok(None),
    };
    let metrics = bind("metrics", &cfg.metrics)?;
    let dashboard = bind("dashboard", &cfg.dashboard)?;
    let bodies_dir = match &cfg.fetch.schema.body {
        BodyColumn::Files(dir) => Some(dir.as_path()),
        _ => None,
    };
    let job = crate::job::identities(cfg.key_file.as_ref(), cfg.product.as_ref())
        .map(|key_files| JobRecord::new(key_files, Some(cfg.job.clone())))
        .map_err(SupervisorError::KeyFile)?;
    let opened = crate::output::open(&Spec {
        output: &cfg.output,
        format: cfg.format,
        mode: cfg.mode,
        schema: &cfg.fetch.schema,
        ids: cfg.ids,
        part_rows: cfg.part_rows,
        bodies_dir,
        job: &job,
    })?;
    let (rows, done, open, kept_rows) = (opened.rows, opened.done, opened.open, opened.kept);
    let map = opened.map.unwrap_or_else(|| IdMap::new(cfg.ids));
    let kept = done.as_ref().map_or(0, IdSet::count);
    let empties = cfg.key_file.as_ref().map_or(0, |keys| keys.empty.count());
    let skip = match (done, &cfg.key_file) {
        (Some(mut done), Some(keys)) => {
            done.union_with(&keys.empty);
            Some(done)
        }
        (None, Some(keys)) => Some(keys.empty.clone()),
        (done, None) => done,
    };
    if empties > 0 {
        crate::note!("ringscrape: skipping {empties} empty lines of the --ids-file");
    }
    Ok(Prepared {
        metrics,
        dashboard,
        _locks: opened.locks,
        rows,
        kept,
        kept_rows,
        empties,
        skip,
        open,
        map,
    })
}

/// Starts the workers, writes their rows until every shard has ended, and gathers what the
/// summary needs.
fn run_shards(
    cfg: &RunConfig,
    launch: &Launch,
    plan: &[ShardPlan],
    prepared: Prepared,
    credentials: Option<Arc<Credentials>>,
) -> Result<Ended, SupervisorError> {
    let stop = &launch.stop;
    let started = Instant::now();
    let board: StatsBoard = Arc::new(Mutex::new(vec![WorkerStats::new(); plan.len()]));
    // The dashboard serves the metrics too.
    let metrics = (prepared.metrics.is_some() || prepared.dashboard.is_some())
        .then(|| Arc::new(Metrics::new()));
    if let (Some(listener), Some(metrics)) = (prepared.metrics, &metrics) {
        start_metrics(listener, metrics, &board).map_err(|e| {
            SupervisorError::Listen("metrics", cfg.metrics.clone().unwrap_or_default(), e)
        })?;
    }
    let mut showing = views::Showing::start(
        prepared.dashboard,
        metrics.clone(),
        cfg.report.clone(),
        &board,
        (started, prepared.map),
        (cfg.ids.len() - prepared.empties, prepared.kept),
    )
    .map_err(|e| {
        SupervisorError::Listen("dashboard", cfg.dashboard.clone().unwrap_or_default(), e)
    })?;
    let refresher = match &credentials {
        Some(credentials) => {
            let stop = stop.clone();
            let thread = credentials.keep_fresh(move |message| {
                crate::say!("ringscrape: stopping: {message}");
                stop.terminate_workers();
            });
            Some(thread.map_err(SupervisorError::AuthThread)?)
        }
        None => None,
    };
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    let workers = start_workers(cfg, launch, plan, &tx, &board, credentials.as_ref())?;
    drop(tx);

    let items = cfg.ids.len() - prepared.empties;
    let progress = Progress::new(items - prepared.kept, cfg.progress);
    let diagnosis = Diagnosis::new(target_of(cfg));
    let stop_on = writer::AbortOn {
        watch: AbortWatch::new(cfg.abort_after),
        abort: |kind| {
            let line = diagnosis.abort(cfg.abort_after, kind, &answers_so_far(&board));
            progress.suspend(|| crate::say!("{line}"));
            stop.terminate_workers();
        },
    };
    let mut first_rows = writer::EachSecond(|report: &WriterReport| {
        if let Some(line) = diagnosis.first_rows(&report.first, &answers_so_far(&board), false) {
            progress.suspend(|| crate::say!("{line}"));
        }
    });
    let (mut progress_line, mut counting) = (progress.clone(), metrics.clone());
    let mut observers: Vec<&mut dyn RowObserver> =
        vec![&mut progress_line, &mut showing, &mut first_rows];
    observers.extend(counting.as_mut().map(|m| m as &mut dyn RowObserver));
    let report = writer::write_rows(rx, prepared.rows, plan.len(), stop_on, &mut observers);
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
    let failed_shards = collect_workers(workers, &report);
    let auth_failed = credentials.as_ref().is_some_and(|c| c.failed().is_some());
    if let Some(credentials) = &credentials {
        crate::detail!(
            "ringscrape: --auth-command ran {} times",
            credentials.runs()
        );
        credentials.finish();
    }
    if let Some(refresher) = refresher {
        let _ = refresher.join();
    }
    // After a failed write (a full disk) the rows handed to the writer are not those on disk:
    // the file's whole rows (Parquet: its readable parts' rows) are what a reader finds.
    let on_disk = match &cfg.output {
        Output::File(path) if report.failed.is_some() => {
            crate::output::rows_on_disk(path, cfg.format).ok()
        }
        _ => None,
    };
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
        kept: prepared.kept,
        kept_rows: prepared.kept_rows,
        empties: prepared.empties,
        items,
        wall: started.elapsed(),
        auto_concurrency: cfg.fetch.auto_concurrency,
        output: cfg.output.clone(),
        keys_on_stdin: cfg.stdin_spool.is_some(),
        resume_command: resume_command(&launch.argv, &launch.given_elsewhere),
        interrupted: stop.signal(),
        auth_failed,
        max_failed: cfg.max_failed,
    })
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
fn plan_shards(cfg: &RunConfig, done: Option<&IdSet>, open: &[Continuation]) -> Vec<ShardPlan> {
    let Some(done) = done else {
        return cfg
            .ids
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

fn start_workers(
    cfg: &RunConfig,
    launch: &Launch,
    plan: &[ShardPlan],
    tx: &crossbeam_channel::Sender<Batch>,
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
        let spec = WorkerSpec {
            shard,
            in_flight_table: Some(table.path()),
            fetch: cfg.fetch.clone(),
            rate: cfg.rate.map(|r| r / plan.len() as f64),
            ids: part.ids,
            continuations: part.continuations.clone(),
            keys: match (&cfg.key_file, &cfg.product) {
                (_, Some(product)) => Keys::Records(product.clone()),
                (None, None) => Keys::Numbers,
                (Some(file), None) => {
                    let (line, offset) = file.start_for(part.ids.start);
                    Keys::Lines {
                        path: file.path.clone(),
                        line,
                        offset,
                    }
                }
            },
        };
        let child = spawn::spawn_worker(
            &launch.worker_exe,
            &spec,
            part.skip.as_ref(),
            credentials.map(Arc::as_ref),
        )
        .map_err(failed)?;
        stop.add_worker(child.id());
        let core = cores[shard % cores.len()];
        if let Err(e) = spawn::pin_to_core(child.id(), core) {
            crate::say!("ringscrape: could not pin shard {shard} to core {core}: {e}");
        }
        crate::detail!(
            "ringscrape: shard {shard}: started, pid {}, core {core}, ids {}",
            child.id(),
            part.ids
        );
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

/// Waits for every worker and reports each that did not finish cleanly; returns how many failed.
fn collect_workers(workers: Vec<Worker>, written: &WriterReport) -> usize {
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
            crate::say!(
                "ringscrape: shard {} (ids {}) failed: {}; {} of its {} items have rows",
                worker.shard,
                worker.ids,
                problem,
                rows,
                worker.ids.len()
            );
        } else {
            crate::detail!("ringscrape: shard {}: done, {rows} rows", worker.shard);
        }
    }
    failed
}
