//! `--ids-file`: keys from the lines of a file (or standard input), percent-encoded in the URL,
//! raw in headers; the CSV's `id` holds the key and `line` its line number; shards split the
//! lines; a killed run resumes to every non-empty line exactly once.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use ringscrape::output::reader::RowReader;
use serde_json::Value;

/// A row of a run over keys: its key, line and the rest as the test reads them.
#[derive(Debug)]
struct KeyRow {
    key: String,
    line: u64,
    status: Option<u16>,
    extra: Vec<String>,
}

fn read_key_rows(path: &Path) -> Vec<KeyRow> {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("open"));
    let mut reader = RowReader::new(file).expect("header");
    assert_eq!(reader.columns()[6], "line");
    let mut rows = Vec::new();
    while let Some(raw) = reader.next_row().expect("row") {
        let row = raw.typed().expect("typed");
        rows.push(KeyRow {
            key: row.id,
            line: row.extra[0].parse().expect("line number"),
            status: row.status,
            extra: row.extra[1..].to_vec(),
        });
    }
    rows
}

/// Keys that need encoding in a URL, with empty lines between some of them.
fn awkward_keys(n: usize) -> (String, HashMap<u64, String>) {
    let specials = [
        "a b",
        "x&y=z",
        "dir/file",
        "what?",
        "100%",
        "1+1",
        "é ü 中",
        "../../etc/passwd",
    ];
    let mut text = String::new();
    let mut by_line = HashMap::new();
    let mut line = 0;
    for k in 0..n {
        line += 1;
        if k % 10 == 3 {
            text.push('\n');
            line += 1;
        }
        let key = format!("{}-{k}", specials[k % specials.len()]);
        text.push_str(&key);
        text.push('\n');
        by_line.insert(line, key);
    }
    (text, by_line)
}

/// What `{id}` becomes in the URL: every byte but A-Z a-z 0-9 - . _ ~ as %XX.
fn percent(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn assert_rows_match_keys(rows: &[KeyRow], by_line: &HashMap<u64, String>) {
    assert_eq!(rows.len(), by_line.len(), "one row per non-empty line");
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        assert!(seen.insert(row.line), "line {} twice", row.line);
        assert_eq!(Some(&row.key), by_line.get(&row.line), "{row:?}");
    }
}

#[test]
fn keys_from_a_file_over_three_shards_are_encoded_in_the_url_and_raw_in_headers() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (text, by_line) = awkward_keys(3000);
    std::fs::write(dir.path().join("keys.txt"), text).expect("write");
    let url = format!("{}/echo?k={{id}}", server.base);
    let out = TestCommand::keys(dir.path(), &url, "keys.txt")
        .shards(3)
        .concurrency(8)
        .output("out.csv")
        .args(["-H", "X-Key: {id}", "--save-body"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("skipping 300 empty lines"), "{err}");
    assert!(err.contains("skipped    300 empty lines"), "summary: {err}");
    let rows = read_key_rows(&dir.path().join("out.csv"));
    assert_rows_match_keys(&rows, &by_line);
    for row in &rows {
        assert_eq!(row.status, Some(200), "{row:?}");
        let echo: Value = serde_json::from_str(&row.extra[0]).expect("echo json");
        assert_eq!(
            echo["target"],
            format!("/echo?k={}", percent(&row.key)),
            "{row:?}"
        );
        let headers = echo["headers"].as_array().expect("headers");
        assert!(
            headers
                .iter()
                .any(|h| h[0] == "x-key" && h[1] == row.key.as_str()),
            "{row:?}"
        );
    }
}

#[test]
fn keys_from_standard_input() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (text, by_line) = awkward_keys(500);
    let url = format!("{}/echo?k={{id}}", server.base);
    let mut run = TestCommand::keys(dir.path(), &url, "-")
        .output("out.csv")
        .concurrency(8)
        .into_command()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    run.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("pipe keys");
    let out = run.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_key_rows(&dir.path().join("out.csv"));
    assert_rows_match_keys(&rows, &by_line);
}

#[test]
fn hostile_keys_keep_their_bodies_inside_the_bodies_dir() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let long = "k".repeat(4000);
    let keys = [
        "../../escape",
        "/etc/ringscrape-x",
        "a\0b",
        ".",
        "..",
        long.as_str(),
        "ok-1",
    ];
    std::fs::write(dir.path().join("keys.txt"), keys.join("\n")).expect("write");
    let url = format!("{}/echo?k={{id}}", server.base);
    let out = TestCommand::keys(dir.path(), &url, "keys.txt")
        .shards(2)
        .concurrency(4)
        .output("out.csv")
        .args(["--bodies-dir", "bodies"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_key_rows(&dir.path().join("out.csv"));
    assert_eq!(rows.len(), keys.len());
    let bodies = dir
        .path()
        .join("bodies")
        .canonicalize()
        .expect("bodies dir");
    for row in &rows {
        assert_eq!(row.status, Some(200), "{row:?}");
        let file = bodies
            .join(&row.extra[0])
            .canonicalize()
            .expect("body file exists");
        assert!(file.starts_with(&bodies), "{file:?} outside {bodies:?}");
        let echo: Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        assert_eq!(echo["target"], format!("/echo?k={}", percent(&row.key)));
    }
    assert!(!Path::new("/etc/ringscrape-x").exists());
    assert!(!dir.path().join("../escape").exists());
}

#[test]
fn a_killed_run_over_keys_resumes_to_every_line_exactly_once() {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (text, by_line) = awkward_keys(6000);
    std::fs::write(dir.path().join("keys.txt"), text).expect("write");
    // /log (not /echo) takes the 20–40 ms delay, so the run is still going when killed.
    let url = format!("{}/log?k={{id}}", server.base);
    let scrape = || {
        TestCommand::keys(dir.path(), &url, "keys.txt")
            .shards(3)
            .concurrency(16)
            .output("out.csv")
            .args(["--bodies-dir", "bodies"])
    };
    let mut run = scrape().spawn();
    let workers = wait_for_workers(&run, 3, |_| true);
    wait_for_rows(&dir.path().join("out.csv"), 100);
    // kill -9 of the supervisor: the workers die with it (PDEATHSIG), the CSV may end torn.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = run.wait();
    let gone = wait_for(Duration::from_secs(5), || {
        workers
            .iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            .then_some(())
    });
    assert!(gone.is_some(), "workers outlived the supervisor");
    let partial = std::fs::read_to_string(dir.path().join("out.csv")).expect("partial csv");
    let before = partial.lines().count().saturating_sub(1);
    assert!(
        before > 0 && before < by_line.len(),
        "killed mid-run: {before} rows"
    );

    let out = scrape().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming out.csv"),
        "{}",
        stderr(&out)
    );
    let rows = read_key_rows(&dir.path().join("out.csv"));
    assert_rows_match_keys(&rows, &by_line);
    assert!(rows.iter().all(|r| r.status == Some(200)));
    // No row points at a missing or partial body file, before or after the kill.
    for row in &rows {
        let body = std::fs::read(dir.path().join("bodies").join(&row.extra[0])).expect("body file");
        assert_eq!(body, b"{\"id\":null}", "{row:?}");
    }
}

#[test]
fn a_byte_order_mark_at_the_start_of_the_key_file_is_no_part_of_the_first_key() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // As Windows Notepad saves a file: a UTF-8 byte order mark, CRLF line ends.
    std::fs::write(
        dir.path().join("keys.txt"),
        b"\xEF\xBB\xBFalpha\r\nbeta\r\n",
    )
    .expect("keys");
    let url = format!("{}/echo?k={{id}}", server.base);
    TestCommand::keys(dir.path(), &url, "keys.txt")
        .output("out.csv")
        .arg("--save-body")
        .ok();
    let rows = read_key_rows(&dir.path().join("out.csv"));
    let mut targets: Vec<(String, String)> = rows
        .iter()
        .map(|row| {
            let echo: Value = serde_json::from_str(&row.extra[0]).expect("echo json");
            (
                row.key.clone(),
                echo["target"].as_str().expect("target").to_string(),
            )
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            ("alpha".to_string(), "/echo?k=alpha".to_string()),
            ("beta".to_string(), "/echo?k=beta".to_string())
        ]
    );
}
