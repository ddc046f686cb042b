//! Arrow IPC stream output (`--format arrow`, `--arrow-copy`), read back by pyarrow, polars and
//! DuckDB (readers nobody here wrote) row by row against the CSV of the same scrape: to a file
//! and through a pipe; a batch within ~1 s while a slow run goes on; the copy beside a CSV; a
//! copy of a resume after kill -9 holding exactly the rows the resume wrote; the copy's reader
//! going away stopping the run as Ctrl-C does, the output then completed by `--resume`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Reads an Arrow IPC stream (argv[1], or stdin when none) with pyarrow, checks the column
/// types, and prints {"types", "rows": id → [status, bytes, attempts, error, latency_ms > 0,
/// the optional columns…]} — every id once.
const READ_STREAM: &str = r#"
import json, sys
import pyarrow as pa, pyarrow.ipc as ipc
source = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.buffer
t = ipc.open_stream(source).read_all()
types = {f.name: str(f.type) for f in t.schema}
out = {}
names = t.column_names
for row in t.to_pylist():
    assert str(row["id"]) not in out, ("duplicate", row["id"])
    out[str(row["id"])] = [row["status"], row["bytes"], row["attempts"], row["error"] or "",
                           row["latency_ms"] > 0] + [row[k] for k in names[6:]]
print(json.dumps({"types": types, "rows": out}))
"#;

/// The fixed columns' types, as pyarrow names them.
fn assert_typed(types: &serde_json::Value) {
    let want = [
        ("id", "uint64"),
        ("status", "uint16"),
        ("bytes", "uint64"),
        ("latency_ms", "double"),
        ("attempts", "uint16"),
        ("error", "string"),
    ];
    for (name, kind) in want {
        assert_eq!(types[name], kind, "{name}: {types}");
    }
}

/// A stream's rows as [`READ_STREAM`] gives them, its types checked.
fn stream_rows(read: serde_json::Value) -> BTreeMap<u64, serde_json::Value> {
    assert_typed(&read["types"]);
    let rows: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(read["rows"].clone()).expect("a map");
    rows.into_iter()
        .map(|(id, v)| (id.parse().expect("id"), v))
        .collect()
}

/// The stream in the file `path`, read by pyarrow.
fn file_rows(path: &Path) -> BTreeMap<u64, serde_json::Value> {
    let args = [
        std::ffi::OsStr::new("-c"),
        READ_STREAM.as_ref(),
        path.as_os_str(),
    ];
    stream_rows(python_json(args))
}

/// Runs `run` with its stdout piped into `python3 -c script`; waits (at most 60 s) for both.
/// Returns the run's exit code, its stderr, and what the script printed, as JSON.
fn piped_to_python(run: TestCommand, script: &str) -> (Option<i32>, String, serde_json::Value) {
    let mut run = run.into_command();
    let mut run = run
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ringscrape");
    let python = Command::new("python3")
        .args(["-c", script])
        .stdin(run.stdout.take().expect("stdout piped"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let read = python.wait_with_output().expect("python3");
    let (code, err) = finish_within(run, Duration::from_secs(60));
    assert!(
        read.status.success(),
        "python: {}\nringscrape: {err}",
        String::from_utf8_lossy(&read.stderr)
    );
    let printed = serde_json::from_slice(&read.stdout).expect("JSON from python");
    (code, err, printed)
}

/// Waits for `run` to exit (killed and failed after `limit`); its code and stderr.
fn finish_within(mut run: Child, limit: Duration) -> (Option<i32>, String) {
    let exited = wait_for(limit, || run.try_wait().ok().flatten());
    if exited.is_none() {
        let _ = run.kill();
        panic!("the run did not end within {limit:?}");
    }
    let out = run.wait_with_output().expect("wait");
    (out.status.code(), stderr(&out))
}

/// The CSV's rows by id.
fn csv_by_id(path: &Path) -> BTreeMap<u64, Row> {
    read_rows(path).into_iter().map(|r| (r.id, r)).collect()
}

#[test]
fn arrow_to_a_file_and_through_a_pipe_holds_what_the_csv_of_the_same_scrape_holds() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let scrape = || {
        TestCommand::run(dir.path(), &url, "0..5000")
            .shards(2)
            .concurrency(16)
            .args(["--save-body", "--capture-header", "content-type"])
            .args(["--extract", "v=/v", "--no-progress"])
    };
    scrape().output("out.csv").ok();
    scrape().output("out.arrows").ok();
    let csv = csv_by_id(&dir.path().join("out.csv"));
    let from_file = file_rows(&dir.path().join("out.arrows"));
    assert!(from_file.keys().eq(csv.keys()));
    for (id, row) in &csv {
        assert_eq!(from_file[id], row_values(row), "id {id}");
    }
    let piped = scrape().args(["-o", "-", "--format", "arrow"]);
    let (code, err, read) = piped_to_python(piped, READ_STREAM);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        stream_rows(read),
        from_file,
        "stdout holds what the file holds"
    );
}

#[test]
fn polars_and_duckdb_read_the_stream() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    TestCommand::run(dir.path(), &server.url(), "0..3000")
        .shards(2)
        .concurrency(8)
        .args(["-o", "out.arrows", "--no-progress"])
        .ok();
    let script = r#"
import json, sys
import duckdb, polars as pl, pyarrow.ipc as ipc
df = pl.read_ipc_stream(sys.argv[1])
assert str(df.schema["id"]) == "UInt64" and str(df.schema["status"]) == "UInt16", df.schema
stream = ipc.open_stream(sys.argv[1])
q = "select count(*), count(distinct id), min(id), max(id), min(status) from stream"
print(json.dumps([df.height, df["id"].n_unique(), list(duckdb.sql(q).fetchall()[0])]))
"#;
    let path = dir.path().join("out.arrows");
    let read = python_json([
        std::ffi::OsStr::new("-c"),
        script.as_ref(),
        path.as_os_str(),
    ]);
    assert_eq!(
        read,
        serde_json::json!([3000, 3000, [3000, 3000, 0, 2999, 200]])
    );
}

#[test]
fn a_pipe_reader_gets_a_batch_every_second_of_a_slow_run_and_stopping_early_ends_it() {
    // About 10 rows a second: one worker, two slots, 150 ms answers.
    let server = Server::start(&["--delay-ms", "100..200"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = TestCommand::run(dir.path(), &server.url(), "0..100000")
        .shards(1)
        .concurrency(2)
        .args(["-o", "-", "--format", "arrow", "--no-progress"]);
    let script = r#"
import json, sys, time
import pyarrow.ipc as ipc
reader = ipc.open_stream(sys.stdin.buffer)
times, ids = [], []
for batch in reader:
    times.append(time.monotonic())
    ids += batch.column(0).to_pylist()
    if len(times) == 4:
        break
print(json.dumps({"gaps": [b - a for a, b in zip(times, times[1:])], "ids": ids}))
"#;
    let (code, err, read) = piped_to_python(run, script);
    let gaps: Vec<f64> = serde_json::from_value(read["gaps"].clone()).expect("gaps");
    assert!(gaps.iter().all(|&gap| gap < 1.5), "{gaps:?}");
    let ids: Vec<u64> = serde_json::from_value(read["ids"].clone()).expect("ids");
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert!(!ids.is_empty() && unique.len() == ids.len(), "{ids:?}");
    // The reader went away: the run stops quietly, as `yes | head` does.
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn arrow_copy_beside_a_csv_holds_the_csvs_rows_in_a_file_and_on_stdout() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let scrape = |csv: &str| {
        TestCommand::run(dir.path(), &url, "0..4000")
            .shards(2)
            .concurrency(16)
            .args(["--capture-header", "content-type", "--no-progress"])
            .output(csv)
    };
    scrape("a.csv").args(["--arrow-copy", "copy.arrows"]).ok();
    let csv = csv_by_id(&dir.path().join("a.csv"));
    let copy = file_rows(&dir.path().join("copy.arrows"));
    assert!(copy.keys().eq(csv.keys()), "{} rows", copy.len());
    for (id, row) in &csv {
        assert_eq!(copy[id], row_values(row), "id {id}");
    }
    let (code, err, read) =
        piped_to_python(scrape("b.csv").args(["--arrow-copy", "-"]), READ_STREAM);
    assert_eq!(code, Some(0), "{err}");
    let piped = stream_rows(read);
    let csv = csv_by_id(&dir.path().join("b.csv"));
    assert!(piped.keys().eq(csv.keys()), "{} rows", piped.len());
}

/// A slow run into `out` (2 shards × 4 slots over 0..`ids`), killed with SIGKILL once it has
/// written some rows.
fn kill_9_slow_run(dir: &Path, url: &str, ids: u64, out: &str, rows_written: impl Fn() -> bool) {
    let mut run = TestCommand::run(dir, url, &format!("0..{ids}"))
        .shards(2)
        .concurrency(4)
        .args(["-o", out, "--no-progress"])
        .spawn();
    let wrote = wait_for(Duration::from_secs(30), || rows_written().then_some(()));
    assert!(wrote.is_some(), "no rows written within 30 s");
    kill_9(&mut run);
}

#[test]
fn a_resumed_runs_copy_holds_exactly_the_rows_the_resume_wrote() {
    let server = Server::start(&["--delay-ms", "1..5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("out.csv");
    kill_9_slow_run(dir.path(), &server.url(), 3000, "out.csv", || {
        line_count(&csv) > 200
    });
    let said = TestCommand::run(dir.path(), &server.url(), "0..3000")
        .shards(2)
        .concurrency(8)
        .args(["-o", "out.csv", "--resume", "--arrow-copy", "copy.arrows"])
        .args(["--no-progress"])
        .ok();
    let rows = read_rows(&csv);
    assert_one_row_per_id(&rows, 0, 3000);
    let kept: usize = said
        .split("resuming ")
        .nth(1)
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|n| n.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("how many were kept: {said}"));
    assert!(kept > 200 && kept < 3000, "{said}");
    // A resume appends: the file's rows after the kept ones are this run's.
    let appended: BTreeMap<u64, serde_json::Value> = rows[kept..]
        .iter()
        .map(|row| (row.id, row_values(row)))
        .collect();
    assert_eq!(file_rows(&dir.path().join("copy.arrows")), appended);
}

#[test]
fn an_arrow_output_killed_mid_run_is_resumed_to_one_row_per_id() {
    let server = Server::start(&["--delay-ms", "1..5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.arrows");
    // Batches go out every second: some have reached the file.
    let size = || std::fs::metadata(&out).map_or(0, |m| m.len());
    kill_9_slow_run(dir.path(), &server.url(), 4000, "out.arrows", || {
        size() > 4096
    });
    let said = TestCommand::run(dir.path(), &server.url(), "0..4000")
        .shards(2)
        .concurrency(8)
        .args(["-o", "out.arrows", "--resume", "--no-progress"])
        .ok();
    assert!(said.contains("ids have rows"), "{said}");
    let rows = file_rows(&out);
    assert!(rows.keys().copied().eq(0..4000), "{} rows", rows.len());
    assert!(rows.values().all(|row| row[0] == 200));
    // Finished, it resumes to nothing, the end marker not taken for a torn row.
    let again = TestCommand::run(dir.path(), &server.url(), "0..4000")
        .args(["-o", "out.arrows", "--resume", "--no-progress"])
        .ok();
    assert!(
        again.contains("nothing to do") && !again.contains("torn"),
        "{again}"
    );
}

#[test]
fn the_copys_reader_going_away_stops_the_run_as_ctrl_c_does_and_resume_completes_it() {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let scrape = |slots: u64| {
        TestCommand::run(dir.path(), &server.url(), "0..20000")
            .shards(2)
            .concurrency(slots)
            .args(["-o", "out.csv", "--no-progress"])
    };
    let script = r#"
import json, sys
import pyarrow.ipc as ipc
batch = next(iter(ipc.open_stream(sys.stdin.buffer)))
print(json.dumps(batch.num_rows))
"#;
    let (code, err, read) = piped_to_python(scrape(4).args(["--arrow-copy", "-"]), script);
    assert!(read.as_u64().is_some_and(|n| n > 0), "{read}");
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("--arrow-copy -: its reader went away"),
        "{err}"
    );
    let rows = read_rows(&dir.path().join("out.csv"));
    assert!(
        !rows.is_empty() && rows.len() < 20000,
        "{} rows",
        rows.len()
    );
    scrape(128).arg("--resume").ok();
    assert_one_row_per_id(&read_rows(&dir.path().join("out.csv")), 0, 20000);
}

#[test]
fn a_copy_on_stdout_beside_rows_on_stdout_and_a_file_format_name_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = "http://127.0.0.1:9/{id}";
    let refused = [
        vec!["-o", "-", "--arrow-copy", "-"],
        vec!["-o", "out.arrow"],
        vec!["-o", "out.arrows", "--arrow-copy", "out.arrows"],
    ];
    for args in refused {
        let out = TestCommand::run(dir.path(), url, "0..10")
            .args(&args)
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("--arrow-copy") || err.contains(".arrows"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "no file made"
    );
    // A file of another kind under the stream's name is not resumed over.
    let foreign = "id,status\n1,200\n";
    std::fs::write(dir.path().join("f.arrows"), foreign).expect("write");
    let out = TestCommand::run(dir.path(), url, "0..10")
        .args(["-o", "f.arrows", "--resume"])
        .output_of();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not an Arrow IPC stream"),
        "{}",
        stderr(&out)
    );
    let kept = std::fs::read_to_string(dir.path().join("f.arrows")).expect("read");
    assert_eq!(kept, foreign, "left as it was");
}

#[test]
fn merge_joins_node_streams_into_one_stream_of_every_row() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    for node in ["0", "1"] {
        TestCommand::run(dir.path(), &server.url(), "0..3000")
            .args(["--node-index", node, "--node-count", "2", "--no-progress"])
            .output(&format!("n{node}.arrows"))
            .ok();
    }
    let out = ringscrape(
        dir.path(),
        &[
            "merge",
            "--ids",
            "0..3000",
            "m.arrows",
            "n0.arrows",
            "n1.arrows",
        ],
    );
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        !said.contains("torn"),
        "an end marker is no torn row: {said}"
    );
    let rows = file_rows(&dir.path().join("m.arrows"));
    assert!(rows.keys().copied().eq(0..3000), "{} rows", rows.len());
}

#[test]
fn ctrl_c_ends_the_stream_with_its_end_marker_and_resume_appends_after_it() {
    let server = Server::start(&["--delay-ms", "1..5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.arrows");
    let scrape = || {
        TestCommand::run(dir.path(), &server.url(), "0..20000")
            .shards(2)
            .concurrency(4)
            .args(["-o", "out.arrows", "--no-progress"])
    };
    let run = scrape().spawn();
    let size = || std::fs::metadata(&out).map_or(0, |m| m.len());
    let wrote = wait_for(Duration::from_secs(30), || (size() > 4096).then_some(()));
    assert!(wrote.is_some(), "no batch within 30 s");
    let pid = nix::unistd::Pid::from_raw(run.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let (code, err) = finish_within(run, Duration::from_secs(60));
    assert_eq!(code, Some(130), "{err}");
    let bytes = std::fs::read(&out).expect("read");
    assert!(
        bytes.ends_with(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        "no end marker"
    );
    let kept = file_rows(&out).len();
    assert!(kept > 0 && kept < 20000, "{kept} rows");
    let said = scrape().arg("--resume").ok();
    assert!(
        said.contains(&format!("{kept} of 20000 ids have rows")) && !said.contains("torn"),
        "{said}"
    );
    let rows = file_rows(&out);
    assert!(rows.keys().copied().eq(0..20000), "{} rows", rows.len());
}
