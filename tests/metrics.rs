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
    // Rows by outcome, summed: every row once.
    let rows = |m: &HashMap<String, f64>| -> f64 {
        m.iter()
            .filter(|(name, _)| name.starts_with("ringscrape_rows_total{outcome="))
            .map(|(_, n)| n)
            .sum()
    };
    let endpoint = format!("http://{addr}/metrics");
    // Two scrapes with rows between them; each waits for the run to have moved (the second
    // also for the workers' first report of what they have in flight).
    let first = wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(&addr).ok()?;
        let figures = scrape(&endpoint);
        (rows(&figures) > 0.0).then_some(figures)
    })
    .expect("rows on /metrics within 30 s");
    let second = wait_for(Duration::from_secs(30), || {
        let figures = scrape(&endpoint);
        let inflight = figures.get("ringscrape_inflight{}").copied().unwrap_or(0.0);
        (rows(&figures) > rows(&first) && inflight > 0.0).then_some(figures)
    })
    .expect("more rows and requests in flight on /metrics within 30 s");
    let _ = run.kill();
    let _ = run.wait();
    assert!(
        rows(&first) > 0.0 && rows(&second) > rows(&first),
        "{first:?} {second:?}"
    );
    assert_eq!(second["ringscrape_rows_total{outcome=2xx}"], rows(&second));
    // No retries and no pages: one request and one item per row.
    assert_eq!(second["ringscrape_requests_total{}"], rows(&second));
    assert_eq!(second["ringscrape_items_done_total{}"], rows(&second));
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
    // Each worker counted once, on the event loop it runs (epoll where io_uring is refused).
    let drivers: Vec<(&String, &f64)> = second
        .iter()
        .filter(|(name, _)| name.starts_with("ringscrape_workers{"))
        .collect();
    assert!(
        drivers.iter().all(|(name, _)| [
            "ringscrape_workers{driver=io_uring}",
            "ringscrape_workers{driver=epoll}"
        ]
        .contains(&name.as_str())),
        "{drivers:?}"
    );
    assert_eq!(
        drivers.iter().map(|(_, n)| **n).sum::<f64>(),
        2.0,
        "{drivers:?}"
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
        ("nowhere", "expected PORT, IP:PORT"),
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

/// A run that stays up (1 request per second) serving `flags` (e.g. `--metrics ADDR`).
fn long_run(dir: &std::path::Path, server: &Server, flags: &[&str]) -> std::process::Child {
    TestCommand::run(dir, &server.url(), "0..1000")
        .args(["--rate", "1", "-o", "out.csv", "--no-progress"])
        .args(flags)
        .spawn()
}

/// Asks `GET path` of `addr`; the whole answer, and how long it took.
fn timed_get(addr: &str, path: &str) -> (String, Duration) {
    use std::io::{Read, Write};
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").expect("send");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    (text, started.elapsed())
}

#[test]
fn a_slowloris_client_does_not_delay_another_scrape() {
    use std::io::Write;
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut run = long_run(dir.path(), &server, &["--metrics", &addr]);
    let up = wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).ok()
    });
    // The slow client: a byte of its head every 500 ms for 6 s, never the end.
    let mut slow = up.expect("the metrics server did not come up");
    let slowloris = std::thread::spawn(move || {
        let _ = slow.write_all(b"GET /metrics HTTP/1.1\r\n");
        for _ in 0..12 {
            std::thread::sleep(Duration::from_millis(500));
            if slow.write_all(b"x").is_err() {
                break;
            }
        }
    });
    // The slow client is mid-head when the scrapes come, spread over its 6 s.
    std::thread::sleep(Duration::from_millis(300));
    let mut took = Vec::new();
    for _ in 0..3 {
        let (text, elapsed) = timed_get(&addr, "/metrics");
        assert!(text.contains("ringscrape_rows_total"), "{text:.200}");
        took.push(elapsed);
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = run.kill();
    let _ = run.wait();
    let _ = slowloris.join();
    // Waiting on the slow client takes until its 6 s are over; a loaded box may take a second.
    assert!(
        took.iter().all(|t| *t < Duration::from_secs(3)),
        "scrapes waited on the slow client: {took:?}"
    );
}

#[test]
fn a_huge_request_head_costs_the_supervisor_no_memory() {
    use std::io::Write;
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let dashboard = format!("127.0.0.1:{port}");
    let port = port.to_string();
    let mut run = long_run(
        dir.path(),
        &server,
        &["--metrics", &metrics, "--dashboard", &port],
    );
    let pid = run.id();
    let mut seen = Vec::new();
    for addr in [&metrics, &dashboard] {
        let up = wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(addr).ok()
        });
        let Some(mut stream) = up else {
            seen.push((addr.clone(), 0, 0, "did not come up".to_string()));
            continue;
        };
        // One header line of 200 MB, never ended; the connection kept open while measured.
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nx-filler: ");
        let chunk = vec![b'a'; 1 << 20];
        let sent = (0..200)
            .take_while(|_| stream.write_all(&chunk).is_ok())
            .count();
        // Time for the supervisor to read (and, were it buffering, to hold) what was sent.
        std::thread::sleep(Duration::from_millis(300));
        let rss_mb = rss_kib(pid) / 1024;
        let (text, _) = timed_get(addr, "/metrics");
        seen.push((addr.clone(), sent, rss_mb, text));
    }
    // Ended before anything is asserted: a failed assertion must leave no run behind.
    let _ = run.kill();
    let _ = run.wait();
    for (addr, sent, rss_mb, text) in seen {
        eprintln!("{addr}: {sent} MB sent, supervisor {rss_mb} MB");
        assert!(rss_mb < 100, "{addr}: the supervisor took {rss_mb} MB");
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{addr}: {text:.200}");
    }
}

/// Issue 36 item 13: `--metrics`, `--dashboard` and `serve --listen` read an address one way — a
/// bare port (on 127.0.0.1), `IP:PORT`, `localhost:PORT` — where before `--dashboard` refused
/// `localhost:0` and the other two refused a bare port.
#[test]
fn every_listening_flag_takes_a_port_alone_and_localhost() {
    let mut serve = std::process::Command::new(BIN)
        .args(["serve", "--listen", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(serve.stdout.take().expect("piped")),
        &mut line,
    )
    .expect("read");
    let _ = serve.kill();
    let err = serve.wait_with_output().expect("wait").stderr;
    assert!(
        line.starts_with("listening on http://127.0.0.1:"),
        "{line:?} {}",
        String::from_utf8_lossy(&err)
    );
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    for (flag, addr, said) in [
        ("--metrics", "0", "metrics on http://127.0.0.1:"),
        ("--metrics", "localhost:0", "metrics on http://127.0.0.1:"),
        (
            "--dashboard",
            "localhost:0",
            "dashboard on http://127.0.0.1:",
        ),
    ] {
        let out = TestCommand::run(dir.path(), &server.url(), "0..10")
            .args([flag, addr, "-o", "out.csv", "--overwrite"])
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{flag} {addr}: {err}");
        assert!(err.contains(said), "{flag} {addr}: {err}");
    }
    for flag in ["--metrics", "--dashboard"] {
        let out = TestCommand::run(dir.path(), &server.url(), "0..10")
            .args([flag, "localhost", "-o", "bad.csv"])
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("expected PORT, IP:PORT, [IPv6]:PORT or NAME:PORT"),
            "{err}"
        );
        assert!(!dir.path().join("bad.csv").exists());
    }
}
