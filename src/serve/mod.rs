//! `ringscrape serve`: the built-in demo target. Any `GET` answers 200 with a small JSON record
//! naming the id from `?id=`, or else from the last numeric path segment (`/v1/logs/42`), or
//! `--body-bytes N` of text; any request to `/echo` answers with what was received (`echo.rs`);
//! after a per-id delay drawn from a PRNG seeded by `--seed` and the id. One monoio runtime per
//! thread, all accepting on one listening socket; SIGINT/SIGTERM stop it cleanly (exit 0).
//!
//! HTTP is parsed by hand on purpose (`http.rs`) (with `httparse`): the target must be able to misbehave at
//! the byte level on request (fault injection), which a server framework would not allow.

mod capacity;
mod echo;
mod faults;
mod http;

use std::io::{self, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::io::AsyncReadRent;
use monoio::net::TcpStream;

use crate::cli::ServeArgs;
use crate::runtime;
use capacity::Capacity;
use faults::{AttemptCounter, Fault, Faults, inject};
use http::{Parsed, parse_request, send, write_response};

/// A request head larger than this is refused (the client is not one of ours).
const MAX_REQUEST_BYTES: usize = 64 << 10;
const LISTEN_BACKLOG: i32 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// `--listen`, read once.
    pub listen: std::net::SocketAddr,
    pub delay_ms: (u64, u64),
    pub seed: u64,
    pub body_bytes: Option<usize>,
    pub threads: usize,
    /// `--max-inflight`: requests worked on at once; the rest queue.
    pub max_inflight: Option<usize>,
    pub faults: Faults,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--delay-ms {0}: expected MIN..MAX in milliseconds, e.g. 0..900")]
    Delay(String),
    #[error("--threads 0: must be at least 1")]
    Threads,
    #[error("--max-inflight 0: must be at least 1")]
    MaxInflight,
    #[error("--listen {0}: {1}")]
    Listen(String, io::Error),
    #[error("--listen {0}: {expected}", expected = crate::listen_addr::EXPECTED)]
    ListenAddr(String),
    #[error("serve: {0}")]
    Io(#[from] io::Error),
    #[error("serve: signal handling: {0}")]
    Signal(#[from] nix::Error),
}

impl ServeError {
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ServeError::Delay(_)
                | ServeError::Threads
                | ServeError::MaxInflight
                | ServeError::Listen(..)
                | ServeError::ListenAddr(_)
        )
    }
}

impl ServeOptions {
    pub fn from_args(args: &ServeArgs) -> Result<Self, ServeError> {
        // Every flag by name (no `..`): a new one that is not turned into an option here does
        // not compile.
        let ServeArgs {
            listen,
            delay_ms,
            seed,
            body_bytes,
            threads,
            max_inflight,
            fail_first,
            drop_every,
            stall_every,
            garbage_every,
            reset_mid_body_every,
            bad_chunk_every,
            huge_every,
            informational_every,
            redirect_every,
            close_every,
        } = args;
        let bad = || ServeError::Delay(delay_ms.clone());
        let (min, max) = delay_ms.split_once("..").ok_or_else(bad)?;
        let (min, max): (u64, u64) = (
            min.trim().parse().map_err(|_| bad())?,
            max.trim().parse().map_err(|_| bad())?,
        );
        if max < min {
            return Err(bad());
        }
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err(ServeError::Threads);
        }
        if *max_inflight == Some(0) {
            return Err(ServeError::MaxInflight);
        }
        Ok(Self {
            listen: crate::listen_addr::parse(listen)
                .ok_or_else(|| ServeError::ListenAddr(listen.clone()))?,
            delay_ms: (min, max),
            seed: *seed,
            body_bytes: *body_bytes,
            threads,
            max_inflight: *max_inflight,
            faults: Faults {
                fail_first: *fail_first,
                drop_every: *drop_every,
                stall_every: *stall_every,
                garbage_every: *garbage_every,
                reset_mid_body_every: *reset_mid_body_every,
                bad_chunk_every: *bad_chunk_every,
                huge_every: *huge_every,
                informational_every: *informational_every,
                redirect_every: *redirect_every,
                close_every: *close_every,
            },
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

/// The JSON body for `id`: `{"id":N,"v":"…"}` with `N mod 8` letters in `v`, so that bodies of
/// neighbouring ids differ in length and a response attributed to the wrong id shows up in the
/// `bytes` column (tests compute the same formula independently).
pub fn json_body(id: Option<u64>, out: &mut Vec<u8>) {
    match id {
        Some(id) => {
            out.extend_from_slice(b"{\"id\":");
            out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
            out.extend_from_slice(b",\"v\":\"");
            out.extend(std::iter::repeat_n(b'x', (id % 8) as usize));
            out.extend_from_slice(b"\"}");
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
    let listener = TcpListener::bind(opts.listen)
        .map_err(|e| ServeError::Listen(opts.listen.to_string(), e))?;
    // std listens with a backlog of 128; a burst of a few hundred connects would overflow it.
    nix::sys::socket::listen(&listener, nix::sys::socket::Backlog::new(LISTEN_BACKLOG)?)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // Blocked in every thread; the main thread collects them below.
    let stop = runtime::block_stop_signals()?;
    let body = opts.body_bytes.map(|n| Arc::new(text_body(n)));
    let attempts = Arc::new(AttemptCounter::default());
    let capacity = opts
        .max_inflight
        .map(|n| Arc::new(Capacity::new(n, Instant::now())));
    for _ in 0..opts.threads {
        let listener = listener.try_clone()?;
        let shared = Shared {
            opts: opts.clone(),
            body: body.clone(),
            attempts: attempts.clone(),
            capacity: capacity.clone(),
        };
        std::thread::spawn(move || {
            let served = runtime::block_on(1024, move |choice| {
                if let Some(line) = choice.epoll_line() {
                    crate::say!("{line}");
                }
                accept_loop(listener, shared)
            });
            if let Err(e) | Ok(Err(e)) = served {
                crate::say!("serve: {e}");
            }
        });
    }
    let mut stdout = io::stdout();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    let signal = stop.wait()?;
    crate::say!("serve: {signal}, stopping");
    Ok(())
}

/// What every server thread shares.
struct Shared {
    opts: ServeOptions,
    body: Option<Arc<Vec<u8>>>,
    attempts: Arc<AttemptCounter>,
    capacity: Option<Arc<Capacity>>,
}

/// What one server thread's connections share.
struct Target {
    opts: ServeOptions,
    text: Option<Rc<[u8]>>,
    attempts: Arc<AttemptCounter>,
    capacity: Option<Arc<Capacity>>,
}

impl Target {
    fn fault_for(&self, id: u64) -> Option<Fault> {
        let faults = &self.opts.faults;
        if !faults.any() {
            return None;
        }
        let attempt = if faults.fail_first > 0 {
            self.attempts.next(id)
        } else {
            1
        };
        faults.for_id(id, attempt)
    }
}

async fn accept_loop(listener: TcpListener, shared: Shared) -> io::Result<()> {
    let listener = monoio::net::TcpListener::from_std(listener)?;
    let target = Rc::new(Target {
        opts: shared.opts,
        text: shared.body.map(|b| Rc::from(b.as_slice())),
        attempts: shared.attempts,
        capacity: shared.capacity,
    });
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve_connection(stream, target.clone()));
            }
            // Out of descriptors or similar: keep serving the connections we have.
            Err(e) => {
                crate::say!("serve: accept: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(mut stream: TcpStream, target: Rc<Target>) {
    let mut pending: Vec<u8> = Vec::with_capacity(4096);
    let mut read_buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut body: Vec<u8> = Vec::with_capacity(64);
    let mut served = 0u64;
    loop {
        match parse_request(&pending) {
            Parsed::Complete {
                consumed,
                id,
                close,
                echo: true,
                ..
            } => {
                let echoed = echo::echo(&pending[..consumed], id);
                pending.drain(..consumed);
                let Some((body, extra)) = echoed else { return };
                write_response(&mut out, "200 OK", &body, Duration::ZERO, close, &extra);
                if !send(&mut stream, &mut out).await || close {
                    return;
                }
                continue;
            }
            Parsed::Complete {
                consumed,
                get,
                id,
                close,
                echo: false,
            } => {
                pending.drain(..consumed);
                let fault = id.and_then(|id| target.fault_for(id));
                let keep_open = match fault {
                    Some(Fault::Informational) => {
                        // An interim response first, then the real one on the same connection.
                        out.extend_from_slice(
                            b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n",
                        );
                        send(&mut stream, &mut out).await
                            && answer(&mut stream, &target, get, id, close, &mut out, &mut body)
                                .await
                    }
                    Some(fault) => inject(&mut stream, fault, &mut out).await,
                    None => answer(&mut stream, &target, get, id, close, &mut out, &mut body).await,
                };
                served += 1;
                if !keep_open || close || target.opts.faults.closes_after(served) {
                    return;
                }
                continue;
            }
            Parsed::Bad => {
                let body = b"{\"error\":\"bad request\"}";
                write_response(&mut out, "400 Bad Request", body, Duration::ZERO, true, "");
                send(&mut stream, &mut out).await;
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

/// The normal answer: the JSON record (or the text body) after the id's delay.
async fn answer(
    stream: &mut TcpStream,
    target: &Target,
    get: bool,
    id: Option<u64>,
    close: bool,
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> bool {
    let delay = target.opts.delay_for(id.unwrap_or(0));
    match &target.capacity {
        Some(capacity) => {
            let now = Instant::now();
            let done = capacity.finish_time(now, delay);
            monoio::time::sleep(done - now).await;
        }
        None if !delay.is_zero() => monoio::time::sleep(delay).await,
        None => {}
    }
    if !get {
        write_response(
            out,
            "405 Method Not Allowed",
            b"{\"error\":\"GET only\"}",
            delay,
            close,
            "",
        );
    } else if let Some(text) = &target.text {
        write_response(out, "200 OK", text, delay, close, "");
    } else {
        body.clear();
        json_body(id, body);
        write_response(out, "200 OK", body, delay, close, "");
    }
    send(stream, out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_faults() -> ServeArgs {
        ServeArgs {
            listen: String::new(),
            delay_ms: String::new(),
            seed: 0,
            body_bytes: None,
            threads: None,
            max_inflight: None,
            fail_first: 0,
            drop_every: None,
            stall_every: None,
            garbage_every: None,
            reset_mid_body_every: None,
            bad_chunk_every: None,
            huge_every: None,
            informational_every: None,
            redirect_every: None,
            close_every: None,
        }
    }

    fn opts(delay: &str, seed: u64) -> ServeOptions {
        ServeOptions::from_args(&ServeArgs {
            listen: "127.0.0.1:0".into(),
            delay_ms: delay.into(),
            seed,
            body_bytes: None,
            threads: Some(1),
            ..no_faults()
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
                ..no_faults()
            };
            assert!(
                matches!(ServeOptions::from_args(&args), Err(ServeError::Delay(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_body_names_the_id() {
        let mut out = Vec::new();
        json_body(Some(123), &mut out);
        assert_eq!(out, b"{\"id\":123,\"v\":\"xxx\"}");
    }
}
