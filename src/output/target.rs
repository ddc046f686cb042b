//! Where rows go — stdout or a file (or a directory of parts) — and the directory an output
//! file goes in.

use std::path::{Path, PathBuf};

/// The directory a file named `path` goes in (`.` for a bare file name).
pub fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Where rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

impl Output {
    /// The output as a message names it: its path, or `-` for stdout.
    pub fn path(&self) -> PathBuf {
        match self {
            Output::File(path) => path.clone(),
            Output::Stdout => PathBuf::from("-"),
        }
    }
}
