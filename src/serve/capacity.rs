//! `serve --max-inflight N`: a server that works on at most N requests at a time and queues the
//! rest in arrival order, like a backend with N worker threads behind an accept queue. Modelled
//! rather than enforced with permits: each request is given the server (of N) that frees up
//! first, starts when it does, and holds it for its delay; the answer waits until then. One
//! mutex-guarded heap serves every thread of `serve`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Capacity {
    /// When each of the N servers is next free.
    free_at: Mutex<BinaryHeap<Reverse<Instant>>>,
}

impl Capacity {
    pub fn new(servers: usize, now: Instant) -> Capacity {
        Capacity {
            free_at: Mutex::new((0..servers.max(1)).map(|_| Reverse(now)).collect()),
        }
    }

    /// A request that arrives at `now` and takes `work`: when its answer is ready.
    pub fn finish_time(&self, now: Instant, work: Duration) -> Instant {
        // A poisoned lock only means another thread panicked mid-update; the heap is still whole.
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let mut first = free_at.peek_mut().expect("at least one server");
        let done = first.0.max(now) + work;
        *first = Reverse(done);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_servers_take_n_at_once_and_queue_the_rest() {
        let start = Instant::now();
        let capacity = Capacity::new(2, start);
        let ms = Duration::from_millis;
        let done: Vec<Duration> = (0..5)
            .map(|_| capacity.finish_time(start, ms(50)) - start)
            .collect();
        assert_eq!(done, [ms(50), ms(50), ms(100), ms(100), ms(150)]);
        // A late arrival finds a free server and is not queued behind the past.
        let late = start + ms(1000);
        assert_eq!(capacity.finish_time(late, ms(50)), late + ms(50));
    }
}
