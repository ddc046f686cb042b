//! The row loop, run on the supervisor's main thread: the only place rows are written, in
//! whichever format (`WriteRows`). It drains the bounded channel fed by the pipe readers, hands
//! each record to the format, keeps the run's own record of them (tally, first answers,
//! `--abort-after`'s watch), hands each batch to the observers ([`RowObserver`]: metrics,
//! progress, the views), and flushes at least every second so a crash loses at most that much (Parquet: what is not yet in
//! a closed part). When the disk is slower than the workers, the channel fills, the readers
//! block, the pipes fill and the workers wait: memory stays flat.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::batch::{Batch, BatchReceiver};
use super::target::Output;
use crate::diagnosis::FirstAnswers;
use crate::model::{BodyEncoding, ErrorKind, Record};
use crate::stats::WorkerStats;

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

/// A row format: CSV, JSON Lines, Parquet or Arrow (`csv_rows`, `jsonl`, `parquet`, `arrow`). The row loop below and its
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
    out.clear();
    append_millis(us, out);
}

/// [`format_millis`] appended to `out`.
pub(super) fn append_millis(us: u32, out: &mut Vec<u8>) {
    let mut whole = itoa::Buffer::new();
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
    /// Whether the first rows all failed alike (for the diagnosis).
    pub first: FirstAnswers,
}

/// Something that watches the rows as they are written (the metrics, the progress line, the
/// run's views): a new watcher is one type implementing this, added to the list the supervisor
/// hands to [`write_rows`]. Called once per batch, never per row, so a watcher costs the row
/// loop one call per ~1,000 rows; it loops over the rows itself if it needs them.
pub trait RowObserver {
    /// `records` of shard `shard` are written; `written` is the run so far, these included.
    fn rows(&mut self, shard: usize, records: &[Record], written: &WriterReport);
    /// About once a second, after a flush, with the run so far.
    fn each_second(&mut self, _written: &WriterReport) {}
}

/// A watcher that looks only once a second: calls its function with the run so far.
pub struct EachSecond<F>(pub F);

impl<F: FnMut(&WriterReport)> RowObserver for EachSecond<F> {
    fn rows(&mut self, _shard: usize, _records: &[Record], _written: &WriterReport) {}

    fn each_second(&mut self, written: &WriterReport) {
        (self.0)(written)
    }
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

/// Writes every batch until all senders are gone; flushes at least every [`FLUSH_EVERY`], and
/// hands each batch to every observer (in the list's order). Calls `abort` once when `watch`
/// fires, with the failures' one kind if they had one (and goes on writing what the workers
/// still send). Stops at the first write error, which the report carries.
pub fn write_rows<A: Fn(Option<ErrorKind>)>(
    rx: BatchReceiver,
    mut rows: Box<dyn WriteRows>,
    shards: usize,
    mut stop: AbortOn<A>,
    observers: &mut [&mut dyn RowObserver],
) -> WriterReport {
    let mut report = WriterReport {
        rows_by_shard: vec![0; shards],
        ..WriterReport::default()
    };
    if let Err(e) = drain(&rx, rows.as_mut(), &mut stop, observers, &mut report) {
        report.failed = Some(e);
    }
    report
}

/// `--abort-after`: the watch over the rows, and what stops the run when it fires.
pub struct AbortOn<A> {
    pub watch: AbortWatch,
    pub abort: A,
}

fn drain<A: Fn(Option<ErrorKind>)>(
    rx: &BatchReceiver,
    rows: &mut dyn WriteRows,
    stop: &mut AbortOn<A>,
    observers: &mut [&mut dyn RowObserver],
    report: &mut WriterReport,
) -> io::Result<()> {
    let mut last_flush = Instant::now();
    loop {
        // Until the next flush is due, not a whole period: a row waits at most one (a reader
        // of `--format arrow` on a pipe sees it within a second).
        match rx.recv_timeout(FLUSH_EVERY.saturating_sub(last_flush.elapsed())) {
            Ok(batch) => {
                let (written, result) = write_batch(rows, &batch, stop, report);
                // The observers see what reached the format, even when writing then failed.
                for observer in observers.iter_mut() {
                    observer.rows(batch.shard, &batch.records[..written], report);
                }
                result?;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            rows.flush()?;
            last_flush = Instant::now();
            for observer in observers.iter_mut() {
                observer.each_second(report);
            }
        }
    }
    rows.finish()
}

/// Writes `batch`'s records and keeps the run's record of them; the rows, items and shard
/// counts take the batch only when all of it was written. Returns how many records were written.
fn write_batch<A: Fn(Option<ErrorKind>)>(
    rows: &mut dyn WriteRows,
    batch: &Batch,
    stop: &mut AbortOn<A>,
    report: &mut WriterReport,
) -> (usize, io::Result<()>) {
    let mut ended = 0;
    for (i, record) in batch.records.iter().enumerate() {
        if let Err(e) = rows.write(record) {
            return (i, Err(e));
        }
        report.tally.record(record);
        report.errors += u64::from(record.error.is_some());
        ended += u64::from(!record.more);
        report.first.record(record);
        if stop.watch.fires_on(record) && !report.aborted {
            report.aborted = true;
            (stop.abort)(stop.watch.kind());
        }
    }
    let n = batch.records.len() as u64;
    report.rows += n;
    report.ended += ended;
    report.rows_by_shard[batch.shard] += n;
    (batch.records.len(), Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::batch::BytesInFlight;

    /// Rows written nowhere, counted.
    struct Nowhere(u64);

    impl WriteRows for Nowhere {
        fn write(&mut self, _record: &Record) -> io::Result<()> {
            self.0 += 1;
            Ok(())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What an observer was shown: (shard, rows of the batch, rows written so far) per call.
    #[derive(Default)]
    struct Seen(Vec<(usize, usize, u64)>);

    impl RowObserver for Seen {
        fn rows(&mut self, shard: usize, records: &[Record], written: &WriterReport) {
            self.0.push((shard, records.len(), written.rows));
        }
    }

    #[test]
    fn every_observer_is_shown_each_batch_once_with_the_run_so_far() {
        let gate = BytesInFlight::new(1 << 20);
        let (tx, rx) = crate::output::batch::channel(4);
        for (shard, rows) in [(0, 3), (1, 2)] {
            let records = vec![Record::default(); rows];
            let held = gate.hold(0);
            tx.send(Batch {
                shard,
                records,
                held,
            })
            .expect("send");
        }
        drop(tx);
        let (mut first, mut second) = (Seen::default(), Seen::default());
        let stop = AbortOn {
            watch: AbortWatch::new(0),
            abort: |_| {},
        };
        let report = write_rows(
            rx,
            Box::new(Nowhere(0)),
            2,
            stop,
            &mut [&mut first, &mut second],
        );
        assert_eq!((report.rows, report.rows_by_shard.clone()), (5, vec![3, 2]));
        assert_eq!(first.0, vec![(0, 3, 3), (1, 2, 5)]);
        assert_eq!(second.0, first.0, "each observer sees the same");
    }
}
