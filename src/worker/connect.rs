//! Opening connections to the run's origin: resolve once, connect with the connect deadline,
//! and for `https://` do the TLS handshake with the run's trust settings (offering `h2` by ALPN
//! with `--http2`). A failure before the TCP connection is up is `connect`; a failed handshake
//! or an untrusted certificate is `tls`.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use monoio_http_client::unified::UnifiedTransportConnection;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};
use rustls::pki_types::ServerName;

use super::Failure;
use super::pace::{Pacer, SLOW_CONNECT};
use crate::model::ErrorKind;
use crate::request::{Origin, Scheme};
use crate::tls::{self, Trust};

/// Opens connections for every slot of a worker (all on one thread).
pub struct Dialer {
    origin: Origin,
    /// Resolved at the first dial and kept; resolution is blocking, so it is done once.
    addrs: RefCell<Vec<SocketAddr>>,
    tls: Option<(monoio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    /// `--http2`: offer `h2` over TLS; over plain TCP, speak it with prior knowledge.
    http2: bool,
    /// How many TCP connects may be in flight at once.
    pub pacer: Pacer,
}

impl Dialer {
    pub fn new(
        origin: Origin,
        trust: &Trust,
        connect_timeout: Duration,
        http2: bool,
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
        Ok(Rc::new(Self {
            origin,
            addrs: RefCell::new(Vec::new()),
            tls,
            connect_timeout,
            http2,
            pacer: Pacer::default(),
        }))
    }

    /// A new connection, within the connect deadline.
    pub async fn dial(&self) -> Result<UnifiedTransportConnection, Failure> {
        self.dial_choosing().await.map(|(stream, _)| stream)
    }

    /// A new connection, and whether to speak HTTP/2 on it: with `--http2`, when the server
    /// chose `h2` by ALPN, or always over plain TCP (h2c with prior knowledge).
    pub async fn dial_choosing(&self) -> Result<(UnifiedTransportConnection, bool), Failure> {
        let stream = self.dial_once().await?;
        let h2 = self.http2
            && match &stream {
                UnifiedTransportConnection::TcpTls(tls) => {
                    tls.alpn_protocol().as_deref() == Some(b"h2")
                }
                _ => true,
            };
        Ok((stream, h2))
    }

    async fn dial_once(&self) -> Result<UnifiedTransportConnection, Failure> {
        match monoio::time::timeout(self.connect_timeout, self.dial_now()).await {
            Ok(result) => result,
            Err(_) => Err(connect_failure(&io::Error::new(
                io::ErrorKind::TimedOut,
                "connect deadline passed",
            ))),
        }
    }

    async fn dial_now(&self) -> Result<UnifiedTransportConnection, Failure> {
        let tcp = self.connect_tcp().await.map_err(|e| connect_failure(&e))?;
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = &self.tls else {
            return Ok(UnifiedTransportConnection::Tcp(tcp));
        };
        match connector.connect(name.clone(), tcp).await {
            Ok(stream) => Ok(UnifiedTransportConnection::TcpTls(stream)),
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

    async fn connect_tcp(&self) -> io::Result<TcpStream> {
        if self.addrs.borrow().is_empty() {
            let found: Vec<SocketAddr> = (self.origin.host.as_str(), self.origin.port)
                .to_socket_addrs()?
                .collect();
            *self.addrs.borrow_mut() = found;
        }
        let addrs = self.addrs.borrow().clone();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
        for addr in addrs {
            let permit = self.pacer.enter().await;
            let started = Instant::now();
            let connected = TcpStream::connect_addr(addr).await;
            permit.done(connected.is_ok() && started.elapsed() < SLOW_CONNECT);
            match connected {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// True when an idle connection is no longer fit for a request: the server sent something no
/// request asked for (a stray answer, HAProxy's `408` before it closes) or closed it. One
/// `recv(MSG_PEEK | MSG_DONTWAIT)`, as curl checks a connection before it reuses it.
pub fn spoiled_while_idle(conn: &UnifiedTransportConnection) -> bool {
    use std::os::fd::AsRawFd;
    let fd = match conn {
        UnifiedTransportConnection::Tcp(tcp) => tcp.as_raw_fd(),
        UnifiedTransportConnection::TcpTls(tls) => tls.get_ref().as_raw_fd(),
        UnifiedTransportConnection::Unix(unix) => unix.as_raw_fd(),
        UnifiedTransportConnection::UnixTls(tls) => tls.get_ref().as_raw_fd(),
    };
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    let mut byte = [0u8; 1];
    !matches!(recv(fd, &mut byte, flags), Err(Errno::EAGAIN))
}

fn connect_failure(error: &io::Error) -> Failure {
    Failure {
        kind: ErrorKind::Connect,
        answered: false,
        detail: error.to_string(),
    }
}
