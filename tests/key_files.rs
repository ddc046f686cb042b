//! Hostile key files (issue 35): a key too large for a frame, TSV quotes, JSON numbers beyond
//! 64 bits, dot segments, Parquet time zones, a key file changed before `--resume`, and the
//! smaller edges of each format. Each record keeps a row of its own, holding the key that was
//! requested, or the run is refused at start with one line.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::{Value, json};

/// Rows by their `id` column.
fn by_id(rows: Vec<BTreeMap<String, String>>) -> BTreeMap<u64, BTreeMap<String, String>> {
    rows.into_iter()
        .map(|row| (row["id"].parse().expect("numeric id"), row))
        .collect()
}

/// The request target the echo received for a row kept with `--save-body`.
fn target_of(body: &str) -> String {
    let echo: Value = serde_json::from_str(body).expect("echo json");
    echo["target"].as_str().expect("target").to_string()
}

#[test]
fn a_key_too_large_for_a_frame_fails_alone_and_resume_finishes() {
    // Reads any head (`serve` refuses one over 64 KiB) and answers 200.
    let base = raw_server(|_, stream| {
        use std::io::Write;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_ok()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    // 33 MiB: more than a frame holds (16 MiB beside a body of at most 16 MiB).
    let huge = "x".repeat(33 << 20);
    let mut text = String::from("user,doc\n");
    for n in 0..10 {
        let doc = if n == 5 { huge.as_str() } else { "short" };
        text.push_str(&format!("u{n},{doc}\n"));
    }
    std::fs::write(dir.path().join("users.csv"), &text).expect("write");
    let url = format!("{base}/{{user}}");
    let scrape = || {
        TestCommand::new(dir.path())
            .args(["run", "-u", &url, "--keys", "users.csv", "-o", "out.csv"])
            .args(["-H", "X-Doc: {doc}", "--no-progress"])
    };
    let out = scrape().output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = by_id(csv_rows(&dir.path().join("out.csv")));
    assert_eq!(rows.len(), 10, "one row per record");
    for (id, row) in &rows {
        if *id == 5 {
            assert_eq!(row["error"], "request", "{:?}", &row["error"]);
            assert_eq!(row["doc"], "", "the row does not carry 33 MiB");
        } else {
            assert_eq!(
                (row["status"].as_str(), row["user"].clone()),
                ("200", format!("u{id}"))
            );
        }
    }
    let out = scrape().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(csv_rows(&dir.path().join("out.csv")).len(), 10);

    // The same line in a file of keys (`--ids-file`).
    let lines = format!("a\n{huge}\nb\n");
    std::fs::write(dir.path().join("keys.txt"), lines).expect("write");
    let url = format!("{base}/one");
    let out = TestCommand::keys(dir.path(), &url, "keys.txt")
        .args(["-H", "X-Key: {id}", "-o", "lines.csv", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = csv_rows(&dir.path().join("lines.csv"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let failed: Vec<_> = rows.iter().filter(|r| r["error"] == "request").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["line"], "2");
    assert!(failed[0]["id"].len() < 1000);
}

#[test]
fn a_tsv_key_file_takes_quotes_as_text() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("sku\ttitle\n");
    for n in 0..10 {
        let title = match n {
            2 => "\"27 inch monitor".to_string(),
            6 => "a \"quoted\" word\tand more".replace('\t', " "),
            _ => format!("title {n}"),
        };
        text.push_str(&format!("s{n}\t{title}\n"));
    }
    std::fs::write(dir.path().join("items.tsv"), &text).expect("write");
    let url = format!("{}/echo/{{sku}}", server.base);
    let out = TestCommand::new(dir.path())
        .args(["run", "-u", &url, "--keys", "items.tsv", "-o", "out.csv"])
        .args(["--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = by_id(csv_rows(&dir.path().join("out.csv")));
    assert_eq!(rows.len(), 10, "one row per line");
    assert_eq!(rows[&2]["title"], "\"27 inch monitor");
    assert_eq!(rows[&6]["title"], "a \"quoted\" word and more");
    for (id, row) in &rows {
        assert_eq!(row["status"], "200", "{row:?}");
        assert_eq!(row["sku"], format!("s{id}"));
    }
}

#[test]
fn json_numbers_beyond_a_double_are_requested_and_kept_exactly() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("keys.jsonl"),
        concat!(
            "{\"big\": 98765432109876543210, \"mixed\": 9007199254740993, \"u\": 9223372036854775808}\n",
            "{\"big\": 1, \"mixed\": 1.5, \"u\": 7}\n",
        ),
    )
    .expect("write");
    let url = format!("{}/echo/{{big}}/{{mixed}}/{{u}}", server.base);
    let scrape = |output: &str| {
        let out = TestCommand::new(dir.path())
            .args(["run", "-u", &url, "--keys", "keys.jsonl", "-o", output])
            .args(["--save-body", "--no-progress"])
            .output_of();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    let expected = [
        (
            "98765432109876543210",
            "9007199254740993",
            "9223372036854775808",
        ),
        ("1", "1.5", "7"),
    ];
    scrape("out.csv");
    let rows = by_id(csv_rows(&dir.path().join("out.csv")));
    for (id, (big, mixed, u)) in expected.iter().enumerate() {
        let row = &rows[&(id as u64)];
        assert_eq!(target_of(&row["body"]), format!("/echo/{big}/{mixed}/{u}"));
        assert_eq!(
            (
                row["big"].as_str(),
                row["mixed"].as_str(),
                row["u"].as_str()
            ),
            (*big, *mixed, *u)
        );
    }
    // JSON Lines and Parquet rows hold the same keys, as strings where no number type holds
    // them exactly.
    scrape("out.jsonl");
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("read");
    let mut rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    rows.sort_by_key(|r| r["id"].as_u64());
    for (row, (big, mixed, u)) in rows.iter().zip(expected) {
        assert_eq!(
            (&row["big"], &row["mixed"], &row["u"]),
            (&json!(big), &json!(mixed), &json!(u)),
            "{row}"
        );
    }
    scrape("out.parquet");
    let script = r#"
import json, sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).sort_by("id")
print(json.dumps({c: [None if v is None else str(v) for v in t.column(c).to_pylist()]
    for c in ("big", "mixed", "u")}))
"#;
    let read = python_json([
        std::ffi::OsStr::new("-c"),
        script.as_ref(),
        dir.path().join("out.parquet").as_os_str(),
    ]);
    assert_eq!(
        read,
        json!({
            "big": ["98765432109876543210", "1"],
            "mixed": ["9007199254740993", "1.5"],
            "u": ["9223372036854775808", "7"],
        })
    );
}

#[test]
fn a_key_of_dots_is_sent_encoded_not_as_a_dot_segment() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("keys.txt"), "..\n.\nok\n").expect("write");
    let url = format!("{}/echo/api/users/{{id}}/delete", server.base);
    let out = TestCommand::keys(dir.path(), &url, "keys.txt")
        .args([
            "-X",
            "DELETE",
            "-o",
            "out.csv",
            "--save-body",
            "--no-progress",
        ])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = csv_rows(&dir.path().join("out.csv"));
    let mut targets: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["id"].clone(), target_of(&r["body"])))
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            (".".into(), "/echo/api/users/%2E/delete".into()),
            ("..".into(), "/echo/api/users/%2E%2E/delete".into()),
            ("ok".into(), "/echo/api/users/ok/delete".into()),
        ]
    );
}

#[test]
fn a_null_key_in_the_path_is_an_error_row_not_an_empty_segment() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("keys.jsonl"),
        "{\"u\":\"ann\",\"q\":null}\n{\"u\":null,\"q\":1}\n{\"q\":2}\n",
    )
    .expect("write");
    let url = format!("{}/echo/users/{{u}}/logs?q={{q}}", server.base);
    let out = TestCommand::new(dir.path())
        .args(["run", "-u", &url, "--keys", "keys.jsonl", "-o", "out.csv"])
        .args(["--save-body", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = by_id(csv_rows(&dir.path().join("out.csv")));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[&0]["status"], "200");
    assert_eq!(
        target_of(&rows[&0]["body"]),
        "/echo/users/ann/logs?q=",
        "a null in the query fills nothing"
    );
    for id in [1, 2] {
        assert_eq!(
            (rows[&id]["status"].as_str(), rows[&id]["error"].as_str()),
            ("", "request"),
            "{:?}",
            rows[&id]
        );
    }
}

#[test]
fn bad_key_files_are_refused_at_start_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"
import sys, datetime, pyarrow as pa, pyarrow.parquet as pq
d = sys.argv[1]
when = [datetime.datetime(2026, 1, 1), datetime.datetime(2026, 1, 2)]
for name, tz in (("utc", "UTC"), ("ny", "America/New_York")):
    pq.write_table(pa.table({"user": ["a", "b"], "t": pa.array(when, pa.timestamp("s", tz=tz))}),
                   f"{d}/{name}.parquet")
pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"]),
               f"{d}/dup.parquet")
pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", ""]),
               f"{d}/noname.parquet")
print("{}")
"#;
    python_json([
        std::ffi::OsStr::new("-c"),
        script.as_ref(),
        dir.path().as_os_str(),
    ]);
    std::fs::write(dir.path().join("empty.jsonl"), "").expect("write");
    std::fs::write(dir.path().join("noname.jsonl"), "{\"a\":1,\"\":2}\n").expect("write");
    std::fs::write(dir.path().join("brace.csv"), "a,a}b\n1,2\n").expect("write");
    let url = "http://127.0.0.1:9/{a}";
    for (file, says) in [
        ("utc.parquet", "--keys utc.parquet: column `t`"),
        ("ny.parquet", "--keys ny.parquet: column `t`"),
        (
            "dup.parquet",
            "--keys dup.parquet: two columns are named `a`",
        ),
        (
            "noname.parquet",
            "--keys noname.parquet: column 2 has no name",
        ),
        ("empty.jsonl", "--keys empty.jsonl: no records in it"),
        (
            "brace.csv",
            "--keys brace.csv: column `a}b` has a brace in its name",
        ),
        (
            "noname.jsonl",
            "--keys noname.jsonl: record 1 has a field with an empty name",
        ),
    ] {
        let out = ringscrape(
            dir.path(),
            &["run", "-u", url, "--keys", file, "-o", "out.csv"],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(err.contains(says), "{file}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!dir.path().join("out.csv").exists(), "{file}: no output");
    }
}

#[test]
fn a_byte_order_mark_before_the_first_json_record_loses_nothing() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("keys.jsonl"),
        "\u{feff}{\"user\":\"ann\"}\n{\"user\":\"bob\"}\n",
    )
    .expect("write");
    let url = format!("{}/echo/{{user}}", server.base);
    let out = TestCommand::new(dir.path())
        .args(["run", "-u", &url, "--keys", "keys.jsonl", "-o", "out.csv"])
        .args(["--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = by_id(csv_rows(&dir.path().join("out.csv")));
    let users: Vec<(&str, &str)> = rows
        .values()
        .map(|r| (r["status"].as_str(), r["user"].as_str()))
        .collect();
    assert_eq!(users, [("200", "ann"), ("200", "bob")]);
}

#[test]
fn a_resume_against_a_changed_key_file_is_refused() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/echo/{{id}}", server.base);
    std::fs::write(dir.path().join("keys.txt"), "ant\nbee\ncat\n").expect("write");
    std::fs::write(dir.path().join("keys.csv"), "k\nant\nbee\ncat\n").expect("write");
    let by_lines = || {
        TestCommand::keys(dir.path(), &url, "keys.txt").args(["-o", "lines.csv", "--no-progress"])
    };
    let by_records = || {
        let url = format!("{}/echo/{{k}}", server.base);
        TestCommand::new(dir.path())
            .args(["run", "-u", &url, "--keys", "keys.csv", "-o", "records.csv"])
            .arg("--no-progress")
    };
    by_lines().ok();
    by_records().ok();
    // The same files resume (nothing to do).
    by_lines().arg("--resume").ok();
    by_records().arg("--resume").ok();
    let before_lines = std::fs::read(dir.path().join("lines.csv")).expect("read");
    let before_records = std::fs::read(dir.path().join("records.csv")).expect("read");
    // `zed` inserted: every index after it moves.
    std::fs::write(dir.path().join("keys.txt"), "ant\nbee\nzed\ncat\n").expect("write");
    std::fs::write(dir.path().join("keys.csv"), "k\nant\nbee\nzed\ncat\n").expect("write");
    for (run, flag, output, before) in [
        (by_lines(), "--ids-file", "lines.csv", &before_lines),
        (by_records(), "--keys", "records.csv", &before_records),
    ] {
        let out = run.arg("--resume").output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("--resume {output}: {flag} ")) && err.contains("is not the file"),
            "{err}"
        );
        assert!(
            err.contains("3 records") && err.contains("4 records"),
            "{err}"
        );
        let after = std::fs::read(dir.path().join(output)).expect("read");
        assert_eq!(&after, before, "{output} untouched");
    }
    // The same size, another content.
    std::fs::write(dir.path().join("keys.csv"), "k\nant\nbee\ncow\n").expect("write");
    let out = by_records().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("other content"), "{}", stderr(&out));
}
