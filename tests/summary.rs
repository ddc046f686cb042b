//! `--summary-json`: the closing figures as JSON, counted from the rows themselves, so they
//! equal what the CSV holds; the stderr summary says the same.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::Value;

#[test]
fn the_json_summary_counts_what_the_csv_holds() {
    // 503 once for every id (a retry each), and every 7th id closed without an answer.
    let server = Server::start(&["--fail-first", "1", "--drop-every", "7"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = scrape_ok(
        dir.path(),
        &server.url(),
        0,
        700,
        16,
        &[
            "--retries",
            "1",
            "--retry-base",
            "0.01",
            "--summary-json",
            "summary.json",
        ],
    );
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("summary.json")).expect("summary.json"),
    )
    .expect("valid JSON");

    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for row in &rows {
        match row.status {
            Some(code) => *status.entry(code.to_string()).or_default() += 1,
            None => *errors.entry(row.error.clone()).or_default() += 1,
        }
    }
    let attempts: u64 = rows.iter().map(|r| u64::from(r.attempts)).sum();
    let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    let as_map = |v: &Value| -> BTreeMap<String, u64> {
        v.as_object()
            .expect("object")
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
            .collect()
    };
    assert_eq!(json["rows"], 700);
    assert_eq!(as_map(&json["status"]), status);
    assert_eq!(as_map(&json["errors"]), errors);
    assert!(!errors.is_empty() && status.contains_key("200"), "{json}");
    assert_eq!(json["requests"], attempts);
    assert_eq!(json["retries"], attempts - 700);
    assert_eq!(json["bytes"], bytes);
    let latency = &json["latency_ms"];
    let p = |k: &str| {
        latency[k]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_ms.{k} in {json}"))
    };
    assert!(p("min") <= p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99"));
    assert!(
        p("p99") <= p("p999") && p("p999") <= p("max") && p("mean") > 0.0,
        "{json}"
    );
    for key in ["throttled_s", "wall_s", "req_per_s"] {
        assert!(json[key].as_f64().is_some(), "{key} in {json}");
    }
}

#[test]
fn stderr_and_the_json_summary_give_the_same_requests_rate_and_output_file() {
    // 503 once for every id: 400 rows, 800 requests (each row's first and one retry).
    let server = Server::start(&["--fail-first", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let err = TestCommand::run(dir.path(), &server.url(), "0..400")
        .args([
            "-s",
            "2",
            "-c",
            "16",
            "--retries",
            "1",
            "--retry-base",
            "0.01",
        ])
        .args([
            "-o",
            "out.csv",
            "--summary-json",
            "summary.json",
            "--no-progress",
        ])
        .ok();
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("summary.json")).expect("summary.json"),
    )
    .expect("valid JSON");
    assert_eq!(
        (json["rows"].as_u64(), json["requests"].as_u64()),
        (Some(400), Some(800))
    );
    assert_eq!(json["retries"], 400);
    let rate = json["req_per_s"].as_f64().expect("req_per_s");
    for line in [
        format!("requests   800 sent (400 retries), {rate:.0} req/s"),
        "items      400 of 400 done".to_string(),
        "rows       400 written to out.csv  (2xx 400,".to_string(),
    ] {
        assert!(err.contains(&line), "{line:?} in {err}");
    }
    assert_eq!(
        (json["items"].as_u64(), json["items_done"].as_u64()),
        (Some(400), Some(400))
    );
    assert_eq!(json["output"], "out.csv");
    assert_eq!(
        (json["exit_code"].as_u64(), json["complete"].as_bool()),
        (Some(0), Some(true))
    );
}

#[test]
fn the_json_summary_says_what_ran_and_how_it_ended_as_the_process_and_stderr_did() {
    // Nothing listens: --abort-after stops the run (exit 3), items left.
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{port}/log?id={{id}}");
    let out = TestCommand::run(dir.path(), &url, "0..100000")
        .shards(1)
        .concurrency(8)
        .output("out.csv")
        .args(["--retries", "0", "--abort-after", "50", "--no-progress"])
        .args([
            "-H",
            "Authorization: Bearer s3cret-token",
            "-H",
            "Accept: */*",
        ])
        .args(["--summary-json", "summary.json"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("summary.json")).expect("summary.json"),
    )
    .expect("valid JSON");
    assert_eq!(json["version"], 1);
    assert_eq!(json["ringscrape"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["exit_code"].as_i64(), out.status.code().map(i64::from));
    assert_eq!(json["complete"], false, "a stopped run is not complete");
    let command = json["command"].as_str().expect("command");
    assert!(command.contains("--abort-after 50"), "{command}");
    assert!(command.contains("Accept: */*"), "{command}");
    assert!(!command.contains("s3cret-token"), "{command}");
    let (started, ended) = (
        json["started"].as_str().expect("started"),
        json["ended"].as_str().expect("ended"),
    );
    // RFC 3339 in UTC to the millisecond: the same width, so the text order is the time order.
    assert!(started.len() == 24 && started.ends_with('Z'), "{started}");
    assert!(ended.len() == 24 && started <= ended, "{started} {ended}");
    // The stderr summary is printed from the same document.
    let n = |key: &str| {
        json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {json}"))
    };
    for line in [
        format!("items      {} of {} done", n("items_done"), n("items")),
        format!("rows       {} written to out.csv", n("rows")),
        format!(
            "requests   {} sent ({} retries), {:.0} req/s",
            n("requests"),
            n("retries"),
            json["req_per_s"].as_f64().expect("req_per_s")
        ),
        format!("errors     connect {}", json["errors"]["connect"]),
    ] {
        assert!(err.contains(&line), "{line:?} in {err}");
    }
}

/// The timeline's buckets summed, and the id map's cells summed per (ok, failed).
fn timeline_totals(json: &Value) -> (u64, u64, u64) {
    let buckets = json["timeline"]["buckets"].as_array().expect("buckets");
    let sum = |f: &dyn Fn(&Value) -> u64| buckets.iter().map(f).sum::<u64>();
    (
        sum(&|b| b["rows"].as_u64().unwrap_or(0)),
        sum(&|b| b["retries"].as_u64().unwrap_or(0)),
        sum(&|b| b["status"]["2xx"].as_u64().unwrap_or(0)),
    )
}

fn map_cells(json: &Value) -> Vec<[u64; 3]> {
    json["id_map"]["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| [0, 1, 2].map(|k| c[k].as_u64().expect("count")))
        .collect()
}

#[test]
fn the_timeline_and_the_id_map_count_what_the_file_holds_also_after_a_resume() {
    // Every 7th id closed without an answer: failed cells among the ok ones.
    let server = Server::start(&["--drop-every", "7", "--delay-ms", "1..3"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let scrape = || {
        TestCommand::run(dir.path(), &server.url(), "0..20000")
            .args(["-s", "2", "-c", "16", "--retries", "0", "-o", "out.csv"])
            .args(["--summary-json", "summary.json", "--no-progress"])
    };
    let mut run = scrape().spawn();
    let going = wait_for(std::time::Duration::from_secs(20), || {
        let text = std::fs::read_to_string(dir.path().join("out.csv")).ok()?;
        (text.lines().count() > 3000).then_some(())
    });
    assert!(going.is_some(), "no rows came");
    kill_9(&mut run);
    let out = scrape().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("summary.json")).expect("summary.json"),
    )
    .expect("valid JSON");
    // The timeline is this run's rows.
    let rows = json["rows"].as_u64().expect("rows");
    let (timeline_rows, retries, ok) = timeline_totals(&json);
    assert_eq!((timeline_rows, retries), (rows, 0));
    assert_eq!(ok, json["status"]["200"].as_u64().unwrap_or(0));
    // The map is the whole file's: the earlier run's rows too.
    assert_eq!(json["id_map"]["per_cell"], 5);
    let cells = map_cells(&json);
    assert_eq!(cells.len(), 4000);
    let file = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&file, 0, 20000);
    for (cell, counts) in cells.iter().enumerate() {
        let of_cell = file.iter().filter(|r| r.id / 5 == cell as u64);
        let ok = of_cell.clone().filter(|r| r.status == Some(200)).count() as u64;
        let failed = of_cell.count() as u64 - ok;
        assert_eq!(*counts, [ok, failed, 0], "cell {cell}");
    }
}

/// What a terminal showed, as lines: carriage returns and line ends split it, escape sequences
/// (`ESC [ … letter`) are dropped.
fn terminal_lines(raw: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .split(['\r', '\n'])
        .map(str::to_string)
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn the_progress_line_shows_no_eta_before_an_item_is_done_and_keeps_its_width_and_separators() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // About 3 s at 2,000 requests a second: a dozen frames, the rate past a thousand.
    let run = TestCommand::run(dir.path(), &server.url(), "0..6000")
        .args(["--rate", "2000", "-s", "1", "-o", "out.csv"])
        .into_command();
    let line: Vec<String> = std::iter::once(run.get_program())
        .chain(run.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    // `script` gives the run a terminal (the line is drawn only on one) and copies it out.
    let mut script = std::process::Command::new("script");
    script
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null());
    for (name, value) in run.get_envs() {
        match value {
            Some(value) => script.env(name, value),
            None => script.env_remove(name),
        };
    }
    let out = script.output().expect("script (util-linux)");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<String> = terminal_lines(&shown)
        .into_iter()
        .filter(|line| line.contains("req/s") && line.contains("ETA"))
        .collect();
    assert!(frames.len() >= 4, "{shown}");
    let bar_end: Vec<Option<usize>> = frames.iter().map(|f| f.find(']')).collect();
    assert!(
        bar_end.iter().all(|end| *end == bar_end[0]),
        "the figures moved: {frames:#?}"
    );
    for frame in &frames {
        assert!(!frame.contains("ETA 0s"), "{frame}");
        if frame.contains("] 0/") || frame.contains(" 0/6,000 items") {
            assert!(frame.ends_with("ETA --:--:--"), "{frame}");
        }
    }
    // The rate past a thousand has its separator, as the counts do.
    let separated = frames.iter().any(|f| {
        f.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[1] == "req/s" && w[0].len() > 3 && w[0].contains(','))
    });
    assert!(separated, "{frames:#?}");
}
