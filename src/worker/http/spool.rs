//! `--bodies-dir`: a body written to a file of its slot's own as it arrives, so a large one is
//! never held whole in memory. Once the answer is complete, the file is moved to the body's
//! name (`output::bodies`) before the row leaves the worker, so a row never points at a file
//! that is not whole. A later attempt (a retry, a redirect's next hop) starts the file over.
//!
//! The file is `DIR/.partial-PID-N`; it is removed when the slot ends without placing it. One
//! left by a killed worker holds an unfinished body and may be deleted.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::PathBuf;
use std::rc::Rc;

pub struct Spool {
    /// Shared with a decoder writing into it (`writer`): one descriptor for both, since every
    /// slot holds a socket and its spool file at once and open files are counted per slot.
    file: Rc<File>,
    /// `None` once the file has been moved to its body's name.
    path: Option<PathBuf>,
    /// Bytes of the body buffer already written, when the buffer is kept (for `--extract`).
    written: usize,
    /// Something was written since the file was (re)started.
    dirty: bool,
}

impl Spool {
    pub fn create(path: PathBuf) -> io::Result<Spool> {
        Ok(Spool {
            file: Rc::new(File::create(&path)?),
            path: Some(path),
            written: 0,
            dirty: false,
        })
    }

    /// Writes what `body` gained since the last call; then empties it, if `clear` (the body is
    /// not also wanted in memory).
    pub fn write_out(&mut self, body: &mut Vec<u8>, clear: bool) -> io::Result<()> {
        if body.len() > self.written {
            self.file.as_ref().write_all(&body[self.written..])?;
            self.dirty = true;
        }
        if clear {
            body.clear();
            self.written = 0;
        } else {
            self.written = body.len();
        }
        Ok(())
    }

    /// Writes body bytes that are not kept in memory.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.dirty = true;
        self.file.as_ref().write_all(bytes)
    }

    /// The file, for a decoder that writes decoded bytes as it produces them, after what came
    /// before.
    pub fn writer(&mut self) -> Rc<File> {
        self.dirty = true;
        self.file.clone()
    }

    /// Empties the file for the next answer.
    pub fn restart(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.set_len(0)?;
            self.file.as_ref().rewind()?;
            self.dirty = false;
        }
        self.written = 0;
        Ok(())
    }

    /// The file, closed, to be moved to its body's name.
    pub fn finish(mut self) -> PathBuf {
        self.path.take().expect("a spool is finished once")
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spool({:?})", self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_as_the_body_grows_starts_over_and_removes_an_unplaced_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".partial-1-0");
        let mut spool = Spool::create(path.clone()).expect("create");
        let mut body = b"first try".to_vec();
        spool.write_out(&mut body, true).expect("write");
        assert!(body.is_empty());
        spool.restart().expect("restart");
        // Kept in memory too (for --extract): only what is new is written.
        let mut body = b"abc".to_vec();
        spool.write_out(&mut body, false).expect("write");
        body.extend_from_slice(b"def");
        spool.write_out(&mut body, false).expect("write");
        assert_eq!(body, b"abcdef");
        drop(spool.file.sync_all());
        assert_eq!(std::fs::read(&path).expect("read"), b"abcdef");
        let placed = Spool::create(dir.path().join(".partial-1-1")).expect("create");
        let kept = placed.finish();
        assert!(kept.exists(), "a finished spool's file stays for its move");
        drop(spool);
        assert!(!path.exists(), "an unplaced spool's file is removed");
    }
}
