//! Opening connections to an origin: where to (`--connect-to`, `--resolve`, or the name's
//! addresses), from where (`--local-addr`), within the connect deadline, and for `https://` the
//! TLS handshake with the run's trust settings (offering `h2` by ALPN with `--http2`).
//!
//! No name is resolved on the event loop: a resolver thread asks the system (every A and AAAA
//! record) when the dialer is made, and for the run's own origin again every `--dns-refresh`
//! (60 s by default: the system resolver does not tell a record's TTL). Connections are spread
//! over all the addresses, starting each connect one further; an address that refused a
//! connection is skipped for [`SKIP_REFUSING`]. With `--local-addr`, each socket is bound to the
//! next source address before it connects, with `IP_BIND_ADDRESS_NO_PORT` so that the kernel
//! picks the port per destination and each source address has the whole port range.
//!
//! Through a proxy (`proxy.rs`), the TCP connection goes to the proxy, which then carries it to
//! the target: a SOCKS5 request, an HTTP `CONNECT` tunnel, or (plain HTTP through an HTTP proxy)
//! requests in absolute form on the proxy's connection, which [`Dialer::forward`] tells the
//! slots to write.
//!
//! A name that does not resolve is `dns`; a failure before the TCP connection is up is
//! `connect`, or `proxy` for any failure to reach the target through the proxy; a failed
//! handshake or an untrusted certificate is `tls`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, getsockopt, setsockopt,
    socket, sockopt,
};
use rustls::pki_types::ServerName;

use super::failure::Failure;
use super::pace::{Pacer, SLOW_CONNECT};
use super::proxy::{self, SocksTarget};
use super::stream::Stream;
use crate::model::ErrorKind;
use crate::net::{NetSpec, Proxy, ProxyKind};
use crate::request::{Origin, Scheme};
use crate::runtime::{Driver, current_driver};
use crate::stats::ProxyTally;
use crate::tls::{self, Trust};

/// How soon a failed resolution is tried again (or `--dns-refresh`, if sooner).
const RETRY_RESOLVE_AFTER: Duration = Duration::from_secs(5);
/// How long an address that refused a connection is left out.
pub const SKIP_REFUSING: Duration = Duration::from_secs(10);

/// How connections reach the target.
enum Via {
    Direct,
    /// Plain HTTP through an HTTP proxy: requests go to it in absolute form.
    Forward {
        /// `http://authority`, put before each request's path.
        prefix: Vec<u8>,
        auth: Option<Vec<u8>>,
    },
    /// A `CONNECT` tunnel through an HTTP proxy to `authority`.
    Connect {
        authority: String,
        auth: Option<String>,
    },
    /// A SOCKS5 proxy, told the target's address (`socks5://`, resolved here) or its name
    /// (`socks5h://`).
    Socks {
        proxy: Proxy,
        target: SocksVia,
    },
}

enum SocksVia {
    Resolved(Targets),
    Name(String, u16),
}

/// One proxy's health, shared by every dialer of a worker (the run's origin, a redirect's,
/// each `{id}` host's): a proxy benched for one is benched for all.
pub struct ProxyHealth {
    /// The proxy as shown (credentials left out).
    label: String,
    /// Failures in a row, and until when the proxy sits out after the last.
    streak: Cell<u32>,
    benched_until: Cell<Option<Instant>>,
    tally: RefCell<ProxyTally>,
    /// Requests sent through it (each attempt), what new connections are shared out by.
    sent: Cell<u64>,
}

impl ProxyHealth {
    fn benched(&self, now: Instant) -> bool {
        self.benched_until.get().is_some_and(|until| until > now)
    }

    /// Benches the proxy after a failure: for 1 s after one failure, doubling with each in a
    /// row, up to [`MAX_BENCH`].
    pub fn failed(&self) {
        let streak = self.streak.get().saturating_add(1);
        self.streak.set(streak);
        let doubling = 2u32.saturating_pow(streak.saturating_sub(1).min(16));
        let bench = FIRST_BENCH.saturating_mul(doubling).min(MAX_BENCH);
        let now = Instant::now();
        let until = now + bench;
        // Time on the bench is counted once where benches overlap (slots that dialed it
        // together fail together).
        let from = self.benched_until.get().filter(|u| *u > now).unwrap_or(now);
        let mut tally = self.tally.borrow_mut();
        tally.failures += 1;
        tally.bench_ms += until.saturating_duration_since(from).as_millis() as u64;
        self.benched_until.set(Some(until.max(from)));
    }

    /// A connection through it is up; `proven`: the target is reached (a tunnel or SOCKS
    /// connection), which ends a streak of failures. A forwarding proxy proves nothing by
    /// accepting a connection: its answer does.
    fn carried(&self, proven: bool) {
        if proven {
            self.streak.set(0);
        }
        self.tally.borrow_mut().connections += 1;
    }

    /// One more request about to go through it.
    pub fn sending(&self) {
        self.sent.set(self.sent.get() + 1);
    }

    /// One more row answered through this proxy.
    pub fn count_row(&self) {
        self.streak.set(0);
        self.tally.borrow_mut().rows += 1;
    }

    /// What it carried so far; its bench time up to now.
    fn tally(&self, now: Instant) -> ProxyTally {
        let mut tally = *self.tally.borrow();
        let ahead = self
            .benched_until
            .get()
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        tally.bench_ms = tally.bench_ms.saturating_sub(ahead.as_millis() as u64);
        tally
    }
}

/// The health of every proxy the run names, one entry each, for all of a worker's dialers.
#[derive(Default)]
pub struct ProxyBoard {
    entries: RefCell<Vec<(Proxy, Rc<ProxyHealth>)>>,
}

impl ProxyBoard {
    pub fn new(net: &NetSpec) -> ProxyBoard {
        let board = ProxyBoard::default();
        let named = net
            .proxy_pool
            .iter()
            .chain(&net.http_proxy)
            .chain(&net.https_proxy);
        for proxy in named {
            board.health_of(proxy);
        }
        board
    }

    /// The health of `proxy`, shared with every other dialer that goes through it.
    fn health_of(&self, proxy: &Proxy) -> Rc<ProxyHealth> {
        let mut entries = self.entries.borrow_mut();
        if let Some((_, health)) = entries.iter().find(|(p, _)| p == proxy) {
            return health.clone();
        }
        let health = Rc::new(ProxyHealth {
            label: proxy.shown(),
            streak: Cell::new(0),
            benched_until: Cell::new(None),
            tally: RefCell::default(),
            sent: Cell::new(0),
        });
        entries.push((proxy.clone(), health.clone()));
        health
    }

    /// What each proxy carried so far, by the proxy as shown.
    pub fn tallies(&self) -> Vec<(String, ProxyTally)> {
        let now = Instant::now();
        self.entries
            .borrow()
            .iter()
            .map(|(_, health)| (health.label.clone(), health.tally(now)))
            .collect()
    }
}

/// One way to the target: directly, or through one proxy.
struct Route {
    /// The addresses connections go to: the target's, or the proxy's.
    targets: Targets,
    via: Via,
    /// The proxy's health (`None`: direct).
    health: Option<Rc<ProxyHealth>>,
}

impl Route {
    fn benched(&self, now: Instant) -> bool {
        self.health.as_ref().is_some_and(|h| h.benched(now))
    }

    /// A failure to reach the target through a proxy is the proxy's, and benches it.
    fn blame(&self, mut failure: Failure) -> Failure {
        let Some(health) = &self.health else {
            return failure;
        };
        if matches!(failure.kind, ErrorKind::Connect | ErrorKind::Dns) {
            failure.kind = ErrorKind::Proxy;
        }
        if failure.kind == ErrorKind::Proxy {
            health.failed();
        }
        failure
    }

    fn carried(&self) {
        if let Some(health) = &self.health {
            health.carried(!matches!(self.via, Via::Forward { .. }));
        }
    }

    /// Requests sent through this route (0 for a direct one).
    fn sent(&self) -> u64 {
        self.health.as_ref().map_or(0, |h| h.sent.get())
    }
}

/// How many more requests than the least used healthy proxy one may have carried before a
/// slot leaves its kept-alive connection through it for another: a little unevenness saves
/// connects, none left a proxy that closes after every answer with 0.5% of the work.
const SHARE_SLACK: u64 = 32;

/// How long a proxy sits out after its first failure in a row, and at most.
const FIRST_BENCH: Duration = Duration::from_secs(1);
const MAX_BENCH: Duration = Duration::from_secs(60);

/// Which of a dialer's routes a connection took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteId(usize);

/// Opens connections for every slot of a worker (all on one thread).
pub struct Dialer {
    /// The ways to the target: one (direct, or one proxy), or one per `--proxy-file` proxy.
    routes: Vec<Route>,
    /// Where the next connection's search for a route starts.
    next_route: Cell<usize>,
    /// `--local-addr`: source addresses, taken in turn.
    local: Rc<[IpAddr]>,
    next_local: Cell<usize>,
    /// Indexes of source addresses that failed to bind: out of the rotation.
    local_gone: RefCell<std::collections::HashSet<usize>>,
    tls: Option<(monoio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    /// `--http2`: offer `h2` over TLS; over plain TCP, speak it with prior knowledge.
    http2: bool,
    /// How many TCP connects may be in flight at once.
    pub pacer: Pacer,
}

impl Dialer {
    /// A dialer for `origin`; `refresh`: resolve its name again while the run lasts (the run's
    /// own origin; a redirect's other origins are resolved once).
    pub fn new(
        origin: &Origin,
        trust: &Trust,
        net: &NetSpec,
        connect_timeout: Duration,
        http2: bool,
        refresh: bool,
        board: &ProxyBoard,
    ) -> Result<Rc<Self>, tls::TlsError> {
        let tls = match origin.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                let alpn: &[&[u8]] = if http2 { &[b"h2", b"http/1.1"] } else { &[] };
                let config = tls::client_config(trust, alpn)?;
                // `Origin` hosts come from a parsed URL, so this only fails for odd hosts;
                // those then fail each connection as `tls`.
                let name = ServerName::try_from(origin.host.clone()).unwrap_or_else(|_| {
                    ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into())
                });
                Some((monoio_rustls::TlsConnector::from(config), name))
            }
        };
        let (host, port) = net.destination(&origin.host, origin.port);
        let https = origin.scheme == Scheme::Https;
        let proxies = net.proxies_for(&origin.host, https);
        let routes = if proxies.is_empty() {
            let targets = Targets::of(net, host, port, refresh);
            vec![Route {
                targets,
                via: Via::Direct,
                health: None,
            }]
        } else {
            proxies
                .into_iter()
                .map(|proxy| {
                    let targets = Targets::of(net, &proxy.host, proxy.port, refresh);
                    let via = Self::via(proxy, origin, net, refresh, http2);
                    Route {
                        targets,
                        via,
                        health: Some(board.health_of(proxy)),
                    }
                })
                .collect()
        };
        Ok(Rc::new(Self {
            routes,
            next_route: Cell::new(0),
            local: net.local_addrs.clone().into(),
            next_local: Cell::new(0),
            local_gone: RefCell::default(),
            tls,
            connect_timeout,
            http2,
            pacer: Pacer::default(),
        }))
    }

    /// How `proxy` carries connections to `origin`.
    fn via(proxy: &Proxy, origin: &Origin, net: &NetSpec, refresh: bool, http2: bool) -> Via {
        let (host, port) = net.destination(&origin.host, origin.port);
        let https = origin.scheme == Scheme::Https;
        match proxy.kind {
            ProxyKind::Http if !https && !http2 => Via::Forward {
                prefix: format!("http://{}", origin.authority).into_bytes(),
                auth: proxy::basic_auth(proxy).map(String::into_bytes),
            },
            ProxyKind::Http => Via::Connect {
                authority: authority(host, port),
                auth: proxy::basic_auth(proxy),
            },
            ProxyKind::Socks5 => Via::Socks {
                proxy: proxy.clone(),
                target: SocksVia::Resolved(Targets::of(net, host, port, refresh)),
            },
            ProxyKind::Socks5h => Via::Socks {
                proxy: proxy.clone(),
                target: SocksVia::Name(host.to_string(), port),
            },
        }
    }

    /// For plain HTTP through an HTTP proxy: what each request on a connection of `route`
    /// needs (see [`proxy::to_absolute_form`]): the origin to put before its path, and the
    /// proxy's credentials.
    pub fn forward(&self, route: RouteId) -> Option<(&[u8], Option<&[u8]>)> {
        match &self.routes.get(route.0)?.via {
            Via::Forward { prefix, auth } => Some((prefix, auth.as_deref())),
            _ => None,
        }
    }

    /// The health of the proxy `route` goes through (`None`: direct).
    pub fn proxy_of(&self, route: RouteId) -> Option<Rc<ProxyHealth>> {
        self.routes.get(route.0)?.health.clone()
    }

    /// True when the slot on a kept-alive connection of `route` should leave it for another
    /// route: it carried [`SHARE_SLACK`] requests more than the least used route that is up.
    pub fn over_share(&self, route: RouteId) -> bool {
        if self.routes.len() < 2 {
            return false;
        }
        let now = Instant::now();
        let least = self
            .routes
            .iter()
            .filter(|r| !r.benched(now))
            .map(Route::sent)
            .min();
        let mine = self.routes.get(route.0).map_or(0, Route::sent);
        least.is_some_and(|least| mine > least + SHARE_SLACK)
    }

    /// True when a new connection has a way to go: a route not benched. After a proxy
    /// failed (and was benched), a request that failed there is sent again at once if so.
    pub fn has_a_route_up(&self) -> bool {
        let now = Instant::now();
        self.routes.iter().any(|r| !r.benched(now))
    }

    /// The next route not benched, from where the last search ended; the next one at all when
    /// the only one is a proxy (it is tried again), and a `proxy` failure when every proxy of
    /// several sits out.
    fn pick_route(&self) -> Result<RouteId, Failure> {
        let n = self.routes.len();
        let start = self.next_route.get();
        self.next_route.set((start + 1) % n);
        if n == 1 {
            return Ok(RouteId(0));
        }
        // Of the routes up, the one that carried the fewest requests (from where the last
        // search ended, so that ties take turns): requests are shared, not connections.
        let now = Instant::now();
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|&k| !self.routes[k].benched(now))
            .min_by_key(|&k| self.routes[k].sent())
            .map(RouteId)
            .ok_or_else(|| Failure {
                kind: ErrorKind::Proxy,
                answered: false,
                detail: format!("every one of the {n} proxies failed lately and sits out"),
            })
    }

    /// A new connection, within the connect deadline, and the route it took.
    pub async fn dial(&self) -> Result<(Stream, RouteId), Failure> {
        self.dial_choosing()
            .await
            .map(|(stream, _, route)| (stream, route))
    }

    /// A new connection, whether to speak HTTP/2 on it (with `--http2`, when the server chose
    /// `h2` by ALPN, or always over plain TCP: h2c with prior knowledge), and its route.
    pub async fn dial_choosing(&self) -> Result<(Stream, bool, RouteId), Failure> {
        let id = self.pick_route()?;
        let route = &self.routes[id.0];
        let stream = match self.dial_once(route).await {
            Ok(stream) => {
                route.carried();
                stream
            }
            Err(failure) => return Err(route.blame(failure)),
        };
        let h2 = self.http2 && (!stream.is_tls() || stream.chose_h2());
        Ok((stream, h2, id))
    }

    async fn dial_once(&self, route: &Route) -> Result<Stream, Failure> {
        match monoio::time::timeout(self.connect_timeout, self.dial_now(route)).await {
            Ok(result) => result,
            Err(_) => Err(connect_failure(&io::Error::new(
                io::ErrorKind::TimedOut,
                "connect deadline passed",
            ))),
        }
    }

    async fn dial_now(&self, route: &Route) -> Result<Stream, Failure> {
        let mut tcp = self.connect_tcp(&route.targets).await?;
        let _ = tcp.set_nodelay(true);
        through_proxy(&route.via, &mut tcp).await?;
        let Some((connector, name)) = &self.tls else {
            return Ok(Stream::plain(tcp));
        };
        let fd = tcp.as_raw_fd();
        match connector.connect(name.clone(), tcp).await {
            Ok(stream) => Ok(Stream::tls(stream, fd)),
            Err(e) => Err(Failure {
                kind: ErrorKind::Tls,
                answered: false,
                detail: match e {
                    monoio_rustls::TlsError::Rustls(e) => e.to_string(),
                    monoio_rustls::TlsError::Io(e) => e.to_string(),
                },
            }),
        }
    }

    /// Tries `targets`' addresses in turn, from the next one on, until one connects.
    async fn connect_tcp(&self, targets: &Targets) -> Result<TcpStream, Failure> {
        let addrs = targets.in_turn().await?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
        for addr in addrs {
            let socket = self.bound_socket_for(addr)?;
            let permit = self.pacer.enter().await;
            let started = Instant::now();
            let connected = match socket {
                None => TcpStream::connect_addr(addr).await,
                Some(socket) => connect_bound(socket, addr).await,
            };
            permit.done(connected.is_ok() && started.elapsed() < SLOW_CONNECT);
            match connected {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        targets.refused(addr);
                    }
                    last = e;
                }
            }
        }
        Err(connect_failure(&last))
    }

    /// With `--local-addr`, a socket for `addr` bound to the next source address of its family
    /// (`None`: none were given). An address that no longer binds (taken off the machine
    /// mid-run) leaves the rotation, said once; when none is left the failure is `io`, ours,
    /// never the target's `connect`.
    fn bound_socket_for(&self, addr: SocketAddr) -> Result<Option<OwnedFd>, Failure> {
        if self.local.is_empty() {
            return Ok(None);
        }
        for _ in 0..self.local.len() {
            let k = self.next_local.get();
            self.next_local.set((k + 1) % self.local.len());
            let local = self.local[k];
            if local.is_ipv4() != addr.is_ipv4() || self.local_gone.borrow().contains(&k) {
                continue;
            }
            match bound_socket(local, addr) {
                Ok(socket) => return Ok(Some(socket)),
                Err(e) => {
                    crate::say!("ringscrape: --local-addr {local}: {e}; left out from now on");
                    self.local_gone.borrow_mut().insert(k);
                }
            }
        }
        Err(Failure {
            kind: ErrorKind::Io,
            answered: false,
            detail: format!("no --local-addr of {addr}'s address family binds"),
        })
    }
}

/// Asks the proxy of `via`, if any, to carry `tcp` on to the target.
async fn through_proxy(via: &Via, tcp: &mut TcpStream) -> Result<(), Failure> {
    let carried = match via {
        Via::Direct | Via::Forward { .. } => return Ok(()),
        Via::Connect { authority, auth } => {
            proxy::http_connect(tcp, authority, auth.as_deref()).await
        }
        Via::Socks { proxy, target } => {
            let target = match target {
                SocksVia::Resolved(targets) => {
                    let addrs = targets.in_turn().await?;
                    SocksTarget::Addr(addrs[0])
                }
                SocksVia::Name(name, port) => SocksTarget::Name(name, *port),
            };
            proxy::socks5(tcp, proxy, target).await
        }
    };
    carried.map_err(|e| Failure {
        kind: ErrorKind::Proxy,
        answered: false,
        detail: e.to_string(),
    })
}

/// A TCP connection to `addr` from `local` (port picked by the kernel at connect): the socket
/// is made and bound by hand, connected without blocking, then handed to monoio.
/// A TCP socket for `addr` bound to `local`, with `IP_BIND_ADDRESS_NO_PORT` so that the kernel
/// picks the port at connect time, per destination.
fn bound_socket(local: IpAddr, addr: SocketAddr) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = socket(family, SockType::Stream, flags, None)?;
    setsockopt(&fd, sockopt::IpBindAddressNoPort, &true)?;
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(local, 0)),
    )?;
    Ok(fd)
}

/// Connects the bound socket `fd` to `addr`.
async fn connect_bound(fd: OwnedFd, addr: SocketAddr) -> io::Result<TcpStream> {
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
    stream.writable(false).await?;
    // SAFETY: the descriptor is `stream`'s, open for as long as this borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    match getsockopt(&borrowed, sockopt::SocketError)? {
        0 => {}
        code => return Err(io::Error::from_raw_os_error(code)),
    }
    // monoio's io_uring driver runs sockets blocking (the ring waits, not the thread); its
    // epoll driver needs them non-blocking.
    if current_driver() == Some(Driver::IoUring) {
        crate::runtime::set_nonblocking(&borrowed.as_fd(), false)?;
    }
    Ok(stream)
}

/// What a resolver thread found for a name, and how many times it has answered.
struct Found {
    addrs: Mutex<Result<Vec<SocketAddr>, String>>,
    answers: AtomicU64,
}

/// The destination's addresses: fixed (an IP address, `--resolve`), or a name's, as its
/// resolver thread last found them.
struct Targets {
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
    fn of(net: &NetSpec, host: &str, port: u16, refresh: bool) -> Targets {
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
    async fn in_turn(&self) -> Result<Vec<SocketAddr>, Failure> {
        if let Some(found) = &self.found {
            super::wait::until(|| found.answers.load(Ordering::Acquire) > 0).await;
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

    fn refused(&self, addr: SocketAddr) {
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

/// `host:port` as a request target names it (an IPv6 address in brackets).
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn connect_failure(error: &io::Error) -> Failure {
    Failure {
        kind: ErrorKind::Connect,
        answered: false,
        detail: error.to_string(),
    }
}
