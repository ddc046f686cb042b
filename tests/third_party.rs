//! The same pipeline against servers nobody here wrote: nginx and aiohttp's web server. They
//! close idle connections, chunk bodies and send 204/304 without a body, as real servers do.

use std::time::Duration;

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn nginx_json_204_and_304_each_give_one_row_per_id_with_the_right_sizes() {
    let nginx = Nginx::start(
        "",
        "location /log { default_type application/json; return 200 '{\"id\":$arg_id}'; }\n\
         location /empty { return 204; }\n\
         location /notmod { return 304; }",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = scrape_ok(
        dir.path(),
        &format!("{}/log?id={{id}}", nginx.base),
        0,
        5000,
        32,
        &[],
    );
    assert!(
        rows.iter()
            .all(|r| r.status == Some(200) && r.bytes == plain_body_len(r.id))
    );
    for (path, status) in [("empty", 204), ("notmod", 304)] {
        let url = format!("{}/{path}?id={{id}}", nginx.base);
        let rows = scrape_ok(dir.path(), &url, 0, 2000, 16, &["--timeout", "5"]);
        for row in &rows {
            assert_eq!(
                (row.status, row.bytes, row.error.as_str()),
                (Some(status), 0, ""),
                "{path}: {row:?}"
            );
        }
    }
}

#[test]
fn aiohttp_chunked_204_and_304_bodies_are_read_whole() {
    let target = AiohttpTarget::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = scrape_ok(
        dir.path(),
        &format!("{}/chunked?id={{id}}", target.base),
        0,
        2000,
        16,
        &["--timeout", "5"],
    );
    for row in &rows {
        assert_eq!(
            (row.status, row.bytes),
            (Some(200), plain_body_len(row.id)),
            "{row:?}"
        );
    }
    for (path, status) in [("empty", 204), ("notmod", 304)] {
        let url = format!("{}/{path}?id={{id}}", target.base);
        let rows = scrape_ok(dir.path(), &url, 0, 500, 8, &["--timeout", "5"]);
        assert!(
            rows.iter()
                .all(|r| r.status == Some(status) && r.bytes == 0),
            "{path}: {:?}",
            rows[0]
        );
    }
}

#[test]
fn ids_after_connections_closed_without_response_all_succeed() {
    // Every id ending in 0 gets its connection closed with no answer (nginx `return 444`).
    let nginx = Nginx::start(
        "",
        "location /log { if ($arg_id ~ 0$) { return 444; } default_type application/json; return 200 '{\"id\":$arg_id}'; }",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = scrape_ok(
        dir.path(),
        &format!("{}/log?id={{id}}", nginx.base),
        0,
        5000,
        16,
        &["--timeout", "5"],
    );
    for row in &rows {
        if row.id % 10 == 0 {
            assert_eq!(
                (row.status, row.error.as_str()),
                (None, "closed"),
                "{row:?}"
            );
        } else {
            assert_eq!(
                (row.status, row.error.as_str()),
                (Some(200), ""),
                "healthy id failed: {row:?}"
            );
        }
    }
}

#[test]
fn connections_nginx_closed_while_idle_are_replaced_without_error_rows() {
    // nginx closes keep-alive connections idle for 1 s. Freezing the workers for 2 s mid-run
    // leaves every pooled connection closed by the server when they wake up.
    let upstream = Server::start(&["--delay-ms", "5..15"]);
    let nginx = Nginx::start(
        "keepalive_timeout 1s;",
        &format!(
            "location / {{ proxy_pass {}; proxy_http_version 1.1; }}",
            upstream.base
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", nginx.base);
    let mut run = TestCommand::run(dir.path(), &url, "0..3000")
        .shards(2)
        .concurrency(8)
        .output("out.csv")
        .spawn();
    let workers = wait_for_workers(&run, 2, |_| true);
    wait_for_rows(&dir.path().join("out.csv"), 10);
    for pid in &workers {
        kill(Pid::from_raw(*pid as i32), Signal::SIGSTOP).expect("stop worker");
    }
    // Frozen past nginx's 1 s keep-alive timeout: the pause is what this tests.
    std::thread::sleep(Duration::from_secs(2));
    for pid in &workers {
        kill(Pid::from_raw(*pid as i32), Signal::SIGCONT).expect("continue worker");
    }
    let status = run.wait().expect("wait");
    assert!(status.success());
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 3000);
    let errors: Vec<_> = rows.iter().filter(|r| r.status != Some(200)).collect();
    assert!(
        errors.is_empty(),
        "{} error rows, first {:?}",
        errors.len(),
        errors.first()
    );
    // The pause really happened mid-run: some requests spanned it.
    assert!(
        rows.iter().any(|r| r.latency_ms > 1500.0),
        "no request spanned the pause"
    );
}

#[test]
fn a_redirect_chain_longer_than_the_limit_is_named_in_the_summary() {
    let nginx = Nginx::start("", "location /loop { return 302 /loop?next=$arg_id; }");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/loop?id={{id}}", nginx.base);
    let err = TestCommand::run(dir.path(), &url, "0..50")
        .output("out.csv")
        .args(["--follow-redirects", "2", "--summary-json", "s.json"])
        .ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert!(rows.iter().all(|r| r.status == Some(302)), "{:?}", rows[0]);
    assert!(
        err.contains("redirects  50 answers were still redirects when --follow-redirects ran out"),
        "{err}"
    );
}
