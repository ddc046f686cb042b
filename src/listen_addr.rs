//! The addresses ringscrape listens on (`run --metrics`, `run --dashboard`, `serve --listen`),
//! read one way everywhere: a port alone (on 127.0.0.1: a page or a target is for this machine
//! unless asked otherwise), `IP:PORT`, `[IPv6]:PORT`, or `NAME:PORT` for a name this machine
//! resolves (`localhost:8080`).

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};

/// What every listening flag says it takes, for its error message.
pub const EXPECTED: &str =
    "expected PORT, IP:PORT, [IPv6]:PORT or NAME:PORT, e.g. 8080, 127.0.0.1:8080 or localhost:8080";

/// `text` as an address to bind; `None` when it is none of the forms above.
pub fn parse(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    // `localhost` may resolve to ::1 first; the page and `serve` have always been on 127.0.0.1.
    if host.eq_ignore_ascii_case("localhost") {
        return Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return None;
    }
    (host, port).to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listening_form_is_read_the_same_way() {
        for (text, want) in [
            ("8080", "127.0.0.1:8080"),
            ("0", "127.0.0.1:0"),
            ("127.0.0.1:9184", "127.0.0.1:9184"),
            ("0.0.0.0:80", "0.0.0.0:80"),
            ("[::1]:8080", "[::1]:8080"),
            ("localhost:8080", "127.0.0.1:8080"),
            ("LocalHost:1", "127.0.0.1:1"),
        ] {
            assert_eq!(
                parse(text).map(|a| a.to_string()).as_deref(),
                Some(want),
                "{text}"
            );
        }
        for text in [
            "",
            "x",
            "localhost",
            "8080:",
            ":8080",
            "65536",
            "1.2.3.4:99999",
            "a b:80",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
