//! A worker process: one shard of the id range, fetched by `concurrency` long-lived tasks on one
//! single-threaded monoio runtime, results streamed to the supervisor as frames on stdout.
//!
//! Memory does not depend on the range: ids come from a shared cursor one at a time, each task
//! reuses its URL buffer and its connection, and records leave through a bounded batch buffer.

mod fetch;
mod sink;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio_http_client::unified::UnifiedTransportConnector;
use serde::{Deserialize, Serialize};

use crate::config::RequestLimits;
use crate::ids::IdRange;
use crate::runtime;
use crate::stats::WorkerStats;
use crate::template::{Template, TemplateError};

use fetch::Slot;
use sink::{FLUSH_EVERY, FrameSink};

/// How often a worker sends its cumulative stats to the supervisor.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// What the supervisor hands a worker (serialised as TOML on its command line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub shard: usize,
    pub url: String,
    pub ids: IdRange,
    pub concurrency: usize,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

impl WorkerSpec {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            timeout: Duration::from_millis(self.timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker spec: {0}")]
    Spec(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("building the runtime: {0}")]
    Runtime(io::Error),
    #[error("writing results to the supervisor: {0}")]
    Pipe(io::Error),
}

/// Hands out the shard's ids one at a time; `stop` makes it hand out no more.
struct Cursor {
    next: Cell<u64>,
    end: u64,
    stopped: Cell<bool>,
}

impl Cursor {
    fn new(ids: IdRange) -> Self {
        Self {
            next: Cell::new(ids.start),
            end: ids.end,
            stopped: Cell::new(false),
        }
    }

    fn next(&self) -> Option<u64> {
        let id = self.next.get();
        if self.stopped.get() || id >= self.end {
            return None;
        }
        self.next.set(id + 1);
        Some(id)
    }

    fn stop(&self) {
        self.stopped.set(true);
    }
}

/// State the worker's tasks share (all on one thread).
struct Shared {
    cursor: Cursor,
    template: Template,
    sink: RefCell<FrameSink<std::fs::File>>,
    stats: RefCell<WorkerStats>,
    pipe_error: RefCell<Option<io::Error>>,
}

impl Shared {
    fn fail_pipe(&self, error: io::Error) {
        self.cursor.stop();
        self.pipe_error.borrow_mut().get_or_insert(error);
    }
}

/// Parses the spec passed by the supervisor.
pub fn parse_spec(text: &str) -> Result<WorkerSpec, WorkerError> {
    toml::from_str(text).map_err(|e| WorkerError::Spec(e.to_string()))
}

pub fn encode_spec(spec: &WorkerSpec) -> String {
    toml::to_string(spec).expect("a WorkerSpec always serialises")
}

/// Runs one worker to completion; records go to stdout.
pub fn run(spec: &WorkerSpec) -> Result<(), WorkerError> {
    // If the supervisor dies without a chance to stop us, don't keep hammering the server.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let template = Template::compile(&spec.url)?;
    let stdout = nix::unistd::dup(io::stdout()).map_err(|e| WorkerError::Pipe(e.into()))?;
    let shared = Rc::new(Shared {
        cursor: Cursor::new(spec.ids),
        template,
        sink: RefCell::new(FrameSink::new(std::fs::File::from(stdout))),
        stats: RefCell::new(WorkerStats::new()),
        pipe_error: RefCell::new(None),
    });
    let entries = (spec.concurrency as u32 * 4)
        .next_power_of_two()
        .clamp(256, 32_768);
    let (_driver, result) = runtime::block_on(entries, |_driver| fetch_shard(spec, shared.clone()))
        .map_err(WorkerError::Runtime)?;
    result
}

async fn fetch_shard(spec: &WorkerSpec, shared: Rc<Shared>) -> Result<(), WorkerError> {
    let transport = Rc::new(UnifiedTransportConnector::default());
    let done = Rc::new(Cell::new(false));
    let flusher = monoio::spawn(flush_periodically(shared.clone(), done.clone()));
    let tasks: Vec<_> = (0..spec.concurrency)
        .map(|_| {
            let slot = Slot::new(transport.clone(), spec.limits());
            monoio::spawn(fetch_loop(slot, shared.clone()))
        })
        .collect();
    for task in tasks {
        task.await;
    }
    done.set(true);
    flusher.await;
    let mut sink = shared.sink.borrow_mut();
    sink.push_stats(&shared.stats.borrow());
    let flushed = sink.flush();
    if let Some(error) = shared.pipe_error.borrow_mut().take() {
        return Err(WorkerError::Pipe(error));
    }
    flushed.map_err(WorkerError::Pipe)
}

/// One in-flight slot: takes the next id until there are none, one request at a time.
async fn fetch_loop(mut slot: Slot, shared: Rc<Shared>) {
    let mut url = String::with_capacity(shared.template.as_str().len() + 20);
    let mut key = itoa::Buffer::new();
    while let Some(index) = shared.cursor.next() {
        shared.template.expand_into(key.format(index), &mut url);
        let record = slot.fetch(index, &url).await;
        shared.stats.borrow_mut().record(&record);
        if let Err(error) = shared.sink.borrow_mut().push_record(&record) {
            shared.fail_pipe(error);
        }
    }
}

/// Flushes buffered records every few milliseconds and sends a stats snapshot every second.
async fn flush_periodically(shared: Rc<Shared>, done: Rc<Cell<bool>>) {
    let mut last_stats = Instant::now();
    while !done.get() {
        monoio::time::sleep(FLUSH_EVERY).await;
        let mut sink = shared.sink.borrow_mut();
        if last_stats.elapsed() >= STATS_EVERY {
            sink.push_stats(&shared.stats.borrow());
            last_stats = Instant::now();
        }
        if let Err(error) = sink.flush() {
            drop(sink);
            shared.fail_pipe(error);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_hands_out_each_id_once_and_stops_on_request() {
        let cursor = Cursor::new(IdRange::new(5, 9));
        assert_eq!(cursor.next(), Some(5));
        assert_eq!(cursor.next(), Some(6));
        cursor.stop();
        assert_eq!(cursor.next(), None);
        let cursor = Cursor::new(IdRange::new(0, 2));
        let all: Vec<u64> = std::iter::from_fn(|| cursor.next()).collect();
        assert_eq!(all, vec![0, 1]);
    }

    #[test]
    fn spec_round_trips_through_its_text_form() {
        let spec = WorkerSpec {
            shard: 3,
            url: "http://h/{id}".into(),
            ids: IdRange::new(10, 20),
            concurrency: 64,
            timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
        };
        assert_eq!(parse_spec(&encode_spec(&spec)).expect("round trip"), spec);
    }
}
