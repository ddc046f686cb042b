//! Servers that send what no request asked for, from a raw-socket server of this test: bytes
//! after a complete answer are never read as the next id's answer (RFC 9112 §6.3), and what an
//! idle connection received (HAProxy's `408` before it closes) is not an answer either.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::*;

fn answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers each request on `stream` as `mode` says, until the client closes.
fn serve_connection(stream: TcpStream, mode: &str) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let id = request_line
            .split("id=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or("?")
            .to_string();
        let body = format!("body of {id}");
        let sent = match mode {
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
                return;
            }
            _ => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// A raw server answering as `mode` says; its base URL.
fn start(mode: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_connection(stream, mode));
        }
    });
    base
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
