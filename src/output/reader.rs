//! Reading a ringscrape CSV back, the one place that does: `--resume`, the tests and
//! `merge` all go through [`RowReader`]. The header must start with the fixed columns; columns
//! after them (captured headers, bodies, line numbers) are allowed and reached by name.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

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

/// Streams the rows of a CSV whose header has been checked.
pub struct RowReader<R> {
    csv: csv::Reader<R>,
    columns: Vec<String>,
    record: csv::ByteRecord,
}

/// The current row of a [`RowReader`], parsed only as far as asked.
pub struct RawRow<'a> {
    /// Line of the file where the row starts (the header is line 1).
    pub line: u64,
    pub record: &'a csv::ByteRecord,
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

impl<R: Read> RowReader<R> {
    /// Reads and checks the header.
    pub fn new(input: R) -> Result<Self, ReadError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(input);
        let header = csv.byte_headers().map_err(|e| ReadError::Row {
            line: 1,
            message: e.to_string(),
        })?;
        let fixed = FIXED_COLUMNS.iter().map(|c| c.as_bytes());
        if header.len() < FIXED_COLUMNS.len() || header.iter().zip(fixed).any(|(a, b)| a != b) {
            return Err(ReadError::Header(
                String::from_utf8_lossy(header.as_slice()).into_owned(),
            ));
        }
        let columns = header
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        Ok(Self {
            csv,
            columns,
            record: csv::ByteRecord::new(),
        })
    }

    /// Every column name, the fixed ones first.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Position of the column `name`, if the file has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The next row; `None` at the end. A row with the wrong number of fields is an error.
    pub fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError> {
        let more = self
            .csv
            .read_byte_record(&mut self.record)
            .map_err(|e| ReadError::Row {
                line: e.position().map_or(0, |p| p.line()),
                message: e.to_string(),
            })?;
        if !more {
            return Ok(None);
        }
        let line = self.record.position().map_or(0, |p| p.line());
        Ok(Some(RawRow {
            line,
            record: &self.record,
        }))
    }
}

impl RawRow<'_> {
    fn fail(&self, message: impl Into<String>) -> ReadError {
        ReadError::Row {
            line: self.line,
            message: message.into(),
        }
    }

    fn text(&self, column: usize) -> Result<&str, ReadError> {
        std::str::from_utf8(&self.record[column]).map_err(|_| self.fail("not UTF-8"))
    }

    fn number<T: std::str::FromStr>(&self, column: usize) -> Result<T, ReadError> {
        self.text(column)?
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
            .record
            .get(column)
            .ok_or_else(|| self.fail(format!("no {name} column")))?;
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| self.fail(format!("{name} is not a whole number")))
    }

    fn status(&self) -> Result<Option<u16>, ReadError> {
        if self.record[STATUS].is_empty() {
            Ok(None)
        } else {
            self.number(STATUS).map(Some)
        }
    }

    fn error(&self) -> Result<Option<ErrorKind>, ReadError> {
        let text = self.text(ERROR)?;
        if text.is_empty() {
            return Ok(None);
        }
        ErrorKind::parse(text)
            .map(Some)
            .ok_or_else(|| self.fail(format!("unknown error kind {text:?}")))
    }

    /// True when the row is an answer worth keeping (see [`is_success`]).
    pub fn succeeded(&self) -> bool {
        matches!((self.status(), self.error()), (Ok(status), Ok(error)) if is_success(status, error))
    }

    /// Every column parsed.
    pub fn typed(&self) -> Result<Row, ReadError> {
        Ok(Row {
            id: self.text(ID)?.to_string(),
            status: self.status()?,
            bytes: self.number(BYTES)?,
            latency_ms: self.number(LATENCY)?,
            attempts: self.number(ATTEMPTS)?,
            error: self.error()?,
            extra: self
                .record
                .iter()
                .skip(FIXED_COLUMNS.len())
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect(),
        })
    }
}

/// Length of the file up to and including its last newline: anything after it is a torn line
/// (the writer was killed mid-row), which `--resume` cuts off and `merge` leaves out.
pub fn complete_len(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = [0u8; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(pos) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + pos as u64 + 1);
        }
        end = start;
    }
    Ok(0)
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
