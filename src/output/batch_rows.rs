//! Rows of Arrow record batches, whichever format holds the batches (Parquet parts, an Arrow
//! IPC stream): [`BatchRows`] reads them back one row at a time, and [`KeptRows`] copies the
//! rows kept of each batch (resume's rewrite, merge) into a [`WriteBatches`] of the format.

use std::io;

use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::Schema;

use super::format::CopyRows;
use super::rows::{RawFields, RawRow, ReadError, ReadRows, check_fixed};

/// Record batches one after the other, or why the next could not be read.
pub type Batches<'a> = Box<dyn Iterator<Item = Result<RecordBatch, String>> + 'a>;

/// The rows of batches read one after the other (their columns must agree); a row's `line` is
/// its number over every batch, from 1.
pub struct BatchRows<'a> {
    batches: Batches<'a>,
    batch: Option<RecordBatch>,
    /// Batches read so far (tells one batch from the next).
    seq: u64,
    /// The next row of `batch`.
    row: usize,
    /// Rows handed out so far (a row's number in messages).
    read: u64,
    columns: Vec<String>,
}

impl<'a> BatchRows<'a> {
    /// The rows of `batches`, whose columns are `schema`'s (the fixed ones first).
    pub fn new(schema: &Schema, batches: Batches<'a>) -> Result<Self, ReadError> {
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        check_fixed(&columns, || columns.join(","))?;
        Ok(Self {
            batches,
            batch: None,
            seq: 0,
            row: 0,
            read: 0,
            columns,
        })
    }
}

impl ReadRows for BatchRows<'_> {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError> {
        let Self {
            batches,
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
        // The next batch with a row left.
        while batch.as_ref().is_none_or(|b| *row >= b.num_rows()) {
            let next = match batches.next() {
                Some(next) => next.map_err(fail)?,
                None => return Ok(None),
            };
            let names = next.schema_ref().fields().iter().map(|f| f.name());
            if names.ne(columns.iter()) {
                return Err(fail("a batch with other columns than the first".into()));
            }
            *batch = Some(next);
            *seq += 1;
            *row = 0;
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

/// Where a format's copier puts the batches of kept rows.
pub trait WriteBatches {
    fn write(&mut self, batch: &RecordBatch) -> io::Result<()>;
    /// Everything written reaches the output.
    fn finish(&mut self) -> io::Result<()>;
}

/// The rows kept of each batch read (written, filtered, when the next batch begins).
pub struct KeptRows<W> {
    out: W,
    current: Option<(u64, RecordBatch, Vec<bool>)>,
}

impl<W: WriteBatches> KeptRows<W> {
    /// Rows copied into `out`.
    pub fn new(out: W) -> KeptRows<W> {
        KeptRows { out, current: None }
    }

    /// Writes the kept rows of the current batch.
    fn write_kept(&mut self) -> io::Result<()> {
        let Some((_, batch, keep)) = self.current.take() else {
            return Ok(());
        };
        let mask = BooleanArray::from(keep);
        let kept =
            arrow_select::filter::filter_record_batch(&batch, &mask).map_err(io::Error::other)?;
        self.out.write(&kept)
    }
}

impl<W: WriteBatches> CopyRows for KeptRows<W> {
    /// The batches carry their columns.
    fn header(&mut self, _columns: &[String]) -> io::Result<()> {
        Ok(())
    }

    /// Keeps the row (row `row` of the `seq`-th batch read); a batch's kept rows are written
    /// when the next batch begins.
    fn copy(&mut self, row: &RawRow<'_>) -> io::Result<()> {
        let RawFields::Batch { batch, seq, row } = row.fields else {
            return Err(io::Error::other("a row copied into another format"));
        };
        // The batch held is this one only if it is the very same batch: `seq` restarts with
        // each reader, and merge copies the rows of several readers (its inputs) into one.
        let another = |(at, held, _): &(u64, RecordBatch, Vec<bool>)| {
            *at != seq || !std::sync::Arc::ptr_eq(held.column(0), batch.column(0))
        };
        if self.current.as_ref().is_some_and(another) {
            self.write_kept()?;
        }
        let (_, _, keep) = self
            .current
            .get_or_insert_with(|| (seq, batch.clone(), vec![false; batch.num_rows()]));
        keep[row] = true;
        Ok(())
    }

    /// Writes what is kept, and finishes the output.
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.write_kept()?;
        self.out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, UInt64Array};
    use std::sync::Arc;

    /// Batches written, as their first column's values.
    #[derive(Default)]
    struct Written(Vec<Vec<u64>>);

    impl WriteBatches for &mut Written {
        fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
            let ids = batch.column(0).as_any().downcast_ref::<UInt64Array>();
            self.0.push(ids.expect("u64 ids").values().to_vec());
            Ok(())
        }

        fn finish(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn batch(ids: &[u64]) -> RecordBatch {
        let column: ArrayRef = Arc::new(UInt64Array::from(ids.to_vec()));
        RecordBatch::try_from_iter([("id", column)]).expect("a batch")
    }

    #[test]
    fn rows_kept_of_two_readers_first_batches_are_not_taken_for_one_batch() {
        let mut written = Written::default();
        let mut copier = Box::new(KeptRows::new(&mut written));
        // Two inputs read one after the other: each reader's first batch is its `seq` 1.
        for (input, keep) in [(batch(&[1, 2, 3]), [0, 2]), (batch(&[7, 8, 9]), [1, 2])] {
            for row in keep {
                let fields = RawFields::Batch {
                    batch: &input,
                    seq: 1,
                    row,
                };
                copier.copy(&RawRow { line: 1, fields }).expect("copy");
            }
        }
        copier.finish().expect("finish");
        assert_eq!(written.0, [vec![1, 3], vec![8, 9]]);
    }
}
