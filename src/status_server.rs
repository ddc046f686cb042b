//! The small HTTP/1.1 server behind `--metrics` and `--dashboard`: a thread per connection, so a
//! slow or stuck client holds up only itself; a request head capped at [`MAX_HEAD_BYTES`] and
//! read within one deadline ([`HEAD_DEADLINE`], not per read: a byte every few seconds does not
//! keep a thread forever); `GET` and `HEAD` only, anything else `405`. Each view says what it
//! answers to a [`Request`]; nothing here knows the paths.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The most a request head may take: a browser's or a scraper's is well under 2 KiB.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a client has to send its whole head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// How long one write of an answer may wait on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; beyond, a new one is closed at once (each holds a thread for at
/// most [`HEAD_DEADLINE`] plus its answer).
const MAX_CONNECTIONS: usize = 256;
/// Header lines a head may have.
const MAX_HEADERS: usize = 64;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The path, query left out.
    pub path: String,
    /// The `Host` header, if any.
    pub host: Option<String>,
}

/// What a view answers.
pub struct Answer {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    pub fn new(status: &'static str, content_type: &'static str, body: impl Into<String>) -> Self {
        Answer {
            status,
            content_type,
            body: body.into(),
        }
    }

    fn text(status: &'static str, body: &str) -> Self {
        Answer::new(status, "text/plain", body)
    }
}

/// Serves `answer` on `listener` from a thread named `name` for the rest of the process.
pub fn serve(
    listener: TcpListener,
    name: &str,
    answer: impl Fn(&Request) -> Answer + Send + Sync + 'static,
) -> io::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    let answer = Arc::new(answer);
    let open = Arc::new(AtomicUsize::new(0));
    let connection_name = format!("{name}-conn");
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let (answer, still_open) = (answer.clone(), open.clone());
                let spawned = std::thread::Builder::new()
                    .name(connection_name.clone())
                    .spawn(move || {
                        // A client that misbehaves only loses its own answer.
                        let _ = converse(stream, answer.as_ref());
                        still_open.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    open.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(bound)
}

fn converse(mut stream: TcpStream, answer: &dyn Fn(&Request) -> Answer) -> io::Result<()> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut head = [0u8; MAX_HEAD_BYTES];
    let (reply, is_head) = match read_head(&mut stream, &mut head, deadline)? {
        Head::Request { method, request } => {
            let is_head = method == "HEAD";
            if method == "GET" || is_head {
                (answer(&request), is_head)
            } else {
                let no = Answer::text("405 Method Not Allowed", "GET or HEAD only\n");
                (no, false)
            }
        }
        Head::TooLarge => (
            Answer::text("431 Request Header Fields Too Large", "head too large\n"),
            false,
        ),
        Head::Malformed => (Answer::text("400 Bad Request", "bad request\n"), false),
    };
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let allow = if reply.status.starts_with("405") {
        "allow: GET, HEAD\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "HTTP/1.1 {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{allow}cache-control: no-store\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    )?;
    if !is_head {
        stream.write_all(reply.body.as_bytes())?;
    }
    stream.flush()
}

/// What a head turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Request { method: String, request: Request },
    TooLarge,
    Malformed,
}

/// Reads one request head into `buf` (its size is the cap) by `deadline`; an error when the
/// client is gone or too slow.
fn read_head(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<Head> {
    let mut len = 0;
    loop {
        match parse(&buf[..len]) {
            Some(read) => return Ok(read),
            None if len == buf.len() => return Ok(Head::TooLarge),
            None => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[len..])? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => len += n,
        }
    }
}

/// The head in `bytes`, or `None` while it is not whole.
fn parse(bytes: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Head::TooLarge),
        Err(_) => Some(Head::Malformed),
        Ok(httparse::Status::Complete(_)) => {
            let target = parsed.path.unwrap_or("/");
            let path = target.split('?').next().unwrap_or("/").to_string();
            let host = parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string());
            Some(Head::Request {
                method: parsed.method.unwrap_or("").to_string(),
                request: Request { path, host },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        serve(listener, "test-status", |request| {
            Answer::new("200 OK", "text/plain", format!("{}\n", request.path))
        })
        .expect("serve")
    }

    fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _ = stream.write_all(request);
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    }

    #[test]
    fn a_head_is_read_whole_and_its_path_answered() {
        let got = ask(start(), b"GET /state?x=1 HTTP/1.1\r\nhost: a\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\n/state\n"), "{got}");
    }

    #[test]
    fn a_head_beyond_the_cap_is_refused_without_reading_on() {
        let addr = start();
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.write_all(b"GET / HTTP/1.1\r\nx: ").expect("send");
        // A header line with no end: the server stops reading at the cap and closes, so the
        // writer fails long before 256 MB (loopback buffers hold a few MB).
        let chunk = vec![b'a'; 1 << 20];
        let written = (0..256)
            .take_while(|_| stream.write_all(&chunk).is_ok())
            .count();
        assert!(written < 64, "the server read {written} MB of one head");
    }

    #[test]
    fn only_get_and_head_are_answered() {
        let addr = start();
        for method in ["POST", "DELETE", "PUT"] {
            let got = ask(
                addr,
                format!("{method} / HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes(),
            );
            assert!(got.starts_with("HTTP/1.1 405 "), "{method}: {got}");
            assert!(got.contains("allow: GET, HEAD\r\n"), "{method}: {got}");
        }
        let got = ask(addr, b"HEAD /x HTTP/1.1\r\nhost: a\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("content-length: 3\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\n"), "HEAD has no body: {got}");
    }

    #[test]
    fn a_slow_client_does_not_delay_another() {
        let addr = start();
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\n").expect("send");
        let started = Instant::now();
        let got = ask(addr, b"GET /metrics HTTP/1.1\r\nhost: a\r\n\r\n");
        assert!(got.ends_with("/metrics\n"), "{got}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        drop(slow);
    }
}
