//! HTTP/1.1 on one connection, client side: write a request, read its answer as RFC 9112 says
//! a client must, whatever the server is.
//!
//! Why not monoio-http's codec (which monoio-http-client uses for HTTP/1.1): once bodies are
//! kept, a wrong byte count is lost data, and that codec gets real answers wrong — a body that
//! ends at close (HTTP/1.0, or no length) reads as empty, a chunked body with trailers or chunk
//! extensions is a protocol error, LF-only line ends hang, more than 96 header lines are refused,
//! an invalid header name panics, and a single chunk is buffered whole past any body limit. Here:
//! body until close when there is no length (§6.3), chunk extensions skipped and trailers read
//! and dropped (§7.1), a bare LF accepted as a line end (§2.2), a head of up to
//! [`MAX_HEAD_BYTES`] as curl allows, interim 1xx answers skipped, and the body limit enforced
//! as bytes arrive. The read buffer and the body buffer are reused from one request to the next.

use std::io;
use std::time::{Duration, SystemTime};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::Failure;
use super::retry::parse_retry_after;
use crate::model::ErrorKind;

/// Largest response head read (status line and header lines), as curl allows.
pub const MAX_HEAD_BYTES: usize = 100 << 10;
/// Header lines parsed without allocating; more (up to the head limit) take a heap array.
const INLINE_HEADERS: usize = 64;
/// Smallest free space handed to a read.
const READ_CHUNK: usize = 16 << 10;
/// A chunk-size line (with extensions) longer than this is not HTTP.
const MAX_CHUNK_LINE: usize = 4 << 10;

/// What the caller wants kept from an answer besides its status.
pub struct Wants<'a> {
    /// Header names to capture, lower case; values land in [`Answer::captured`] in this order.
    pub capture: &'a [String],
    /// Keep the body bytes (in [`Answer::body`]) rather than only count them.
    pub keep_body: bool,
    /// The request was a HEAD: the answer has no body whatever its headers say.
    pub head_request: bool,
    pub max_body: usize,
}

/// The answer to one request.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    pub body_len: u64,
    pub retry_after: Option<Duration>,
    pub location: Option<Vec<u8>>,
    /// One entry per [`Wants::capture`] name: the value (repeated headers joined by ", ").
    pub captured: Vec<Option<Vec<u8>>>,
    /// The body, when [`Wants::keep_body`]; reused, so take it before the next exchange.
    pub body: Vec<u8>,
}

/// How the body of an answer is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the head of an answer says, copied out of the read buffer.
struct Head {
    len: usize,
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// One connection's HTTP/1.1 state: the stream and bytes read but not yet used.
pub struct H1Conn<S> {
    stream: S,
    buf: Vec<u8>,
    pos: usize,
    reusable: bool,
    /// Exchanges completed on this connection.
    pub served: u64,
}

impl<S: AsyncReadRent + AsyncWriteRent> H1Conn<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            reusable: true,
            served: 0,
        }
    }

    /// False once an answer said `Connection: close`, ended at close, or anything failed.
    pub fn reusable(&self) -> bool {
        self.reusable
    }

    /// Sends `request` (whole, head and body) and reads the answer into `answer`. Returns the
    /// request buffer for reuse. After a failure the connection must be dropped.
    pub async fn exchange(
        &mut self,
        request: Vec<u8>,
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> (Vec<u8>, Result<(), Failure>) {
        let (written, request) = self.stream.write_all(request).await;
        if let Err(e) = written {
            self.reusable = false;
            return (request, Err(Failure::from_io(&e, false)));
        }
        let result = self.read_answer(wants, answer).await;
        if result.is_err() {
            self.reusable = false;
        } else {
            self.served += 1;
        }
        (request, result)
    }

    async fn read_answer(&mut self, wants: &Wants<'_>, answer: &mut Answer) -> Result<(), Failure> {
        answer.body.clear();
        answer.body_len = 0;
        let head = loop {
            let head = self.read_head(wants, answer).await?;
            match head.status {
                101 => {
                    return Err(protocol(
                        "101 Switching Protocols to a request that asked for no upgrade",
                    ));
                }
                // Interim answers (100 Continue, 103 Early Hints): the real one follows.
                100..=199 => self.pos += head.len,
                _ => break head,
            }
        };
        self.pos += head.len;
        answer.status = head.status;
        self.reusable = head.keep_alive;
        match head.framing {
            Framing::Empty => Ok(()),
            Framing::Length(n) => self.read_length(n, wants, answer).await,
            Framing::Chunked => self.read_chunked(wants, answer).await,
            Framing::UntilClose => {
                self.reusable = false;
                self.read_until_close(wants, answer).await
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
        self.buf.reserve(READ_CHUNK);
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        let (read, slice) = self
            .stream
            .read(std::mem::take(&mut self.buf).slice_mut(len..cap))
            .await;
        self.buf = slice.into_inner();
        read
    }

    /// Reads more, turning the end of the stream into `closed` (`answered`: whether any byte of
    /// this answer had arrived).
    async fn fill_or_fail(&mut self, answered: bool) -> Result<(), Failure> {
        match self.fill().await {
            Ok(0) => Err(Failure {
                kind: ErrorKind::Closed,
                answered,
                detail: "connection closed before the answer was complete".into(),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(Failure::from_io(&e, answered)),
        }
    }

    async fn read_head(&mut self, wants: &Wants<'_>, answer: &mut Answer) -> Result<Head, Failure> {
        loop {
            let data = &self.buf[self.pos..];
            if let Some(head) = parse_head(data, wants, answer)? {
                return Ok(head);
            }
            if data.len() > MAX_HEAD_BYTES {
                return Err(protocol("answer head larger than 100 KiB"));
            }
            let answered = !data.is_empty();
            self.fill_or_fail(answered).await?;
        }
    }

    /// Hands the next `up_to` body bytes (at most) to `answer`, reading if none are buffered.
    async fn take_body(
        &mut self,
        up_to: u64,
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> Result<(), Failure> {
        if self.pos == self.buf.len() {
            self.fill_or_fail(true).await?;
        }
        let n = (self.buf.len() - self.pos).min(usize::try_from(up_to).unwrap_or(usize::MAX));
        keep_body_bytes(&self.buf[self.pos..self.pos + n], wants, answer)?;
        self.pos += n;
        Ok(())
    }

    async fn read_length(
        &mut self,
        n: u64,
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> Result<(), Failure> {
        if n > wants.max_body as u64 {
            return Err(too_large(wants));
        }
        while answer.body_len < n {
            self.take_body(n - answer.body_len, wants, answer).await?;
        }
        Ok(())
    }

    async fn read_until_close(
        &mut self,
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> Result<(), Failure> {
        loop {
            if self.pos < self.buf.len() {
                keep_body_bytes(&self.buf[self.pos..], wants, answer)?;
                self.pos = self.buf.len();
            }
            match self.fill().await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(Failure::from_io(&e, true)),
            }
        }
    }

    /// The next line (without its CR LF or bare LF) as a range of the buffer, reading as needed.
    async fn read_line(&mut self, limit: usize) -> Result<(usize, usize), Failure> {
        loop {
            let data = &self.buf[self.pos..];
            if let Some(lf) = memchr(b'\n', data) {
                let start = self.pos;
                let end = if lf > 0 && data[lf - 1] == b'\r' {
                    lf - 1
                } else {
                    lf
                };
                self.pos += lf + 1;
                return Ok((start, start + end));
            }
            if data.len() > limit {
                return Err(protocol("chunked framing line too long"));
            }
            self.fill_or_fail(true).await?;
        }
    }

    async fn read_chunked(
        &mut self,
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> Result<(), Failure> {
        loop {
            let (start, end) = self.read_line(MAX_CHUNK_LINE).await?;
            let size = parse_chunk_size(&self.buf[start..end])?;
            if size == 0 {
                break;
            }
            if answer.body_len + size > wants.max_body as u64 {
                return Err(too_large(wants));
            }
            let until = answer.body_len + size;
            while answer.body_len < until {
                self.take_body(until - answer.body_len, wants, answer)
                    .await?;
            }
            let (start, end) = self.read_line(MAX_CHUNK_LINE).await?;
            if start != end {
                return Err(protocol("chunk data longer than its size"));
            }
        }
        // Trailer section: header lines up to an empty line, read and dropped.
        let mut trailer_bytes = 0;
        loop {
            let (start, end) = self.read_line(MAX_HEAD_BYTES).await?;
            if start == end {
                return Ok(());
            }
            trailer_bytes += end - start;
            if trailer_bytes > MAX_HEAD_BYTES {
                return Err(protocol("trailer section larger than 100 KiB"));
            }
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Counts (and, if wanted, keeps) body bytes, enforcing the body limit.
pub(super) fn keep_body_bytes(
    bytes: &[u8],
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<(), Failure> {
    answer.body_len += bytes.len() as u64;
    if answer.body_len > wants.max_body as u64 {
        return Err(too_large(wants));
    }
    if wants.keep_body {
        answer.body.extend_from_slice(bytes);
    }
    Ok(())
}

fn too_large(wants: &Wants<'_>) -> Failure {
    Failure {
        kind: ErrorKind::BodyTooLarge,
        answered: true,
        detail: format!("body larger than {} bytes", wants.max_body),
    }
}

fn protocol(detail: &str) -> Failure {
    Failure {
        kind: ErrorKind::Protocol,
        answered: true,
        detail: detail.into(),
    }
}

/// `1a;name=value` → 26. Hex digits, optional whitespace, optional extensions (ignored).
fn parse_chunk_size(line: &[u8]) -> Result<u64, Failure> {
    let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(protocol("bad chunk size"));
    }
    let mut size = 0u64;
    for &b in digits {
        let digit = (b as char)
            .to_digit(16)
            .ok_or_else(|| protocol("bad chunk size"))?;
        size = size * 16 + u64::from(digit);
    }
    Ok(size)
}

/// Parses a complete head at the start of `data`; `None` when more bytes are needed. Fills the
/// answer's captured headers, `Retry-After` and `Location` on the way.
fn parse_head(
    data: &[u8],
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<Option<Head>, Failure> {
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADERS];
    match parse_head_with(data, &mut inline, wants, answer) {
        Err(Some(httparse::Error::TooManyHeaders)) => {
            // A long head: every line of it fits in a header array this large.
            let mut many = vec![httparse::EMPTY_HEADER; data.len().min(MAX_HEAD_BYTES) / 3 + 1];
            parse_head_with(data, &mut many, wants, answer)
                .map_err(|_| protocol("malformed answer head"))
        }
        Err(_) => Err(protocol("malformed answer head")),
        Ok(head) => Ok(head),
    }
}

fn parse_head_with<'d>(
    data: &'d [u8],
    headers: &mut [httparse::Header<'d>],
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<Option<Head>, Option<httparse::Error>> {
    let mut response = httparse::Response::new(headers);
    let len = match response.parse(data) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Some(e)),
    };
    let status = response.code.ok_or(None)?;
    if !(100..=999).contains(&status) {
        return Err(None);
    }
    let http11 = response.version == Some(1);
    let mut keep_alive = http11;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    answer.captured.clear();
    answer.captured.resize(wants.capture.len(), None);
    answer.retry_after = None;
    answer.location = None;
    for header in response.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(None)?;
            // Repeated lengths must agree (RFC 9112 §6.3, item 5).
            if length.is_some_and(|m| m != n) {
                return Err(None);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // The final coding decides (§6.3, item 4); a later header line may add codings.
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("retry-after") {
            answer.retry_after = std::str::from_utf8(value)
                .ok()
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
        } else if name.eq_ignore_ascii_case("location") {
            answer.location = Some(value.to_vec());
        }
        for (slot, wanted) in wants.capture.iter().enumerate() {
            if name.eq_ignore_ascii_case(wanted) {
                let captured = &mut answer.captured[slot];
                match captured {
                    Some(joined) => {
                        joined.extend_from_slice(b", ");
                        joined.extend_from_slice(value);
                    }
                    None => *captured = Some(value.to_vec()),
                }
            }
        }
    }
    let framing = if wants.head_request || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if transfer_encoding {
        // A length beside a transfer coding is ignored, and such a connection is not reused
        // (§6.1); a coding other than chunked last means the body ends at close.
        keep_alive &= length.is_none();
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    Ok(Some(Head {
        len,
        status,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(capture: &[String]) -> Wants<'_> {
        Wants {
            capture,
            keep_body: true,
            head_request: false,
            max_body: 1 << 20,
        }
    }

    fn head_of(text: &[u8]) -> Result<Option<Head>, Failure> {
        parse_head(text, &wants(&[]), &mut Answer::default())
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |text: &[u8]| head_of(text).expect("valid").expect("complete").framing;
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Framing::UntilClose
        );
        assert_eq!(framing(b"HTTP/1.0 200 OK\r\n\r\n"), Framing::UntilClose);
        assert_eq!(
            framing(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
            Framing::Empty
        );
        assert_eq!(
            framing(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
            Framing::Empty
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\nContent-Length: 2\n\n"),
            Framing::Length(2),
            "bare LF"
        );
        assert!(
            head_of(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err()
        );
        assert!(head_of(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(head_of(b"HELLO THIS IS NOT HTTP\r\n\r\n").is_err());
        assert!(
            head_of(b"HTTP/1.1 200 OK\r\nContent-Le")
                .expect("partial is fine")
                .is_none()
        );
    }

    #[test]
    fn keep_alive_depends_on_version_and_connection() {
        let alive = |text: &[u8]| head_of(text).expect("valid").expect("complete").keep_alive;
        assert!(alive(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!alive(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!alive(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(alive(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
    }

    #[test]
    fn a_long_head_and_captured_headers() {
        let mut text = b"HTTP/1.1 200 OK\r\nX-Tag: a\r\n".to_vec();
        for k in 0..120 {
            text.extend_from_slice(format!("X-Filler-{k}: {}\r\n", "v".repeat(30)).as_bytes());
        }
        text.extend_from_slice(b"x-tag: b\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n");
        let capture = vec!["x-tag".to_string(), "etag".to_string()];
        let mut answer = Answer::default();
        let head = parse_head(&text, &wants(&capture), &mut answer)
            .expect("valid")
            .expect("complete");
        assert_eq!(head.len, text.len());
        assert_eq!(answer.captured, vec![Some(b"a, b".to_vec()), None]);
        assert_eq!(answer.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn chunk_sizes_allow_extensions_and_refuse_garbage() {
        assert_eq!(parse_chunk_size(b"1a").ok(), Some(26));
        assert_eq!(parse_chunk_size(b"1A ; name=value").ok(), Some(26));
        assert_eq!(parse_chunk_size(b"0").ok(), Some(0));
        assert!(parse_chunk_size(b"zz").is_err());
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"ffffffffffffffffff").is_err());
    }
}
