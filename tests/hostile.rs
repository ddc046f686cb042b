//! Servers that send what no request asked for, from a raw-socket server of this test: bytes
//! after a complete answer are never read as the next id's answer (RFC 9112 §6.3), and what an
//! idle connection received (HAProxy's `408` before it closes) is not an answer either. And a
//! key that repeats in a key file keeps each of its answers.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

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
    let base = start("408");
    let dir = tempfile::tempdir().expect("tempdir");
    // 20 requests a second over 2 slots: each connection idles ~100 ms between requests, long
    // after the server sent its 408 (30 ms) — and some requests race it.
    let rows = scrape_ok(
        dir.path(),
        &format!("{base}/x?id={{id}}"),
        0,
        40,
        1,
        &["--save-body", "--rate", "20", "--retries", "0"],
    );
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
