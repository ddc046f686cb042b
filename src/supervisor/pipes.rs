//! Reading a worker's pipe: decodes frames, forwards records in batches over the bounded
//! channel to the writer (their bytes held against `output::batch`'s bound), and keeps the
//! worker's latest stats snapshot; notes which items' rows went by ([`Forwarded`]: the
//! keeper's record of what a replacement worker need not fetch again).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use super::credentials::Credentials;
use crate::ids::{IdRange, IdSet};
use crate::model::{Continuation, Record};
use crate::output::batch::{Batch, BatchSender, BytesInFlight};
use crate::stats::WorkerStats;
use crate::wire::{Frame, FrameReader};

/// Records per channel message: amortises channel cost without delaying rows much.
const BATCH_RECORDS: usize = 1024;
/// …or this many bytes of captured values (bodies), so kept bodies don't multiply memory.
const BATCH_BYTES: usize = 1 << 20;

/// The latest stats each worker sent (cumulative), indexed by shard.
pub type StatsBoard = Arc<Mutex<Vec<WorkerStats>>>;

/// The items of a shard whose rows went by: those whose last row came (done), and, with
/// `--next`, chains whose pages so far came (open: where each goes on). A worker that replaces
/// a crashed one skips the first and goes on with the second from their next page, so no page
/// that has a row is fetched or written again.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub done: IdSet,
    pub open: HashMap<u64, Continuation>,
}

impl Forwarded {
    pub fn new(range: IdRange) -> Forwarded {
        Forwarded {
            done: IdSet::new(range),
            open: HashMap::new(),
        }
    }

    /// `record` went to the writer.
    pub fn note(&mut self, record: &Record) {
        if !self.done.range().contains(record.index) {
            return;
        }
        match (&record.captured.next, record.more) {
            // Its chain goes on: from the next page, at what this one gave.
            (Some(next), true) => {
                let going_on = Continuation {
                    index: record.index,
                    page: record.page + 1,
                    next: String::from_utf8_lossy(next).into_owned(),
                };
                self.open.insert(record.index, going_on);
            }
            _ => {
                // Looked up only when some chain is open: hashing every row's index (SipHash)
                // for an empty map was a twentieth of the supervisor's work per row.
                if !self.open.is_empty() {
                    self.open.remove(&record.index);
                }
                self.done.insert(record.index);
            }
        }
    }

    /// `earlier` (a resume's chains that go on) updated by what went by since.
    pub fn continuations(&self, earlier: &[Continuation]) -> Vec<Continuation> {
        let mut chains: HashMap<u64, Continuation> =
            earlier.iter().map(|c| (c.index, c.clone())).collect();
        chains.extend(self.open.iter().map(|(index, c)| (*index, c.clone())));
        let mut chains: Vec<Continuation> = chains
            .into_values()
            .filter(|c| !self.done.contains(c.index))
            .collect();
        chains.sort_by_key(|c| c.index);
        chains
    }
}

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
    pub tx: &'a BatchSender,
    pub board: &'a StatsBoard,
    pub in_flight: &'a Arc<BytesInFlight>,
    /// What earlier workers of the shard counted: each snapshot of this one is added to it.
    pub carried: &'a WorkerStats,
    /// What the records forwarded leave to do, noted as they go.
    pub forwarded: &'a mut Forwarded,
    /// `--auth-command`: told of credentials answered 401.
    pub credentials: Option<&'a Credentials>,
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
        credentials,
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
                forwarded.note(&record);
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
            Ok(Some(Frame::Stale(generation))) => {
                if let Some(credentials) = credentials {
                    credentials.stale(generation);
                }
            }
            // Only records, stats and stale credentials travel this way; anything else is
            // skipped.
            Ok(Some(Frame::Unknown(tag))) => {
                crate::detail!("ringscrape: shard {shard}: skipped a frame with unknown tag {tag}");
            }
            Ok(Some(Frame::Spec(_) | Frame::Skip(_) | Frame::Credentials { .. })) => {}
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
    use crate::model::Captured;

    fn page(index: u64, page: u32, next: Option<&str>) -> Record {
        Record {
            index,
            page,
            more: next.is_some(),
            captured: Captured {
                next: next.map(|n| n.as_bytes().to_vec()),
                ..Captured::default()
            },
            ..Record::default()
        }
    }

    #[test]
    fn an_item_is_done_at_its_last_page_and_an_open_chain_goes_on_after_its_last_row() {
        let mut forwarded = Forwarded::new(IdRange::new(0, 10));
        forwarded.note(&page(1, 0, Some("u1")));
        forwarded.note(&page(1, 1, Some("u2")));
        forwarded.note(&page(2, 0, None));
        forwarded.note(&page(3, 0, Some("v1")));
        forwarded.note(&page(3, 1, None));
        forwarded.note(&page(42, 0, None));
        assert!(!forwarded.done.contains(1), "its chain goes on");
        assert!(forwarded.done.contains(2) && forwarded.done.contains(3));
        let earlier = [
            Continuation {
                index: 1,
                page: 1,
                next: "u1".into(),
            },
            Continuation {
                index: 5,
                page: 4,
                next: "w4".into(),
            },
            Continuation {
                index: 3,
                page: 1,
                next: "v1".into(),
            },
        ];
        let go_on: Vec<(u64, u32, String)> = forwarded
            .continuations(&earlier)
            .into_iter()
            .map(|c| (c.index, c.page, c.next))
            .collect();
        assert_eq!(
            go_on,
            [(1, 2, "u2".into()), (5, 4, "w4".into())],
            "from the page after the last row; a resume's own chains kept; done ones gone"
        );
    }
}
