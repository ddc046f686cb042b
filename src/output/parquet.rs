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
//! Columns are typed as `columns` says (the schema the Arrow stream has too), zstd compressed.
//!
//! The format is [`Parquet`]; this file closes parts of typed columns ([`ParquetRows`], built by
//! `columns`), [`parts`] keeps the directory of parts, and [`read`] reads and copies them back.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::columns::RecordColumns;
use super::format::{CopyRows, Format, Layout, NotOurs, PartsFormat};
use super::rows::{ReadError, RowReader};
use super::writer::WriteRows;
use crate::model::{Record, Schema};

mod parts;
mod read;

use parts::PartWriter;
use read::{ParquetCopy, read_parts};

/// Buffered captured values (bodies, headers, fields) in one part at most.
pub const PART_BYTES: usize = 64 << 20;
/// Longest a row waits in an open part before the part is closed.
pub const PART_EVERY: Duration = Duration::from_secs(10);

/// Formats records into typed columns, closing a part as `--part-rows`, [`PART_BYTES`] or
/// [`PART_EVERY`] says.
pub struct ParquetRows {
    parts: PartWriter,
    part_rows: usize,
    columns: RecordColumns,
    first_row_at: Option<Instant>,
}

impl ParquetRows {
    /// Rows into the directory `dir` (created when missing), after the parts already there.
    pub fn new(dir: &Path, schema: Schema, part_rows: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let columns = RecordColumns::new(schema);
        Ok(Self {
            parts: PartWriter::new(dir, Some(columns.arrow_schema().clone()))?,
            part_rows,
            columns,
            first_row_at: None,
        })
    }

    /// Writes the buffered rows as the next part and closes it.
    fn close_part(&mut self) -> io::Result<()> {
        if self.columns.rows() == 0 {
            return Ok(());
        }
        let batch = self.columns.finish()?;
        self.parts.write(&batch)?;
        self.parts.close_part()?;
        self.first_row_at = None;
        Ok(())
    }
}

impl WriteRows for ParquetRows {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.columns.append(record);
        self.first_row_at.get_or_insert_with(Instant::now);
        if self.columns.rows() >= self.part_rows || self.columns.captured_bytes() >= PART_BYTES {
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
        Ok(read_parts(parts)?.map(RowReader::of))
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
    use crate::model::{BodyColumn, BodyEncoding, Captured, ErrorKind};
    use crate::output::rows::cell;
    use arrow_array::RecordBatch;
    use arrow_schema::DataType;
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
