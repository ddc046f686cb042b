//! Answers real servers send, from a raw-socket server written for each case in this test: the
//! body of each must be read exactly (RFC 9112), where monoio-http's codec got them wrong.

use std::io::Write;

use crate::common::*;

/// How the raw server answers (chosen by the request path).
fn answer(path: &str, id: u64) -> (Vec<u8>, bool) {
    let body = format!("record {id}: {}", "z".repeat((id % 5) as usize));
    let len = body.len();
    match path {
        // HTTP/1.0, no length: the body ends when the server closes.
        "/http10" => (
            format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}").into_bytes(),
            true,
        ),
        // HTTP/1.1 without a length either: also until close.
        "/nolength" => (
            format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}").into_bytes(),
            true,
        ),
        // Chunked, with a chunk extension and a trailer section.
        "/trailers" => {
            let (a, b) = body.split_at(len / 2);
            (
                format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
                     {:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nX-Checksum: {id}\r\nX-More: yes\r\n\r\n",
                    a.len(),
                    b.len()
                )
                .into_bytes(),
                false,
            )
        }
        // Bare LF line ends throughout, including the chunked framing.
        "/lf" => (
            format!("HTTP/1.1 200 OK\nContent-Length: {len}\n\n{body}").into_bytes(),
            false,
        ),
        "/lf-chunked" => (
            format!("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n{len:x}\n{body}\n0\n\n")
                .into_bytes(),
            false,
        ),
        // 120 header lines, about 5 KB of head.
        "/many-headers" => {
            let mut head = String::from("HTTP/1.1 200 OK\r\n");
            for k in 0..120 {
                head += &format!("X-Header-{k:03}: {}\r\n", "h".repeat(24));
            }
            (
                format!("{head}Content-Length: {len}\r\n\r\n{body}").into_bytes(),
                false,
            )
        }
        _ => (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            false,
        ),
    }
}

fn body(id: u64) -> String {
    format!("record {id}: {}", "z".repeat((id % 5) as usize))
}

/// A raw-socket server answering each request as its path says (see [`answer`]).
fn start_raw_server() -> String {
    raw_server(|target, stream| {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let id = query
            .strip_prefix("id=")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (bytes, close) = answer(path, id);
        stream.write_all(&bytes).is_ok() && !close
    })
}

#[test]
fn each_kind_of_real_answer_gives_its_status_and_exact_body() {
    let base = start_raw_server();
    let dir = tempfile::tempdir().expect("tempdir");
    for path in [
        "/http10",
        "/nolength",
        "/trailers",
        "/lf",
        "/lf-chunked",
        "/many-headers",
    ] {
        let url = format!("{base}{path}?id={{id}}");
        let rows = scrape_ok(
            dir.path(),
            &url,
            0,
            300,
            8,
            &["--timeout", "3", "--retries", "0", "--save-body"],
        );
        for row in &rows {
            let expected = body(row.id);
            assert_eq!(
                (row.status, row.bytes, row.error.as_str(), row.attempts),
                (Some(200), expected.len() as u64, "", 1),
                "{path}: {row:?}"
            );
            assert_eq!(row.extra, vec![expected], "{path}: the exact body");
        }
    }
}

#[test]
fn an_empty_coded_body_is_empty_and_a_failed_body_keeps_its_status() {
    let base = raw_server(|target, stream| {
        let answer: &[u8] = if target.starts_with("/chunked") {
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        } else if target.starts_with("/close") {
            b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nConnection: close\r\n\r\n"
        } else if target.starts_with("/corrupt") {
            b"HTTP/1.1 404 Not Found\r\nContent-Encoding: gzip\r\nContent-Length: 12\r\n\r\nnot gzip at all"
        } else {
            b"HTTP/1.1 410 Gone\r\nContent-Length: 9000\r\n\r\n"
        };
        stream.write_all(answer).is_ok() && target.starts_with("/chunked")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, expected) in [
        ("/chunked", (Some(200), 0, "")),
        ("/close", (Some(200), 0, "")),
        ("/corrupt", (Some(404), 0, "decode")),
        ("/large", (Some(410), 0, "body-too-large")),
    ] {
        let url = format!("{base}{path}?id={{id}}");
        let args = ["--retries", "0", "--save-body", "--max-body", "4096"];
        let rows = scrape_ok(dir.path(), &url, 0, 40, 4, &args);
        for row in &rows {
            assert_eq!(
                (row.status, row.bytes, row.error.as_str()),
                expected,
                "{path}: {row:?}"
            );
        }
    }
}

#[test]
fn a_header_value_with_control_bytes_keeps_the_answer_and_the_value() {
    let base = raw_server(|_, stream| {
        let answer = b"HTTP/1.1 200 OK\r\nX-Odd: a\x01b\x7fc\r\nContent-Length: 2\r\n\r\nok";
        stream.write_all(answer).is_ok()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{base}/control?id={{id}}");
    let args = ["--retries", "0", "--capture-header", "x-odd"];
    let rows = scrape_ok(dir.path(), &url, 0, 20, 4, &args);
    for row in &rows {
        assert_eq!((row.status, row.error.as_str()), (Some(200), ""), "{row:?}");
        assert_eq!(row.extra, ["a\u{1}b\u{7f}c"], "{row:?}");
    }
}
