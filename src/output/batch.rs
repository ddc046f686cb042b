//! Records on their way from the pipe readers (one thread per worker) to the writer: a
//! [`Batch`] per channel message, the channel itself ([`channel`]), and the bound on the
//! captured bytes (bodies) all batches in flight hold together, a byte semaphore the writer
//! releases as it drops each batch.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendError, Sender, TryRecvError};

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

/// The channel from the pipe readers to the writer, bounded to `batches`: crossbeam's, with a
/// wait of its own on the writer's side. crossbeam's `recv` spins and then calls `sched_yield`
/// several times before it sleeps, on every batch: a supervisor waiting on a slow target
/// (thousands of small batches) burned CPU doing nothing. Here the writer sleeps on a condition
/// variable that each send, and each sender's end, wakes. Senders still block on a full channel:
/// that is the back-pressure.
pub fn channel(batches: usize) -> (BatchSender, BatchReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(batches);
    let wake = Arc::new(Wake::default());
    (
        BatchSender {
            tx: Some(tx),
            wake: wake.clone(),
        },
        BatchReceiver { rx, wake },
    )
}

/// Counts what senders did (a batch sent, a sender gone), so a receiver that found the channel
/// empty sleeps only if nothing happened since it looked.
#[derive(Default)]
struct Wake {
    events: Mutex<u64>,
    happened: Condvar,
}

impl Wake {
    fn events(&self) -> MutexGuard<'_, u64> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tell(&self) {
        *self.events() += 1;
        self.happened.notify_one();
    }
}

/// A pipe reader's end of [`channel`].
pub struct BatchSender {
    /// Always `Some` until dropped: taken in `drop` so the channel knows this sender is gone
    /// before the writer is woken to look.
    tx: Option<Sender<Batch>>,
    wake: Arc<Wake>,
}

impl BatchSender {
    /// Sends `batch`, waiting while the channel is full; an error once the writer is gone.
    pub fn send(&self, batch: Batch) -> Result<(), SendError<Batch>> {
        match &self.tx {
            Some(tx) => tx.send(batch)?,
            None => return Err(SendError(batch)),
        }
        self.wake.tell();
        Ok(())
    }
}

impl Clone for BatchSender {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl Drop for BatchSender {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.wake.tell();
    }
}

/// The writer's end of [`channel`].
pub struct BatchReceiver {
    rx: Receiver<Batch>,
    wake: Arc<Wake>,
}

impl BatchReceiver {
    /// The next batch, waiting (asleep) up to `timeout`; `Disconnected` once every sender is gone
    /// and the channel is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Batch, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = *self.wake.events();
            match self.rx.try_recv() {
                Ok(batch) => return Ok(batch),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            let mut events = self.wake.events();
            while *events == seen {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(RecvTimeoutError::Timeout);
                }
                events = self
                    .wake
                    .happened
                    .wait_timeout(events, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
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

    fn batch(shard: usize) -> Batch {
        Batch {
            shard,
            records: Vec::new(),
            held: BytesInFlight::new(1).hold(0),
        }
    }

    #[test]
    fn the_writer_wakes_for_each_batch_and_once_every_sender_is_gone() {
        let (tx, rx) = channel(4);
        let second = tx.clone();
        let senders = std::thread::spawn(move || {
            for shard in 0..100 {
                std::thread::sleep(Duration::from_micros(200));
                tx.send(batch(shard)).expect("send");
            }
            drop(tx);
            std::thread::sleep(Duration::from_millis(20));
            second.send(batch(100)).expect("send");
        });
        let mut got = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(b) => got.push(b.shard),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("a send or the senders' end did not wake the writer")
                }
            }
        }
        senders.join().expect("join");
        assert_eq!(got, (0..=100).collect::<Vec<_>>());
    }

    #[test]
    fn an_idle_writer_sleeps_until_its_timeout() {
        let (_tx, rx) = channel(1);
        let start = Instant::now();
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(50)),
            Err(RecvTimeoutError::Timeout)
        ));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_send_fails_once_the_writer_is_gone() {
        let (tx, rx) = channel(1);
        drop(rx);
        assert!(tx.send(batch(0)).is_err());
    }
}
