//! Rate-limit headers obeyed: against a quota server of tests/servers (a fixed window of Q
//! requests per W seconds, 429 beyond it) speaking each family of headers — the IETF draft's
//! `RateLimit-Policy`/`RateLimit` (08 on) and `RateLimit-Limit/-Remaining/-Reset` (up to 07),
//! and GitHub's `X-RateLimit-*` with a reset in Unix seconds — two shards use most of the quota
//! and are almost never refused; with `--no-rate-limit-headers` the same run is refused often
//! (what shows the checks can fail). The server counts each window's answers itself.

use std::io::{Read, Write};

use crate::common::*;

/// Requests per window, and the window in seconds.
const QUOTA: u64 = 100;
const WINDOW: &str = "2";
/// Items of a run: about 8 s of the quota.
const ITEMS: u64 = 400;

/// What the server answered in each window: (200s, 429s), in order.
fn windows(base: &str) -> Vec<(u64, u64)> {
    hosts_windows(base).into_iter().map(|(_, w)| w).collect()
}

/// What the server answered in each window, with the host it counted (`--per-host`).
fn hosts_windows(base: &str) -> Vec<(String, (u64, u64))> {
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the quota server");
    write!(stream, "GET /stats HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let stats: serde_json::Value = serde_json::from_str(body).expect("JSON stats");
    let rows = stats["windows"].as_array().expect("windows").iter();
    rows.map(|w| {
        let host = w[3].as_str().unwrap_or_default().to_string();
        (
            host,
            (w[1].as_u64().expect("200s"), w[2].as_u64().expect("429s")),
        )
    })
    .collect()
}

/// Runs 2 shards × 4 over [`ITEMS`] against a quota server of `style` with `extra` flags; the
/// server's windows and ringscrape's stderr and summary document.
fn run(style: &str, extra: &[&str]) -> (Vec<(u64, u64)>, String, serde_json::Value) {
    let quota = QUOTA.to_string();
    let args = ["--style", style, "--quota", &quota, "--window", WINDOW];
    let server = AiohttpTarget::start_script_with("quota_target.py", &args);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/item?id={{id}}", server.base);
    let summary = dir.path().join("summary.json");
    let stderr = TestCommand::run(dir.path(), &url, &format!("0..{ITEMS}"))
        .shards(2)
        .concurrency(4)
        .output("out.csv")
        .args(["--retries", "30", "--summary-json"])
        .arg(&summary)
        .args(extra)
        .ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, ITEMS);
    assert!(rows.iter().all(|r| r.status == Some(200)), "{rows:?}");
    let document = std::fs::read_to_string(&summary).expect("summary written");
    let document = serde_json::from_str(&document).expect("summary JSON");
    (windows(&server.base), stderr, document)
}

/// The share of answers that were 429, and of the quota used in the windows the run spanned
/// whole (its first and last are partly outside it).
fn refused_and_used(windows: &[(u64, u64)]) -> (f64, f64) {
    let ok: u64 = windows.iter().map(|w| w.0).sum();
    let refused: u64 = windows.iter().map(|w| w.1).sum();
    let whole = &windows[1..windows.len().saturating_sub(1).max(1)];
    let used: u64 = whole.iter().map(|w| w.0).sum();
    let share_used = used as f64 / (QUOTA * whole.len().max(1) as u64) as f64;
    (refused as f64 / (ok + refused) as f64, share_used)
}

/// Under 1% of the answers are 429 while at least 85% of the quota is used, and the summary
/// says the time paced.
fn assert_quota_used_not_overrun(style: &str) {
    let (windows, stderr, summary) = run(style, &[]);
    let (refused, used) = refused_and_used(&windows);
    // The figures, for the record (`--nocapture`).
    eprintln!(
        "{style}: {:.2}% refused, {:.1}% of the quota used: {windows:?}",
        refused * 100.0,
        used * 100.0
    );
    assert!(
        windows.len() >= 4,
        "{style}: a run of 4 windows or more: {windows:?}"
    );
    assert!(
        refused < 0.01,
        "{style}: {:.1}% refused: {windows:?}",
        refused * 100.0
    );
    assert!(
        used >= 0.85,
        "{style}: {:.0}% of the quota used: {windows:?}",
        used * 100.0
    );
    assert!(stderr.contains("paced by RateLimit: "), "{stderr}");
    let paced = summary["paced_by_ratelimit_s"].as_f64().expect("a number");
    assert!(paced > 1.0, "{style}: paced {paced} s");
}

#[test]
fn draft_08_ratelimit_policy_is_used_not_overrun() {
    assert_quota_used_not_overrun("draft08");
}

#[test]
fn github_x_ratelimit_with_a_unix_time_reset_is_used_not_overrun() {
    assert_quota_used_not_overrun("github");
}

#[test]
fn draft_07_ratelimit_headers_are_used_not_overrun() {
    assert_quota_used_not_overrun("draft07");
}

#[test]
fn without_the_headers_the_same_run_is_refused_often() {
    let (windows, stderr, summary) = run("draft08", &["--no-rate-limit-headers"]);
    let (refused, used) = refused_and_used(&windows);
    eprintln!(
        "off: {:.2}% refused, {:.1}% of the quota used: {windows:?}",
        refused * 100.0,
        used * 100.0
    );
    // 4.8% in a run of 2026-12-06 (the 429 back-off and Retry-After learn a little each
    // window): twice the 1% the headers keep under, at least.
    assert!(
        refused > 0.02,
        "{:.1}% refused: {windows:?}",
        refused * 100.0
    );
    assert!(!stderr.contains("paced by RateLimit"), "{stderr}");
    assert_eq!(summary["paced_by_ratelimit_s"].as_f64(), Some(0.0));
}

#[test]
fn verbose_says_what_the_server_said_and_the_pace() {
    let (_, stderr, _) = run("github", &["-v"]);
    let line = stderr
        .lines()
        .find(|l| l.contains("requests left, reset in"))
        .unwrap_or_else(|| panic!("no pacing line: {stderr}"));
    assert!(line.contains("127.0.0.1 says "), "{line}");
    // Said when it changes, at most once a second per worker: a few lines, not one per answer.
    let said = stderr
        .lines()
        .filter(|l| l.contains("requests left"))
        .count();
    assert!(said <= 2 * 12, "{said} lines");
}

/// Many hosts: each host's quota paces that host, and its worker uses all of it (every item of
/// a host is one worker's): two names of one server, each with a quota of its own.
#[test]
fn each_hosts_quota_paces_that_host_and_is_used_whole() {
    let quota = QUOTA.to_string();
    let args = [
        "--style",
        "draft08",
        "--quota",
        &quota,
        "--window",
        WINDOW,
        "--per-host",
    ];
    let server = AiohttpTarget::start_script_with("quota_target.py", &args);
    let port = server.base.rsplit(':').next().expect("a port").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let per_host = ITEMS / 2;
    let mut keys = String::from("host\n");
    for i in 0..ITEMS {
        keys.push_str(if i % 2 == 0 { "a.test\n" } else { "b.test\n" });
    }
    std::fs::write(dir.path().join("hosts.csv"), keys).expect("write the key file");
    let url = format!("http://{{host}}:{port}/item?id={{id}}");
    let stderr = TestCommand::new(dir.path())
        .args(["run", "-u", &url, "--keys", "hosts.csv"])
        .shards(2)
        .concurrency(4)
        .output("out.csv")
        .args(["--retries", "30", "-v"])
        .args(["--resolve", &format!("a.test:{port}:127.0.0.1")])
        .args(["--resolve", &format!("b.test:{port}:127.0.0.1")])
        .ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, ITEMS);
    assert!(rows.iter().all(|r| r.status == Some(200)), "{rows:?}");
    let all = hosts_windows(&server.base);
    for host in ["a.test", "b.test"] {
        let name = format!("{host}:{port}");
        let windows: Vec<(u64, u64)> = (all.iter())
            .filter(|(h, _)| *h == name)
            .map(|(_, w)| *w)
            .collect();
        let answered: u64 = windows.iter().map(|w| w.0).sum();
        assert_eq!(answered, per_host, "{name}: {windows:?}");
        let (refused, used) = refused_and_used(&windows);
        eprintln!(
            "{name}: {:.2}% refused, {:.1}% of the quota used: {windows:?}",
            refused * 100.0,
            used * 100.0
        );
        assert!(
            refused < 0.01,
            "{name}: {:.1}% refused: {windows:?}",
            refused * 100.0
        );
        assert!(
            used >= 0.85,
            "{name}: {:.0}% of the quota used: {windows:?}",
            used * 100.0
        );
    }
    assert!(stderr.contains("paced by RateLimit: "), "{stderr}");
    assert!(stderr.contains(".test:"), "-v names the host: {stderr}");
}

#[test]
fn a_reset_thousands_of_years_ahead_waits_no_longer_than_max_retry_after() {
    // Every answer: nothing left until a Unix time in the year 5138 (one host, then many).
    let nginx = Nginx::start(
        "",
        "location / { add_header X-RateLimit-Remaining 0; \
         add_header X-RateLimit-Reset 99999999999; return 200 'ok'; }",
    );
    let port = nginx
        .base
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    for url in [
        format!("http://127.0.0.1:{port}/x/{{id}}"),
        // The host from a key: the many-host path (a table of hosts, each paced alone).
        format!("http://{{host}}:{port}/x/{{n}}"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = "n,host\n1,127.0.0.1\n2,127.0.0.1\n3,127.0.0.1\n";
        std::fs::write(dir.path().join("keys.csv"), keys).expect("write keys");
        let items: &[&str] = match url.contains("{host}") {
            true => &["--keys", "keys.csv"],
            false => &["-i", "0..3"],
        };
        let started = std::time::Instant::now();
        let out = TestCommand::new(dir.path())
            .args(["run", "-u", &url, "-s", "1", "-c", "1", "-o", "out.csv"])
            .args(items)
            .args(["--max-retry-after", "1", "--no-progress"])
            .output_of();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let rows = read_rows(&dir.path().join("out.csv"));
        assert_one_row_per_id(&rows, 0, 3);
        assert!(rows.iter().all(|r| r.status == Some(200)), "{rows:?}");
        // Three requests of one host: two waits of at most 1 s each.
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "{url}: {took:?}");
    }
}
