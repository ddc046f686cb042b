//! Parquet's directory of parts: the part files' names, which of them are closed, what a crash
//! left (removed by `--resume`), what `--overwrite` may remove, and the [`PartWriter`] that
//! writes record batches into numbered parts, each renamed into place once its footer is written.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::output::format::NotOurs;
use crate::output::target::directory_of;

/// A file name ringscrape writes in a directory of parts: a part, or one being written.
fn is_ours(name: &str) -> bool {
    (name.starts_with("part-") && name.ends_with(".parquet"))
        || (name.starts_with(".part-") && name.ends_with(".tmp"))
}

/// Checks that `--overwrite` may replace `path`: a file, nothing, or a directory holding only
/// parts (never `.` or a directory above it, where the user's work is).
pub fn check_replaceable(path: &Path) -> Result<(), NotOurs> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !meta.is_dir() {
        return Ok(());
    }
    let here = std::env::current_dir()?.canonicalize()?;
    if here.starts_with(path.canonicalize()?) {
        return Err(NotOurs::HoldsWorkingDir);
    }
    let mut names: Vec<_> = fs::read_dir(path)?
        .map(|entry| entry.map(|e| (e.file_name(), e.file_type())))
        .collect::<io::Result<_>>()?;
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in names {
        let ours = kind?.is_file() && name.to_str().is_some_and(is_ours);
        if !ours {
            return Err(NotOurs::Foreign(path.join(name)));
        }
    }
    Ok(())
}

/// Removes an earlier output at `path` (`--overwrite`): the parts of a directory (nothing
/// else: [`check_replaceable`] refused a directory holding anything else), or a file.
pub fn remove_output(path: &Path) -> Result<(), NotOurs> {
    check_replaceable(path)?;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            for entry in fs::read_dir(path)? {
                fs::remove_file(entry?.path())?;
            }
            Ok(())
        }
        Ok(_) => Ok(fs::remove_file(path)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The closed parts of `dir`, in order.
pub fn parts(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut parts: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
        })
        .collect();
    parts.sort();
    Ok(parts)
}

/// Removes what a crash left in `dir`: unfinished `.tmp` parts, and parts whose footer does not
/// read. Returns how many files it removed.
pub fn clean(dir: &Path) -> io::Result<u64> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let unfinished = name.starts_with(".part-") && name.ends_with(".tmp");
        let unreadable = name.starts_with("part-") && open_part(&path).is_err();
        if unfinished || unreadable {
            fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Rows a reader finds in `dir`: those of its closed parts whose footer reads (a part still
/// being written when the disk filled holds none a reader can see).
pub fn readable_rows(dir: &Path) -> io::Result<u64> {
    let mut rows = 0;
    for part in parts(dir)? {
        let Ok(builder) = File::open(&part).map(ParquetRecordBatchReaderBuilder::try_new) else {
            continue;
        };
        if let Ok(builder) = builder {
            rows += u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        }
    }
    Ok(rows)
}

/// A reader of one part's record batches.
pub fn open_part(path: &Path) -> io::Result<ParquetRecordBatchReader> {
    let file = File::open(path)?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.build())
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

/// Writes record batches into numbered parts of a directory, each renamed into place when closed.
pub struct PartWriter {
    dir: PathBuf,
    /// The columns; taken from the first batch when not given.
    schema: Option<SchemaRef>,
    /// Write one part under this name instead of numbered ones (a part rewritten in place).
    replacing: Option<PathBuf>,
    next: u64,
    open: Option<(ArrowWriter<File>, PathBuf)>,
}

impl PartWriter {
    /// Parts of `dir` numbered after those already there.
    pub fn new(dir: &Path, schema: Option<SchemaRef>) -> io::Result<Self> {
        let next = parts(dir)?
            .iter()
            .filter_map(|p| part_number(p))
            .max()
            .map_or(0, |n| n + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            schema,
            replacing: None,
            next,
            open: None,
        })
    }

    /// One part that takes the place of `part` when closed (atomically, by rename).
    pub fn replacing(part: &Path) -> Self {
        Self {
            dir: directory_of(part).to_path_buf(),
            schema: None,
            replacing: Some(part.to_path_buf()),
            next: 0,
            open: None,
        }
    }

    pub fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.open.is_none() {
            let temp = self.dir.join(format!(".part-{:06}.parquet.tmp", self.next));
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            let schema = self.schema.get_or_insert_with(|| batch.schema()).clone();
            let writer = ArrowWriter::try_new(File::create(&temp)?, schema, Some(props))
                .map_err(io::Error::other)?;
            self.open = Some((writer, temp));
        }
        let (writer, _) = self.open.as_mut().expect("opened just above");
        writer.write(batch).map_err(io::Error::other)
    }

    /// Writes the footer of the open part, makes it durable and gives it its name.
    pub fn close_part(&mut self) -> io::Result<()> {
        let Some((writer, temp)) = self.open.take() else {
            return Ok(());
        };
        let file = writer.into_inner().map_err(io::Error::other)?;
        file.sync_all()?;
        let name = match &self.replacing {
            Some(part) => part.clone(),
            None => self.dir.join(format!("part-{:06}.parquet", self.next)),
        };
        fs::rename(&temp, &name)?;
        self.next += 1;
        Ok(())
    }
}

fn part_number(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}
