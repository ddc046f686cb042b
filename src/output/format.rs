//! What a row format is, as the rest of the program sees one: the [`Format`] trait — its names,
//! its [`Layout`] (one file of rows, or a directory of parts) and, per layout, its writer, reader
//! and copier. Each format is a type of its own in its room
//! (`csv_rows`, `jsonl`, `parquet`); `formats` looks them up. Code outside `output/` holds a
//! `&'static dyn Format` and asks it; it never names one.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use super::rows::{RawRow, ReadError, RowReader};
use super::writer::{Sink, WriteRows};
use crate::model::Schema;

/// A row format: how `--format` and messages name it, the file names that say it, and how its
/// rows lie on disk.
pub trait Format: Sync {
    /// As messages name it: `CSV`, `JSON Lines`, `Parquet`.
    fn name(&self) -> &'static str;
    /// As `--format` takes it: `csv`, `jsonl`, `parquet`.
    fn flag(&self) -> &'static str;
    /// The extensions that name it, lower case; the first is the one it is written with.
    fn extensions(&self) -> &'static [&'static str];
    /// One file, or a directory of parts, with what each layout needs of the format.
    fn layout(&self) -> Layout<'_>;
}

impl fmt::Debug for dyn Format + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for dyn Format + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.flag() == other.flag()
    }
}

impl dyn Format + '_ {
    /// The extension a file of this format is named with.
    pub fn extension(&self) -> &'static str {
        self.extensions()[0]
    }

    /// Its rows lie in a directory of part files.
    pub fn is_parts(&self) -> bool {
        matches!(self.layout(), Layout::Parts(_))
    }

    /// `--overwrite` may replace `path` with rows of this format (a directory of parts holds
    /// only parts, and is not where the user works).
    pub fn check_replaceable(&self, path: &Path) -> Result<(), NotOurs> {
        match self.layout() {
            Layout::File(_) => Ok(()),
            Layout::Parts(parts) => parts.check_replaceable(path),
        }
    }
}

/// How a format's rows lie on disk.
pub enum Layout<'a> {
    /// One file (or stdout) that rows are appended to; a torn last row is cut off.
    File(&'a dyn FileFormat),
    /// A directory of part files, each complete once it has its name.
    Parts(&'a dyn PartsFormat),
}

/// A format whose rows are one stream of bytes.
pub trait FileFormat: Format {
    /// A writer of `schema`'s rows into `out`, with the header first when `header` (a fresh file;
    /// not when appending to a resumed one).
    fn writer(&self, out: Sink, schema: Schema, header: bool) -> io::Result<Box<dyn WriteRows>>;
    /// The rows of `input`, their columns checked; `None` when it holds none (a format that
    /// learns its columns from its first row).
    fn reader<'a>(&self, input: Box<dyn BufRead + 'a>) -> Result<Option<RowReader<'a>>, ReadError>;
    /// Copies rows read in this format into `out`, as they were.
    fn copier<'a>(&self, out: &'a mut dyn Write) -> Box<dyn CopyRows + 'a>;
    /// Length of `file` up to the end of its last whole row: after it is a torn row (the writer
    /// was killed mid-row, or the disk filled), which `--resume` cuts off and `merge` leaves out.
    fn complete_len(&self, file: &mut File) -> io::Result<u64>;
    /// What a finished output ends with after its last row (an end-of-stream marker):
    /// `--resume` cuts it off, as it does a torn row, without calling it torn.
    fn end_marker(&self) -> &'static [u8] {
        &[]
    }
}

/// A format whose rows lie in numbered part files of a directory.
pub trait PartsFormat: Format {
    /// A writer of `schema`'s rows into new parts of `dir` (created when missing), a part closed
    /// every `part_rows` rows.
    fn writer(
        &self,
        dir: &Path,
        schema: Schema,
        part_rows: usize,
    ) -> io::Result<Box<dyn WriteRows>>;
    /// The closed parts of `dir`, in order.
    fn parts(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Removes what a crash left in `dir` (unfinished parts); how many files it removed.
    fn clean(&self, dir: &Path) -> io::Result<u64>;
    /// Rows a reader finds in `dir`: those of its closed parts that read.
    fn readable_rows(&self, dir: &Path) -> io::Result<u64>;
    /// See [`Format::check_replaceable`](trait.Format.html).
    fn check_replaceable(&self, path: &Path) -> Result<(), NotOurs>;
    /// Removes an earlier output at `path`: the parts of a directory (nothing else), or a file.
    fn remove_output(&self, path: &Path) -> Result<(), NotOurs>;
    /// The rows of `parts`, one part after the other; `None` when there is none.
    fn reader(&self, parts: Vec<PathBuf>) -> Result<Option<RowReader<'static>>, ReadError>;
    /// Copies rows read in this format into new parts of `dir`.
    fn copier(&self, dir: &Path) -> io::Result<Box<dyn CopyRows>>;
    /// Copies rows read in this format into one part that takes the place of `part` when
    /// finished (atomically, by rename).
    fn replacing(&self, part: &Path) -> Box<dyn CopyRows>;
}

/// Rows read back written again as they were, in the same format (resume's rewrite, merge).
pub trait CopyRows {
    /// The columns, before any row (a format that names its columns in each row ignores them).
    fn header(&mut self, columns: &[String]) -> io::Result<()>;
    /// A row read in this format; a row of another format is an error.
    fn copy(&mut self, row: &RawRow<'_>) -> io::Result<()>;
    /// Everything copied reaches the output (a stream's writer is flushed, a last part closed).
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Why `--overwrite` may not replace a path with a directory of parts.
#[derive(Debug, thiserror::Error)]
pub enum NotOurs {
    #[error("holds the current directory; name a directory of parts of its own")]
    HoldsWorkingDir,
    #[error("holds {0}, which ringscrape did not write; move it away or name another directory")]
    Foreign(PathBuf),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What an output's name says it holds ([`formats::named_by`](super::formats::named_by)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Named {
    /// Rows of this format.
    Rows(&'static dyn Format),
    /// A kind of file ringscrape does not write, and what to name it instead.
    Unwritten(&'static str),
}
