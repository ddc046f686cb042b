//! A worker process: one shard of the items, fetched by `concurrency` long-lived tasks on one
//! single-threaded monoio runtime, results streamed to the supervisor as frames on stdout.
//!
//! Memory does not depend on the range: items come from a shared cursor one at a time, each
//! task reuses its request buffer and its connection (HTTP/1.1), or shares the worker's few
//! HTTP/2 connections, and records leave through a bounded batch buffer.
//! SIGTERM or SIGINT (sent by the supervisor) stops the work queue; in-flight requests get the grace
//! period, then the worker flushes what it has and exits 0. Ids it never finished have no row,
//! which is what `--resume` looks for.

mod conn;
mod credentials;
mod failure;
mod fetch;
mod http;
mod lru;
mod pages;
mod robots;
mod schedule;
mod sink;
mod wait;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::inflight::InFlightTable;
use crate::job::{ItemReader, RowValues};
use crate::model::{BodyColumn, ErrorKind};
use crate::output::bodies::BodiesDir;
use crate::request::{RequestError, RequestTemplate};
use crate::runtime::{self, set_nonblocking};
use crate::stats::WorkerStats;

use crate::assignment::{Assignment, WorkerSpec, read_assignment};
use crate::wire::FrameReader;

use credentials::Credentials;
use fetch::{Outcome, Plan, PlanError, Slot};
use schedule::cursor::Cursor;
use schedule::hosts::{Finished, HostTable};
use schedule::limit::Limiter;
use schedule::lookahead::Lookahead;
use schedule::queue::{Item, Work, WorkQueue};
use schedule::retry::Verdict;
use schedule::route::HostRoute;
use sink::{DRAIN_EVERY, FrameSink, SEND_EVERY};
use wait::Parked;

/// Retries that may wait in the queue per slot before new items wait for them.
const MAX_WAITING_PER_SLOT: usize = 64;

/// How often a worker sends its cumulative stats to the supervisor.
const STATS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Spec(#[from] crate::assignment::SpecError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("building the runtime: {0}")]
    Runtime(io::Error),
    #[error("opening the --ids-file: {0}")]
    Keys(io::Error),
    #[error("signal handling: {0}")]
    Signal(#[from] nix::Error),
    #[error("writing results to the supervisor: {0}")]
    Pipe(io::Error),
    #[error("opening the in-flight table: {0}")]
    Table(io::Error),
    #[error("the assignment says --auth-command but holds no credentials")]
    NoCredentials,
}

impl WorkerError {
    /// The supervisor stopped reading this worker's rows: it closes the pipe when its own writer
    /// failed (a full disk, a closed stdout) or it was stopped, and it says why itself; a line
    /// from each worker as well would bury that cause.
    pub fn is_supervisor_gone(&self) -> bool {
        matches!(self, WorkerError::Pipe(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// State the worker's tasks share (all on one thread).
struct Shared {
    work: WorkQueue,
    /// What records carry of their item's values (a key from a file, key files' columns).
    row_values: RowValues,
    sink: RefCell<FrameSink<std::fs::File>>,
    stats: RefCell<WorkerStats>,
    pipe_error: RefCell<Option<io::Error>>,
    /// Slots waiting for the pipe to drain, woken by `tend` once it has (or by a pipe error):
    /// parked, not polling, so a stalled reader costs the worker no CPU.
    pipe_waiters: Parked,
    /// Fetch tasks still running.
    live: Cell<usize>,
    /// Items being tried right now.
    in_flight: Cell<u64>,
    /// How many slots may have a request in flight.
    limiter: Limiter,
    /// Which item each slot is fetching, where the supervisor can read it if this worker dies.
    table: Option<InFlightTable>,
    /// A worker of one slot (the keeper's probe for an item that killed a worker): each page's
    /// row leaves before the next page is asked for, so if a page kills this worker the keeper
    /// knows which, and the pages before it keep their rows.
    page_rows_at_once: bool,
}

impl Shared {
    /// The worker's counters, with the time spent at the rate gate so far.
    fn stats_with(&self, plan: &Plan) -> std::cell::Ref<'_, WorkerStats> {
        let mut stats = self.stats.borrow_mut();
        let throttled = plan.gate().throttled().as_micros();
        stats.throttled_us = u64::try_from(throttled).unwrap_or(u64::MAX);
        let paced = (plan.gate().paced_by_quota() + self.work.host_quota_held()).as_micros();
        stats.paced_by_quota_us = u64::try_from(paced).unwrap_or(u64::MAX);
        stats.answers = plan.tally().snapshot();
        stats.answers.proxies.extend(plan.proxies().tallies());
        (stats.answers.tls_resumed, stats.answers.tls_full) = crate::tls::handshakes();
        stats.in_flight = self.in_flight.get();
        stats.concurrency_limit = self.limiter.current() as u64;
        if let Some(hosts) = self.work.host_board() {
            stats.hosts = hosts;
        }
        drop(stats);
        self.stats.borrow()
    }

    fn fail_pipe(&self, error: io::Error) {
        self.work.stop();
        self.pipe_error.borrow_mut().get_or_insert(error);
        self.pipe_waiters.wake_all();
    }

    /// The pipe takes rows again (or never will): no more waiting for it.
    fn pipe_open(&self) -> bool {
        self.sink.borrow().backlog() < sink::PAUSE_AT_BYTES || self.pipe_error.borrow().is_some()
    }
}

/// Blocks SIGINT/SIGTERM in this thread (and the threads it starts) and turns them into a flag,
/// set by a thread that waits for them. The runtime polls the flag: no async signal handling.
fn watch_stop_signals() -> Result<Arc<AtomicBool>, WorkerError> {
    let signals = runtime::block_stop_signals()?;
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.wait().is_ok() {
                set.store(true, Ordering::SeqCst);
            }
        })
        .map_err(WorkerError::Runtime)?;
    Ok(flag)
}

/// What every slot shares, built from the spec: the compiled request, the connection opener
/// (TLS set-up included), what to keep and where.
fn plan_for(spec: &WorkerSpec, credentials: Option<Credentials>) -> Result<Plan, WorkerError> {
    let bodies = match &spec.fetch.schema.body {
        BodyColumn::Files(dir) => Some(BodiesDir::new(
            dir.clone(),
            spec.keys.row_values().keys_repeat(),
        )),
        _ => None,
    };
    Ok(Plan::new(spec, credentials, bodies)?)
}

/// The hosts' queues of a worker whose host varies (`--host-concurrency`), over the host table
/// its slots share.
fn lookahead_for(spec: &WorkerSpec, table: Rc<RefCell<HostTable>>) -> Lookahead {
    let depth = Lookahead::depth_for(spec.fetch.concurrency);
    Lookahead::new(table, spec.fetch.hosts.concurrency, depth)
}

/// Runs one worker to completion: its assignment from stdin, records to stdout.
pub fn run() -> Result<(), WorkerError> {
    // If the supervisor dies without a chance to stop us, don't keep hammering the server.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    let stop = watch_stop_signals()?;
    let mut stdin = FrameReader::new(io::stdin());
    let Assignment {
        spec,
        skip,
        credentials,
    } = read_assignment(&mut stdin)?;
    crate::verbosity::set(spec.fetch.verbosity);
    let spec = &spec;
    let credentials = match (spec.fetch.auth, credentials) {
        (false, _) => None,
        (true, Some(first)) => {
            let base = RequestTemplate::compile(&spec.fetch.request)?;
            Some(Credentials::start(base, first, stdin))
        }
        (true, None) => return Err(WorkerError::NoCredentials),
    };
    // When the host varies: `--host-rate`, and the longest pause a host's `Retry-After` may
    // ask (`--max-retry-after`).
    let hosts = spec.host_shards.map(|_| {
        let fetch = &spec.fetch;
        let table = HostTable::new(fetch.hosts.rate, fetch.retry.max_retry_after)
            .with_robots(fetch.robots.is_some());
        Rc::new(RefCell::new(table))
    });
    let plan = Rc::new(plan_for(spec, credentials)?.with_hosts(hosts.clone()));
    let stdout = nix::unistd::dup(io::stdout()).map_err(|e| WorkerError::Pipe(e.into()))?;
    // Non-blocking: a full pipe must not stop the event loop (see `sink`).
    set_nonblocking(&stdout, true).map_err(|e| WorkerError::Pipe(e.into()))?;
    sink::widen_pipe(&stdout);
    let route = match spec.host_shards {
        Some(shards) => {
            let template = RequestTemplate::compile(&spec.fetch.request)?;
            Some(HostRoute::new(template, spec.shard, shards))
        }
        None => None,
    };
    let lookahead = match hosts {
        Some(table) => Some((
            lookahead_for(spec, table),
            RequestTemplate::compile(&spec.fetch.request)?,
        )),
        None => None,
    };
    let work = WorkQueue::new(
        Cursor::new(
            spec.ids,
            skip,
            ItemReader::open(&spec.keys).map_err(WorkerError::Keys)?,
        )
        .routed(route),
        MAX_WAITING_PER_SLOT * spec.fetch.concurrency,
        &spec.continuations,
    );
    let shared = Rc::new(Shared {
        work: match lookahead {
            Some((lookahead, template)) => work.by_host(lookahead, template),
            None => work,
        },
        row_values: spec.keys.row_values(),
        sink: RefCell::new(FrameSink::new(std::fs::File::from(stdout))),
        stats: RefCell::new(WorkerStats::new()),
        pipe_error: RefCell::new(None),
        pipe_waiters: Parked::default(),
        live: Cell::new(0),
        in_flight: Cell::new(0),
        limiter: if spec.fetch.auto_concurrency {
            Limiter::adaptive(spec.fetch.concurrency, Instant::now())
        } else {
            Limiter::fixed(spec.fetch.concurrency)
        },
        table: match &spec.in_flight_table {
            Some(path) => Some(
                InFlightTable::open(path, spec.fetch.concurrency).map_err(WorkerError::Table)?,
            ),
            None => None,
        },
        page_rows_at_once: spec.fetch.concurrency == 1 && !spec.fetch.auto_concurrency,
    });
    let entries = (spec.fetch.concurrency as u32 * 4)
        .next_power_of_two()
        .clamp(256, 32_768);
    runtime::block_on(entries, |choice| {
        // Not said here: the supervisor says an epoll run once, from every worker's stats.
        if let Some(line) = choice.epoll_line() {
            let line = line.trim_start_matches("ringscrape: ");
            crate::detail!("ringscrape: shard {}: {line}", spec.shard);
        }
        shared.stats.borrow_mut().driver = Some(choice);
        fetch_shard(spec, shared.clone(), stop, plan)
    })
    .map_err(WorkerError::Runtime)?
}

async fn fetch_shard(
    spec: &WorkerSpec,
    shared: Rc<Shared>,
    stop: Arc<AtomicBool>,
    plan: Rc<Plan>,
) -> Result<(), WorkerError> {
    for index in 0..spec.fetch.concurrency {
        let slot = Slot::new(plan.clone());
        shared.live.set(shared.live.get() + 1);
        monoio::spawn(fetch_loop(slot, index, shared.clone()));
    }
    // The driver reaches the supervisor at once, not with the first stats a second later.
    shared
        .sink
        .borrow_mut()
        .push_stats(&shared.stats_with(&plan));
    tend(&shared, &stop, spec.fetch.grace, &plan).await;
    if let Some(memory) = plan.memory().filter(|m| m.waits.get() > 0) {
        crate::detail!(
            "ringscrape: shard {}: {} reads of a body waited for --body-memory ({} bytes)",
            spec.shard,
            memory.waits.get(),
            spec.fetch.limits.body_memory_bytes
        );
    }
    let pacer = plan.pacer();
    // When nothing listens, every connect is refused and the window halves each round: that is
    // no server falling behind, and the supervisor names the mistake itself.
    let nothing_listens = {
        let stats = shared.stats.borrow();
        let refused = plan.tally().refused();
        refused > 0 && stats.errors_by_kind[ErrorKind::Connect.slot()] == stats.rows
    };
    if pacer.backoffs.get() > 0 && !nothing_listens {
        crate::note!(
            "ringscrape: shard {}: the server did not keep up with new connections (SYNs \
             dropped or refused), so the connect window was halved {} times; now {}",
            spec.shard,
            pacer.backoffs.get(),
            pacer.window()
        );
    }
    if pacer.late.get() > 0 {
        crate::detail!(
            "ringscrape: shard {}: {} connects waited for a lost SYN to be sent again",
            spec.shard,
            pacer.late.get()
        );
    }
    // Tasks still running past the grace period are dropped with the runtime: their ids get no
    // row here, and a resumed run fetches them.
    let mut sink = shared.sink.borrow_mut();
    sink.push_stats(&shared.stats_with(&plan));
    // The last frames go whole: nothing is left to answer, so the worker may wait on the pipe.
    let flushed = set_nonblocking(sink.get_ref(), false)
        .map_err(io::Error::from)
        .and_then(|()| sink.flush());
    if let Some(error) = shared.pipe_error.borrow_mut().take() {
        return Err(WorkerError::Pipe(error));
    }
    flushed.map_err(WorkerError::Pipe)
}

/// Until the fetch tasks are done (or the grace period after a stop signal has passed): flushes
/// buffered records every few milliseconds and sends a stats snapshot every second.
async fn tend(shared: &Shared, stop: &AtomicBool, grace: Duration, plan: &Plan) {
    let mut last_stats = Instant::now();
    // What the diagnosis needs (a first TLS reason or sign) goes at once, not a second later.
    let news = || plan.tally().news();
    let mut sent_news = news();
    let mut give_up_at: Option<Instant> = None;
    let mut pace = DrainPace::default();
    while shared.live.get() > 0 {
        if give_up_at.is_none() && stop.load(Ordering::SeqCst) {
            shared.work.stop();
            // Parked slots must run to see that there is no more work.
            shared.limiter.release();
            give_up_at = Some(Instant::now() + grace);
        }
        if give_up_at.is_some_and(|t| Instant::now() >= t) {
            return;
        }
        let backlog = shared.sink.borrow().backlog();
        // Not a slot: its own future's size does not matter, so no box every tick.
        monoio::time::sleep(pace.next_look(backlog)).await;
        let mut sink = shared.sink.borrow_mut();
        if last_stats.elapsed() >= STATS_EVERY || news() != sent_news {
            sink.push_stats(&shared.stats_with(plan));
            last_stats = Instant::now();
            sent_news = news();
        }
        if let Some(generation) = plan.credentials().and_then(Credentials::take_stale) {
            sink.push_stale(generation);
        }
        let before = sink.backlog();
        let flushed = sink.flush();
        pace.flushed(before, sink.backlog());
        if let Some(memory) = plan.memory() {
            memory.set_backlog(sink.backlog());
        }
        drop(sink);
        if let Err(error) = flushed {
            shared.fail_pipe(error);
            return;
        }
        if shared.pipe_open() {
            shared.pipe_waiters.wake_all();
        }
    }
}

/// Offers of the backlog the pipe refused in a row before `tend` offers it less often.
const STUCK_AFTER: u32 = 32;
/// The longest `tend` waits before offering a backlog to a pipe that takes nothing.
const STUCK_DRAIN_EVERY: Duration = Duration::from_millis(32);

/// How often `tend` offers the backlog to the pipe. A pipe that took nothing for a while has a
/// reader that stopped reading (a supervisor writing a large row pauses for a few milliseconds
/// only): the backlog is offered less and less often, up to every [`STUCK_DRAIN_EVERY`], and
/// every [`DRAIN_EVERY`] again as soon as the pipe takes anything.
#[derive(Debug)]
struct DrainPace {
    every: Duration,
    /// Offers refused in a row.
    refused: u32,
}

impl Default for DrainPace {
    fn default() -> Self {
        Self {
            every: DRAIN_EVERY,
            refused: 0,
        }
    }
}

impl DrainPace {
    /// How long to wait before the next flush, with `backlog` bytes waiting.
    fn next_look(&self, backlog: usize) -> Duration {
        if backlog > 0 { self.every } else { SEND_EVERY }
    }

    /// A flush took the backlog from `before` to `left` bytes.
    fn flushed(&mut self, before: usize, left: usize) {
        if left > 0 && left == before {
            self.refused += 1;
        } else {
            self.refused = 0;
        }
        self.every = match self.refused {
            0..STUCK_AFTER => DRAIN_EVERY,
            _ => (self.every * 2).min(STUCK_DRAIN_EVERY),
        };
    }
}

/// Waits while the pipe to the supervisor is backed up (a slow disk, a stopped supervisor):
/// no new id until it drains. Requests in flight go on meanwhile.
async fn wait_for_the_pipe(shared: &Shared) {
    shared.pipe_waiters.until(|| shared.pipe_open()).await;
}

/// Item `work` ended in `why` and goes again after `wait`, from the worker's retry queue.
fn retry_later(shared: &Shared, work: Work, item: &Item, wait: Duration, why: Verdict) {
    crate::detail!(
        "ringscrape: id {}: attempt {} ended in {why}; again in {:.2} s",
        String::from_utf8_lossy(item.values.id()),
        work.attempts + 1,
        wait.as_secs_f64()
    );
    let again = Work {
        index: work.index,
        attempts: work.attempts + 1,
    };
    shared.work.retry_at(Instant::now() + wait, again, item);
}

/// What an attempt came to, as its host's limits and figures count it (`retry_after`: the
/// answer's, if one came).
fn finished(outcome: &Outcome, retry_after: Option<Duration>) -> Finished {
    match outcome {
        Outcome::Done(record) => Finished {
            status: record.status,
            retry_after: retry_after.filter(|_| record.status.is_some()),
            error: record.error.is_some(),
            latency_us: Some(record.latency_us),
        },
        Outcome::RetryAfter { why, .. } => match *why {
            Verdict::Status {
                status,
                retry_after,
            } => Finished {
                status: Some(status),
                retry_after,
                ..Finished::default()
            },
            Verdict::Error(_) => Finished::default(),
        },
    }
}

/// One in-flight slot (number `index`): takes the next id until there are none, one request at
/// a time, while the limiter lets it.
///
/// An `async` block, not an `async fn`: the latter keeps its arguments twice in its future (the
/// captured ones and the moved-in locals), and the slot is 432 bytes.
#[allow(clippy::manual_async_fn)]
fn fetch_loop(mut slot: Slot, index: usize, shared: Rc<Shared>) -> impl Future<Output = ()> {
    async move {
        let mut item = Item::default();
        loop {
            wait_for_the_pipe(&shared).await;
            if let Some(memory) = slot.plan().memory() {
                memory.admit().await;
            }
            shared.limiter.admit(index).await;
            let Some(work) = shared.work.next(&mut item).await else {
                break;
            };
            shared.in_flight.set(shared.in_flight.get() + 1);
            if let Some(table) = &shared.table {
                table.enter(index, work.index);
            }
            slot.set_host(item.host);
            let outcome = slot
                .try_once(work.index, &item.values, work.attempts, &item.chain)
                .await;
            if let Some(table) = &shared.table {
                table.leave(index);
            }
            shared.in_flight.set(shared.in_flight.get() - 1);
            shared
                .work
                .finished(item.host, finished(&outcome, slot.retry_after()));
            let mut record = match outcome {
                Outcome::Done(record) => {
                    if record.status.is_some() && shared.limiter.adapts() {
                        let latency = Duration::from_micros(u64::from(record.latency_us));
                        shared.limiter.answered(latency, Instant::now());
                    }
                    record
                }
                Outcome::RetryAfter { wait, why } => {
                    retry_later(&shared, work, &item, wait, why);
                    continue;
                }
            };
            shared.row_values.fill(&item.values, &mut record.captured);
            // The chain's next page: due now, for whichever slot is free first.
            if let (true, Some(next)) = (record.more, &record.captured.next) {
                let page = Item {
                    values: item.values.clone(),
                    chain: item.chain.advanced(next.clone()),
                    host: item.host,
                };
                let work = Work {
                    index: work.index,
                    attempts: 0,
                };
                shared.work.retry_at(Instant::now(), work, &page);
            }
            shared.stats.borrow_mut().record(&record);
            let mut sink = shared.sink.borrow_mut();
            let mut pushed = sink.push_record(&record);
            if record.more && shared.page_rows_at_once {
                pushed = pushed.and_then(|()| sink.flush());
            }
            if let Some(memory) = slot.plan().memory() {
                memory.set_backlog(sink.backlog());
            }
            drop(sink);
            if let Err(error) = pushed {
                shared.fail_pipe(error);
            }
        }
        // No work is left for this slot, so none for the parked ones either: let them end.
        shared.limiter.release();
        shared.live.set(shared.live.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_that_takes_nothing_is_offered_the_backlog_less_often_until_it_takes_some() {
        let mut pace = DrainPace::default();
        assert_eq!(pace.next_look(0), SEND_EVERY);
        assert_eq!(pace.next_look(10), DRAIN_EVERY);
        for _ in 0..STUCK_AFTER - 1 {
            pace.flushed(10, 10);
        }
        assert_eq!(
            pace.next_look(10),
            DRAIN_EVERY,
            "a short pause is not a stop"
        );
        let mut waits = Vec::new();
        for _ in 0..8 {
            pace.flushed(10, 10);
            waits.push(pace.next_look(10).as_millis());
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 32, 32, 32]);
        pace.flushed(10, 4);
        assert_eq!(pace.next_look(4), DRAIN_EVERY);
        assert_eq!(pace.refused, 0);
    }

    #[test]
    fn a_parked_task_looks_again_only_when_woken() {
        let parked = Rc::new(Parked::default());
        let ready = Rc::new(Cell::new(false));
        let done = Rc::new(Cell::new(false));
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        runtime.block_on({
            let (parked, ready, done) = (parked.clone(), ready.clone(), done.clone());
            async move {
                let waiter = {
                    let (parked, ready, done) = (parked.clone(), ready.clone(), done.clone());
                    monoio::spawn(async move {
                        parked.until(|| ready.get()).await;
                        done.set(true);
                    })
                };
                monoio::time::sleep(Duration::from_millis(5)).await;
                assert!(!done.get(), "not ready yet");
                // Ready, but nobody said so: a parked task does not poll.
                ready.set(true);
                monoio::time::sleep(Duration::from_millis(5)).await;
                assert!(!done.get(), "looked again without being woken");
                parked.wake_all();
                waiter.await;
                assert!(done.get());
            }
        });
    }
}
