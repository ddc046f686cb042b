//! Batches a worker's frames and writes them to its stdout pipe: one `write` per 64 KiB or per
//! [`SEND_EVERY`] instead of one per record. The pipe is non-blocking: a full one (a slow disk,
//! a stopped supervisor) leaves the frames buffered here, and the worker stops handing out new
//! ids while the backlog is over [`PAUSE_AT_BYTES`] — that is the backpressure, and it bounds
//! memory — but requests already in flight are answered and recorded, never frozen into
//! timeouts by a blocked event loop.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::Duration;

use crate::model::Record;
use crate::stats::WorkerStats;
use crate::wire;

/// Write once this much is buffered.
const FLUSH_AT_BYTES: usize = 64 << 10;
/// …or at least this often, so rows reach the supervisor soon after they are fetched (the
/// writer flushes its output on a pace of its own, `output::writer::FLUSH_EVERY`, once a
/// second). Each send wakes the worker's timer, the supervisor's pipe reader and its writer:
/// every 5 ms, on HTTP/2 over a 50 ms path (4,700 requests a second, ~23 rows a send) that was
/// 8% of the client's CPU per request (bench/realpath.py, 35.9 -> 32.9 µs at 25 ms).
pub const SEND_EVERY: Duration = Duration::from_millis(25);
/// No new id is handed out while this much waits for the pipe.
pub const PAUSE_AT_BYTES: usize = 256 << 10;
/// Room for a frame's fixed fields and value lengths beside its captured bytes.
const FRAME_SLACK: usize = 1024;
/// How often a backlog is offered to the pipe again: a full pipe gives no wake-up of its own.
pub const DRAIN_EVERY: Duration = Duration::from_millis(1);
/// The pipe's capacity asked for (Linux's default `fs.pipe-max-size`, which any process may
/// ask for). At the default 64 KiB, a backlog drained once per [`SEND_EVERY`] went at no more
/// than 12.8 MB/s: 400 bodies of 15 MB took 500 s.
const PIPE_BYTES: i32 = 1 << 20;

/// Widens the pipe behind `fd` to [`PIPE_BYTES`]; where the system allows less, the default
/// stays (large rows then drain more slowly, nothing else changes).
pub fn widen_pipe(fd: &impl std::os::fd::AsFd) {
    use nix::fcntl::{FcntlArg, fcntl};
    let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
}

/// Frames waiting for the pipe, in chunks: small records share a chunk of up to
/// [`FLUSH_AT_BYTES`]; a large one gets its own, freed as soon as it is written. (One growing
/// buffer, written from the front, kept its high-water mark: 960 MB for 15 MB rows whose
/// backlog never passed 260 MB.)
pub struct FrameSink<W> {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already written.
    sent: usize,
    /// Bytes not yet written, over all chunks.
    backlog: usize,
    out: W,
}

impl<W: Write> FrameSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            chunks: VecDeque::new(),
            sent: 0,
            backlog: 0,
            out,
        }
    }

    pub fn push_record(&mut self, record: &Record) -> io::Result<()> {
        let chunk = self.chunk_for(record.captured_bytes());
        let before = chunk.len();
        wire::encode_record(record, chunk);
        self.backlog += chunk.len() - before;
        if self.backlog >= FLUSH_AT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Bytes waiting for the pipe.
    pub fn backlog(&self) -> usize {
        self.backlog
    }

    pub fn push_stats(&mut self, stats: &WorkerStats) {
        let chunk = self.chunk_for(0);
        let before = chunk.len();
        wire::encode_stats(stats, chunk);
        self.backlog += chunk.len() - before;
    }

    /// Tells the supervisor that credentials of `generation` were answered `401`.
    pub fn push_stale(&mut self, generation: u64) {
        let chunk = self.chunk_for(0);
        let before = chunk.len();
        wire::encode_stale(generation, chunk);
        self.backlog += chunk.len() - before;
    }

    /// The chunk to append a frame of about `payload` bytes to: the last one while it has room
    /// (and is not being written), else a new one sized for the frame.
    fn chunk_for(&mut self, payload: usize) -> &mut Vec<u8> {
        let last_has_room = self
            .chunks
            .back()
            .is_some_and(|c| c.len() + payload < FLUSH_AT_BYTES);
        if !last_has_room {
            let size = (payload + FRAME_SLACK).max(FLUSH_AT_BYTES + FRAME_SLACK);
            self.chunks.push_back(Vec::with_capacity(size));
        }
        self.chunks.back_mut().expect("a chunk was just ensured")
    }

    /// Writes what the pipe takes now; the rest waits (a non-blocking pipe that is full).
    pub fn flush(&mut self) -> io::Result<()> {
        while let Some(front) = self.chunks.front() {
            if self.sent == front.len() {
                self.chunks.pop_front();
                self.sent = 0;
                continue;
            }
            match self.out.write(&front[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    self.backlog -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Frame, FrameReader};

    #[test]
    fn batches_until_the_threshold_then_writes_whole_frames() {
        let mut sink = FrameSink::new(Vec::new());
        let record = |index| Record {
            index,
            page: 0,
            more: false,
            status: Some(200),
            bytes: 1,
            latency_us: 1,
            attempts: 1,
            error: None,
            captured: Default::default(),
        };
        sink.push_record(&record(0)).expect("vec write");
        assert!(sink.out.is_empty(), "one record stays buffered");
        assert!(sink.backlog() > 0);
        let mut index = 1;
        while sink.out.is_empty() {
            sink.push_record(&record(index)).expect("vec write");
            index += 1;
        }
        assert!(sink.out.len() >= FLUSH_AT_BYTES);
        sink.flush().expect("vec write");
        assert_eq!(sink.backlog(), 0);
        let mut reader = FrameReader::new(sink.out.as_slice());
        let mut seen = 0;
        while let Some(frame) = reader.next_frame().expect("whole frames") {
            assert!(matches!(frame, Frame::Record(r) if r.index == seen));
            seen += 1;
        }
        assert_eq!(seen, index);
    }

    /// Takes 100 KB per write, then reports a full pipe, in turn.
    struct SlowPipe {
        taken: Vec<u8>,
        full: bool,
    }

    impl Write for SlowPipe {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.full = !self.full;
            if !self.full {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = bytes.len().min(100_000);
            self.taken.extend_from_slice(&bytes[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn large_rows_are_let_go_as_the_pipe_takes_them() {
        let mut sink = FrameSink::new(SlowPipe {
            taken: Vec::new(),
            full: false,
        });
        let record = |index| Record {
            index,
            page: 0,
            more: false,
            status: Some(200),
            captured: crate::model::Captured {
                body: Some(vec![b'x'; 1_000_000]),
                ..Default::default()
            },
            ..Default::default()
        };
        let held = |sink: &FrameSink<SlowPipe>| -> usize {
            sink.chunks.iter().map(Vec::capacity).sum::<usize>()
        };
        for index in 0..20 {
            sink.push_record(&record(index)).expect("push");
        }
        // Memory follows what waits (and the written part of the chunk being written), not
        // what was ever written.
        while sink.backlog() > 0 {
            let slack = sink.sent + sink.chunks.len() * FRAME_SLACK;
            assert!(held(&sink) <= sink.backlog() + slack, "{}", held(&sink));
            sink.flush().expect("flush");
        }
        assert_eq!(held(&sink), 0);
        let mut reader = FrameReader::new(sink.out.taken.as_slice());
        let mut seen = 0;
        while let Some(frame) = reader.next_frame().expect("whole frames") {
            assert!(matches!(frame, Frame::Record(r) if r.index == seen));
            seen += 1;
        }
        assert_eq!(seen, 20);
    }
}
