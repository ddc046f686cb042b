//! `--concurrency auto` and `ringscrape tune` against `serve --max-inflight 64 --delay-ms 50..50`:
//! a server that works on 64 requests at a time (50 ms each, so 1,280 req/s at most) and queues
//! the rest, so more concurrency only buys latency.

use crate::common::*;

/// The server's capacity: 64 at a time, 50 ms each.
const CAPACITY_REQ_PER_S: f64 = 64.0 / 0.050;

fn capped_server() -> Server {
    Server::start(&["--delay-ms", "50..50", "--max-inflight", "64"])
}

#[test]
fn auto_concurrency_reaches_the_servers_capacity_without_queueing_much() {
    let server = capped_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let out = TestCommand::run(dir.path(), &url, "0..16000")
        .shards(2)
        .args(["-c", "auto"])
        .output("out.csv")
        .args(["--summary-json", "summary.json", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 16000);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("summary.json")).expect("summary"),
    )
    .expect("json");
    let req_per_s = summary["req_per_s"].as_f64().expect("req/s");
    let p50 = summary["latency_ms"]["p50"].as_f64().expect("p50");
    // The whole run counts, ramp-up included.
    assert!(
        req_per_s >= 0.9 * CAPACITY_REQ_PER_S,
        "{req_per_s:.0} req/s of {CAPACITY_REQ_PER_S}"
    );
    // A queue of the slots past the knee shows here: 50 ms served, then the wait behind the
    // server's 64 (300 ms at the 400 slots the settled check below allows). An idle box
    // measures under 120 ms; the bound leaves a loaded one room for scheduling delays.
    assert!(p50 <= 200.0, "median latency {p50} ms");
    let settled: Vec<u64> = summary["concurrency_auto"]
        .as_array()
        .expect("settled limits")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(settled.len(), 2, "{settled:?}");
    // Together the workers keep the server's 64 busy, far below the 2 × 1024 they may reach.
    let total: u64 = settled.iter().sum();
    assert!((64..=400).contains(&total), "{settled:?}");
    assert!(
        stderr(&out).contains("concurrency auto: settled at"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tune_marks_the_knee_and_prints_the_command() {
    let server = capped_server();
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let plot = dir.path().join("tune.svg");
    let report = dir.path().join("tune.html");
    let out = TestCommand::new(dir.path())
        .args(["tune", "-u", &url, "-i", "0..1000000", "-s", "2"])
        .arg("--plot")
        .arg(&plot)
        .arg("--report")
        .arg(&report)
        .args([
            "-c",
            "8,40,128,auto",
            "--per-step",
            "3s",
            "--p99-budget",
            "150ms",
        ])
        .output_of();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{table}{}", stderr(&out));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .take(4)
        .map(|line| line.split_whitespace().collect())
        .collect();
    let req_per_s = |n: usize| rows[n][1].parse::<f64>().expect("req/s");
    let p99 = |n: usize| rows[n][3].parse::<f64>().expect("p99");
    // 8 per worker: 16 in flight, a quarter of the capacity.
    assert!(req_per_s(0) < 0.4 * CAPACITY_REQ_PER_S, "{table}");
    // 40: 80 in flight keep the server's 64 busy behind a short queue (12.5 ms). At exactly 64
    // the server idles while each answer turns round in the client: on a loaded box that cost
    // 7% of the capacity and took the step out of the knee's 5%.
    assert!(
        req_per_s(1) > 0.85 * CAPACITY_REQ_PER_S && p99(1) < 100.0,
        "{table}"
    );
    // 128: no faster, and queued: p99 near 4 × 50 ms, over the budget.
    assert!(p99(2) > 150.0, "{table}");
    assert!(rows[1].contains(&"<-"), "the knee is 40:\n{table}");
    assert!(
        table.contains("run: ringscrape run --url") && table.contains("--concurrency 40"),
        "{table}"
    );
    assert!(
        rows[3][0] == "auto" && table.contains("settled at"),
        "{table}"
    );
    let svg = std::fs::read_to_string(&plot).expect("--plot wrote the file");
    assert!(svg.starts_with("<svg") && svg.contains("knee") && svg.contains("budget 150 ms"));
    // The report, as headless Chromium shows it with the network cut.
    let url = format!("file://{}", report.display());
    let shot = crate::dashboard::artifact("tune-report.png");
    let seen = crate::dashboard::browse(
        &url,
        &["--offline", "--screenshot", shot.to_str().expect("utf-8")],
    );
    assert_eq!(seen["requests"], serde_json::json!([url]), "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["texts"]["mode"], "tune");
    assert_eq!(seen["texts"]["knee"], "40", "{seen}");
    assert_eq!(seen["texts"]["charts"], 2, "{seen}");
}

#[test]
fn bad_tune_and_serve_settings_exit_2() {
    let cases: [&[&str]; 4] = [
        &[
            "tune",
            "-u",
            "http://127.0.0.1:9/{id}",
            "-i",
            "0..100",
            "-c",
            "16,x",
        ],
        &[
            "tune",
            "-u",
            "http://127.0.0.1:9/{id}",
            "-i",
            "0..2",
            "-c",
            "1,2,3",
        ],
        &[
            "tune",
            "-u",
            "http://127.0.0.1:9/{id}",
            "-i",
            "0..100",
            "--per-step",
            "0",
        ],
        &["serve", "--max-inflight", "0"],
    ];
    for args in cases {
        let out = TestCommand::new(std::path::Path::new("."))
            .args(args)
            .output_of();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim().lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_target_slower_than_the_budget_is_judged_by_its_own_latency() {
    let server = Server::start(&["--delay-ms", "300..300"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = TestCommand::new(dir.path())
        .args(["tune", "-u", &server.url(), "-i", "0..1000000", "-s", "1"])
        .args(["-c", "4,16", "--per-step", "2s", "--p99-budget", "100ms"])
        .output_of();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("above the 100 ms budget: judging the knee against"),
        "{text}"
    );
    assert!(
        text.contains("throughput still grows at the highest step"),
        "{text}"
    );
    assert!(
        text.contains("try larger steps: --concurrency 16,32,64"),
        "{text}"
    );
    assert!(text.contains("--concurrency 16"), "{text}");
}

#[test]
fn a_typo_or_a_flag_tune_sets_after_the_double_dash_is_usage_said_once() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let tune = |after: &[&str]| {
        TestCommand::new(dir.path())
            .args([
                "tune",
                "-u",
                &server.url(),
                "-i",
                "0..4000",
                "--per-step",
                "1",
                "--",
            ])
            .args(after)
            .output_of()
    };
    let out = tune(&["--hedaer", "X-A: 1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(
        err.contains("the run flags after --: unexpected argument '--hedaer'"),
        "{err}"
    );
    let out = tune(&["--concurrency", "64"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--concurrency after --: tune sets it"),
        "{err}"
    );
}
