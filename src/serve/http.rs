//! The demo target's HTTP/1.1 by hand: parsing request heads (httparse) and writing responses
//! into a reused buffer.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Complete {
        consumed: usize,
        get: bool,
        id: Option<u64>,
        close: bool,
        /// The path is `/echo`: answer with what was received.
        echo: bool,
    },
    Partial,
    Bad,
}

pub fn parse_request(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad,
    };
    let mut body_len = 0usize;
    let mut close = req.version == Some(0);
    for header in req.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => body_len = n,
                None => return Parsed::Bad,
            }
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = header.value;
            close = value.eq_ignore_ascii_case(b"close")
                || (close && !value.eq_ignore_ascii_case(b"keep-alive"));
        }
    }
    if buf.len() < head_len + body_len {
        return Parsed::Partial;
    }
    Parsed::Complete {
        consumed: head_len + body_len,
        get: req.method == Some("GET"),
        id: req.path.and_then(request_id),
        close,
        echo: req
            .path
            .and_then(|p| p.split('?').next())
            .is_some_and(|path| path == "/echo" || path.starts_with("/echo/")),
    }
}

/// The id a request names: its numeric `id` query parameter, else the last path segment that
/// is a number — so both `/log?id=42` and the path style of real APIs (`/v1/logs/42`,
/// `/users/42/events`) get their record.
pub fn request_id(target: &str) -> Option<u64> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let from_query = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("id="))
        .and_then(|v| v.parse().ok());
    from_query.or_else(|| path.rsplit('/').find_map(|segment| segment.parse().ok()))
}

thread_local! {
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The `date` header value, formatted at most once a second per thread.
fn with_http_date(f: impl FnOnce(&str)) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, httpdate::fmt_http_date(now));
        }
        f(&cached.1);
    });
}

/// Writes a response head announcing `content_length` body bytes; `extra` is raw header lines
/// (each ending in CRLF).
pub fn write_head(
    out: &mut Vec<u8>,
    status: &str,
    content_length: u64,
    delay: Duration,
    close: bool,
    extra: &str,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(content_length).as_bytes());
    out.extend_from_slice(b"\r\ndelay: ");
    out.extend_from_slice(itoa::Buffer::new().format(delay.as_millis()).as_bytes());
    with_http_date(|date| {
        out.extend_from_slice(b"\r\ndate: ");
        out.extend_from_slice(date.as_bytes());
    });
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes a whole response: head and `body`.
pub fn write_response(
    out: &mut Vec<u8>,
    status: &str,
    body: &[u8],
    delay: Duration,
    close: bool,
    extra: &str,
) {
    write_head(out, status, body.len() as u64, delay, close, extra);
    out.extend_from_slice(body);
}

/// Sends `out` (and keeps the buffer for reuse); false when the connection is gone.
pub async fn send(stream: &mut TcpStream, out: &mut Vec<u8>) -> bool {
    let (written, buf) = stream.write_all(std::mem::take(out)).await;
    *out = buf;
    out.clear();
    written.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pipelined_requests_and_the_id() {
        let two = b"GET /log?x=1&id=42 HTTP/1.1\r\nHost: h\r\n\r\nGET /log HTTP/1.1\r\nConnection: close\r\n\r\n";
        let Parsed::Complete {
            consumed,
            get,
            id,
            close,
            ..
        } = parse_request(two)
        else {
            panic!("first request is complete");
        };
        assert_eq!((get, id, close), (true, Some(42), false));
        assert_eq!(
            parse_request(&two[consumed..]),
            Parsed::Complete {
                consumed: two.len() - consumed,
                get: true,
                id: None,
                close: true,
                echo: false,
            }
        );
        assert_eq!(
            parse_request(b"GET /log?id=1 HTTP/1.1\r\nHost"),
            Parsed::Partial
        );
        assert_eq!(parse_request(b"\x00\x01 nonsense\r\n\r\n"), Parsed::Bad);
    }

    #[test]
    fn the_id_comes_from_the_query_or_else_the_last_numeric_path_segment() {
        assert_eq!(request_id("/log?x=1&id=42"), Some(42));
        assert_eq!(request_id("/v1/logs/42"), Some(42));
        assert_eq!(request_id("/users/7/events?page=2"), Some(7));
        assert_eq!(request_id("/users/7/logs/9?id=3"), Some(3));
        assert_eq!(request_id("/users/alice/logs?date=2024-01-01"), None);
        assert_eq!(request_id("/log?id=x"), None);
        assert_eq!(request_id("/"), None);
    }
}
