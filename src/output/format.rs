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
        match RowFormat::named_by(path) {
            Some(Named::Rows(format)) => format,
            _ => RowFormat::Csv,
        }
    }

    /// What the extension of `path` says the file holds, where it names a kind of file:
    /// `out.csv` is CSV, `out.jsonl` JSON Lines, `out.tsv` tab-separated (not written),
    /// `out.csv.gz` compressed (not written). `None` for a name that says nothing (`out`, `x.dat`).
    pub fn named_by(path: &Path) -> Option<Named> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => Named::Rows(RowFormat::Csv),
            "jsonl" | "ndjson" => Named::Rows(RowFormat::JsonLines),
            "parquet" | "pq" => Named::Rows(RowFormat::Parquet),
            "json" => {
                Named::Unwritten("a JSON document; ringscrape writes JSON Lines: name it .jsonl")
            }
            "tsv" | "tab" => {
                Named::Unwritten("tab-separated; ringscrape writes CSV: name it .csv (or .jsonl)")
            }
            "gz" | "gzip" | "zst" | "zstd" | "bz2" | "xz" | "lz4" | "zip" => Named::Unwritten(
                "compressed; ringscrape writes rows uncompressed (so --resume can append): drop \
                 the compression suffix (.csv, .jsonl or .parquet), and compress a finished file",
            ),
            _ => return None,
        })
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

    /// The extension a file of this format is named with.
    pub fn extension(self) -> &'static str {
        match self {
            RowFormat::Csv => "csv",
            RowFormat::JsonLines => "jsonl",
            RowFormat::Parquet => "parquet",
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

/// What an output's name says it holds ([`RowFormat::named_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// Rows of this format.
    Rows(RowFormat),
    /// A kind of file ringscrape does not write, and what to name it instead.
    Unwritten(&'static str),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_says_a_format_another_kind_of_file_or_nothing() {
        let named = |name: &str| RowFormat::named_by(Path::new(name));
        assert_eq!(named("a/b.CSV"), Some(Named::Rows(RowFormat::Csv)));
        assert_eq!(named("b.ndjson"), Some(Named::Rows(RowFormat::JsonLines)));
        assert_eq!(named("b.parquet"), Some(Named::Rows(RowFormat::Parquet)));
        assert_eq!(named("b.pq"), Some(Named::Rows(RowFormat::Parquet)));
        for other in ["b.json", "b.tsv", "b.csv.gz", "b.jsonl.zst"] {
            assert!(matches!(named(other), Some(Named::Unwritten(_))), "{other}");
        }
        for nothing in ["b", "b.dat", "/dev/stdout", ".hidden"] {
            assert_eq!(named(nothing), None, "{nothing}");
        }
    }
}
