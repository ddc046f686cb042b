//! Idle connections to origins other than the run's own (a key's own host, a redirect's
//! elsewhere), kept for the next request there: a worker's, bounded three ways — at most
//! `max_idle` in all, at most `per_origin` for one origin, none idle longer than `max_age` —
//! the least recently parked closed first.
//!
//! Without it every such request paid a TCP (and TLS) handshake: over a key file of many hosts,
//! a connection per request. A connection comes back here only after an answer that left it
//! fit for another (the caller judges); taken, it is the most recently parked of its origin (the
//! least likely to have been closed by the server), and the caller still peeks at it before use.
//! Each entry remembers its route (direct, or which proxy), so that it is written for as it was
//! dialed. Nothing here speaks a protocol: the pool holds any `C`.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::connect::RouteId;
use crate::request::Origin;

/// How many idle connections are kept, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// In all, over every origin.
    pub max_idle: usize,
    /// For any one origin.
    pub per_origin: usize,
    /// An idle connection older than this is closed: servers close theirs after a few seconds
    /// (5 s is common: Apache's, Node's), and one closed under us costs a request sent twice.
    pub max_age: Duration,
}

struct Idle<C> {
    conn: C,
    route: RouteId,
    /// Its place in the pool's parking order.
    seq: u64,
}

/// The idle connections of a worker, by origin.
pub struct IdlePool<C> {
    /// Each origin's connections, oldest first (by `seq`).
    by_origin: HashMap<Rc<Origin>, Vec<Idle<C>>>,
    /// Every idle connection by when it was parked: `seq` → its origin and parking time. The
    /// first is the least recently parked, closed first.
    order: BTreeMap<u64, (Rc<Origin>, Instant)>,
    next_seq: u64,
    bounds: Bounds,
}

impl<C> IdlePool<C> {
    pub fn new(bounds: Bounds) -> Self {
        Self {
            by_origin: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            bounds,
        }
    }

    /// Idle connections held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The most recently parked connection to `origin` that is not too old, and its route.
    pub fn take(&mut self, origin: &Origin, now: Instant) -> Option<(C, RouteId)> {
        self.close_expired(now);
        let conns = self.by_origin.get_mut(origin)?;
        let idle = conns
            .pop()
            .expect("an origin's entry is removed with its last connection");
        if conns.is_empty() {
            self.by_origin.remove(origin);
        }
        self.order.remove(&idle.seq);
        Some((idle.conn, idle.route))
    }

    /// Keeps `conn` (of `route`) for the next request to `origin`, closing what the bounds
    /// leave no room for: the oldest of that origin past `per_origin`, the oldest of all past
    /// `max_idle`.
    pub fn park(&mut self, origin: &Origin, conn: C, route: RouteId, now: Instant) {
        self.close_expired(now);
        if self.bounds.max_idle == 0 || self.bounds.per_origin == 0 {
            return;
        }
        let key = match self.by_origin.get_key_value(origin) {
            Some((key, _)) => key.clone(),
            None => Rc::new(origin.clone()),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let conns = self.by_origin.entry(key.clone()).or_default();
        if conns.len() >= self.bounds.per_origin {
            let oldest = conns.remove(0);
            self.order.remove(&oldest.seq);
        }
        conns.push(Idle { conn, route, seq });
        self.order.insert(seq, (key, now));
        while self.order.len() > self.bounds.max_idle {
            self.close_oldest();
        }
    }

    /// Closes every connection parked `max_age` or longer before `now`.
    fn close_expired(&mut self, now: Instant) {
        while let Some((_, (_, parked))) = self.order.first_key_value() {
            if now.saturating_duration_since(*parked) < self.bounds.max_age {
                break;
            }
            self.close_oldest();
        }
    }

    /// Closes the least recently parked connection (dropping it closes it).
    fn close_oldest(&mut self) {
        let Some((seq, (origin, _))) = self.order.pop_first() else {
            return;
        };
        if let Some(conns) = self.by_origin.get_mut(&origin) {
            // An origin's connections are in parking order: the pool's oldest is its first.
            conns.retain(|idle| idle.seq != seq);
            if conns.is_empty() {
                self.by_origin.remove(&origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::conn::dialers::tests::origin;

    fn pool(max_idle: usize, per_origin: usize) -> IdlePool<u32> {
        IdlePool::new(Bounds {
            max_idle,
            per_origin,
            max_age: Duration::from_secs(4),
        })
    }

    #[test]
    fn a_parked_connection_is_taken_by_the_next_request_to_its_origin_only() {
        let mut pool = pool(8, 2);
        let now = Instant::now();
        pool.park(&origin("a"), 1, RouteId::default(), now);
        assert_eq!(pool.take(&origin("b"), now), None);
        assert_eq!(pool.take(&origin("a"), now), Some((1, RouteId::default())));
        assert_eq!(pool.take(&origin("a"), now), None, "taken once");
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn the_most_recently_parked_of_an_origin_is_taken_first() {
        let mut pool = pool(8, 4);
        let now = Instant::now();
        for conn in [1, 2, 3] {
            pool.park(&origin("a"), conn, RouteId::default(), now);
        }
        let taken: Vec<u32> = std::iter::from_fn(|| pool.take(&origin("a"), now))
            .map(|(conn, _)| conn)
            .collect();
        assert_eq!(taken, [3, 2, 1]);
    }

    #[test]
    fn an_origin_keeps_at_most_per_origin_connections_the_oldest_closed() {
        let mut pool = pool(8, 2);
        let now = Instant::now();
        for conn in [1, 2, 3] {
            pool.park(&origin("a"), conn, RouteId::default(), now);
        }
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take(&origin("a"), now).map(|c| c.0), Some(3));
        assert_eq!(pool.take(&origin("a"), now).map(|c| c.0), Some(2));
        assert_eq!(pool.take(&origin("a"), now), None);
    }

    #[test]
    fn past_max_idle_the_least_recently_parked_of_all_is_closed() {
        let mut pool = pool(3, 2);
        let now = Instant::now();
        for (conn, host) in [(1, "a"), (2, "b"), (3, "a"), (4, "c")] {
            pool.park(&origin(host), conn, RouteId::default(), now);
        }
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.take(&origin("a"), now).map(|c| c.0), Some(3));
        assert_eq!(
            pool.take(&origin("a"), now),
            None,
            "1 was the oldest: closed"
        );
        assert_eq!(pool.take(&origin("b"), now).map(|c| c.0), Some(2));
        assert_eq!(pool.take(&origin("c"), now).map(|c| c.0), Some(4));
    }

    #[test]
    fn many_origins_never_hold_more_than_max_idle() {
        let mut pool = pool(16, 4);
        let now = Instant::now();
        for k in 0..10_000u32 {
            pool.park(
                &origin(&format!("h{}", k % 3000)),
                k,
                RouteId::default(),
                now,
            );
            assert!(pool.len() <= 16);
        }
        assert_eq!(
            pool.by_origin.len(),
            16,
            "16 origins of one connection each"
        );
        assert_eq!(pool.by_origin.values().map(Vec::len).sum::<usize>(), 16);
    }

    #[test]
    fn a_connection_idle_for_max_age_is_closed_not_taken() {
        let mut pool = pool(8, 4);
        let then = Instant::now();
        pool.park(&origin("a"), 1, RouteId::default(), then);
        pool.park(
            &origin("b"),
            2,
            RouteId::default(),
            then + Duration::from_secs(2),
        );
        let later = then + Duration::from_secs(4);
        assert_eq!(pool.take(&origin("a"), later), None);
        assert_eq!(pool.len(), 1, "b is 2 s old: kept");
        assert_eq!(pool.take(&origin("b"), later).map(|c| c.0), Some(2));
    }

    #[test]
    fn no_room_keeps_nothing() {
        let mut pool = pool(0, 4);
        pool.park(&origin("a"), 1, RouteId::default(), Instant::now());
        assert_eq!(pool.len(), 0);
        assert!(pool.by_origin.is_empty());
    }
}
