//! Where rows end up: the [`writer`]'s row loop (the only place rows are written) over a row
//! format — [`csv_rows`], [`jsonl`] or [`parquet`] — the [`reader`] of every format (the only
//! place rows are read back), the [`bodies`] directory of `--bodies-dir`, the output [`lock`],
//! and [`resume`], which uses the reader to prepare an interrupted run's output for appending.

use std::path::{Path, PathBuf};

pub mod batch;
pub mod bodies;
pub mod csv_rows;
pub mod jsonl;
pub mod lock;
pub mod parquet;
pub mod reader;
pub mod resume;
pub mod writer;

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

/// The whole rows of the CSV or JSON Lines file `path`, and the bytes after the last of them
/// (a row torn by a full disk or a kill); for Parquet, the rows of its readable parts.
pub fn rows_on_disk(path: &Path, format: RowFormat) -> std::io::Result<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    if format == RowFormat::Parquet {
        return Ok((parquet::readable_rows(path)?, 0));
    }
    let mut file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let complete = reader::complete_len(&mut file, format)?;
    let torn = file.metadata()?.len() - complete;
    file.seek(SeekFrom::Start(0))?;
    let input = std::io::BufReader::new((&file).take(complete));
    let mut rows = 0;
    if let Ok(Some(mut reader)) = reader::RowReader::of_format(input, format) {
        while let Ok(Some(_)) = reader.next_row() {
            rows += 1;
        }
    }
    Ok((rows, torn))
}

/// Where rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}
