//! One writer per output: a run holds an exclusive `flock` on a lock file beside its CSV (and one
//! in its `--bodies-dir`) for as long as it runs. The kernel releases it when the process ends,
//! however it ends, so kill -9 never leaves a stale lock; a second run on the same output — a
//! `--resume` started too early, a Slurm requeue, a restarted pod — is refused before it writes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{what} {path}: in use by another ringscrape run (pid {pid}); wait for it to end or stop it"
    )]
    Held {
        what: &'static str,
        path: PathBuf,
        pid: String,
    },
    #[error("{what} {path}: cannot take its lock {lock}: {error}")]
    Io {
        what: &'static str,
        path: PathBuf,
        lock: PathBuf,
        error: io::Error,
    },
}

/// A held lock; released on drop (or by the kernel when the process ends).
pub struct OutputLock {
    _file: Flock<File>,
}

/// The lock file of the output `path`: `.NAME.lock` beside the file itself — through symbolic
/// links, so that `-o link.csv` and `-o file.csv` take one lock.
pub fn lock_path_for_file(path: &Path) -> PathBuf {
    let path = std::fs::canonicalize(path)
        .or_else(|_| {
            // Not created yet: its directory, resolved, and its name.
            let dir = std::fs::canonicalize(super::target::directory_of(path))?;
            Ok::<_, std::io::Error>(dir.join(path.file_name().unwrap_or_default()))
        })
        .unwrap_or_else(|_| path.to_path_buf());
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.lock"))
}

/// Takes the lock at `lock` for `what` `path` (`--output out.csv`), or says who holds it.
pub fn acquire(what: &'static str, path: &Path, lock: &Path) -> Result<OutputLock, LockError> {
    let io_error = |error| LockError::Io {
        what,
        path: path.to_path_buf(),
        lock: lock.to_path_buf(),
        error,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .map_err(io_error)?;
    let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(file) => file,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::Held {
                what,
                path: path.to_path_buf(),
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.to_string()
                },
            });
        }
        Err((_, errno)) => return Err(io_error(errno.into())),
    };
    // Who holds it, for the message a second run prints.
    file.set_len(0).map_err(io_error)?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    write!(file, "{}", std::process::id()).map_err(io_error)?;
    Ok(OutputLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("out.csv");
        let lock = lock_path_for_file(&csv);
        assert_eq!(
            lock.file_name().and_then(|n| n.to_str()),
            Some(".out.csv.lock")
        );
        let held = acquire("--output", &csv, &lock).expect("first");
        let err = acquire("--output", &csv, &lock)
            .err()
            .expect("second is refused");
        let pid = std::process::id().to_string();
        assert!(
            matches!(&err, LockError::Held { pid: p, .. } if *p == pid),
            "{err}"
        );
        drop(held);
        assert!(acquire("--output", &csv, &lock).is_ok(), "released on drop");
    }

    #[test]
    fn a_link_to_the_output_takes_the_outputs_own_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file.csv");
        std::fs::write(&file, "").expect("write");
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert_eq!(lock_path_for_file(&link), lock_path_for_file(&file));
        let _held = acquire("--output", &file, &lock_path_for_file(&file)).expect("first");
        assert!(acquire("--output", &link, &lock_path_for_file(&link)).is_err());
    }
}
