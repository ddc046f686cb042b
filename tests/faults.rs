//! Faults from the target never cost a row: each fault kind alone, all mixed, and the stale
//! keep-alive connections the HTTP crate's pool would hand out again.

use std::time::{Duration, Instant};

use crate::common::*;

/// Runs 2 shards × `concurrency` over `0..n` against `serve` with `serve_args`.
fn scrape_faulty(
    serve_args: &[&str],
    n: u64,
    concurrency: u32,
    run_args: &[&str],
) -> (Vec<Row>, Duration) {
    let server = Server::start(serve_args);
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let rows = scrape_ok(dir.path(), &server.url(), 0, n, concurrency, run_args);
    (rows, started.elapsed())
}

/// Healthy rows carry the body of their own id: no response was attributed to another id.
fn assert_own_body(rows: &[Row]) {
    for row in rows
        .iter()
        .filter(|r| r.status == Some(200) && r.error.is_empty())
    {
        assert_eq!(
            row.bytes,
            demo_body_len(row.id),
            "response attributed to the wrong id? {row:?}"
        );
    }
}

fn every(k: u64, id: u64) -> bool {
    (id + 1).is_multiple_of(k)
}

#[test]
fn each_fault_alone_ends_as_one_row_per_id_with_its_error_kind() {
    // (serve flag, status (kept when the head came), error kind, attempts: transient faults
    // are retried, a huge body is not)
    for (flag, status, kind, attempts) in [
        ("--drop-every", None, "closed", 2),
        ("--stall-every", None, "timeout", 2),
        ("--garbage-every", None, "protocol", 2),
        ("--reset-mid-body-every", Some(200), "reset", 2),
        ("--bad-chunk-every", Some(200), "protocol", 2),
        ("--huge-every", Some(200), "body-too-large", 1),
    ] {
        let (rows, elapsed) = scrape_faulty(
            &[flag, "10"],
            300,
            16,
            &["--timeout", "1", "--retries", "1", "--retry-base", "0.01"],
        );
        for row in &rows {
            if every(10, row.id) {
                assert_eq!(
                    (row.status, row.error.as_str(), row.attempts),
                    (status, kind, attempts),
                    "{flag}: {row:?}"
                );
            } else {
                assert_eq!(
                    (row.status, row.error.as_str(), row.attempts),
                    (Some(200), "", 1),
                    "{flag}: {row:?}"
                );
            }
        }
        assert_own_body(&rows);
        // Stalls cost two 1 s deadlines each, 30 of them over 32 slots.
        assert!(
            elapsed < Duration::from_secs(20),
            "{flag}: took {elapsed:?}"
        );
    }
}

#[test]
fn fail_first_two_with_three_retries_ends_200_after_three_attempts() {
    let (rows, elapsed) = scrape_faulty(&["--fail-first", "2"], 200, 64, &["--retries", "3"]);
    for row in &rows {
        assert_eq!(
            (row.status, row.attempts, row.error.as_str()),
            (Some(200), 3, ""),
            "{row:?}"
        );
    }
    // Two Retry-After: 1 waits per id, 200 ids over 128 slots: about 4 s.
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(20),
        "{elapsed:?}"
    );
}

#[test]
fn all_faults_mixed_still_give_exactly_one_row_per_id() {
    let serve = [
        "--drop-every",
        "7",
        "--stall-every",
        "11",
        "--garbage-every",
        "13",
        "--reset-mid-body-every",
        "17",
        "--huge-every",
        "19",
        "--fail-first",
        "1",
    ];
    let (rows, elapsed) = scrape_faulty(
        &serve,
        400,
        32,
        &["--timeout", "1", "--retries", "2", "--retry-base", "0.01"],
    );
    for row in &rows {
        let id = row.id;
        // Precedence as documented in serve: drop, stall, garbage, reset, huge, then 503 once.
        let expected = if every(7, id) {
            (None, "closed", 3)
        } else if every(11, id) {
            (None, "timeout", 3)
        } else if every(13, id) {
            (None, "protocol", 3)
        } else if every(17, id) {
            (Some(200), "reset", 3)
        } else if every(19, id) {
            (Some(200), "body-too-large", 1)
        } else {
            (Some(200), "", 2)
        };
        assert_eq!(
            (row.status, row.error.as_str(), row.attempts),
            expected,
            "{row:?}"
        );
    }
    assert_own_body(&rows);
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

#[test]
fn server_closing_after_every_few_requests_without_saying_so_gives_no_error_rows() {
    // The server closes each connection after 5 responses with no `Connection: close`: the
    // next request on it fails before any response and must be re-sent on a fresh connection.
    let (rows, _) = scrape_faulty(&["--close-every", "5"], 5000, 16, &["--retries", "0"]);
    let bad: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status != Some(200) || r.attempts != 1)
        .collect();
    assert!(
        bad.is_empty(),
        "{} bad rows, first {:?}",
        bad.len(),
        bad.first()
    );
    assert_own_body(&rows);
}

#[test]
fn interim_1xx_responses_are_skipped_and_every_answer_lands_on_its_own_id() {
    let (rows, _) = scrape_faulty(
        &["--informational-every", "3"],
        3000,
        16,
        &["--retries", "0"],
    );
    let bad = rows
        .iter()
        .find(|r| r.status != Some(200) || r.attempts != 1);
    assert!(bad.is_none(), "{bad:?}");
    assert_own_body(&rows);
}

#[test]
fn redirects_are_recorded_not_followed() {
    let (rows, _) = scrape_faulty(&["--redirect-every", "4"], 1000, 16, &[]);
    for row in &rows {
        let expected = if every(4, row.id) { 302 } else { 200 };
        assert_eq!((row.status, row.attempts), (Some(expected), 1), "{row:?}");
    }
    assert_own_body(&rows);
}

#[test]
fn max_body_cuts_off_large_bodies_without_reading_them() {
    let (rows, _) = scrape_faulty(&["--body-bytes", "5000"], 300, 8, &["--max-body", "4096"]);
    assert!(
        rows.iter()
            .all(|r| r.error == "body-too-large" && r.attempts == 1 && r.status == Some(200))
    );
    let (rows, _) = scrape_faulty(&["--body-bytes", "4096"], 300, 8, &["--max-body", "4096"]);
    assert!(
        rows.iter()
            .all(|r| r.status == Some(200) && r.bytes == 4096)
    );
}

#[test]
fn a_connect_that_never_completes_ends_at_the_connect_deadline_as_a_connect_row() {
    // A listener that never accepts, its accept queue filled: further SYNs are dropped, so a
    // connect hangs until our deadline.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    nix::sys::socket::listen(
        &listener,
        nix::sys::socket::Backlog::new(0).expect("backlog"),
    )
    .expect("listen");
    let addr = listener.local_addr().expect("addr");
    let _fillers: Vec<_> = (0..4)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://{addr}/log?id={{id}}");
    let started = Instant::now();
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        40,
        4,
        &[
            "--connect-timeout",
            "0.3",
            "--timeout",
            "30",
            "--retries",
            "0",
        ],
    );
    let elapsed = started.elapsed();
    let other = rows
        .iter()
        .find(|r| (r.status, r.error.as_str(), r.attempts) != (None, "connect", 1));
    assert!(other.is_none(), "{other:?}");
    // 40 ids over 8 slots, each ending at the 0.3 s connect deadline.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn retries_wait_in_a_queue_and_free_their_slot() {
    // Every id is answered 503 + Retry-After: 1 twice. With each waiting retry holding its slot,
    // 200 ids over 16 slots took 26 s; queued, the slots go on and the run takes about 2 s.
    let server = Server::start(&["--fail-first", "2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let out = TestCommand::run(dir.path(), &server.url(), "0..200")
        .shards(1)
        .concurrency(16)
        .output("out.csv")
        .output_of();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 200);
    for row in &rows {
        assert_eq!((row.status, row.attempts), (Some(200), 3), "{row:?}");
        assert_eq!(row.bytes, demo_body_len(row.id), "{row:?}");
    }
    // About 2 s queued, 26 s with slots held: the bound leaves a loaded box room.
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
}

/// A slot's deadline timer is set once and moved on only when it fires before the request's own
/// deadline: a request that hangs after others on the same slot still gets its whole timeout,
/// counted from its own start (not the first request's), and then ends.
#[test]
fn a_request_hanging_after_quick_ones_on_its_slot_gets_its_whole_timeout() {
    // Ids 0..3 answer after 100 ms each; id 4 never does: it starts ~0.4 s after the slot's
    // first request, whose deadline the timer was set for.
    let server = Server::start(&["--delay-ms", "100..100", "--stall-every", "5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    TestCommand::run(dir.path(), &server.url(), "0..5")
        .shards(1)
        .concurrency(1)
        .output("out.csv")
        .args(["--timeout", "1", "--retries", "0"])
        .ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 5);
    for row in &rows {
        if row.id == 4 {
            assert_eq!(row.error, "timeout", "{row:?}");
            assert!(
                (950.0..1500.0).contains(&row.latency_ms),
                "timed out after {} ms, not its own 1 s: {row:?}",
                row.latency_ms
            );
        } else {
            assert_eq!((row.status, row.error.as_str()), (Some(200), ""), "{row:?}");
        }
    }
}
