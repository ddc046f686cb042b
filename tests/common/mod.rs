//! Helpers shared by the integration tests: start `ringscrape serve` on a free loopback port,
//! run the built binary, and read its CSV back row by row.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringscrape");

/// A `ringscrape serve` process, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--threads", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringscrape serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listen line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
            .to_string();
        Server { child, base }
    }

    pub fn url(&self) -> String {
        format!("{}/log?id={{id}}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ringscrape <args>` run to completion in `dir` (so no config/default.toml is picked up).
pub fn ringscrape(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run ringscrape")
}

/// One CSV row, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: u64,
    pub status: Option<u16>,
    pub bytes: u64,
    pub latency_ms: f64,
    pub attempts: u32,
    pub error: String,
}

/// Reads a ringscrape CSV, checking the header; panics on a malformed row.
pub fn read_rows(path: &Path) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(path).expect("open csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        header,
        ["id", "status", "bytes", "latency_ms", "attempts", "error"]
    );
    reader
        .records()
        .map(|record| {
            let r = record.expect("well-formed row");
            Row {
                id: r[0].parse().expect("id"),
                status: if r[1].is_empty() {
                    None
                } else {
                    Some(r[1].parse().expect("status"))
                },
                bytes: r[2].parse().expect("bytes"),
                latency_ms: r[3].parse().expect("latency"),
                attempts: r[4].parse().expect("attempts"),
                error: r[5].to_string(),
            }
        })
        .collect()
}

/// Asserts that `rows` hold exactly one row per id of `start..end`.
pub fn assert_one_row_per_id(rows: &[Row], start: u64, end: u64) {
    let ids: HashSet<u64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rows.len(), "duplicate ids in the CSV");
    assert_eq!(rows.len() as u64, end - start, "row count");
    assert!(
        ids.iter().all(|id| (start..end).contains(id)),
        "id outside the range"
    );
}

/// The body `ringscrape serve` sends for `id`: `{"id":N}`.
pub fn demo_body_len(id: u64) -> u64 {
    format!("{{\"id\":{id}}}").len() as u64
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(value) = check() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Pids of the direct children of `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the `(comm)`: state ppid …
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}
