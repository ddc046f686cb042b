//! Opening connections to an origin: where to (`--connect-to`, `--resolve`, or the name's
//! addresses), from where (`--local-addr`), within the connect deadline, and for `https://` the
//! TLS handshake with the run's trust settings (offering by ALPN what the [`Protocol`] asks).
//!
//! The addresses come from `resolve.rs` (no name is resolved on the event loop), each connect
//! starting one address further. With `--local-addr`, each socket is bound to the
//! next source address before it connects, with `IP_BIND_ADDRESS_NO_PORT` so that the kernel
//! picks the port per destination and each source address has the whole port range.
//!
//! Through a proxy (`proxy.rs`), the TCP connection goes to the proxy, which then carries it to
//! the target: a SOCKS5 request, an HTTP `CONNECT` tunnel, or (plain HTTP through an HTTP proxy)
//! requests in absolute form on the proxy's connection, which [`Dialer::forward`] tells the
//! slots to write. Each proxy's health is `proxy_board.rs`'s.
//!
//! A name that does not resolve is `dns`; a failure before the TCP connection is up is
//! `connect`, or `proxy` for any failure to reach the target through the proxy; a failed
//! handshake or an untrusted certificate is `tls`.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, getsockopt, setsockopt,
    socket, sockopt,
};
use rustls::pki_types::ServerName;

use super::pace::Pacer;
use super::proxy::{self, SocksTarget};
use super::proxy_board::{ProxyBoard, ProxyHealth};
use super::resolve::Targets;
use super::stream::{Stream, Tcp};
use crate::model::ErrorKind;
use crate::net::{NetSpec, Protocol, Proxy, ProxyKind};
use crate::request::{Origin, Scheme};
use crate::runtime::{Driver, current_driver};
use crate::tls::{self, ClientTls};
use crate::worker::failure::Failure;

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
        self.health.as_ref().map_or(0, |h| h.sent())
    }
}

/// How many more requests than the least used healthy proxy one may have carried before a
/// slot leaves its kept-alive connection through it for another: a little unevenness saves
/// connects, none left a proxy that closes after every answer with 0.5% of the work.
const SHARE_SLACK: u64 = 32;

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
    protocol: Protocol,
    /// How many TCP connects may be in flight at once.
    pub pacer: Pacer,
    /// For tests: the connections to hand out instead of dialing, in order.
    #[cfg(test)]
    scripted: RefCell<std::collections::VecDeque<Result<Stream, Failure>>>,
}

impl Dialer {
    /// A dialer for `origin`; `refresh`: resolve its name again while the run lasts (the run's
    /// own origin; a redirect's other origins are resolved once).
    pub fn new(
        origin: &Origin,
        tls: &ClientTls,
        net: &NetSpec,
        connect_timeout: Duration,
        protocol: Protocol,
        refresh: bool,
        board: &ProxyBoard,
    ) -> Result<Rc<Self>, tls::TlsError> {
        let tls = match origin.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                let config = crate::tls::client_config(tls, protocol.alpn())?;
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
                    let via = Self::via(proxy, origin, net, refresh, protocol);
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
            protocol,
            pacer: Pacer::default(),
            #[cfg(test)]
            scripted: RefCell::default(),
        }))
    }

    /// How `proxy` carries connections to `origin`.
    fn via(
        proxy: &Proxy,
        origin: &Origin,
        net: &NetSpec,
        refresh: bool,
        protocol: Protocol,
    ) -> Via {
        let (host, port) = net.destination(&origin.host, origin.port);
        let https = origin.scheme == Scheme::Https;
        match proxy.kind {
            ProxyKind::Http if !https && protocol.forwards_through_proxy() => Via::Forward {
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
        let h2 = self.protocol == Protocol::Http2 && (!stream.is_tls() || stream.chose_h2());
        Ok((stream, h2, id))
    }

    /// For tests: the next connections dialed are `conns` (each a stream, or a failure to
    /// connect), in order, whatever their route.
    #[cfg(test)]
    pub fn script(&self, conns: impl IntoIterator<Item = Result<Stream, Failure>>) {
        self.scripted.borrow_mut().extend(conns);
    }

    /// For tests: scripted connections not dialed yet.
    #[cfg(test)]
    pub fn scripted_left(&self) -> usize {
        self.scripted.borrow().len()
    }

    async fn dial_once(&self, route: &Route) -> Result<Stream, Failure> {
        #[cfg(test)]
        if let Some(scripted) = self.scripted.borrow_mut().pop_front() {
            return scripted;
        }
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
        let fd = tcp.as_raw_fd();
        let tcp = Tcp::new(tcp, self.protocol == Protocol::Http1);
        let Some((connector, name)) = &self.tls else {
            return Ok(Stream::plain(tcp));
        };
        match connector.connect(name.clone(), tcp).await {
            Ok(stream) => {
                tls::handshake_completed();
                Ok(Stream::tls(stream, fd))
            }
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
            // Another try, if a SYN seems lost, on a socket of its own (none when no source
            // address binds: the tries under way then go on alone).
            let again = || {
                self.bound_socket_for(addr)
                    .ok()
                    .map(|s| connect_to(addr, s))
            };
            let connected = self.pacer.connect(connect_to(addr, socket), again).await;
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

/// Connects to `addr` from `socket` when given (bound to a `--local-addr`), else from a new one.
async fn connect_to(addr: SocketAddr, socket: Option<OwnedFd>) -> io::Result<TcpStream> {
    match socket {
        None => TcpStream::connect_addr(addr).await,
        Some(socket) => connect_bound(socket, addr).await,
    }
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
