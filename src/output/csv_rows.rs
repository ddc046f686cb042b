//! CSV rows (RFC 4180): the default format ([`Csv`]), with a header line, one row per record;
//! written by [`CsvRows`], read back by [`CsvReader`], copied by [`CsvCopy`].

use std::fs::File;
use std::io::{self, BufRead, Read, Write};

use super::format::{CopyRows, FileFormat, Format, Layout};
use super::reader::complete_len;
use super::rows::{RawFields, RawRow, ReadError, ReadRows, RowReader, check_fixed};
use super::writer::{Sink, WriteRows, append_millis, encode_body};
use crate::model::{BodyColumn, BodyEncoding, Record, Schema};

const BUFFER_BYTES: usize = 256 << 10;
/// Bytes quoted at a time into the row buffer (a field of any size goes in chunks).
const QUOTE_CHUNK: usize = 4096;

/// Formats records as CSV rows (RFC 4180 quoting: a field with a comma, quote or line break
/// is quoted), reusing its buffers.
///
/// The fixed columns (an index, a status, a size, a latency, attempts, an error kind: digits, a
/// dot, lowercase words) can never need quotes and go into the row buffer as they are
/// formatted; every other field (a key, captured headers, extracted fields, key columns,
/// bodies, and the header line) goes through csv-core's quoting, the engine of the `csv`
/// crate's own writer, decided and quoted exactly as `csv::Writer` does. Handing all six fixed
/// fields to `csv::Writer::write_field` one at a time (its state machine, a quoting scan per
/// byte, a delimiter call per field) was over a third of the supervisor's instructions per row.
pub struct CsvRows<W: Write> {
    out: W,
    /// Rows not yet handed to `out`: at most [`BUFFER_BYTES`] and one field.
    pending: Vec<u8>,
    /// The quoting rules of a default `csv::Writer` (`,`, `"` doubled, `\n` rows).
    quoting: csv_core::Writer,
    schema: Schema,
    /// The schema has key, page, captured header or extracted columns (without, a row skips
    /// looking at each list).
    texts: bool,
    encoded: Vec<u8>,
}

impl<W: Write> CsvRows<W> {
    pub fn new(out: W, schema: Schema, write_header: bool) -> io::Result<Self> {
        let mut rows = Self {
            out,
            pending: Vec::with_capacity(BUFFER_BYTES + QUOTE_CHUNK),
            quoting: csv_core::WriterBuilder::new().build(),
            texts: !schema.keys.is_empty()
                || schema.pages.is_some()
                || !schema.capture_headers.is_empty()
                || !schema.extract.is_empty(),
            schema,
            encoded: Vec::new(),
        };
        if write_header {
            let columns = rows.schema.columns();
            for (at, column) in columns.iter().enumerate() {
                rows.delimit(at);
                rows.text(column.as_bytes())?;
            }
            rows.end_row()?;
        }
        Ok(rows)
    }

    fn write_row(&mut self, record: &Record) -> io::Result<()> {
        match &record.captured.key {
            Some(key) => self.text(key)?,
            None => self.plain(itoa::Buffer::new().format(self.schema.id_of(record.index))),
        }
        self.fixed(record);
        if self.schema.index_column() != 0 {
            self.pending.push(b',');
            self.plain(itoa::Buffer::new().format(record.index));
        }
        // Key columns, captured headers and extracted fields as text: a header value in
        // Latin-1 (or a regex match of bytes) would make the whole file unreadable as UTF-8, so
        // each is written as bodies are in text mode, `base64:` when not UTF-8. Error rows carry
        // no captured headers or fields: their columns stay empty.
        if self.texts {
            let captured = &record.captured;
            self.write_texts(&captured.keys, self.schema.keys.len())?;
            if self.schema.pages.is_some() {
                self.pending.push(b',');
                self.plain(itoa::Buffer::new().format(record.page));
                self.write_texts(std::slice::from_ref(&captured.next), 1)?;
            }
            self.write_texts(&captured.headers, self.schema.capture_headers.len())?;
            self.write_texts(&captured.extracted, self.schema.extract.len())?;
        }
        let body = record.captured.body.as_deref();
        match self.schema.body {
            BodyColumn::None => {}
            BodyColumn::Files(_) => {
                self.pending.push(b',');
                self.text(body.unwrap_or_default())?;
            }
            BodyColumn::Inline(encoding) => {
                let mut encoded = std::mem::take(&mut self.encoded);
                encode_body(body.unwrap_or_default(), encoding, &mut encoded);
                self.pending.push(b',');
                let written = self.text(&encoded);
                self.encoded = encoded;
                written?;
            }
        }
        self.end_row()
    }

    /// The columns after the id: `,status,bytes,latency_ms,attempts,error`, none of which can
    /// hold a byte that needs quotes (the unit test `every_error_kind_is_written_unquoted`).
    fn fixed(&mut self, record: &Record) {
        self.pending.push(b',');
        if let Some(status) = record.status {
            self.plain(itoa::Buffer::new().format(status));
        }
        self.pending.push(b',');
        self.plain(itoa::Buffer::new().format(record.bytes));
        self.pending.push(b',');
        append_millis(record.latency_us, &mut self.pending);
        self.pending.push(b',');
        self.plain(itoa::Buffer::new().format(record.attempts));
        self.pending.push(b',');
        if let Some(kind) = record.error {
            self.plain(kind.as_str());
        }
    }

    /// `columns` fields from `values` (absent or missing: empty), as text.
    fn write_texts(&mut self, values: &[Option<Vec<u8>>], columns: usize) -> io::Result<()> {
        if columns == 0 {
            return Ok(());
        }
        let mut encoded = std::mem::take(&mut self.encoded);
        let mut written = Ok(());
        for slot in 0..columns {
            let value = values.get(slot).and_then(Option::as_deref);
            encode_body(value.unwrap_or_default(), BodyEncoding::Text, &mut encoded);
            self.pending.push(b',');
            written = self.text(&encoded);
            if written.is_err() {
                break;
            }
        }
        self.encoded = encoded;
        written
    }

    /// A field that never needs quotes, as it is.
    fn plain(&mut self, field: &str) {
        self.pending.extend_from_slice(field.as_bytes());
    }

    /// A comma before every field but a row's first.
    fn delimit(&mut self, at: usize) {
        if at > 0 {
            self.pending.push(b',');
        }
    }

    /// A field that may need quotes, quoted as `csv::Writer` quotes it (`Necessary`: only a
    /// field holding a comma, quote, CR or LF), in chunks so a large one never sits whole in
    /// the buffer.
    fn text(&mut self, field: &[u8]) -> io::Result<()> {
        if !self.quoting.should_quote(field) {
            return self.put(field);
        }
        self.pending.push(self.quoting.get_quote());
        let mut chunk = [0u8; QUOTE_CHUNK];
        let mut rest = field;
        loop {
            let (result, read, wrote) = csv_core::quote(
                rest,
                &mut chunk,
                self.quoting.get_quote(),
                self.quoting.get_escape(),
                self.quoting.get_double_quote(),
            );
            self.put(&chunk[..wrote])?;
            rest = &rest[read..];
            if result == csv_core::WriteResult::InputEmpty {
                break;
            }
        }
        self.pending.push(self.quoting.get_quote());
        Ok(())
    }

    /// Appends `bytes`; what passes the buffer goes to the output first, and a piece larger than
    /// the buffer goes straight through.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.pending.len() + bytes.len() > BUFFER_BYTES {
            self.drain()?;
            if bytes.len() >= BUFFER_BYTES {
                return self.out.write_all(bytes);
            }
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn end_row(&mut self) -> io::Result<()> {
        self.pending.push(b'\n');
        if self.pending.len() >= BUFFER_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    /// Hands the buffered rows to the output.
    fn drain(&mut self) -> io::Result<()> {
        let written = self.out.write_all(&self.pending);
        self.pending.clear();
        written
    }
}

impl<W: Write> WriteRows for CsvRows<W> {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.write_row(record)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }
}

impl<W: Write> Drop for CsvRows<W> {
    /// What was written goes out even if the writer is dropped unflushed, as `csv::Writer`'s
    /// own drop does.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A CSV's rows read back: its header checked (the fixed columns first), then one record at a
/// time (a quoted field may hold line breaks).
pub struct CsvReader<R> {
    csv: csv::Reader<R>,
    record: csv::ByteRecord,
    columns: Vec<String>,
}

impl<R: Read> CsvReader<R> {
    /// Reads and checks the header.
    pub fn new(input: R) -> Result<Self, ReadError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(input);
        let header = csv.byte_headers().map_err(|e| ReadError::Row {
            line: 1,
            message: e.to_string(),
        })?;
        let columns: Vec<String> = header
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        check_fixed(&columns, || {
            String::from_utf8_lossy(header.as_slice()).into_owned()
        })?;
        Ok(Self {
            csv,
            record: csv::ByteRecord::new(),
            columns,
        })
    }
}

impl<R: Read> ReadRows for CsvReader<R> {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError> {
        let (csv, record) = (&mut self.csv, &mut self.record);
        let more = csv.read_byte_record(record).map_err(|e| ReadError::Row {
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        if !more {
            return Ok(None);
        }
        let line = record.position().map_or(0, |p| p.line());
        Ok(Some(RawRow {
            line,
            fields: RawFields::Csv(record),
        }))
    }
}

/// CSV: one file, a header line, then a row per record.
pub struct Csv;

impl Format for Csv {
    fn name(&self) -> &'static str {
        "CSV"
    }

    fn flag(&self) -> &'static str {
        "csv"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["csv"]
    }

    fn layout(&self) -> Layout<'_> {
        Layout::File(self)
    }
}

impl FileFormat for Csv {
    fn writer(&self, out: Sink, schema: Schema, header: bool) -> io::Result<Box<dyn WriteRows>> {
        Ok(Box::new(CsvRows::new(out, schema, header)?))
    }

    fn reader<'a>(&self, input: Box<dyn BufRead + 'a>) -> Result<Option<RowReader<'a>>, ReadError> {
        CsvReader::new(input).map(|reader| Some(RowReader::of(reader)))
    }

    fn copier<'a>(&self, out: &'a mut dyn Write) -> Box<dyn CopyRows + 'a> {
        Box::new(CsvCopy(csv::Writer::from_writer(out)))
    }

    /// A body with line breaks is one quoted field: a row ends at a newline outside quotes.
    fn complete_len(&self, file: &mut File) -> io::Result<u64> {
        complete_len(file, true)
    }
}

impl<'a> RowReader<'a> {
    /// The rows of a CSV (ringscrape's default output, as the tests read it), its header checked.
    pub fn new(input: impl Read + 'a) -> Result<Self, ReadError> {
        CsvReader::new(input).map(RowReader::of)
    }
}

/// CSV rows read back, written again as they were.
pub struct CsvCopy<'a>(csv::Writer<&'a mut dyn Write>);

impl CopyRows for CsvCopy<'_> {
    fn header(&mut self, columns: &[String]) -> io::Result<()> {
        self.0.write_record(columns).map_err(io::Error::from)
    }

    fn copy(&mut self, row: &RawRow<'_>) -> io::Result<()> {
        match &row.fields {
            RawFields::Csv(record) => self.0.write_byte_record(record).map_err(io::Error::from),
            _ => Err(io::Error::other("a row copied into another format")),
        }
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BodyEncoding;
    use crate::model::ErrorKind;
    use crate::output::writer::WriteRows;

    #[test]
    fn rows_follow_the_header_with_empty_status_on_error() {
        let mut out = Vec::new();
        {
            let mut rows = CsvRows::new(&mut out, Schema::default(), true).expect("header");
            rows.write(&Record {
                index: 7,
                page: 0,
                more: false,
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
                page: 0,
                more: false,
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
    fn a_header_value_that_is_not_utf8_is_written_as_base64_text() {
        let schema = Schema {
            capture_headers: vec!["x-name".into()],
            ..Schema::default()
        };
        let mut out = Vec::new();
        {
            let mut rows = CsvRows::new(&mut out, schema, true).expect("header");
            rows.write(&Record {
                index: 1,
                page: 0,
                more: false,
                status: Some(200),
                captured: crate::model::Captured {
                    headers: vec![Some(b"caf\xe9".to_vec())],
                    ..Default::default()
                },
                ..Record::default()
            })
            .expect("row");
            rows.flush().expect("flush");
        }
        let text = String::from_utf8(out).expect("the whole file is UTF-8");
        assert!(text.ends_with(",base64:Y2Fm6Q==\n"), "{text}");
    }

    #[test]
    fn optional_columns_follow_with_quoting_and_bodies_are_never_mangled() {
        let schema = Schema {
            capture_headers: vec!["etag".into(), "x-missing".into()],
            extract: vec![crate::extract::ExtractSpec {
                name: "n".into(),
                expr: "/n".into(),
            }],
            body: BodyColumn::Inline(BodyEncoding::Text),
            ..Schema::default()
        };
        let mut out = Vec::new();
        {
            let mut rows = CsvRows::new(&mut out, schema.clone(), true).expect("header");
            let row = |index, body: &[u8]| Record {
                index,
                page: 0,
                more: false,
                status: Some(200),
                bytes: body.len() as u64,
                latency_us: 1000,
                attempts: 1,
                error: None,
                captured: crate::model::Captured {
                    headers: vec![Some(b"\"v1\"".to_vec()), None],
                    body: Some(body.to_vec()),
                    extracted: vec![Some(b"4,2".to_vec())],
                    ..Default::default()
                },
            };
            rows.write(&row(1, b"line one\nline, two")).expect("row");
            rows.write(&row(2, b"\xff\x00bin")).expect("row");
            rows.write(&Record {
                index: 3,
                page: 0,
                more: false,
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

    /// What `csv::Writer` writes for these fields, row by row: the writer above must match it.
    fn as_csv_writer_writes(rows: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut csv = csv::Writer::from_writer(Vec::new());
        for row in rows {
            csv.write_record(row).expect("write");
        }
        csv.into_inner().expect("flush")
    }

    #[test]
    fn every_fixed_field_shape_and_quoted_text_is_written_as_csv_writer_writes_it() {
        let schema = Schema {
            items: crate::job::Items::Lines,
            capture_headers: vec!["x,h".into()],
            extract: vec![crate::extract::ExtractSpec {
                name: "q\"n".into(),
                expr: "/n".into(),
            }],
            body: BodyColumn::Inline(BodyEncoding::Text),
            ..Schema::default()
        };
        // A body past the buffer, with quotes at the quoting chunks' edges: quoted in pieces.
        let big: Vec<u8> = (0..BUFFER_BYTES + 3 * QUOTE_CHUNK)
            .map(|i| {
                if i % (QUOTE_CHUNK - 1) == 0 {
                    b'"'
                } else {
                    b'a'
                }
            })
            .collect();
        let with = |key: &[u8], header: Option<&[u8]>, body: &[u8]| crate::model::Captured {
            key: Some(key.to_vec()),
            headers: vec![header.map(<[u8]>::to_vec)],
            extracted: vec![None],
            body: Some(body.to_vec()),
            ..Default::default()
        };
        let records = [
            Record {
                index: 0,
                status: Some(200),
                bytes: 612,
                latency_us: 4_294_967_295,
                attempts: 1,
                captured: with(b"a,b", Some(b"say \"hi\""), b"line\r\nnext"),
                ..Record::default()
            },
            Record {
                index: u64::MAX,
                status: None,
                latency_us: 7,
                attempts: 65535,
                error: Some(ErrorKind::BodyTooLarge),
                captured: with(b"plain", None, b""),
                ..Record::default()
            },
            Record {
                index: 3,
                status: Some(404),
                bytes: u64::MAX,
                captured: with(b"\"", Some(b"\xff"), &big),
                ..Record::default()
            },
        ];
        let mut out = Vec::new();
        {
            let mut rows = CsvRows::new(&mut out, schema.clone(), true).expect("header");
            for record in &records {
                rows.write(record).expect("row");
            }
            rows.flush().expect("flush");
        }
        // Fields split at `|`; the last row's body is the big one.
        let fields = |row: &str| row.split('|').map(|f| f.as_bytes().to_vec()).collect();
        let mut last: Vec<Vec<u8>> = fields("\"|404|18446744073709551615|0.000|0||3|base64:/w==|");
        last.push(big);
        let expected = as_csv_writer_writes(&[
            fields(&schema.columns().join("|")),
            fields("a,b|200|612|4294967.295|1||0|say \"hi\"||line\r\nnext"),
            fields("plain||0|0.007|65535|body-too-large|18446744073709551615|||"),
            last,
        ]);
        assert!(out == expected, "{}", String::from_utf8_lossy(&out[..200]));
    }

    #[test]
    fn every_error_kind_is_written_unquoted() {
        let quoting = csv_core::WriterBuilder::new().build();
        for kind in ErrorKind::ALL {
            assert!(!quoting.should_quote(kind.as_str().as_bytes()), "{kind:?}");
        }
    }

    #[test]
    fn rows_dropped_unflushed_still_reach_the_output() {
        let mut out = Vec::new();
        {
            let mut rows = CsvRows::new(&mut out, Schema::default(), false).expect("rows");
            rows.write(&Record {
                index: 5,
                ..Record::default()
            })
            .expect("row");
        }
        assert_eq!(out, b"5,,0,0.000,0,\n");
    }
}
