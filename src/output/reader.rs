//! Reading ringscrape's rows back, whatever the format: `--resume`, the tests and `merge` all go
//! through [`RowReader`] (each format's own reader behind one type, from its [`Layout`]) and
//! write what they keep through its [`CopyRows`]. The columns must start with the fixed ones;
//! columns after them (captured headers, extracted fields, bodies, line numbers) are allowed and
//! reached by name. Also here: where a stream format's whole rows end (a torn last row is cut
//! there), and how many rows an output holds.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

pub use super::format::{CopyRows, FileFormat, Format, Layout};
pub use super::rows::{RawFields, RawRow, ReadError, ReadRows, Row, RowReader};

/// Length of the file up to the end of its last whole row (see
/// [`FileFormat::complete_len`](super::format::FileFormat::complete_len)): the last newline,
/// and with `quoted` (CSV) the last newline *outside quotes*: a body with line breaks is one
/// quoted field over several lines, and a row torn inside it must not be cut at one of its own
/// line breaks. The quote state is found by one pass from the start (a quote toggles it; an
/// escaped `""` toggles it twice; an unquoted field never holds a quote, as the writer quotes any
/// field that does). (A JSON string holds no raw line break: JSON Lines is not `quoted`.)
pub fn complete_len(file: &mut File, quoted: bool) -> io::Result<u64> {
    // Only what the file holds now: a device (`-o /dev/full`) would read without end.
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut input = (&*file).take(len);
    let mut buf = vec![0u8; 256 << 10];
    let (mut at, mut complete, mut in_quotes) = (0u64, 0u64, false);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(complete);
        }
        for (offset, &byte) in buf[..n].iter().enumerate() {
            match byte {
                b'"' if quoted => in_quotes = !in_quotes,
                b'\n' if !in_quotes => complete = at + offset as u64 + 1,
                _ => {}
            }
        }
        at += n as u64;
    }
}

/// Bytes of `file` after its whole rows (its first `complete` bytes): a torn row — but none when
/// they are just the format's end marker (a finished Arrow stream's).
pub fn torn_len(file: &mut File, format: &dyn FileFormat, complete: u64) -> io::Result<u64> {
    let after = file.metadata()?.len().saturating_sub(complete);
    let marker = format.end_marker();
    if marker.is_empty() || after != marker.len() as u64 {
        return Ok(after);
    }
    let mut tail = vec![0; marker.len()];
    file.seek(SeekFrom::Start(complete))?;
    file.read_exact(&mut tail)?;
    Ok(if tail == marker { 0 } else { after })
}

/// The whole rows of the file `path`, and the bytes after the last of them (a row torn by a full
/// disk or a kill); for a directory of parts, the rows of its readable parts.
pub fn rows_on_disk(path: &Path, format: &dyn Format) -> io::Result<(u64, u64)> {
    let format = match format.layout() {
        Layout::Parts(parts) => return Ok((parts.readable_rows(path)?, 0)),
        Layout::File(format) => format,
    };
    let mut file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let complete = format.complete_len(&mut file)?;
    let torn = torn_len(&mut file, format, complete)?;
    file.seek(SeekFrom::Start(0))?;
    let input = io::BufReader::new((&file).take(complete));
    let mut rows = 0;
    if let Ok(Some(mut reader)) = format.reader(Box::new(input)) {
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
            assert_eq!(complete_len(&mut file, true).expect("scan"), want as u64);
        }
        // Cut anywhere, the kept part parses into whole rows with every field.
        for cut in 0..=torn.len() {
            std::fs::write(&path, &torn.as_bytes()[..cut]).expect("write");
            let mut file = File::open(&path).expect("open");
            let keep = complete_len(&mut file, true).expect("scan") as usize;
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
        assert_eq!(complete_len(&mut file, false).expect("scan"), 9);
    }

    #[test]
    fn a_copier_writes_its_formats_rows_as_they_were_and_refuses_another_formats() {
        let format_of = |flag| crate::output::formats::by_flag(flag).expect("a format");
        let csv = format!("{HEAD},body\n1,200,3,1.000,1,,\"a,\nb\"\n2,,0,2.000,3,timeout,\n");
        let jsonl = "{\"id\":1,\"status\":200,\"bytes\":3,\"latency_ms\":1.000,\"attempts\":1,\"error\":null}\n";
        for (flag, text) in [("csv", csv.as_str()), ("jsonl", jsonl)] {
            let Layout::File(format) = format_of(flag).layout() else {
                panic!("{flag} is one file");
            };
            let mut rows = format
                .reader(Box::new(text.as_bytes()))
                .expect("read")
                .expect("rows");
            let mut out = Vec::new();
            let mut copier = format.copier(&mut out);
            copier.header(rows.columns()).expect("header");
            while let Some(row) = rows.next_row().expect("row") {
                copier.copy(&row).expect("copy");
            }
            copier.finish().expect("finish");
            assert_eq!(String::from_utf8(out).expect("utf-8"), text, "{flag}");
        }
        // A CSV row is no other format's: JSON Lines and Parquet refuse it, not misfile it.
        let mut rows = RowReader::new(csv.as_bytes()).expect("header");
        let row = rows.next_row().expect("row").expect("a row");
        let mut out = Vec::new();
        let Layout::File(jsonl) = format_of("jsonl").layout() else {
            panic!("JSON Lines is one file");
        };
        assert!(jsonl.copier(&mut out).copy(&row).is_err());
        let Layout::Parts(parquet) = format_of("parquet").layout() else {
            panic!("Parquet is parts");
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut copier = parquet.copier(dir.path()).expect("parts");
        assert!(copier.copy(&row).is_err());
        assert!(out.is_empty());
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
