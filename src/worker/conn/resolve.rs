//! Where connections go: a destination's addresses, fixed (an IP address, `--resolve`) or a
//! name's. No name is resolved on the event loop: a resolver thread asks the system (every A and
//! AAAA record) when the dialer is made, and for the run's own origin again every
//! `--dns-refresh` (60 s by default: the system resolver does not tell a record's TTL).
//! Connections are spread over all the addresses, starting each connect one further; an address
//! that refused a connection is skipped for [`SKIP_REFUSING`]. A name that does not resolve is
//! `dns`; addresses found earlier stay in use while the resolver fails.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::ErrorKind;
use crate::net::NetSpec;
use crate::worker::failure::Failure;

/// How soon a failed resolution is tried again (or `--dns-refresh`, if sooner).
const RETRY_RESOLVE_AFTER: Duration = Duration::from_secs(5);
/// How long an address that refused a connection is left out.
pub const SKIP_REFUSING: Duration = Duration::from_secs(10);

/// What a resolver thread found for a name, and how many times it has answered.
struct Found {
    addrs: Mutex<Result<Vec<SocketAddr>, String>>,
    answers: AtomicU64,
}

/// The destination's addresses: fixed (an IP address, `--resolve`), or a name's, as its
/// resolver thread last found them.
pub(super) struct Targets {
    addrs: RefCell<Vec<SocketAddr>>,
    /// Where the next connect starts.
    next: Cell<usize>,
    refused_until: RefCell<HashMap<SocketAddr, Instant>>,
    found: Option<Arc<Found>>,
    /// Answers of the resolver thread already taken.
    taken: Cell<u64>,
    /// Why the name did not resolve, when it did not.
    dns_error: RefCell<Option<String>>,
}

impl Targets {
    /// The addresses of `host` at `port`: pinned by `--resolve`, an IP address, or a name.
    pub(super) fn of(net: &NetSpec, host: &str, port: u16, refresh: bool) -> Targets {
        match net.pinned(host, port) {
            Some(addrs) => Targets::fixed(addrs.iter().map(|ip| SocketAddr::new(*ip, port))),
            None => match host.parse::<IpAddr>() {
                Ok(ip) => Targets::fixed([SocketAddr::new(ip, port)]),
                Err(_) => {
                    let every = refresh.then_some(net.dns_refresh);
                    Targets::resolving(host.to_string(), port, every)
                }
            },
        }
    }

    fn fixed(addrs: impl IntoIterator<Item = SocketAddr>) -> Targets {
        Targets {
            addrs: RefCell::new(addrs.into_iter().collect()),
            next: Cell::new(0),
            refused_until: RefCell::default(),
            found: None,
            taken: Cell::new(0),
            dns_error: RefCell::new(None),
        }
    }

    /// Starts a thread resolving `host` (and again while the run lasts, `every` so often).
    fn resolving(host: String, port: u16, every: Option<Duration>) -> Targets {
        let found = Arc::new(Found {
            addrs: Mutex::new(Ok(Vec::new())),
            answers: AtomicU64::new(0),
        });
        let shared = found.clone();
        let spawned = std::thread::Builder::new()
            .name("resolve".into())
            .spawn(move || resolve_loop(&host, port, every, &shared));
        if let Err(e) = spawned {
            *found.addrs.lock().unwrap_or_else(|p| p.into_inner()) =
                Err(format!("could not start a resolver thread: {e}"));
            found.answers.store(1, Ordering::Release);
        }
        Targets {
            found: Some(found),
            ..Targets::fixed([])
        }
    }

    /// The addresses to try for one connect, in order: all of them, from the next one on,
    /// those that refused lately last. Waits (without blocking the loop) for the resolver's
    /// first answer; a name that did not resolve is `dns`.
    pub(super) async fn in_turn(&self) -> Result<Vec<SocketAddr>, Failure> {
        if let Some(found) = &self.found {
            crate::worker::wait::poll_until(|| found.answers.load(Ordering::Acquire) > 0).await;
            let answers = found.answers.load(Ordering::Acquire);
            if answers != self.taken.get() {
                self.taken.set(answers);
                match &*found.addrs.lock().unwrap_or_else(|p| p.into_inner()) {
                    Ok(addrs) => {
                        *self.addrs.borrow_mut() = addrs.clone();
                        *self.dns_error.borrow_mut() = None;
                    }
                    // Addresses found earlier stay in use while the resolver fails.
                    Err(e) => {
                        let kept = self.addrs.borrow().len();
                        if kept > 0 {
                            crate::detail!(
                                "ringscrape: resolving {e}; keeping the {kept} addresses found before"
                            );
                        }
                        *self.dns_error.borrow_mut() = Some(e.clone());
                    }
                }
            }
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

    pub(super) fn refused(&self, addr: SocketAddr) {
        let mut refused = self.refused_until.borrow_mut();
        refused.insert(addr, Instant::now() + SKIP_REFUSING);
    }
}

/// The resolver thread: asks the system for every address of `host`, publishes the answer,
/// and (`every` so often) asks again while the dialer lives.
fn resolve_loop(host: &str, port: u16, every: Option<Duration>, found: &Arc<Found>) {
    loop {
        let answer = match (host, port).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.is_empty() {
                    Err(format!("{host}: no address"))
                } else {
                    Ok(addrs)
                }
            }
            Err(e) => Err(format!("{host}: {e}")),
        };
        let failed = answer.is_err();
        *found.addrs.lock().unwrap_or_else(|p| p.into_inner()) = answer;
        found.answers.fetch_add(1, Ordering::AcqRel);
        // The dialer is gone, or the name is to be resolved once.
        let Some(every) = every.filter(|_| Arc::strong_count(found) > 1) else {
            return;
        };
        std::thread::sleep(if failed {
            RETRY_RESOLVE_AFTER.min(every)
        } else {
            every
        });
        if Arc::strong_count(found) == 1 {
            return;
        }
    }
}
