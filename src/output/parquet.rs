//! Parquet rows: `-o out.parquet` is a directory of part files (`part-000000.parquet`, …), each a
//! complete Parquet file (footer written) once it has its name, so that a crash loses nothing that
//! was acknowledged. DuckDB (`read_parquet('out.parquet/*.parquet')`), pyarrow and polars read the
//! directory as one table.
//!
//! A part is written as `.part-N.parquet.tmp` and renamed into place when closed: every
//! `--part-rows` rows, [`PART_BYTES`] of buffered values, or [`PART_EVERY`] after its first row,
//! and at the end of the run. Rows not yet in a closed part are fetched again by `--resume`,
//! which removes what a crash left (`.tmp` files, a part whose footer does not read).
//!
//! Columns are typed: `id` UInt64 (Utf8: the key, for an `--ids-file`), `status` UInt16,
//! `bytes` UInt64, `latency_ms` Float64, `attempts` UInt16, `error` Utf8, `line` or `index`
//! UInt64, key columns as their kind (Utf8, Int64, Float64, Boolean), and captured headers,
//! extracted fields, `body` / `body_path` as Utf8 (not UTF-8: `base64:…`, as the CSV's text mode);
//! null where the CSV cell is empty. zstd compressed.
//!
//! The format is [`Parquet`]; this file turns records into typed columns ([`ParquetRows`]),
//! [`parts`] keeps the directory of parts, and [`read`] reads and copies them back.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef};

use super::format::{CopyRows, Format, Layout, NotOurs, PartsFormat};
use super::rows::{ReadError, RowReader};
use super::writer::{WriteRows, as_text, encode_body};
use crate::model::{BodyColumn, FIXED_COLUMNS, KeyKind, Record, Schema};

mod parts;
mod read;

use parts::PartWriter;
use read::{ParquetCopy, PartsReader};

/// Buffered captured values (bodies, headers, fields) in one part at most.
pub const PART_BYTES: usize = 64 << 20;
/// Longest a row waits in an open part before the part is closed.
pub const PART_EVERY: Duration = Duration::from_secs(10);

/// The Arrow schema of a run's rows.
pub fn arrow_schema(schema: &Schema) -> SchemaRef {
    let columns = schema.columns();
    let index_columns = usize::from(schema.index_column() != 0);
    let keys_from = FIXED_COLUMNS.len() + index_columns;
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(at, name)| {
            let (kind, nullable) = match at {
                0 if schema.items.id_is_key() => (DataType::Utf8, false),
                0 => (DataType::UInt64, false),
                1 => (DataType::UInt16, true),
                2 => (DataType::UInt64, false),
                3 => (DataType::Float64, false),
                4 => (DataType::UInt16, false),
                5 => (DataType::Utf8, true),
                at if at < keys_from => (DataType::UInt64, false),
                at if at < keys_from + schema.keys.len() => {
                    (arrow_kind(schema.keys[at - keys_from].kind), true)
                }
                at if schema.page_columns().is_some_and(|(page, _)| at == page) => {
                    (DataType::UInt32, false)
                }
                _ => (DataType::Utf8, true),
            };
            Field::new(name, kind, nullable)
        })
        .collect();
    Arc::new(ArrowSchema::new(fields))
}

/// The Arrow type of a key column of `kind`.
fn arrow_kind(kind: KeyKind) -> DataType {
    match kind {
        KeyKind::Text => DataType::Utf8,
        KeyKind::Integer => DataType::Int64,
        KeyKind::Float => DataType::Float64,
        KeyKind::Boolean => DataType::Boolean,
    }
}

/// A key column being built, typed as its kind.
enum KeyBuilder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Boolean(BooleanBuilder),
}

impl KeyBuilder {
    fn new(kind: KeyKind) -> KeyBuilder {
        match kind {
            KeyKind::Text => KeyBuilder::Text(StringBuilder::new()),
            KeyKind::Integer => KeyBuilder::Integer(Int64Builder::new()),
            KeyKind::Float => KeyBuilder::Float(Float64Builder::new()),
            KeyKind::Boolean => KeyBuilder::Boolean(BooleanBuilder::new()),
        }
    }

    /// Appends `value` parsed as the column's kind (null when it does not parse).
    fn append(&mut self, value: Option<&[u8]>, scratch: &mut Vec<u8>) {
        let text = value.map(|v| std::str::from_utf8(v).unwrap_or_default());
        match self {
            KeyBuilder::Text(b) => match value {
                Some(bytes) => b.append_value(as_text(bytes, scratch)),
                None => b.append_null(),
            },
            KeyBuilder::Integer(b) => b.append_option(text.and_then(|t| t.parse().ok())),
            KeyBuilder::Float(b) => b.append_option(text.and_then(|t| t.parse().ok())),
            KeyBuilder::Boolean(b) => b.append_option(text.and_then(|t| t.parse().ok())),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            KeyBuilder::Text(b) => Arc::new(b.finish()),
            KeyBuilder::Integer(b) => Arc::new(b.finish()),
            KeyBuilder::Float(b) => Arc::new(b.finish()),
            KeyBuilder::Boolean(b) => Arc::new(b.finish()),
        }
    }
}

/// Formats records into typed columns, closing a part as `--part-rows`, [`PART_BYTES`] or
/// [`PART_EVERY`] says.
pub struct ParquetRows {
    parts: PartWriter,
    part_rows: usize,
    schema: Schema,
    columns: Columns,
    rows: usize,
    bytes: usize,
    first_row_at: Option<Instant>,
    scratch: Vec<u8>,
}

/// One builder per column.
struct Columns {
    id_number: UInt64Builder,
    id_key: StringBuilder,
    status: UInt16Builder,
    bytes: UInt64Builder,
    latency_ms: Float64Builder,
    attempts: UInt16Builder,
    error: StringBuilder,
    line: UInt64Builder,
    keys: Vec<KeyBuilder>,
    page: UInt32Builder,
    next: StringBuilder,
    /// Captured headers, extracted fields, then the body or its path.
    texts: Vec<StringBuilder>,
}

impl ParquetRows {
    /// Rows into the directory `dir` (created when missing), after the parts already there.
    pub fn new(dir: &Path, schema: Schema, part_rows: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let texts = schema.capture_headers.len()
            + schema.extract.len()
            + usize::from(schema.body != BodyColumn::None);
        let keys = schema
            .keys
            .iter()
            .map(|k| KeyBuilder::new(k.kind))
            .collect();
        Ok(Self {
            parts: PartWriter::new(dir, Some(arrow_schema(&schema)))?,
            part_rows,
            schema,
            columns: Columns {
                id_number: UInt64Builder::new(),
                id_key: StringBuilder::new(),
                status: UInt16Builder::new(),
                bytes: UInt64Builder::new(),
                latency_ms: Float64Builder::new(),
                attempts: UInt16Builder::new(),
                error: StringBuilder::new(),
                line: UInt64Builder::new(),
                keys,
                page: UInt32Builder::new(),
                next: StringBuilder::new(),
                texts: (0..texts).map(|_| StringBuilder::new()).collect(),
            },
            rows: 0,
            bytes: 0,
            first_row_at: None,
            scratch: Vec::new(),
        })
    }

    fn append(&mut self, record: &Record) {
        let c = &mut self.columns;
        if self.schema.items.id_is_key() {
            let key = record.captured.key.as_deref().unwrap_or_default();
            c.id_key.append_value(as_text(key, &mut self.scratch));
        } else {
            c.id_number.append_value(self.schema.id_of(record.index));
        }
        if self.schema.index_column() != 0 {
            c.line.append_value(record.index);
        }
        c.status.append_option(record.status);
        c.bytes.append_value(record.bytes);
        c.latency_ms
            .append_value(f64::from(record.latency_us) / 1000.0);
        c.attempts.append_value(record.attempts);
        c.error
            .append_option(record.error.map(|kind| kind.as_str()));
        let captured = &record.captured;
        for (slot, builder) in c.keys.iter_mut().enumerate() {
            let value = captured.keys.get(slot).and_then(Option::as_deref);
            builder.append(value, &mut self.scratch);
        }
        if self.schema.pages.is_some() {
            c.page.append_value(record.page);
            match &captured.next {
                Some(next) => c.next.append_value(as_text(next, &mut self.scratch)),
                None => c.next.append_null(),
            }
        }
        let headers = (0..self.schema.capture_headers.len()).map(|slot| captured.headers.get(slot));
        let fields = (0..self.schema.extract.len()).map(|slot| captured.extracted.get(slot));
        let mut builders = c.texts.iter_mut();
        for value in headers.chain(fields) {
            let builder = builders.next().expect("a builder per text column");
            match value.and_then(Option::as_deref) {
                Some(bytes) => builder.append_value(as_text(bytes, &mut self.scratch)),
                None => builder.append_null(),
            }
        }
        if let Some(builder) = builders.next() {
            match (&self.schema.body, &captured.body) {
                (BodyColumn::Inline(encoding), Some(body)) => {
                    encode_body(body, *encoding, &mut self.scratch);
                    let encoded =
                        std::str::from_utf8(&self.scratch).expect("encoded bodies are UTF-8");
                    builder.append_value(encoded);
                }
                (_, Some(path)) => builder.append_value(as_text(path, &mut self.scratch)),
                (_, None) => builder.append_null(),
            }
        }
        self.rows += 1;
        self.bytes += record.captured_bytes();
        self.first_row_at.get_or_insert_with(Instant::now);
    }

    /// Writes the buffered rows as the next part and closes it.
    fn close_part(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let c = &mut self.columns;
        let mut arrays: Vec<ArrayRef> = Vec::new();
        if self.schema.items.id_is_key() {
            arrays.push(Arc::new(c.id_key.finish()));
        } else {
            arrays.push(Arc::new(c.id_number.finish()));
        }
        arrays.push(Arc::new(c.status.finish()));
        arrays.push(Arc::new(c.bytes.finish()));
        arrays.push(Arc::new(c.latency_ms.finish()));
        arrays.push(Arc::new(c.attempts.finish()));
        arrays.push(Arc::new(c.error.finish()));
        if self.schema.index_column() != 0 {
            arrays.push(Arc::new(c.line.finish()));
        }
        for builder in &mut c.keys {
            arrays.push(builder.finish());
        }
        if self.schema.pages.is_some() {
            arrays.push(Arc::new(c.page.finish()));
            arrays.push(Arc::new(c.next.finish()));
        }
        for builder in &mut c.texts {
            arrays.push(Arc::new(builder.finish()));
        }
        let schema = arrow_schema(&self.schema);
        let batch = RecordBatch::try_new(schema, arrays).map_err(io::Error::other)?;
        self.parts.write(&batch)?;
        self.parts.close_part()?;
        self.rows = 0;
        self.bytes = 0;
        self.first_row_at = None;
        Ok(())
    }
}

impl WriteRows for ParquetRows {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.append(record);
        if self.rows >= self.part_rows || self.bytes >= PART_BYTES {
            self.close_part()?;
        }
        Ok(())
    }

    /// Called every second by the writer: closes a part whose first row waited long enough.
    fn flush(&mut self) -> io::Result<()> {
        if self.first_row_at.is_some_and(|t| t.elapsed() >= PART_EVERY) {
            self.close_part()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close_part()
    }
}

/// Parquet: a directory of part files, typed columns.
pub struct Parquet;

impl Format for Parquet {
    fn name(&self) -> &'static str {
        "Parquet"
    }

    fn flag(&self) -> &'static str {
        "parquet"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["parquet", "pq"]
    }

    fn layout(&self) -> Layout<'_> {
        Layout::Parts(self)
    }
}

impl PartsFormat for Parquet {
    fn writer(
        &self,
        dir: &Path,
        schema: Schema,
        part_rows: usize,
    ) -> io::Result<Box<dyn WriteRows>> {
        Ok(Box::new(ParquetRows::new(dir, schema, part_rows)?))
    }

    fn parts(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        parts::parts(dir)
    }

    fn clean(&self, dir: &Path) -> io::Result<u64> {
        parts::clean(dir)
    }

    fn readable_rows(&self, dir: &Path) -> io::Result<u64> {
        parts::readable_rows(dir)
    }

    fn check_replaceable(&self, path: &Path) -> Result<(), NotOurs> {
        parts::check_replaceable(path)
    }

    fn remove_output(&self, path: &Path) -> Result<(), NotOurs> {
        parts::remove_output(path)
    }

    fn reader(&self, parts: Vec<PathBuf>) -> Result<Option<RowReader<'static>>, ReadError> {
        Ok(PartsReader::open(parts)?.map(RowReader::of))
    }

    fn copier(&self, dir: &Path) -> io::Result<Box<dyn CopyRows>> {
        Ok(Box::new(ParquetCopy::new(PartWriter::new(dir, None)?)))
    }

    fn replacing(&self, part: &Path) -> Box<dyn CopyRows> {
        Box::new(ParquetCopy::new(PartWriter::replacing(part)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BodyEncoding, Captured, ErrorKind};
    use crate::output::rows::cell;
    use parts::{clean, open_part, parts};

    #[test]
    fn parts_are_complete_files_with_typed_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.parquet");
        let schema = Schema {
            capture_headers: vec!["etag".into()],
            body: BodyColumn::Inline(BodyEncoding::Text),
            ..Schema::default()
        };
        let mut rows = ParquetRows::new(&out, schema, 100_000).expect("dir");
        for index in 0..5 {
            rows.write(&Record {
                index,
                page: 0,
                more: false,
                status: Some(200),
                bytes: 2,
                latency_us: 1500,
                attempts: 1,
                error: None,
                captured: Captured {
                    headers: vec![None],
                    body: Some(b"\xffx".to_vec()),
                    ..Captured::default()
                },
            })
            .expect("row");
        }
        rows.write(&Record {
            index: 5,
            page: 0,
            more: false,
            error: Some(ErrorKind::Timeout),
            ..Record::default()
        })
        .expect("row");
        assert!(parts(&out).expect("parts").is_empty(), "nothing closed yet");
        rows.finish().expect("finish");
        let found = parts(&out).expect("parts");
        assert_eq!(found.len(), 1);
        let batches: Vec<RecordBatch> = open_part(&found[0])
            .expect("footer reads")
            .collect::<Result<_, _>>()
            .expect("batches");
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 6);
        assert_eq!(batch.schema().field(0).data_type(), &DataType::UInt64);
        assert_eq!(cell(batch.column(3).as_ref(), 0).as_deref(), Some("1.500"));
        assert_eq!(cell(batch.column(6).as_ref(), 0).as_deref(), Some(""));
        assert_eq!(
            cell(batch.column(7).as_ref(), 0).as_deref(),
            Some("base64:/3g=")
        );
        assert_eq!(
            cell(batch.column(5).as_ref(), 5).as_deref(),
            Some("timeout")
        );
        assert!(batch.column(1).is_null(5));
        // A part cut short and a leftover .tmp are what `clean` removes.
        fs::write(out.join("part-000009.parquet"), b"PAR1 cut").expect("write");
        fs::write(out.join(".part-000010.parquet.tmp"), b"PAR1").expect("write");
        assert_eq!(clean(&out).expect("clean"), 2);
        assert_eq!(parts(&out).expect("parts"), found);
    }
}
