//! What a run fetches: its items, each with an index (its place in the job: what shards split,
//! resume tracks, node slices cut and `merge` checks) and the values that fill its
//! placeholders. Three shapes, one index space each:
//!
//! - an id range (`--ids`): the index is the id, `{id}` its decimal form;
//! - a file of keys, one per line (`--ids-file`, see [`lines`]): the index is the line number
//!   from 1, `{id}` the line;
//! - key files with named columns (`--keys`, see [`records`]), alone or with `--ids`: their
//!   product, the last source varying fastest. With `--ids A..B` and files of n1 and n2
//!   records, item (id, r1, r2) has index `(id × n1 + r1) × n2 + r2` (records from 0), and
//!   `{id}` is the id; without `--ids` the index is `r1 × n2 + r2`, and `{id}` is that index.
//!   Each column of each file is a placeholder `{name}`.
//!
//! No source is held whole in memory: indexes are computed, lines and records read from where a
//! shard starts.

pub mod json_lines;
pub mod lines;
pub mod parquet;
pub mod records;

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use lines::{KeyFile, LineReader, spool_stdin};
pub use records::{RecordFile, RecordFileError, RecordFormat, RecordReader};

use crate::ids::IdRange;
use crate::model::{Items, KeyColumn};
use crate::output::job_record::KeyFileIdentity;
use crate::template::Values;

/// The most bytes one item's key values may hold together. An item's row travels to the
/// supervisor in one frame of at most `wire::MAX_FRAME_LEN` (16 MiB) beside its body; a record
/// larger than this fails alone as `request` (its values left out of the row) instead of
/// overflowing the frame and failing its whole shard, and every resume with it.
pub const MAX_KEY_BYTES: usize = 8 << 20;

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

/// The identity of each key file of the job, in order (kept with the output, so that a resume
/// against another file is refused).
pub fn identities(
    key_file: Option<&KeyFile>,
    product: Option<&Product>,
) -> io::Result<Vec<KeyFileIdentity>> {
    let mut identities = Vec::new();
    if let Some(keys) = key_file {
        let shown = keys.path.display().to_string();
        let path = std::slice::from_ref(&keys.path);
        identities.push(KeyFileIdentity::of("--ids-file", &shown, path, keys.lines)?);
    }
    for file in product.map_or(&[][..], |p| p.files.as_slice()) {
        let parts: Vec<PathBuf> = match file.parts.is_empty() {
            true => vec![file.path.clone()],
            false => file.parts.iter().map(|(part, _)| part.clone()).collect(),
        };
        identities.push(KeyFileIdentity::of(
            "--keys",
            &file.shown,
            &parts,
            file.records,
        )?);
    }
    Ok(identities)
}

/// How a worker gets the values of its items (part of its spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Keys {
    /// The index is the id; `{id}` is its decimal form.
    Numbers,
    /// Lines of a file, read from `offset`, where line number `line` starts.
    Lines {
        path: PathBuf,
        line: u64,
        offset: u64,
    },
    /// Key files with named columns, alone or with an id range.
    Records(Product),
}

/// Reads the values of a worker's items, in index order.
pub enum ItemReader {
    Numbers,
    Lines {
        reader: LineReader,
        key: Vec<u8>,
    },
    Records {
        ids: bool,
        files: Vec<(u64, RecordReader)>,
        /// Each file's record for the current index.
        records: Vec<u64>,
    },
}

impl ItemReader {
    pub fn open(keys: &Keys) -> io::Result<ItemReader> {
        Ok(match keys {
            Keys::Numbers => ItemReader::Numbers,
            Keys::Lines { path, line, offset } => ItemReader::Lines {
                reader: LineReader::open(path, *line, *offset)?,
                key: Vec::new(),
            },
            Keys::Records(product) => ItemReader::Records {
                ids: product.ids.is_some(),
                files: product
                    .files
                    .iter()
                    .map(|file| Ok((file.records, RecordReader::open(file)?)))
                    .collect::<io::Result<_>>()?,
                records: vec![0; product.files.len()],
            },
        })
    }

    /// The values of item `index` into `values` (cleared first): `{id}`, then the key files'
    /// columns. Indexes should be asked for in increasing order (any order works, slower).
    /// `Ok(false)`: a file ended before the item's line or record (it changed since the scan).
    pub fn values_for(&mut self, index: u64, values: &mut Values) -> io::Result<bool> {
        let found = self.read_values(index, values)?;
        if values.byte_len() > MAX_KEY_BYTES {
            let why = format!(
                "its values are {} bytes, more than the {} MiB an item's keys may hold",
                values.byte_len(),
                MAX_KEY_BYTES >> 20
            );
            // `{id}` stays when it is the index (small); a line of `--ids-file` is the key.
            let id = match self {
                ItemReader::Lines { .. } => None,
                _ => values.get(0).map(<[u8]>::to_vec),
            };
            let slots = values.len();
            values.clear();
            values.push(Some(id.as_deref().unwrap_or_default()));
            (1..slots).for_each(|_| values.push(None));
            values.malformed = Some(why);
        }
        Ok(found)
    }

    fn read_values(&mut self, index: u64, values: &mut Values) -> io::Result<bool> {
        values.clear();
        match self {
            ItemReader::Numbers => {
                values.push(Some(itoa::Buffer::new().format(index).as_bytes()));
                Ok(true)
            }
            ItemReader::Lines { reader, key } => {
                let found = reader.key_for(index, key)?;
                values.push(Some(key));
                Ok(found)
            }
            ItemReader::Records {
                ids,
                files,
                records,
            } => {
                let mut rest = index;
                for ((count, _), record) in files.iter().zip(records.iter_mut()).rev() {
                    *record = rest % count;
                    rest /= count;
                }
                let id = if *ids { rest } else { index };
                values.push(Some(itoa::Buffer::new().format(id).as_bytes()));
                for ((_, reader), record) in files.iter_mut().zip(records.iter()) {
                    match reader.record(*record)? {
                        Some(columns) => values.extend(columns),
                        None => return Ok(false),
                    }
                }
                Ok(true)
            }
        }
    }

    /// What a shard names its source in a message.
    pub fn source(&self) -> &'static str {
        match self {
            ItemReader::Numbers => "--ids",
            ItemReader::Lines { .. } => "--ids-file",
            ItemReader::Records { .. } => "--keys",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_file(dir: &std::path::Path, name: &str, text: &str) -> RecordFile {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        RecordFile::scan(&path, name, RecordFormat::Csv).expect("scan")
    }

    #[test]
    fn a_product_numbers_items_with_the_last_source_fastest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = csv_file(dir.path(), "users.csv", "user,tenant\nann,a\nbob,b\n");
        let dates = csv_file(dir.path(), "dates.csv", "date\nd0\nd1\nd2\n");
        let product = Product {
            ids: Some(IdRange::new(10, 12)),
            files: vec![users, dates],
        };
        assert_eq!(product.per_id(), Ok(6));
        assert_eq!(product.items(), Ok(IdRange::new(60, 72)));
        assert_eq!(product.row_items(), Items::Product { per_id: 6 });
        let mut reader = ItemReader::open(&Keys::Records(product.clone())).expect("open");
        let mut values = Values::default();
        let mut seen = Vec::new();
        for index in 60..72 {
            assert!(reader.values_for(index, &mut values).expect("read"));
            let text: Vec<String> = (0..values.len())
                .map(|s| String::from_utf8_lossy(values.get(s).unwrap_or_default()).into_owned())
                .collect();
            seen.push(text.join(" "));
        }
        assert_eq!(seen[0], "10 ann a d0");
        assert_eq!(seen[1], "10 ann a d1");
        assert_eq!(seen[3], "10 bob b d0");
        assert_eq!(seen[11], "11 bob b d2");
        // Out of order (a retry, a resumed shard) reads the same values.
        assert!(reader.values_for(61, &mut values).expect("read"));
        assert_eq!(values.get(3), Some(&b"d1"[..]));
        let alone = Product {
            ids: None,
            ..product
        };
        assert_eq!(alone.items(), Ok(IdRange::new(0, 6)));
        assert_eq!(alone.row_items(), Items::Ids);
        let mut reader = ItemReader::open(&Keys::Records(alone)).expect("open");
        assert!(reader.values_for(5, &mut values).expect("read"));
        assert_eq!(values.id(), b"5", "{{id}} is the index without --ids");
        let huge = Product {
            ids: Some(IdRange::new(0, u64::MAX / 2)),
            files: vec![csv_file(dir.path(), "three.csv", "k\n1\n2\n3\n")],
        };
        assert_eq!(huge.items(), Err(TooManyItems));
    }
}
