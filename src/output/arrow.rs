//! Arrow rows: `--format arrow` writes an Arrow IPC *stream* (the streaming format, not the
//! random-access file format; `.arrows` is its registered extension), the schema Parquet output
//! has (`columns`), to a file or to stdout (`-o - --format arrow | python -c …`). pyarrow
//! (`pa.ipc.open_stream`), polars (`pl.read_ipc_stream`) and DuckDB (through pyarrow's reader,
//! or its `nanoarrow` extension's `read_arrow`) read it.
//!
//! A batch goes out every [`BATCH_ROWS`] rows, [`BATCH_BYTES`] of captured values, and at each
//! of the writer's flushes (every second while rows come), so a reader of the pipe sees rows
//! within about a second. The stream ends with its end-of-stream marker when the writer ends
//! normally (the run's end, Ctrl-C, SIGTERM); a writer killed mid-stream leaves whole messages
//! and at most one torn one, which `--resume` cuts off (see [`framing`]) before it appends
//! further batches (no second schema) — readers take the end of the file as the end of the
//! stream whether or not the marker is there.
//!
//! The format is [`Arrow`]; [`ArrowRows`] writes, [`read_stream`] reads back, and
//! [`ArrowCopy`] copies (resume's rewrite, merge: no end marker, as rows are appended after).

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};

use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::ArrowError;

use super::batch_rows::{BatchRows, KeptRows, WriteBatches};
use super::columns::RecordColumns;
use super::format::{CopyRows, FileFormat, Format, Layout};
use super::rows::{ReadError, RowReader};
use super::writer::{Sink, WriteRows};
use crate::model::{Record, Schema};

mod framing;

/// Rows in one batch at most: large enough that a batch's per-message cost vanishes (one
/// flatbuffer header per 8,192 rows), small enough that a reader gets rows in steady steps.
pub const BATCH_ROWS: usize = 8192;
/// Captured values (bodies, headers, fields) in one batch at most.
pub const BATCH_BYTES: usize = 16 << 20;
/// The end-of-stream marker: a continuation marker and a zero length.
const END_OF_STREAM: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

const BUFFER_BYTES: usize = 256 << 10;

/// The Arrow IPC stream format.
pub struct Arrow;

impl Format for Arrow {
    fn name(&self) -> &'static str {
        "Arrow IPC stream"
    }

    fn flag(&self) -> &'static str {
        "arrow"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["arrows"]
    }

    fn layout(&self) -> Layout<'_> {
        Layout::File(self)
    }
}

impl FileFormat for Arrow {
    fn writer(&self, out: Sink, schema: Schema, header: bool) -> io::Result<Box<dyn WriteRows>> {
        Ok(Box::new(ArrowRows::new(out, schema, header)?))
    }

    fn reader<'a>(&self, input: Box<dyn BufRead + 'a>) -> Result<Option<RowReader<'a>>, ReadError> {
        Ok(read_stream(input)?.map(RowReader::of))
    }

    fn copier<'a>(&self, out: &'a mut dyn Write) -> Box<dyn CopyRows + 'a> {
        Box::new(ArrowCopy::new(BatchStream::Unopened(out)))
    }

    fn complete_len(&self, file: &mut File) -> io::Result<u64> {
        framing::complete_len(file)
    }

    fn end_marker(&self) -> &'static [u8] {
        &END_OF_STREAM
    }
}

/// The error an Arrow writer met, as the I/O error it was when it was one (a closed pipe stays
/// a `BrokenPipe`, which the supervisor tells from a failed disk).
fn io_error(error: ArrowError) -> io::Error {
    match error {
        ArrowError::IoError(_, e) => e,
        other => io::Error::other(other),
    }
}

/// Bytes to `inner`, or nowhere while `quiet` (the schema message of a stream appended to).
struct Quiet<W> {
    inner: W,
    quiet: bool,
}

impl<W: Write> Write for Quiet<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.quiet {
            true => Ok(buf.len()),
            false => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Records as an Arrow IPC stream: typed columns, a batch written as [`BATCH_ROWS`],
/// [`BATCH_BYTES`] or a flush says.
pub struct ArrowRows {
    stream: StreamWriter<Quiet<BufWriter<Sink>>>,
    columns: RecordColumns,
}

impl ArrowRows {
    /// A stream into `out`, its schema message first when `header` (not when appending to a
    /// stream that has one), sent at once: a reader of a pipe learns the columns before the
    /// first row.
    pub fn new(out: Sink, schema: Schema, header: bool) -> io::Result<ArrowRows> {
        let columns = RecordColumns::new(schema);
        let out = Quiet {
            inner: BufWriter::with_capacity(BUFFER_BYTES, out),
            quiet: !header,
        };
        let mut stream = StreamWriter::try_new(out, columns.arrow_schema()).map_err(io_error)?;
        stream.get_mut().quiet = false;
        stream.flush().map_err(io_error)?;
        Ok(ArrowRows { stream, columns })
    }

    /// Writes the rows appended so far as one batch.
    fn write_batch(&mut self) -> io::Result<()> {
        if self.columns.rows() == 0 {
            return Ok(());
        }
        let batch = self.columns.finish()?;
        self.stream.write(&batch).map_err(io_error)
    }
}

impl WriteRows for ArrowRows {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.columns.append(record);
        if self.columns.rows() >= BATCH_ROWS || self.columns.captured_bytes() >= BATCH_BYTES {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Called every second by the writer: what came since goes out as a batch.
    fn flush(&mut self) -> io::Result<()> {
        self.write_batch()?;
        self.stream.flush().map_err(io_error)
    }

    /// The last batch, then the end-of-stream marker.
    fn finish(&mut self) -> io::Result<()> {
        self.write_batch()?;
        self.stream.finish().map_err(io_error)?;
        self.stream.flush().map_err(io_error)
    }
}

/// The rows of an Arrow IPC stream; `None` when `input` holds nothing at all.
pub fn read_stream<'a>(
    mut input: Box<dyn BufRead + 'a>,
) -> Result<Option<BatchRows<'a>>, ReadError> {
    let fail = |message: String| ReadError::Row { line: 0, message };
    if input
        .fill_buf()
        .map_err(|e| fail(e.to_string()))?
        .is_empty()
    {
        return Ok(None);
    }
    let reader = StreamReader::try_new(input, None)
        .map_err(|e| ReadError::Header(format!("not an Arrow IPC stream ({e})")))?;
    let schema = reader.schema();
    let batches = reader.map(|batch| batch.map_err(|e| e.to_string()));
    BatchRows::new(&schema, Box::new(batches)).map(Some)
}

/// A stream a copier writes: opened (its schema written) with the first batch.
pub enum BatchStream<'a> {
    Unopened(&'a mut dyn Write),
    Open(Box<StreamWriter<&'a mut dyn Write>>),
    /// Opening failed: the error was returned.
    Failed,
}

impl WriteBatches for BatchStream<'_> {
    fn write(&mut self, batch: &arrow_array::RecordBatch) -> io::Result<()> {
        let mut stream = match std::mem::replace(self, BatchStream::Failed) {
            BatchStream::Unopened(out) => {
                Box::new(StreamWriter::try_new(out, &batch.schema()).map_err(io_error)?)
            }
            BatchStream::Open(stream) => stream,
            BatchStream::Failed => {
                return Err(io::Error::other("the copy's stream could not be opened"));
            }
        };
        let written = stream.write(batch).map_err(io_error);
        *self = BatchStream::Open(stream);
        written
    }

    /// Flushes what was copied; no end-of-stream marker, as rows may be appended after.
    fn finish(&mut self) -> io::Result<()> {
        match self {
            BatchStream::Open(stream) => stream.flush().map_err(io_error),
            BatchStream::Unopened(out) => out.flush(),
            BatchStream::Failed => Ok(()),
        }
    }
}

/// Rows read from an Arrow IPC stream copied into another.
pub type ArrowCopy<'a> = KeptRows<BatchStream<'a>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BodyColumn, BodyEncoding, Captured};
    use crate::output::rows::ReadRows;

    fn schema() -> Schema {
        Schema {
            capture_headers: vec!["etag".into()],
            body: BodyColumn::Inline(BodyEncoding::Text),
            ..Schema::default()
        }
    }

    fn record(index: u64) -> Record {
        Record {
            index,
            status: Some(200),
            bytes: 2,
            latency_us: 1500,
            attempts: 1,
            captured: Captured {
                headers: vec![Some(format!("e{index}").into_bytes())],
                body: Some(b"\xffx".to_vec()),
                ..Captured::default()
            },
            ..Record::default()
        }
    }

    /// Writes `rows` records (ids `from..`) into `path`, a batch per `flush_every` rows.
    fn write(path: &std::path::Path, from: u64, rows: u64, header: bool, flush_every: u64) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        let mut out = ArrowRows::new(Box::new(file), schema(), header).expect("stream");
        for index in from..from + rows {
            out.write(&record(index)).expect("row");
            if (index + 1) % flush_every == 0 {
                out.flush().expect("flush");
            }
        }
        out.finish().expect("finish");
    }

    /// The ids of the stream in `bytes`, every row read whole.
    fn ids(bytes: &[u8]) -> Vec<u64> {
        let Some(mut rows) = read_stream(Box::new(bytes)).expect("a stream") else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        while let Some(row) = rows.next_row().expect("a whole row") {
            ids.push(row.id_number().expect("id"));
        }
        ids
    }

    #[test]
    fn a_stream_has_typed_batches_and_ends_with_its_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.arrows");
        write(&path, 0, 5, true, 2);
        let bytes = std::fs::read(&path).expect("read");
        assert!(bytes.ends_with(&END_OF_STREAM));
        let reader = StreamReader::try_new(bytes.as_slice(), None).expect("a stream");
        let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("batches");
        let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [2, 2, 1], "a batch per flush, the rest at the end");
        let batch = &batches[0];
        let kinds: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let want = crate::output::columns::arrow_schema(&schema());
        assert_eq!(batch.schema(), want, "the schema Parquet output has");
        assert_eq!(kinds[0], arrow_schema::DataType::UInt64);
        let mut rows = read_stream(Box::new(bytes.as_slice()))
            .expect("ok")
            .expect("rows");
        let row = rows
            .next_row()
            .expect("ok")
            .expect("row")
            .typed()
            .expect("typed");
        assert_eq!(
            (row.id.as_str(), row.status, row.latency_ms),
            ("0", Some(200), 1.5)
        );
        assert_eq!(row.extra, ["e0", "base64:/3g="]);
        assert_eq!(ids(&bytes), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_stream_cut_anywhere_resumes_at_its_last_whole_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.arrows");
        write(&path, 0, 6, true, 2);
        let whole = std::fs::read(&path).expect("read");
        let mut file = File::open(&path).expect("open");
        let complete = Arrow.complete_len(&mut file).expect("scan") as usize;
        assert_eq!(
            complete,
            whole.len() - END_OF_STREAM.len(),
            "the marker is not a row"
        );
        let mut ends = Vec::new();
        for cut in 0..=whole.len() {
            std::fs::write(&path, &whole[..cut]).expect("write");
            let mut file = File::open(&path).expect("open");
            let keep = Arrow.complete_len(&mut file).expect("scan") as usize;
            assert!(keep <= cut);
            let kept = ids(&whole[..keep]);
            assert_eq!(
                kept,
                (0..kept.len() as u64).collect::<Vec<_>>(),
                "cut at {cut}"
            );
            ends.push(kept.len());
        }
        ends.dedup();
        assert_eq!(ends, [0, 2, 4, 6], "nothing, then a batch at a time");
        // Another kind of file is no torn stream.
        std::fs::write(&path, "id,status\n1,200\n").expect("write");
        let mut file = File::open(&path).expect("open");
        assert!(Arrow.complete_len(&mut file).is_err());
        // Appended to (no second schema), the stream reads on.
        std::fs::write(&path, &whole[..complete]).expect("write");
        write(&path, 6, 3, false, 100);
        assert_eq!(
            ids(&std::fs::read(&path).expect("read")),
            (0..9).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_copier_writes_the_kept_rows_as_a_stream_that_can_be_appended_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.arrows");
        write(&path, 0, 6, true, 4);
        let bytes = std::fs::read(&path).expect("read");
        let mut rows = read_stream(Box::new(bytes.as_slice()))
            .expect("ok")
            .expect("rows");
        let mut out = Vec::new();
        let mut copier = Arrow.copier(&mut out);
        copier.header(rows.columns()).expect("header");
        while let Some(row) = rows.next_row().expect("row") {
            if row.id_number().expect("id") % 2 == 0 {
                copier.copy(&row).expect("copy");
            }
        }
        copier.finish().expect("finish");
        assert_eq!(ids(&out), [0, 2, 4]);
        std::fs::write(&path, &out).expect("write");
        write(&path, 6, 1, false, 100);
        assert_eq!(ids(&std::fs::read(&path).expect("read")), [0, 2, 4, 6]);
    }
}
