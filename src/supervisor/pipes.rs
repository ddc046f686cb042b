//! One thread per worker pipe: decodes frames, forwards records in batches over the bounded
//! channel to the writer, and keeps the worker's latest stats snapshot.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::Sender;

use crate::ids::IdSet;
use crate::model::{Batch, Record};
use crate::stats::WorkerStats;
use crate::wire::{Frame, FrameReader};

/// Records per channel message: amortises channel cost without delaying rows much.
const BATCH_RECORDS: usize = 1024;
/// …or this many bytes of captured values (bodies), so kept bodies don't multiply memory.
const BATCH_BYTES: usize = 1 << 20;

/// Captured bytes (bodies) in batches between the pipe readers and the writer, all shards
/// together. The channel bounds batches, not bytes: 64 batches of one 15 MB row each is 1 GB.
pub const BYTES_IN_FLIGHT: usize = 32 << 20;

/// The bound on captured bytes on their way to the writer: a pipe reader waits before sending a
/// batch that would pass it (its worker's pipe then fills, and the worker's `--body-memory`
/// holds back its slots). A batch always goes when nothing else is on its way.
#[derive(Debug)]
pub struct BytesInFlight {
    bytes: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

/// Bytes of one batch, given back when it is dropped (written).
#[derive(Debug)]
pub struct HeldBytes {
    gate: Arc<BytesInFlight>,
    bytes: usize,
}

impl BytesInFlight {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            bytes: Mutex::new(0),
            freed: Condvar::new(),
            limit,
        })
    }

    /// Waits until `bytes` more fit (or nothing is on its way), then holds them.
    pub fn hold(self: &Arc<Self>, bytes: usize) -> HeldBytes {
        let mut in_flight = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        while *in_flight > 0 && *in_flight + bytes > self.limit {
            in_flight = self
                .freed
                .wait(in_flight)
                .unwrap_or_else(|e| e.into_inner());
        }
        *in_flight += bytes;
        HeldBytes {
            gate: self.clone(),
            bytes,
        }
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut in_flight = self.gate.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *in_flight -= self.bytes;
        self.gate.freed.notify_all();
    }
}

/// The latest stats each worker sent (cumulative), indexed by shard.
pub type StatsBoard = Arc<Mutex<Vec<WorkerStats>>>;

/// How a pipe ended.
#[derive(Debug, Default)]
pub struct PipeEnd {
    pub records: u64,
    pub error: Option<String>,
    /// The writer stopped taking rows (the run is failing anyway).
    pub writer_gone: bool,
}

/// Where a pipe's records and stats go.
pub struct PipeSinks<'a> {
    pub shard: usize,
    pub tx: &'a Sender<Batch>,
    pub board: &'a StatsBoard,
    pub in_flight: &'a Arc<BytesInFlight>,
    /// What earlier workers of the shard counted: each snapshot of this one is added to it.
    pub carried: &'a WorkerStats,
    /// The indexes of the records forwarded, added to as they go.
    pub forwarded: &'a mut IdSet,
}

/// Reads `pipe` to its end. Stops early if the writer is gone (the run is failing anyway).
pub fn read_worker_pipe(pipe: impl Read, max_frame: usize, sinks: PipeSinks<'_>) -> PipeEnd {
    let PipeSinks {
        shard,
        tx,
        board,
        in_flight,
        carried,
        forwarded,
    } = sinks;
    let mut reader = FrameReader::with_max_frame(pipe, max_frame);
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    let mut batch_bytes = 0;
    let mut end = PipeEnd::default();
    let send = |batch: &mut Vec<Record>, bytes: usize| {
        let records = std::mem::replace(batch, Vec::with_capacity(BATCH_RECORDS));
        let held = in_flight.hold(bytes);
        tx.send(Batch {
            shard,
            records,
            held,
        })
        .is_ok()
    };
    loop {
        match reader.next_frame() {
            Ok(Some(Frame::Record(record))) => {
                if forwarded.range().contains(record.index) {
                    forwarded.insert(record.index);
                }
                batch_bytes += record.captured_bytes();
                batch.push(record);
                end.records += 1;
            }
            Ok(Some(Frame::Stats(stats))) => {
                if let Ok(mut board) = board.lock() {
                    let mut sum = carried.clone();
                    sum.merge(&stats);
                    sum.in_flight = stats.in_flight;
                    sum.concurrency_limit = stats.concurrency_limit;
                    board[shard] = sum;
                }
            }
            // Only records and stats travel this way; anything else is skipped.
            Ok(Some(Frame::Unknown(tag))) => {
                crate::detail!("ringscrape: shard {shard}: skipped a frame with unknown tag {tag}");
            }
            Ok(Some(Frame::Spec(_) | Frame::Skip(_))) => {}
            Ok(None) => break,
            Err(e) => {
                end.error = Some(e.to_string());
                break;
            }
        }
        // Send when full, or when the worker has nothing more buffered: a slow server's rows
        // should not sit in a half-full batch.
        let full = batch.len() >= BATCH_RECORDS || batch_bytes >= BATCH_BYTES;
        let due = full || (reader.drained() && !batch.is_empty());
        if due && !send(&mut batch, std::mem::take(&mut batch_bytes)) {
            end.writer_gone = true;
            return end;
        }
    }
    if !batch.is_empty() && !send(&mut batch, batch_bytes) {
        end.writer_gone = true;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_batch_past_the_bound_waits_until_the_writer_drops_one() {
        let gate = BytesInFlight::new(100);
        // Alone, a batch larger than the bound goes.
        let big = gate.hold(150);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let held = gate.hold(10);
                tx.send(()).expect("send");
                held
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "went past the bound"
        );
        drop(big);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("went on once the big batch was written");
        drop(waiting.join().expect("join"));
        assert_eq!(*gate.bytes.lock().expect("lock"), 0);
    }
}
