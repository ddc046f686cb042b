//! One thread per worker pipe: decodes frames, forwards records in batches over the bounded
//! channel to the writer, and keeps the worker's latest stats snapshot.

use std::io::Read;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use crate::model::{Batch, Record};
use crate::stats::WorkerStats;
use crate::wire::{Frame, FrameReader};

/// Records per channel message: amortises channel cost without delaying rows much.
const BATCH_RECORDS: usize = 1024;
/// …or this many bytes of captured values (bodies), so kept bodies don't multiply memory.
const BATCH_BYTES: usize = 1 << 20;

/// The latest stats each worker sent (cumulative), indexed by shard.
pub type StatsBoard = Arc<Mutex<Vec<WorkerStats>>>;

/// How a pipe ended.
#[derive(Debug, Default)]
pub struct PipeEnd {
    pub records: u64,
    pub error: Option<String>,
}

/// Reads `pipe` to its end. Stops early if the writer is gone (the run is failing anyway).
pub fn read_worker_pipe(
    shard: usize,
    pipe: impl Read,
    max_frame: usize,
    tx: Sender<Batch>,
    board: StatsBoard,
) -> PipeEnd {
    let mut reader = FrameReader::with_max_frame(pipe, max_frame);
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    let mut batch_bytes = 0;
    let mut end = PipeEnd::default();
    let send = |batch: &mut Vec<Record>| {
        let records = std::mem::replace(batch, Vec::with_capacity(BATCH_RECORDS));
        tx.send(Batch { shard, records }).is_ok()
    };
    loop {
        match reader.next_frame() {
            Ok(Some(Frame::Record(record))) => {
                batch_bytes += record.captured_bytes();
                batch.push(record);
                end.records += 1;
            }
            Ok(Some(Frame::Stats(stats))) => {
                if let Ok(mut board) = board.lock() {
                    board[shard] = *stats;
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
        if full || (reader.drained() && !batch.is_empty()) {
            batch_bytes = 0;
            if !send(&mut batch) {
                return end;
            }
        }
    }
    if !batch.is_empty() {
        send(&mut batch);
    }
    end
}
