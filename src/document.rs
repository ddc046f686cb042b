//! The files a run writes besides its rows (`--report`, `--summary-json`): checked when the run
//! starts — each can be written, and none is a file the run reads or writes rows to — and written
//! when it ends. A regular file (or none yet) is written beside itself and renamed into place, so
//! no reader sees half of one; anything else (a symlink, `/dev/stdout`, a device, a FIFO) is
//! written through, so a node stays a node and a link stays a link.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::output::directory_of;

/// Why a document's path cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum Unwritable {
    #[error("is a directory; give a file")]
    Directory,
    #[error("cannot write in {0}: {1}")]
    Dir(PathBuf, io::Error),
    #[error("cannot write it: {0}")]
    Node(io::Error),
}

/// Checks, touching nothing the user owns, that [`write`] will be able to write `path`: a
/// regular file (or none yet) needs a directory that takes a new file (a probe file is made and
/// removed: permissions alone do not say, `/proc` refuses even root); anything else must open
/// for writing.
pub fn check_writable(path: &Path) -> Result<(), Unwritable> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(Unwritable::Directory),
        Ok(meta) if meta.is_file() => probe_dir(path),
        Ok(_) => match fs::metadata(path) {
            Ok(target) if target.is_dir() => Err(Unwritable::Directory),
            // Opening a FIFO waits for its reader, who may come only when the run ends.
            Ok(target) if target.file_type().is_fifo() => Ok(()),
            // Opened without truncating: the check changes nothing.
            Ok(_) => OpenOptions::new()
                .write(true)
                .open(path)
                .map(drop)
                .map_err(Unwritable::Node),
            // A dangling link: written through at the end, creating what it points at.
            Err(_) => Ok(()),
        },
        Err(_) => probe_dir(path),
    }
}

fn probe_dir(path: &Path) -> Result<(), Unwritable> {
    let dir = directory_of(path);
    tempfile::Builder::new()
        .prefix(".ringscrape-probe")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| Unwritable::Dir(dir.to_path_buf(), e))
}

/// Writes `bytes` as the whole of `path`: a regular file (or none yet) beside it first and then
/// renamed onto it; anything else opened and written through (as `curl -o` does).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let regular_or_none = fs::symlink_metadata(path).map_or(true, |m| m.is_file());
    if !regular_or_none {
        let mut through = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        return through.write_all(bytes);
    }
    let name = path
        .file_name()
        .map_or_else(|| "document".into(), |n| n.to_string_lossy().into_owned());
    let aside = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&aside, bytes)?;
    fs::rename(&aside, path).inspect_err(|_| {
        let _ = fs::remove_file(&aside);
    })
}

/// A file of the run that is another of its files.
#[derive(Debug, thiserror::Error)]
pub enum Clash {
    #[error("--{0} {1}: is the --{2} file too; give each its own file")]
    SameFile(&'static str, PathBuf, &'static str),
    #[error("--{0} {1}: is inside the --output directory of Parquet parts; put it elsewhere")]
    InPartsDir(&'static str, PathBuf),
}

/// The files of a run, each with the flag that names it.
pub struct RunFiles<'a> {
    /// `-o` (`None`: standard output).
    pub rows: Option<&'a Path>,
    /// The rows are a directory of Parquet parts.
    pub rows_are_parts: bool,
    /// Files the run reads: `--keys`, `--ids-file`.
    pub inputs: Vec<(&'static str, &'a Path)>,
    /// Files written when the run ends: `--summary-json`, `--report`.
    pub documents: Vec<(&'static str, &'a Path)>,
}

/// Each file of the run is its own: the rows do not go into a file the run reads
/// (`--overwrite` would empty it before it is read, as `cp a a` is refused), and a document
/// replaces neither the rows, nor an input, nor the other document.
pub fn check_apart(files: &RunFiles) -> Result<(), Clash> {
    if let Some(rows) = files.rows
        && let Some((flag, _)) = files
            .inputs
            .iter()
            .find(|(_, input)| same_file(rows, input))
    {
        return Err(Clash::SameFile("output", rows.to_path_buf(), flag));
    }
    // Rows on standard output clash with a document written to the same pipe or file.
    let rows = files.rows.unwrap_or(Path::new("/dev/stdout"));
    for (i, &(flag, path)) in files.documents.iter().enumerate() {
        let others = std::iter::once(("output", rows))
            .chain(files.inputs.iter().copied())
            .chain(files.documents[..i].iter().copied());
        for (other, other_path) in others {
            if same_file(path, other_path) {
                return Err(Clash::SameFile(flag, path.to_path_buf(), other));
            }
        }
        if files.rows_are_parts && same_file(directory_of(path), rows) {
            return Err(Clash::InPartsDir(flag, path.to_path_buf()));
        }
    }
    Ok(())
}

/// Whether writing `a` would overwrite `b` (or the other way round): one inode when both exist,
/// however spelt (`./x`, a hard link, `/dev/stdout` for the file stdout is), else one name in one
/// directory. A character device (a terminal, `/dev/null`) takes any number of writers and is
/// never counted.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => {
            x.dev() == y.dev() && x.ino() == y.ino() && !x.file_type().is_char_device()
        }
        (Err(_), Err(_)) => absolute(a).is_some_and(|a| Some(a) == absolute(b)),
        _ => false,
    }
}

/// `path` with its directory made absolute and free of links (its own name kept as given).
fn absolute(path: &Path) -> Option<PathBuf> {
    let dir = fs::canonicalize(directory_of(path)).ok()?;
    Some(dir.join(path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_regular_file_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.html");
        fs::write(&path, "old old old").expect("write");
        write(&path, b"new").expect("write the document");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        assert_eq!(
            fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no file left aside"
        );
    }

    #[test]
    fn a_symlink_stays_a_link_and_its_target_gets_the_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target.html");
        let link = dir.path().join("link.html");
        fs::write(&target, "old").expect("write");
        symlink(&target, &link).expect("symlink");
        write(&link, b"new").expect("write the document");
        assert!(fs::symlink_metadata(&link).expect("link").is_symlink());
        assert_eq!(fs::read(&target).expect("read"), b"new");
    }

    #[test]
    fn a_directory_or_an_unwritable_place_is_found_before_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            check_writable(dir.path()),
            Err(Unwritable::Directory)
        ));
        assert!(check_writable(Path::new("/proc/x.html")).is_err());
        assert!(check_writable(&dir.path().join("no/such/dir/r.html")).is_err());
        assert!(check_writable(&dir.path().join("r.html")).is_ok());
        assert!(check_writable(Path::new("/dev/null")).is_ok());
        assert_eq!(
            fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "no probe left"
        );
    }

    #[test]
    fn no_file_of_a_run_is_another() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        fs::write(d.join("keys.csv"), "k\n1\n").expect("write");
        fs::create_dir(d.join("out.parquet")).expect("mkdir");
        let (keys, report) = (d.join("keys.csv"), d.join("r.html"));
        let (parts, inside) = (d.join("out.parquet"), d.join("out.parquet/r.html"));
        fn files<'a>(
            rows: &'a Path,
            keys: &'a Path,
            documents: Vec<(&'static str, &'a Path)>,
        ) -> RunFiles<'a> {
            RunFiles {
                rows: Some(rows),
                rows_are_parts: rows.extension().is_some_and(|e| e == "parquet"),
                inputs: vec![("keys", keys)],
                documents,
            }
        }
        let apart = |f: &RunFiles| check_apart(f).map_err(|e| e.to_string());
        assert!(apart(&files(&d.join("out.csv"), &keys, vec![("report", &report)])).is_ok());
        let err = apart(&files(&keys, &keys, vec![])).expect_err("rows into the key file");
        assert!(
            err.ends_with("is the --keys file too; give each its own file"),
            "{err}"
        );
        let err = apart(&files(&parts, &keys, vec![("report", &inside)])).expect_err("inside");
        assert!(err.contains("inside the --output directory"), "{err}");
        let two = vec![
            ("summary-json", report.as_path()),
            ("report", report.as_path()),
        ];
        let err = apart(&files(&d.join("out.csv"), &keys, two)).expect_err("one path for both");
        assert!(
            err.contains("--report") && err.contains("--summary-json file too"),
            "{err}"
        );
    }

    #[test]
    fn one_file_is_one_file_however_spelt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.csv");
        assert!(same_file(&a, &dir.path().join(".").join("a.csv")));
        fs::write(&a, "x").expect("write");
        let link = dir.path().join("b.csv");
        symlink(&a, &link).expect("symlink");
        assert!(same_file(&a, &link));
        assert!(!same_file(&a, &dir.path().join("c.csv")));
        assert!(!same_file(Path::new("/dev/null"), Path::new("/dev/null")));
    }
}
