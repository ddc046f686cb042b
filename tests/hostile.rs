//! Servers that send what no request asked for, from a raw-socket server of this test: bytes
//! after a complete answer are never read as the next id's answer (RFC 9112 §6.3), and what an
//! idle connection received (HAProxy's `408` before it closes) is not an answer either. And a
//! key that repeats in a key file keeps each of its answers, and a body file holds only the
//! answer that completed.

use std::io::Write;
use std::time::Duration;

use crate::common::*;

fn answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers sent in "counter" mode.
static ANSWERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A raw server answering each request as `mode` says; its base URL.
fn start(mode: &'static str) -> String {
    raw_server(move |target, stream| {
        let id = target.split("id=").nth(1).unwrap_or("?").to_string();
        let body = format!("body of {id}");
        let sent = match mode {
            // Each answer different: the key and the answer's number.
            "counter" => {
                let n = ANSWERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                stream.write_all(answer(&format!("{id} #{n}")).as_bytes())
            }
            // Two answers to one request, in one write.
            "double" => {
                stream.write_all(format!("{}{}", answer(&body), answer("stray")).as_bytes())
            }
            // Content-Length shorter than the body that follows.
            "short" => stream.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{body} and more").as_bytes(),
            ),
            // An answer, then (as HAProxy does on an idle connection) 408 and close.
            "408" => {
                let _ = stream.write_all(answer(&body).as_bytes());
                // The connection sits idle a moment before the 408, as it would at HAProxy.
                std::thread::sleep(Duration::from_millis(30));
                let _ = stream.write_all(
                    b"HTTP/1.1 408 Request Time-out\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return false;
            }
            _ => return false,
        };
        sent.is_ok()
    })
}

#[test]
fn a_second_answer_to_one_request_is_never_another_ids_answer() {
    let base = start("double");
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = scrape_ok(
        dir.path(),
        &format!("{base}/x?id={{id}}"),
        0,
        2000,
        4,
        &["--save-body"],
    );
    for row in &rows {
        assert_eq!(
            (row.status, row.extra[0].as_str()),
            (Some(200), format!("body of {}", row.id).as_str()),
            "{row:?}"
        );
    }
}

#[test]
fn a_body_longer_than_its_length_spoils_no_later_answer() {
    let base = start("short");
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = scrape_ok(
        dir.path(),
        &format!("{base}/x?id={{id}}"),
        0,
        1000,
        4,
        &["--save-body"],
    );
    for row in &rows {
        assert_eq!(
            (row.status, row.error.as_str(), row.extra[0].as_str()),
            (Some(200), "", "body"),
            "{row:?}"
        );
    }
}

#[test]
fn a_408_an_idle_connection_received_is_not_an_answer() {
    a_408_received_while_idle_is_not_an_answer_on(None);
}

/// The epoll driver checks an idle connection with a read of its own, not a peek.
#[test]
fn a_408_an_idle_connection_received_is_not_an_answer_on_the_epoll_driver() {
    a_408_received_while_idle_is_not_an_answer_on(Some("epoll"));
}

fn a_408_received_while_idle_is_not_an_answer_on(driver: Option<&str>) {
    let base = start("408");
    let dir = tempfile::tempdir().expect("tempdir");
    // 20 requests a second over 2 slots: each connection idles ~100 ms between requests, long
    // after the server sent its 408 (30 ms) — and some requests race it.
    let mut run = TestCommand::run(dir.path(), &format!("{base}/x?id={{id}}"), "0..40")
        .shards(2)
        .concurrency(1)
        .output("out.csv")
        .args(["--save-body", "--rate", "20", "--retries", "0"]);
    if let Some(driver) = driver {
        run = run.env("RINGSCRAPE_DRIVER", driver);
    }
    run.ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 40);
    for row in &rows {
        assert_eq!(
            (row.status, row.attempts, row.extra[0].as_str()),
            (Some(200), 1, format!("body of {}", row.id).as_str()),
            "{row:?}"
        );
    }
}

#[test]
fn a_key_repeated_in_the_key_file_keeps_a_body_file_per_line() {
    let base = start("counter");
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<String> = (0..300).map(|line| format!("key-{}", line % 50)).collect();
    std::fs::write(dir.path().join("keys.txt"), keys.join("\n")).expect("keys");
    TestCommand::keys(dir.path(), &format!("{base}/x?id={{id}}"), "keys.txt")
        .shards(2)
        .concurrency(4)
        .output("out.csv")
        .args(["--bodies-dir", "bodies"])
        .ok();
    let file =
        std::io::BufReader::new(std::fs::File::open(dir.path().join("out.csv")).expect("csv"));
    let mut reader = ringscrape::output::reader::RowReader::new(file).expect("header");
    let path_column = reader.column("body_path").expect("body_path") - 6;
    let mut paths = std::collections::HashSet::new();
    let mut bodies = std::collections::HashSet::new();
    let mut rows = 0;
    while let Some(raw) = reader.next_row().expect("row") {
        let row = raw.typed().expect("typed");
        let body = std::fs::read_to_string(dir.path().join("bodies").join(&row.extra[path_column]))
            .expect("the row's body file");
        assert!(
            body.starts_with(&format!("{} #", row.id)),
            "{row:?}: {body}"
        );
        paths.insert(row.extra[path_column].clone());
        bodies.insert(body);
        rows += 1;
    }
    assert_eq!(rows, 300);
    assert_eq!(paths.len(), 300, "a file per row");
    assert_eq!(bodies.len(), 300, "no answer lost");
}

/// A JSON body of about 300 KB for `id`, different for each id.
fn large_json(id: &str) -> Vec<u8> {
    let numbers: Vec<String> = (0..50_000u64)
        .map(|i| (i * 7919 % 100_003).to_string())
        .collect();
    format!("{{\"id\":\"{id}\",\"numbers\":[{}]}}", numbers.join(",")).into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A raw server that cuts each id's first answer off after half its body, then closes, and
/// sends the whole answer (gzip-encoded if `gzipped`) to the id's next request.
fn start_cutting_once(gzipped: bool) -> String {
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    raw_server(move |target, stream| {
        let id = target.split("id=").nth(1).unwrap_or("?").to_string();
        let (body, coding) = match gzipped {
            true => (gzip(&large_json(&id)), "Content-Encoding: gzip\r\n"),
            false => (large_json(&id), ""),
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\n{coding}Content-Length: {}\r\n\r\n",
            body.len()
        );
        let first = seen.lock().map(|mut seen| seen.insert(id)).unwrap_or(false);
        let sent = match first {
            true => &body[..body.len() / 2],
            false => &body[..],
        };
        let written = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(sent));
        written.is_ok() && !first
    })
}

#[test]
fn a_body_file_holds_only_the_retry_when_the_first_answer_was_cut_off() {
    for (gzipped, extract) in [(false, false), (true, false), (false, true), (true, true)] {
        let base = start_cutting_once(gzipped);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["--bodies-dir", "bodies", "--retries", "2"];
        if extract {
            args.extend(["--extract", "key=/id"]);
        }
        let rows = scrape_ok(dir.path(), &format!("{base}/x?id={{id}}"), 0, 40, 2, &args);
        let case = format!("gzip {gzipped}, extract {extract}");
        for row in &rows {
            let id = row.id.to_string();
            assert_eq!(
                (row.status, row.attempts, row.error.as_str()),
                (Some(200), 2, ""),
                "{case}: {row:?}"
            );
            let path = row.extra.last().expect("body_path");
            let body = std::fs::read(dir.path().join("bodies").join(path)).expect("body file");
            assert!(
                body == large_json(&id),
                "{case}: {path} is not id {id}'s whole body"
            );
            if extract {
                assert_eq!(row.extra[0], id, "{case}: {row:?}");
            }
        }
    }
}
