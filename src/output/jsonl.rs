//! JSON Lines rows: one object per record, keys = the CSV's column names in the same order,
//! typed: `id` (a number for an id range, the key as a string for an `--ids-file`), `status`,
//! `bytes`, `latency_ms`, `attempts`, `line` or `index` and `page` as numbers, `error` and `next`
//! strings; `null`
//! wherever the CSV cell is empty. Key columns keep their kind (numbers and booleans from JSON
//! Lines and Parquet key files). Captured headers, extracted fields and bodies are strings (a body
//! or header that is not UTF-8 as `base64:…`, as in the CSV's text mode).
//!
//! A string never holds a raw line break, so a torn last line is cut by `--resume` as in CSV.
//! The format is [`JsonLines`]: written by [`JsonlRows`], read back by [`JsonlReader`], copied
//! by [`JsonlCopy`].

use std::fs::File;
use std::io::{self, BufRead, Write};

use super::format::{CopyRows, FileFormat, Format, Layout};
use super::reader::complete_len;
use super::rows::{RawFields, RawRow, ReadError, ReadRows, RowReader, check_fixed};
use super::writer::{Sink, WriteRows, as_text, encode_body, format_millis};
use crate::model::{BodyColumn, KeyKind, Record, Schema};

const BUFFER_BYTES: usize = 256 << 10;

/// Formats records as JSON Lines, reusing its buffers.
pub struct JsonlRows<W: Write> {
    out: io::BufWriter<W>,
    schema: Schema,
    /// Each column's key, already quoted with its colon and the comma before it.
    keys: Vec<Vec<u8>>,
    line: Vec<u8>,
    scratch: Vec<u8>,
}

impl<W: Write> JsonlRows<W> {
    pub fn new(out: W, schema: Schema) -> Self {
        let keys = schema
            .columns()
            .iter()
            .enumerate()
            .map(|(at, name)| {
                let mut key = if at == 0 {
                    b"{".to_vec()
                } else {
                    b",".to_vec()
                };
                serde_json::to_writer(&mut key, name).expect("a Vec takes any write");
                key.push(b':');
                key
            })
            .collect();
        Self {
            out: io::BufWriter::with_capacity(BUFFER_BYTES, out),
            schema,
            keys,
            line: Vec::with_capacity(256),
            scratch: Vec::new(),
        }
    }

    fn format(&mut self, record: &Record) {
        let line = &mut self.line;
        line.clear();
        let mut keys = self.keys.iter();
        let mut key =
            |line: &mut Vec<u8>| line.extend_from_slice(keys.next().expect("a key per column"));
        let mut number = itoa::Buffer::new();
        key(line);
        match &record.captured.key {
            Some(text) => string(line, text, &mut self.scratch),
            None => {
                let id = self.schema.id_of(record.index);
                line.extend_from_slice(number.format(id).as_bytes());
            }
        }
        key(line);
        match record.status {
            Some(status) => line.extend_from_slice(number.format(status).as_bytes()),
            None => line.extend_from_slice(b"null"),
        }
        key(line);
        line.extend_from_slice(number.format(record.bytes).as_bytes());
        key(line);
        format_millis(record.latency_us, &mut self.scratch);
        line.extend_from_slice(&self.scratch);
        key(line);
        line.extend_from_slice(number.format(record.attempts).as_bytes());
        key(line);
        match record.error {
            Some(kind) => {
                line.push(b'"');
                line.extend_from_slice(kind.as_str().as_bytes());
                line.push(b'"');
            }
            None => line.extend_from_slice(b"null"),
        }
        if self.schema.index_column() != 0 {
            key(line);
            line.extend_from_slice(number.format(record.index).as_bytes());
        }
        captured_columns(line, &mut key, &self.schema, record, &mut self.scratch);
        line.extend_from_slice(b"}\n");
    }
}

/// The columns after the fixed ones and the index: key columns, `page` and `next`, captured
/// headers, extracted fields, the body; `key` writes the next column's key.
fn captured_columns(
    line: &mut Vec<u8>,
    key: &mut impl FnMut(&mut Vec<u8>),
    schema: &Schema,
    record: &Record,
    scratch: &mut Vec<u8>,
) {
    let captured = &record.captured;
    for (slot, column) in schema.keys.iter().enumerate() {
        key(line);
        let value = captured.keys.get(slot).and_then(Option::as_deref);
        typed(line, value, column.kind, scratch);
    }
    if schema.pages.is_some() {
        key(line);
        line.extend_from_slice(itoa::Buffer::new().format(record.page).as_bytes());
        key(line);
        optional(line, Some(&captured.next), scratch);
    }
    for slot in 0..schema.capture_headers.len() {
        key(line);
        optional(line, captured.headers.get(slot), scratch);
    }
    for slot in 0..schema.extract.len() {
        key(line);
        optional(line, captured.extracted.get(slot), scratch);
    }
    match schema.body {
        BodyColumn::None => {}
        BodyColumn::Files(_) => {
            key(line);
            optional(line, Some(&captured.body), scratch);
        }
        BodyColumn::Inline(encoding) => {
            key(line);
            match &captured.body {
                Some(body) => {
                    encode_body(body, encoding, scratch);
                    let text = std::str::from_utf8(scratch).expect("encoded bodies are UTF-8");
                    serde_json::to_writer(&mut *line, text).expect("a Vec takes any write");
                }
                None => line.extend_from_slice(b"null"),
            }
        }
    }
}

/// A key column's value as its kind: a number or boolean bare when the text is one (else a
/// string, never invalid JSON), text as a string, absent as `null`.
fn typed(line: &mut Vec<u8>, value: Option<&[u8]>, kind: KeyKind, scratch: &mut Vec<u8>) {
    let Some(bytes) = value else {
        line.extend_from_slice(b"null");
        return;
    };
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    match kind {
        KeyKind::Integer if text.parse::<i64>().is_ok() => line.extend_from_slice(bytes),
        KeyKind::Float if text.parse::<f64>().is_ok_and(f64::is_finite) => {
            serde_json::to_writer(line, &text.parse::<f64>().unwrap_or_default())
                .expect("a Vec takes any write");
        }
        KeyKind::Boolean if matches!(text, "true" | "false") => line.extend_from_slice(bytes),
        _ => string(line, bytes, scratch),
    }
}

/// A value that may be absent (`null`), written as a string.
fn optional(line: &mut Vec<u8>, value: Option<&Option<Vec<u8>>>, scratch: &mut Vec<u8>) {
    match value.and_then(Option::as_ref) {
        Some(bytes) => string(line, bytes, scratch),
        None => line.extend_from_slice(b"null"),
    }
}

/// `bytes` as a JSON string: as text when UTF-8, else `base64:…` (never mangled).
fn string(line: &mut Vec<u8>, bytes: &[u8], scratch: &mut Vec<u8>) {
    serde_json::to_writer(line, as_text(bytes, scratch)).expect("a Vec takes any write");
}

impl<W: Write> WriteRows for JsonlRows<W> {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.format(record);
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// JSON Lines read back: the columns learnt from the first object's keys (the fixed ones
/// first), then one object per non-empty line, each with the same keys.
pub struct JsonlReader<R> {
    input: R,
    /// Lines read so far (the current row's line number).
    line: u64,
    text: Vec<u8>,
    values: Vec<serde_json::Value>,
    /// The first line was read to learn the columns and is still to be handed out.
    pending: bool,
    columns: Vec<String>,
}

impl<R: BufRead> JsonlReader<R> {
    /// `None` when there is no object at all.
    pub fn open(mut input: R) -> Result<Option<Self>, ReadError> {
        let (mut line, mut text) = (0, Vec::new());
        let Some(object) = next_json_line(&mut input, &mut line, &mut text)? else {
            return Ok(None);
        };
        let columns: Vec<String> = object.keys().cloned().collect();
        check_fixed(&columns, || columns.join(","))?;
        Ok(Some(Self {
            input,
            line,
            text,
            values: object.into_iter().map(|(_, v)| v).collect(),
            pending: true,
            columns,
        }))
    }
}

impl<R: BufRead> ReadRows for JsonlReader<R> {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError> {
        let Self {
            input,
            line,
            text,
            values,
            pending,
            columns,
        } = self;
        if !std::mem::take(pending) {
            let Some(object) = next_json_line(input, line, text)? else {
                return Ok(None);
            };
            if !object.keys().eq(columns.iter()) {
                return Err(ReadError::Row {
                    line: *line,
                    message: "its keys are not those of the first line".into(),
                });
            }
            values.clear();
            values.extend(object.into_iter().map(|(_, v)| v));
        }
        Ok(Some(RawRow {
            line: *line,
            fields: RawFields::Json { text, values },
        }))
    }
}

/// JSON Lines: one file, an object per line.
pub struct JsonLines;

impl Format for JsonLines {
    fn name(&self) -> &'static str {
        "JSON Lines"
    }

    fn flag(&self) -> &'static str {
        "jsonl"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["jsonl", "ndjson"]
    }

    fn layout(&self) -> Layout<'_> {
        Layout::File(self)
    }
}

impl FileFormat for JsonLines {
    fn writer(&self, out: Sink, schema: Schema, _header: bool) -> io::Result<Box<dyn WriteRows>> {
        Ok(Box::new(JsonlRows::new(out, schema)))
    }

    fn reader<'a>(&self, input: Box<dyn BufRead + 'a>) -> Result<Option<RowReader<'a>>, ReadError> {
        Ok(JsonlReader::open(input)?.map(RowReader::of))
    }

    fn copier<'a>(&self, out: &'a mut dyn Write) -> Box<dyn CopyRows + 'a> {
        Box::new(JsonlCopy(out))
    }

    /// A JSON string holds no raw line break: a row ends at the last newline.
    fn complete_len(&self, file: &mut File) -> io::Result<u64> {
        complete_len(file, false)
    }
}

/// JSON Lines read back, written again as they were (each line names its columns: no header).
pub struct JsonlCopy<'a>(&'a mut dyn Write);

impl CopyRows for JsonlCopy<'_> {
    fn header(&mut self, _columns: &[String]) -> io::Result<()> {
        Ok(())
    }

    fn copy(&mut self, row: &RawRow<'_>) -> io::Result<()> {
        match &row.fields {
            RawFields::Json { text, .. } => {
                self.0.write_all(text)?;
                self.0.write_all(b"\n")
            }
            _ => Err(io::Error::other("a row copied into another format")),
        }
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

/// The next non-empty line of JSON Lines as an object; `None` at the end.
fn next_json_line(
    input: &mut impl BufRead,
    line: &mut u64,
    text: &mut Vec<u8>,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ReadError> {
    loop {
        text.clear();
        let read = input.read_until(b'\n', text).map_err(|e| ReadError::Row {
            line: *line + 1,
            message: e.to_string(),
        })?;
        if read == 0 {
            return Ok(None);
        }
        *line += 1;
        while text.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            text.pop();
        }
        if text.is_empty() {
            continue;
        }
        return serde_json::from_slice(text)
            .map(Some)
            .map_err(|e| ReadError::Row {
                line: *line,
                message: format!("not a JSON object: {e}"),
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BodyEncoding, Captured, ErrorKind};

    #[test]
    fn rows_are_typed_objects_in_column_order_with_nulls_for_empty_cells() {
        let schema = Schema {
            items: crate::model::Items::Lines,
            capture_headers: vec!["etag".into()],
            extract: vec![crate::extract::ExtractSpec {
                name: "n".into(),
                expr: "/n".into(),
            }],
            body: BodyColumn::Inline(BodyEncoding::Text),
            ..Schema::default()
        };
        let mut out = Vec::new();
        {
            let mut rows = JsonlRows::new(&mut out, schema);
            rows.write(&Record {
                index: 3,
                page: 0,
                more: false,
                status: Some(200),
                bytes: 5,
                latency_us: 1500,
                attempts: 1,
                error: None,
                captured: Captured {
                    headers: vec![Some(b"\"v\"".to_vec())],
                    body: Some(b"a\nb\xff".to_vec()),
                    key: Some(b"k\"ey".to_vec()),
                    extracted: vec![None],
                    keys: Vec::new(),
                    next: None,
                },
            })
            .expect("row");
            rows.write(&Record {
                index: 4,
                page: 0,
                more: false,
                error: Some(ErrorKind::Timeout),
                captured: Captured {
                    key: Some(b"k2".to_vec()),
                    ..Captured::default()
                },
                ..Record::default()
            })
            .expect("row");
            rows.flush().expect("flush");
        }
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "{\"id\":\"k\\\"ey\",\"status\":200,\"bytes\":5,\"latency_ms\":1.500,\"attempts\":1,\"error\":null,\"line\":3,\"etag\":\"\\\"v\\\"\",\"n\":null,\"body\":\"base64:YQpi/w==\"}\n\
             {\"id\":\"k2\",\"status\":null,\"bytes\":0,\"latency_ms\":0.000,\"attempts\":0,\"error\":\"timeout\",\"line\":4,\"etag\":null,\"n\":null,\"body\":null}\n"
        );
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
            assert!(value.is_object());
        }
    }

    #[test]
    fn key_columns_keep_their_kind_and_a_product_row_names_its_id_and_index() {
        use crate::model::{Items, KeyColumn, KeyKind};
        let key = |name: &str, kind| KeyColumn {
            name: name.into(),
            kind,
            file: "k.jsonl".into(),
        };
        let schema = Schema {
            items: Items::Product { per_id: 10 },
            keys: vec![
                key("user", KeyKind::Text),
                key("n", KeyKind::Integer),
                key("x", KeyKind::Float),
                key("ok", KeyKind::Boolean),
                key("odd", KeyKind::Integer),
            ],
            ..Schema::default()
        };
        let mut out = Vec::new();
        {
            let mut rows = JsonlRows::new(&mut out, schema);
            let keys = [
                Some(&b"007"[..]),
                Some(b"42"),
                Some(b"2.5"),
                Some(b"true"),
                Some(b"not a number"),
            ];
            rows.write(&Record {
                index: 73,
                page: 0,
                more: false,
                error: Some(ErrorKind::Request),
                captured: Captured {
                    keys: keys.iter().map(|v| v.map(<[u8]>::to_vec)).collect(),
                    ..Captured::default()
                },
                ..Record::default()
            })
            .expect("row");
            rows.flush().expect("flush");
        }
        let value: serde_json::Value = serde_json::from_slice(&out).expect("one valid JSON object");
        assert_eq!(
            value,
            serde_json::json!({"id": 7, "status": null, "bytes": 0, "latency_ms": 0.0,
                "attempts": 0, "error": "request", "index": 73, "user": "007", "n": 42,
                "x": 2.5, "ok": true, "odd": "not a number"})
        );
    }
}
