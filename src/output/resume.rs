//! `--resume`: what an earlier run of the same command already wrote. Reads the output (one file,
//! or a directory of parts, in its format) as a stream (it may hold 50 million rows) into a
//! compressed set of done ids, drops a torn last row (parts: an unfinished part), and — with
//! `--retry-failed`, or if it finds duplicate rows — rewrites the file beside itself (parts: each
//! part) and renames it into place, so that every id keeps exactly one row whatever happens
//! meanwhile.
//!
//! With `--next`, an item has a row per page: a page's first row is kept, in page order, and an
//! item is done once a kept row ends its chain (no next, a failed page, `--max-pages`). An item
//! with pages kept but no end is open: the run goes on from its last kept page's `next`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::format::{FileFormat, Format, Layout, PartsFormat};
use super::reader::torn_len;
use super::rows::{RawRow, ReadError, RowReader};
use super::writer::Sink;
use crate::failed::FailedRows;
use crate::ids::{IdRange, IdSet};
use crate::model::{Continuation, Pages};
use crate::timeline::IdMap;

/// What was found in (and done to) the existing file.
#[derive(Debug)]
pub struct Resumed {
    /// Ids that keep their row (with `--next`: whose chain of pages ended).
    pub done: IdSet,
    /// With `--next`: items whose chain goes on from a kept page.
    pub open: Vec<Continuation>,
    /// What the kept rows' items came to, cell by cell of the id space.
    pub map: IdMap,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes: u64,
    /// Rows dropped by the rewrite (failed rows with `--retry-failed`, duplicates).
    pub dropped_rows: u64,
    /// Parquet: unfinished parts a crash left, removed.
    pub removed_parts: u64,
    /// Kept rows that are not a success, by error kind or status (`dns`, `404`).
    pub kept_failed: BTreeMap<String, u64>,
    /// Rows kept (with `--next`, more than the items they belong to).
    pub kept_rows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("--resume {0}: {1}; refusing to append to it")]
    Header(PathBuf, ReadError),
    #[error(
        "--resume {0}: its columns are {1}, but this run writes {2} (same --capture-header, --save-body, --bodies-dir as the first run?); refusing to append to it"
    )]
    Columns(PathBuf, String, String),
    #[error("--resume {0}: line {1}: {2}; refusing to append to it")]
    Row(PathBuf, u64, String),
    #[error(
        "--resume {0}: line {1} has id {2}, outside --ids {3}; was it written for another range?"
    )]
    OutOfRange(PathBuf, u64, u64, IdRange),
    #[error("--resume {0}: {1}")]
    Io(PathBuf, io::Error),
}

/// What a resumed file is and holds: its format, the columns this run writes, which column
/// identifies a row's item, and (with `--next`) where a row's page and next are.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    pub format: &'a dyn Format,
    pub columns: &'a [String],
    pub index_column: usize,
    /// The `page` and `next` columns, and when a chain ends.
    pub pages: Option<(usize, usize, &'a Pages)>,
}

/// Which rows of a file are kept and which items are done, decided row by row in file order —
/// the same decisions on every pass over the same rows: an item's first row (with pages, each
/// page's first, in page order) is kept, and with `--retry-failed` a failed row is dropped. A
/// kept row ends its item unless it is a page whose chain goes on.
struct Keeping {
    done: IdSet,
    /// Items with pages kept and no end yet: the last kept page and the next it gave.
    open: std::collections::HashMap<u64, (u32, String)>,
    retry_failed: Option<FailedRows>,
    failed: u64,
    duplicates: u64,
    /// Kept rows that are not a success, by error kind or status.
    kept_failed: BTreeMap<String, u64>,
    kept_rows: u64,
    /// What each ended item came to.
    map: IdMap,
}

impl Keeping {
    fn new(range: IdRange, retry_failed: Option<FailedRows>) -> Keeping {
        Keeping {
            done: IdSet::new(range),
            open: Default::default(),
            retry_failed,
            failed: 0,
            duplicates: 0,
            kept_failed: BTreeMap::new(),
            kept_rows: 0,
            map: IdMap::new(range),
        }
    }

    /// Whether the row of item `id` is kept.
    fn keep(
        &mut self,
        id: u64,
        succeeded: bool,
        raw: &RawRow<'_>,
        shape: Shape<'_>,
    ) -> Result<bool, ReadError> {
        let page = match shape.pages {
            Some((page, next, pages)) => Some((raw.page(page)?, raw.text(next)?, pages)),
            None => None,
        };
        let expected = self.open.get(&id).map_or(0, |(page, _)| page + 1);
        if self.done.contains(id) || page.as_ref().is_some_and(|(page, ..)| *page < expected) {
            self.duplicates += 1;
            return Ok(false);
        }
        if let Some(failed) = self.retry_failed
            && failed.counts(raw.status()?, raw.error()?)
        {
            self.failed += 1;
            return Ok(false);
        }
        self.kept_rows += 1;
        if !succeeded {
            let label = match raw.error()? {
                Some(kind) => kind.as_str().to_string(),
                None => raw
                    .status()?
                    .map_or_else(|| "none".into(), |s| s.to_string()),
            };
            *self.kept_failed.entry(label).or_default() += 1;
        }
        match page {
            Some((page, next, pages)) if succeeded && pages.goes_on(page, next.as_bytes()) => {
                self.open.insert(id, (page, next));
            }
            _ => {
                self.open.remove(&id);
                self.done.insert(id);
                self.map.ended(id, succeeded);
            }
        }
        Ok(true)
    }

    fn dropped(&self) -> u64 {
        self.failed + self.duplicates
    }

    /// What was found, once every row was decided on.
    fn resumed(self, torn_bytes: u64, removed_parts: u64) -> Resumed {
        Resumed {
            open: self.continuations(),
            dropped_rows: self.dropped(),
            done: self.done,
            map: self.map,
            torn_bytes,
            removed_parts,
            kept_failed: self.kept_failed,
            kept_rows: self.kept_rows,
        }
    }

    /// The open chains, to go on with.
    fn continuations(&self) -> Vec<Continuation> {
        let mut open: Vec<Continuation> = self
            .open
            .iter()
            .map(|(index, (page, next))| Continuation {
                index: *index,
                page: page + 1,
                next: next.clone(),
            })
            .collect();
        open.sort_by_key(|c| c.index);
        open
    }
}

/// One pass over the rows of `reader`: checks the columns, then calls `row` per row with its id.
fn each_row(
    path: &Path,
    rows: Result<Option<RowReader<'_>>, ReadError>,
    range: IdRange,
    shape: Shape<'_>,
    mut row: impl FnMut(u64, bool, &RawRow<'_>) -> io::Result<()>,
) -> Result<(), ResumeError> {
    let columns = shape.columns;
    let bad_row = |e: ReadError| match e {
        ReadError::Row { line, message } => ResumeError::Row(path.into(), line, message),
        header => ResumeError::Header(path.into(), header),
    };
    // A file of a format that learns its columns from its first row (or a directory of parts)
    // without a row names no columns: nothing to check, nothing done.
    let Some(mut rows) = rows.map_err(bad_row)? else {
        return Ok(());
    };
    if rows.columns() != columns {
        return Err(ResumeError::Columns(
            path.into(),
            rows.columns().join(","),
            columns.join(","),
        ));
    }
    while let Some(raw) = rows.next_row().map_err(bad_row)? {
        let id = raw.index(shape.index_column).map_err(bad_row)?;
        if !range.contains(id) {
            return Err(ResumeError::OutOfRange(path.into(), raw.line, id, range));
        }
        row(id, raw.succeeded(), &raw).map_err(|e| ResumeError::Io(path.into(), e))?;
    }
    Ok(())
}

/// The decisions over every row of `rows` (see [`Keeping`]).
fn tally(
    path: &Path,
    rows: Result<Option<RowReader<'_>>, ReadError>,
    range: IdRange,
    shape: Shape<'_>,
    retry_failed: Option<FailedRows>,
) -> Result<Keeping, ResumeError> {
    let mut keeping = Keeping::new(range, retry_failed);
    each_row(path, rows, range, shape, |id, succeeded, raw| {
        keeping
            .keep(id, succeeded, raw, shape)
            .map(|_| ())
            .map_err(io::Error::other)
    })?;
    Ok(keeping)
}

/// Reads `path` and prepares it for appending. `None` when there is nothing to resume (no file,
/// or not even a complete header): the run then starts the file afresh.
pub fn prepare(
    path: &Path,
    range: IdRange,
    shape: Shape<'_>,
    retry_failed: Option<FailedRows>,
) -> Result<Option<Resumed>, ResumeError> {
    match shape.format.layout() {
        Layout::File(format) => prepare_file(path, format, range, shape, retry_failed),
        Layout::Parts(format) => prepare_parts(path, format, range, shape, retry_failed),
    }
}

/// [`prepare`] for one file: cuts a torn last row, and rewrites the file when rows go.
fn prepare_file(
    path: &Path,
    format: &dyn FileFormat,
    range: IdRange,
    shape: Shape<'_>,
    retry_failed: Option<FailedRows>,
) -> Result<Option<Resumed>, ResumeError> {
    let io_err = |e| ResumeError::Io(path.into(), e);
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let complete = format.complete_len(&mut file).map_err(io_err)?;
    let torn_bytes = torn_len(&mut file, format, complete).map_err(io_err)?;
    if complete == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let reader = BufReader::new((&file).take(complete));
    let rows = format.reader(Box::new(reader));
    let keeping = tally(path, rows, range, shape, retry_failed)?;
    let dropped_rows = keeping.dropped();
    if dropped_rows == 0 {
        file.set_len(complete).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    } else {
        let kept = Kept {
            file: &mut file,
            complete,
            format,
        };
        rewrite_keeping(path, kept, range, shape, retry_failed)?;
    }
    Ok(Some(keeping.resumed(torn_bytes, 0)))
}

/// [`prepare`] for a directory of parts: removes what a crash left (an unfinished part), reads
/// the closed parts, and — with `--retry-failed`, or if it finds duplicates — rewrites each part
/// in place (a rename per part: a crash leaves each part old or new, and both are valid: the
/// first row of an id is the one kept).
fn prepare_parts(
    dir: &Path,
    format: &dyn PartsFormat,
    range: IdRange,
    shape: Shape<'_>,
    retry_failed: Option<FailedRows>,
) -> Result<Option<Resumed>, ResumeError> {
    let io_err = |e| ResumeError::Io(dir.into(), e);
    if !dir.exists() {
        return Ok(None);
    }
    let removed_parts = format.clean(dir).map_err(io_err)?;
    let parts = format.parts(dir).map_err(io_err)?;
    let rows = format.reader(parts.clone());
    let keeping = tally(dir, rows, range, shape, retry_failed)?;
    let dropped_rows = keeping.dropped();
    if dropped_rows > 0 {
        // The same decisions again, part by part, in the same order.
        let mut again = Keeping::new(range, retry_failed);
        for part in &parts {
            let mut out = format.replacing(part);
            let mut kept = 0u64;
            each_row(
                dir,
                format.reader(vec![part.clone()]),
                range,
                shape,
                |id, succeeded, row| {
                    if again
                        .keep(id, succeeded, row, shape)
                        .map_err(io::Error::other)?
                    {
                        kept += 1;
                        out.copy(row)?;
                    }
                    Ok(())
                },
            )?;
            out.finish().map_err(io_err)?;
            if kept == 0 {
                fs::remove_file(part).map_err(io_err)?;
            }
        }
    }
    Ok(Some(keeping.resumed(0, removed_parts)))
}

/// The file being resumed: its whole rows are its first `complete` bytes, in `format`.
struct Kept<'a> {
    file: &'a mut File,
    complete: u64,
    format: &'a dyn FileFormat,
}

/// Writes the header and the kept rows (see [`Keeping`]) to a file beside `path`, then renames
/// it over `path`: a crash at any point leaves either the old file or the new one.
fn rewrite_keeping(
    path: &Path,
    kept: Kept<'_>,
    range: IdRange,
    shape: Shape<'_>,
    retry_failed: Option<FailedRows>,
) -> Result<(), ResumeError> {
    let io_err = |e| ResumeError::Io(path.into(), e);
    // Through a symbolic link to the file itself, and with its permissions: the rewrite replaces
    // the file's content, not what the user made of the path.
    let target = fs::canonicalize(path).map_err(io_err)?;
    let permissions = fs::metadata(&target).map_err(io_err)?.permissions();
    let name = target
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let aside = target.with_file_name(format!(".{name}.resume-tmp"));
    let aside_file = File::create(&aside).map_err(io_err)?;
    aside_file.set_permissions(permissions).map_err(io_err)?;
    let mut written = io::BufWriter::new(aside_file);
    let mut out = kept.format.copier(&mut written);
    out.header(shape.columns).map_err(io_err)?;
    let mut keeping = Keeping::new(range, retry_failed);
    kept.file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let reader = BufReader::new((&*kept.file).take(kept.complete));
    each_row(
        path,
        kept.format.reader(Box::new(reader)),
        range,
        shape,
        |id, succeeded, row| {
            if keeping
                .keep(id, succeeded, row, shape)
                .map_err(io::Error::other)?
            {
                out.copy(row)?;
            }
            Ok(())
        },
    )?;
    out.finish().map_err(io_err)?;
    let aside_file = written.into_inner().map_err(|e| io_err(e.into_error()))?;
    aside_file.sync_all().map_err(io_err)?;
    fs::rename(&aside, &target).map_err(io_err)
}

/// Appends to a prepared file (no header: it has one).
pub fn open_for_append(path: &Path) -> io::Result<Sink> {
    Ok(Box::new(OpenOptions::new().append(true).open(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "id,status,bytes,latency_ms,attempts,error\n";

    fn fixed() -> Vec<String> {
        crate::model::Schema::default().columns()
    }

    fn csv(columns: &[String]) -> Shape<'_> {
        Shape {
            format: &crate::output::csv_rows::Csv,
            columns,
            index_column: 0,
            pages: None,
        }
    }

    fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn a_torn_last_line_is_cut_and_its_id_is_not_done() {
        let (_dir, path) = file_with(&format!("{HEAD}0,200,9,1.000,1,\n2,200,9,1.000,1,\n1,20"));
        let resumed = prepare(&path, IdRange::new(0, 3), csv(&fixed()), None)
            .expect("ok")
            .expect("resumable");
        assert_eq!(resumed.torn_bytes, 4);
        assert!(resumed.done.contains(0) && resumed.done.contains(2) && !resumed.done.contains(1));
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{HEAD}0,200,9,1.000,1,\n2,200,9,1.000,1,\n")
        );
    }

    #[test]
    fn a_rewrite_keeps_the_files_mode_and_writes_through_a_link() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let rows = "0,200,9,1.000,1,\n1,,0,30000.000,3,timeout\n";
        let (dir, file) = file_with(&format!("{HEAD}{rows}"));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
        let link = dir.path().join("link.csv");
        symlink(&file, &link).expect("symlink");
        let resumed = prepare(
            &link,
            IdRange::new(0, 2),
            csv(&fixed()),
            Some(FailedRows::unsuccessful()),
        )
        .expect("ok")
        .expect("resumable");
        assert_eq!(resumed.dropped_rows, 1);
        assert!(
            fs::symlink_metadata(&link)
                .expect("link")
                .file_type()
                .is_symlink()
        );
        let mode = fs::metadata(&file).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_to_string(&file).expect("read"),
            format!("{HEAD}0,200,9,1.000,1,\n")
        );
    }

    #[test]
    fn retry_failed_rewrites_the_file_without_failed_rows() {
        let rows =
            "0,200,9,1.000,1,\n1,,0,30000.000,3,timeout\n2,503,0,1.000,3,\n3,204,0,1.000,1,\n";
        let (_dir, path) = file_with(&format!("{HEAD}{rows}"));
        let resumed = prepare(
            &path,
            IdRange::new(0, 4),
            csv(&fixed()),
            Some(FailedRows::unsuccessful()),
        )
        .expect("ok")
        .expect("resumable");
        assert_eq!(resumed.dropped_rows, 2);
        assert_eq!(resumed.done.count(), 2);
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{HEAD}0,200,9,1.000,1,\n3,204,0,1.000,1,\n")
        );
        assert!(!path.with_file_name(".out.csv.resume-tmp").exists());
    }

    #[test]
    fn duplicate_rows_are_collapsed_to_the_first() {
        let (_dir, path) = file_with(&format!("{HEAD}0,200,9,1.000,1,\n0,200,9,2.000,1,\n"));
        let resumed = prepare(&path, IdRange::new(0, 2), csv(&fixed()), None)
            .expect("ok")
            .expect("resumable");
        assert_eq!((resumed.dropped_rows, resumed.done.count()), (1, 1));
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{HEAD}0,200,9,1.000,1,\n")
        );
    }

    #[test]
    fn refuses_a_file_that_is_not_ours_or_not_this_range() {
        let (_dir, path) = file_with("a,b,c\n1,2,3\n");
        assert!(matches!(
            prepare(&path, IdRange::new(0, 5), csv(&fixed()), None),
            Err(ResumeError::Header(..))
        ));
        let (_dir, path) = file_with(&format!("{HEAD}7,200,9,1.000,1,\n"));
        assert!(matches!(
            prepare(&path, IdRange::new(0, 5), csv(&fixed()), None),
            Err(ResumeError::OutOfRange(..))
        ));
        let (_dir, path) = file_with(&format!("{HEAD}x,200,9,1.000,1,\n"));
        assert!(matches!(
            prepare(&path, IdRange::new(0, 5), csv(&fixed()), None),
            Err(ResumeError::Row(..))
        ));
    }

    #[test]
    fn nothing_to_resume_without_a_complete_header() {
        let (_dir, path) = file_with("id,sta");
        assert!(
            prepare(&path, IdRange::new(0, 5), csv(&fixed()), None)
                .expect("ok")
                .is_none()
        );
        let missing = path.with_file_name("missing.csv");
        assert!(
            prepare(&missing, IdRange::new(0, 5), csv(&fixed()), None)
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn refuses_a_file_written_with_other_columns() {
        let (_dir, path) =
            file_with("id,status,bytes,latency_ms,attempts,error,body\n0,200,1,1.0,1,,x\n");
        assert!(matches!(
            prepare(&path, IdRange::new(0, 5), csv(&fixed()), None),
            Err(ResumeError::Columns(..))
        ));
        let mut with_body = fixed();
        with_body.push("body".into());
        let resumed = prepare(&path, IdRange::new(0, 5), csv(&with_body), None)
            .expect("ok")
            .expect("resumable");
        assert!(resumed.done.contains(0));
    }

    #[test]
    fn chains_of_pages_resume_from_their_last_kept_page() {
        let pages = crate::model::Pages {
            next: "/next".into(),
            param: None,
            max_pages: None,
        };
        let mut columns = fixed();
        columns.extend(["page".to_string(), "next".to_string()]);
        let shape = Shape {
            pages: Some((6, 7, &pages)),
            ..csv(&columns)
        };
        let head = "id,status,bytes,latency_ms,attempts,error,page,next\n";
        // Item 0: done in two pages. Item 1: pages 0 and 1 (written twice), page 2 to come.
        // Item 2: its page 1 failed. Item 3: nothing yet.
        let rows = "0,200,9,1.000,1,,0,u/0/1\n1,200,9,1.000,1,,0,u/1/1\n0,200,9,1.000,1,,1,\n\
                    1,200,9,1.000,1,,1,u/1/2\n2,200,9,1.000,1,,0,u/2/1\n1,200,9,1.000,1,,1,u/1/2\n\
                    2,500,9,1.000,3,,1,\n";
        let (_dir, path) = file_with(&format!("{head}{rows}"));
        let resumed = prepare(&path, IdRange::new(0, 4), shape, None)
            .expect("ok")
            .expect("resumable");
        assert_eq!(resumed.dropped_rows, 1, "page 1 of item 1 twice");
        let done: Vec<u64> = (0..4).filter(|&i| resumed.done.contains(i)).collect();
        assert_eq!(done, [0, 2], "a failed page ends its chain");
        assert_eq!(
            resumed.open,
            [Continuation {
                index: 1,
                page: 2,
                next: "u/1/2".into()
            }]
        );
        // With --retry-failed the failed page goes: item 2 goes on from its page 0.
        let resumed = prepare(
            &path,
            IdRange::new(0, 4),
            shape,
            Some(FailedRows::unsuccessful()),
        )
        .expect("ok")
        .expect("resumable");
        assert_eq!(resumed.open.len(), 2);
        assert_eq!(
            resumed.open[1],
            Continuation {
                index: 2,
                page: 1,
                next: "u/2/1".into()
            }
        );
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 6, "header and 5 kept rows: {text}");
    }
}
