//! The dialers made for origins other than the run's own, kept for the next request there: at
//! most `max` of them, the least recently used let go first. With `{host}` from a key file every
//! key may have an origin of its own, millions in a run; the hosts being worked on now keep
//! theirs (and the addresses, TLS name and route state it holds), the rest cost nothing.
//!
//! Generic over what is kept (a worker keeps `Rc<Dialer>`), so that the order is tested alone.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::connect::Dialer;
use crate::request::Origin;

/// Dialers (or any `D`) by origin, least recently used let go past `max`.
pub struct Dialers<D = Rc<Dialer>> {
    /// Each origin's dialer and when it was last used (a stamp of `order`).
    by_origin: HashMap<Rc<Origin>, (D, u64)>,
    /// Origins by when they were last used: the first is let go first.
    order: BTreeMap<u64, Rc<Origin>>,
    next_stamp: u64,
    max: usize,
}

impl<D: Clone> Dialers<D> {
    pub fn new(max: usize) -> Self {
        Self {
            by_origin: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
            max,
        }
    }

    /// Dialers kept now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_origin.len()
    }

    /// `origin`'s dialer, if kept; it becomes the most recently used.
    pub fn get(&mut self, origin: &Origin) -> Option<D> {
        let (key, (dialer, stamp)) = self.by_origin.get_key_value(origin)?;
        let dialer = dialer.clone();
        // Items of one host usually come together: the most recent is touched for free.
        if *stamp + 1 != self.next_stamp {
            let key = key.clone();
            let old = *stamp;
            self.order.remove(&old);
            let stamp = self.stamp(key.clone());
            if let Some(entry) = self.by_origin.get_mut(&key) {
                entry.1 = stamp;
            }
        }
        Some(dialer)
    }

    /// Keeps `dialer` for `origin` (as the most recently used), letting the least recently used
    /// go if there are `max` already.
    pub fn insert(&mut self, origin: &Origin, dialer: D) {
        if self.max == 0 {
            return;
        }
        if let Some((_, stamp)) = self.by_origin.remove(origin) {
            self.order.remove(&stamp);
        }
        while self.by_origin.len() >= self.max {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.by_origin.remove(&oldest);
        }
        let key = Rc::new(origin.clone());
        let stamp = self.stamp(key.clone());
        self.by_origin.insert(key, (dialer, stamp));
    }

    /// The next stamp, recorded in `order` for `key`.
    fn stamp(&mut self, key: Rc<Origin>) -> u64 {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.order.insert(stamp, key);
        stamp
    }
}

#[cfg(test)]
pub(in crate::worker::conn) mod tests {
    use super::*;
    use crate::request::Scheme;

    /// `http://host` (for the pool's tests too).
    pub(in crate::worker::conn) fn origin(host: &str) -> Origin {
        Origin {
            scheme: Scheme::Http,
            host: host.into(),
            port: 80,
            authority: host.into(),
        }
    }

    #[test]
    fn past_max_the_least_recently_used_origin_is_let_go() {
        let mut dialers = Dialers::new(2);
        dialers.insert(&origin("a"), 1);
        dialers.insert(&origin("b"), 2);
        assert_eq!(
            dialers.get(&origin("a")),
            Some(1),
            "a is now the most recent"
        );
        dialers.insert(&origin("c"), 3);
        assert_eq!(dialers.len(), 2);
        assert_eq!(
            dialers.get(&origin("b")),
            None,
            "b was the least recently used"
        );
        assert_eq!(dialers.get(&origin("a")), Some(1));
        assert_eq!(dialers.get(&origin("c")), Some(3));
    }

    #[test]
    fn many_origins_keep_max_dialers_and_as_many_stamps() {
        let mut dialers = Dialers::new(64);
        for k in 0..200_000u32 {
            let here = origin(&format!("h{}", k % 5000));
            if dialers.get(&here).is_none() {
                dialers.insert(&here, k);
            }
        }
        assert_eq!(dialers.len(), 64);
        assert_eq!(dialers.order.len(), 64, "one stamp per kept origin");
    }

    #[test]
    fn the_origins_in_use_stay_while_others_come_and_go() {
        let mut dialers = Dialers::new(4);
        let hot = origin("hot");
        dialers.insert(&hot, 0);
        for k in 1..1000u32 {
            let cold = origin(&format!("cold{k}"));
            dialers.insert(&cold, k);
            assert_eq!(dialers.get(&hot), Some(0), "used every other request: kept");
        }
    }

    /// Resident bytes of this process (from /proc/self/statm).
    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("rss");
        pages * 4096
    }

    #[test]
    #[ignore = "a measurement (resident memory, alone): cargo test --release --lib dialer_bytes -- --ignored --nocapture"]
    fn dialer_bytes_kept_per_origin() {
        use crate::net::{NetSpec, Protocol};
        use crate::tls::ClientTls;
        use crate::worker::conn::proxy_board::ProxyBoard;
        let net = NetSpec::parse(&[], &[], &[]).expect("no routing");
        let board = ProxyBoard::new(&net);
        let tls = ClientTls {
            trust: crate::tls::Trust::default(),
            tickets_per_server: 256,
        };
        // Each kept to the end, so that the second's memory is not the first's, freed.
        let mut kept = Vec::new();
        for scheme in [Scheme::Http, Scheme::Https] {
            let n = 20_000;
            let mut dialers = Dialers::new(n);
            let before = resident_bytes();
            for k in 0..n {
                let host = format!("127.{}.{}.{}", k >> 16, (k >> 8) & 255, k & 255);
                let here = Origin {
                    scheme,
                    authority: format!("{host}:8080"),
                    host,
                    port: 8080,
                };
                let timeout = std::time::Duration::from_secs(1);
                let made = Dialer::new(&here, &tls, &net, timeout, Protocol::Http1, false, &board);
                dialers.insert(&here, made.expect("a dialer"));
            }
            let each = (resident_bytes() - before) / n;
            println!(
                "{scheme:?}: {each} bytes resident per kept dialer (Dialer itself {} bytes)",
                std::mem::size_of::<Dialer>()
            );
            assert!(each < 4096, "{each} bytes per dialer");
            kept.push(dialers);
        }
    }

    #[test]
    fn inserting_a_kept_origin_again_replaces_it() {
        let mut dialers = Dialers::new(4);
        dialers.insert(&origin("a"), 1);
        dialers.insert(&origin("a"), 2);
        assert_eq!((dialers.len(), dialers.order.len()), (1, 1));
        assert_eq!(dialers.get(&origin("a")), Some(2));
    }
}
