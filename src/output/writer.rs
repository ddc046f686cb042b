//! The CSV writer thread: the only place rows are written. It drains the bounded channel fed by
//! the pipe readers, writes through one buffer, and flushes at least every second so a crash
//! loses at most that much. When the disk is slower than the workers, the channel fills, the
//! readers block, the pipes fill and the workers wait: memory stays flat.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::config::Output;
use crate::model::{Batch, FIXED_COLUMNS, Record};
use crate::progress::Progress;

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

/// Formats records as CSV rows, reusing its number buffers.
pub struct RowWriter<W: Write> {
    csv: csv::Writer<W>,
    latency: Vec<u8>,
}

impl<W: Write> RowWriter<W> {
    pub fn new(out: W, write_header: bool) -> csv::Result<Self> {
        let mut csv = csv::WriterBuilder::new()
            .buffer_capacity(BUFFER_BYTES)
            .from_writer(out);
        if write_header {
            csv.write_record(FIXED_COLUMNS)?;
        }
        Ok(Self {
            csv,
            latency: Vec::with_capacity(16),
        })
    }

    pub fn write(&mut self, record: &Record) -> csv::Result<()> {
        let (mut id, mut status, mut bytes, mut attempts) = (
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
        );
        format_millis(record.latency_us, &mut self.latency);
        self.csv.write_record([
            id.format(record.index).as_bytes(),
            record
                .status
                .map_or(&b""[..], |s| status.format(s).as_bytes()),
            bytes.format(record.bytes).as_bytes(),
            &self.latency,
            attempts.format(record.attempts).as_bytes(),
            record.error.map_or("", |kind| kind.as_str()).as_bytes(),
        ])
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.csv.flush()
    }
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

/// What the writer wrote.
#[derive(Debug, Default, Clone)]
pub struct WriterReport {
    pub rows: u64,
    pub rows_by_shard: Vec<u64>,
    pub errors: u64,
}

/// Writes every batch until all senders are gone; flushes at least every [`FLUSH_EVERY`].
pub fn write_rows<W: Write>(
    rx: Receiver<Batch>,
    mut rows: RowWriter<W>,
    progress: &Progress,
    shards: usize,
) -> Result<WriterReport, csv::Error> {
    let mut report = WriterReport {
        rows_by_shard: vec![0; shards],
        ..WriterReport::default()
    };
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(batch) => {
                let errors_before = report.errors;
                for record in &batch.records {
                    rows.write(record)?;
                    report.errors += u64::from(record.error.is_some());
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
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorKind;

    #[test]
    fn rows_follow_the_header_with_empty_status_on_error() {
        let mut out = Vec::new();
        {
            let mut rows = RowWriter::new(&mut out, true).expect("header");
            rows.write(&Record {
                index: 7,
                status: Some(200),
                bytes: 71,
                latency_us: 1_234_567,
                attempts: 1,
                error: None,
            })
            .expect("row");
            rows.write(&Record {
                index: 8,
                status: None,
                bytes: 0,
                latency_us: 5,
                attempts: 3,
                error: Some(ErrorKind::Timeout),
            })
            .expect("row");
            rows.flush().expect("flush");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "id,status,bytes,latency_ms,attempts,error\n7,200,71,1234.567,1,\n8,,0,0.005,3,timeout\n"
        );
    }
}
