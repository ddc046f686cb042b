//! The CSV writer thread: the only place rows are written. It drains the bounded channel fed by
//! the pipe readers, writes through one buffer, and flushes at least every second so a crash
//! loses at most that much. When the disk is slower than the workers, the channel fills, the
//! readers block, the pipes fill and the workers wait: memory stays flat.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::Output;
use crate::metrics::Metrics;
use crate::model::{Batch, BodyColumn, BodyEncoding, Record, Schema};
use crate::progress::Progress;
use crate::stats::WorkerStats;

/// Longest time a finished row may sit in memory before it reaches the file.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
const BUFFER_BYTES: usize = 256 << 10;

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

/// Formats records as CSV rows (RFC 4180 quoting: a field with a comma, quote or line break
/// is quoted), reusing its buffers.
pub struct RowWriter<W: Write> {
    csv: csv::Writer<W>,
    schema: Schema,
    latency: Vec<u8>,
    encoded: Vec<u8>,
}

/// Prefix of a body written as base64 in text mode because it is not valid UTF-8.
pub const BASE64_PREFIX: &str = "base64:";

impl<W: Write> RowWriter<W> {
    pub fn new(out: W, schema: Schema, write_header: bool) -> csv::Result<Self> {
        let mut csv = csv::WriterBuilder::new()
            .buffer_capacity(BUFFER_BYTES)
            .from_writer(out);
        if write_header {
            csv.write_record(schema.columns())?;
        }
        Ok(Self {
            csv,
            schema,
            latency: Vec::with_capacity(16),
            encoded: Vec::new(),
        })
    }

    pub fn write(&mut self, record: &Record) -> csv::Result<()> {
        let (mut id, mut status, mut bytes, mut attempts, mut line) = (
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
        );
        format_millis(record.latency_us, &mut self.latency);
        let id_field = match &record.captured.key {
            Some(key) => key.as_slice(),
            None => id.format(record.index).as_bytes(),
        };
        for field in [
            id_field,
            record
                .status
                .map_or(&b""[..], |s| status.format(s).as_bytes()),
            bytes.format(record.bytes).as_bytes(),
            &self.latency,
            attempts.format(record.attempts).as_bytes(),
            record.error.map_or("", |kind| kind.as_str()).as_bytes(),
        ] {
            self.csv.write_field(field)?;
        }
        if self.schema.line {
            self.csv.write_field(line.format(record.index))?;
        }
        // Error rows carry no captured values: their optional columns stay empty.
        let headers = &record.captured.headers;
        for slot in 0..self.schema.capture_headers.len() {
            let value = headers.get(slot).and_then(Option::as_deref);
            self.csv.write_field(value.unwrap_or_default())?;
        }
        let extracted = &record.captured.extracted;
        for slot in 0..self.schema.extract.len() {
            let value = extracted.get(slot).and_then(Option::as_deref);
            self.csv.write_field(value.unwrap_or_default())?;
        }
        let body = record.captured.body.as_deref();
        match self.schema.body {
            BodyColumn::None => {}
            BodyColumn::Files(_) => self.csv.write_field(body.unwrap_or_default())?,
            BodyColumn::Inline(encoding) => {
                encode_body(body.unwrap_or_default(), encoding, &mut self.encoded);
                self.csv.write_field(&self.encoded)?;
            }
        }
        self.csv.write_record(std::iter::empty::<&[u8]>())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.csv.flush()
    }
}

/// A body as the `body` column holds it (see [`BodyEncoding`]).
fn encode_body(body: &[u8], encoding: BodyEncoding, out: &mut Vec<u8>) {
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
fn format_millis(us: u32, out: &mut Vec<u8>) {
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
    pub rows_by_shard: Vec<u64>,
    pub errors: u64,
    /// Writing failed (a full disk, a closed stdout): nothing more could be recorded.
    pub failed: Option<io::Error>,
    /// `--abort-after` fired: that many ids in a row ended in transport errors.
    pub aborted: bool,
    /// Counts and latencies of the rows written (exactly what the CSV holds).
    pub tally: WorkerStats,
}

/// Counts ids that end in transport errors one after another (in the order rows arrive) and
/// says when there have been `limit` of them.
pub struct AbortWatch {
    limit: Option<u64>,
    run: u64,
}

impl AbortWatch {
    /// `limit` 0 never fires.
    pub fn new(limit: u64) -> Self {
        Self {
            limit: (limit > 0).then_some(limit),
            run: 0,
        }
    }

    /// Counts `record`; true when this record completes a run of `limit`.
    fn fires_on(&mut self, record: &Record) -> bool {
        if record.error.is_some_and(|kind| kind.is_transport()) {
            self.run += 1;
        } else {
            self.run = 0;
        }
        self.limit == Some(self.run)
    }
}

/// Writes every batch until all senders are gone; flushes at least every [`FLUSH_EVERY`].
/// Calls `abort` once when `watch` fires (and goes on writing what the workers still send).
/// Stops at the first write error, which the report carries.
pub fn write_rows<W: Write>(
    rx: Receiver<Batch>,
    mut rows: RowWriter<W>,
    progress: &Progress,
    shards: usize,
    watch: &mut AbortWatch,
    abort: impl Fn(),
    metrics: Option<&Metrics>,
) -> WriterReport {
    let mut report = WriterReport {
        rows_by_shard: vec![0; shards],
        ..WriterReport::default()
    };
    let seen = Seen {
        watch,
        abort: &abort,
        metrics,
    };
    if let Err(e) = drain(&rx, &mut rows, progress, seen, &mut report) {
        report.failed = Some(csv_io_error(e));
    }
    report
}

/// Who else looks at each row as it is written.
struct Seen<'a, A> {
    watch: &'a mut AbortWatch,
    abort: &'a A,
    metrics: Option<&'a Metrics>,
}

fn drain<W: Write, A: Fn()>(
    rx: &Receiver<Batch>,
    rows: &mut RowWriter<W>,
    progress: &Progress,
    seen: Seen<'_, A>,
    report: &mut WriterReport,
) -> csv::Result<()> {
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(batch) => {
                let errors_before = report.errors;
                for record in &batch.records {
                    rows.write(record)?;
                    report.tally.record(record);
                    report.errors += u64::from(record.error.is_some());
                    if let Some(metrics) = seen.metrics {
                        metrics.record(batch.shard, record);
                    }
                    if seen.watch.fires_on(record) && !report.aborted {
                        report.aborted = true;
                        (seen.abort)();
                    }
                }
                let n = batch.records.len() as u64;
                report.rows += n;
                report.rows_by_shard[batch.shard] += n;
                progress.advance(n, report.errors, report.errors != errors_before);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            rows.flush()?;
            last_flush = Instant::now();
        }
    }
    rows.flush()?;
    Ok(())
}

/// The I/O error inside a CSV error (a write can fail no other way).
fn csv_io_error(error: csv::Error) -> io::Error {
    match error.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorKind;

    #[test]
    fn rows_follow_the_header_with_empty_status_on_error() {
        let mut out = Vec::new();
        {
            let mut rows = RowWriter::new(&mut out, Schema::default(), true).expect("header");
            rows.write(&Record {
                index: 7,
                status: Some(200),
                bytes: 71,
                latency_us: 1_234_567,
                attempts: 1,
                error: None,
                captured: Default::default(),
            })
            .expect("row");
            rows.write(&Record {
                index: 8,
                status: None,
                bytes: 0,
                latency_us: 5,
                attempts: 3,
                error: Some(ErrorKind::Timeout),
                captured: Default::default(),
            })
            .expect("row");
            rows.flush().expect("flush");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "id,status,bytes,latency_ms,attempts,error\n7,200,71,1234.567,1,\n8,,0,0.005,3,timeout\n"
        );
    }

    #[test]
    fn optional_columns_follow_with_quoting_and_bodies_are_never_mangled() {
        let schema = Schema {
            line: false,
            capture_headers: vec!["etag".into(), "x-missing".into()],
            extract: vec![crate::extract::ExtractSpec {
                name: "n".into(),
                expr: "/n".into(),
            }],
            body: BodyColumn::Inline(BodyEncoding::Text),
        };
        let mut out = Vec::new();
        {
            let mut rows = RowWriter::new(&mut out, schema.clone(), true).expect("header");
            let row = |index, body: &[u8]| Record {
                index,
                status: Some(200),
                bytes: body.len() as u64,
                latency_us: 1000,
                attempts: 1,
                error: None,
                captured: crate::model::Captured {
                    headers: vec![Some(b"\"v1\"".to_vec()), None],
                    body: Some(body.to_vec()),
                    key: None,
                    extracted: vec![Some(b"4,2".to_vec())],
                },
            };
            rows.write(&row(1, b"line one\nline, two")).expect("row");
            rows.write(&row(2, b"\xff\x00bin")).expect("row");
            rows.write(&Record {
                index: 3,
                error: Some(ErrorKind::Timeout),
                ..Record::default()
            })
            .expect("row");
            rows.flush().expect("flush");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "id,status,bytes,latency_ms,attempts,error,etag,x-missing,n,body\n\
             1,200,18,1.000,1,,\"\"\"v1\"\"\",,\"4,2\",\"line one\nline, two\"\n\
             2,200,5,1.000,1,,\"\"\"v1\"\"\",,\"4,2\",base64:/wBiaW4=\n\
             3,,0,0.000,0,timeout,,,,\n"
        );
        let mut encoded = Vec::new();
        encode_body(b"plain", BodyEncoding::Base64, &mut encoded);
        assert_eq!(encoded, b"cGxhaW4=");
    }
}
