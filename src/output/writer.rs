//! The row loop, run on the supervisor's main thread: the only place rows are written, in
//! whichever format (`WriteRows`). It drains the bounded channel fed by the pipe readers, hands
//! each record to the format and to its observers (tally, metrics, abort watch, progress), and
//! flushes at least every second so a crash loses at most that much (Parquet: what is not yet in
//! a closed part). When the disk is slower than the workers, the channel fills, the readers
//! block, the pipes fill and the workers wait: memory stays flat.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::batch::Batch;
use super::target::Output;
use crate::diagnosis::FirstAnswers;
use crate::metrics::Metrics;
use crate::model::{BodyEncoding, ErrorKind, Record};
use crate::progress::Progress;
use crate::stats::WorkerStats;
use crate::timeline::{IdMap, Timeline};

/// Longest time a finished row may sit in memory before it reaches the file.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Opens the output: stdout, or a new file — refusing to replace one unless `replace`.
pub fn open_output(output: &Output, replace: bool) -> io::Result<Sink> {
    match output {
        Output::Stdout => Ok(Box::new(io::stdout())),
        Output::File(path) => {
            let mut options = OpenOptions::new();
            options.write(true);
            if replace {
                options.create(true).truncate(true);
            } else {
                options.create_new(true);
            }
            let file: File = options.open(path)?;
            Ok(Box::new(file))
        }
    }
}

/// Where rows go: a file or stdout, chosen at run time.
pub type Sink = Box<dyn Write + Send>;

/// A row format: CSV, JSON Lines or Parquet (`csv_rows`, `jsonl`, `parquet`). The row loop below and its
/// observers never know which.
pub trait WriteRows {
    fn write(&mut self, record: &Record) -> io::Result<()>;
    /// Makes what was written durable enough that a crash loses at most [`FLUSH_EVERY`] (or
    /// what the format says).
    fn flush(&mut self) -> io::Result<()>;
    /// The last rows are in: everything goes to the output.
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// Prefix of a body written as base64 in text mode because it is not valid UTF-8.
pub const BASE64_PREFIX: &str = "base64:";

/// A body as the `body` column holds it (see [`BodyEncoding`]).
pub(super) fn encode_body(body: &[u8], encoding: BodyEncoding, out: &mut Vec<u8>) {
    out.clear();
    match encoding {
        BodyEncoding::Text if std::str::from_utf8(body).is_ok() => out.extend_from_slice(body),
        BodyEncoding::Text => {
            out.extend_from_slice(BASE64_PREFIX.as_bytes());
            base64_into(body, out);
        }
        BodyEncoding::Base64 => base64_into(body, out),
    }
}

/// `bytes` as text, for a text column of any format: as they are when UTF-8, else `base64:…` in
/// `scratch` (never mangled).
pub(super) fn as_text<'a>(bytes: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            encode_body(bytes, BodyEncoding::Text, scratch);
            std::str::from_utf8(scratch).expect("base64 is ASCII")
        }
    }
}

fn base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(
        start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
        0,
    );
    let written = BASE64
        .encode_slice(bytes, &mut out[start..])
        .expect("the buffer was sized for the encoding");
    out.truncate(start + written);
}

/// `1234567` µs → `1234.567` (ms with three decimals, no float formatting).
pub(super) fn format_millis(us: u32, out: &mut Vec<u8>) {
    let mut whole = itoa::Buffer::new();
    out.clear();
    out.extend_from_slice(whole.format(us / 1000).as_bytes());
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// What the writer wrote, and why it stopped if it stopped early.
#[derive(Debug, Default)]
pub struct WriterReport {
    /// Rows handed to the CSV writer (after a write error, some may not have reached the file).
    pub rows: u64,
    /// Items whose last row is among them (every row's item, but with `--next` only a chain's
    /// last page ends its item).
    pub ended: u64,
    pub rows_by_shard: Vec<u64>,
    pub errors: u64,
    /// Writing failed (a full disk, a closed stdout): nothing more could be recorded.
    pub failed: Option<io::Error>,
    /// `--abort-after` fired: that many ids in a row ended in transport errors.
    pub aborted: bool,
    /// Counts and latencies of the rows written (exactly what the CSV holds).
    pub tally: WorkerStats,
    /// The rows over time and over the id space.
    pub views: Option<Views>,
    /// Whether the first rows all failed alike (for the diagnosis).
    pub first: FirstAnswers,
}

/// What the writer keeps of the rows besides writing them: the run over time, and the id space
/// with what each item came to (seeded with an earlier run's rows when resuming).
#[derive(Debug, Clone)]
pub struct Views {
    pub timeline: Timeline,
    pub map: IdMap,
}

/// Counts ids that end in transport errors one after another (in the order rows arrive) and
/// says when there have been `limit` of them.
pub struct AbortWatch {
    limit: Option<u64>,
    run: u64,
    /// The kind of every error of the current run, while they are all of one kind.
    kind: Option<ErrorKind>,
}

impl AbortWatch {
    /// `limit` 0 never fires.
    pub fn new(limit: u64) -> Self {
        Self {
            limit: (limit > 0).then_some(limit),
            run: 0,
            kind: None,
        }
    }

    /// Counts `record`; true when this record completes a run of `limit`.
    fn fires_on(&mut self, record: &Record) -> bool {
        match record.error.filter(|kind| kind.is_transport()) {
            Some(kind) => {
                self.kind = (self.run == 0 || self.kind == Some(kind)).then_some(kind);
                self.run += 1;
            }
            None => self.run = 0,
        }
        self.limit == Some(self.run)
    }

    /// The one error kind of the current run of failures, if they are all of one kind.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.kind.filter(|_| self.run > 0)
    }
}

/// Writes every batch until all senders are gone; flushes at least every [`FLUSH_EVERY`].
/// Calls `seen.abort` once when `seen.watch` fires, with the failures' one kind if they had one (and goes on writing what the workers still
/// send). Stops at the first write error, which the report carries.
pub fn write_rows<A: Fn(Option<ErrorKind>)>(
    rx: Receiver<Batch>,
    mut rows: Box<dyn WriteRows>,
    shards: usize,
    mut seen: Seen<'_, A>,
) -> WriterReport {
    let mut report = WriterReport {
        rows_by_shard: vec![0; shards],
        ..WriterReport::default()
    };
    if let Err(e) = drain(&rx, rows.as_mut(), &mut seen, &mut report) {
        report.failed = Some(e);
    }
    report.views = Some(seen.views);
    report
}

/// Who else looks at each row as it is written.
pub struct Seen<'a, A> {
    pub progress: &'a Progress,
    pub watch: &'a mut AbortWatch,
    pub abort: A,
    pub metrics: Option<&'a Metrics>,
    pub views: Views,
    /// Called about once a second with what is written so far.
    pub each_second: Option<EachSecond<'a>>,
}

/// What the writer calls about once a second: the report so far and the views to add to.
pub type EachSecond<'a> = Box<dyn FnMut(&WriterReport, &mut Views) + 'a>;

fn drain<A: Fn(Option<ErrorKind>)>(
    rx: &Receiver<Batch>,
    rows: &mut dyn WriteRows,
    seen: &mut Seen<'_, A>,
    report: &mut WriterReport,
) -> io::Result<()> {
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(batch) => {
                let now = Instant::now();
                let mut requests = 0;
                for record in &batch.records {
                    requests += u64::from(record.attempts);
                    rows.write(record)?;
                    report.tally.record(record);
                    seen.views.timeline.record(record, now);
                    seen.views.map.record(record);
                    report.errors += u64::from(record.error.is_some());
                    if let Some(metrics) = seen.metrics {
                        metrics.record(batch.shard, record);
                    }
                    report.first.record(record);
                    if seen.watch.fires_on(record) && !report.aborted {
                        report.aborted = true;
                        (seen.abort)(seen.watch.kind());
                    }
                }
                let n = batch.records.len() as u64;
                let ended = batch.records.iter().filter(|r| !r.more).count() as u64;
                report.rows += n;
                report.ended += ended;
                report.rows_by_shard[batch.shard] += n;
                seen.progress.advance(ended, requests, report.errors);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            rows.flush()?;
            last_flush = Instant::now();
            if let Some(each_second) = &mut seen.each_second {
                each_second(report, &mut seen.views);
            }
        }
    }
    rows.finish()
}
