//! `--keys`: key files with named columns (CSV, JSON Lines, Parquet made by pyarrow) fill
//! `{name}` placeholders in the path, query, a header and a POST body; rows keep the columns
//! (typed in JSON Lines and Parquet output); `--ids` × a key file is every combination, once,
//! also after kill -9 and `--resume`, and over node slices joined by `merge`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use ringscrape::output::reader::RowReader;
use serde_json::{Value, json};

/// The echo's answer: what the server received for one row.
fn echoed(body: &str) -> Value {
    serde_json::from_str(body).expect("echo json")
}

fn header_of<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

#[test]
fn csv_columns_fill_path_query_header_and_body_and_stay_in_the_rows() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("users.csv"),
        "user,date,note\nann,2026-01-01,\"a, b\"\nbob lee,2026-01-02,x&y\nshort row\nzoë,2026-02-03,\n",
    )
    .expect("write");
    let url = format!(
        "{}/echo/users/{{user}}/logs?date={{date}}&n={{id}}",
        server.base
    );
    let out = TestCommand::new(dir.path())
        .args([
            "run",
            "-u",
            &url,
            "--keys",
            "users.csv",
            "-o",
            "out.csv",
            "-s",
            "2",
        ])
        .args([
            "-H",
            "X-User: {user}",
            "-d",
            r#"{"note":"{note}","on":"{date}"}"#,
        ])
        .args(["--save-body", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = csv_rows(&dir.path().join("out.csv"));
    let columns: Vec<&String> = rows[0].keys().collect();
    assert!(columns.contains(&&"user".to_string()) && columns.contains(&&"note".to_string()));
    let header = std::fs::read_to_string(dir.path().join("out.csv")).expect("read");
    assert!(
        header.starts_with("id,status,bytes,latency_ms,attempts,error,user,date,note,body\n"),
        "{header}"
    );
    assert_eq!(rows.len(), 4, "one row per record, the short one too");
    let mut by_id: Vec<_> = rows.iter().map(|r| (r["id"].clone(), r)).collect();
    by_id.sort_by_key(|(id, _)| id.parse::<u64>().expect("id"));
    let expected = [
        ("ann", "2026-01-01", "a, b"),
        ("bob lee", "2026-01-02", "x&y"),
        ("", "", ""),
        ("zoë", "2026-02-03", ""),
    ];
    for (n, ((id, row), (user, date, note))) in by_id.iter().zip(expected).enumerate() {
        assert_eq!(id, &n.to_string());
        assert_eq!((row["user"].as_str(), row["date"].as_str()), (user, date));
        assert_eq!(row["note"], note);
        if n == 2 {
            assert_eq!(
                row["error"], "request",
                "a record that does not read: {row:?}"
            );
            assert_eq!(row["status"], "");
            continue;
        }
        assert_eq!(row["status"], "200", "{row:?}");
        let echo = echoed(&row["body"]);
        let user_in_path: String = user
            .bytes()
            .map(|b| match b {
                b' ' => "%20".to_string(),
                b if b.is_ascii_alphanumeric() => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        assert_eq!(
            echo["target"],
            format!("/echo/users/{user_in_path}/logs?date={date}&n={n}")
        );
        assert_eq!(echo["method"], "POST");
        assert_eq!(header_of(&echo, "x-user"), Some(user));
        assert_eq!(
            echo["body"],
            format!(r#"{{"note":"{note}","on":"{date}"}}"#),
            "the body raw, not encoded"
        );
    }
}

/// A Parquet key file written by pyarrow: `user` string, `n` int64 (one null), `ok` bool,
/// `w` double; 1000 rows in row groups of 300.
fn pyarrow_keys(path: &Path) {
    let script = r#"
import sys, pyarrow as pa, pyarrow.parquet as pq
n = 1000
table = pa.table({
    "user": [f"u{i}" for i in range(n)],
    "n": [None if i == 7 else i * 10 for i in range(n)],
    "ok": [i % 2 == 0 for i in range(n)],
    "w": [i / 4 for i in range(n)],
})
pq.write_table(table, sys.argv[1], row_group_size=300)
print("{}")
"#;
    python_json([
        std::ffi::OsStr::new("-c"),
        script.as_ref(),
        path.as_os_str(),
    ]);
}

#[test]
fn a_parquet_key_file_drives_requests_and_its_columns_keep_their_types() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    pyarrow_keys(&dir.path().join("keys.parquet"));
    let url = format!("{}/echo/{{user}}?n={{n}}", server.base);
    let scrape = |output: &str| {
        TestCommand::new(dir.path())
            .args([
                "run",
                "-u",
                &url,
                "--keys",
                "keys.parquet",
                "-o",
                output,
                "-s",
                "2",
            ])
            .args([
                "-H",
                "X-Ok: {ok}",
                "-d",
                "w={w}",
                "--save-body",
                "--no-progress",
            ])
            .output_of()
    };
    let out = scrape("out.parquet");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // pyarrow reads the output: the key columns' types, and each row's values.
    let script = r#"
import json, sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
types = {f.name: str(f.type) for f in t.schema}
rows = t.to_pylist()
print(json.dumps({"types": types, "rows": len(rows),
    "bad": [r["id"] for r in rows if r["status"] != 200],
    "sample": [r for r in rows if r["id"] in (7, 8)]}, default=str))
"#;
    let read = python_json([
        std::ffi::OsStr::new("-c"),
        script.as_ref(),
        dir.path().join("out.parquet").as_os_str(),
    ]);
    assert_eq!(read["rows"], 1000);
    assert_eq!(read["bad"], json!([]), "{read}");
    let types = &read["types"];
    assert_eq!(
        (&types["user"], &types["n"], &types["ok"], &types["w"]),
        (
            &json!("string"),
            &json!("int64"),
            &json!("bool"),
            &json!("double")
        )
    );
    for row in read["sample"].as_array().expect("rows") {
        let id = row["id"].as_u64().expect("id");
        assert_eq!(row["user"], format!("u{id}"));
        assert_eq!(row["n"], if id == 7 { json!(null) } else { json!(id * 10) });
        assert_eq!(row["ok"], json!(id % 2 == 0));
        assert_eq!(row["w"], json!(id as f64 / 4.0));
        let echo = echoed(row["body"].as_str().expect("body"));
        let n = if id == 7 {
            String::new()
        } else {
            (id * 10).to_string()
        };
        assert_eq!(
            echo["target"],
            format!("/echo/u{id}?n={n}"),
            "null fills nothing"
        );
        assert_eq!(
            header_of(&echo, "x-ok"),
            Some(if id == 8 { "true" } else { "false" })
        );
        let w = echo["body"].as_str().and_then(|b| b.strip_prefix("w="));
        assert_eq!(w.and_then(|w| w.parse::<f64>().ok()), Some(id as f64 / 4.0));
    }
    // JSON Lines output keeps the kinds too.
    let out = scrape("out.jsonl");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("read");
    let row: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .find(|v| v["id"] == 8)
        .expect("row 8");
    assert_eq!(
        (&row["user"], &row["n"], &row["ok"], &row["w"]),
        (&json!("u8"), &json!(80), &json!(true), &json!(2.0))
    );
}

/// `dates.csv` with 365 dates of 2026.
fn write_dates(dir: &Path) -> Vec<String> {
    let dates: Vec<String> = (0..365)
        .map(|d| format!("2026-{:02}-{:02}", d / 28 + 1, d % 28 + 1))
        .collect();
    std::fs::write(
        dir.join("dates.csv"),
        format!("date\n{}\n", dates.join("\n")),
    )
    .expect("write");
    dates
}

/// Every (id, date) of `0..ids` × `dates` exactly once, each row's index matching its values.
fn assert_every_pair_once(path: &Path, ids: u64, dates: &[String]) {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("open"));
    let mut reader = RowReader::new(file).expect("header");
    assert_eq!(reader.columns()[6..8], ["index", "date"]);
    let mut seen = HashSet::new();
    while let Some(raw) = reader.next_row().expect("row") {
        let row = raw.typed().expect("typed");
        let id: u64 = row.id.parse().expect("id");
        let index: u64 = row.extra[0].parse().expect("index");
        let date = &row.extra[1];
        assert_eq!(index / 365, id, "{row:?}");
        assert_eq!(&dates[(index % 365) as usize], date, "{row:?}");
        assert_eq!(row.status, Some(200), "{row:?}");
        assert!(seen.insert((id, date.clone())), "({id}, {date}) twice");
    }
    assert_eq!(seen.len() as u64, ids * 365);
}

#[test]
fn ids_times_dates_is_every_pair_once_after_kill_9_and_resume() {
    let server = Server::start(&["--delay-ms", "0..2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dates = write_dates(dir.path());
    let url = format!("{}/log?id={{id}}&date={{date}}", server.base);
    let scrape = || {
        TestCommand::new(dir.path())
            .args(["run", "-u", &url, "--ids", "0..1000", "--keys", "dates.csv"])
            .args(["-o", "out.csv", "-s", "2", "-c", "64", "--no-progress"])
    };
    let mut run = scrape().spawn();
    let out_csv = dir.path().join("out.csv");
    let going = wait_for(Duration::from_secs(20), || {
        let len = std::fs::metadata(&out_csv).ok()?.len();
        (len > 200_000).then_some(())
    });
    assert!(going.is_some(), "no rows came");
    kill_9(&mut run);
    let before = std::fs::read_to_string(&out_csv)
        .expect("partial")
        .lines()
        .count();
    assert!(before < 365_001, "killed mid-run: {before} lines");
    let out = scrape().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_every_pair_once(&out_csv, 1000, &dates);
}

#[test]
fn node_slices_over_ids_times_dates_merge_into_every_pair_once() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dates = write_dates(dir.path());
    let url = format!("{}/log?id={{id}}&date={{date}}", server.base);
    for k in ["0", "1"] {
        let out = TestCommand::new(dir.path())
            .args(["run", "-u", &url, "--ids", "0..1000", "--keys", "dates.csv"])
            .args(["-o", "part-{node}.csv", "-s", "2", "--no-progress"])
            .args(["--node-index", k, "--node-count", "2"])
            .output_of();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("node {k} of 2")),
            "{}",
            stderr(&out)
        );
    }
    let merge = |extra: &[&str]| {
        let job = [
            "merge",
            "--ids",
            "0..1000",
            "--keys",
            "dates.csv",
            "--overwrite",
        ];
        ringscrape(dir.path(), &[&job[..], &["all.csv"], extra].concat())
    };
    let out = merge(&["part-0.csv", "part-1.csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_every_pair_once(&dir.path().join("all.csv"), 1000, &dates);
    // A slice left out is named as missing.
    let out = merge(&["part-0.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn bad_key_files_are_one_line_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("clash.csv"), "user,status\na,b\n").expect("write");
    std::fs::write(dir.path().join("keys.txt"), "user\na\n").expect("write");
    std::fs::write(dir.path().join("empty.csv"), "user\n").expect("write");
    let url = "http://127.0.0.1:9/{user}";
    for (file, says) in [
        (
            "clash.csv",
            "--keys clash.csv: column `status` is also written by ringscrape itself",
        ),
        ("keys.txt", "--keys keys.txt: which format?"),
        ("empty.csv", "--keys empty.csv: no records after the header"),
        ("missing.csv", "--keys missing.csv: No such file"),
    ] {
        let out = ringscrape(
            dir.path(),
            &["run", "-u", url, "--keys", file, "-o", "out.csv"],
        );
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{file}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn retry_failed_fetches_again_only_the_failed_pairs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("days.csv"), "day\nmon\ntue\nwed\n").expect("write");
    // One URL for both servers (a resume of another URL is another job): `--connect-to` picks
    // the server.
    let scrape = |server: &Server| {
        let port = server.base.rsplit(':').next().expect("a port");
        let url = "http://keys.test/log?id={id}&day={day}";
        TestCommand::new(dir.path())
            .args(["run", "-u", url, "--ids", "0..20", "--keys", "days.csv"])
            .args(["--connect-to", &format!("keys.test:80:127.0.0.1:{port}")])
            .args(["-o", "out.csv", "--retries", "0", "--no-progress"])
    };
    // Every 5th id's requests are dropped: ids 4, 9, 14 and 19, on every day.
    let faulty = Server::start(&["--drop-every", "5"]);
    let out = scrape(&faulty).output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = csv_rows(&dir.path().join("out.csv"));
    let failed: HashSet<(String, String)> = rows
        .iter()
        .filter(|r| r["status"] != "200")
        .map(|r| (r["id"].clone(), r["day"].clone()))
        .collect();
    assert_eq!(failed.len(), 12, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|(id, _)| ["4", "9", "14", "19"].contains(&id.as_str()))
    );
    let fine = Server::start(&[]);
    let out = scrape(&fine)
        .args(["--resume", "--retry-failed"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = csv_rows(&dir.path().join("out.csv"));
    assert_eq!(rows.len(), 60);
    assert!(rows.iter().all(|r| r["status"] == "200"));
    let pairs: HashSet<(&str, &str)> = rows
        .iter()
        .map(|r| (r["id"].as_str(), r["day"].as_str()))
        .collect();
    assert_eq!(pairs.len(), 60, "every (id, day) once");
}
