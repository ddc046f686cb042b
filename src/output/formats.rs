//! The row formats ringscrape writes, in one list, and the one place they are looked up: by
//! `--format`'s value, by a file's extension, by what is already on disk. A new format is its
//! room (a type implementing [`Format`]) and one line in [`FORMATS`].

use std::path::Path;

use super::arrow::Arrow;
use super::csv_rows::Csv;
use super::format::{Format, Named};
use super::jsonl::JsonLines;
use super::parquet::Parquet;

/// Every format, the default (CSV: stdout, or a name that says no format) first.
const FORMATS: &[&'static dyn Format] = &[&Csv, &JsonLines, &Parquet, &Arrow];

/// The format rows are written in when nothing says another.
pub fn default() -> &'static dyn Format {
    FORMATS[0]
}

/// `--format`'s values, in the order help lists them.
pub fn flags() -> impl Iterator<Item = &'static str> {
    FORMATS.iter().map(|format| format.flag())
}

/// The format `--format` calls `flag`.
pub fn by_flag(flag: &str) -> Option<&'static dyn Format> {
    FORMATS.iter().copied().find(|format| format.flag() == flag)
}

/// What the extension of `path` says the file holds, where it names a kind of file:
/// `out.csv` is CSV, `out.jsonl` JSON Lines, `out.tsv` tab-separated (not written),
/// `out.csv.gz` compressed (not written). `None` for a name that says nothing (`out`, `x.dat`).
pub fn named_by(path: &Path) -> Option<Named> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if let Some(format) = FORMATS
        .iter()
        .find(|format| format.extensions().contains(&ext.as_str()))
    {
        return Some(Named::Rows(*format));
    }
    Some(match ext.as_str() {
        // The random-access file format's names (Feather v2 is that format): its readers
        // (`pa.ipc.open_file`, `pl.read_ipc`) refuse a stream.
        "arrow" | "feather" | "ipc" => Named::Unwritten(
            "an Arrow IPC file (random access); ringscrape writes the Arrow IPC stream format \
             (--format arrow): name it .arrows",
        ),
        "json" => Named::Unwritten("a JSON document; ringscrape writes JSON Lines: name it .jsonl"),
        "xlsx" | "xls" | "xlsm" | "ods" => Named::Unwritten(
            "a spreadsheet; ringscrape writes CSV (which spreadsheets open): name it .csv",
        ),
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

/// The format a file named `path` is written in: as its extension says, else the default.
pub fn of_path(path: &Path) -> &'static dyn Format {
    match named_by(path) {
        Some(Named::Rows(format)) => format,
        _ => default(),
    }
}

/// The format of rows already at `path`: a file by its extension; a directory is parts, of the
/// format its name says if that one is written in parts, else of the first such format.
pub fn of_existing(path: &Path) -> &'static dyn Format {
    if !path.is_dir() {
        return of_path(path);
    }
    let named = of_path(path);
    if named.is_parts() {
        return named;
    }
    FORMATS
        .iter()
        .copied()
        .find(|format| format.is_parts())
        .unwrap_or(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_says_a_format_another_kind_of_file_or_nothing() {
        let named = |name: &str| named_by(Path::new(name));
        let rows = |flag: &str| Some(Named::Rows(by_flag(flag).expect("a format")));
        assert_eq!(named("a/b.CSV"), rows("csv"));
        assert_eq!(named("b.ndjson"), rows("jsonl"));
        assert_eq!(named("b.parquet"), rows("parquet"));
        assert_eq!(named("b.pq"), rows("parquet"));
        assert_eq!(named("b.ARROWS"), rows("arrow"));
        for other in [
            "b.arrow",
            "b.feather",
            "b.ipc",
            "b.json",
            "b.tsv",
            "b.xlsx",
            "b.csv.gz",
            "b.jsonl.zst",
        ] {
            assert!(matches!(named(other), Some(Named::Unwritten(_))), "{other}");
        }
        for nothing in ["b", "b.dat", "/dev/stdout", ".hidden"] {
            assert_eq!(named(nothing), None, "{nothing}");
        }
    }

    #[test]
    fn every_format_has_its_own_flag_and_extensions() {
        let mut flags: Vec<&str> = flags().collect();
        assert_eq!(
            flags,
            ["csv", "jsonl", "parquet", "arrow"],
            "the order help lists"
        );
        flags.dedup();
        assert_eq!(flags.len(), FORMATS.len());
        for format in FORMATS {
            assert_eq!(by_flag(format.flag()), Some(*format));
            for ext in format.extensions() {
                let name = format!("out.{ext}");
                assert_eq!(of_path(Path::new(&name)), *format, "{name}");
            }
        }
        assert_eq!(of_path(Path::new("out")), default());
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(of_existing(dir.path()).is_parts());
    }
}
