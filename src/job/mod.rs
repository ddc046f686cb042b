//! What a run fetches: its items, each with an index (its place in the job: what shards split,
//! resume tracks, node slices cut and `merge` checks) and the values that fill its
//! placeholders. [`Job`] is the one type for the job's shape, built once from the flags for
//! `run` and `merge` alike; it answers the index range, the columns and the index column, a
//! row's keys and a shard's reader, so that no code outside this folder asks which shape it is.
//! One file per shape, one index space each:
//!
//! - an id range (`--ids`, see [`range`]): the index is the id, `{id}` its decimal form;
//! - a file of keys, one per line (`--ids-file`, see [`lines`]): the index is the line number
//!   from 1, `{id}` the line;
//! - key files with named columns (`--keys`, each read by [`records`]), alone or with `--ids`:
//!   their product (see [`product`]), the last source varying fastest. With `--ids A..B` and
//!   files of n1 and n2 records, item (id, r1, r2) has index `(id × n1 + r1) × n2 + r2`
//!   (records from 0), and `{id}` is the id; without `--ids` the index is `r1 × n2 + r2`, and
//!   `{id}` is that index. Each column of each file is a placeholder `{name}`.
//!
//! How a row names its item (and which columns that adds) is [`row`]'s. `--next`'s pages hang
//! off any shape: an item's chain of pages keeps its index. No source is held whole in memory:
//! indexes are computed, lines and records read from where a shard starts.

pub mod json_lines;
pub mod lines;
pub mod parquet;
pub mod product;
pub mod range;
pub mod records;
pub mod row;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use lines::{KeyFile, LineReader, spool_stdin};
pub use product::{Product, ProductReader, TooManyItems};
pub use records::{RecordFile, RecordFileError, RecordFormat, URL_COLUMN};
pub use row::{Items, KeyColumn};

use crate::ids::{IdRange, IdSet};
use crate::model::Captured;
use crate::output::job_record::KeyFileIdentity;
use crate::template::Values;

/// The most bytes one item's key values may hold together. An item's row travels to the
/// supervisor in one frame of at most `wire::MAX_FRAME_LEN` (16 MiB) beside its body; a record
/// larger than this fails alone as `request` (its values left out of the row) instead of
/// overflowing the frame and failing its whole shard, and every resume with it.
pub const MAX_KEY_BYTES: usize = 8 << 20;

/// The job's shape and this node's slice of its items.
#[derive(Debug, Clone)]
pub struct Job {
    shape: Shape,
    /// Item indexes: this node's slice of them when the job spans several nodes.
    items: IdRange,
    /// Standard input copied to a file for `--ids-file -` or `--keys -`; deleted when the last
    /// clone of the job is dropped (the run's end).
    stdin_spool: Option<Arc<tempfile::TempPath>>,
}

/// One variant per shape; each shape's logic is in its own file.
#[derive(Debug, Clone)]
enum Shape {
    Range,
    IdFile(KeyFile),
    Product(Product),
}

impl Job {
    /// `--ids A..B`.
    pub fn range(ids: IdRange) -> Job {
        Job {
            shape: Shape::Range,
            items: ids,
            stdin_spool: None,
        }
    }

    /// `--ids-file`, scanned (`spool`: standard input's copy, when it was `-`).
    pub fn id_file(file: KeyFile, spool: Option<Arc<tempfile::TempPath>>) -> Job {
        Job {
            items: file.range(),
            shape: Shape::IdFile(file),
            stdin_spool: spool,
        }
    }

    /// `--keys` (with `--ids` when given), scanned.
    pub fn key_files(
        product: Product,
        spool: Option<Arc<tempfile::TempPath>>,
    ) -> Result<Job, TooManyItems> {
        Ok(Job {
            items: product.items()?,
            shape: Shape::Product(product),
            stdin_spool: spool,
        })
    }

    /// The job cut to `slice` of its items (this node's share).
    pub fn restrict(mut self, slice: IdRange) -> Job {
        self.items = slice;
        if let Shape::IdFile(file) = &mut self.shape {
            file.empty = file.empty.restrict(slice);
        }
        self
    }

    /// The item indexes (this node's slice).
    pub fn items(&self) -> IdRange {
        self.items
    }

    /// What its items are called in a message: `ids`, `lines`, `items`.
    pub fn noun(&self) -> &'static str {
        match self.shape {
            Shape::Range => "ids",
            Shape::IdFile(_) => "lines",
            Shape::Product(_) => "items",
        }
    }

    /// Indexes of the range that are not items (an id file's empty lines): no row is made or
    /// expected for them.
    pub fn not_items(&self) -> Option<&IdSet> {
        match &self.shape {
            Shape::IdFile(file) => Some(&file.empty),
            Shape::Range | Shape::Product(_) => None,
        }
    }

    /// How many of the range's indexes are not items.
    pub fn not_items_count(&self) -> u64 {
        self.not_items().map_or(0, IdSet::count)
    }

    /// How rows name their items.
    pub fn row_items(&self) -> Items {
        match &self.shape {
            Shape::Range => Items::Ids,
            Shape::IdFile(_) => Items::Lines,
            Shape::Product(product) => product.row_items(),
        }
    }

    /// The key columns each row carries (each a placeholder), in order.
    pub fn columns(&self) -> Vec<KeyColumn> {
        match &self.shape {
            Shape::Product(product) => product.columns(),
            Shape::Range | Shape::IdFile(_) => Vec::new(),
        }
    }

    /// The key files with columns, for the placeholder check.
    pub fn product(&self) -> Option<&Product> {
        match &self.shape {
            Shape::Product(product) => Some(product),
            Shape::Range | Shape::IdFile(_) => None,
        }
    }

    /// True when the items came from standard input.
    pub fn reads_stdin(&self) -> bool {
        self.stdin_spool.is_some()
    }

    /// How many shards to run when `wanted` are asked for: an id file read from standard input
    /// is one stream (one shard reads it), and more shards than items would only start idle
    /// processes.
    pub fn shards(&self, wanted: usize) -> usize {
        let wanted = match self.shape {
            Shape::IdFile(_) if self.reads_stdin() => 1,
            _ => wanted,
        };
        wanted.min(usize::try_from(self.items.len()).unwrap_or(usize::MAX))
    }

    /// Where the worker of the shard of `ids` reads its items' values.
    pub fn shard_keys(&self, ids: IdRange) -> Keys {
        match &self.shape {
            Shape::Range => Keys::Numbers,
            Shape::IdFile(file) => {
                let (line, offset) = file.start_for(ids.start);
                Keys::Lines {
                    path: file.path.clone(),
                    line,
                    offset,
                }
            }
            Shape::Product(product) => Keys::Records(product.clone()),
        }
    }

    /// The identity of each key file of the job, in order (kept with the output, so that a
    /// resume against another file is refused).
    pub fn identities(&self) -> io::Result<Vec<KeyFileIdentity>> {
        match &self.shape {
            Shape::Range => Ok(Vec::new()),
            Shape::IdFile(keys) => {
                let shown = keys.path.display().to_string();
                let path = std::slice::from_ref(&keys.path);
                Ok(vec![KeyFileIdentity::of(
                    "--ids-file",
                    &shown,
                    path,
                    keys.lines,
                )?])
            }
            Shape::Product(product) => product
                .files
                .iter()
                .map(|file| {
                    let parts: Vec<PathBuf> = match file.parts.is_empty() {
                        true => vec![file.path.clone()],
                        false => file.parts.iter().map(|(part, _)| part.clone()).collect(),
                    };
                    let flag = match file.format {
                        RecordFormat::UrlLines => "--urls",
                        _ => "--keys",
                    };
                    KeyFileIdentity::of(flag, &file.shown, &parts, file.records)
                })
                .collect(),
        }
    }
}

/// How a worker gets the values of its items (part of its spec: a shard's share of the
/// [`Job`], as it crosses the pipe).
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

impl Keys {
    /// What a row carries of its item's values.
    pub fn row_values(&self) -> RowValues {
        RowValues {
            key: matches!(self, Keys::Lines { .. }),
            columns: matches!(self, Keys::Records(_)),
        }
    }
}

/// What a row carries of its item's values besides the index: the key (the `id` column of an
/// id file's rows) and the key files' columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowValues {
    key: bool,
    columns: bool,
}

impl RowValues {
    /// Sets the row's key and key columns from the item's `values`.
    pub fn fill(&self, values: &Values, captured: &mut Captured) {
        if self.key {
            captured.key = Some(values.id().to_vec());
        }
        if self.columns {
            captured.keys = values.columns();
        }
    }

    /// True when two items may have one key (lines of a file), so that names made from keys
    /// (a body's file) need the index too.
    pub fn keys_repeat(&self) -> bool {
        self.key
    }
}

/// Reads the values of a worker's items, in index order.
pub enum ItemReader {
    Numbers,
    Lines { reader: LineReader, key: Vec<u8> },
    Records(ProductReader),
}

impl ItemReader {
    pub fn open(keys: &Keys) -> io::Result<ItemReader> {
        Ok(match keys {
            Keys::Numbers => ItemReader::Numbers,
            Keys::Lines { path, line, offset } => ItemReader::Lines {
                reader: LineReader::open(path, *line, *offset)?,
                key: Vec::new(),
            },
            Keys::Records(product) => ItemReader::Records(ProductReader::open(product)?),
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
                range::read_values(index, values);
                Ok(true)
            }
            ItemReader::Lines { reader, key } => {
                let found = reader.key_for(index, key)?;
                values.push(Some(key));
                Ok(found)
            }
            ItemReader::Records(reader) => reader.read_values(index, values),
        }
    }

    /// What a shard names its source in a message.
    pub fn source(&self) -> &'static str {
        match self {
            ItemReader::Numbers => "--ids",
            ItemReader::Lines { .. } => "--ids-file",
            ItemReader::Records(_) => "--keys",
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

    #[test]
    fn a_job_answers_for_its_shape_what_others_used_to_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let range = Job::range(IdRange::new(0, 10));
        assert_eq!((range.items(), range.noun()), (IdRange::new(0, 10), "ids"));
        assert_eq!(
            (range.row_items(), range.not_items_count()),
            (Items::Ids, 0)
        );
        assert_eq!(range.shard_keys(IdRange::new(5, 10)), Keys::Numbers);
        assert_eq!(range.shards(64), 10, "no more shards than items");
        assert!(range.identities().expect("none").is_empty());

        let path = dir.path().join("keys.txt");
        std::fs::write(&path, "a\n\nb\nc\n").expect("write");
        let spool = tempfile::NamedTempFile::new()
            .expect("spool")
            .into_temp_path();
        let lines = Job::id_file(KeyFile::scan(&path).expect("scan"), Some(Arc::new(spool)));
        assert_eq!((lines.items(), lines.noun()), (IdRange::new(1, 5), "lines"));
        assert_eq!(lines.row_items().index_column_name(), "line");
        assert_eq!(lines.not_items_count(), 1, "the empty line 2");
        assert_eq!(lines.shards(8), 1, "standard input is one stream");
        assert!(
            lines
                .shard_keys(IdRange::new(3, 5))
                .row_values()
                .keys_repeat()
        );
        let node = lines.restrict(IdRange::new(3, 5));
        assert_eq!(
            (node.items(), node.not_items_count()),
            (IdRange::new(3, 5), 0)
        );

        let dates = dir.path().join("dates.csv");
        std::fs::write(&dates, "date\nd0\nd1\n").expect("write");
        let file = RecordFile::scan(&dates, "dates.csv", RecordFormat::Csv).expect("scan");
        let product = Product {
            ids: Some(IdRange::new(3, 5)),
            files: vec![file],
        };
        let job = Job::key_files(product, None).expect("counts");
        assert_eq!((job.items(), job.noun()), (IdRange::new(6, 10), "items"));
        assert_eq!(job.row_items().index_column_name(), "index");
        assert_eq!(job.columns().len(), 1);
        assert_eq!(job.identities().expect("hashed").len(), 1);
        let keys = job.shard_keys(IdRange::new(6, 8));
        let mut values = Values::default();
        let mut reader = ItemReader::open(&keys).expect("open");
        assert!(reader.values_for(7, &mut values).expect("read"));
        let mut captured = Captured::default();
        keys.row_values().fill(&values, &mut captured);
        assert_eq!(captured.keys, vec![Some(b"d1".to_vec())]);
        assert_eq!(captured.key, None, "the id is a number, not a key");
    }
}
