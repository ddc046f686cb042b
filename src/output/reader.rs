//! Reading ringscrape's rows back, whatever the format: `--resume`, the tests and `merge` all go
//! through [`RowReader`] (each format's own reader behind one type) and write what they keep
//! through [`RowCopier`]. The columns must start with the fixed ones; columns after them
//! (captured headers, extracted fields, bodies, line numbers) are allowed and reached by name.
//! Also here: where a stream format's whole rows end (a torn last row is cut there).

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::csv_rows::CsvReader;
use super::format::RowFormat;
use super::jsonl::JsonlReader;
use super::parquet::{self, ParquetCopy, PartWriter, PartsReader};
pub use super::rows::{RawFields, RawRow, ReadError, ReadRows, Row};

/// Streams the rows of a file whose columns have been checked: a CSV (columns from its header),
/// JSON Lines (from the keys of its first object) or Parquet parts.
pub enum RowReader<R> {
    Csv(CsvReader<R>),
    JsonLines(JsonlReader<R>),
    Parquet(PartsReader),
}

impl<R: Read> RowReader<R> {
    /// Reads and checks a CSV's header.
    pub fn new(input: R) -> Result<Self, ReadError> {
        CsvReader::new(input).map(RowReader::Csv)
    }
}

impl<R: BufRead> RowReader<R> {
    /// Every column name, the fixed ones first.
    pub fn columns(&self) -> &[String] {
        match self {
            RowReader::Csv(reader) => reader.columns(),
            RowReader::JsonLines(reader) => reader.columns(),
            RowReader::Parquet(reader) => reader.columns(),
        }
    }

    /// Position of the column `name`, if the file has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c == name)
    }

    /// A reader of `format`: JSON Lines learns its columns from the first object (`None` when
    /// there is none).
    pub fn of_format(input: R, format: RowFormat) -> Result<Option<Self>, ReadError> {
        match format {
            RowFormat::Csv => Self::new(input).map(Some),
            RowFormat::JsonLines => Ok(JsonlReader::open(input)?.map(RowReader::JsonLines)),
            RowFormat::Parquet => Err(ReadError::Row {
                line: 0,
                message: "Parquet is read from its directory, not a stream".into(),
            }),
        }
    }

    /// The next row; `None` at the end. A row with other columns than the file's is an error.
    pub fn next_row(&mut self) -> Result<Option<RawRow<'_>>, ReadError> {
        match self {
            RowReader::Csv(reader) => reader.next_row(),
            RowReader::JsonLines(reader) => reader.next_row(),
            RowReader::Parquet(reader) => reader.next_row(),
        }
    }
}

impl RowReader<io::Empty> {
    /// The rows of Parquet `parts`, one after the other (their columns must agree); `None` when
    /// there is no part. A row's `line` is its number across the parts, from 1.
    pub fn parquet(parts: Vec<PathBuf>) -> Result<Option<Self>, ReadError> {
        Ok(PartsReader::open(parts)?.map(RowReader::Parquet))
    }
}

/// Writes rows read by a [`RowReader`] as they were, in the same format (resume's rewrite, merge).
pub enum RowCopier<W: Write> {
    Csv(Box<csv::Writer<W>>),
    JsonLines(W),
    Parquet(Box<ParquetCopy>),
}

impl RowCopier<io::Sink> {
    /// Rows copied into the parts `parts` writes.
    pub fn parquet(parts: PartWriter) -> Self {
        RowCopier::Parquet(Box::new(ParquetCopy::new(parts)))
    }
}

impl<W: Write> RowCopier<W> {
    /// A copier of a stream format (CSV, JSON Lines).
    pub fn new(out: W, format: RowFormat) -> Self {
        match format {
            RowFormat::JsonLines => RowCopier::JsonLines(out),
            RowFormat::Csv | RowFormat::Parquet => {
                RowCopier::Csv(Box::new(csv::Writer::from_writer(out)))
            }
        }
    }

    /// The header line (CSV only: JSON Lines names its columns in every row).
    pub fn header(&mut self, columns: &[String]) -> io::Result<()> {
        match self {
            RowCopier::Csv(csv) => csv.write_record(columns).map_err(io::Error::from),
            RowCopier::JsonLines(_) | RowCopier::Parquet(_) => Ok(()),
        }
    }

    pub fn copy(&mut self, row: &RawRow<'_>) -> io::Result<()> {
        match (self, &row.fields) {
            (RowCopier::Csv(csv), RawFields::Csv(record)) => {
                csv.write_byte_record(record).map_err(io::Error::from)
            }
            (RowCopier::JsonLines(out), RawFields::Json { text, .. }) => {
                out.write_all(text)?;
                out.write_all(b"\n")
            }
            (RowCopier::Parquet(copy), RawFields::Parquet { batch, seq, row }) => {
                copy.copy(batch, *seq, *row)
            }
            _ => Err(io::Error::other("a row copied into another format")),
        }
    }

    /// Flushes and hands back the writer (`None` for Parquet: its last part is closed in place).
    pub fn into_inner(self) -> io::Result<Option<W>> {
        match self {
            RowCopier::Csv(csv) => csv.into_inner().map(Some).map_err(|e| e.into_error()),
            RowCopier::JsonLines(mut out) => {
                out.flush()?;
                Ok(Some(out))
            }
            RowCopier::Parquet(copy) => {
                copy.finish()?;
                Ok(None)
            }
        }
    }
}

/// Length of the file up to the end of its last whole row: anything after it is a torn row (the
/// writer was killed mid-row, or the disk filled), which `--resume` cuts off and `merge` leaves
/// out. For JSON Lines that is the last newline (a JSON string holds no raw line break). For CSV
/// it is the last newline *outside quotes*: a body with line breaks is one quoted field over
/// several lines, and a row torn inside it must not be cut at one of its own line breaks. The
/// quote state is found by one pass from the start (a quote toggles it; an escaped `""` toggles
/// it twice; an unquoted field never holds a quote, as the writer quotes any field that does).
pub fn complete_len(file: &mut File, format: RowFormat) -> io::Result<u64> {
    // Only what the file holds now: a device (`-o /dev/full`) would read without end.
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut input = (&*file).take(len);
    let mut buf = vec![0u8; 256 << 10];
    let (mut at, mut complete, mut quoted) = (0u64, 0u64, false);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(complete);
        }
        for (offset, &byte) in buf[..n].iter().enumerate() {
            match byte {
                b'"' if format == RowFormat::Csv => quoted = !quoted,
                b'\n' if !quoted => complete = at + offset as u64 + 1,
                _ => {}
            }
        }
        at += n as u64;
    }
}

/// The whole rows of the CSV or JSON Lines file `path`, and the bytes after the last of them
/// (a row torn by a full disk or a kill); for Parquet, the rows of its readable parts.
pub fn rows_on_disk(path: &std::path::Path, format: RowFormat) -> std::io::Result<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    if format == RowFormat::Parquet {
        return Ok((parquet::readable_rows(path)?, 0));
    }
    let mut file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let complete = complete_len(&mut file, format)?;
    let torn = file.metadata()?.len() - complete;
    file.seek(SeekFrom::Start(0))?;
    let input = std::io::BufReader::new((&file).take(complete));
    let mut rows = 0;
    if let Ok(Some(mut reader)) = RowReader::of_format(input, format) {
        while let Ok(Some(_)) = reader.next_row() {
            rows += 1;
        }
    }
    Ok((rows, torn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorKind;

    const HEAD: &str = "id,status,bytes,latency_ms,attempts,error";

    #[test]
    fn reads_typed_rows_with_extra_columns() {
        let text =
            format!("{HEAD},x-a,body\n7,200,3,1.500,1,,v,\"a,\nb\"\n8,,0,30000.000,3,timeout,,\n");
        let mut reader = RowReader::new(text.as_bytes()).expect("header");
        assert_eq!(reader.column("body"), Some(7));
        let first = reader.next_row().expect("ok").expect("row");
        assert!(first.succeeded());
        assert_eq!(first.id_number(), Ok(7));
        let row = first.typed().expect("typed");
        assert_eq!(row.extra, vec!["v".to_string(), "a,\nb".to_string()]);
        let second = reader.next_row().expect("ok").expect("row");
        assert_eq!(second.line, 4, "the quoted newline counts as a line");
        let row = second.typed().expect("typed");
        assert_eq!((row.status, row.error), (None, Some(ErrorKind::Timeout)));
        assert!(!second.succeeded());
        assert!(reader.next_row().expect("ok").is_none());
    }

    #[test]
    fn a_row_torn_inside_a_multi_line_body_is_cut_at_the_row_before_it() {
        let whole = format!("{HEAD},body\n1,200,3,1.0,1,,\"{{\n  \"\"a\"\": 1\n}}\"\n");
        let torn = format!("{whole}2,200,3,1.0,1,,\"{{\n  \"\"a\"\": 2,\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        for (text, want) in [(&whole, whole.len()), (&torn, whole.len())] {
            std::fs::write(&path, text).expect("write");
            let mut file = File::open(&path).expect("open");
            assert_eq!(
                complete_len(&mut file, RowFormat::Csv).expect("scan"),
                want as u64
            );
        }
        // Cut anywhere, the kept part parses into whole rows with every field.
        for cut in 0..=torn.len() {
            std::fs::write(&path, &torn.as_bytes()[..cut]).expect("write");
            let mut file = File::open(&path).expect("open");
            let keep = complete_len(&mut file, RowFormat::Csv).expect("scan") as usize;
            let kept = &torn.as_bytes()[..keep];
            if keep == 0 {
                continue;
            }
            let mut reader = RowReader::new(kept).expect("header");
            while let Some(row) = reader.next_row().expect("a whole row") {
                row.typed().expect("every field");
            }
        }
        // JSON Lines: the last newline.
        std::fs::write(&path, "{\"id\":1}\n{\"id\":").expect("write");
        let mut file = File::open(&path).expect("open");
        assert_eq!(
            complete_len(&mut file, RowFormat::JsonLines).expect("scan"),
            9
        );
    }

    #[test]
    fn refuses_another_header_and_names_the_line_of_a_bad_row() {
        assert!(matches!(
            RowReader::new("a,b,c\n".as_bytes()),
            Err(ReadError::Header(_))
        ));
        assert!(matches!(
            RowReader::new("id,status\n".as_bytes()),
            Err(ReadError::Header(_))
        ));
        let text = format!("{HEAD}\n1,200,3,1.0,1,\nx,200,3,1.0,1,\n");
        let mut reader = RowReader::new(text.as_bytes()).expect("header");
        assert!(
            reader
                .next_row()
                .expect("ok")
                .expect("row")
                .id_number()
                .is_ok()
        );
        let bad = reader.next_row().expect("ok").expect("row").id_number();
        assert!(
            matches!(bad, Err(ReadError::Row { line: 3, .. })),
            "{bad:?}"
        );
        let short = format!("{HEAD}\n1,200\n");
        let mut reader = RowReader::new(short.as_bytes()).expect("header");
        assert!(reader.next_row().is_err(), "wrong field count");
    }
}
