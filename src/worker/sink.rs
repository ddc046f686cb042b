//! Batches a worker's frames and writes them to its stdout pipe: one `write` per 64 KiB or per
//! few milliseconds instead of one per record. The pipe is non-blocking: a full one (a slow disk,
//! a stopped supervisor) leaves the frames buffered here, and the worker stops handing out new
//! ids while the backlog is over [`PAUSE_AT_BYTES`] — that is the backpressure, and it bounds
//! memory — but requests already in flight are answered and recorded, never frozen into
//! timeouts by a blocked event loop.

use std::io::{self, Write};
use std::time::Duration;

use crate::model::Record;
use crate::stats::WorkerStats;
use crate::wire;

/// Write once this much is buffered.
const FLUSH_AT_BYTES: usize = 64 << 10;
/// …or at least this often, so rows reach the CSV soon after they are fetched.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// No new id is handed out while this much waits for the pipe.
pub const PAUSE_AT_BYTES: usize = 256 << 10;
/// How often a backlog is offered to the pipe again: a full pipe gives no wake-up of its own.
pub const DRAIN_EVERY: Duration = Duration::from_millis(1);
/// The pipe's capacity asked for (Linux's default `fs.pipe-max-size`, which any process may
/// ask for). At the default 64 KiB, a backlog drained once per [`FLUSH_EVERY`] went at no more
/// than 12.8 MB/s: 400 bodies of 15 MB took 500 s.
const PIPE_BYTES: i32 = 1 << 20;

/// Widens the pipe behind `fd` to [`PIPE_BYTES`]; where the system allows less, the default
/// stays (large rows then drain more slowly, nothing else changes).
pub fn widen_pipe(fd: &impl std::os::fd::AsFd) {
    use nix::fcntl::{FcntlArg, fcntl};
    let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
}

pub struct FrameSink<W> {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    sent: usize,
    out: W,
}

impl<W: Write> FrameSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            buf: Vec::with_capacity(FLUSH_AT_BYTES + 1024),
            sent: 0,
            out,
        }
    }

    pub fn push_record(&mut self, record: &Record) -> io::Result<()> {
        wire::encode_record(record, &mut self.buf);
        if self.backlog() >= FLUSH_AT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Bytes waiting for the pipe.
    pub fn backlog(&self) -> usize {
        self.buf.len() - self.sent
    }

    pub fn push_stats(&mut self, stats: &WorkerStats) {
        wire::encode_stats(stats, &mut self.buf);
    }

    /// Writes what the pipe takes now; the rest waits (a non-blocking pipe that is full).
    pub fn flush(&mut self) -> io::Result<()> {
        while self.sent < self.buf.len() {
            match self.out.write(&self.buf[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.sent = 0;
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
            status: Some(200),
            bytes: 1,
            latency_us: 1,
            attempts: 1,
            error: None,
            captured: Default::default(),
        };
        sink.push_record(&record(0)).expect("vec write");
        assert!(sink.out.is_empty(), "one record stays buffered");
        let mut index = 1;
        while sink.out.is_empty() {
            sink.push_record(&record(index)).expect("vec write");
            index += 1;
        }
        assert!(sink.out.len() >= FLUSH_AT_BYTES);
        sink.flush().expect("vec write");
        let mut reader = FrameReader::new(sink.out.as_slice());
        let mut seen = 0;
        while let Some(frame) = reader.next_frame().expect("whole frames") {
            assert!(matches!(frame, Frame::Record(r) if r.index == seen));
            seen += 1;
        }
        assert_eq!(seen, index);
    }
}
