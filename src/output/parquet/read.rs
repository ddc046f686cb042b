//! Parquet parts read back ([`PartsReader`], one part after the other) and copied
//! ([`ParquetCopy`], the kept rows of each batch into new parts).

use std::io;
use std::path::PathBuf;

use arrow_array::{RecordBatch, RecordBatchReader};
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

use super::parts::{PartWriter, open_part};
use crate::output::format::CopyRows;
use crate::output::rows::{RawFields, RawRow, ReadError, ReadRows, check_fixed};

/// Parquet parts read back one after the other (their columns must agree); a row's `line` is
/// its number across the parts, from 1.
pub struct PartsReader {
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
    columns: Vec<String>,
}

impl PartsReader {
    /// `None` when there is no part.
    pub fn open(parts: Vec<PathBuf>) -> Result<Option<Self>, ReadError> {
        let Some(first) = parts.first() else {
            return Ok(None);
        };
        let fail = |e: io::Error| ReadError::Row {
            line: 0,
            message: e.to_string(),
        };
        let reader = open_part(first).map_err(fail)?;
        let columns: Vec<String> = reader
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        check_fixed(&columns, || columns.join(","))?;
        Ok(Some(Self {
            parts: parts.into_iter(),
            part: None,
            batch: None,
            seq: 0,
            row: 0,
            read: 0,
            columns,
        }))
    }
}

impl ReadRows for PartsReader {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError> {
        let Self {
            parts,
            part,
            batch,
            seq,
            row,
            read,
            columns,
        } = self;
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
                            .ne(columns.iter())
                        {
                            return Err(fail("a part with other columns than the first".into()));
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
            *part = Some(open_part(&path).map_err(|e| fail(e.to_string()))?);
        }
        let batch = batch.as_ref().expect("a batch with a row left");
        *row += 1;
        *read += 1;
        Ok(Some(RawRow {
            line: *read,
            fields: RawFields::Batch {
                batch,
                seq: *seq,
                row: *row - 1,
            },
        }))
    }
}

/// Parquet parts being written, and the rows kept of the current batch (written, filtered,
/// when the next batch begins).
pub struct ParquetCopy {
    parts: PartWriter,
    current: Option<(u64, RecordBatch, Vec<bool>)>,
}

impl ParquetCopy {
    /// Rows copied into the parts `parts` writes.
    pub fn new(parts: PartWriter) -> ParquetCopy {
        ParquetCopy {
            parts,
            current: None,
        }
    }
}

impl CopyRows for ParquetCopy {
    /// The parts take their columns from the first batch copied.
    fn header(&mut self, _columns: &[String]) -> io::Result<()> {
        Ok(())
    }

    /// Keeps the row (row `row` of the `seq`-th batch read); a batch's kept rows are written
    /// when the next batch begins.
    fn copy(&mut self, row: &RawRow<'_>) -> io::Result<()> {
        let RawFields::Batch { batch, seq, row } = row.fields else {
            return Err(io::Error::other("a row copied into another format"));
        };
        if self.current.as_ref().is_some_and(|(at, _, _)| *at != seq) {
            write_kept(&mut self.parts, self.current.take())?;
        }
        let (_, _, keep) = self
            .current
            .get_or_insert_with(|| (seq, batch.clone(), vec![false; batch.num_rows()]));
        keep[row] = true;
        Ok(())
    }

    /// Writes what is kept and closes the last part.
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        write_kept(&mut self.parts, self.current.take())?;
        self.parts.close_part()
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
