//! Key files with named columns (`--keys`), alone or as a product with an id range (`--ids`):
//! how their items are numbered (the last source varying fastest) and how a worker reads an
//! item's values back from its index.

use std::io;

use serde::{Deserialize, Serialize};

use super::records::{RecordFile, RecordReader};
use super::row::{Items, KeyColumn};
use crate::ids::IdRange;
use crate::template::Values;

/// Key files with named columns, alone or as a product with an id range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// `--ids`, when given with the key files.
    pub ids: Option<IdRange>,
    pub files: Vec<RecordFile>,
}

/// The product has more items than an index can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the product of --ids and --keys has more than 2^64 items")]
pub struct TooManyItems;

impl Product {
    /// Items per id: the product of the files' records.
    pub fn per_id(&self) -> Result<u64, TooManyItems> {
        self.files
            .iter()
            .try_fold(1u64, |n, file| n.checked_mul(file.records))
            .ok_or(TooManyItems)
    }

    /// The indexes of every item.
    pub fn items(&self) -> Result<IdRange, TooManyItems> {
        let per_id = self.per_id()?;
        Ok(match self.ids {
            Some(ids) => IdRange::new(
                ids.start.checked_mul(per_id).ok_or(TooManyItems)?,
                ids.end.checked_mul(per_id).ok_or(TooManyItems)?,
            ),
            None => IdRange::new(0, per_id),
        })
    }

    /// How rows name their items.
    pub fn row_items(&self) -> Items {
        match self.ids {
            Some(_) => Items::Product {
                per_id: self.per_id().unwrap_or(1),
            },
            None => Items::Ids,
        }
    }

    /// Every file's columns, in order.
    pub fn columns(&self) -> Vec<KeyColumn> {
        self.files.iter().flat_map(|f| f.columns.clone()).collect()
    }
}

/// Reads the values of a product's items: `{id}`, then each file's record's columns.
pub struct ProductReader {
    ids: bool,
    files: Vec<(u64, RecordReader)>,
    /// Each file's record for the current index.
    records: Vec<u64>,
}

impl ProductReader {
    pub fn open(product: &Product) -> io::Result<ProductReader> {
        Ok(ProductReader {
            ids: product.ids.is_some(),
            files: product
                .files
                .iter()
                .map(|file| Ok((file.records, RecordReader::open(file)?)))
                .collect::<io::Result<_>>()?,
            records: vec![0; product.files.len()],
        })
    }

    /// The values of item `index` into `values` (cleared by the caller); `Ok(false)`: a file
    /// ended before the item's record.
    pub fn read_values(&mut self, index: u64, values: &mut Values) -> io::Result<bool> {
        let mut rest = index;
        for ((count, _), record) in self.files.iter().zip(self.records.iter_mut()).rev() {
            *record = rest % count;
            rest /= count;
        }
        let id = if self.ids { rest } else { index };
        values.push(Some(itoa::Buffer::new().format(id).as_bytes()));
        for ((_, reader), record) in self.files.iter_mut().zip(self.records.iter()) {
            match reader.record(*record)? {
                Some(columns) => values.extend(columns),
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}
