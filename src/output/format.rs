//! What rows are and where they go, as every room of `output/` and the rest of the program
//! name them: the [`RowFormat`], the [`Output`], and the directory an output file goes in.

use std::path::{Path, PathBuf};

/// How rows are written: chosen by `--format`, else by the output's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowFormat {
    /// RFC 4180 CSV with a header line.
    #[default]
    Csv,
    /// One JSON object per line, keys = the CSV's column names, typed.
    JsonLines,
    /// A directory of Parquet part files, typed columns, zstd.
    Parquet,
}

impl RowFormat {
    /// `.jsonl` / `.ndjson` → JSON Lines, `.parquet` → Parquet; anything else → CSV.
    pub fn of_path(path: &std::path::Path) -> RowFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext)
                if ext.eq_ignore_ascii_case("jsonl") || ext.eq_ignore_ascii_case("ndjson") =>
            {
                RowFormat::JsonLines
            }
            Some(ext) if ext.eq_ignore_ascii_case("parquet") => RowFormat::Parquet,
            _ => RowFormat::Csv,
        }
    }

    /// The format of rows already at `path`: a directory is Parquet's parts, a file by its
    /// extension.
    pub fn of_existing(path: &std::path::Path) -> RowFormat {
        if path.is_dir() {
            RowFormat::Parquet
        } else {
            RowFormat::of_path(path)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RowFormat::Csv => "CSV",
            RowFormat::JsonLines => "JSON Lines",
            RowFormat::Parquet => "Parquet",
        }
    }
}

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
