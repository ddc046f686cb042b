//! `--metrics`: Prometheus text served by the supervisor during the run, parsed by Prometheus'
//! own Python parser; a busy or bad address refuses the run before any request.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;

fn scrape(url: &str) -> HashMap<String, f64> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/servers/parse_metrics.py"
    );
    serde_json::from_value(python_json([script, url])).expect("a map of figures")
}

#[test]
fn live_metrics_follow_the_run() {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let url = server.url();
    let mut run = TestCommand::run(dir.path(), &url, "0..4000")
        .shards(2)
        .concurrency(16)
        .output("out.csv")
        .args(["--metrics"])
        .arg(&addr)
        .spawn();
    wait_for_workers(&run, 2, |_| true);
    std::thread::sleep(Duration::from_millis(1500));
    let endpoint = format!("http://{addr}/metrics");
    let first = scrape(&endpoint);
    std::thread::sleep(Duration::from_millis(1200));
    let second = scrape(&endpoint);
    let _ = run.kill();
    let _ = run.wait();

    let rows = |m: &HashMap<String, f64>| m["ringscrape_rows_total{}"];
    assert!(
        rows(&first) > 0.0 && rows(&second) > rows(&first),
        "{first:?} {second:?}"
    );
    assert_eq!(
        second["ringscrape_requests_total{outcome=2xx}"],
        rows(&second)
    );
    assert_eq!(
        second["ringscrape_shard_rows_total{shard=0}"]
            + second["ringscrape_shard_rows_total{shard=1}"],
        rows(&second)
    );
    // 2 workers × 16 slots, all waiting on a slow server.
    let inflight = second["ringscrape_inflight{}"];
    assert!((1.0..=32.0).contains(&inflight), "{inflight}");
    assert_eq!(second["ringscrape_retries_total{}"], 0.0);
    assert!(
        second.contains_key("ringscrape_throttled_seconds{}"),
        "{second:?}"
    );
    let answered = second["ringscrape_latency_seconds_count{}"];
    assert_eq!(answered, rows(&second));
    let slow = second["ringscrape_latency_seconds_bucket{le=0.0128}"];
    assert!(slow < answered, "answers take 20-40 ms: {second:?}");
}

#[test]
fn a_busy_or_bad_metrics_address_refuses_the_run() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    for (value, message) in [
        (addr.as_str(), "Address already in use"),
        ("nowhere", "expected IP:PORT"),
    ] {
        let out = TestCommand::run(dir.path(), "http://127.0.0.1:9/{id}", "0..10")
            .output("out.csv")
            .args(["--metrics"])
            .arg(value)
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("--metrics {value}")) && err.contains(message),
            "{err}"
        );
        assert!(!dir.path().join("out.csv").exists(), "no request, no file");
    }
}
