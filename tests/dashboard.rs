//! `--dashboard` and `--report`, as a person sees them: headless Chromium
//! (`tests/servers/browser.py`, the DevTools protocol) opens the live page during a run of
//! `serve` with faults, sees its figures change at least every 2 s and its totals agree with
//! `/metrics`; the report opens with the network cut, asks for nothing but itself, and its
//! totals and id-space map equal `--summary-json` and the CSV, through kill -9 of a worker and of
//! the whole run and a `--resume`. Screenshots go to target/test-artifacts/.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

pub fn artifact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir.join(name)
}

/// What headless Chromium saw of `url` (see browser.py).
pub fn browse(url: &str, extra: &[&str]) -> Value {
    let script = format!("{}/tests/servers/browser.py", env!("CARGO_MANIFEST_DIR"));
    python_json([&[script.as_str(), url][..], extra].concat())
}

/// A number as the page shows it ("3,015").
fn shown(texts: &Value, id: &str) -> u64 {
    let text = texts[id]
        .as_str()
        .unwrap_or_else(|| panic!("#{id} in {texts}"));
    text.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("#{id} = {text:?}"))
}

fn get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text
}

/// Rows of the CSV that succeeded (a 200) and that did not.
fn ok_and_failed(csv: &Path) -> (u64, u64) {
    let rows = read_rows(csv);
    let ok = rows.iter().filter(|r| r.status == Some(200)).count() as u64;
    (ok, rows.len() as u64 - ok)
}

/// The report seen with the network cut: it asked for nothing but itself, drew its charts, and
/// its map counts equal the CSV's (of `items`, those without a row pending).
fn assert_report_matches(report: &Path, csv: &Path, items: u64, screenshot: &str) -> Value {
    let url = format!("file://{}", report.display());
    let seen = browse(
        &url,
        &[
            "--offline",
            "--screenshot",
            artifact(screenshot).to_str().expect("utf-8"),
        ],
    );
    assert_eq!(seen["requests"], serde_json::json!([url]), "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let texts = &seen["texts"];
    assert_ne!(texts["mode"], "running", "a report is of a run that ended");
    assert_eq!(texts["charts"], 4, "{texts}");
    assert_eq!(
        texts["y_min"],
        serde_json::json!([0, 0, 0, 0]),
        "axes from zero: {texts}"
    );
    let (ok, failed) = ok_and_failed(csv);
    assert_eq!(
        (
            shown(texts, "map-ok"),
            shown(texts, "map-failed"),
            shown(texts, "map-pending")
        ),
        (ok, failed, items - ok - failed),
        "{texts}"
    );
    texts.clone()
}

#[test]
fn the_live_page_moves_with_the_run_and_the_report_equals_its_summary() {
    let server = Server::start(&["--drop-every", "13", "--delay-ms", "1..5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let scrape = || {
        TestCommand::run(dir.path(), &server.url(), "0..6000")
            .args(["--rate", "600", "--retries", "0", "-s", "2", "-c", "16"])
            .args(["-o", "out.csv", "--dashboard", &port.to_string()])
            .args(["--report", "report.html", "--summary-json", "summary.json"])
            .arg("--no-progress")
    };
    let run = scrape().spawn();
    let up = wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).ok()
    });
    assert!(up.is_some(), "the dashboard did not come up");
    let seen = browse(
        &format!("http://{addr}/"),
        &[
            "--watch",
            "5",
            "--screenshot",
            artifact("dashboard-live.png").to_str().expect("utf-8"),
        ],
    );
    let metrics = get(&addr, "/metrics");
    let samples = seen["samples"].as_array().expect("samples");
    assert!(samples.len() >= 4, "at least 4 updates in 5 s: {seen}");
    // The figures change at least every 2 s.
    for pair in samples.windows(2) {
        let gap = pair[1]["at"].as_f64().unwrap_or(0.0) - pair[0]["at"].as_f64().unwrap_or(0.0);
        assert!(gap <= 2000.0, "{gap} ms between updates");
        assert!(
            pair[1]["done"].as_u64() > pair[0]["done"].as_u64(),
            "{pair:?}"
        );
    }
    // Shown totals equal /metrics within one update (600 rows a second).
    let page_rows = samples
        .last()
        .and_then(|s| s["rows"].as_u64())
        .expect("rows");
    let metric_rows: u64 = metrics
        .lines()
        .filter(|line| line.starts_with("ringscrape_rows_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        metric_rows.abs_diff(page_rows) <= 1200,
        "page {page_rows}, /metrics {metric_rows}"
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    // kill -9 of a worker: its shard ends incomplete (exit 1); the report maps what is in the
    // file, the rest pending.
    let worker = *children_of(run.id()).first().expect("a worker");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the worker");
    let out = run.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary = |dir: &Path| -> Value {
        let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary");
        serde_json::from_str(&text).expect("json")
    };
    let (report, csv) = (dir.path().join("report.html"), dir.path().join("out.csv"));
    let texts = assert_report_matches(&report, &csv, 6000, "dashboard-report-killed.png");
    assert_eq!(
        shown(&texts, "rows"),
        summary(dir.path())["rows"].as_u64().expect("rows")
    );
    assert!(shown(&texts, "map-pending") > 0, "{texts}");
    // Items are left: the run is not "done", and has no ETA once it has ended.
    assert_eq!(texts["eta"], "—", "{texts}");
    assert_eq!(texts["mode"], "stopped, items left (--resume)", "{texts}");
    // --resume completes it: the report maps every item, the earlier run's rows too.
    let out = scrape().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let texts = assert_report_matches(&report, &csv, 6000, "dashboard-report.png");
    assert_eq!(
        shown(&texts, "rows"),
        summary(dir.path())["rows"].as_u64().expect("rows")
    );
    assert_eq!(shown(&texts, "done"), 6000);
    // Each worker's event loop, as the summary names the run's.
    let workers = report_state(&report)["workers"].clone();
    let driver = summary(dir.path())["driver"].clone();
    assert_eq!(workers.as_array().map(Vec::len), Some(2), "{workers}");
    for worker in workers.as_array().into_iter().flatten() {
        assert_eq!(worker["driver"], driver, "{workers}");
    }
    assert_eq!(texts["eta"], "done", "{texts}");
    assert_eq!(texts["mode"], "finished", "{texts}");
}

/// The state document a report embeds (what its charts are drawn from).
fn report_state(report: &Path) -> Value {
    let html = std::fs::read_to_string(report).expect("report");
    let start = r#"<script id="state" type="application/json">"#;
    let json = html
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(json, _)| json.replace("<\\/", "</"))
        .expect("the state in the report");
    serde_json::from_str(&json).expect("the state is JSON")
}

#[test]
fn the_report_draws_whole_seconds_only_with_no_cliff_at_the_end() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // 400 rows a second over 1,000 ids: about 2.5 s, the last second cut short by the end.
    let out = TestCommand::run(dir.path(), &server.url(), "0..1000")
        .args(["--rate", "400", "-s", "1", "-o", "out.csv"])
        .args(["--report", "report.html", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let state = report_state(&dir.path().join("report.html"));
    let elapsed = state["elapsed_s"].as_f64().expect("elapsed_s");
    let timeline = &state["timeline"];
    let width = timeline["bucket_s"].as_f64().expect("bucket_s");
    let buckets = timeline["buckets"].as_array().expect("buckets");
    assert!(!buckets.is_empty(), "{state}");
    for bucket in buckets {
        let end = bucket["t"].as_f64().expect("t") + width;
        assert!(
            end <= elapsed,
            "bucket to {end} s drawn at {elapsed} s: {timeline}"
        );
    }
    // The last second drawn is a whole one: near the rate, not a fraction of it.
    let last = buckets.last().and_then(|b| b["rows"].as_u64()).unwrap_or(0);
    assert!(
        last >= 300,
        "{last} rows in the last second drawn: {timeline}"
    );
}

#[test]
fn after_kill_9_and_resume_the_report_maps_the_earlier_rows_too() {
    let server = Server::start(&["--drop-every", "13"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let scrape = || {
        TestCommand::run(dir.path(), &server.url(), "0..4000")
            .args([
                "--rate",
                "800",
                "--retries",
                "0",
                "-s",
                "2",
                "-o",
                "out.csv",
            ])
            .args(["--report", "report.html", "--no-progress"])
    };
    let mut run = scrape().spawn();
    let going = wait_for(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(dir.path().join("out.csv")).ok()?;
        (text.lines().count() > 1500).then_some(())
    });
    assert!(going.is_some(), "no rows came");
    kill_9(&mut run);
    let out = scrape().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let texts = assert_report_matches(
        &dir.path().join("report.html"),
        &dir.path().join("out.csv"),
        4000,
        "dashboard-resumed-report.png",
    );
    assert_eq!(shown(&texts, "done"), 4000);
    assert!(
        shown(&texts, "rows") < 4000,
        "this run's rows only: {texts}"
    );
}

#[test]
fn the_report_is_written_on_sigterm_and_on_abort_after_and_shows_no_credential() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let run = TestCommand::run(dir.path(), &server.url(), "0..100000")
        .args([
            "--rate",
            "500",
            "-s",
            "2",
            "-o",
            "out.csv",
            "--report",
            "report.html",
        ])
        .args(["-H", "Authorization: Bearer s3cret-token", "--no-progress"])
        .args(["--dashboard", &port.to_string()])
        .spawn();
    let addr = format!("127.0.0.1:{port}");
    let state = wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(dir.path().join("out.csv")).ok()?;
        (text.lines().count() > 500).then(|| get(&addr, "/state") + &get(&addr, "/"))
    })
    .expect("rows came");
    assert!(
        !state.contains("s3cret") && state.contains("\"progress\""),
        "{state}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let out = run.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let (report, csv) = (dir.path().join("report.html"), dir.path().join("out.csv"));
    assert_report_matches(&report, &csv, 100_000, "dashboard-report-sigterm.png");
    assert!(
        !std::fs::read_to_string(&report)
            .expect("report")
            .contains("s3cret")
    );
    // A target that is down: --abort-after stops the run, and the report says what it saw.
    let down = format!("http://127.0.0.1:{}/log?id={{id}}", free_port());
    let out = TestCommand::run(dir.path(), &down, "0..1000")
        .args(["--abort-after", "20", "--retries", "0", "-o", "down.csv"])
        .args(["--report", "down.html", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let texts = assert_report_matches(
        &dir.path().join("down.html"),
        &dir.path().join("down.csv"),
        1000,
        "dashboard-report-aborted.png",
    );
    assert!(shown(&texts, "map-failed") >= 20, "{texts}");
}

#[test]
fn a_report_through_a_symlink_or_a_fifo_leaves_the_link_and_the_fifo_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("kept.html"), "an older report").expect("write");
    std::os::unix::fs::symlink("kept.html", d.join("link.html")).expect("symlink");
    let fifo = d.join("report.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // A reader on the FIFO, as `--report /dev/stdout | …` has.
    let mut reader = std::process::Command::new("cat")
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cat");
    let out = TestCommand::run(d, &server.url(), "0..20")
        .args(["--report", "link.html", "--no-progress", "-o", "a.csv"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = TestCommand::run(d, &server.url(), "0..20")
        .args(["--report", "report.fifo", "--no-progress", "-o", "b.csv"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The reader is ended before anything is asserted: a FIFO replaced by a file leaves it
    // waiting for a writer that never comes.
    let still_a_fifo = std::fs::symlink_metadata(&fifo).is_ok_and(|m| m.file_type().is_fifo());
    let ended = wait_for(Duration::from_secs(5), || reader.try_wait().ok().flatten());
    if ended.is_none() {
        let _ = reader.kill();
    }
    let _ = reader.wait();
    let mut read = String::new();
    let _ = reader
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut read);
    assert!(still_a_fifo, "the FIFO was replaced by a file");
    let link = std::fs::symlink_metadata(d.join("link.html")).expect("link");
    assert!(link.is_symlink(), "the link was replaced by a file");
    let kept = std::fs::read_to_string(d.join("kept.html")).expect("target");
    assert!(kept.starts_with("<!doctype html>"), "{kept:.80}");
    assert!(
        read.starts_with("<!doctype html>"),
        "the reader got {read:.80}"
    );
}

#[test]
fn the_dashboard_answers_its_own_names_and_gets_only_and_warns_when_bound_wide() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut run = TestCommand::run(dir.path(), &server.url(), "0..1000")
        .args(["--rate", "1", "-o", "out.csv", "--no-progress"])
        .args(["--dashboard", &format!("0.0.0.0:{port}")])
        .spawn();
    let up = wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).ok()
    });
    assert!(up.is_some(), "the dashboard did not come up");
    let ask = |request: String| {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    };
    let own = ask(format!("GET /state HTTP/1.1\r\nhost: {addr}\r\n\r\n"));
    let localhost = ask(format!("GET / HTTP/1.1\r\nhost: localhost:{port}\r\n\r\n"));
    // A page on evil.example whose name was rebound to this address.
    let rebound = ask(format!(
        "GET /state HTTP/1.1\r\nhost: evil.example:{port}\r\n\r\n"
    ));
    let post = ask(format!(
        "POST /state HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n\r\n"
    ));
    let delete = ask(format!("DELETE / HTTP/1.1\r\nhost: {addr}\r\n\r\n"));
    let _ = run.kill();
    let out = run.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert!(own.starts_with("HTTP/1.1 200 OK"), "{own:.200}");
    assert!(localhost.starts_with("HTTP/1.1 200 OK"), "{localhost:.200}");
    assert!(rebound.starts_with("HTTP/1.1 403 "), "{rebound:.200}");
    assert!(!rebound.contains("\"progress\""), "{rebound:.400}");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post:.200}");
    assert!(delete.starts_with("HTTP/1.1 405 "), "{delete:.200}");
    assert!(
        err.contains(&format!(
            "warning: --dashboard 0.0.0.0:{port} is not a loopback address"
        )),
        "{err}"
    );
}
