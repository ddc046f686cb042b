//! JSON Lines output: read back by Python's `json` (a reader nobody here wrote) row by row against
//! the CSV of the same scrape; kill -9 mid-run then `--resume`; `merge` of per-node files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// Rows of a JSON Lines file as Python's `json` reads them, checked for types there:
/// id → [status, bytes, attempts, error, latency_ms > 0, the optional columns].
fn python_rows(path: &Path) -> BTreeMap<u64, serde_json::Value> {
    let script = r#"
import json, sys
out = {}
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    row = json.loads(line)
    assert isinstance(row["id"], int), (n, row)
    assert row["status"] is None or isinstance(row["status"], int), (n, row)
    assert isinstance(row["bytes"], int) and isinstance(row["attempts"], int), (n, row)
    assert isinstance(row["latency_ms"], float), (n, row)
    assert row["error"] is None or isinstance(row["error"], str), (n, row)
    assert str(row["id"]) not in out, ("duplicate", row["id"])
    keys = list(row)
    out[str(row["id"])] = [row["status"], row["bytes"], row["attempts"], row["error"] or "",
                           row["latency_ms"] > 0] + [row[k] for k in keys[6:]]
print(json.dumps(out))
"#;
    let path = path.to_str().expect("a UTF-8 path");
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(python_json(["-c", script, path])).expect("a map");
    map.into_iter()
        .map(|(id, v)| (id.parse().expect("id"), v))
        .collect()
}

#[test]
fn json_lines_hold_what_the_csv_of_the_same_scrape_holds() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let scrape_into = |out: &str| {
        TestCommand::run(dir.path(), &url, "0..3000")
            .shards(2)
            .concurrency(16)
            .output(out)
            .args(["--save-body", "--capture-header", "content-type"])
            .args(["--extract", "v=/v", "--no-progress"])
            .ok()
    };
    scrape_into("out.csv");
    scrape_into("out.jsonl");
    let csv: BTreeMap<u64, Row> = read_rows(&dir.path().join("out.csv"))
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let jsonl = python_rows(&dir.path().join("out.jsonl"));
    assert_eq!(jsonl.len(), 3000);
    assert_eq!(
        csv.keys().collect::<Vec<_>>(),
        jsonl.keys().collect::<Vec<_>>()
    );
    for (id, row) in &csv {
        assert_eq!(jsonl[id], row_values(row), "id {id}");
    }
}

#[test]
fn kill_9_mid_run_then_resume_leaves_one_json_line_per_id() {
    let server = Server::start(&["--delay-ms", "1..4"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let scrape = || {
        TestCommand::run(dir.path(), &url, "0..20000")
            .shards(2)
            .concurrency(16)
            .output("out.jsonl")
            .args(["--save-body", "--no-progress"])
    };
    let run = scrape().spawn();
    let path = dir.path().join("out.jsonl");
    let started = wait_for(Duration::from_secs(10), || {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        (len > 50_000).then_some(())
    });
    assert!(started.is_some(), "no rows written");
    assert_locked_then_kill_9(run, scrape().arg("--resume"));
    let partial = python_rows_allowing_torn_end(&path);
    assert!(partial < 20_000, "killed before the end: {partial}");
    scrape().arg("--resume").ok();
    let rows = python_rows(&path);
    assert_eq!(rows.len(), 20_000);
    assert!(rows.keys().copied().eq(0..20_000));
    for (id, row) in &rows {
        assert_eq!(row[0], 200, "id {id}: {row}");
        assert_eq!(row[1].as_u64(), Some(demo_body_len(*id)));
    }
}

/// Whole lines before a torn last one, counted.
fn python_rows_allowing_torn_end(path: &Path) -> usize {
    let text = std::fs::read(path).expect("read");
    let whole = &text[..text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)];
    for line in whole.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        serde_json::from_slice::<serde_json::Value>(line).expect("a whole line is whole JSON");
    }
    whole.iter().filter(|b| **b == b'\n').count()
}

#[test]
fn merge_joins_per_node_json_lines_files() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    for k in 0..3 {
        let (index, out) = (k.to_string(), format!("part-{k}.jsonl"));
        TestCommand::run(dir.path(), &url, "0..3000")
            .shards(1)
            .concurrency(8)
            .output(&out)
            .args(["--node-index", &index, "--node-count", "3", "--no-progress"])
            .ok();
    }
    let merged = ringscrape(
        dir.path(),
        &[
            "merge",
            "-i",
            "0..3000",
            "all.jsonl",
            "part-0.jsonl",
            "part-1.jsonl",
            "part-2.jsonl",
        ],
    );
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    let rows = python_rows(&dir.path().join("all.jsonl"));
    assert!(rows.keys().copied().eq(0..3000));
    let missing = ringscrape(
        dir.path(),
        &[
            "merge",
            "-i",
            "0..3000",
            "two.jsonl",
            "part-0.jsonl",
            "part-2.jsonl",
        ],
    );
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("missing"), "{}", stderr(&missing));
}

#[test]
fn json_lines_go_to_stdout_and_the_summary_counts_the_lines() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &server.url(), "0..2000")
        .shards(2)
        .output("-")
        .args([
            "--format",
            "jsonl",
            "--summary-json",
            "s.json",
            "--no-progress",
        ])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = dir.path().join("stdout.jsonl");
    std::fs::write(&path, &out.stdout).expect("write");
    let rows = python_rows(&path);
    assert!(rows.keys().copied().eq(0..2000));
    let summary = std::fs::read_to_string(dir.path().join("s.json")).expect("summary");
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(summary["rows"], 2000);
}
