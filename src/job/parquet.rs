//! Parquet key files (`--keys keys.parquet`, or a directory of parts read in name order): the
//! columns and their kinds from the Arrow schema, the records counted from the footers; rows
//! read a batch at a time from the row group that holds the wanted record, so a file of any
//! size is read in constant memory. Every value fills a placeholder as its text (what
//! `arrow-cast` displays); integers, floats and booleans keep their kind in the rows.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::row::{KeyColumn, KeyKind};
use crate::template::Values;

/// Rows decoded at once.
const BATCH_ROWS: usize = 1024;

/// The parts of `path`: itself when a file, else its `*.parquet` files in name order.
fn parts_of(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name.ends_with(".parquet")
        })
        .collect();
    parts.sort();
    Ok(parts)
}

fn builder(path: &Path) -> io::Result<ParquetRecordBatchReaderBuilder<File>> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

/// What the footers of a file or directory of parts say.
#[derive(Debug, Default)]
pub struct Scanned {
    pub columns: Vec<KeyColumn>,
    /// The parts in order, with their rows.
    pub parts: Vec<(PathBuf, u64)>,
    pub records: u64,
}

/// Columns, kinds and record counts of the parts, from their footers (no row is read).
pub fn scan(path: &Path) -> io::Result<Scanned> {
    let parts = parts_of(path)?;
    let mut file = Scanned::default();
    for (at, part) in parts.into_iter().enumerate() {
        let builder = builder(&part)?;
        let columns: Vec<KeyColumn> = builder
            .schema()
            .fields()
            .iter()
            .map(|field| {
                check_displayable(field.name(), field.data_type())?;
                Ok(KeyColumn {
                    name: field.name().clone(),
                    kind: kind_of(field.data_type()),
                    file: String::new(),
                })
            })
            .collect::<io::Result<_>>()?;
        if at == 0 {
            file.columns = columns;
        } else if columns != file.columns {
            return Err(io::Error::other(format!(
                "{}: other columns than the first part's",
                part.display()
            )));
        }
        let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        file.records += rows;
        file.parts.push((part, rows));
    }
    Ok(file)
}

/// Refuses a column whose values have no text here (a timestamp in a named time zone, such as
/// `UTC` or `America/New_York`: time zone names are not built in), at scan time, before any
/// output exists, rather than failing every worker that reads it.
fn check_displayable(name: &str, data_type: &DataType) -> io::Result<()> {
    let empty = arrow_array::new_empty_array(data_type);
    ArrayFormatter::try_new(empty.as_ref(), &FormatOptions::default())
        .map(|_| ())
        .map_err(|e| io::Error::other(format!("column `{name}` ({data_type}) cannot be read: {e}")))
}

/// The kind a Parquet column keeps in the rows.
fn kind_of(data_type: &DataType) -> KeyKind {
    match data_type {
        DataType::Boolean => KeyKind::Boolean,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => KeyKind::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => KeyKind::Float,
        _ => KeyKind::Text,
    }
}

/// Reads rows of the parts in order, from any record.
pub struct ParquetKeys {
    parts: Vec<(PathBuf, u64)>,
    /// The part `reader` reads; the next part is opened when it ends.
    part: usize,
    reader: Option<ParquetRecordBatchReader>,
    /// The current batch's rows as values, and the next of them to hand out.
    rows: Vec<Values>,
    row: usize,
}

impl ParquetKeys {
    pub fn new(parts: &[(PathBuf, u64)]) -> ParquetKeys {
        ParquetKeys {
            parts: parts.to_vec(),
            part: 0,
            reader: None,
            rows: Vec::new(),
            row: 0,
        }
    }

    /// Positions the reader so that the next row is record `number` (or at the end).
    pub fn seek(&mut self, number: u64) -> io::Result<()> {
        self.rows.clear();
        self.row = 0;
        self.reader = None;
        let mut first = 0u64;
        for (at, (_, rows)) in self.parts.iter().enumerate() {
            if number < first + rows {
                self.part = at;
                return self.open(number - first);
            }
            first += rows;
        }
        self.part = self.parts.len();
        Ok(())
    }

    /// Opens the current part at row `within`: from the row group that holds it, skipping the
    /// rows before it in that group.
    fn open(&mut self, within: u64) -> io::Result<()> {
        let path = &self.parts[self.part].0;
        let builder = builder(path)?;
        let mut group_first = 0u64;
        let mut groups = Vec::new();
        let mut skip = 0u64;
        for (group, meta) in builder.metadata().row_groups().iter().enumerate() {
            let rows = u64::try_from(meta.num_rows()).unwrap_or(0);
            if !groups.is_empty() || within < group_first + rows {
                if groups.is_empty() {
                    skip = within - group_first;
                }
                groups.push(group);
            }
            group_first += rows;
        }
        let reader = builder
            .with_row_groups(groups)
            .with_offset(usize::try_from(skip).unwrap_or(usize::MAX))
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        self.reader = Some(reader);
        Ok(())
    }

    /// The next row's values into `values` (one slot per column); false after the last part.
    pub fn next_row(&mut self, columns: usize, values: &mut Values) -> io::Result<bool> {
        while self.row >= self.rows.len() {
            if self.part >= self.parts.len() {
                return Ok(false);
            }
            if self.reader.is_none() {
                self.open(0)?;
            }
            match self.reader.as_mut().and_then(Iterator::next) {
                Some(Ok(batch)) => {
                    self.rows = rows_of(&batch)?;
                    self.row = 0;
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => {
                    self.reader = None;
                    self.part += 1;
                }
            }
        }
        let row = &self.rows[self.row];
        self.row += 1;
        if row.len() == columns {
            values.extend(row);
        } else {
            (0..columns).for_each(|_| values.push(None));
            values.malformed = Some("a part with other columns".into());
        }
        Ok(true)
    }
}

/// Every row of `batch` as values: each column's display text, null absent.
fn rows_of(batch: &RecordBatch) -> io::Result<Vec<Values>> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|array| ArrayFormatter::try_new(array.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut values = Values::default();
        for (array, formatter) in batch.columns().iter().zip(&formatters) {
            if array.is_null(row) {
                values.push(None);
            } else {
                values.push_with(|out| {
                    use std::io::Write;
                    let _ = write!(out, "{}", formatter.value(row));
                });
            }
        }
        rows.push(values);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// A part of `rows` records (`user` u{n}, `n` n, from `first`), in row groups of 1000.
    fn write_part(path: &Path, first: i64, rows: i64) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .build();
        let mut writer = ArrowWriter::try_new(
            File::create(path).expect("create"),
            schema.clone(),
            Some(props),
        )
        .expect("writer");
        let users: Vec<String> = (first..first + rows).map(|n| format!("u{n}")).collect();
        let ns: Vec<Option<i64>> = (first..first + rows)
            .map(|n| (n % 10 != 3).then_some(n))
            .collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(users)),
                Arc::new(Int64Array::from(ns)),
            ],
        )
        .expect("batch");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
    }

    #[test]
    fn a_timestamp_in_a_named_time_zone_is_refused_at_scan() {
        use arrow_schema::TimeUnit;
        let named = DataType::Timestamp(TimeUnit::Second, Some("America/New_York".into()));
        let error = check_displayable("t", &named).expect_err("no time zone names");
        assert!(error.to_string().contains("column `t`"), "{error}");
        let offset = DataType::Timestamp(TimeUnit::Second, Some("+02:00".into()));
        assert!(check_displayable("t", &offset).is_ok());
        assert!(check_displayable("n", &DataType::Int64).is_ok());
    }

    #[test]
    fn a_directory_of_parts_reads_by_record_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_part(&dir.path().join("part-0.parquet"), 0, 2500);
        write_part(&dir.path().join("part-1.parquet"), 2500, 1500);
        std::fs::write(dir.path().join("notes.txt"), "not a part").expect("write");
        let file = scan(dir.path()).expect("scan");
        assert_eq!(file.records, 4000);
        let kinds: Vec<_> = file
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(kinds, [("user", KeyKind::Text), ("n", KeyKind::Integer)]);
        let mut reader = ParquetKeys::new(&file.parts);
        let mut values = Values::default();
        for n in [0u64, 1, 999, 1000, 2499, 2500, 3999, 17, 3001] {
            reader.seek(n).expect("seek");
            values.clear();
            assert!(reader.next_row(2, &mut values).expect("read"), "record {n}");
            assert_eq!(
                values.get(0),
                Some(format!("u{n}").as_bytes()),
                "record {n}"
            );
            let expected = (n % 10 != 3).then(|| n.to_string());
            assert_eq!(
                values
                    .get(1)
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                expected,
                "record {n}"
            );
        }
        // On from record 3001 without a seek, across the end of a row group.
        for n in 3002..3005u64 {
            values.clear();
            assert!(reader.next_row(2, &mut values).expect("read"));
            assert_eq!(values.get(0), Some(format!("u{n}").as_bytes()));
        }
        reader.seek(4000).expect("seek");
        assert!(
            !reader.next_row(2, &mut values).expect("read"),
            "past the end"
        );
    }
}
