//! Records on their way from the pipe readers (one thread per worker) to the writer: a
//! [`Batch`] per channel message, and the bound on the captured bytes (bodies) all batches in
//! flight hold together, a byte semaphore the writer releases as it drops each batch.

use std::sync::{Arc, Condvar, Mutex};

use crate::model::Record;

/// Records from one shard, on their way from its pipe reader to the writer.
pub struct Batch {
    pub shard: usize,
    pub records: Vec<Record>,
    /// The batch's captured bytes, counted against the supervisor's bound until the writer
    /// drops the batch.
    pub held: BatchBytes,
}

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
pub struct BatchBytes {
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
    pub fn hold(self: &Arc<Self>, bytes: usize) -> BatchBytes {
        let mut in_flight = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        while *in_flight > 0 && *in_flight + bytes > self.limit {
            in_flight = self
                .freed
                .wait(in_flight)
                .unwrap_or_else(|e| e.into_inner());
        }
        *in_flight += bytes;
        BatchBytes {
            gate: self.clone(),
            bytes,
        }
    }
}

impl Drop for BatchBytes {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut in_flight = self.gate.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *in_flight -= self.bytes;
        self.gate.freed.notify_all();
    }
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
