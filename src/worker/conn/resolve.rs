//! Where connections go: a destination's addresses, fixed (an IP address, `--resolve`) or a
//! name's. No name is resolved on the event loop: the worker's cache of names (`dns.rs`) asks
//! its resolver thread (`lookup.rs`) for its A records (AAAA where there are none), and the addresses are used
//! until the record's TTL runs out, then looked up again while the old ones stay in use; for the
//! run's own origin at least every `--dns-refresh`. Connections are spread over all the
//! addresses, starting each connect one further; an address that refused a connection is
//! skipped for [`SKIP_REFUSING`]. A name that does not resolve is `dns`; addresses found earlier
//! stay in use while the resolver fails.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::dns::{Known, Names, Resolved};
use crate::model::ErrorKind;
use crate::net::NetSpec;
use crate::worker::failure::Failure;

/// How long an address that refused a connection is left out.
pub const SKIP_REFUSING: Duration = Duration::from_secs(10);

/// A name to resolve, and how old its answer may be.
struct Name {
    host: Box<str>,
    /// `--dns-refresh` for the run's own origin: asked again this often even when the TTL is
    /// longer.
    max_age: Option<Duration>,
    /// Until when the addresses taken hold (`None`: none taken yet).
    until: Cell<Option<Instant>>,
    /// When the answer taken came (the same answer is not taken twice).
    taken: Cell<Option<Instant>>,
}

/// The destination's addresses: fixed (an IP address, `--resolve`), or a name's, as the
/// worker's cache last gave them.
pub(super) struct Targets {
    addrs: RefCell<Vec<SocketAddr>>,
    port: u16,
    /// Where the next connect starts.
    next: Cell<usize>,
    refused_until: RefCell<HashMap<SocketAddr, Instant>>,
    /// Boxed: most destinations are fixed or one per dialer, and `Via` holds a `Targets` inline.
    name: Option<Box<Name>>,
    /// Why the name did not resolve, when it did not.
    dns_error: RefCell<Option<String>>,
}

impl Targets {
    /// The addresses of `host` at `port`: pinned by `--resolve`, an IP address, or a name
    /// (`refresh`: the run's own origin, asked again at least every `--dns-refresh`).
    pub(super) fn of(net: &NetSpec, host: &str, port: u16, refresh: bool) -> Targets {
        match net.pinned(host, port) {
            Some(addrs) => Targets::fixed(addrs.iter().map(|ip| SocketAddr::new(*ip, port)), port),
            None => match host.parse::<IpAddr>() {
                Ok(ip) => Targets::fixed([SocketAddr::new(ip, port)], port),
                Err(_) => Targets {
                    name: Some(Box::new(Name {
                        host: host.into(),
                        max_age: refresh.then_some(net.dns_refresh),
                        until: Cell::new(None),
                        taken: Cell::new(None),
                    })),
                    ..Targets::fixed([], port)
                },
            },
        }
    }

    fn fixed(addrs: impl IntoIterator<Item = SocketAddr>, port: u16) -> Targets {
        Targets {
            addrs: RefCell::new(addrs.into_iter().collect()),
            port,
            next: Cell::new(0),
            refused_until: RefCell::default(),
            name: None,
            dns_error: RefCell::new(None),
        }
    }

    /// The addresses to try for one connect, in order: all of them, from the next one on,
    /// those that refused lately last. Waits (without blocking the loop) for the name's first
    /// answer; a name that did not resolve is `dns`.
    pub(super) async fn in_turn(&self) -> Result<Vec<SocketAddr>, Failure> {
        if let Some(name) = &self.name {
            self.look_up(name).await;
        }
        let addrs = self.addrs.borrow();
        if addrs.is_empty() {
            let why = self.dns_error.borrow().clone();
            return Err(Failure {
                kind: ErrorKind::Dns,
                answered: false,
                detail: why.unwrap_or_else(|| "no address".into()),
            });
        }
        let start = self.next.get() % addrs.len();
        self.next.set(start + 1);
        let now = Instant::now();
        let refused = self.refused_until.borrow();
        let (mut ready, skipped): (Vec<_>, Vec<_>) = (0..addrs.len())
            .map(|k| addrs[(start + k) % addrs.len()])
            .partition(|addr| refused.get(addr).is_none_or(|until| *until <= now));
        ready.extend(skipped);
        Ok(ready)
    }

    /// Takes the name's answer when the one taken has run out: waits for it when there are no
    /// addresses yet, else keeps using them while it is looked up again.
    async fn look_up(&self, name: &Name) {
        let now = Instant::now();
        if name.until.get().is_some_and(|until| now < until) {
            return;
        }
        let names = match Names::of_worker() {
            Ok(names) => names,
            Err(why) => return *self.dns_error.borrow_mut() = Some(why),
        };
        let wait = self.addrs.borrow().is_empty();
        match names.resolve(&name.host, name.max_age, wait).await {
            Some(answer) => self.take(name, answer),
            None if wait => {
                *self.dns_error.borrow_mut() = Some(format!("{}: no answer", name.host));
            }
            None => {}
        }
    }

    fn take(&self, name: &Name, answer: Resolved) {
        let until = name
            .max_age
            .map_or(answer.until, |age| answer.until.min(answer.at + age));
        name.until.set(Some(until));
        if name.taken.replace(Some(answer.at)) == Some(answer.at) {
            return;
        }
        match answer.known {
            Known::Addrs(ips) => {
                let port = self.port;
                *self.addrs.borrow_mut() =
                    ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
                *self.dns_error.borrow_mut() = None;
            }
            // Addresses found earlier stay in use while the resolver fails.
            Known::Missing(why) => {
                let kept = self.addrs.borrow().len();
                if kept > 0 {
                    crate::detail!(
                        "ringscrape: resolving {why}; keeping the {kept} addresses found before"
                    );
                }
                *self.dns_error.borrow_mut() = Some(why.to_string());
            }
        }
    }

    pub(super) fn refused(&self, addr: SocketAddr) {
        let mut refused = self.refused_until.borrow_mut();
        refused.insert(addr, Instant::now() + SKIP_REFUSING);
    }
}
