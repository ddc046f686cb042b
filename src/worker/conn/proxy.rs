//! Through a proxy, on monoio's sockets (the crates that exist for this need tokio): the
//! SOCKS5 handshake (RFC 1928, with RFC 1929's user name and password), HTTP's `CONNECT`
//! tunnel, and the absolute-form request line of a plain-HTTP forward proxy. Each is small;
//! what fails here is the proxy's doing and becomes error kind `proxy`.

use std::io;
use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::net::Proxy;

/// A proxy's head larger than this is not an answer to `CONNECT`.
const MAX_CONNECT_HEAD: usize = 16 << 10;

/// Where a SOCKS5 proxy is to connect.
pub enum SocksTarget<'a> {
    /// An address this client resolved (`socks5://`).
    Addr(SocketAddr),
    /// A name the proxy resolves (`socks5h://`).
    Name(&'a str, u16),
}

/// Why a proxy did not carry the connection.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy: {0}")]
    Io(#[from] io::Error),
    #[error("proxy: {0}")]
    Refused(String),
}

/// `Proxy-Authorization: Basic …` for a proxy with credentials.
pub fn basic_auth(proxy: &Proxy) -> Option<String> {
    let user = proxy.user.as_deref()?;
    let pass = proxy.pass.as_deref().unwrap_or("");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    Some(format!("Basic {token}"))
}

/// Asks a SOCKS5 proxy to connect `stream` onward to `target`.
pub async fn socks5(
    stream: &mut TcpStream,
    proxy: &Proxy,
    target: SocksTarget<'_>,
) -> Result<(), ProxyError> {
    let with_password = proxy.user.is_some();
    // Greeting: version 5, the methods offered (0: none; 2: user name and password).
    let greeting = if with_password {
        vec![5, 2, 0, 2]
    } else {
        vec![5, 1, 0]
    };
    write(stream, greeting).await?;
    let chosen = read_exact(stream, 2).await?;
    match (chosen[0], chosen[1]) {
        (5, 0) => {}
        (5, 2) if with_password => authenticate(stream, proxy).await?,
        (5, 0xff) => return Err(refused("no acceptable authentication method")),
        _ => return Err(refused("not a SOCKS5 answer")),
    }
    let mut request = vec![5, 1, 0];
    let port = match target {
        SocksTarget::Addr(addr) => {
            match addr.ip() {
                IpAddr::V4(v4) => {
                    request.push(1);
                    request.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    request.push(4);
                    request.extend_from_slice(&v6.octets());
                }
            }
            addr.port()
        }
        SocksTarget::Name(name, port) => {
            let name = u8::try_from(name.len())
                .ok()
                .map(|len| (len, name))
                .ok_or_else(|| refused("host name longer than 255 bytes"))?;
            request.push(3);
            request.push(name.0);
            request.extend_from_slice(name.1.as_bytes());
            port
        }
    };
    request.extend_from_slice(&port.to_be_bytes());
    write(stream, request).await?;
    let reply = read_exact(stream, 4).await?;
    if reply[0] != 5 {
        return Err(refused("not a SOCKS5 answer"));
    }
    if reply[1] != 0 {
        return Err(refused(socks_reply(reply[1])));
    }
    // The address the proxy bound, which nobody here needs.
    let rest = match reply[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => usize::from(read_exact(stream, 1).await?[0]) + 2,
        _ => return Err(refused("not a SOCKS5 answer")),
    };
    read_exact(stream, rest).await?;
    Ok(())
}

async fn authenticate(stream: &mut TcpStream, proxy: &Proxy) -> Result<(), ProxyError> {
    let user = proxy.user.as_deref().unwrap_or("").as_bytes();
    let pass = proxy.pass.as_deref().unwrap_or("").as_bytes();
    let (Ok(user_len), Ok(pass_len)) = (u8::try_from(user.len()), u8::try_from(pass.len())) else {
        return Err(refused("user name or password longer than 255 bytes"));
    };
    let mut message = vec![1, user_len];
    message.extend_from_slice(user);
    message.push(pass_len);
    message.extend_from_slice(pass);
    write(stream, message).await?;
    match read_exact(stream, 2).await?[1] {
        0 => Ok(()),
        _ => Err(refused("user name and password refused")),
    }
}

fn socks_reply(code: u8) -> String {
    let text = match code {
        1 => "general failure",
        2 => "connection not allowed by its rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused by the target",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown failure",
    };
    format!("SOCKS5 proxy: {text}")
}

/// Opens a `CONNECT` tunnel to `authority` (`host:port`) through an HTTP proxy.
pub async fn http_connect(
    stream: &mut TcpStream,
    authority: &str,
    auth: Option<&str>,
) -> Result<(), ProxyError> {
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = auth {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    write(stream, request.into_bytes()).await?;
    let head = read_connect_head(stream).await?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&head) {
        Ok(httparse::Status::Complete(_)) => match response.code {
            Some(code) if (200..300).contains(&code) => Ok(()),
            Some(code) => Err(refused(format!(
                "CONNECT answered {code} {}",
                response.reason.unwrap_or("")
            ))),
            None => Err(refused("CONNECT answer without a status")),
        },
        _ => Err(refused("CONNECT answer is not HTTP")),
    }
}

/// Reads the head of the answer to `CONNECT`, and nothing after it: what follows a `200` is
/// the tunnel's (an h2c server's SETTINGS can come in the same packet), what follows a `407`
/// its body. The socket is peeked at, and only the head taken from it.
async fn read_connect_head(stream: &mut TcpStream) -> Result<Vec<u8>, ProxyError> {
    let mut peeked = vec![0u8; MAX_CONNECT_HEAD];
    let mut seen = 0;
    loop {
        stream.readable(false).await?;
        let n = match peek(stream, &mut peeked) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(refused("closed the connection after CONNECT"));
        }
        if let Some(end) = head_end(&peeked[..n]) {
            let head = read_exact(stream, end).await?;
            return Ok(head);
        }
        if n >= MAX_CONNECT_HEAD {
            return Err(refused("CONNECT answer head too large"));
        }
        if n == seen {
            // Part of a head, and no more yet: the socket stays readable while bytes sit in
            // it, so wait a little instead of peeking again at once.
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        seen = n;
    }
}

/// The bytes waiting on `stream`, left there.
fn peek(stream: &TcpStream, into: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
    nix::sys::socket::recv(stream.as_raw_fd(), into, flags).map_err(io::Error::from)
}

/// Where a head ends in `bytes`: after its first empty line, whose line ends may be CR LF or a
/// bare LF (RFC 9112 §2.2, as plain answers are read).
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().find_map(|(at, &b)| {
        if b != b'\n' {
            return None;
        }
        match &bytes[at + 1..] {
            [b'\n', ..] => Some(at + 2),
            [b'\r', b'\n', ..] => Some(at + 3),
            _ => None,
        }
    })
}

/// Turns an HTTP/1.1 request written for the origin (`GET /path HTTP/1.1`) into one for a
/// forward proxy: the target in absolute form (`GET http://host:port/path HTTP/1.1`) and the
/// proxy's credentials after the request line.
pub fn to_absolute_form(request: &mut Vec<u8>, origin_prefix: &[u8], auth: Option<&[u8]>) {
    let Some(space) = request.iter().position(|&b| b == b' ') else {
        return;
    };
    request.splice(space + 1..space + 1, origin_prefix.iter().copied());
    if let Some(auth) = auth
        && let Some(line_end) = request.windows(2).position(|w| w == b"\r\n")
    {
        let mut line = b"proxy-authorization: ".to_vec();
        line.extend_from_slice(auth);
        line.extend_from_slice(b"\r\n");
        request.splice(line_end + 2..line_end + 2, line);
    }
}

fn refused(why: impl Into<String>) -> ProxyError {
    ProxyError::Refused(why.into())
}

async fn write(stream: &mut TcpStream, bytes: Vec<u8>) -> io::Result<()> {
    stream.write_all(bytes).await.0.map(|_| ())
}

async fn read_exact(stream: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let (read, buf) = stream.read_exact(vec![0u8; n]).await;
    read.map(|_| buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_first_empty_line_whatever_its_line_ends() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nSETTINGS"), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\n"), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\nVia: p\r\n\r\nx"), Some(26));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nVia: p\r\n"), None);
    }

    #[test]
    fn a_forward_proxy_gets_the_absolute_form_and_the_credentials() {
        let mut request = b"GET /a?id=1 HTTP/1.1\r\nhost: t.test\r\n\r\n".to_vec();
        to_absolute_form(&mut request, b"http://t.test:8080", Some(b"Basic dTpw"));
        assert_eq!(
            request,
            b"GET http://t.test:8080/a?id=1 HTTP/1.1\r\nproxy-authorization: Basic dTpw\r\n\
              host: t.test\r\n\r\n"
        );
        let proxy = Proxy::parse("http://u:p@127.0.0.1:3128").expect("valid");
        assert_eq!(basic_auth(&proxy).as_deref(), Some("Basic dTpw"));
    }
}
