//! A run's rows as typed Arrow columns, shared by the formats that write Arrow record batches
//! (Parquet parts, the Arrow IPC stream): [`arrow_schema`], the one schema both write, and
//! [`RecordColumns`], which appends records to a builder per column and hands them out as one
//! [`RecordBatch`].
//!
//! Columns are typed: `id` UInt64 (Utf8: the key, for an `--ids-file`), `status` UInt16,
//! `bytes` UInt64, `latency_ms` Float64, `attempts` UInt16, `error` Utf8, `line` or `index`
//! UInt64, key columns as their kind (Utf8, Int64, Float64, Boolean), `page` UInt32, and `next`,
//! captured headers, extracted fields, `body` / `body_path` as Utf8 (not UTF-8: `base64:…`, as
//! the CSV's text mode); null where the CSV cell is empty.

use std::io;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef};

use super::writer::{as_text, encode_body};
use crate::model::{BodyColumn, FIXED_COLUMNS, KeyKind, Record, Schema};

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

/// Records appended to one builder per column, until [`RecordColumns::finish`] hands them out
/// as a batch and starts the next.
pub struct RecordColumns {
    schema: Schema,
    arrow: SchemaRef,
    columns: Columns,
    rows: usize,
    /// Captured bytes (bodies, headers, fields) of the rows appended.
    bytes: usize,
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

impl RecordColumns {
    /// Builders for `schema`'s columns.
    pub fn new(schema: Schema) -> RecordColumns {
        let texts = schema.capture_headers.len()
            + schema.extract.len()
            + usize::from(schema.body != BodyColumn::None);
        let keys = schema
            .keys
            .iter()
            .map(|k| KeyBuilder::new(k.kind))
            .collect();
        RecordColumns {
            arrow: arrow_schema(&schema),
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
            scratch: Vec::new(),
        }
    }

    /// The Arrow schema the batches have.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }

    /// Rows appended since the last batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Captured bytes (bodies, headers, fields) appended since the last batch.
    pub fn captured_bytes(&self) -> usize {
        self.bytes
    }

    /// Appends `record` as one row.
    pub fn append(&mut self, record: &Record) {
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
        self.append_texts(record);
        self.rows += 1;
        self.bytes += record.captured_bytes();
    }

    /// The text columns: captured headers, extracted fields, then the body or its path.
    fn append_texts(&mut self, record: &Record) {
        let captured = &record.captured;
        let headers = (0..self.schema.capture_headers.len()).map(|slot| captured.headers.get(slot));
        let fields = (0..self.schema.extract.len()).map(|slot| captured.extracted.get(slot));
        let mut builders = self.columns.texts.iter_mut();
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
    }

    /// The rows appended since the last batch, as one batch; the builders start empty again.
    pub fn finish(&mut self) -> io::Result<RecordBatch> {
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
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.arrow.clone(), arrays).map_err(io::Error::other)
    }
}
