//! What an output was written from, kept beside it as `.NAME.job.json` (JSON, versioned), so
//! that `--resume` refuses to append rows of another job to it. Today the record names the key
//! files (`--ids-file`, `--keys`): each one's size, record count and a SHA-256 of its first
//! [`HEAD_BYTES`] — a key file changed between a run and its resume (a line inserted) would
//! otherwise shift every index, fetching some items twice and others never. The record is a
//! struct of optional parts so that it can grow to the whole job (flags, URL) without a new file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bytes at the start of a key file that its identity hashes (with its size and record count,
/// enough to tell an edited file from the same one without reading all of it again).
pub const HEAD_BYTES: u64 = 1 << 20;

/// The version this build writes; a record of another version is not compared.
const VERSION: u32 = 1;

/// What a run's output was written from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub version: u32,
    /// The key files, in the order the job reads them.
    pub key_files: Vec<KeyFileIdentity>,
}

/// One key file as it was when the run scanned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFileIdentity {
    /// `--ids-file` or `--keys`.
    pub flag: String,
    /// As the user named it (for messages; a moved file is the same file).
    pub shown: String,
    pub bytes: u64,
    pub records: u64,
    /// SHA-256 of the first [`HEAD_BYTES`] of the file (of its parts, in order), in hex.
    pub head_sha256: String,
}

impl KeyFileIdentity {
    /// The identity of the key file made of `files` (one, or Parquet parts in order).
    pub fn of(flag: &str, shown: &str, files: &[PathBuf], records: u64) -> io::Result<Self> {
        let mut bytes = 0;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut head = Vec::new();
        for file in files {
            bytes += std::fs::metadata(file)?.len();
            let want = HEAD_BYTES.saturating_sub(head.len() as u64);
            if want > 0 {
                File::open(file)?.take(want).read_to_end(&mut head)?;
            }
        }
        digest.update(&head);
        let head_sha256 = digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(KeyFileIdentity {
            flag: flag.to_string(),
            shown: shown.to_string(),
            bytes,
            records,
            head_sha256,
        })
    }

    /// The same file's content (wherever it is now).
    fn same_as(&self, other: &KeyFileIdentity) -> bool {
        (&self.flag, self.bytes, self.records, &self.head_sha256)
            == (&other.flag, other.bytes, other.records, &other.head_sha256)
    }
}

impl JobRecord {
    pub fn new(key_files: Vec<KeyFileIdentity>) -> JobRecord {
        JobRecord {
            version: VERSION,
            key_files,
        }
    }

    /// Why rows of `self`'s job must not be appended to an output written for `kept`; `None`
    /// when they may.
    pub fn differs_from(&self, kept: &JobRecord) -> Option<String> {
        if kept.version != self.version {
            return None;
        }
        if kept.key_files.len() != self.key_files.len() {
            return Some(format!(
                "it was written from {} key files, this run reads {}",
                kept.key_files.len(),
                self.key_files.len()
            ));
        }
        let (was, now) = kept
            .key_files
            .iter()
            .zip(&self.key_files)
            .find(|(was, now)| !was.same_as(now))?;
        Some(format!(
            "{} {} is not the file it was written from ({} records, {} bytes then; {} records, {} bytes now{})",
            now.flag,
            now.shown,
            was.records,
            was.bytes,
            now.records,
            now.bytes,
            if (was.records, was.bytes) == (now.records, now.bytes) {
                ", other content"
            } else {
                ""
            }
        ))
    }
}

/// Where the record of the output `path` is kept: beside it, by its lock.
pub fn path_for(path: &Path) -> PathBuf {
    let lock = super::lock::lock_path_for_file(path);
    let name = lock.file_name().map_or_else(String::new, |n| {
        n.to_string_lossy().trim_end_matches(".lock").to_string()
    });
    lock.with_file_name(format!("{name}.job.json"))
}

/// The record kept beside the output `path`; `None` when there is none (an output of an older
/// version) or it does not parse.
pub fn read(path: &Path) -> Option<JobRecord> {
    let text = std::fs::read(path_for(path)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Keeps `record` beside the output `path` (written aside and renamed: never half a record).
pub fn write(path: &Path, record: &JobRecord) -> io::Result<()> {
    let target = path_for(path);
    let dir = super::format::directory_of(&target);
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut file, record)?;
    file.write_all(b"\n")?;
    file.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_key_file_differs_and_the_same_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys.txt");
        std::fs::write(&keys, "ant\nbee\ncat\n").expect("write");
        let first = KeyFileIdentity::of("--ids-file", "keys.txt", std::slice::from_ref(&keys), 3)
            .expect("id");
        let kept = JobRecord::new(vec![first.clone()]);
        let out = dir.path().join("out.csv");
        write(&out, &kept).expect("write record");
        assert_eq!(read(&out), Some(kept.clone()));
        assert!(path_for(&out).ends_with(".out.csv.job.json"));
        let moved = KeyFileIdentity {
            shown: "elsewhere.txt".into(),
            ..first
        };
        assert_eq!(JobRecord::new(vec![moved]).differs_from(&kept), None);
        std::fs::write(&keys, "ant\nbee\nzed\ncat\n").expect("write");
        let now = KeyFileIdentity::of("--ids-file", "keys.txt", std::slice::from_ref(&keys), 4)
            .expect("id");
        let why = JobRecord::new(vec![now])
            .differs_from(&kept)
            .expect("differs");
        assert!(why.contains("--ids-file keys.txt is not the file"), "{why}");
        assert!(
            why.contains("3 records, 12 bytes then; 4 records, 16 bytes now"),
            "{why}"
        );
        std::fs::write(&keys, "ant\nbee\ncow\n").expect("write");
        let same_size = KeyFileIdentity::of("--ids-file", "keys.txt", &[keys], 3).expect("id");
        let why = JobRecord::new(vec![same_size])
            .differs_from(&kept)
            .expect("differs");
        assert!(why.ends_with("other content)"), "{why}");
        assert!(JobRecord::new(Vec::new()).differs_from(&kept).is_some());
    }
}
