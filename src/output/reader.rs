//! Reading ringscrape's rows back, the one place that does: `--resume`, the tests and `merge`
//! all go through [`RowReader`], whatever the format (CSV, JSON Lines), and write what they keep
//! through [`RowCopier`]. The columns must start with the fixed ones; columns after them
//! (captured headers, extracted fields, bodies, line numbers) are allowed and reached by name.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

use std::path::PathBuf;

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReader;
use arrow_array::RecordBatch;
use arrow_array::RecordBatchReader;

use super::format::RowFormat;
use super::parquet::{self, PartWriter};
use crate::model::{ErrorKind, FIXED_COLUMNS, is_success};

/// Column positions of the fixed columns.
const ID: usize = 0;
const STATUS: usize = 1;
const BYTES: usize = 2;
const LATENCY: usize = 3;
const ATTEMPTS: usize = 4;
const ERROR: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("its header is {0:?}, not {fixed} followed by optional columns", fixed = FIXED_COLUMNS.join(","))]
    Header(String),
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
}

/// Streams the rows of a file whose columns have been checked: a CSV (columns from its header)
/// or JSON Lines (columns from the keys of its first object).
pub struct RowReader<R> {
    format: Format<R>,
    columns: Vec<String>,
}

enum Format<R> {
    Csv {
        csv: csv::Reader<R>,
        record: csv::ByteRecord,
    },
    JsonLines {
        input: R,
        /// Lines read so far (the current row's line number).
        line: u64,
        text: Vec<u8>,
        values: Vec<serde_json::Value>,
        /// The first line was read to learn the columns and is still to be handed out.
        pending: bool,
    },
    Parquet {
        /// Parts still to read, in order.
        parts: std::vec::IntoIter<PathBuf>,
        part: Option<ParquetRecordBatchReader>,
        batch: Option<RecordBatch>,
        /// Batches read so far (tells one batch from the next).
        seq: u64,
        /// The next row of `batch`.
        row: usize,
        /// Rows handed out so far, over every part (a row's number in messages).
        read: u64,
    },
}

/// The current row of a [`RowReader`], parsed only as far as asked.
pub struct RawRow<'a> {
    /// Line of the file where the row starts (a CSV's header is line 1); for Parquet parts, the
    /// row's number over every part, from 1.
    pub line: u64,
    pub fields: RawFields<'a>,
}

/// A row's fields as the file holds them.
pub enum RawFields<'a> {
    Csv(&'a csv::ByteRecord),
    /// Row `row` of the `seq`-th batch read.
    Parquet {
        batch: &'a RecordBatch,
        seq: u64,
        row: usize,
    },
    /// The line (without its line end) and its values in column order.
    Json {
        text: &'a [u8],
        values: &'a [serde_json::Value],
    },
}

/// One row, every fixed column typed; optional columns as text, in header order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub status: Option<u16>,
    pub bytes: u64,
    pub latency_ms: f64,
    pub attempts: u32,
    pub error: Option<ErrorKind>,
    pub extra: Vec<String>,
}

fn check_fixed(columns: &[String], shown: impl FnOnce() -> String) -> Result<(), ReadError> {
    let fixed = columns.iter().zip(FIXED_COLUMNS).all(|(a, b)| a == b);
    if columns.len() < FIXED_COLUMNS.len() || !fixed {
        return Err(ReadError::Header(shown()));
    }
    Ok(())
}

impl<R: Read> RowReader<R> {
    /// Reads and checks a CSV's header.
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
            format: Format::Csv {
                csv,
                record: csv::ByteRecord::new(),
            },
            columns,
        })
    }
}

impl<R: BufRead> RowReader<R> {
    /// A reader of `format`: JSON Lines learns its columns from the first object (`None` when
    /// there is none).
    pub fn of_format(input: R, format: RowFormat) -> Result<Option<Self>, ReadError> {
        match format {
            RowFormat::Csv => Self::new(input).map(Some),
            RowFormat::JsonLines => Self::json_lines(input),
            RowFormat::Parquet => Err(ReadError::Row {
                line: 0,
                message: "Parquet is read from its directory, not a stream".into(),
            }),
        }
    }

    fn json_lines(input: R) -> Result<Option<Self>, ReadError> {
        let mut reader = Self {
            format: Format::JsonLines {
                input,
                line: 0,
                text: Vec::new(),
                values: Vec::new(),
                pending: false,
            },
            columns: Vec::new(),
        };
        let Format::JsonLines {
            input,
            line,
            text,
            values,
            pending,
        } = &mut reader.format
        else {
            unreachable!("built as JSON Lines just above");
        };
        let Some(object) = next_json_line(input, line, text)? else {
            return Ok(None);
        };
        reader.columns = object.keys().cloned().collect();
        check_fixed(&reader.columns, || reader.columns.join(","))?;
        *values = object.into_iter().map(|(_, v)| v).collect();
        *pending = true;
        Ok(Some(reader))
    }
}

impl RowReader<io::Empty> {
    /// The rows of Parquet `parts`, one after the other (their columns must agree); `None` when
    /// there is no part. A row's `line` is its number across the parts, from 1.
    pub fn parquet(parts: Vec<PathBuf>) -> Result<Option<Self>, ReadError> {
        let Some(first) = parts.first() else {
            return Ok(None);
        };
        let fail = |e: io::Error| ReadError::Row {
            line: 0,
            message: e.to_string(),
        };
        let reader = parquet::open_part(first).map_err(fail)?;
        let columns: Vec<String> = reader
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        check_fixed(&columns, || columns.join(","))?;
        Ok(Some(Self {
            format: Format::Parquet {
                parts: parts.into_iter(),
                part: None,
                batch: None,
                seq: 0,
                row: 0,
                read: 0,
            },
            columns,
        }))
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

impl<R: Read> RowReader<R> {
    /// Every column name, the fixed ones first.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Position of the column `name`, if the file has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

impl<R: BufRead> RowReader<R> {
    /// The next row; `None` at the end. A row with other columns than the file's is an error.
    pub fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError> {
        match &mut self.format {
            Format::Csv { csv, record } => {
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
            Format::JsonLines {
                input,
                line,
                text,
                values,
                pending,
            } => {
                if !std::mem::take(pending) {
                    let Some(object) = next_json_line(input, line, text)? else {
                        return Ok(None);
                    };
                    if !object.keys().eq(self.columns.iter()) {
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
            Format::Parquet {
                parts,
                part,
                batch,
                seq,
                row,
                read,
            } => {
                let fail = |message: String| ReadError::Row {
                    line: *read + 1,
                    message,
                };
                // The next batch with a row left: from this part, else from the next part.
                while batch.as_ref().is_none_or(|b| *row >= b.num_rows()) {
                    if let Some(reader) = part {
                        match reader.next() {
                            Some(Ok(next)) => {
                                if next
                                    .schema()
                                    .fields()
                                    .iter()
                                    .map(|f| f.name())
                                    .ne(self.columns.iter())
                                {
                                    return Err(fail(
                                        "a part with other columns than the first".into(),
                                    ));
                                }
                                *batch = Some(next);
                                *seq += 1;
                                *row = 0;
                                continue;
                            }
                            Some(Err(e)) => return Err(fail(e.to_string())),
                            None => *part = None,
                        }
                    }
                    let Some(path) = parts.next() else {
                        return Ok(None);
                    };
                    *part = Some(parquet::open_part(&path).map_err(|e| fail(e.to_string()))?);
                }
                let batch = batch.as_ref().expect("a batch with a row left");
                *row += 1;
                *read += 1;
                Ok(Some(RawRow {
                    line: *read,
                    fields: RawFields::Parquet {
                        batch,
                        seq: *seq,
                        row: *row - 1,
                    },
                }))
            }
        }
    }
}

impl RawRow<'_> {
    fn fail(&self, message: impl Into<String>) -> ReadError {
        ReadError::Row {
            line: self.line,
            message: message.into(),
        }
    }

    /// Column `column` as text: JSON `null` is empty, a number its JSON text.
    fn field(&self, column: usize) -> Result<Cow<'_, str>, ReadError> {
        match &self.fields {
            RawFields::Csv(record) => {
                let bytes = record
                    .get(column)
                    .ok_or_else(|| self.fail("too few fields"))?;
                std::str::from_utf8(bytes)
                    .map(Cow::Borrowed)
                    .map_err(|_| self.fail("not UTF-8"))
            }
            RawFields::Json { values, .. } => {
                match values
                    .get(column)
                    .ok_or_else(|| self.fail("too few fields"))?
                {
                    serde_json::Value::Null => Ok(Cow::Borrowed("")),
                    serde_json::Value::String(text) => Ok(Cow::Borrowed(text)),
                    other => Ok(Cow::Owned(other.to_string())),
                }
            }
            RawFields::Parquet { batch, row, .. } => {
                let array = batch
                    .columns()
                    .get(column)
                    .ok_or_else(|| self.fail("too few fields"))?;
                parquet::cell(array.as_ref(), *row)
                    .map(Cow::Owned)
                    .ok_or_else(|| self.fail("a column of a type ringscrape does not write"))
            }
        }
    }

    fn number<T: std::str::FromStr>(&self, column: usize) -> Result<T, ReadError> {
        self.field(column)?
            .parse()
            .map_err(|_| self.fail(format!("{} is not a number", FIXED_COLUMNS[column])))
    }

    /// The `id` column as a whole number (ids of a range).
    pub fn id_number(&self) -> Result<u64, ReadError> {
        self.index(ID)
    }

    /// Column `column` (`id` or `line`) as a whole number: the item's index.
    pub fn index(&self, column: usize) -> Result<u64, ReadError> {
        let name = if column == ID { "id" } else { "line" };
        let text = self
            .field(column)
            .map_err(|_| self.fail(format!("no {name} column")))?;
        text.parse()
            .map_err(|_| self.fail(format!("{name} is not a whole number")))
    }

    fn status(&self) -> Result<Option<u16>, ReadError> {
        if self.field(STATUS)?.is_empty() {
            Ok(None)
        } else {
            self.number(STATUS).map(Some)
        }
    }

    fn error(&self) -> Result<Option<ErrorKind>, ReadError> {
        let text = self.field(ERROR)?;
        if text.is_empty() {
            return Ok(None);
        }
        ErrorKind::parse(&text)
            .map(Some)
            .ok_or_else(|| self.fail(format!("unknown error kind {text:?}")))
    }

    /// True when the row is an answer worth keeping (see [`is_success`]).
    pub fn succeeded(&self) -> bool {
        matches!((self.status(), self.error()), (Ok(status), Ok(error)) if is_success(status, error))
    }

    /// Every column parsed.
    pub fn typed(&self) -> Result<Row, ReadError> {
        let columns = match &self.fields {
            RawFields::Csv(record) => record.len(),
            RawFields::Json { values, .. } => values.len(),
            RawFields::Parquet { batch, .. } => batch.num_columns(),
        };
        Ok(Row {
            id: self.field(ID)?.into_owned(),
            status: self.status()?,
            bytes: self.number(BYTES)?,
            latency_ms: self.number(LATENCY)?,
            attempts: self.number(ATTEMPTS)?,
            error: self.error()?,
            extra: (FIXED_COLUMNS.len()..columns)
                .map(|c| match &self.fields {
                    RawFields::Csv(record) => String::from_utf8_lossy(&record[c]).into_owned(),
                    _ => self.field(c).map(Cow::into_owned).unwrap_or_default(),
                })
                .collect(),
        })
    }
}

/// Writes rows read by a [`RowReader`] as they were, in the same format (resume's rewrite, merge).
pub enum RowCopier<W: Write> {
    Csv(Box<csv::Writer<W>>),
    JsonLines(W),
    Parquet(Box<ParquetCopy>),
}

/// Parquet parts being written, and the rows kept of the current batch (written, filtered,
/// when the next batch begins).
pub struct ParquetCopy {
    parts: PartWriter,
    current: Option<(u64, RecordBatch, Vec<bool>)>,
}

impl RowCopier<io::Sink> {
    /// Rows copied into the parts `parts` writes.
    pub fn parquet(parts: PartWriter) -> Self {
        RowCopier::Parquet(Box::new(ParquetCopy {
            parts,
            current: None,
        }))
    }
}

impl<W: Write> RowCopier<W> {
    /// A copier of a stream format (CSV, JSON Lines).
    pub fn new(out: W, format: RowFormat) -> Self {
        match format {
            RowFormat::JsonLines => RowCopier::JsonLines(out),
            RowFormat::Csv | RowFormat::Parquet => {
                RowCopier::Csv(Box::new(csv::Writer::from_writer(out)))
            }
        }
    }

    /// The header line (CSV only: JSON Lines names its columns in every row).
    pub fn header(&mut self, columns: &[String]) -> io::Result<()> {
        match self {
            RowCopier::Csv(csv) => csv.write_record(columns).map_err(io::Error::from),
            RowCopier::JsonLines(_) | RowCopier::Parquet(_) => Ok(()),
        }
    }

    pub fn copy(&mut self, row: &RawRow<'_>) -> io::Result<()> {
        match (self, &row.fields) {
            (RowCopier::Csv(csv), RawFields::Csv(record)) => {
                csv.write_byte_record(record).map_err(io::Error::from)
            }
            (RowCopier::JsonLines(out), RawFields::Json { text, .. }) => {
                out.write_all(text)?;
                out.write_all(b"\n")
            }
            (RowCopier::Parquet(copy), RawFields::Parquet { batch, seq, row }) => {
                let ParquetCopy { parts, current } = copy.as_mut();
                if current.as_ref().is_some_and(|(at, _, _)| at != seq) {
                    write_kept(parts, current.take())?;
                }
                let (_, _, keep) = current
                    .get_or_insert_with(|| (*seq, (*batch).clone(), vec![false; batch.num_rows()]));
                keep[*row] = true;
                Ok(())
            }
            _ => Err(io::Error::other("a row copied into another format")),
        }
    }

    /// Flushes and hands back the writer (`None` for Parquet: its last part is closed in place).
    pub fn into_inner(self) -> io::Result<Option<W>> {
        match self {
            RowCopier::Csv(csv) => csv.into_inner().map(Some).map_err(|e| e.into_error()),
            RowCopier::JsonLines(mut out) => {
                out.flush()?;
                Ok(Some(out))
            }
            RowCopier::Parquet(copy) => {
                let ParquetCopy { mut parts, current } = *copy;
                write_kept(&mut parts, current)?;
                parts.close_part()?;
                Ok(None)
            }
        }
    }
}

/// The kept rows of one batch, into the open part.
fn write_kept(
    parts: &mut PartWriter,
    current: Option<(u64, RecordBatch, Vec<bool>)>,
) -> io::Result<()> {
    let Some((_, batch, keep)) = current else {
        return Ok(());
    };
    let mask = arrow_array::BooleanArray::from(keep);
    let kept =
        arrow_select::filter::filter_record_batch(&batch, &mask).map_err(io::Error::other)?;
    parts.write(&kept)
}

/// Length of the file up to the end of its last whole row: anything after it is a torn row (the
/// writer was killed mid-row, or the disk filled), which `--resume` cuts off and `merge` leaves
/// out. For JSON Lines that is the last newline (a JSON string holds no raw line break). For CSV
/// it is the last newline *outside quotes*: a body with line breaks is one quoted field over
/// several lines, and a row torn inside it must not be cut at one of its own line breaks. The
/// quote state is found by one pass from the start (a quote toggles it; an escaped `""` toggles
/// it twice; an unquoted field never holds a quote, as the writer quotes any field that does).
pub fn complete_len(file: &mut File, format: RowFormat) -> io::Result<u64> {
    // Only what the file holds now: a device (`-o /dev/full`) would read without end.
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut input = (&*file).take(len);
    let mut buf = vec![0u8; 256 << 10];
    let (mut at, mut complete, mut quoted) = (0u64, 0u64, false);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(complete);
        }
        for (offset, &byte) in buf[..n].iter().enumerate() {
            match byte {
                b'"' if format == RowFormat::Csv => quoted = !quoted,
                b'\n' if !quoted => complete = at + offset as u64 + 1,
                _ => {}
            }
        }
        at += n as u64;
    }
}

/// The whole rows of the CSV or JSON Lines file `path`, and the bytes after the last of them
/// (a row torn by a full disk or a kill); for Parquet, the rows of its readable parts.
pub fn rows_on_disk(path: &std::path::Path, format: RowFormat) -> std::io::Result<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    if format == RowFormat::Parquet {
        return Ok((parquet::readable_rows(path)?, 0));
    }
    let mut file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let complete = complete_len(&mut file, format)?;
    let torn = file.metadata()?.len() - complete;
    file.seek(SeekFrom::Start(0))?;
    let input = std::io::BufReader::new((&file).take(complete));
    let mut rows = 0;
    if let Ok(Some(mut reader)) = RowReader::of_format(input, format) {
        while let Ok(Some(_)) = reader.next_row() {
            rows += 1;
        }
    }
    Ok((rows, torn))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "id,status,bytes,latency_ms,attempts,error";

    #[test]
    fn reads_typed_rows_with_extra_columns() {
        let text =
            format!("{HEAD},x-a,body\n7,200,3,1.500,1,,v,\"a,\nb\"\n8,,0,30000.000,3,timeout,,\n");
        let mut reader = RowReader::new(text.as_bytes()).expect("header");
        assert_eq!(reader.column("body"), Some(7));
        let first = reader.next_row().expect("ok").expect("row");
        assert!(first.succeeded());
        assert_eq!(first.id_number(), Ok(7));
        let row = first.typed().expect("typed");
        assert_eq!(row.extra, vec!["v".to_string(), "a,\nb".to_string()]);
        let second = reader.next_row().expect("ok").expect("row");
        assert_eq!(second.line, 4, "the quoted newline counts as a line");
        let row = second.typed().expect("typed");
        assert_eq!((row.status, row.error), (None, Some(ErrorKind::Timeout)));
        assert!(!second.succeeded());
        assert!(reader.next_row().expect("ok").is_none());
    }

    #[test]
    fn a_row_torn_inside_a_multi_line_body_is_cut_at_the_row_before_it() {
        let whole = format!("{HEAD},body\n1,200,3,1.0,1,,\"{{\n  \"\"a\"\": 1\n}}\"\n");
        let torn = format!("{whole}2,200,3,1.0,1,,\"{{\n  \"\"a\"\": 2,\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        for (text, want) in [(&whole, whole.len()), (&torn, whole.len())] {
            std::fs::write(&path, text).expect("write");
            let mut file = File::open(&path).expect("open");
            assert_eq!(
                complete_len(&mut file, RowFormat::Csv).expect("scan"),
                want as u64
            );
        }
        // Cut anywhere, the kept part parses into whole rows with every field.
        for cut in 0..=torn.len() {
            std::fs::write(&path, &torn.as_bytes()[..cut]).expect("write");
            let mut file = File::open(&path).expect("open");
            let keep = complete_len(&mut file, RowFormat::Csv).expect("scan") as usize;
            let kept = &torn.as_bytes()[..keep];
            if keep == 0 {
                continue;
            }
            let mut reader = RowReader::new(kept).expect("header");
            while let Some(row) = reader.next_row().expect("a whole row") {
                row.typed().expect("every field");
            }
        }
        // JSON Lines: the last newline.
        std::fs::write(&path, "{\"id\":1}\n{\"id\":").expect("write");
        let mut file = File::open(&path).expect("open");
        assert_eq!(
            complete_len(&mut file, RowFormat::JsonLines).expect("scan"),
            9
        );
    }

    #[test]
    fn refuses_another_header_and_names_the_line_of_a_bad_row() {
        assert!(matches!(
            RowReader::new("a,b,c\n".as_bytes()),
            Err(ReadError::Header(_))
        ));
        assert!(matches!(
            RowReader::new("id,status\n".as_bytes()),
            Err(ReadError::Header(_))
        ));
        let text = format!("{HEAD}\n1,200,3,1.0,1,\nx,200,3,1.0,1,\n");
        let mut reader = RowReader::new(text.as_bytes()).expect("header");
        assert!(
            reader
                .next_row()
                .expect("ok")
                .expect("row")
                .id_number()
                .is_ok()
        );
        let bad = reader.next_row().expect("ok").expect("row").id_number();
        assert!(
            matches!(bad, Err(ReadError::Row { line: 3, .. })),
            "{bad:?}"
        );
        let short = format!("{HEAD}\n1,200\n");
        let mut reader = RowReader::new(short.as_bytes()).expect("header");
        assert!(reader.next_row().is_err(), "wrong field count");
    }
}
