//! Batches a worker's frames and writes them to its stdout pipe: one `write` per 64 KiB or per
//! few milliseconds instead of one per record. A full pipe blocks the worker's thread — that is
//! the backpressure from a slow CSV writer, and it bounds memory.

use std::io::{self, Write};
use std::time::Duration;

use crate::model::Record;
use crate::stats::WorkerStats;
use crate::wire;

/// Write once this much is buffered.
const FLUSH_AT_BYTES: usize = 64 << 10;
/// …or at least this often, so rows reach the CSV soon after they are fetched.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);

pub struct FrameSink<W> {
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> FrameSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            buf: Vec::with_capacity(FLUSH_AT_BYTES + 1024),
            out,
        }
    }

    pub fn push_record(&mut self, record: &Record) -> io::Result<()> {
        wire::encode_record(record, &mut self.buf);
        if self.buf.len() >= FLUSH_AT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    pub fn push_stats(&mut self, stats: &WorkerStats) {
        wire::encode_stats(stats, &mut self.buf);
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
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
