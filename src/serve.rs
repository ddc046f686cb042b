//! `ringscrape serve`: the built-in demo target. Any `GET` answers 200 with a small JSON record
//! naming the id from `?id=` (or `--body-bytes N` of text), after a per-id delay drawn from a
//! PRNG seeded by `--seed` and the id. One monoio runtime per thread, all accepting on one
//! listening socket; SIGINT/SIGTERM stop it cleanly (exit 0).
//!
//! HTTP is parsed by hand on purpose (with `httparse`): the target must be able to misbehave at
//! the byte level on request (fault injection), which a server framework would not allow.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use nix::sys::signal::{SigSet, Signal};

use crate::cli::ServeArgs;
use crate::runtime;

/// A request head larger than this is refused (the client is not one of ours).
const MAX_REQUEST_BYTES: usize = 64 << 10;
const LISTEN_BACKLOG: i32 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    pub listen: String,
    pub delay_ms: (u64, u64),
    pub seed: u64,
    pub body_bytes: Option<usize>,
    pub threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--delay-ms {0}: expected MIN..MAX in milliseconds, e.g. 0..900")]
    Delay(String),
    #[error("--threads 0: must be at least 1")]
    Threads,
    #[error("--listen {0}: {1}")]
    Listen(String, io::Error),
    #[error("serve: {0}")]
    Io(#[from] io::Error),
    #[error("serve: signal handling: {0}")]
    Signal(#[from] nix::Error),
}

impl ServeError {
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ServeError::Delay(_) | ServeError::Threads | ServeError::Listen(..)
        )
    }
}

impl ServeOptions {
    pub fn from_args(args: &ServeArgs) -> Result<Self, ServeError> {
        let bad = || ServeError::Delay(args.delay_ms.clone());
        let (min, max) = args.delay_ms.split_once("..").ok_or_else(bad)?;
        let (min, max): (u64, u64) = (
            min.trim().parse().map_err(|_| bad())?,
            max.trim().parse().map_err(|_| bad())?,
        );
        if max < min {
            return Err(bad());
        }
        let threads = args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err(ServeError::Threads);
        }
        Ok(Self {
            listen: args.listen.clone(),
            delay_ms: (min, max),
            seed: args.seed,
            body_bytes: args.body_bytes,
            threads,
        })
    }

    /// The delay for `id`: uniform in `MIN..=MAX` ms, the same for the same seed and id.
    pub fn delay_for(&self, id: u64) -> Duration {
        let (min, max) = self.delay_ms;
        if max == min {
            return Duration::from_millis(min);
        }
        let draw = splitmix64(self.seed ^ splitmix64(id));
        Duration::from_millis(min + draw % (max - min + 1))
    }
}

/// SplitMix64: a tiny, well-known mixing function; enough for reproducible per-id delays.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The JSON body for `id` (what tests compute independently: `{"id":N}`).
pub fn json_body(id: Option<u64>, out: &mut Vec<u8>) {
    match id {
        Some(id) => {
            out.extend_from_slice(b"{\"id\":");
            out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
            out.push(b'}');
        }
        None => out.extend_from_slice(b"{\"id\":null}"),
    }
}

/// `n` bytes of lowercase text, lines of 63 letters.
fn text_body(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect()
}

/// Serves until SIGINT or SIGTERM. Prints `listening on http://ADDR` on stdout first.
pub fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let listener =
        TcpListener::bind(&opts.listen).map_err(|e| ServeError::Listen(opts.listen.clone(), e))?;
    // std listens with a backlog of 128; a burst of a few hundred connects would overflow it.
    nix::sys::socket::listen(&listener, nix::sys::socket::Backlog::new(LISTEN_BACKLOG)?)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // Block the stop signals in every thread; the main thread collects them with sigwait.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block()?;
    let body = opts.body_bytes.map(|n| Arc::new(text_body(n)));
    for _ in 0..opts.threads {
        let listener = listener.try_clone()?;
        let opts = opts.clone();
        let body = body.clone();
        std::thread::spawn(move || {
            let served = runtime::block_on(1024, move |_| accept_loop(listener, opts, body));
            if let Err(e) | Ok((_, Err(e))) = served {
                eprintln!("serve: {e}");
            }
        });
    }
    let mut stdout = io::stdout();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    let signal = stop.wait()?;
    eprintln!("serve: {signal}, stopping");
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    opts: ServeOptions,
    body: Option<Arc<Vec<u8>>>,
) -> io::Result<()> {
    let listener = monoio::net::TcpListener::from_std(listener)?;
    let opts = Rc::new(opts);
    let body: Option<Rc<[u8]>> = body.map(|b| Rc::from(b.as_slice()));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve_connection(stream, opts.clone(), body.clone()));
            }
            // Out of descriptors or similar: keep serving the connections we have.
            Err(e) => {
                eprintln!("serve: accept: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Complete {
        consumed: usize,
        get: bool,
        id: Option<u64>,
        close: bool,
    },
    Partial,
    Bad,
}

fn parse_request(buf: &[u8]) -> Parsed {
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
        id: req.path.and_then(query_id),
        close,
    }
}

/// The numeric `id` query parameter of a request path, if any.
fn query_id(path: &str) -> Option<u64> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("id="))
        .and_then(|v| v.parse().ok())
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

fn write_response(out: &mut Vec<u8>, status: &str, body: &[u8], delay: Duration, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\ndelay: ");
    out.extend_from_slice(itoa::Buffer::new().format(delay.as_millis()).as_bytes());
    with_http_date(|date| {
        out.extend_from_slice(b"\r\ndate: ");
        out.extend_from_slice(date.as_bytes());
    });
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

async fn serve_connection(mut stream: TcpStream, opts: Rc<ServeOptions>, text: Option<Rc<[u8]>>) {
    let mut pending: Vec<u8> = Vec::with_capacity(4096);
    let mut read_buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut body: Vec<u8> = Vec::with_capacity(64);
    loop {
        match parse_request(&pending) {
            Parsed::Complete {
                consumed,
                get,
                id,
                close,
            } => {
                let delay = opts.delay_for(id.unwrap_or(0));
                if !delay.is_zero() {
                    monoio::time::sleep(delay).await;
                }
                out.clear();
                body.clear();
                if !get {
                    write_response(
                        &mut out,
                        "405 Method Not Allowed",
                        b"{\"error\":\"GET only\"}",
                        delay,
                        close,
                    );
                } else if let Some(text) = &text {
                    write_response(&mut out, "200 OK", text, delay, close);
                } else {
                    json_body(id, &mut body);
                    write_response(&mut out, "200 OK", &body, delay, close);
                }
                let (written, buf) = stream.write_all(out).await;
                out = buf;
                pending.drain(..consumed);
                if written.is_err() || close {
                    return;
                }
                continue;
            }
            Parsed::Bad => {
                out.clear();
                write_response(
                    &mut out,
                    "400 Bad Request",
                    b"{\"error\":\"bad request\"}",
                    Duration::ZERO,
                    true,
                );
                let _ = stream.write_all(out).await;
                return;
            }
            Parsed::Partial if pending.len() > MAX_REQUEST_BYTES => return,
            Parsed::Partial => {}
        }
        read_buf.clear();
        let (read, buf) = stream.read(read_buf).await;
        read_buf = buf;
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&read_buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(delay: &str, seed: u64) -> ServeOptions {
        ServeOptions::from_args(&ServeArgs {
            listen: "127.0.0.1:0".into(),
            delay_ms: delay.into(),
            seed,
            body_bytes: None,
            threads: Some(1),
        })
        .expect("valid options")
    }

    #[test]
    fn delays_are_reproducible_and_within_bounds() {
        let a = opts("10..20", 7);
        let b = opts("10..20", 7);
        let c = opts("10..20", 8);
        let mut differs = false;
        for id in 0..1000 {
            let d = a.delay_for(id);
            assert!((Duration::from_millis(10)..=Duration::from_millis(20)).contains(&d));
            assert_eq!(d, b.delay_for(id));
            differs |= d != c.delay_for(id);
        }
        assert!(differs, "another seed gives other delays");
        assert_eq!(opts("0..0", 1).delay_for(5), Duration::ZERO);
    }

    #[test]
    fn bad_delay_ranges_are_refused() {
        for bad in ["5", "9..3", "a..b"] {
            let args = ServeArgs {
                listen: "127.0.0.1:0".into(),
                delay_ms: bad.into(),
                seed: 0,
                body_bytes: None,
                threads: None,
            };
            assert!(
                matches!(ServeOptions::from_args(&args), Err(ServeError::Delay(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_pipelined_requests_and_the_id() {
        let two = b"GET /log?x=1&id=42 HTTP/1.1\r\nHost: h\r\n\r\nGET /log HTTP/1.1\r\nConnection: close\r\n\r\n";
        let Parsed::Complete {
            consumed,
            get,
            id,
            close,
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
                close: true
            }
        );
        assert_eq!(
            parse_request(b"GET /log?id=1 HTTP/1.1\r\nHost"),
            Parsed::Partial
        );
        assert_eq!(parse_request(b"\x00\x01 nonsense\r\n\r\n"), Parsed::Bad);
    }

    #[test]
    fn json_body_names_the_id() {
        let mut out = Vec::new();
        json_body(Some(123), &mut out);
        assert_eq!(out, b"{\"id\":123}");
    }
}
