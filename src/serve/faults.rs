//! Deterministic faults for `ringscrape serve`: which one an id gets, and how each misbehaves
//! on the wire. Chosen by id (and, for `--fail-first`, by how many times the id was asked for),
//! so that a test can predict every row. "Every K" means the ids K-1, 2K-1, 3K-1, …; when
//! several faults pick the same id, the first in [`Fault`]'s order wins.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::http::{send, write_head, write_response};

/// Size of the body sent by `--huge-every` (above the client's default 16 MiB limit).
pub const HUGE_BODY_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer 503 with `Retry-After: 1` to the first N requests for each id.
    pub fail_first: u32,
    /// Close the connection without answering.
    pub drop_every: Option<u64>,
    /// Accept the request and never answer.
    pub stall_every: Option<u64>,
    /// Answer bytes that are not HTTP, then close.
    pub garbage_every: Option<u64>,
    /// Send the head and part of the body, then reset the connection.
    pub reset_mid_body_every: Option<u64>,
    /// Answer a chunked body whose chunk-size line is not hexadecimal.
    pub bad_chunk_every: Option<u64>,
    /// Answer a body of [`HUGE_BODY_BYTES`].
    pub huge_every: Option<u64>,
    /// Send `103 Early Hints` before the normal answer.
    pub informational_every: Option<u64>,
    /// Answer `302 Found` pointing elsewhere.
    pub redirect_every: Option<u64>,
    /// Per connection: close after every K responses, without `Connection: close`.
    pub close_every: Option<u64>,
}

/// What to do instead of a normal answer, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Drop,
    Stall,
    Garbage,
    ResetMidBody,
    BadChunk,
    Huge,
    Informational,
    Redirect,
    Unavailable,
}

fn hits(every: Option<u64>, n: u64) -> bool {
    every.is_some_and(|k| k > 0 && (n + 1).is_multiple_of(k))
}

impl Faults {
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }

    /// The fault for request number `attempt` (from 1) for `id`, if any.
    pub fn for_id(&self, id: u64, attempt: u32) -> Option<Fault> {
        [
            (self.drop_every, Fault::Drop),
            (self.stall_every, Fault::Stall),
            (self.garbage_every, Fault::Garbage),
            (self.reset_mid_body_every, Fault::ResetMidBody),
            (self.bad_chunk_every, Fault::BadChunk),
            (self.huge_every, Fault::Huge),
            (self.informational_every, Fault::Informational),
            (self.redirect_every, Fault::Redirect),
        ]
        .into_iter()
        .find(|(every, _)| hits(*every, id))
        .map(|(_, fault)| fault)
        .or((attempt <= self.fail_first).then_some(Fault::Unavailable))
    }

    /// Whether a connection closes after its `served`-th response (counting from 1).
    pub fn closes_after(&self, served: u64) -> bool {
        hits(self.close_every, served - 1)
    }
}

/// How many times each id was asked for, across all connections and threads.
#[derive(Debug, Default)]
pub struct AttemptCounter(Mutex<HashMap<u64, u32>>);

impl AttemptCounter {
    /// Counts one more request for `id`; returns its number (from 1).
    pub fn next(&self, id: u64) -> u32 {
        let Ok(mut counts) = self.0.lock() else {
            return u32::MAX;
        };
        let count = counts.entry(id).or_insert(0);
        *count += 1;
        *count
    }
}

/// Misbehaves as `fault` says; returns whether the connection stays open.
pub async fn inject(stream: &mut TcpStream, fault: Fault, out: &mut Vec<u8>) -> bool {
    match fault {
        Fault::Drop => false,
        Fault::Stall => {
            // Hold the connection, answer nothing, until the client gives up.
            let mut buf = Vec::with_capacity(4096);
            loop {
                let (read, back) = stream.read(buf).await;
                buf = back;
                buf.clear();
                if !matches!(read, Ok(n) if n > 0) {
                    return false;
                }
            }
        }
        Fault::Garbage => {
            out.extend_from_slice(b"HELLO THIS IS NOT HTTP\r\n\r\n");
            send(stream, out).await;
            false
        }
        Fault::ResetMidBody => {
            write_head(out, "200 OK", 1000, Duration::ZERO, false, "");
            out.extend_from_slice(&[b'x'; 100]);
            send(stream, out).await;
            reset_on_close(stream);
            false
        }
        Fault::BadChunk => {
            out.extend_from_slice(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nZZ-NOT-HEX\r\nxx\r\n0\r\n\r\n",
            );
            send(stream, out).await;
            false
        }
        Fault::Huge => {
            write_head(out, "200 OK", HUGE_BODY_BYTES, Duration::ZERO, false, "");
            let mut left = HUGE_BODY_BYTES;
            let mut ok = send(stream, out).await;
            let mut chunk = vec![b'x'; 64 << 10];
            while ok && left > 0 {
                chunk.truncate(left.min(chunk.len() as u64) as usize);
                left -= chunk.len() as u64;
                let (written, back) = stream.write_all(chunk).await;
                chunk = back;
                ok = written.is_ok();
            }
            ok
        }
        Fault::Redirect => {
            let body = b"{\"moved\":true}";
            write_response(
                out,
                "302 Found",
                body,
                Duration::ZERO,
                false,
                "location: /moved\r\n",
            );
            send(stream, out).await
        }
        Fault::Informational => unreachable!("answered in serve_connection"),
        Fault::Unavailable => {
            let body = b"{\"error\":\"try again\"}";
            write_response(
                out,
                "503 Service Unavailable",
                body,
                Duration::ZERO,
                false,
                "retry-after: 1\r\n",
            );
            send(stream, out).await
        }
    }
}

/// Makes the coming close send a TCP reset instead of a FIN (SO_LINGER with a zero timeout).
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Linger, &linger);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_k_picks_ids_k_minus_one_apart_and_precedence_holds() {
        let faults = Faults {
            drop_every: Some(5),
            huge_every: Some(2),
            fail_first: 1,
            ..Faults::default()
        };
        assert_eq!(faults.for_id(4, 1), Some(Fault::Drop), "4 = 5k-1: dropped");
        assert_eq!(
            faults.for_id(9, 1),
            Some(Fault::Drop),
            "9 is both 5k-1 and 2k-1: drop first"
        );
        assert_eq!(faults.for_id(1, 1), Some(Fault::Huge));
        assert_eq!(faults.for_id(0, 1), Some(Fault::Unavailable));
        assert_eq!(faults.for_id(0, 2), None, "only the first attempt fails");
    }

    #[test]
    fn close_every_counts_responses_per_connection() {
        let faults = Faults {
            close_every: Some(3),
            ..Faults::default()
        };
        let closes: Vec<u64> = (1..=9).filter(|&n| faults.closes_after(n)).collect();
        assert_eq!(closes, vec![3, 6, 9]);
        assert!(!Faults::default().closes_after(1));
    }

    #[test]
    fn attempts_are_counted_per_id() {
        let counter = AttemptCounter::default();
        assert_eq!(
            (counter.next(7), counter.next(7), counter.next(8)),
            (1, 2, 1)
        );
    }
}
