//! Parquet output: a directory of part files read back by pyarrow and DuckDB (readers nobody
//! here wrote) row by row against the CSV of the same scrape; kill -9 mid-run then `--resume`;
//! `--resume --retry-failed`; `merge` of per-node directories.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// Runs a Python snippet with `path` as its argument; its stdout parsed as JSON.
fn python(script: &str, path: &Path) -> serde_json::Value {
    python_json([
        std::ffi::OsStr::new("-c"),
        script.as_ref(),
        path.as_os_str(),
    ])
}

/// The directory as pyarrow reads it (types checked there): id → [status, bytes, attempts,
/// error, latency_ms > 0, the optional columns].
fn pyarrow_rows(dir: &Path) -> BTreeMap<u64, serde_json::Value> {
    let script = r#"
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
types = {f.name: str(f.type) for f in t.schema}
assert types["id"] == "uint64" and types["status"] == "uint16", types
assert types["bytes"] == "uint64" and types["latency_ms"] == "double", types
assert types["attempts"] == "uint16" and types["error"] == "string", types
out = {}
names = t.column_names
for row in t.to_pylist():
    assert str(row["id"]) not in out, ("duplicate", row["id"])
    out[str(row["id"])] = [row["status"], row["bytes"], row["attempts"], row["error"] or "",
                           row["latency_ms"] > 0] + [row[k] for k in names[6:]]
print(json.dumps(out))
"#;
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(python(script, dir)).expect("a map");
    map.into_iter()
        .map(|(id, v)| (id.parse().expect("id"), v))
        .collect()
}

/// DuckDB over the directory's parts: [rows, distinct ids, min id, max id].
fn duckdb_counts(dir: &Path) -> serde_json::Value {
    let script = r#"
import json, sys, duckdb
q = f"select count(*), count(distinct id), min(id), max(id) from read_parquet('{sys.argv[1]}/*.parquet')"
print(json.dumps(list(duckdb.sql(q).fetchall()[0])))
"#;
    python(script, dir)
}

#[test]
fn parquet_holds_what_the_csv_of_the_same_scrape_holds() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let scrape_into = |out: &str| {
        TestCommand::run(dir.path(), &url, "0..5000")
            .shards(2)
            .concurrency(16)
            .output(out)
            .args([
                "--save-body",
                "--capture-header",
                "content-type",
                "--extract",
                "v=/v",
            ])
            .args(["--no-progress", "--part-rows", "700"])
            .ok()
    };
    scrape_into("out.csv");
    scrape_into("out.parquet");
    let parts = std::fs::read_dir(dir.path().join("out.parquet"))
        .expect("a directory")
        .count();
    assert!(parts >= 5000 / 700, "{parts} parts");
    let csv: BTreeMap<u64, Row> = read_rows(&dir.path().join("out.csv"))
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let parquet = pyarrow_rows(&dir.path().join("out.parquet"));
    assert!(parquet.keys().eq(csv.keys()));
    for (id, row) in &csv {
        assert_eq!(parquet[id], row_values(row), "id {id}");
    }
    assert_eq!(
        duckdb_counts(&dir.path().join("out.parquet")),
        serde_json::json!([5000, 5000, 0, 4999])
    );
}

#[test]
fn kill_9_mid_run_then_resume_leaves_one_row_per_id_in_the_parts() {
    let server = Server::start(&["--delay-ms", "1..3"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let scrape = || {
        TestCommand::run(dir.path(), &url, "0..200000")
            .shards(2)
            .concurrency(32)
            .output("out.parquet")
            .args(["--part-rows", "15000", "--no-progress"])
    };
    let out = dir.path().join("out.parquet");
    let run = scrape().spawn();
    let closed = wait_for(Duration::from_secs(20), || {
        let parts = std::fs::read_dir(&out).ok()?.count();
        (parts >= 3).then_some(())
    });
    assert!(closed.is_some(), "no parts closed");
    assert_locked_then_kill_9(run, scrape().arg("--resume"));
    // What a crash leaves besides the closed parts: a part without its footer.
    std::fs::write(out.join(".part-000099.parquet.tmp"), b"PAR1 half").expect("write");
    let partial = duckdb_counts(&out);
    assert!(
        partial[0].as_u64().is_some_and(|n| n < 200_000),
        "{partial}"
    );
    let said = scrape().arg("--resume").ok();
    // Ours, and the part the killed run had open (unless it was killed between two parts).
    assert!(
        said.contains("removed 1 unfinished Parquet parts")
            || said.contains("removed 2 unfinished Parquet parts"),
        "{said}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with("part-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        duckdb_counts(&out),
        serde_json::json!([200000, 200000, 0, 199999])
    );
}

#[test]
fn retry_failed_rewrites_the_parts_and_merge_joins_node_directories() {
    let server = Server::start(&["--fail-first", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let scrape = || {
        TestCommand::run(dir.path(), &url, "0..3000")
            .shards(2)
            .concurrency(8)
            .output("f.parquet")
            .args(["--retries", "0", "--part-rows", "1000", "--no-progress"])
    };
    scrape().ok();
    let rows = pyarrow_rows(&dir.path().join("f.parquet"));
    assert!(rows.values().all(|row| row[0] == 503));
    scrape().args(["--resume", "--retry-failed"]).ok();
    let rows = pyarrow_rows(&dir.path().join("f.parquet"));
    assert_eq!(rows.len(), 3000);
    assert!(
        rows.values().all(|row| row[0] == 200),
        "every id fetched again"
    );

    let plain = Server::start(&[]);
    let url = plain.url();
    for k in 0..3 {
        let (index, out) = (k.to_string(), format!("part-{k}.parquet"));
        TestCommand::run(dir.path(), &url, "0..9000")
            .shards(1)
            .concurrency(8)
            .output(&out)
            .args([
                "--node-index",
                &index,
                "--node-count",
                "3",
                "--part-rows",
                "1000",
            ])
            .arg("--no-progress")
            .ok();
    }
    let merged = ringscrape(
        dir.path(),
        &[
            "merge",
            "-i",
            "0..9000",
            "all.parquet",
            "part-0.parquet",
            "part-1.parquet",
            "part-2.parquet",
        ],
    );
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    assert_eq!(
        duckdb_counts(&dir.path().join("all.parquet")),
        serde_json::json!([9000, 9000, 0, 8999])
    );
    let missing = ringscrape(
        dir.path(),
        &[
            "merge",
            "-i",
            "0..9000",
            "two.parquet",
            "part-0.parquet",
            "part-2.parquet",
        ],
    );
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("3000..6000"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn parquet_on_stdout_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), "http://127.0.0.1:9/{id}", "0..5")
        .output("-")
        .args(["--format", "parquet"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: --format parquet: Parquet is a directory of part files"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn overwrite_replaces_only_parts_and_refuses_a_directory_with_other_files() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let scrape = |out: &str, cwd: &Path| {
        TestCommand::run(cwd, &url, "0..300")
            .shards(1)
            .concurrency(8)
            .output(out)
            .args(["--format", "parquet", "--part-rows", "100", "--no-progress"])
            .arg("--overwrite")
            .output_of()
    };
    // A directory of parts from an earlier run, and a stray unfinished part: replaced.
    let v = dir.path().join("v.parquet");
    assert_eq!(scrape("v.parquet", dir.path()).status.code(), Some(0));
    std::fs::write(v.join(".part-000009.parquet.tmp"), b"torn").expect("tmp");
    let again = scrape("v.parquet", dir.path());
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(duckdb_counts(&v), serde_json::json!([300, 300, 0, 299]));
    assert!(!v.join(".part-000009.parquet.tmp").exists());

    // The user's files beside the parts: refused, nothing removed.
    std::fs::write(v.join("notes.txt"), b"mine").expect("notes");
    std::fs::create_dir(v.join("sub")).expect("sub");
    std::fs::write(v.join("sub/keep"), b"mine").expect("keep");
    let refused = scrape("v.parquet", dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("notes.txt, which ringscrape did not write"),
        "{}",
        stderr(&refused)
    );
    assert!(v.join("notes.txt").exists() && v.join("sub/keep").exists());
    assert_eq!(duckdb_counts(&v), serde_json::json!([300, 300, 0, 299]));

    // The working directory, or one above it: refused before anything is touched.
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("work");
    std::fs::write(work.join("part-000000.parquet"), b"looks like a part").expect("fake");
    for out in [".", "..", "../work"] {
        let refused = scrape(out, &work);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{out}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("holds the current directory"),
            "{out}: {}",
            stderr(&refused)
        );
    }
    assert!(work.join("part-000000.parquet").exists());
    assert!(v.join("notes.txt").exists());

    // merge --overwrite into a directory with the user's files: refused the same way.
    assert_eq!(scrape("w.parquet", dir.path()).status.code(), Some(0));
    let merged = ringscrape(
        dir.path(),
        &[
            "merge",
            "-i",
            "0..300",
            "v.parquet",
            "--overwrite",
            "w.parquet",
        ],
    );
    assert_eq!(merged.status.code(), Some(2), "{}", stderr(&merged));
    assert!(v.join("notes.txt").exists() && v.join("sub/keep").exists());
}

#[test]
fn a_merge_of_mixed_formats_is_a_usage_error_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    for out in ["a.parquet", "b.csv"] {
        // A dead target: every row an error, quickly; the files are what matters.
        let run = TestCommand::run(dir.path(), "http://127.0.0.1:9/{id}", "0..3")
            .output(out)
            .args(["--retries", "0", "--no-progress"])
            .output_of();
        assert!(dir.path().join(out).exists(), "{}", stderr(&run));
    }
    for (args, message) in [
        (
            ["out.csv", "a.parquet"],
            "out.csv is CSV (by its extension) but a.parquet is Parquet",
        ),
        (
            ["out.parquet", "b.csv"],
            "out.parquet is Parquet (by its extension) but b.csv is CSV",
        ),
    ] {
        let merged = ringscrape(dir.path(), &[&["merge", "-i", "0..3"][..], &args].concat());
        assert_eq!(merged.status.code(), Some(2), "{}", stderr(&merged));
        assert!(stderr(&merged).contains(message), "{}", stderr(&merged));
        assert!(!dir.path().join(args[0]).exists());
    }
}
