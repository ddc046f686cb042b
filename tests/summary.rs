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
