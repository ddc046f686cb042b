//! HTTP/1.1 answers read from bytes as they arrive, without I/O (RFC 9112): the status line and
//! headers, the body's framing (length, chunked with extensions and trailers, until close),
//! interim 1xx answers skipped, a bare LF taken as a line end, a head of up to
//! [`MAX_HEAD_BYTES`]. The connection (`h1.rs`) hands [`Decoder`] what it has buffered and reads
//! more when the decoder has used everything it can; the tests split answers at every byte.

use std::time::SystemTime;

use super::answer::{Answer, Wants, keep_body_bytes, too_large};
use super::decode::{Coding, Codings};
use super::h1_fields::{Known, parse_decimal, unfold_into};
use super::h1_head::{Malformed, StatusLine, scan_head};
use crate::model::ErrorKind;
use crate::worker::failure::Failure;
use crate::worker::schedule::quota::Reading;
use crate::worker::schedule::retry::parse_retry_after;

/// Largest response head read (status line and header lines), as curl allows.
const MAX_HEAD_BYTES: usize = 100 << 10;
/// A chunk-size line (with extensions) longer than this is not HTTP.
const MAX_CHUNK_LINE: usize = 4 << 10;

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
    /// What `Content-Encoding` says.
    content: Codings,
    /// The transfer codings under `chunked` (gzip, deflate), in order; or why they cannot be
    /// undone.
    transfer: Result<Vec<Coding>, String>,
}

/// Where the decoder is within one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Stage {
    /// Status line and headers (of an interim 1xx answer, or of the real one).
    #[default]
    Head,
    /// `left` more body bytes of a `Content-Length` body.
    Length { left: u64 },
    /// A chunk-size line (with extensions).
    ChunkSize,
    /// `left` more bytes of the current chunk.
    ChunkData { left: u64 },
    /// The line end after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, `seen` bytes so far, up to an empty line.
    Trailers { seen: usize },
    /// Everything until the server closes.
    UntilClose,
    /// The answer is complete; `keep_alive`: the connection may carry the next request.
    Done { keep_alive: bool },
}

/// Reads one answer from bytes as they arrive (RFC 9112), without doing I/O: the caller
/// hands it what is buffered and reads more when it has used everything it can.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    stage: Stage,
    keep_alive: bool,
    /// Some byte of this exchange's answer (an interim 1xx included) has been used.
    pub(super) answered: bool,
}

impl Decoder {
    /// `Some(keep_alive)` once the answer is complete.
    pub(super) fn done(&self) -> Option<bool> {
        match self.stage {
            Stage::Done { keep_alive } => Some(keep_alive),
            _ => None,
        }
    }

    /// Uses what it can of `data`; returns how many bytes it used. Stops when the answer is
    /// complete or when it needs more bytes than `data` has.
    pub(super) fn feed(
        &mut self,
        data: &[u8],
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> Result<usize, Failure> {
        let mut used = 0;
        loop {
            let rest = &data[used..];
            let step = match self.stage {
                Stage::Done { .. } => return Ok(used),
                Stage::Head => self.head(rest, wants, answer)?,
                Stage::Length { left } => {
                    let n = take(rest, left, wants, answer)?;
                    self.stage = if n as u64 == left {
                        Stage::Done {
                            keep_alive: self.keep_alive,
                        }
                    } else {
                        Stage::Length {
                            left: left - n as u64,
                        }
                    };
                    n
                }
                Stage::ChunkSize => match line(rest, MAX_CHUNK_LINE)? {
                    None => 0,
                    Some((text, len)) => {
                        let size = parse_chunk_size(text)?;
                        // Cut past the limit: its first part is kept as it arrives.
                        if !wants.cut_past_max && answer.wire_len + size > wants.max_body as u64 {
                            return Err(too_large(wants));
                        }
                        self.stage = if size == 0 {
                            Stage::Trailers { seen: 0 }
                        } else {
                            Stage::ChunkData { left: size }
                        };
                        len
                    }
                },
                Stage::ChunkData { left } => {
                    let n = take(rest, left, wants, answer)?;
                    self.stage = if n as u64 == left {
                        Stage::ChunkEnd
                    } else {
                        Stage::ChunkData {
                            left: left - n as u64,
                        }
                    };
                    n
                }
                Stage::ChunkEnd => match line(rest, MAX_CHUNK_LINE)? {
                    None => 0,
                    Some((text, _)) if !text.is_empty() => {
                        return Err(protocol("chunk data longer than its size"));
                    }
                    Some((_, len)) => {
                        self.stage = Stage::ChunkSize;
                        len
                    }
                },
                // Trailer lines are read and dropped.
                Stage::Trailers { seen } => match line(rest, MAX_HEAD_BYTES)? {
                    None => 0,
                    Some((text, len)) => {
                        let seen = seen + text.len();
                        if seen > MAX_HEAD_BYTES {
                            return Err(protocol("trailer section larger than 100 KiB"));
                        }
                        self.stage = if text.is_empty() {
                            Stage::Done {
                                keep_alive: self.keep_alive,
                            }
                        } else {
                            Stage::Trailers { seen }
                        };
                        len
                    }
                },
                Stage::UntilClose if answer.awaits_room(rest, wants) => 0,
                Stage::UntilClose => {
                    keep_body_bytes(rest, wants, answer)?;
                    rest.len()
                }
            };
            if step == 0 {
                return Ok(used);
            }
            self.answered = true;
            used += step;
        }
    }

    /// The head stage: a complete head moves on to the body (or, for an interim 1xx answer,
    /// to the next head); returns the bytes used, 0 when the head is not all there yet.
    fn head(
        &mut self,
        data: &[u8],
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> Result<usize, Failure> {
        // Each exchange feeds the decoder before its first read: nothing to parse yet (parsing
        // no bytes, its setup included, was 1% of a plain request's instructions).
        if data.is_empty() {
            return Ok(0);
        }
        let Some(head) = parse_head(data, wants, answer)? else {
            if data.len() > MAX_HEAD_BYTES {
                return Err(protocol("answer head larger than 100 KiB"));
            }
            return Ok(0);
        };
        match head.status {
            101 => {
                return Err(protocol(
                    "101 Switching Protocols to a request that asked for no upgrade",
                ));
            }
            // Interim answers (100 Continue, 103 Early Hints): the real one follows.
            100..=199 => return Ok(head.len),
            _ => {}
        }
        answer.status = head.status;
        self.keep_alive = head.keep_alive;
        if !matches!(head.framing, Framing::Empty | Framing::Length(0)) {
            // A transfer coding that cannot be undone leaves no body to keep (curl: error 61).
            let transfer = head.transfer.map_err(|detail| Failure {
                kind: ErrorKind::Decode,
                answered: true,
                detail,
            })?;
            answer.expect_codings(head.content, transfer, wants);
        }
        self.stage = match head.framing {
            Framing::Empty | Framing::Length(0) => Stage::Done {
                keep_alive: head.keep_alive,
            },
            Framing::Length(n) if n > wants.max_body as u64 && !wants.cut_past_max => {
                return Err(too_large(wants));
            }
            Framing::Length(n) => Stage::Length { left: n },
            Framing::Chunked => Stage::ChunkSize,
            Framing::UntilClose => {
                self.keep_alive = false;
                Stage::UntilClose
            }
        };
        Ok(head.len)
    }

    /// The stream ended: that completes a body that runs until close; anything else was cut.
    pub(super) fn end_of_stream(&mut self, answered: bool) -> Result<(), Failure> {
        if self.stage == Stage::UntilClose {
            self.stage = Stage::Done { keep_alive: false };
            return Ok(());
        }
        Err(Failure {
            kind: ErrorKind::Closed,
            answered,
            detail: "connection closed before the answer was complete".into(),
        })
    }
}

/// Hands up to `left` body bytes of `data` to the answer; returns how many (none while a
/// decoder waits for room for its window).
fn take(data: &[u8], left: u64, wants: &Wants<'_>, answer: &mut Answer) -> Result<usize, Failure> {
    let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
    if answer.awaits_room(&data[..n], wants) {
        return Ok(0);
    }
    keep_body_bytes(&data[..n], wants, answer)?;
    Ok(n)
}

/// The first line of `data` without its CR LF (or bare LF), and the bytes it takes up with its
/// line end; `None` when the line end has not arrived (an error past `limit` bytes).
fn line(data: &[u8], limit: usize) -> Result<Option<(&[u8], usize)>, Failure> {
    match memchr::memchr(b'\n', data) {
        Some(lf) => {
            let text = &data[..lf];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            Ok(Some((text, lf + 1)))
        }
        None if data.len() > limit => Err(protocol("chunked framing line too long")),
        None => Ok(None),
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
/// answer's captured headers, `Retry-After`, the rate-limit fields and `Location` on the way.
fn parse_head(
    data: &[u8],
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<Option<Head>, Failure> {
    match parse_head_fields(data, wants, answer) {
        Ok(Some(head)) => Ok(Some(head)),
        Ok(None) => {
            // What a head cut short said is said again, whole, by the next scan.
            forget_fields(answer);
            Ok(None)
        }
        Err(Malformed) => Err(protocol("malformed answer head")),
    }
}

/// The fields an answer's head fills in, as no head had said anything.
fn forget_fields(answer: &mut Answer) {
    answer.captured.clear();
    answer.retry_after = None;
    answer.rate_limit = Reading::default();
    answer.location = None;
}

/// The head at the start of `data`, its fields acted on as they are read.
fn parse_head_fields(
    data: &[u8],
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<Option<Head>, Malformed> {
    forget_fields(answer);
    answer.captured.resize(wants.capture.len(), None);
    let mut length: Option<u64> = None;
    // Rare (and then one line): no allocation for the answers that have none.
    let mut transfer_values: Vec<&[u8]> = Vec::new();
    let mut encodings: Vec<&[u8]> = Vec::new();
    // What `Connection` says: `close` (it wins), `keep-alive` (which HTTP/1.0 needs).
    let (mut close, mut keep) = (false, false);
    let scanned = scan_head(data, |name, value| {
        match Known::of(name) {
            Known::ContentLength => {
                let n = parse_decimal(value).ok_or(Malformed)?;
                // Repeated lengths must agree (RFC 9112 §6.3, item 5).
                if length.is_some_and(|m| m != n) {
                    return Err(Malformed);
                }
                length = Some(n);
            }
            Known::TransferEncoding => transfer_values.push(value),
            Known::Connection => {
                for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            Known::RetryAfter => {
                answer.retry_after = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
            }
            Known::RateLimit(field) => answer.rate_limit.take(field, value),
            Known::Location => answer.location = Some(value.to_vec()),
            Known::ContentEncoding => encodings.push(value),
            Known::Other => {}
        }
        for (slot, wanted) in wants.capture.iter().enumerate() {
            if name.eq_ignore_ascii_case(wanted.as_bytes()) {
                let captured = &mut answer.captured[slot];
                let joined = captured.get_or_insert_with(Vec::new);
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                unfold_into(value, joined);
            }
        }
        Ok(())
    })?;
    let Some((
        StatusLine {
            http11,
            code: status,
        },
        len,
    )) = scanned
    else {
        return Ok(None);
    };
    if status < 100 {
        return Err(Malformed);
    }
    let mut keep_alive = !close && (http11 || keep);
    let transfer = transfer_codings(&transfer_values);
    let chunked = transfer.as_ref().is_ok_and(|t| t.chunked);
    // Only `identity` named: as if there were no Transfer-Encoding.
    let transfer_named = !matches!(&transfer, Ok(t) if !t.named);
    let framing = if wants.head_request || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if transfer_named {
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
    let content = if encodings.is_empty() {
        Codings::Identity
    } else {
        Codings::parse(encodings)
    };
    Ok(Some(Head {
        len,
        status,
        framing,
        keep_alive,
        content,
        transfer: transfer.map(|t| t.codings),
    }))
}

/// What `Transfer-Encoding` lines say (RFC 9112 §6.1, §7).
struct Transfer {
    /// `chunked` is the final coding: the body is framed in chunks.
    chunked: bool,
    /// The codings applied before (gzip, deflate), in order.
    codings: Vec<Coding>,
    /// Some coding was named besides `identity`: the body is framed by them, not its length.
    named: bool,
}

/// Reads the `Transfer-Encoding` values, in order. `identity` is no coding and is skipped, and
/// `chunked` repeated at the end (`chunked, chunked`, or on two header lines) is one: curl reads
/// both so. A coding this client cannot undo, or `chunked` before another coding, is an error:
/// the body could not be read as sent, as curl refuses it.
fn transfer_codings(values: &[&[u8]]) -> Result<Transfer, String> {
    let is_chunked = |token: &&[u8]| token.eq_ignore_ascii_case(b"chunked");
    let mut tokens: Vec<&[u8]> = values
        .iter()
        .flat_map(|value| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty() && !token.eq_ignore_ascii_case(b"identity"))
        .collect();
    while tokens.len() > 1 && tokens.iter().rev().take(2).all(is_chunked) {
        tokens.pop();
    }
    let mut transfer = Transfer {
        chunked: false,
        codings: Vec::new(),
        named: !tokens.is_empty(),
    };
    for (at, token) in tokens.iter().enumerate() {
        let is = |name: &str| token.eq_ignore_ascii_case(name.as_bytes());
        if is("chunked") && at + 1 == tokens.len() {
            transfer.chunked = true;
        } else if is("chunked") {
            return Err("transfer coding chunked before another one".into());
        } else if is("gzip") || is("x-gzip") {
            transfer.codings.push(Coding::Gzip);
        } else if is("deflate") {
            transfer.codings.push(Coding::Deflate);
        } else {
            let name = String::from_utf8_lossy(token);
            return Err(format!("transfer coding {name:?} cannot be decoded"));
        }
    }
    Ok(transfer)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn wants(capture: &[String]) -> Wants<'_> {
        Wants {
            capture,
            keep_body: true,
            memory: None,
            head_request: false,
            max_body: 1 << 20,
            cut_past_max: false,
            decode: true,
        }
    }

    /// What the decoder makes of `wire` arriving in pieces of `piece` bytes, as the read loop
    /// drives it: (status, body, keep-alive, bytes left for the next answer), or the failure.
    fn decode_in_pieces(
        wire: &[u8],
        piece: usize,
    ) -> Result<(u16, Vec<u8>, bool, usize), ErrorKind> {
        let capture = [];
        let wants = wants(&capture);
        let mut answer = Answer::default();
        let mut decoder = Decoder::default();
        let (mut buf, mut pos) = (Vec::new(), 0);
        let mut pieces = wire.chunks(piece);
        loop {
            pos += decoder
                .feed(&buf[pos..], &wants, &mut answer)
                .map_err(|f| f.kind)?;
            if let Some(keep_alive) = decoder.done() {
                answer.finish_body(&wants).map_err(|f| f.kind)?;
                return Ok((answer.status, answer.body, keep_alive, buf.len() - pos));
            }
            match pieces.next() {
                Some(bytes) => buf.extend_from_slice(bytes),
                None => {
                    decoder.end_of_stream(true).map_err(|f| f.kind)?;
                    answer.finish_body(&wants).map_err(|f| f.kind)?;
                    return Ok((answer.status, answer.body, false, buf.len() - pos));
                }
            }
        }
    }

    #[test]
    fn answers_decode_alike_however_the_bytes_arrive() {
        let next = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let cases: &[(&[u8], u16, &[u8], bool)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                200,
                b"hello",
                true,
            ),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                201,
                b"ok",
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
                200,
                b"abcde",
                true,
            ),
            (
                b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1\nz\n0\n\n",
                200,
                b"z",
                true,
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", true),
            (
                b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 3\r\n\r\nnop",
                404,
                b"nop",
                false,
            ),
        ];
        for &(answer, status, body, keep_alive) in cases {
            let mut wire = answer.to_vec();
            wire.extend_from_slice(next);
            for piece in 1..=wire.len() {
                let decoded = decode_in_pieces(&wire, piece);
                let text = String::from_utf8_lossy(answer);
                let (got_status, got_body, got_alive, left) =
                    decoded.unwrap_or_else(|e| panic!("{text} in pieces of {piece}: {e:?}"));
                assert_eq!(got_status, status, "{text} / {piece}");
                assert_eq!(got_body, body, "{text} / {piece}");
                assert_eq!(got_alive, keep_alive, "{text} / {piece}");
                // The next answer's bytes are left, never eaten (those that have arrived).
                assert!(left <= next.len(), "{text} / {piece}");
            }
        }
    }

    fn chunked(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in body.chunks(7) {
            out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[test]
    fn transfer_codings_under_chunked_are_undone_and_others_refused() {
        use std::io::Write;
        let text = b"the record, gzip as a transfer coding".repeat(3);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&text).expect("zlib");
        let zlib = zlib.finish().expect("zlib");
        for (codings, encoded) in [
            ("gzip, chunked", &gz),
            ("deflate, chunked", &zlib),
            // As curl reads them (its tests 1277, 1940s): identity skipped, chunked once.
            ("identity, chunked", &text),
            ("chunked, chunked", &text),
            ("chunked\r\nTransfer-Encoding: chunked", &text),
            ("identity, gzip, identity, chunked", &gz),
        ] {
            let mut wire =
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {codings}\r\n\r\n").into_bytes();
            wire.extend_from_slice(&chunked(encoded));
            for piece in [1, 5, wire.len()] {
                let (status, body, keep_alive, _) = decode_in_pieces(&wire, piece).expect(codings);
                assert_eq!((status, &body, keep_alive), (200, &text, true), "{codings}");
            }
        }
        // Only identity: framed by its length, as with no Transfer-Encoding.
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nabcde";
        let (status, body, keep_alive, _) = decode_in_pieces(wire, 3).expect("identity twice");
        assert_eq!((status, &body[..], keep_alive), (200, &b"abcde"[..], true));
        for codings in [
            "chunked, gzip",
            "chunked, gzip, chunked",
            "bogus, chunked",
            "identityx",
        ] {
            let mut wire =
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {codings}\r\n\r\n").into_bytes();
            wire.extend_from_slice(&chunked(b"raw bytes"));
            assert_eq!(
                decode_in_pieces(&wire, wire.len()),
                Err(ErrorKind::Decode),
                "{codings}"
            );
        }
    }

    #[test]
    fn an_obsolete_folded_header_line_is_joined_with_a_space() {
        let capture = ["x-long".to_string()];
        let wants = wants(&capture);
        let mut answer = Answer::default();
        let wire = b"HTTP/1.1 200 OK\r\nX-Long: first\r\n \t second\r\nContent-Length: 2\r\n\r\nok";
        let mut decoder = Decoder::default();
        let used = decoder.feed(wire, &wants, &mut answer).expect("accepted");
        assert_eq!(used, wire.len());
        assert_eq!((answer.status, answer.body.as_slice()), (200, &b"ok"[..]));
        assert_eq!(answer.captured, [Some(b"first second".to_vec())]);
    }

    #[test]
    fn control_bytes_in_a_header_value_keep_the_answer_and_the_value() {
        let capture = ["x-odd".to_string()];
        let wants = wants(&capture);
        let wire = b"HTTP/1.1 200 OK\r\nX-Odd: a\x01b\x7fc\r\nContent-Length: 2\r\n\r\nok";
        for piece in [1, 7, wire.len()] {
            let mut answer = Answer::default();
            let mut decoder = Decoder::default();
            let mut used = 0;
            for end in (piece..wire.len() + piece).step_by(piece) {
                used += decoder
                    .feed(&wire[used..end.min(wire.len())], &wants, &mut answer)
                    .expect("accepted");
            }
            assert_eq!(used, wire.len(), "in pieces of {piece}");
            assert_eq!((answer.status, answer.body.as_slice()), (200, &b"ok"[..]));
            assert_eq!(answer.captured, [Some(b"a\x01b\x7fc".to_vec())]);
        }
        // A control byte in a header name is still no HTTP.
        let mut answer = Answer::default();
        let name = b"HTTP/1.1 200 OK\r\nX-O\x01dd: a\r\nContent-Length: 2\r\n\r\nok";
        assert!(Decoder::default().feed(name, &wants, &mut answer).is_err());
    }

    #[test]
    fn a_body_until_close_ends_with_the_stream_and_a_cut_one_fails() {
        let until_close = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        for piece in 1..=until_close.len() {
            assert_eq!(
                decode_in_pieces(until_close, piece),
                Ok((200, b"all of it".to_vec(), false, 0))
            );
        }
        let cut: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Le",
        ];
        for wire in cut {
            assert_eq!(decode_in_pieces(wire, 3), Err(ErrorKind::Closed));
        }
        let garbage = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n";
        assert_eq!(decode_in_pieces(garbage, 4), Err(ErrorKind::Protocol));
    }

    /// What `wire`, fed whole, leaves in the body under a limit of 8 bytes, and how it ends.
    fn under_a_limit_of_8(wire: &[u8], cut_past_max: bool) -> (Vec<u8>, Option<ErrorKind>) {
        let wants = Wants {
            max_body: 8,
            cut_past_max,
            ..wants(&[])
        };
        let mut answer = Answer::default();
        let mut decoder = Decoder::default();
        let mut fed = decoder.feed(wire, &wants, &mut answer).map(|_| ());
        if fed.is_ok() && decoder.done().is_none() {
            fed = decoder.end_of_stream(true);
        }
        (answer.body, fed.err().map(|failure| failure.kind))
    }

    #[test]
    fn a_body_cut_past_the_limit_keeps_its_first_part_whatever_the_framing() {
        let framings: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789abcdefghij",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\n01234\r\n6\r\n56789a\r\n9\r\nbcdefghij\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n0123456789abcdefghij\r\n",
            b"HTTP/1.0 200 OK\r\n\r\n0123456789abcdefghij",
        ];
        for wire in framings {
            let text = String::from_utf8_lossy(wire);
            let cut = under_a_limit_of_8(wire, true);
            assert_eq!(
                cut,
                (b"01234567".to_vec(), Some(ErrorKind::BodyTooLarge)),
                "{text}"
            );
        }
        // Not asked to cut: a Content-Length over the limit is refused before any byte is kept.
        assert_eq!(
            under_a_limit_of_8(framings[0], false),
            (Vec::new(), Some(ErrorKind::BodyTooLarge))
        );
        // A body within the limit is whole either way.
        let small = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n01234567";
        assert_eq!(
            under_a_limit_of_8(small, true),
            (b"01234567".to_vec(), None)
        );
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
        // `close` wins, wherever it stands.
        for connection in ["keep-alive, close", "close\r\nConnection: keep-alive"] {
            for version in ["1.0", "1.1"] {
                let head = format!(
                    "HTTP/{version} 200 OK\r\nConnection: {connection}\r\nContent-Length: 0\r\n\r\n"
                );
                assert!(!alive(head.as_bytes()), "{head:?}");
            }
        }
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
    fn rate_limit_headers_are_read_and_forgotten_by_the_next_answer() {
        let text = b"HTTP/1.1 200 OK\r\nX-RateLimit-Remaining: 7\r\nx-ratelimit-reset: 3\r\n\
                     RateLimit-Policy: \"p\";q=10;w=60\r\nContent-Length: 0\r\n\r\n";
        let mut answer = Answer::default();
        parse_head(text, &wants(&[]), &mut answer)
            .expect("valid")
            .expect("complete");
        let state = answer
            .rate_limit
            .state(Duration::ZERO, None, Duration::MAX)
            .expect("read");
        assert_eq!((state.remaining, state.reset), (7, Duration::from_secs(3)));
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        parse_head(plain, &wants(&[]), &mut answer)
            .expect("valid")
            .expect("complete");
        assert!(answer.rate_limit.is_empty());
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
