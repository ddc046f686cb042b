//! HTTP/1.1 on one connection, client side: write a request, read its answer as RFC 9112 says
//! a client must, whatever the server is. The reading is `h1_parse`'s (bytes in, progress out);
//! this side owns the socket, the read buffer (reused from one request to the next, grown while
//! reads fill it) and whether the connection may carry another request.
//!
//! Why our own: once bodies are kept, a wrong byte count is lost data, and the monoio HTTP codec
//! this replaced (monoio-http's) got real answers wrong — a body that ends at close read as
//! empty, chunk trailers or extensions were protocol errors, LF-only line ends hung, more than 96
//! header lines were refused, an invalid header name panicked, and a single chunk was buffered
//! whole past any body limit.

use std::io;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::answer::{Answer, Wants};
use super::decode::BodyDecoder;
use super::h1_parse::Decoder;
use crate::request::RequestParts;
use crate::worker::conn::stream::Stream;
use crate::worker::failure::Failure;

/// A connection's read buffer at first: enough for a small answer whole. With thousands of
/// connections open, a fixed 16 KiB each was most of the worker's memory.
const FIRST_READ_BUFFER: usize = 2 << 10;
/// The read buffer grows (doubling) while reads fill it, up to this.
const MAX_READ_BUFFER: usize = 64 << 10;
/// Smallest free space handed to a read.
const MIN_READ: usize = 512;
/// A connection whose last answer ended less than this ago is taken to be as that answer left
/// it, not checked again before its next request (see [`H1Conn::spoiled_while_idle`]).
pub const CHECK_IDLE_AFTER: Duration = Duration::from_millis(1);

/// One connection's HTTP/1.1 state: the stream and bytes read but not yet used.
pub struct H1Conn<S> {
    stream: S,
    buf: Vec<u8>,
    pos: usize,
    reusable: bool,
    /// Exchanges completed on this connection.
    pub served: u64,
    /// When the last one ended.
    answered_at: Option<Instant>,
}

impl<S: AsyncReadRent + AsyncWriteRent> H1Conn<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(FIRST_READ_BUFFER),
            pos: 0,
            reusable: true,
            served: 0,
            answered_at: None,
        }
    }

    /// False once an answer said `Connection: close`, ended at close, was followed by bytes no
    /// request asked for, or anything failed.
    pub fn reusable(&self) -> bool {
        self.reusable
    }

    /// Sends `request` (whole, head and body) and reads the answer into `answer`; the request
    /// buffer is handed back in place for reuse. After a failure the connection must be dropped.
    pub async fn exchange(
        &mut self,
        request: &mut Vec<u8>,
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> Result<(), Failure> {
        let (written, buf) = self.stream.write_all(std::mem::take(request)).await;
        *request = buf;
        if let Err(e) = written {
            self.reusable = false;
            return Err(Failure::from_io(&e, false));
        }
        let result = self.read_answer(wants, answer).await;
        if result.is_err() {
            self.reusable = false;
        } else {
            self.served += 1;
        }
        result
    }

    /// Notes when the last answer ended (the caller has read the clock for its latency
    /// already): see [`H1Conn::spoiled_while_idle`]. Never noted, the connection is checked
    /// before every request.
    pub fn answered_at(&mut self, at: Instant) {
        self.answered_at = Some(at);
    }

    /// Feeds the decoder what is buffered, reading more until the answer is complete. One
    /// loop around one read keeps this future small: a request's futures are moved (copied)
    /// as they are built, and nested ones for each framing cost more than the parsing.
    async fn read_answer(&mut self, wants: &Wants<'_>, answer: &mut Answer) -> Result<(), Failure> {
        answer.start();
        let mut decoder = Decoder::default();
        loop {
            self.pos += decoder.feed(&self.buf[self.pos..], wants, answer)?;
            if let Some(keep_alive) = decoder.done() {
                // Bytes after a complete answer are never the next answer (RFC 9112 §6.3): a
                // server that sends them (two answers to one request, a body longer than its
                // Content-Length) would have them read as another id's answer. Drop it, as curl
                // does ("Excess found").
                self.reusable = keep_alive && self.pos == self.buf.len();
                return answer.finish_body(wants);
            }
            let answered = decoder.answered || self.pos < self.buf.len();
            if let Some(memory) = wants.memory {
                // Room for what is held and one more read, or wait (the server waits too); a
                // decoder about to take its window waits for room for it before its first
                // bytes, which are buffered already: fed without another read.
                let window_first = answer
                    .decoding
                    .as_ref()
                    .is_some_and(BodyDecoder::window_to_grant);
                let wanted = answer.held_after_read(MAX_READ_BUFFER, wants.keep_body);
                memory.grow(&mut answer.hold, wanted).await;
                if window_first {
                    if let Some(decoding) = &mut answer.decoding {
                        decoding.grant();
                    }
                    continue;
                }
            }
            match self.fill().await {
                Ok(0) => {
                    decoder.end_of_stream(answered)?;
                    self.reusable = false;
                    return answer.finish_body(wants);
                }
                Ok(_) => {}
                Err(e) => return Err(Failure::from_io(&e, answered)),
            }
        }
    }

    /// Reads more bytes after the unused ones; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > self.buf.capacity() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            // A head or chunk line longer than the buffer: room for more of it.
            self.buf.reserve(self.buf.capacity().max(MIN_READ));
        }
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        let (read, slice) = self
            .stream
            .read(std::mem::take(&mut self.buf).slice_mut(len..cap))
            .await;
        self.buf = slice.into_inner();
        // A read that filled the buffer: the answers are large, so read more at a time.
        if self.buf.len() == cap && cap < MAX_READ_BUFFER {
            self.buf.reserve_exact(cap);
        }
        read
    }
}

impl H1Conn<Stream> {
    /// True when the idle connection is no longer fit for a request (the server closed it or
    /// sent something unasked: [`Stream::spoiled_while_idle`]). One that answered less than
    /// [`CHECK_IDLE_AFTER`] ago is not looked at: what a server does to an idle connection
    /// (HAProxy's `408`, a close) comes when its idle timeout ends, seconds later; bytes
    /// sent with an answer are read with it (and spoil the connection, see `read_answer`).
    /// Under load every request reuses a connection that has just answered, and the look (a
    /// system call on io_uring) was 3.7% of a plain run's profile.
    /// `now`: the caller's reading of the clock (one per request is enough).
    pub fn spoiled_while_idle(&mut self, now: Instant) -> bool {
        let fresh = self
            .answered_at
            .is_some_and(|at| now.saturating_duration_since(at) < CHECK_IDLE_AFTER);
        !fresh && self.stream.spoiled_while_idle()
    }
}

/// Writes the whole HTTP/1.1 request into `out` (cleared first); `body` is scratch for its
/// body. Framed with a `content-length` whenever there is a body or the method expects one.
pub fn write_request(parts: &RequestParts<'_>, out: &mut Vec<u8>, body: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(parts.method().as_str().as_bytes());
    out.push(b' ');
    parts.write_target(out);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    match parts.fixed_lines() {
        Some(lines) => out.extend_from_slice(lines),
        None => {
            for (name, value) in parts.headers() {
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                parts.write_value(&value, out);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if parts.write_body(body) || parts.expects_body() {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    use super::*;
    use crate::worker::conn::stream::Tcp;

    const BODY: usize = 4 << 20;

    /// A server that reads nothing for a while, then the whole request, then answers: its
    /// socket fills, so the client's socket takes only part of the request at once.
    fn slow_reader() -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let peer = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            // A request cut short fails the test rather than hanging it.
            let patience = Some(Duration::from_secs(10));
            socket.set_read_timeout(patience).expect("timeout");
            std::thread::sleep(Duration::from_millis(100));
            let mut received = Vec::new();
            let mut chunk = vec![0u8; 64 << 10];
            while !received.ends_with(b"\x7f") {
                let n = socket.read(&mut chunk).expect("read");
                assert_ne!(n, 0, "the request ended early");
                received.extend_from_slice(&chunk[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .expect("answer");
            received
        });
        (addr, peer)
    }

    fn large_request() -> Vec<u8> {
        let mut request =
            format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {BODY}\r\n\r\n").into_bytes();
        request.extend((0..BODY - 1).map(|i| b'a' + (i % 26) as u8));
        request.push(0x7f);
        request
    }

    async fn exchange_with(addr: SocketAddr) -> (u16, Vec<u8>) {
        let tcp = monoio::net::TcpStream::connect(addr)
            .await
            .expect("connect");
        let mut conn = H1Conn::new(Stream::plain(Tcp::new(tcp, true)));
        let wants = Wants {
            capture: &[],
            keep_body: true,
            memory: None,
            head_request: false,
            max_body: 1 << 20,
            cut_past_max: false,
            decode: false,
        };
        let mut answer = Answer::default();
        let mut request = large_request();
        conn.exchange(&mut request, &wants, &mut answer)
            .await
            .expect("exchange");
        (answer.status, answer.body)
    }

    /// Sends the large request to a slow reader through `block_on`'s runtime and checks both
    /// ends: the answer read, every byte of the request received once and in order.
    fn assert_sent_whole(block_on: impl FnOnce(SocketAddr) -> (u16, Vec<u8>)) {
        let (addr, peer) = slow_reader();
        assert_eq!(block_on(addr), (200, b"ok".to_vec()));
        assert!(peer.join().expect("peer") == large_request());
    }

    #[test]
    fn a_request_larger_than_the_socket_takes_at_once_is_sent_whole_on_both_drivers() {
        let mut epoll = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("epoll runtime");
        assert_sent_whole(|addr| epoll.block_on(exchange_with(addr)));
        // Where io_uring is refused (a container's seccomp profile), the epoll half stands alone.
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(mut uring) => assert_sent_whole(|addr| uring.block_on(exchange_with(addr))),
            Err(e) => eprintln!("io_uring half skipped: {e}"),
        }
    }
}
