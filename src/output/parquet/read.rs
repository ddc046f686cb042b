//! Parquet parts read back (the batches of one part after the other, as `batch_rows` reads
//! rows) and copied (the kept rows of each batch into new parts).

use std::io;
use std::path::PathBuf;

use arrow_array::{RecordBatch, RecordBatchReader};

use super::parts::{PartWriter, open_part};
use crate::output::batch_rows::{BatchRows, KeptRows, WriteBatches};
use crate::output::rows::ReadError;

/// The rows of `parts`, one part after the other (their columns must agree); a row's `line` is
/// its number across the parts, from 1. `None` when there is no part.
pub fn read_parts(parts: Vec<PathBuf>) -> Result<Option<BatchRows<'static>>, ReadError> {
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    let reader = open_part(first).map_err(|e| ReadError::Row {
        line: 0,
        message: e.to_string(),
    })?;
    let schema = reader.schema();
    let rest = parts.into_iter().skip(1).map(|part| open_part(&part));
    let batches = std::iter::once(Ok(reader)).chain(rest).flat_map(
        |part| -> Box<dyn Iterator<Item = Result<RecordBatch, String>>> {
            match part {
                Ok(reader) => Box::new(reader.map(|batch| batch.map_err(|e| e.to_string()))),
                Err(e) => Box::new(std::iter::once(Err(e.to_string()))),
            }
        },
    );
    BatchRows::new(&schema, Box::new(batches)).map(Some)
}

/// Parquet parts being written by a copier: a part holds the kept rows, closed at the end.
pub type ParquetCopy = KeptRows<PartWriter>;

impl WriteBatches for PartWriter {
    fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        PartWriter::write(self, batch)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close_part()
    }
}
