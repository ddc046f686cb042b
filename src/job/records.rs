//! Key files with named columns (`--keys`): CSV or TSV with a header row, JSON Lines of flat
//! objects, or Parquet (see `job::parquet`); and `--urls`, a text file of one URL per line read
//! as one column `url`. Records are numbered from 0 in file order; each
//! gives one value per column (absent for a JSON `null` or a missing field).
//!
//! A file is never held whole: one scan (by the supervisor) finds the columns, their kinds and
//! the number of records, and notes where every [`STRIDE`]-th record starts; a reader (in each
//! worker) seeks near the record it wants and reads on from there. A record that does not read
//! (a CSV row with another number of fields than the header, a line that is not a JSON object)
//! is still a record: its item fails as `request`, its columns empty.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::json_lines::{self, Kinds, RawObject};
use super::parquet::{self as parquet_keys, ParquetKeys};
use super::row::{KeyColumn, KeyKind};
use crate::template::Values;

/// Records between two remembered positions: a reader reads at most this many records it does
/// not want after a seek.
pub const STRIDE: u64 = 1 << 14;

/// How a key file is written, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordFormat {
    Csv,
    Tsv,
    JsonLines,
    Parquet,
    /// `--urls`: one URL per line (blank lines are no records), the column [`URL_COLUMN`].
    UrlLines,
}

/// The one column of a `--urls` file, and the placeholder it fills.
pub const URL_COLUMN: &str = "url";

impl RecordFormat {
    /// The format of `path` by its extension (a directory is Parquet parts); `-` is CSV.
    pub fn of_path(path: &Path) -> Option<RecordFormat> {
        if path.as_os_str() == "-" {
            return Some(RecordFormat::Csv);
        }
        if path.is_dir() {
            return Some(RecordFormat::Parquet);
        }
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match extension.as_str() {
            "csv" => RecordFormat::Csv,
            "tsv" | "tab" => RecordFormat::Tsv,
            "jsonl" | "ndjson" => RecordFormat::JsonLines,
            "parquet" => RecordFormat::Parquet,
            _ => return None,
        })
    }
}

/// A scanned key file: what every reader of it needs (it travels in the worker's spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFile {
    /// The file (or the directory of Parquet parts) to read.
    pub path: PathBuf,
    /// As the user named it (for messages and column clashes).
    pub shown: String,
    pub format: RecordFormat,
    pub columns: Vec<KeyColumn>,
    pub records: u64,
    /// CSV, TSV, JSON Lines: where record `k × STRIDE` starts, as (byte, line).
    pub marks: Vec<(u64, u64)>,
    /// Parquet: the parts in order, with their rows.
    pub parts: Vec<(PathBuf, u64)>,
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordFileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Csv(#[from] csv::Error),
    #[error("no header row")]
    NoHeader,
    #[error("column {0} has no name")]
    UnnamedColumn(usize),
    #[error("column `{0}` has a brace in its name: no placeholder can name it")]
    Brace(String),
    #[error("two columns are named `{0}`")]
    SameName(String),
    #[error("record {0} has a field with an empty name")]
    UnnamedField(u64),
    #[error("no records after the header")]
    NoRecords,
    #[error("no records in it")]
    Empty,
    #[error("no JSON object with a field in it")]
    NoColumns,
}

impl RecordFile {
    /// Reads `path` (in `format`) once, streaming; `shown` is how messages name it.
    pub fn scan(
        path: &Path,
        shown: &str,
        format: RecordFormat,
    ) -> Result<RecordFile, RecordFileError> {
        let mut file = match format {
            RecordFormat::Csv | RecordFormat::Tsv => scan_csv(path, format)?,
            RecordFormat::JsonLines => scan_json_lines(path)?,
            RecordFormat::UrlLines => scan_url_lines(path)?,
            RecordFormat::Parquet => {
                let scanned = parquet_keys::scan(path)?;
                for (at, column) in scanned.columns.iter().enumerate() {
                    if column.name.is_empty() {
                        return Err(RecordFileError::UnnamedColumn(at + 1));
                    }
                    if scanned.columns[..at].iter().any(|c| c.name == column.name) {
                        return Err(RecordFileError::SameName(column.name.clone()));
                    }
                }
                RecordFile {
                    columns: scanned.columns,
                    records: scanned.records,
                    parts: scanned.parts,
                    ..RecordFile::of_names(path, format, Vec::new())
                }
            }
        };
        file.shown = shown.to_string();
        for column in &mut file.columns {
            // `{a}b}` would fill `{a}`: no placeholder can name a column with a brace.
            if column.name.contains(['{', '}']) {
                return Err(RecordFileError::Brace(column.name.clone()));
            }
            column.file = shown.to_string();
        }
        if file.records == 0 {
            return Err(match format {
                RecordFormat::Csv | RecordFormat::Tsv => RecordFileError::NoRecords,
                RecordFormat::JsonLines | RecordFormat::Parquet | RecordFormat::UrlLines => {
                    RecordFileError::Empty
                }
            });
        }
        Ok(file)
    }

    /// The kinds are known: text for every column.
    fn of_names(path: &Path, format: RecordFormat, names: Vec<String>) -> RecordFile {
        RecordFile {
            path: path.to_path_buf(),
            shown: String::new(),
            format,
            columns: names
                .into_iter()
                .map(|name| KeyColumn {
                    name,
                    kind: KeyKind::Text,
                    file: String::new(),
                })
                .collect(),
            records: 0,
            marks: Vec::new(),
            parts: Vec::new(),
        }
    }
}

fn csv_reader(format: RecordFormat, file: File) -> csv::Reader<File> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        // TSV (IANA text/tab-separated-values) has no quoting: a `"` is text, and a title
        // opening with one must not swallow the lines after it.
        .quoting(format != RecordFormat::Tsv)
        .delimiter(if format == RecordFormat::Tsv {
            b'\t'
        } else {
            b','
        })
        .buffer_capacity(64 << 10)
        .from_reader(file)
}

/// The UTF-8 byte order mark Windows tools put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn scan_csv(path: &Path, format: RecordFormat) -> Result<RecordFile, RecordFileError> {
    let mut reader = csv_reader(format, File::open(path)?);
    let mut header = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut header)? {
        return Err(RecordFileError::NoHeader);
    }
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    for (at, name) in header.iter().enumerate() {
        let name = if at == 0 {
            name.strip_prefix(BOM).unwrap_or(name)
        } else {
            name
        };
        let name = String::from_utf8_lossy(name).trim().to_string();
        if name.is_empty() {
            return Err(RecordFileError::UnnamedColumn(at + 1));
        }
        if names.contains(&name) {
            return Err(RecordFileError::SameName(name));
        }
        names.push(name);
    }
    let mut file = RecordFile::of_names(path, format, names);
    let mut record = csv::ByteRecord::new();
    loop {
        let at = reader.position().clone();
        if !reader.read_byte_record(&mut record)? {
            break;
        }
        if file.records.is_multiple_of(STRIDE) {
            file.marks.push((at.byte(), at.line()));
        }
        file.records += 1;
    }
    Ok(file)
}

/// True for a line of only white space (no record).
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Reads `path` line by line and calls `each` with every record (a non-blank line, the byte
/// order mark left out) and its number (from 1), marking every [`STRIDE`]-th record's start in
/// `marks`; returns the number of records.
fn each_line_record(
    path: &Path,
    marks: &mut Vec<(u64, u64)>,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), RecordFileError>,
) -> Result<u64, RecordFileError> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let (mut line, mut byte, mut records) = (0u64, 0u64, 0u64);
    let mut text = Vec::new();
    loop {
        text.clear();
        let n = reader.read_until(b'\n', &mut text)?;
        if n == 0 {
            return Ok(records);
        }
        let (at_line, at_byte) = (line, byte);
        line += 1;
        byte += n as u64;
        let record = without_bom(at_byte, &text);
        if is_blank(record) {
            continue;
        }
        if records.is_multiple_of(STRIDE) {
            marks.push((at_byte, at_line));
        }
        records += 1;
        each(records, record)?;
    }
}

fn scan_json_lines(path: &Path) -> Result<RecordFile, RecordFileError> {
    let mut file = RecordFile::of_names(path, RecordFormat::JsonLines, Vec::new());
    let mut kinds: Vec<Kinds> = Vec::new();
    let mut scratch = Vec::new();
    let mut marks = Vec::new();
    let columns = &mut file.columns;
    file.records = each_line_record(path, &mut marks, |number, record| {
        let Some(object) = RawObject::parse(record) else {
            return Ok(());
        };
        for (name, value) in object.fields() {
            if name.is_empty() {
                return Err(RecordFileError::UnnamedField(number));
            }
            let at = match columns.iter().position(|c| c.name == name) {
                Some(at) => at,
                None => {
                    columns.push(KeyColumn {
                        name: name.to_string(),
                        kind: KeyKind::Text,
                        file: String::new(),
                    });
                    kinds.push(Kinds::default());
                    kinds.len() - 1
                }
            };
            scratch.clear();
            if let Some(seen) = json_lines::field(value, &mut scratch) {
                kinds[at].widen(seen);
            }
        }
        Ok(())
    })?;
    file.marks = marks;
    if file.columns.is_empty() && file.records > 0 {
        return Err(RecordFileError::NoColumns);
    }
    for (column, kinds) in file.columns.iter_mut().zip(kinds) {
        column.kind = kinds.kind();
    }
    Ok(file)
}

/// A `--urls` file: its non-blank lines counted, every [`STRIDE`]-th one's start marked.
fn scan_url_lines(path: &Path) -> Result<RecordFile, RecordFileError> {
    let names = vec![URL_COLUMN.to_string()];
    let mut file = RecordFile::of_names(path, RecordFormat::UrlLines, names);
    file.records = each_line_record(path, &mut file.marks, |_, _| Ok(()))?;
    Ok(file)
}

/// A line of a key file without the byte order mark a Windows tool put at the file's start
/// (`at_byte` 0); elsewhere the bytes are the line's own.
fn without_bom(at_byte: u64, line: &[u8]) -> &[u8] {
    match at_byte {
        0 => line.strip_prefix(BOM).unwrap_or(line),
        _ => line,
    }
}

/// Reads one key file's records by number: sequentially from where it is, else after a seek
/// to the nearest mark before the record. The last record read is kept, so that a product
/// whose other sources vary faster asks for it again at no cost.
pub struct RecordReader {
    file: RecordFile,
    source: Source,
    /// Number of the record the next sequential read returns.
    next: u64,
    /// The record in `values`.
    current: Option<u64>,
    values: Values,
}

enum Source {
    Csv {
        reader: csv::Reader<File>,
        record: csv::ByteRecord,
    },
    /// JSON Lines, and `--urls` files (a line each too).
    JsonLines {
        reader: BufReader<File>,
        line: Vec<u8>,
        /// Where the next line starts (a byte order mark is stripped only at 0).
        byte: u64,
    },
    Parquet(ParquetKeys),
}

impl RecordReader {
    pub fn open(file: &RecordFile) -> io::Result<RecordReader> {
        let source = match file.format {
            RecordFormat::Csv | RecordFormat::Tsv => Source::Csv {
                reader: csv_reader(file.format, File::open(&file.path)?),
                record: csv::ByteRecord::new(),
            },
            RecordFormat::JsonLines | RecordFormat::UrlLines => Source::JsonLines {
                reader: BufReader::with_capacity(64 << 10, File::open(&file.path)?),
                line: Vec::new(),
                byte: 0,
            },
            RecordFormat::Parquet => Source::Parquet(ParquetKeys::new(&file.parts)),
        };
        let mut reader = RecordReader {
            file: file.clone(),
            source,
            next: 0,
            current: None,
            values: Values::default(),
        };
        reader.seek(0)?;
        Ok(reader)
    }

    /// Record `number`'s values (one slot per column); `Ok(None)` when the file ended before it
    /// (it was changed since the scan).
    pub fn record(&mut self, number: u64) -> io::Result<Option<&Values>> {
        if self.current == Some(number) {
            return Ok(Some(&self.values));
        }
        if number < self.next || number - self.next >= STRIDE {
            self.seek(number)?;
        }
        while self.next <= number {
            self.values.clear();
            if !self.read_next()? {
                self.current = None;
                return Ok(None);
            }
            self.next += 1;
        }
        self.current = Some(number);
        Ok(Some(&self.values))
    }

    /// Positions the reader at the nearest mark at or before record `number`.
    fn seek(&mut self, number: u64) -> io::Result<()> {
        let mark = (number / STRIDE) as usize;
        let first = mark as u64 * STRIDE;
        self.current = None;
        match &mut self.source {
            Source::Csv { reader, .. } => {
                let (byte, line) = self.file.marks.get(mark).copied().unwrap_or_default();
                let mut position = csv::Position::new();
                position.set_byte(byte).set_line(line).set_record(first);
                reader.seek(position).map_err(csv_error)?;
            }
            Source::JsonLines { reader, byte, .. } => {
                let (at, _) = self.file.marks.get(mark).copied().unwrap_or_default();
                reader.seek(SeekFrom::Start(at))?;
                *byte = at;
            }
            Source::Parquet(parts) => {
                parts.seek(number)?;
                self.next = number;
                return Ok(());
            }
        }
        self.next = first;
        Ok(())
    }

    /// Reads the next record into `self.values`; false at the end of the file.
    fn read_next(&mut self) -> io::Result<bool> {
        let columns = &self.file.columns;
        let values = &mut self.values;
        match &mut self.source {
            Source::Csv { reader, record } => {
                if !reader.read_byte_record(record).map_err(csv_error)? {
                    return Ok(false);
                }
                if record.len() == columns.len() {
                    record.iter().for_each(|value| values.push(Some(value)));
                } else {
                    columns.iter().for_each(|_| values.push(None));
                    values.malformed = Some(format!(
                        "record {} of {} has {} fields, its header {}",
                        self.next,
                        self.file.shown,
                        record.len(),
                        columns.len()
                    ));
                }
                Ok(true)
            }
            Source::JsonLines { reader, line, byte } => {
                let at = loop {
                    line.clear();
                    let n = reader.read_until(b'\n', line)?;
                    if n == 0 {
                        return Ok(false);
                    }
                    let at = *byte;
                    *byte += n as u64;
                    if !is_blank(without_bom(at, line)) {
                        break at;
                    }
                };
                let record = without_bom(at, line);
                if self.file.format == RecordFormat::UrlLines {
                    values.push(Some(super::lines::trim_line_end(record)));
                    return Ok(true);
                }
                json_values(record, columns, values);
                if values.malformed.is_some() {
                    values.malformed = Some(format!(
                        "record {} of {} is not a JSON object",
                        self.next, self.file.shown
                    ));
                }
                Ok(true)
            }
            Source::Parquet(parts) => parts.next_row(columns.len(), values),
        }
    }
}

/// A JSON Lines record's values by column (see `job::json_lines` for the text of each), `null`
/// and missing fields absent.
fn json_values(line: &[u8], columns: &[KeyColumn], values: &mut Values) {
    let Some(object) = RawObject::parse(line) else {
        columns.iter().for_each(|_| values.push(None));
        values.malformed = Some(String::new());
        return;
    };
    for column in columns {
        match object.get(&column.name) {
            None => values.push(None),
            Some(value) => values.push_field(|out| json_lines::field(value, out).is_some()),
        }
    }
}

fn csv_error(error: csv::Error) -> io::Error {
    match error.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(name: &str, text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    fn texts(values: &Values) -> Vec<Option<String>> {
        (0..values.len())
            .map(|slot| {
                values
                    .get(slot)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .collect()
    }

    #[test]
    fn a_url_list_is_one_column_a_record_per_non_blank_line_read_from_anywhere() {
        let mut text = b"\xEF\xBB\xBFhttp://h/0,\"q\"\r\n\n   \n".to_vec();
        for n in 1..40_000u64 {
            text.extend_from_slice(format!("http://h/{n}?a=1&b={{x}}\n").as_bytes());
            if n % 1000 == 0 {
                text.extend_from_slice(b"\n");
            }
        }
        text.extend_from_slice(b"ftp://last");
        let (_dir, path) = file_with("list.txt", &text);
        let file = RecordFile::scan(&path, "list.txt", RecordFormat::UrlLines).expect("scan");
        assert_eq!(file.records, 40_001);
        assert_eq!(file.columns.len(), 1);
        assert_eq!(file.columns[0].name, URL_COLUMN);
        let mut reader = RecordReader::open(&file).expect("open");
        let read = |reader: &mut RecordReader, n: u64| {
            texts(reader.record(n).expect("read").expect("a record"))
        };
        // Taken as it is: quotes, commas, braces; the line end and byte order mark left out.
        assert_eq!(read(&mut reader, 0), [Some("http://h/0,\"q\"".to_string())]);
        assert_eq!(
            read(&mut reader, 39_999),
            [Some("http://h/39999?a=1&b={x}".into())]
        );
        assert_eq!(
            read(&mut reader, 17_000),
            [Some("http://h/17000?a=1&b={x}".into())]
        );
        assert_eq!(read(&mut reader, 40_000), [Some("ftp://last".into())]);
        assert!(reader.record(40_001).expect("read").is_none());
        let (_dir, blank) = file_with("blank.txt", b"\n \n");
        assert!(matches!(
            RecordFile::scan(&blank, "blank.txt", RecordFormat::UrlLines),
            Err(RecordFileError::Empty)
        ));
    }

    #[test]
    fn a_csv_reads_by_record_number_from_anywhere() {
        let mut text = b"\xEF\xBB\xBFuser,note\n".to_vec();
        for n in 0..40_000u64 {
            text.extend_from_slice(format!("u{n},\"a, \"\"quoted\"\"\nnote {n}\"\n").as_bytes());
        }
        let (_dir, path) = file_with("users.csv", &text);
        let file = RecordFile::scan(&path, "users.csv", RecordFormat::Csv).expect("scan");
        assert_eq!(file.records, 40_000);
        let names: Vec<&str> = file.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["user", "note"],
            "the byte order mark is no part of a name"
        );
        assert_eq!(file.marks.len(), 3);
        let mut reader = RecordReader::open(&file).expect("open");
        for n in [0, 1, 16_383, 16_384, 39_999, 5, 20_000, 20_001, 20_001] {
            let values = reader.record(n).expect("read").expect("a record");
            assert_eq!(
                texts(values),
                [
                    Some(format!("u{n}")),
                    Some(format!("a, \"quoted\"\nnote {n}"))
                ]
            );
        }
        assert!(reader.record(40_000).expect("read").is_none());
    }

    #[test]
    fn a_short_csv_row_is_a_malformed_record_not_an_error() {
        let (_dir, path) = file_with("k.tsv", b"a\tb\n1\t2\n3\n\n4\t5\n");
        let file = RecordFile::scan(&path, "k.tsv", RecordFormat::Tsv).expect("scan");
        assert_eq!(file.records, 3, "the empty line is no record");
        let mut reader = RecordReader::open(&file).expect("open");
        let bad = reader.record(1).expect("read").expect("a record");
        assert_eq!(texts(bad), [None, None]);
        assert!(
            bad.malformed
                .as_deref()
                .is_some_and(|m| m.contains("1 fields"))
        );
        let good = reader.record(2).expect("read").expect("a record");
        assert_eq!(texts(good), [Some("4".into()), Some("5".into())]);
        assert_eq!(good.malformed, None);
    }

    #[test]
    fn a_tsv_quote_is_text_not_quoting() {
        let (_dir, path) = file_with("k.tsv", b"a\tb\n\"27 inch\tx\ny\t\"q\"\n");
        let file = RecordFile::scan(&path, "k.tsv", RecordFormat::Tsv).expect("scan");
        assert_eq!(file.records, 2);
        let mut reader = RecordReader::open(&file).expect("open");
        let first = reader.record(0).expect("read").expect("a record");
        assert_eq!(texts(first), [Some("\"27 inch".into()), Some("x".into())]);
        let second = reader.record(1).expect("read").expect("a record");
        assert_eq!(texts(second), [Some("y".into()), Some("\"q\"".into())]);
    }

    #[test]
    fn a_byte_order_mark_is_no_part_of_the_first_json_record() {
        let (_dir, path) = file_with("k.jsonl", b"\xEF\xBB\xBF{\"a\":1}\n{\"a\":2}\n");
        let file = RecordFile::scan(&path, "k.jsonl", RecordFormat::JsonLines).expect("scan");
        assert_eq!(file.records, 2);
        assert_eq!(file.columns[0].kind, KeyKind::Integer);
        let mut reader = RecordReader::open(&file).expect("open");
        let first = reader.record(0).expect("read").expect("a record");
        assert_eq!(first.malformed, None);
        assert_eq!(texts(first), [Some("1".into())]);
        // Read again after a seek back to the start.
        reader.record(1).expect("read");
        let first = reader.record(0).expect("read").expect("a record");
        assert_eq!(texts(first), [Some("1".into())]);
    }

    #[test]
    fn json_lines_and_parquet_files_are_refused_as_csv_ones_are() {
        let (_dir, path) = file_with("e.jsonl", b"\n\n");
        let error = RecordFile::scan(&path, "e.jsonl", RecordFormat::JsonLines).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no records in it",
            "no header to speak of"
        );
        let (_dir, path) = file_with("n.jsonl", b"{\"a\":1}\n{\"\":2}\n");
        let error = RecordFile::scan(&path, "n.jsonl", RecordFormat::JsonLines).unwrap_err();
        assert_eq!(error.to_string(), "record 2 has a field with an empty name");
        let (_dir, path) = file_with("b.jsonl", b"{\"a}b\":1}\n");
        let error = RecordFile::scan(&path, "b.jsonl", RecordFormat::JsonLines).unwrap_err();
        assert!(error.to_string().starts_with("column `a}b` has a brace"));
        let (_dir, path) = file_with("n.csv", b"a,\n1,2\n");
        let error = RecordFile::scan(&path, "n.csv", RecordFormat::Csv).unwrap_err();
        assert_eq!(error.to_string(), "column 2 has no name");
    }

    #[test]
    fn json_lines_columns_are_typed_over_the_whole_file() {
        let text = br#"{"user":"ann","n":1,"x":1,"ok":true,"tags":["a"]}

{"user":"bob","n":2,"x":2.5,"ok":null,"more":"late"}
not json
{"user":7,"n":3,"x":3,"ok":false}
"#;
        let (_dir, path) = file_with("k.jsonl", text);
        let file = RecordFile::scan(&path, "k.jsonl", RecordFormat::JsonLines).expect("scan");
        assert_eq!(file.records, 4);
        let kinds: Vec<(&str, KeyKind)> = file
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("user", KeyKind::Text),
                ("n", KeyKind::Integer),
                ("x", KeyKind::Float),
                ("ok", KeyKind::Boolean),
                ("tags", KeyKind::Text),
                ("more", KeyKind::Text)
            ]
        );
        let mut reader = RecordReader::open(&file).expect("open");
        let first = reader.record(0).expect("read").expect("record");
        assert_eq!(
            texts(first),
            [
                Some("ann".into()),
                Some("1".into()),
                Some("1".into()),
                Some("true".into()),
                Some(r#"["a"]"#.into()),
                None
            ]
        );
        let second = reader.record(1).expect("read").expect("record");
        assert_eq!(texts(second)[3], None, "null is absent");
        assert_eq!(texts(second)[5], Some("late".into()));
        let bad = reader.record(2).expect("read").expect("record");
        assert!(bad.malformed.is_some());
        let last = reader.record(3).expect("read").expect("record");
        assert_eq!(texts(last)[0], Some("7".into()));
    }
}
