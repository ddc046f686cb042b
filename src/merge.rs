//! `ringscrape merge`: joins the outputs of a job's nodes into one (CSV, JSON Lines or Parquet
//! directories, in OUT's format) and proves coverage — every item of the job (an id range, or
//! the non-empty lines of a key file) has exactly one row.
//!
//! Inputs are streamed row by row; what is remembered is a compressed bitmap of the indexes seen
//! (the same [`IdSet`] as `--resume`) and one of the duplicates per input, never the rows. A
//! torn last line (a node killed mid-row) is left out, as `--resume` would cut it. The merged
//! file is written beside OUT and renamed into place, so OUT is never half a merge.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::ids::{IdRange, IdRangeError, IdSet};
use crate::job::{Job, KeyFile, Product, RecordFile, RecordFormat};
use crate::output::reader::{ReadError, RowReader, torn_len};
use crate::output::{CopyRows, FileFormat, Layout, Named, NotOurs, PartsFormat, formats};

/// How many ranges a report lists before it says how many more there are.
const LISTED_RANGES: usize = 10;

/// Which row is kept for an id that has several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The row of the input listed first.
    First,
    /// The row of the input listed last.
    Last,
}

/// A merge, checked.
#[derive(Debug)]
pub struct MergeJob {
    /// The job's item indexes: ids, or line numbers of the key file.
    pub items: IdRange,
    /// Indexes that are not items (empty lines of the key file): no row is expected.
    pub exempt: IdSet,
    /// `line` for a key file, `index` for a product of `--ids` and key files, else `id`.
    pub index_column: &'static str,
    pub out: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub allow_duplicates: Option<Keep>,
}

/// A key file of the job, by the flag that named it.
#[derive(Debug, Clone)]
pub enum KeyPath {
    /// `--keys`: its format by its extension.
    Keys(PathBuf),
    /// `--urls`: one URL per line.
    Urls(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Ids(#[from] IdRangeError),
    #[error(
        "--ids, --ids-file, --keys or --urls is required: the whole job's, as given to every node"
    )]
    MissingIds,
    #[error("--ids-file {0}: {1}")]
    IdsFile(PathBuf, io::Error),
    #[error("--keys {0}: {1}")]
    Keys(PathBuf, String),
    #[error("--urls {0}: {1}")]
    Urls(PathBuf, String),
    #[error(transparent)]
    TooManyItems(#[from] crate::job::TooManyItems),
    #[error("{0}: exists; pass --overwrite to replace it")]
    OutExists(PathBuf),
    #[error("{0}: {1}")]
    NotOurs(PathBuf, NotOurs),
    #[error(
        "{out} is {format} (by its extension) but {input} is {given}: merge inputs of one format into an OUT of that format"
    )]
    MixedFormats {
        out: PathBuf,
        format: &'static str,
        input: PathBuf,
        given: &'static str,
    },
    #[error("{0}: is both the output and an input")]
    OutIsInput(PathBuf),
    #[error("{0}: {1}")]
    OutKind(PathBuf, &'static str),
    #[error("{0}: {1}")]
    OpenInput(PathBuf, io::Error),
    #[error("{0}: {1}")]
    ReadInput(PathBuf, ReadError),
    #[error("{0}: {1}")]
    Write(PathBuf, io::Error),
}

impl MergeError {
    /// True for mistakes in the command itself (exit 2), as opposed to inputs that turn out
    /// broken, or a failed write (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, MergeError::ReadInput(..) | MergeError::Write(..))
    }
}

/// What one input held.
#[derive(Debug, Default)]
pub struct InputReport {
    pub path: PathBuf,
    pub rows: u64,
    /// Bytes of a torn last line left out.
    pub torn_bytes: u64,
    /// Its header, when it differs from the first input's (its rows were not merged).
    pub other_header: Option<String>,
    /// Rows whose index is not an item of the job, and the first such index.
    pub outside: u64,
    pub first_outside: Option<u64>,
    /// Items this input had a row for that an earlier one already had.
    pub duplicates: Option<IdSet>,
}

/// What the merge found.
#[derive(Debug)]
pub struct MergeReport {
    pub items: IdRange,
    /// Rows written to OUT.
    pub written: u64,
    /// Items with a row, and indexes that need none: its gaps are the missing items.
    pub covered: IdSet,
    pub missing_count: u64,
    pub inputs: Vec<InputReport>,
    /// The input whose header OUT took (the first read that had one).
    pub reference: Option<PathBuf>,
    pub allow_duplicates: Option<Keep>,
}

impl MergeReport {
    /// Every item has exactly one row (or at least one, duplicates being allowed), and every
    /// input was ours and of this job.
    pub fn is_complete(&self) -> bool {
        self.missing_count == 0
            && self.inputs.iter().all(|input| {
                input.other_header.is_none()
                    && input.outside == 0
                    && (self.allow_duplicates.is_some() || input.duplicates.is_none())
            })
    }
}

/// The job from `--ids`, `--ids-file` or `--keys` (with `--ids`), as `run` builds it (no
/// standard input: merge reads the files themselves).
fn job_of(ids: Option<&str>, ids_file: Option<&Path>, keys: &[KeyPath]) -> Result<Job, MergeError> {
    if !keys.is_empty() {
        return Ok(Job::key_files(product_of(ids, keys)?, None)?);
    }
    match (ids, ids_file) {
        (_, Some(path)) => {
            let keys =
                KeyFile::scan(path).map_err(|e| MergeError::IdsFile(path.to_path_buf(), e))?;
            Ok(Job::id_file(keys, None))
        }
        (Some(ids), None) => Ok(Job::range(ids.parse()?)),
        (None, None) => Err(MergeError::MissingIds),
    }
}

/// The product of `--ids` (when given) and the key files, as `run` numbers its items.
fn product_of(ids: Option<&str>, keys: &[KeyPath]) -> Result<Product, MergeError> {
    let ids = ids.map(str::parse::<IdRange>).transpose()?;
    let mut files = Vec::with_capacity(keys.len());
    for key in keys {
        let (path, format) = match key {
            KeyPath::Keys(path) => (path, RecordFormat::of_path(path)),
            KeyPath::Urls(path) => (path, Some(RecordFormat::UrlLines)),
        };
        let fail = |message: String| match key {
            KeyPath::Keys(_) => MergeError::Keys(path.clone(), message),
            KeyPath::Urls(_) => MergeError::Urls(path.clone(), message),
        };
        let format = format.filter(|_| path.as_os_str() != "-").ok_or_else(|| {
            fail("name the key file itself, as .csv, .tsv, .jsonl or .parquet".into())
        })?;
        let shown = path.display().to_string();
        files.push(RecordFile::scan(path, &shown, format).map_err(|e| fail(e.to_string()))?);
    }
    Ok(Product { ids, files })
}

impl MergeJob {
    /// The job from `--ids`, `--ids-file` or `--keys` (with `--ids`), with the output and
    /// inputs checked.
    pub fn new(
        ids: Option<&str>,
        ids_file: Option<&Path>,
        keys: &[KeyPath],
        out: PathBuf,
        inputs: Vec<PathBuf>,
        allow_duplicates: Option<Keep>,
        overwrite: bool,
    ) -> Result<MergeJob, MergeError> {
        let job = job_of(ids, ids_file, keys)?;
        let items = job.items();
        let exempt = job
            .not_items()
            .cloned()
            .unwrap_or_else(|| IdSet::new(items));
        let index_column = job.row_items().index_column_name();
        if out.exists() && !overwrite {
            return Err(MergeError::OutExists(out));
        }
        if let Some(Named::Unwritten(why)) = formats::named_by(&out) {
            return Err(MergeError::OutKind(out, why));
        }
        let format = formats::of_path(&out);
        format
            .check_replaceable(&out)
            .map_err(|e| MergeError::NotOurs(out.clone(), e))?;
        for input in &inputs {
            File::open(input).map_err(|e| MergeError::OpenInput(input.clone(), e))?;
            let given = formats::of_existing(input);
            if given != format {
                return Err(MergeError::MixedFormats {
                    out: out.clone(),
                    format: format.name(),
                    input: input.clone(),
                    given: given.name(),
                });
            }
            if same_file(input, &out) {
                return Err(MergeError::OutIsInput(out));
            }
        }
        Ok(MergeJob {
            items,
            exempt,
            index_column,
            out,
            inputs,
            allow_duplicates,
        })
    }

    /// Streams every input into OUT, keeping one row per item. Every file is in OUT's format
    /// (by its extension): one file each, or a directory of parts each.
    pub fn run(&self) -> Result<MergeReport, MergeError> {
        match formats::of_path(&self.out).layout() {
            Layout::File(format) => self.run_files(format),
            Layout::Parts(format) => self.run_parts(format),
        }
    }

    /// [`run`](Self::run) for files: OUT is written beside itself and renamed into place.
    fn run_files(&self, format: &dyn FileFormat) -> Result<MergeReport, MergeError> {
        let write_err = |e| MergeError::Write(self.out.clone(), e);
        let beside = crate::output::directory_of(&self.out);
        let staged = tempfile::Builder::new()
            .prefix(".ringscrape-merge")
            .tempfile_in(beside)
            .map_err(write_err)?;
        let mut written = BufWriter::with_capacity(1 << 20, staged);
        let mut copier = format.copier(&mut written);
        let report = self.copy_all(copier.as_mut(), |path, into| {
            self.merge_file(path, format, into)
        })?;
        copier.finish().map_err(write_err)?;
        let staged = written
            .into_inner()
            .map_err(|e| write_err(e.into_error()))?;
        staged.as_file().sync_all().map_err(write_err)?;
        staged.persist(&self.out).map_err(|e| write_err(e.error))?;
        Ok(report)
    }

    /// [`run`](Self::run) for directories of parts: OUT's parts are written into a directory
    /// beside it, which takes its place.
    fn run_parts(&self, format: &dyn PartsFormat) -> Result<MergeReport, MergeError> {
        let write_err = |e| MergeError::Write(self.out.clone(), e);
        let beside = crate::output::directory_of(&self.out);
        let staged = tempfile::Builder::new()
            .prefix(".ringscrape-merge")
            .tempdir_in(beside)
            .map_err(write_err)?;
        let mut copier = format.copier(staged.path()).map_err(write_err)?;
        let report = self.copy_all(copier.as_mut(), |path, into| {
            // Only closed parts count; a node's unfinished part is what its resume refetches.
            let parts = format.parts(path).map_err(|e| read_io_err(path, e))?;
            let report = InputReport {
                path: path.to_path_buf(),
                ..InputReport::default()
            };
            self.copy_opened(format.reader(parts), report, into)
        })?;
        copier.finish().map_err(write_err)?;
        // Only what ringscrape wrote goes: `new` refused a directory holding more.
        format
            .remove_output(&self.out)
            .map_err(|e| write_err(io::Error::other(e)))?;
        if self.out.is_dir() {
            std::fs::remove_dir(&self.out).map_err(write_err)?;
        }
        std::fs::rename(staged.keep(), &self.out).map_err(write_err)?;
        Ok(report)
    }

    /// Copies every input's rows of items without a row yet into `out`, each input read by
    /// `merge_one`.
    fn copy_all(
        &self,
        out: &mut dyn CopyRows,
        mut merge_one: impl FnMut(&Path, &mut MergeInto<'_>) -> Result<InputReport, MergeError>,
    ) -> Result<MergeReport, MergeError> {
        let write_err = |e| MergeError::Write(self.out.clone(), e);
        let mut seen = IdSet::new(self.items);
        let mut header: Option<(PathBuf, Vec<String>)> = None;
        let mut order: Vec<&PathBuf> = self.inputs.iter().collect();
        // The last input's row wins when the inputs are read last to first.
        if self.allow_duplicates == Some(Keep::Last) {
            order.reverse();
        }
        let mut inputs = Vec::with_capacity(order.len());
        let mut written = 0;
        for path in order {
            let mut into = MergeInto {
                header: &mut header,
                seen: &mut seen,
                out: &mut *out,
                written: &mut written,
            };
            inputs.push(merge_one(path, &mut into)?);
        }
        if header.is_none() {
            // No input had a header: OUT still gets the fixed columns, so it reads as ours.
            let fixed = crate::model::FIXED_COLUMNS.map(String::from);
            out.header(&fixed).map_err(write_err)?;
        }
        if self.allow_duplicates == Some(Keep::Last) {
            inputs.reverse();
        }
        let mut covered = seen;
        covered.union_with(&self.exempt);
        let missing_count = self.items.len() - covered.count();
        Ok(MergeReport {
            items: self.items,
            written,
            covered,
            missing_count,
            inputs,
            reference: header.map(|(path, _)| path),
            allow_duplicates: self.allow_duplicates,
        })
    }

    /// Opens one input file and copies its whole rows of items that have no row yet (a torn
    /// last row is left out).
    fn merge_file(
        &self,
        path: &Path,
        format: &dyn FileFormat,
        into: &mut MergeInto<'_>,
    ) -> Result<InputReport, MergeError> {
        let io_err = |e: io::Error| read_io_err(path, e);
        let mut report = InputReport {
            path: path.to_path_buf(),
            ..InputReport::default()
        };
        let mut file = File::open(path).map_err(io_err)?;
        let complete = format.complete_len(&mut file).map_err(io_err)?;
        report.torn_bytes = torn_len(&mut file, format, complete).map_err(io_err)?;
        if complete == 0 {
            return Ok(report);
        }
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let reader = BufReader::with_capacity(1 << 20, (&file).take(complete));
        self.copy_opened(format.reader(Box::new(reader)), report, into)
    }

    /// Copies the rows of an input just opened; one with other columns is reported, not read.
    fn copy_opened(
        &self,
        opened: Result<Option<RowReader<'_>>, ReadError>,
        mut report: InputReport,
        into: &mut MergeInto<'_>,
    ) -> Result<InputReport, MergeError> {
        match opened {
            Ok(Some(rows)) => self.copy_rows(rows, report, into),
            // A format that learns its columns from its first row (or parts) without a row:
            // nothing to merge from it.
            Ok(None) => Ok(report),
            Err(ReadError::Header(text)) => {
                report.other_header = Some(text);
                Ok(report)
            }
            Err(e) => Err(MergeError::ReadInput(report.path.clone(), e)),
        }
    }

    /// Copies the rows of one input whose item has no row yet.
    fn copy_rows(
        &self,
        mut rows: RowReader<'_>,
        mut report: InputReport,
        into: &mut MergeInto<'_>,
    ) -> Result<InputReport, MergeError> {
        let read_err = |e| MergeError::ReadInput(report.path.clone(), e);
        let columns = rows.columns().to_vec();
        match &into.header {
            Some((_, first)) if *first != columns => {
                report.other_header = Some(rows.columns().join(","));
                return Ok(report);
            }
            Some(_) => {}
            None => {
                let Some(_) = rows.column(self.index_column) else {
                    report.other_header = Some(rows.columns().join(","));
                    return Ok(report);
                };
                into.out
                    .header(&columns)
                    .map_err(|e| MergeError::Write(self.out.clone(), e))?;
                *into.header = Some((report.path.clone(), columns));
            }
        }
        let index_column = rows.column(self.index_column).unwrap_or(0);
        let mut duplicates = IdSet::new(self.items);
        while let Some(raw) = rows.next_row().map_err(read_err)? {
            report.rows += 1;
            let index = raw.index(index_column).map_err(read_err)?;
            if !self.items.contains(index) || self.exempt.contains(index) {
                report.outside += 1;
                report.first_outside.get_or_insert(index);
            } else if into.seen.insert(index) {
                into.out
                    .copy(&raw)
                    .map_err(|e| MergeError::Write(self.out.clone(), e))?;
                *into.written += 1;
            } else {
                duplicates.insert(index);
            }
        }
        if duplicates.count() > 0 {
            report.duplicates = Some(duplicates);
        }
        Ok(report)
    }
}

/// Where the rows of the inputs go, and what was kept so far.
struct MergeInto<'a> {
    header: &'a mut Option<(PathBuf, Vec<String>)>,
    seen: &'a mut IdSet,
    out: &'a mut dyn CopyRows,
    written: &'a mut u64,
}

/// An input that could not be read, as a merge reports it.
fn read_io_err(path: &Path, e: io::Error) -> MergeError {
    MergeError::ReadInput(
        path.to_path_buf(),
        ReadError::Row {
            line: 0,
            message: e.to_string(),
        },
    )
}

/// True when both paths name one file (an input given as OUT by mistake).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Up to [`LISTED_RANGES`] ranges, then how many more.
fn list_ranges(ranges: impl Iterator<Item = IdRange>) -> String {
    let mut ranges = ranges.peekable();
    let mut listed: Vec<String> = Vec::new();
    while listed.len() < LISTED_RANGES {
        match ranges.next() {
            Some(range) => listed.push(range.to_string()),
            None => break,
        }
    }
    let more = ranges.count();
    if more > 0 {
        listed.push(format!("and {more} more ranges"));
    }
    listed.join(", ")
}

impl MergeReport {
    /// The report as lines for stderr: what was written, then each problem, then the verdict.
    pub fn lines(&self, out: &Path) -> Vec<String> {
        let mut lines = vec![format!(
            "ringscrape merge: {} rows from {} inputs written to {}",
            self.written,
            self.inputs.len(),
            out.display()
        )];
        for input in &self.inputs {
            let name = input.path.display();
            if input.torn_bytes > 0 {
                lines.push(format!(
                    "ringscrape merge: {name}: left out a torn last line ({} bytes)",
                    input.torn_bytes
                ));
            }
            if let Some(header) = &input.other_header {
                let reference = self
                    .reference
                    .as_ref()
                    .map_or("the fixed columns".into(), |path| {
                        format!("{}'s", path.display())
                    });
                lines.push(format!(
                    "ringscrape merge: {name}: its header {header:?} differs from {reference}; its rows were not merged"
                ));
            }
            if input.outside > 0 {
                lines.push(format!(
                    "ringscrape merge: {name}: {} rows are not items of this job (the first: {}); was it written for another --ids?",
                    input.outside,
                    input.first_outside.unwrap_or_default()
                ));
            }
            if let Some(duplicates) = &input.duplicates {
                let kept = match self.allow_duplicates {
                    Some(Keep::First) => "kept the earlier input's row",
                    Some(Keep::Last) => "kept this input's row",
                    None => {
                        "kept the earlier input's row; --allow-duplicates first|last accepts this"
                    }
                };
                lines.push(format!(
                    "ringscrape merge: {name}: {} duplicate ids, also in an earlier input: {} ({kept})",
                    duplicates.count(),
                    list_ranges(duplicates.runs())
                ));
            }
        }
        if self.missing_count > 0 {
            lines.push(format!(
                "ringscrape merge: missing {} of {} ids: {}",
                self.missing_count,
                self.items.len(),
                list_ranges(self.covered.gaps())
            ));
        }
        if self.is_complete() {
            lines.push(format!(
                "ringscrape merge: complete: every id of {} has exactly one row",
                self.items
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "id,status,bytes,latency_ms,attempts,error\n";

    fn csv_of(dir: &Path, name: &str, ids: impl Iterator<Item = u64>) -> PathBuf {
        let mut text = HEAD.to_string();
        for id in ids {
            text += &format!("{id},200,2,1.000,1,\n");
        }
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write input");
        path
    }

    fn merge(dir: &Path, inputs: Vec<PathBuf>, keep: Option<Keep>) -> MergeReport {
        let out = dir.join("out.csv");
        MergeJob::new(Some("0..10"), None, &[], out, inputs, keep, true)
            .expect("valid job")
            .run()
            .expect("merged")
    }

    #[test]
    fn disjoint_slices_cover_the_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = csv_of(dir.path(), "a.csv", 0..4);
        let b = csv_of(dir.path(), "b.csv", (4..10).rev());
        let report = merge(dir.path(), vec![a, b], None);
        assert!(report.is_complete());
        assert_eq!(report.written, 10);
        let text = std::fs::read_to_string(dir.path().join("out.csv")).expect("out");
        assert_eq!(text.lines().count(), 11);
        assert!(text.starts_with(HEAD));
    }

    #[test]
    fn gaps_and_duplicates_are_named_as_ranges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = csv_of(dir.path(), "a.csv", 0..5);
        let b = csv_of(dir.path(), "b.csv", 3..6);
        let report = merge(dir.path(), vec![a, b], None);
        assert!(!report.is_complete());
        assert_eq!(report.missing_count, 4);
        let lines = report.lines(Path::new("out.csv")).join("\n");
        assert!(lines.contains("missing 4 of 10 ids: 6..10"), "{lines}");
        assert!(
            lines.contains("b.csv: 2 duplicate ids, also in an earlier input: 3..5"),
            "{lines}"
        );
        assert_eq!(report.written, 6);
    }

    #[test]
    fn allowed_duplicates_keep_the_chosen_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = csv_of(dir.path(), "a.csv", 0..10);
        let b = dir.path().join("b.csv");
        std::fs::write(&b, format!("{HEAD}3,404,0,1.000,1,\n")).expect("write");
        let report = merge(dir.path(), vec![a.clone(), b.clone()], Some(Keep::Last));
        assert!(report.is_complete(), "{:?}", report.lines(Path::new("o")));
        let text = std::fs::read_to_string(dir.path().join("out.csv")).expect("out");
        assert!(
            text.contains("3,404,") && !text.contains("3,200,"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 11);
        merge(dir.path(), vec![a, b], Some(Keep::First));
        let text = std::fs::read_to_string(dir.path().join("out.csv")).expect("out");
        assert!(
            text.contains("3,200,") && !text.contains("3,404,"),
            "{text}"
        );
    }

    #[test]
    fn another_header_or_range_and_a_torn_line_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = csv_of(dir.path(), "a.csv", 0..10);
        let other = dir.path().join("other.csv");
        std::fs::write(&other, HEAD.replace('\n', ",x-a\n")).expect("write");
        let far = csv_of(dir.path(), "far.csv", 20..21);
        let torn = dir.path().join("torn.csv");
        std::fs::write(&torn, format!("{HEAD}9,200,2,1.0")).expect("write");
        let report = merge(dir.path(), vec![a, other, far, torn], None);
        assert!(!report.is_complete());
        assert!(report.inputs[1].other_header.is_some());
        let lines = report.lines(Path::new("out.csv")).join("\n");
        assert!(
            lines.contains("other.csv: its header") && lines.contains("a.csv's"),
            "{lines}"
        );
        assert_eq!(
            (report.inputs[2].outside, report.inputs[2].first_outside),
            (1, Some(20))
        );
        assert_eq!(report.inputs[3].torn_bytes, "9,200,2,1.0".len() as u64);
        assert!(
            report.inputs[3].duplicates.is_none(),
            "the torn row is not read"
        );
    }

    #[test]
    fn refuses_to_clobber_or_to_read_its_own_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = csv_of(dir.path(), "a.csv", 0..10);
        let err = MergeJob::new(
            Some("0..10"),
            None,
            &[],
            a.clone(),
            vec![a.clone()],
            None,
            false,
        )
        .expect_err("exists");
        assert!(matches!(err, MergeError::OutExists(_)) && err.is_usage());
        let err = MergeJob::new(Some("0..10"), None, &[], a.clone(), vec![a], None, true)
            .expect_err("same file");
        assert!(matches!(err, MergeError::OutIsInput(_)));
    }

    #[test]
    fn an_out_named_as_a_kind_of_file_not_written_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = csv_of(dir.path(), "a.csv", 0..10);
        for name in ["all.tsv", "all.csv.gz", "all.json"] {
            let out = dir.path().join(name);
            let err = MergeJob::new(
                Some("0..10"),
                None,
                &[],
                out.clone(),
                vec![a.clone()],
                None,
                false,
            )
            .expect_err(name);
            assert!(
                matches!(err, MergeError::OutKind(..)) && err.is_usage(),
                "{name}: {err}"
            );
            assert!(!out.exists(), "{name}");
        }
    }
}
