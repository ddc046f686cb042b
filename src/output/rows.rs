//! A row as every format's room reads it back (`--resume`, `merge`, the tests): the fixed
//! columns first, then captured headers, extracted fields, bodies, line numbers, reached by
//! name; [`RawRow`] parsed only as far as asked. [`ReadRows`] is what each format's reader
//! (`csv_rows`, `jsonl`, `parquet`) gives, and [`RowReader`] the one type they are read through.

use std::borrow::Cow;

use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::model::{ErrorKind, FIXED_COLUMNS, is_success};

/// Column positions of the fixed columns.
pub(super) const ID: usize = 0;
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

/// One format's rows read back: its columns (the fixed ones first), then one row at a time. A
/// row with other columns than the file's is an error.
pub trait ReadRows {
    fn columns(&self) -> &[String];
    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError>;
}

/// Any format's rows read back (`--resume`, `merge`, the tests): its reader behind one type.
pub struct RowReader<'a>(Box<dyn ReadRows + 'a>);

impl<'a> RowReader<'a> {
    /// The rows `reader` reads.
    pub fn of(reader: impl ReadRows + 'a) -> RowReader<'a> {
        RowReader(Box::new(reader))
    }

    /// Every column name, the fixed ones first.
    pub fn columns(&self) -> &[String] {
        self.0.columns()
    }

    /// Position of the column `name`, if the file has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c == name)
    }

    /// The next row; `None` at the end. A row with other columns than the file's is an error.
    pub fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError> {
        self.0.next_row()
    }
}

/// The current row of a reader, parsed only as far as asked.
pub struct RawRow<'a> {
    /// Line of the file where the row starts (a CSV's header is line 1); for Parquet parts, the
    /// row's number over every part, from 1.
    pub line: u64,
    pub fields: RawFields<'a>,
}

/// A row's fields as the file holds them.
pub enum RawFields<'a> {
    Csv(&'a csv::ByteRecord),
    /// Row `row` of the `seq`-th Arrow record batch read (Parquet parts).
    Batch {
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

pub(super) fn check_fixed(
    columns: &[String],
    shown: impl FnOnce() -> String,
) -> Result<(), ReadError> {
    let fixed = columns.iter().zip(FIXED_COLUMNS).all(|(a, b)| a == b);
    if columns.len() < FIXED_COLUMNS.len() || !fixed {
        return Err(ReadError::Header(shown()));
    }
    Ok(())
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
            RawFields::Batch { batch, row, .. } => {
                let array = batch
                    .columns()
                    .get(column)
                    .ok_or_else(|| self.fail("too few fields"))?;
                cell(array.as_ref(), *row)
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

    /// Column `column` (`id`, `line` or `index`) as a whole number: the item's index.
    pub fn index(&self, column: usize) -> Result<u64, ReadError> {
        let name = if column == ID { "id" } else { "index" };
        let text = self
            .field(column)
            .map_err(|_| self.fail(format!("no {name} column")))?;
        text.parse()
            .map_err(|_| self.fail(format!("{name} is not a whole number")))
    }

    /// Column `column` (`page`) as a page number.
    pub fn page(&self, column: usize) -> Result<u32, ReadError> {
        self.field(column)?
            .parse()
            .map_err(|_| self.fail("page is not a whole number"))
    }

    /// Column `column` as text (empty when null).
    pub fn text(&self, column: usize) -> Result<String, ReadError> {
        self.field(column).map(Cow::into_owned)
    }

    pub fn status(&self) -> Result<Option<u16>, ReadError> {
        if self.field(STATUS)?.is_empty() {
            Ok(None)
        } else {
            self.number(STATUS).map(Some)
        }
    }

    pub fn error(&self) -> Result<Option<ErrorKind>, ReadError> {
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
            RawFields::Batch { batch, .. } => batch.num_columns(),
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

/// A value of an Arrow column (Parquet's) as text: null is empty, a float with three decimals.
pub(super) fn cell(array: &dyn Array, row: usize) -> Option<String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, UInt16Type, UInt32Type, UInt64Type};
    if array.is_null(row) {
        return Some(String::new());
    }
    Some(match array.data_type() {
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::Float64 => format!("{:.3}", array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        _ => return None,
    })
}
