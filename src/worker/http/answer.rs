//! The answer to one request, as HTTP/1.1 and HTTP/2 both fill it: what the caller wants kept
//! ([`Wants`]), the status, headers and body as they arrive ([`Answer`]), and the body's bytes
//! counted, kept, decoded or written to their file under the body limit and the memory budget.

use std::io;
use std::time::Duration;

use super::decode::{BodyDecoder, Coding, Codings, DecodeError};
use super::spool::Spool;
use crate::model::ErrorKind;
use crate::worker::failure::Failure;
use crate::worker::schedule::memory::{BodyBudget, Hold};
use crate::worker::schedule::quota::Reading;

/// What the caller wants kept from an answer besides its status.
pub struct Wants<'a> {
    /// Header names to capture, lower case; values land in [`Answer::captured`] in this order.
    pub capture: &'a [String],
    /// Keep the body bytes in memory (in [`Answer::body`]) rather than only count them (or
    /// only write them to [`Answer::spool`]).
    pub keep_body: bool,
    /// The worker's budget for bodies in memory, when bodies are kept or spooled.
    pub memory: Option<&'a BodyBudget>,
    /// The request was a HEAD: the answer has no body whatever its headers say.
    pub head_request: bool,
    pub max_body: usize,
    /// A body longer than `max_body` keeps its first `max_body` bytes before the answer fails
    /// with `body_too_large` (robots.txt: RFC 9309 §2.5 has its first 500 KiB parsed), whatever
    /// its framing: a `Content-Length` over the limit is read up to it, not refused at the head.
    pub cut_past_max: bool,
    /// Undo the `Content-Encoding` of the answer (not `--raw-body`).
    pub decode: bool,
}

/// The answer to one request.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    /// Body bytes after decoding (what the `bytes` column says).
    pub body_len: u64,
    /// Body bytes as they came off the connection (framing not counted).
    pub wire_len: u64,
    /// The answer had a `Content-Encoding` this client cannot undo: the body is as received.
    pub coding_unknown: bool,
    /// Undoes the answer's content codings while its body arrives.
    pub decoding: Option<BodyDecoder>,
    pub retry_after: Option<Duration>,
    /// What the rate-limit headers said (`RateLimit*`, `X-RateLimit-*`); empty without them.
    pub rate_limit: Reading,
    pub location: Option<Vec<u8>>,
    /// One entry per [`Wants::capture`] name: the value (repeated headers joined by ", ").
    pub captured: Vec<Option<Vec<u8>>>,
    /// The body, when [`Wants::keep_body`]; reused, so take it before the next exchange.
    pub body: Vec<u8>,
    /// `--bodies-dir`: the file the body is written to as it arrives.
    pub spool: Option<Spool>,
    /// What the body buffers hold of the worker's [`BodyBudget`].
    pub hold: Hold,
    /// A 400 whose body says plain HTTP reached an HTTPS port (for the diagnosis).
    pub says_https_port: bool,
}

/// Counts (and, if wanted, keeps) body bytes as they came, or decodes them; enforces the body
/// limit on both the bytes received and the decoded ones.
pub fn keep_body_bytes(
    bytes: &[u8],
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<(), Failure> {
    answer.wire_len += bytes.len() as u64;
    // Only 400s are looked at: the rest of the answers pay one comparison.
    if answer.status == 400 && !answer.says_https_port {
        answer.says_https_port = crate::diagnosis::says_https_port(bytes);
    }
    let over = answer.wire_len.saturating_sub(wants.max_body as u64);
    if over > 0 {
        if wants.cut_past_max {
            // Only the bytes up to the limit are kept (the ones before were all under it).
            answer.wire_len -= bytes.len() as u64;
            let room = usize::try_from(over).map_or(0, |over| bytes.len().saturating_sub(over));
            keep_body_bytes(&bytes[..room], wants, answer)?;
        }
        return Err(too_large(wants));
    }
    let body = match &mut answer.decoding {
        Some(decoding) => {
            decoding.feed(bytes).map_err(decode_failure)?;
            decoding.body_mut()
        }
        None => {
            answer.body_len += bytes.len() as u64;
            match &mut answer.spool {
                // Only to its file: straight there, not through the slot's buffer.
                Some(spool) if !wants.keep_body => {
                    return spool.write(bytes).map_err(spool_failure);
                }
                _ if wants.keep_body => answer.body.extend_from_slice(bytes),
                _ => {}
            }
            &mut answer.body
        }
    };
    match &mut answer.spool {
        Some(spool) => spool
            .write_out(body, !wants.keep_body)
            .map_err(spool_failure),
        None => Ok(()),
    }
}

fn spool_failure(error: io::Error) -> Failure {
    Failure {
        kind: ErrorKind::Io,
        answered: true,
        detail: format!("writing the body file: {error}"),
    }
}

impl Answer {
    /// Bytes the body buffers and the decoders' windows take (what the memory budget counts).
    pub(super) fn held_bytes(&mut self) -> usize {
        self.body.capacity()
            + self.decoding.as_mut().map_or(0, |decoding| {
                decoding.body_mut().capacity() + decoding.window()
            })
    }

    /// Before the first body bytes reach the decoders: sizes their windows from `first` and
    /// says whether the slot must first wait for room in the memory budget.
    pub(super) fn awaits_room(&mut self, first: &[u8], wants: &Wants<'_>) -> bool {
        match &mut self.decoding {
            Some(decoding) if wants.memory.is_some() && decoding.awaits_room() => {
                if !first.is_empty() {
                    decoding.size_window(first);
                }
                !first.is_empty()
            }
            _ => false,
        }
    }

    /// Bytes the body buffers may take once `read` more bytes arrive: a kept body's `Vec` that
    /// must grow doubles, so 8 MiB of body and one more read hold 16 MiB; a body not kept
    /// (counted, or written to its file) takes none.
    pub(super) fn held_after_read(&mut self, read: usize, keep: bool) -> usize {
        let body = match &mut self.decoding {
            Some(decoding) => decoding.body_mut(),
            None => &mut self.body,
        };
        let (len, capacity) = (body.len(), body.capacity());
        let grown = if keep && len + read > capacity {
            (2 * capacity).max(len + read)
        } else {
            capacity
        };
        self.held_bytes() - capacity + grown
    }

    /// Clears what the last answer left (the body buffer is kept for reuse).
    pub(super) fn start(&mut self) {
        self.body.clear();
        self.body_len = 0;
        self.wire_len = 0;
        self.coding_unknown = false;
        self.decoding = None;
        self.says_https_port = false;
    }

    /// Sets up decoding for a body in `content` codings (what `Content-Encoding` said: undone
    /// if wanted) under `transfer` codings (hop by hop: always undone, first).
    pub(super) fn expect_codings(
        &mut self,
        content: Codings,
        transfer: Vec<Coding>,
        wants: &Wants<'_>,
    ) {
        let mut chain = match content {
            Codings::Known(codings) if wants.decode => codings,
            Codings::Unknown => {
                self.coding_unknown = true;
                Vec::new()
            }
            _ => Vec::new(),
        };
        chain.extend(transfer);
        if chain.is_empty() {
            return;
        }
        let max = wants.max_body as u64;
        self.decoding = Some(match &mut self.spool {
            Some(spool) if !wants.keep_body => BodyDecoder::into_file(&chain, spool.writer(), max),
            // Kept in memory (and, with a spool, written out from there as it grows).
            _ => BodyDecoder::new(&chain, wants.keep_body, max, std::mem::take(&mut self.body)),
        });
    }

    /// The body has ended: a decoded one must end where its coding says (and what its
    /// decoders still held goes to the spool).
    pub(super) fn finish_body(&mut self, wants: &Wants<'_>) -> Result<(), Failure> {
        let Some(mut decoding) = self.decoding.take() else {
            return Ok(());
        };
        decoding.finish().map_err(decode_failure)?;
        if let Some(spool) = &mut self.spool {
            spool
                .write_out(decoding.body_mut(), !wants.keep_body)
                .map_err(spool_failure)?;
        }
        self.body_len = decoding.len();
        let body = decoding.take_body();
        // A decoder writing to a file kept nothing; the slot's own buffer stays for reuse.
        if body.capacity() > 0 || self.body.capacity() == 0 {
            self.body = body;
        }
        Ok(())
    }
}

fn decode_failure(error: DecodeError) -> Failure {
    let kind = match error {
        DecodeError::TooLarge(_) => ErrorKind::BodyTooLarge,
        DecodeError::Corrupt { .. } => ErrorKind::Decode,
        DecodeError::Spill(_) => ErrorKind::Io,
    };
    Failure {
        kind,
        answered: true,
        detail: error.to_string(),
    }
}

pub(super) fn too_large(wants: &Wants<'_>) -> Failure {
    Failure {
        kind: ErrorKind::BodyTooLarge,
        answered: true,
        detail: format!("body larger than {} bytes", wants.max_body),
    }
}
