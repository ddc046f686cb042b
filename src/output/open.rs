//! The supervisor's one door to the output: [`open`] locks the output file and the bodies
//! directory (a second run on either is refused before anything is written), and opens the rows'
//! file in its format — new, replaced (`--overwrite`: a directory loses only its own parts), or,
//! with `--resume`, prepared by `resume` and appended to — with the ids that already have a row.

use std::io;
use std::path::{Path, PathBuf};

use super::arrow::Arrow;
use super::arrow_copy::{ArrowCopyTo, CopiedRows};
use super::format::{FileFormat, Format, Layout};
use super::job_record::{self, JobRecord};
use super::lock::{self, LockError, OutputLock};
use super::resume::{self, ResumeError, Resumed};
use super::target::Output;
use super::writer::{self, WriteRows};
use crate::failed::FailedRows;
use crate::ids::{IdRange, IdSet};
use crate::model::{Continuation, Schema};
use crate::timeline::IdMap;

/// What to do with an output file that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Refuse to start if it exists.
    New,
    /// Replace it.
    Overwrite,
    /// Keep its rows and fetch only the ids without one (and those whose row `retry_failed`
    /// counts as failed).
    Resume { retry_failed: Option<FailedRows> },
}

/// What a run writes, and how.
pub struct Spec<'a> {
    pub output: &'a Output,
    pub format: &'static dyn Format,
    pub mode: WriteMode,
    pub schema: &'a Schema,
    /// The run's items (a resume refuses rows outside them).
    pub ids: IdRange,
    /// A directory of parts: rows per part.
    pub part_rows: usize,
    /// `--bodies-dir`, locked beside the output.
    pub bodies_dir: Option<&'a Path>,
    /// What the rows are written from: kept beside an output file, and compared on `--resume`.
    pub job: &'a JobRecord,
    /// `--arrow-copy`: where the rows also go as an Arrow IPC stream.
    pub arrow_copy: Option<ArrowCopyTo<'a>>,
}

/// The rows an earlier run left that a resume keeps: how many, and the failed ones by error kind
/// or status (`--max-failed` judges the whole file, not only this run's rows).
#[derive(Debug, Default, Clone)]
pub struct Kept {
    pub rows: u64,
    pub failed: std::collections::BTreeMap<String, u64>,
}

/// The output, open for rows.
pub struct Opened {
    /// Resuming: the rows kept from earlier runs, and which of them failed.
    pub kept: Kept,
    pub rows: Box<dyn WriteRows>,
    /// Resuming: the items that keep their row.
    pub done: Option<IdSet>,
    /// Resuming with `--next`: the items whose chain goes on from a kept page.
    pub open: Vec<Continuation>,
    /// Resuming: what the kept rows' items came to, over the id space.
    pub map: Option<IdMap>,
    /// Held until the run ends.
    pub locks: Vec<OutputLock>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error("--output {0}: {1}")]
    Open(PathBuf, io::Error),
    #[error("writing {0}: {1}")]
    Write(PathBuf, io::Error),
    #[error("--arrow-copy {0}: {1}")]
    ArrowCopy(PathBuf, io::Error),
    #[error(
        "--resume {0}: {1}; refusing to append to it (resume with the first run's flags, or start afresh: --overwrite, or another -o)"
    )]
    OtherJob(PathBuf, String),
}

impl OpenError {
    /// The output could not be taken because of what the user asked for (held by another run,
    /// not ringscrape's, not of this run's shape), not because writing failed.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            OpenError::Open(..)
                | OpenError::ArrowCopy(..)
                | OpenError::Lock(..)
                | OpenError::OtherJob(..)
                | OpenError::Resume(
                    ResumeError::Header(..)
                        | ResumeError::Columns(..)
                        | ResumeError::Row(..)
                        | ResumeError::OutOfRange(..)
                )
        ) || self.is_foreign()
    }

    /// `--resume` found a file of another kind than its name says (not an Arrow stream).
    fn is_foreign(&self) -> bool {
        matches!(self, OpenError::Resume(ResumeError::Io(_, e)) if e.kind() == io::ErrorKind::InvalidData)
    }
}

/// Locks and opens the output (see the module's comment).
pub fn open(spec: &Spec<'_>) -> Result<Opened, OpenError> {
    let locks = lock_outputs(spec)?;
    let path = spec.output.path();
    // `config` refuses --resume with stdout, so here `path` is the output file.
    let resumed = match spec.mode {
        WriteMode::Resume { retry_failed } => {
            // Before anything is rewritten: rows of another job's items would be kept as done.
            if let Some(kept) = job_record::read(&path)
                && let Some(why) = spec.job.differs_from(&kept)
            {
                return Err(OpenError::OtherJob(path, why));
            }
            let columns = spec.schema.columns();
            let page_columns = spec.schema.page_columns();
            let shape = resume::Shape {
                format: spec.format,
                columns: &columns,
                index_column: spec.schema.index_column(),
                pages: page_columns
                    .zip(spec.schema.pages.as_ref())
                    .map(|((page, next), pages)| (page, next, pages)),
            };
            resume::prepare(&path, spec.ids, shape, retry_failed)?
        }
        WriteMode::New | WriteMode::Overwrite => None,
    };
    let rows = open_rows(spec, &path, resumed.is_none())?;
    let rows = with_arrow_copy(spec, rows)?;
    // A regular file or a directory of parts: not a device such as /dev/null.
    let kept_on_disk = std::fs::metadata(&path).is_ok_and(|m| m.is_file() || m.is_dir());
    if matches!(spec.output, Output::File(_)) && kept_on_disk {
        job_record::write(&path, spec.job).map_err(|e| OpenError::Write(path.clone(), e))?;
    }
    let (done, open, map, kept) = match resumed {
        Some(resumed) => {
            note_resumed(&path, spec.format, &resumed, spec.ids);
            let kept = Kept {
                rows: resumed.kept_rows,
                failed: resumed.kept_failed,
            };
            (Some(resumed.done), resumed.open, Some(resumed.map), kept)
        }
        None => (None, Vec::new(), None, Kept::default()),
    };
    Ok(Opened {
        rows,
        done,
        open,
        map,
        locks,
        kept,
    })
}

/// The output file's and the bodies directory's locks.
fn lock_outputs(spec: &Spec<'_>) -> Result<Vec<OutputLock>, LockError> {
    let mut locks = Vec::new();
    if let Output::File(path) = spec.output {
        locks.push(lock::acquire(
            "--output",
            path,
            &lock::lock_path_for_file(path),
        )?);
    }
    if let Some(dir) = spec.bodies_dir {
        locks.push(lock::acquire(
            "--bodies-dir",
            dir,
            &dir.join(".ringscrape.lock"),
        )?);
    }
    Ok(locks)
}

/// `rows`, and with `--arrow-copy` their copy (its schema sent at once).
fn with_arrow_copy(
    spec: &Spec<'_>,
    rows: Box<dyn WriteRows>,
) -> Result<Box<dyn WriteRows>, OpenError> {
    let Some(to) = &spec.arrow_copy else {
        return Ok(rows);
    };
    let path = to.output.path();
    let open = || {
        let sink = writer::open_output(to.output, true)?;
        Arrow.writer(sink, spec.schema.clone(), true)
    };
    let copy = open().map_err(|e| OpenError::ArrowCopy(path.clone(), e))?;
    let shown = path.display().to_string();
    Ok(Box::new(CopiedRows::new(
        rows,
        copy,
        shown,
        to.stop_run.clone(),
    )))
}

/// The format's writer over the output: `fresh` when no earlier rows are kept.
fn open_rows(spec: &Spec<'_>, path: &Path, fresh: bool) -> Result<Box<dyn WriteRows>, OpenError> {
    let open_stream = || {
        if fresh {
            writer::open_output(spec.output, spec.mode != WriteMode::New)
        } else {
            resume::open_for_append(path)
        }
        .map_err(|e| OpenError::Open(path.to_path_buf(), e))
    };
    let schema = spec.schema.clone();
    match spec.format.layout() {
        Layout::File(format) => format
            .writer(open_stream()?, schema, fresh)
            .map_err(|e| OpenError::Write(path.to_path_buf(), e)),
        // `config` refuses parts on stdout: `path` is the directory of parts.
        Layout::Parts(format) => {
            let open = || {
                if fresh && spec.mode == WriteMode::Overwrite {
                    format.remove_output(path).map_err(io::Error::other)?;
                }
                format.writer(path, schema, spec.part_rows)
            };
            open().map_err(|e| OpenError::Open(path.to_path_buf(), e))
        }
    }
}

fn note_resumed(path: &Path, format: &dyn Format, resumed: &Resumed, ids: IdRange) {
    let mut note = format!(
        "ringscrape: resuming {}: {} of {} ids have rows",
        path.display(),
        resumed.done.count(),
        ids.len()
    );
    if !resumed.open.is_empty() {
        note += &format!(
            "; {} chains of pages go on from their last page",
            resumed.open.len()
        );
    }
    if resumed.torn_bytes > 0 {
        note += &format!("; cut a torn last line ({} bytes)", resumed.torn_bytes);
    }
    if resumed.dropped_rows > 0 {
        note += &format!("; dropped {} rows to fetch again", resumed.dropped_rows);
    }
    if !resumed.kept_failed.is_empty() {
        let count: u64 = resumed.kept_failed.values().sum();
        let kinds: Vec<String> = resumed
            .kept_failed
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        note += &format!(
            "; {count} of the kept rows failed ({}): --retry-failed fetches them again (--retry-failed=LIST only some: errors, 5xx, 429…)",
            kinds.join(", ")
        );
    }
    if resumed.removed_parts > 0 {
        note += &format!(
            "; removed {} unfinished {} parts (their rows are fetched again)",
            resumed.removed_parts,
            format.name()
        );
    }
    crate::note!("{note}");
}
