//! A connection's bytes: plain TCP or TLS over TCP, as the dialer made it. It keeps the socket's
//! descriptor from dial time, so an idle connection can be peeked at (did the server close it or
//! send something unasked?) without reaching through the TLS layer, and it says which protocol
//! the server chose by ALPN. HTTP/1.1 reads and writes it directly; HTTP/2 through a poll adapter.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::task::{Context, Waker};

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio_rustls::ClientTlsStream;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};

use crate::runtime::{self, Driver};

/// Plain TCP, or TLS over it (boxed: a rustls client session is over a kilobyte, and a run of
/// 16,384 plain connections would carry that size in each).
enum Bytes {
    Plain(Tcp),
    Tls(Box<ClientTlsStream<Tcp>>),
    #[cfg(test)]
    Scripted(super::scripted::Script),
}

/// One connection's byte stream.
pub struct Stream {
    bytes: Bytes,
    fd: RawFd,
}

impl Stream {
    pub fn plain(tcp: Tcp) -> Stream {
        let fd = tcp.stream.as_raw_fd();
        Stream {
            bytes: Bytes::Plain(tcp),
            fd,
        }
    }

    /// `fd`: the descriptor of the TCP socket under `tls`, taken before the handshake.
    pub fn tls(tls: ClientTlsStream<Tcp>, fd: RawFd) -> Stream {
        Stream {
            bytes: Bytes::Tls(Box::new(tls)),
            fd,
        }
    }

    /// The server chose `h2` by ALPN (false over plain TCP, where there is no choosing).
    pub fn chose_h2(&self) -> bool {
        match &self.bytes {
            Bytes::Tls(tls) => tls.alpn_protocol().as_deref() == Some(b"h2"),
            _ => false,
        }
    }

    /// For tests: a connection that plays back `script`.
    #[cfg(test)]
    pub fn scripted(script: super::scripted::Script) -> Stream {
        Stream {
            bytes: Bytes::Scripted(script),
            fd: -1,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.bytes, Bytes::Tls(_))
    }

    /// True when an idle connection is no longer fit for a request: the server sent something
    /// no request asked for (a stray answer, HAProxy's `408` before it closes) or closed it. One
    /// `recv(MSG_PEEK | MSG_DONTWAIT)`, as curl checks a connection before it reuses it — or, for
    /// plain TCP on the epoll driver, one read through the runtime ([`Self::read_would_block`]).
    pub fn spoiled_while_idle(&mut self) -> bool {
        match &mut self.bytes {
            #[cfg(test)]
            Bytes::Scripted(script) => script.closed_while_idle,
            Bytes::Plain(tcp) if runtime::current_driver() == Some(Driver::Epoll) => {
                !read_would_block(&mut tcp.stream)
            }
            _ => {
                let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
                let mut byte = [0u8; 1];
                !matches!(recv(self.fd, &mut byte, flags), Err(Errno::EAGAIN))
            }
        }
    }
}

/// A read of `tcp` that must not wait, on the epoll driver: true when it would block (nothing
/// came, the connection is fit). The read goes through the runtime rather than a peek of its
/// own because the runtime (monoio's legacy driver) keeps a readiness flag per socket that only
/// a read ending in `EAGAIN` clears: after a peek, the read that follows the next request finds
/// the flag still set from the last answer and is tried at once, before the answer is there —
/// an `EAGAIN` per request on top of the peek (3 `recvfrom` per request, wrk makes 1). Read this
/// way, the `EAGAIN` is the check, and the answer's read waits for epoll: 2.
fn read_would_block(tcp: &mut TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let read = std::pin::pin!(tcp.read(Vec::with_capacity(1)));
    // Dropped unfinished: on the epoll driver a read is a plain system call tried when the socket
    // is ready, so nothing is left in flight (on io_uring it would be, hence the peek there).
    read.poll(&mut cx).is_pending()
}

/// A TCP connection whose writes may go to the socket straight away: one `send` system call
/// past the runtime, which takes what the socket does not take at once. On io_uring a write
/// through the runtime is a submission whose completion wakes the task once more per request,
/// only to go on to the read: sent straight, a plain HTTP/1.1 request cost the worker 12% fewer
/// instructions (HTTPS 3%). HTTP/2 writes through the runtime: its frames, sent as they came,
/// made more and smaller writes (+2%). The epoll driver makes the same system call either way.
pub struct Tcp {
    stream: TcpStream,
    send_now: bool,
}

impl Tcp {
    /// `send_now`: write straight to the socket first (HTTP/1.1).
    pub fn new(stream: TcpStream, send_now: bool) -> Tcp {
        Tcp { stream, send_now }
    }
}

impl AsyncReadRent for Tcp {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.stream.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.stream.readv(buf)
    }
}

impl AsyncWriteRent for Tcp {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        if !self.send_now {
            return self.stream.write(buf).await;
        }
        // SAFETY: an `IoBuf` holds `bytes_init` readable bytes at `read_ptr` while it is owned
        // (here, until it is handed on or back).
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        match nix::sys::socket::send(self.stream.as_raw_fd(), bytes, flags) {
            Err(Errno::EAGAIN | Errno::EINTR) => self.stream.write(buf).await,
            sent => (sent.map_err(io::Error::from), buf),
        }
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.stream.writev(buf)
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        self.stream.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        self.stream.shutdown()
    }
}

impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.bytes {
            Bytes::Plain(s) => s.read(buf).await,
            Bytes::Tls(s) => s.read(buf).await,
            #[cfg(test)]
            Bytes::Scripted(s) => s.read(buf),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.bytes {
            Bytes::Plain(s) => s.readv(buf).await,
            Bytes::Tls(s) => s.readv(buf).await,
            #[cfg(test)]
            Bytes::Scripted(_) => (Err(io::ErrorKind::Unsupported.into()), buf),
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.bytes {
            Bytes::Plain(s) => s.write(buf).await,
            Bytes::Tls(s) => s.write(buf).await,
            #[cfg(test)]
            Bytes::Scripted(s) => s.write(buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.bytes {
            Bytes::Plain(s) => s.writev(buf).await,
            Bytes::Tls(s) => s.writev(buf).await,
            #[cfg(test)]
            Bytes::Scripted(_) => (Err(io::ErrorKind::Unsupported.into()), buf),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match &mut self.bytes {
            Bytes::Plain(s) => s.flush().await,
            Bytes::Tls(s) => s.flush().await,
            #[cfg(test)]
            Bytes::Scripted(_) => Ok(()),
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.bytes {
            Bytes::Plain(s) => s.shutdown().await,
            Bytes::Tls(s) => s.shutdown().await,
            #[cfg(test)]
            Bytes::Scripted(_) => Ok(()),
        }
    }
}
