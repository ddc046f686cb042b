//! `--bodies-dir DIR`: each kept body in its own file, `DIR/ab/cd/NAME`. The two directory levels
//! come from a SHA-256 of the key, so 50 million files spread over 65,536 directories of about
//! 760 each. NAME is the key itself when it is short and plain (`[A-Za-z0-9_-]`, then also `.`),
//! else the key percent-encoded (every other byte as `%XX`), else — beyond 200 bytes — `=` and
//! the hex SHA-256. Keys come from users' files and may be hostile: no key (`../../x`, `/etc/x`,
//! a NUL, 4,000 bytes) can name a path outside DIR, and distinct keys get distinct names.
//!
//! A body is written, as it arrives, to a file of the slot's own (`worker::http::spool`), and that file
//! is moved to the body's name before its record leaves the worker, so a row never points at a
//! file that is not complete; a file without a row (the run was killed in between) is written
//! again when `--resume` fetches its key.
//!
//! Keys from a file may repeat. Each row still gets its own file: the first body of a key takes
//! NAME (by a hard link, which fails when NAME exists, so two workers cannot both take it), and a
//! later one — another line with the same key, or the same line fetched again by `--resume` —
//! takes `NAME~L<line>`.
//!
//! With `--next`, every page of an item is a row of its own with a body of its own: page 0 takes
//! the name above, page P > 0 takes `NAME~P<P>` (before, every page wrote `NAME`, and only the
//! last page's body survived, every row pointing at it).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

/// Longest file name made from a key before hashing takes over (file systems allow 255 bytes).
const MAX_NAME_BYTES: usize = 200;

/// The path of `key`'s body relative to the bodies directory.
pub fn relative_path(key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key);
    let d = digest.as_ref();
    format!("{:02x}/{:02x}/{}", d[0], d[1], file_name(key, d))
}

fn file_name(key: &[u8], digest: &[u8]) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    // A leading dot would allow `.` and `..`; so would an empty name.
    if !key.is_empty()
        && key.len() <= MAX_NAME_BYTES
        && plain(key[0])
        && key.iter().all(|&b| plain(b) || b == b'.')
    {
        return String::from_utf8_lossy(key).into_owned();
    }
    let mut name = String::with_capacity(key.len() * 3);
    for &b in key {
        if plain(b) {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if !name.is_empty() && name.len() <= MAX_NAME_BYTES {
        return name;
    }
    // `=` never appears in the other two forms, so a hashed name can't collide with them.
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("={hex}")
}

/// Creates `dir` if needed and checks that a file can be written in it.
pub fn check_writable(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".ringscrape-probe");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Places bodies under one directory, creating its subdirectories as they are first needed.
pub struct BodiesDir {
    root: PathBuf,
    made: HashSet<[u8; 5]>,
    /// Keys come from a file and may repeat: a taken name is not overwritten.
    keys_repeat: bool,
    /// Spool files handed out so far (they are numbered).
    spools: u64,
}

impl BodiesDir {
    pub fn new(root: PathBuf, keys_repeat: bool) -> Self {
        Self {
            root,
            made: HashSet::new(),
            keys_repeat,
            spools: 0,
        }
    }

    /// A new name for a slot's spool file: `.partial-PID-N` in the root, never a key's name
    /// (those are in the `ab/cd/` subdirectories).
    pub fn spool_path(&mut self) -> PathBuf {
        self.spools += 1;
        let name = format!(".partial-{}-{}", std::process::id(), self.spools);
        self.root.join(name)
    }

    /// Moves the complete body in `file` (in the root) to the name of `key` (item `index`: its
    /// line, for keys from a file; `page`: its page, with `--next`); returns its relative path.
    pub fn place(&mut self, file: &Path, key: &[u8], index: u64, page: u32) -> io::Result<String> {
        let mut relative = relative_path(key);
        if page > 0 {
            // `~` is never in a name made from a key (it is percent-encoded there).
            relative = format!("{relative}~P{page}");
        }
        let path = self.root.join(&relative);
        let subdir: [u8; 5] = relative.as_bytes()[..5].try_into().expect("ab/cd prefix");
        if !self.made.contains(&subdir) {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            self.made.insert(subdir);
        }
        if !self.keys_repeat {
            std::fs::rename(file, &path)?;
            return Ok(relative);
        }
        match std::fs::hard_link(file, &path) {
            Ok(()) => std::fs::remove_file(file)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // `~` is never in a name made from a key (it is percent-encoded there).
                relative = format!("{relative}~L{index}");
                std::fs::rename(file, self.root.join(&relative))?;
            }
            Err(e) => return Err(e),
        }
        Ok(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_keep_their_name_and_hostile_ones_stay_inside() {
        let path = relative_path(b"12345");
        assert!(
            path.ends_with("/12345") && path.len() == "ab/cd/12345".len(),
            "{path}"
        );
        for hostile in [
            &b"../../x"[..],
            b"/etc/passwd",
            b"a\0b",
            b"..",
            b".",
            b"",
            b"a/../../b",
            &[b'x'; 4000][..],
            "é/\\".as_bytes(),
        ] {
            let path = relative_path(hostile);
            let parts: Vec<&str> = path.split('/').collect();
            assert_eq!(parts.len(), 3, "{path}");
            let name = parts[2];
            assert!(
                !name.is_empty() && name != "." && name != ".." && name.len() <= 255,
                "{path}"
            );
            assert!(!name.contains('\0') && !name.contains('\\'), "{path}");
        }
    }

    #[test]
    fn distinct_keys_get_distinct_names() {
        let keys: [&[u8]; 6] = [
            b"a.b",
            b"a%2Eb",
            b"a b",
            b"a%20b",
            &[b'y'; 300],
            &[b'y'; 301],
        ];
        let paths: HashSet<String> = keys.iter().map(|k| relative_path(k)).collect();
        assert_eq!(paths.len(), keys.len());
    }

    #[test]
    fn writes_files_under_the_root_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        check_writable(dir.path()).expect("writable");
        let mut bodies = BodiesDir::new(dir.path().to_path_buf(), false);
        let relative = write(&mut bodies, b"../../escape", 0, b"hello");
        assert_eq!(
            std::fs::read(dir.path().join(&relative)).expect("read"),
            b"hello"
        );
        assert!(!dir.path().join("../../escape").exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(
            left.len(),
            1,
            "only the ab/ directory: the spool file moved"
        );
    }

    /// A body as a slot leaves it: in a spool file, then placed.
    fn write(bodies: &mut BodiesDir, key: &[u8], index: u64, body: &[u8]) -> String {
        let spool = bodies.spool_path();
        std::fs::write(&spool, body).expect("write the spool file");
        bodies.place(&spool, key, index, 0).expect("place")
    }

    #[test]
    fn each_page_of_an_item_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        for keys_repeat in [false, true] {
            let mut bodies = BodiesDir::new(dir.path().join(keys_repeat.to_string()), keys_repeat);
            let paths: Vec<String> = (0..3)
                .map(|page| {
                    let spool = bodies.spool_path();
                    std::fs::create_dir_all(spool.parent().expect("in the root")).expect("root");
                    std::fs::write(&spool, format!("page {page}")).expect("write");
                    bodies.place(&spool, b"k", 5, page).expect("place")
                })
                .collect();
            let read = |p: &str| std::fs::read_to_string(bodies.root.join(p)).expect("read");
            let bodies: Vec<String> = paths.iter().map(|p| read(p)).collect();
            assert_eq!(bodies, ["page 0", "page 1", "page 2"], "{paths:?}");
            assert!(paths[1].ends_with("/k~P1"), "{paths:?}");
        }
    }

    #[test]
    fn a_repeated_key_from_a_file_gets_a_file_per_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bodies = BodiesDir::new(dir.path().to_path_buf(), true);
        let first = write(&mut bodies, b"k", 3, b"one");
        let second = write(&mut bodies, b"k", 9, b"two");
        let again = write(&mut bodies, b"k", 9, b"three");
        assert_eq!(second, format!("{first}~L9"));
        assert_eq!(again, second, "the same line again replaces its own file");
        let read = |p: &str| std::fs::read(dir.path().join(p)).expect("read");
        assert_eq!(
            (read(&first), read(&second)),
            (b"one".to_vec(), b"three".to_vec())
        );
    }
}
