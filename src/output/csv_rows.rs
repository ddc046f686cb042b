//! CSV rows (RFC 4180): the default format ([`Csv`]), with a header line, one row per record;
//! written by [`CsvRows`], read back by [`CsvReader`], copied by [`CsvCopy`].

use std::fs::File;
use std::io::{self, BufRead, Read, Write};

use super::format::{CopyRows, FileFormat, Format, Layout};
use super::reader::complete_len;
use super::rows::{RawFields, RawRow, ReadError, ReadRows, RowReader, check_fixed};
use super::writer::{Sink, WriteRows, encode_body, format_millis};
use crate::model::{BodyColumn, BodyEncoding, Record, Schema};

const BUFFER_BYTES: usize = 256 << 10;

/// Formats records as CSV rows (RFC 4180 quoting: a field with a comma, quote or line break
/// is quoted), reusing its buffers.
pub struct CsvRows<W: Write> {
    csv: csv::Writer<W>,
    schema: Schema,
    latency: Vec<u8>,
    encoded: Vec<u8>,
}

impl<W: Write> CsvRows<W> {
    pub fn new(out: W, schema: Schema, write_header: bool) -> io::Result<Self> {
        let mut csv = csv::WriterBuilder::new()
            .buffer_capacity(BUFFER_BYTES)
            .from_writer(out);
        if write_header {
            csv.write_record(schema.columns()).map_err(csv_io_error)?;
        }
        Ok(Self {
            csv,
            schema,
            latency: Vec::with_capacity(16),
            encoded: Vec::new(),
        })
    }

    fn write_row(&mut self, record: &Record) -> csv::Result<()> {
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
            None => id.format(self.schema.id_of(record.index)).as_bytes(),
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
        if self.schema.index_column() != 0 {
            self.csv.write_field(line.format(record.index))?;
        }
        // Key columns, captured headers and extracted fields as text: a header value in
        // Latin-1 (or a regex match of bytes) would make the whole file unreadable as UTF-8, so
        // each is written as bodies are in text mode, `base64:` when not UTF-8. Error rows carry
        // no captured headers or fields: their columns stay empty.
        let captured = &record.captured;
        self.write_texts(&captured.keys, self.schema.keys.len())?;
        if self.schema.pages.is_some() {
            self.csv
                .write_field(itoa::Buffer::new().format(record.page))?;
            self.write_texts(std::slice::from_ref(&captured.next), 1)?;
        }
        self.write_texts(&captured.headers, self.schema.capture_headers.len())?;
        self.write_texts(&captured.extracted, self.schema.extract.len())?;
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
}

impl<W: Write> CsvRows<W> {
    /// `columns` fields from `values` (absent or missing: empty), as text.
    fn write_texts(&mut self, values: &[Option<Vec<u8>>], columns: usize) -> csv::Result<()> {
        for slot in 0..columns {
            let value = values.get(slot).and_then(Option::as_deref);
            encode_body(
                value.unwrap_or_default(),
                BodyEncoding::Text,
                &mut self.encoded,
            );
            self.csv.write_field(&self.encoded)?;
        }
        Ok(())
    }
}

impl<W: Write> WriteRows for CsvRows<W> {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.write_row(record).map_err(csv_io_error)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.csv.flush()
    }
}

/// The I/O error inside a CSV error (a write can fail no other way).
fn csv_io_error(error: csv::Error) -> io::Error {
    match error.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
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
}
