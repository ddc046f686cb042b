//! A worker process: one shard of the id range, fetched by `concurrency` long-lived tasks on one
//! single-threaded monoio runtime, results streamed to the supervisor as frames on stdout.
//!
//! Memory does not depend on the range: ids come from a shared cursor one at a time, each task
//! reuses its URL buffer and its connection, and records leave through a bounded batch buffer.
//! SIGTERM or SIGINT (sent by the supervisor) stops the cursor; in-flight requests get the grace
//! period, then the worker flushes what it has and exits 0. Ids it never finished have no row,
//! which is what `--resume` looks for.

mod connect;
mod fetch;
mod h1;
mod h2;
mod retry;
mod sink;

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::ids::{IdRange, IdSet};
use crate::job::{KeyReader, Keys};
use crate::model::{BodyColumn, ErrorKind, RequestLimits, RetryPolicy, Schema};
use crate::output::bodies::BodiesDir;
use crate::request::{RequestError, RequestSpec, RequestTemplate};
use crate::runtime;
use crate::stats::WorkerStats;
use crate::tls::{TlsError, Trust};
use crate::wire::{self, Frame, FrameReader};

use connect::Dialer;
use fetch::{Plan, Slot};
use sink::{FLUSH_EVERY, FrameSink};

/// How often a worker sends its cumulative stats to the supervisor.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// What the supervisor hands a worker: TOML in a spec frame on the worker's stdin, followed by
/// the skip set (when resuming) in skip frames. Never on argv: headers may hold secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub shard: usize,
    pub request: RequestSpec,
    pub trust: Trust,
    pub schema: Schema,
    pub follow_redirects: u32,
    /// `--http2`.
    pub http2: bool,
    /// Item indexes of this shard.
    pub ids: IdRange,
    /// Where the keys of those items come from.
    pub keys: Keys,
    pub concurrency: usize,
    pub grace: Duration,
    pub limits: RequestLimits,
    pub retry: RetryPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker spec on stdin: {0}")]
    Spec(String),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("building the runtime: {0}")]
    Runtime(io::Error),
    #[error("opening the --ids-file: {0}")]
    Keys(io::Error),
    #[error("signal handling: {0}")]
    Signal(#[from] nix::Error),
    #[error("writing results to the supervisor: {0}")]
    Pipe(io::Error),
}

/// Why an attempt got no answer, and whether any byte of an answer had arrived (a failure on a
/// reused connection before that means the server had closed it while idle).
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub answered: bool,
    /// What went wrong, in words (for debugging; the CSV has the kind).
    pub detail: String,
}

impl Failure {
    /// An I/O error on a connection, as the CSV names it.
    pub fn from_io(error: &io::Error, answered: bool) -> Failure {
        use io::ErrorKind as K;
        let kind = match error.kind() {
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::Reset,
            K::UnexpectedEof => ErrorKind::Closed,
            K::TimedOut => ErrorKind::Timeout,
            // TLS records that don't decrypt, alerts.
            K::InvalidData => ErrorKind::Tls,
            _ => ErrorKind::Io,
        };
        Failure {
            kind,
            answered,
            detail: error.to_string(),
        }
    }
}

/// Hands out the shard's items one at a time, with their keys, skipping those already done
/// (and, for a file of keys, the empty lines); `stop` makes it hand out no more.
struct Cursor {
    next: Cell<u64>,
    end: u64,
    skip: Option<IdSet>,
    keys: RefCell<KeyReader>,
    stopped: Cell<bool>,
}

impl Cursor {
    fn new(ids: IdRange, skip: Option<IdSet>, keys: KeyReader) -> Self {
        Self {
            next: Cell::new(ids.start),
            end: ids.end,
            skip,
            keys: RefCell::new(keys),
            stopped: Cell::new(false),
        }
    }

    /// The next item's index, its key written into `key`.
    fn next(&self, key: &mut Vec<u8>) -> Option<u64> {
        let mut id = self.next.get();
        while let Some(skip) = &self.skip
            && id < self.end
            && skip.contains(id)
        {
            id += 1;
        }
        if self.stopped.get() || id >= self.end {
            self.next.set(id);
            return None;
        }
        self.next.set(id + 1);
        match self.keys.borrow_mut().key_for(id, key) {
            Ok(true) => Some(id),
            Ok(false) => {
                eprintln!("ringscrape: the --ids-file ended before line {id}; was it changed?");
                self.stop();
                None
            }
            Err(e) => {
                eprintln!("ringscrape: reading the --ids-file: {e}");
                self.stop();
                None
            }
        }
    }

    fn stop(&self) {
        self.stopped.set(true);
    }
}

/// State the worker's tasks share (all on one thread).
struct Shared {
    cursor: Cursor,
    /// Keys come from a file: records carry them (the CSV's `id` column).
    keys_are_lines: bool,
    sink: RefCell<FrameSink<std::fs::File>>,
    stats: RefCell<WorkerStats>,
    pipe_error: RefCell<Option<io::Error>>,
    /// Fetch tasks still running.
    live: Cell<usize>,
}

impl Shared {
    fn fail_pipe(&self, error: io::Error) {
        self.cursor.stop();
        self.pipe_error.borrow_mut().get_or_insert(error);
    }
}

/// Largest skip frame: a skip set is sent in pieces so that no frame nears the wire's limit.
const SKIP_FRAME_BYTES: usize = 4 << 20;

/// The frames that hand `spec` (and the ids to skip) to a worker, as written to its stdin.
pub fn encode_assignment(spec: &WorkerSpec, skip: Option<&IdSet>) -> Vec<u8> {
    let text = toml::to_string(spec).expect("a WorkerSpec always serialises");
    let mut out = Vec::new();
    wire::encode_spec(text.as_bytes(), &mut out);
    if let Some(skip) = skip {
        for piece in skip.to_bytes().chunks(SKIP_FRAME_BYTES) {
            wire::encode_skip(piece, &mut out);
        }
    }
    out
}

/// Reads what [`encode_assignment`] wrote, to the end of `input`.
pub fn read_assignment(input: impl Read) -> Result<(WorkerSpec, Option<IdSet>), WorkerError> {
    let bad = |message: String| WorkerError::Spec(message);
    let mut reader = FrameReader::new(input);
    let mut spec = None;
    let mut skip: Option<Vec<u8>> = None;
    while let Some(frame) = reader.next_frame().map_err(|e| bad(e.to_string()))? {
        match frame {
            Frame::Spec(bytes) => {
                let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
                spec = Some(toml::from_str::<WorkerSpec>(&text).map_err(|e| bad(e.to_string()))?);
            }
            Frame::Skip(bytes) => skip.get_or_insert_with(Vec::new).extend_from_slice(&bytes),
            _ => return Err(bad("unexpected frame".into())),
        }
    }
    let spec = spec.ok_or_else(|| bad("no spec frame".into()))?;
    let skip = match skip {
        Some(bytes) => Some(
            IdSet::from_bytes(spec.ids, &bytes)
                .ok_or_else(|| bad("skip set of the wrong length".into()))?,
        ),
        None => None,
    };
    Ok((spec, skip))
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
fn plan_for(spec: &WorkerSpec) -> Result<Plan, WorkerError> {
    let template = RequestTemplate::compile(&spec.request)?;
    let dialer = Dialer::new(
        template.origin.clone(),
        &spec.trust,
        spec.limits.connect_timeout,
        spec.http2,
    )?;
    Ok(Plan {
        dialer,
        template,
        bodies: match &spec.schema.body {
            BodyColumn::Files(dir) => Some(RefCell::new(BodiesDir::new(dir.clone()))),
            _ => None,
        },
        schema: spec.schema.clone(),
        limits: spec.limits,
        retry: spec.retry,
        follow_redirects: spec.follow_redirects,
        trust: spec.trust.clone(),
        h2: spec.http2.then(h2::Lanes::default),
        elsewhere: RefCell::default(),
    })
}

/// Runs one worker to completion: its assignment from stdin, records to stdout.
pub fn run() -> Result<(), WorkerError> {
    // If the supervisor dies without a chance to stop us, don't keep hammering the server.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    let stop = watch_stop_signals()?;
    let (spec, skip) = read_assignment(io::stdin().lock())?;
    let spec = &spec;
    let plan = Rc::new(plan_for(spec)?);
    let stdout = nix::unistd::dup(io::stdout()).map_err(|e| WorkerError::Pipe(e.into()))?;
    let shared = Rc::new(Shared {
        cursor: Cursor::new(
            spec.ids,
            skip,
            KeyReader::open(&spec.keys).map_err(WorkerError::Keys)?,
        ),
        keys_are_lines: matches!(spec.keys, Keys::Lines { .. }),
        sink: RefCell::new(FrameSink::new(std::fs::File::from(stdout))),
        stats: RefCell::new(WorkerStats::new()),
        pipe_error: RefCell::new(None),
        live: Cell::new(0),
    });
    let entries = (spec.concurrency as u32 * 4)
        .next_power_of_two()
        .clamp(256, 32_768);
    let (_driver, result) = runtime::block_on(entries, |_driver| {
        fetch_shard(spec, shared.clone(), stop, plan)
    })
    .map_err(WorkerError::Runtime)?;
    result
}

async fn fetch_shard(
    spec: &WorkerSpec,
    shared: Rc<Shared>,
    stop: Arc<AtomicBool>,
    plan: Rc<Plan>,
) -> Result<(), WorkerError> {
    for _ in 0..spec.concurrency {
        let slot = Slot::new(plan.clone());
        shared.live.set(shared.live.get() + 1);
        monoio::spawn(fetch_loop(slot, shared.clone()));
    }
    tend(&shared, &stop, spec.grace).await;
    // Tasks still running past the grace period are dropped with the runtime: their ids get no
    // row here, and a resumed run fetches them.
    let mut sink = shared.sink.borrow_mut();
    sink.push_stats(&shared.stats.borrow());
    let flushed = sink.flush();
    if let Some(error) = shared.pipe_error.borrow_mut().take() {
        return Err(WorkerError::Pipe(error));
    }
    flushed.map_err(WorkerError::Pipe)
}

/// Until the fetch tasks are done (or the grace period after a stop signal has passed): flushes
/// buffered records every few milliseconds and sends a stats snapshot every second.
async fn tend(shared: &Shared, stop: &AtomicBool, grace: Duration) {
    let mut last_stats = Instant::now();
    let mut give_up_at: Option<Instant> = None;
    while shared.live.get() > 0 {
        if give_up_at.is_none() && stop.load(Ordering::SeqCst) {
            shared.cursor.stop();
            give_up_at = Some(Instant::now() + grace);
        }
        if give_up_at.is_some_and(|t| Instant::now() >= t) {
            return;
        }
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

/// One in-flight slot: takes the next id until there are none, one request at a time.
async fn fetch_loop(mut slot: Slot, shared: Rc<Shared>) {
    let mut key = Vec::with_capacity(32);
    while let Some(index) = shared.cursor.next(&mut key) {
        let mut record = slot.fetch(index, &key).await;
        if shared.keys_are_lines {
            record.captured.key = Some(key.clone());
        }
        shared.stats.borrow_mut().record(&record);
        if let Err(error) = shared.sink.borrow_mut().push_record(&record) {
            shared.fail_pipe(error);
        }
    }
    shared.live.set(shared.live.get() - 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(cursor: &Cursor) -> Vec<(u64, String)> {
        let mut key = Vec::new();
        std::iter::from_fn(|| {
            let id = cursor.next(&mut key)?;
            Some((id, String::from_utf8_lossy(&key).into_owned()))
        })
        .collect()
    }

    #[test]
    fn cursor_hands_out_each_id_once_and_stops_on_request() {
        let cursor = Cursor::new(IdRange::new(5, 9), None, KeyReader::Numbers);
        let mut key = Vec::new();
        assert_eq!(cursor.next(&mut key), Some(5));
        assert_eq!(
            (cursor.next(&mut key), key.as_slice()),
            (Some(6), &b"6"[..])
        );
        cursor.stop();
        assert_eq!(cursor.next(&mut key), None);
        let cursor = Cursor::new(IdRange::new(0, 2), None, KeyReader::Numbers);
        assert_eq!(all(&cursor), vec![(0, "0".into()), (1, "1".into())]);
    }

    #[test]
    fn cursor_reads_its_lines_of_a_key_file_skipping_done_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.txt");
        std::fs::write(&path, "a\nb b\n\nd/e\nf\n").expect("write");
        let file = crate::job::KeyFile::scan(&path).expect("scan");
        // Lines 2..=5 of the file; line 3 is empty, line 5 already done.
        let range = IdRange::new(2, 6);
        let mut skip = file.empty.restrict(range);
        skip.insert(5);
        let (line, offset) = file.start_for(2);
        let keys = KeyReader::open(&Keys::Lines { path, line, offset }).expect("open");
        let cursor = Cursor::new(range, Some(skip), keys);
        assert_eq!(all(&cursor), vec![(2, "b b".into()), (4, "d/e".into())]);
    }

    #[test]
    fn cursor_skips_ids_already_done() {
        let range = IdRange::new(10, 20);
        let mut done = IdSet::new(range);
        for id in [10, 11, 14, 19] {
            done.insert(id);
        }
        let cursor = Cursor::new(range, Some(done), KeyReader::Numbers);
        let ids: Vec<u64> = all(&cursor).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![12, 13, 15, 16, 17, 18]);
    }

    #[test]
    fn assignment_round_trips_through_frames() {
        let spec = WorkerSpec {
            shard: 3,
            request: RequestSpec {
                url: "http://h/{id}".into(),
                method: None,
                headers: vec!["Authorization: Bearer secret".into()],
                body: Some(b"\x00binary{id}".to_vec()),
                user_agent: "ringscrape/test".into(),
            },
            trust: Trust::default(),
            schema: Schema {
                line: true,
                capture_headers: vec!["etag".into()],
                body: BodyColumn::Files("/tmp/bodies".into()),
            },
            follow_redirects: 3,
            http2: true,
            keys: Keys::Lines {
                path: "/tmp/keys.txt".into(),
                line: 65_537,
                offset: 1_234_567,
            },
            ids: IdRange::new(10, 20),
            concurrency: 64,
            grace: Duration::from_millis(2500),
            limits: RequestLimits {
                timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_millis(1500),
                max_body_bytes: 1 << 24,
            },
            retry: RetryPolicy {
                retries: 2,
                base: Duration::from_millis(100),
                cap: Duration::from_secs(10),
                max_retry_after: Duration::from_secs(60),
            },
        };
        let mut skip = IdSet::new(spec.ids);
        skip.insert(12);
        let bytes = encode_assignment(&spec, Some(&skip));
        let (read, read_skip) = read_assignment(bytes.as_slice()).expect("round trip");
        assert_eq!((read, read_skip), (spec.clone(), Some(skip)));
        let bytes = encode_assignment(&spec, None);
        assert_eq!(read_assignment(bytes.as_slice()).expect("no skip").1, None);
        assert!(
            read_assignment(&bytes[..bytes.len() - 1]).is_err(),
            "torn spec"
        );
    }
}
