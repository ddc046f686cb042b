//! `--http2` against nginx: h2c with prior knowledge and h2 over TLS by ALPN, many streams per
//! connection, fallback to HTTP/1.1 when the server declines, and GOAWAY, stream resets and
//! closed connections ending as rows (retried), never as hangs or lost rows.

use std::collections::HashSet;

use crate::common::*;

/// nginx variables that tell how a request came: `$connection` (its serial number) and
/// `$http2` ("h2", "h2c", or empty for HTTP/1.1).
const LOCATIONS: &str = "location /log { default_type application/json; add_header X-Conn $connection; \
     add_header X-Proto $http2; add_header X-Method $request_method; add_header X-Length $content_length; \
     return 200 '{\"id\":$arg_id}'; }\n\
     location /drop { if ($arg_id ~ 0$) { return 444; } return 200 '{\"id\":$arg_id}'; }";

fn h2_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--http2",
        "--capture-header",
        "x-conn",
        "--capture-header",
        "x-proto",
        "--save-body",
    ];
    args.extend_from_slice(extra);
    args
}

/// Every row answered with its own body over `proto`, on at most `max_conns` connections.
fn assert_multiplexed(rows: &[Row], proto: &str, max_conns: usize) {
    let mut conns = HashSet::new();
    for row in rows {
        assert_eq!(
            (row.status, row.error.as_str(), row.attempts),
            (Some(200), "", 1),
            "{row:?}"
        );
        assert_eq!(row.extra[1], proto, "{row:?}");
        assert_eq!(row.extra[2], format!("{{\"id\":{}}}", row.id), "{row:?}");
        conns.insert(row.extra[0].clone());
    }
    assert!(
        !conns.is_empty() && conns.len() <= max_conns,
        "{} connections for {} rows",
        conns.len(),
        rows.len()
    );
}

#[test]
fn h2c_prior_knowledge_runs_256_streams_on_a_few_connections_without_error() {
    let nginx = Nginx::start_listening("http2", "", LOCATIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", nginx.base);
    let out = TestCommand::run(dir.path(), &url, "0..20000")
        .shards(1)
        .concurrency(256)
        .output("out.csv")
        .args(h2_args(&[]))
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 20_000);
    // 256 in flight at 100 streams per connection: 3 connections; the bound is 32.
    assert_multiplexed(&rows, "h2c", 32);
}

#[test]
fn each_connection_carries_as_many_streams_as_the_server_allows() {
    let nginx = Nginx::start_listening(
        "http2",
        "",
        &format!("http2_max_concurrent_streams 16;\n{LOCATIONS}"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", nginx.base);
    let out = TestCommand::run(dir.path(), &url, "0..900")
        .shards(1)
        .concurrency(64)
        .output("out.csv")
        .args(h2_args(&[]))
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 900);
    assert_multiplexed(&rows, "h2c", 16);
    // 64 in flight at 16 streams each need at least 4 connections (one, had the worker kept
    // its own 100 per connection: the h2 layer would have queued the rest; fewer requests
    // than nginx's 1000 per connection, so none was replaced after a GOAWAY).
    let conns: HashSet<_> = rows.iter().map(|row| &row.extra[0]).collect();
    assert!(conns.len() >= 4, "{} connections", conns.len());
}

#[test]
fn a_connection_gone_silent_takes_no_more_requests() {
    // The server's first connection answers nothing and never closes; later ones answer.
    let target = AiohttpTarget::start_script_with("h2c_target.py", &["--silent-first"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", target.base);
    let out = TestCommand::run(dir.path(), &url, "0..200")
        .shards(1)
        .concurrency(8)
        .output("out.csv")
        .args(["--http2", "--timeout", "1s", "--retries", "2"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 200);
    let failed: Vec<_> = rows.iter().filter(|row| row.status != Some(200)).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first {:?}",
        failed.len(),
        failed.first()
    );
    // The first requests waited out their deadline on the silent connection, and only they.
    let again = rows.iter().filter(|row| row.attempts == 2).count();
    assert!(
        (1..=8).contains(&again),
        "{again} rows took a second attempt"
    );
}

#[test]
fn a_server_that_allows_no_stream_gets_timeouts_not_a_connection_per_attempt_to_seat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let count = dir.path().join("accepted");
    let target = AiohttpTarget::start_script_with(
        "h2c_target.py",
        &[
            "--no-streams",
            "--count-file",
            count.to_str().expect("utf-8"),
        ],
    );
    let url = format!("{}/log?id={{id}}", target.base);
    let out = TestCommand::run(dir.path(), &url, "0..16")
        .shards(1)
        .concurrency(8)
        .output("out.csv")
        .args(["--http2", "--timeout", "1s", "--retries", "0"])
        .output_of();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 16);
    assert!(
        rows.iter().all(|r| r.error == "timeout"),
        "{}",
        stderr(&out)
    );
    // The streams wait for room the server never gives, until their deadline; the lanes that
    // answered nothing are left, and a few new ones opened (2 here), not one per look for room.
    let accepted: u64 = std::fs::read_to_string(&count)
        .expect("count file")
        .parse()
        .expect("a number");
    assert!(accepted <= 32, "{accepted} connections for 16 requests");
}

#[test]
fn h2_over_tls_by_alpn_and_http1_when_the_server_declines() {
    let pki = tempfile::tempdir().expect("tempdir");
    make_test_pki(pki.path());
    let ca = pki.path().join("ca.pem");
    let ca = ca.to_str().expect("utf-8");
    let dir = tempfile::tempdir().expect("tempdir");

    let h2 = nginx_with_test_certs("ssl http2", pki.path(), LOCATIONS);
    let url = format!("{}/log?id={{id}}", h2.base);
    let rows = scrape_ok(dir.path(), &url, 0, 5000, 128, &h2_args(&["--ca-cert", ca]));
    // Two shards × 128 in flight: 2 connections each.
    assert_multiplexed(&rows, "h2", 32);

    let h1_only = nginx_with_test_certs("ssl", pki.path(), LOCATIONS);
    let url = format!("{}/log?id={{id}}", h1_only.base);
    let rows = scrape_ok(dir.path(), &url, 0, 2000, 16, &h2_args(&["--ca-cert", ca]));
    for row in &rows {
        assert_eq!(
            (row.status, row.extra[1].as_str()),
            (Some(200), ""),
            "HTTP/1.1: {row:?}"
        );
    }
}

#[test]
fn a_body_and_method_travel_over_h2() {
    // nginx reads the HTTP/2 request and passes it on to `ringscrape serve`'s echo.
    let server = Server::start(&[]);
    let locations = format!(
        "{LOCATIONS}\nlocation /echo {{ proxy_pass {}; }}",
        server.base
    );
    let nginx = Nginx::start_listening("http2", "", &locations);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", nginx.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        500,
        32,
        &[
            "--http2",
            "-X",
            "PUT",
            "-d",
            "body-{id}",
            "--capture-header",
            "x-method",
            "--capture-header",
            "x-length",
        ],
    );
    for row in &rows {
        let length = format!("body-{}", row.id).len().to_string();
        assert_eq!(row.extra, vec!["PUT".to_string(), length], "{row:?}");
    }
    let url = format!("{}/echo?id={{id}}", nginx.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        300,
        32,
        &["--http2", "-X", "PUT", "-d", "body-{id}", "--save-body"],
    );
    for row in &rows {
        let echo: serde_json::Value = serde_json::from_str(&row.extra[0]).expect("echo json");
        assert_eq!(
            (echo["method"].as_str(), echo["body"].as_str()),
            (Some("PUT"), Some(format!("body-{}", row.id).as_str())),
            "{row:?}"
        );
    }
}

#[test]
fn goaway_after_a_few_requests_loses_no_row() {
    // nginx ends each HTTP/2 connection with GOAWAY after 50 requests.
    let nginx = Nginx::start_listening("http2", "keepalive_requests 50;", LOCATIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", nginx.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        10_000,
        64,
        &h2_args(&["--timeout", "10"]),
    );
    for row in &rows {
        assert_eq!(
            (row.status, row.error.as_str(), row.attempts),
            (Some(200), "", 1),
            "refused streams are sent again, not counted: {row:?}"
        );
        assert_eq!(row.extra[2], format!("{{\"id\":{}}}", row.id), "{row:?}");
    }
    let conns: HashSet<&String> = rows.iter().map(|r| &r.extra[0]).collect();
    assert!(
        conns.len() >= 10_000 / 50,
        "GOAWAY did happen: {} connections",
        conns.len()
    );
}

#[test]
fn closed_connections_end_as_error_rows_not_hangs() {
    // Every id ending in 0 gets its connection closed (nginx `return 444`), taking the other
    // streams on it along: those are retried, the 444 ids end as errors after their retries.
    let nginx = Nginx::start_listening("http2", "", LOCATIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/drop?id={{id}}", nginx.base);
    let started = std::time::Instant::now();
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        2000,
        32,
        &[
            "--http2",
            "--timeout",
            "20",
            "--retries",
            "5",
            "--retry-base",
            "0.01",
        ],
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );
    for row in &rows {
        if row.id % 10 == 0 {
            assert!(row.status.is_none() && !row.error.is_empty(), "{row:?}");
            assert_ne!(row.error, "timeout", "{row:?}");
        } else {
            assert_eq!(row.status, Some(200), "{row:?}");
        }
    }
}

#[test]
fn http2_from_the_config_file() {
    let nginx = Nginx::start_listening("http2", "", LOCATIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("run.toml"),
        "http2 = true\ncapture_header = ['x-proto']\n",
    )
    .expect("write");
    let url = format!("{}/log?id={{id}}", nginx.base);
    let rows = scrape_ok(dir.path(), &url, 0, 200, 16, &["--config", "run.toml"]);
    assert!(
        rows.iter().all(|r| r.extra == vec!["h2c".to_string()]),
        "{:?}",
        rows[0]
    );
}
