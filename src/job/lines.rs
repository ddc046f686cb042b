//! A file of keys, one per line (`--ids-file`): one item per line, the index being the 1-based
//! line number, `{id}` the line (without its line end). Empty lines are not items.
//!
//! The file is never loaded whole: one scan counts its lines, notes which are empty, and keeps
//! the byte offset of every [`INDEX_STRIDE`]-th line, so that each shard can seek near its first
//! line and read only its own lines, without coordinating with the others.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::ids::{IdRange, IdSet};

/// Lines between two remembered offsets: a shard reads at most this many lines it does not own.
pub const INDEX_STRIDE: u64 = 1 << 16;

/// A scanned file of keys.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub path: PathBuf,
    /// Number of lines (a last line without a line end counts).
    pub lines: u64,
    /// The empty lines (no item, no row).
    pub empty: IdSet,
    /// Byte offset of line `1 + k × INDEX_STRIDE`, for each k.
    offsets: Vec<u64>,
}

impl KeyFile {
    /// Reads `path` once, streaming.
    pub fn scan(path: &Path) -> io::Result<KeyFile> {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut offsets = Vec::new();
        // One bit per line, grown as lines are read (the line count is not known up front).
        let mut empty_words: Vec<u64> = Vec::new();
        let (mut line, mut offset) = (0u64, 0u64);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            if line.is_multiple_of(INDEX_STRIDE) {
                offsets.push(offset);
            }
            line += 1;
            offset += n as u64;
            let bit = line - 1;
            if bit.is_multiple_of(64) {
                empty_words.push(0);
            }
            if key_of_line(line, &buf).is_empty()
                && let Some(word) = empty_words.last_mut()
            {
                *word |= 1 << (bit % 64);
            }
        }
        let empty = IdSet::from_words(IdRange::new(1, line + 1), &empty_words);
        Ok(KeyFile {
            path: path.to_path_buf(),
            lines: line,
            empty,
            offsets,
        })
    }

    /// The indexes of the file's items: line numbers `1..=lines`.
    pub fn range(&self) -> IdRange {
        IdRange::new(1, self.lines + 1)
    }

    /// Where a reader that wants line `line` starts: a line at or before it, and its offset.
    pub fn start_for(&self, line: u64) -> (u64, u64) {
        let k = ((line.max(1) - 1) / INDEX_STRIDE) as usize;
        let k = k.min(self.offsets.len().saturating_sub(1));
        (
            1 + k as u64 * INDEX_STRIDE,
            self.offsets.get(k).copied().unwrap_or(0),
        )
    }
}

/// The UTF-8 byte order mark Windows Notepad puts at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The key on line number `line` (from 1): the line without its end, and without a byte order
/// mark on the first line (it is no part of the key).
pub fn key_of_line(line: u64, text: &[u8]) -> &[u8] {
    let key = trim_line_end(text);
    match line {
        1 => key.strip_prefix(BOM).unwrap_or(key),
        _ => key,
    }
}

/// A line without its `\n` or `\r\n`.
pub fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Reads the lines of a file of keys in line order, from where a shard starts.
pub struct LineReader {
    reader: BufReader<File>,
    /// Number of the line the next read returns.
    next_line: u64,
}

impl LineReader {
    /// Reads `path` from byte `offset`, where line number `line` starts.
    pub fn open(path: &Path, line: u64, offset: u64) -> io::Result<LineReader> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(LineReader {
            reader: BufReader::with_capacity(64 << 10, file),
            next_line: line,
        })
    }

    /// The key on line `line` into `key` (cleared first). Lines must be asked for in
    /// increasing order. `Ok(false)`: the file ended before that line.
    pub fn key_for(&mut self, line: u64, key: &mut Vec<u8>) -> io::Result<bool> {
        key.clear();
        while self.next_line <= line {
            key.clear();
            if self.reader.read_until(b'\n', key)? == 0 {
                return Ok(false);
            }
            self.next_line += 1;
        }
        let end = trim_line_end(key).len();
        key.truncate(end);
        let bom = key.len() - key_of_line(line, key).len();
        key.drain(..bom);
        Ok(true)
    }
}

/// Copies standard input to a temporary file (streamed, never held in memory), so that `-`
/// can be scanned and read like any file of keys.
pub fn spool_stdin() -> io::Result<tempfile::NamedTempFile> {
    let mut spool = tempfile::Builder::new()
        .prefix("ringscrape-keys-")
        .tempfile()?;
    io::copy(&mut io::stdin().lock(), &mut spool)?;
    Ok(spool)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.txt");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn a_byte_order_mark_is_no_part_of_the_first_key() {
        let (_dir, path) = file_with(b"\xEF\xBB\xBFalpha\r\n\xEF\xBB\xBFbeta\n");
        let keys = KeyFile::scan(&path).expect("scan");
        let mut reader = LineReader::open(&keys.path, 1, 0).expect("open");
        let mut key = Vec::new();
        assert!(reader.key_for(1, &mut key).expect("line 1"));
        assert_eq!(key, b"alpha");
        // Only the file's start: elsewhere the bytes are the key's own.
        assert!(reader.key_for(2, &mut key).expect("line 2"));
        assert_eq!(key, b"\xEF\xBB\xBFbeta");
        let (_dir, path) = file_with(b"\xEF\xBB\xBF\nx\n");
        let keys = KeyFile::scan(&path).expect("scan");
        assert!(
            keys.empty.contains(1),
            "a first line of only a BOM is empty"
        );
    }

    #[test]
    fn scan_counts_lines_and_empty_ones() {
        let (_dir, path) = file_with(b"a\n\nb c\r\n\nlast");
        let keys = KeyFile::scan(&path).expect("scan");
        assert_eq!(keys.lines, 5);
        assert_eq!(keys.range(), IdRange::new(1, 6));
        assert!(keys.empty.contains(2) && keys.empty.contains(4) && !keys.empty.contains(1));
        assert_eq!(keys.empty.count(), 2);
    }

    #[test]
    fn empty_lines_are_found_across_word_boundaries() {
        let text: String = (1..=130u64)
            .map(|n| {
                if [1, 64, 65, 128, 130].contains(&n) {
                    "\n".to_string()
                } else {
                    format!("k{n}\n")
                }
            })
            .collect();
        let (_dir, path) = file_with(text.as_bytes());
        let keys = KeyFile::scan(&path).expect("scan");
        assert_eq!(keys.lines, 130);
        let empty: Vec<u64> = (1..=130).filter(|&n| keys.empty.contains(n)).collect();
        assert_eq!(empty, vec![1, 64, 65, 128, 130]);
    }

    #[test]
    fn a_reader_started_anywhere_returns_each_line_by_number() {
        let text: Vec<u8> = (1..=200_000u64)
            .flat_map(|n| format!("key {n}\n").into_bytes())
            .collect();
        let (_dir, path) = file_with(&text);
        let file = KeyFile::scan(&path).expect("scan");
        assert_eq!(file.lines, 200_000);
        let mut key = Vec::new();
        for first in [1, 65_536, 65_537, 150_000, 200_000] {
            let (line, offset) = file.start_for(first);
            assert!(line <= first && first - line < INDEX_STRIDE);
            let mut reader = LineReader::open(&path, line, offset).expect("open");
            assert!(reader.key_for(first, &mut key).expect("read"));
            assert_eq!(key, format!("key {first}").into_bytes());
            if first < 200_000 {
                assert!(reader.key_for(first + 1, &mut key).expect("read"));
                assert_eq!(key, format!("key {}", first + 1).into_bytes());
            }
        }
        let mut reader = LineReader::open(&path, 1, 0).expect("open");
        assert!(
            !reader.key_for(200_001, &mut key).expect("read"),
            "past the end"
        );
    }
}
