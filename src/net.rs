//! Where connections go and come from, as the user said it: `--local-addr` (source addresses,
//! CIDR blocks expanded), `--resolve HOST:PORT:ADDR[,ADDR…]` and `--connect-to
//! HOST:PORT:HOST2:PORT2` (curl's syntax and meaning). Parsed and checked here, once, into a
//! [`NetSpec`] that travels to the workers; the workers' dialer applies it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Most source addresses a `--local-addr` list may expand to (a /16 of IPv4).
pub const MAX_LOCAL_ADDRS: usize = 1 << 16;

/// The run's connection routing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Source addresses to spread connections over (empty: the kernel picks).
    pub local_addrs: Vec<IpAddr>,
    /// `--resolve`: names pinned to addresses.
    pub resolve: Vec<Pin>,
    /// `--connect-to`: names and ports whose connections go elsewhere.
    pub connect_to: Vec<ConnectTo>,
}

/// `--resolve HOST:PORT:ADDR[,ADDR…]`: HOST at PORT (any port: `None`, written `*`) is these
/// addresses, DNS unasked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub host: String,
    pub port: Option<u16>,
    pub addrs: Vec<IpAddr>,
}

/// `--connect-to HOST:PORT:HOST2:PORT2`: connections for HOST:PORT go to HOST2:PORT2 while the
/// Host header and TLS name stay HOST. An empty HOST or PORT matches any; an empty HOST2 or
/// PORT2 keeps the original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectTo {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub to_host: Option<String>,
    pub to_port: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    #[error("--local-addr {0}: not an IP address or CIDR block (e.g. 127.0.0.2 or 127.0.0.0/29)")]
    LocalAddr(String),
    #[error("--local-addr {0}: more than {MAX_LOCAL_ADDRS} addresses")]
    TooManyLocalAddrs(String),
    #[error("--resolve {0}: expected HOST:PORT:ADDR[,ADDR...] (PORT may be *)")]
    Resolve(String),
    #[error("--connect-to {0}: expected HOST:PORT:HOST2:PORT2 (any part may be empty)")]
    ConnectTo(String),
}

impl NetSpec {
    pub fn parse(
        local_addrs: &[String],
        resolve: &[String],
        connect_to: &[String],
    ) -> Result<NetSpec, NetError> {
        let mut spec = NetSpec::default();
        for item in local_addrs.iter().flat_map(|list| list.split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            spec.local_addrs.extend(expand_cidr(item)?);
            if spec.local_addrs.len() > MAX_LOCAL_ADDRS {
                return Err(NetError::TooManyLocalAddrs(item.into()));
            }
        }
        for text in resolve {
            spec.resolve.push(parse_pin(text)?);
        }
        for text in connect_to {
            spec.connect_to.push(parse_connect_to(text)?);
        }
        Ok(spec)
    }

    /// Where a connection for `host:port` goes: `--connect-to`'s first match, else itself.
    pub fn destination<'a>(&'a self, host: &'a str, port: u16) -> (&'a str, u16) {
        let rule = self.connect_to.iter().find(|rule| {
            rule.host
                .as_deref()
                .is_none_or(|h| h.eq_ignore_ascii_case(host))
                && rule.port.is_none_or(|p| p == port)
        });
        match rule {
            Some(rule) => (
                rule.to_host.as_deref().unwrap_or(host),
                rule.to_port.unwrap_or(port),
            ),
            None => (host, port),
        }
    }

    /// The addresses `--resolve` pins `host:port` to, if any.
    pub fn pinned(&self, host: &str, port: u16) -> Option<&[IpAddr]> {
        self.resolve
            .iter()
            .find(|pin| pin.host.eq_ignore_ascii_case(host) && pin.port.is_none_or(|p| p == port))
            .map(|pin| pin.addrs.as_slice())
    }
}

/// One address, or every address of a CIDR block (`127.0.0.0/29`: eight).
fn expand_cidr(text: &str) -> Result<Vec<IpAddr>, NetError> {
    let bad = || NetError::LocalAddr(text.into());
    let Some((addr, bits)) = text.split_once('/') else {
        return Ok(vec![text.parse().map_err(|_| bad())?]);
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let bits: u32 = bits.parse().map_err(|_| bad())?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    if bits > width {
        return Err(bad());
    }
    let host_bits = width - bits;
    if host_bits > 16 {
        return Err(NetError::TooManyLocalAddrs(text.into()));
    }
    let count = 1u128 << host_bits;
    let base = match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    } & !(count - 1);
    Ok((0..count)
        .map(|k| match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from((base + k) as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(base + k)),
        })
        .collect())
}

/// Splits `text` at its colons, keeping `[…]` (an IPv6 address) whole.
fn fields(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut depth) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

fn unbracket(text: &str) -> &str {
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text)
}

fn parse_pin(text: &str) -> Result<Pin, NetError> {
    let bad = || NetError::Resolve(text.into());
    let parts = fields(text);
    let [host, port, addrs] = parts[..] else {
        return Err(bad());
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        "*" => None,
        port => Some(port.parse().map_err(|_| bad())?),
    };
    let addrs = addrs
        .split(',')
        .map(|a| unbracket(a.trim()).parse().map_err(|_| bad()))
        .collect::<Result<Vec<IpAddr>, _>>()?;
    Ok(Pin {
        host: unbracket(host).to_ascii_lowercase(),
        port,
        addrs,
    })
}

fn parse_connect_to(text: &str) -> Result<ConnectTo, NetError> {
    let bad = || NetError::ConnectTo(text.into());
    let parts = fields(text);
    let [host, port, to_host, to_port] = parts[..] else {
        return Err(bad());
    };
    let port_of = |p: &str| -> Result<Option<u16>, NetError> {
        if p.is_empty() {
            Ok(None)
        } else {
            p.parse().map(Some).map_err(|_| bad())
        }
    };
    let host_of = |h: &str| (!h.is_empty()).then(|| unbracket(h).to_ascii_lowercase());
    Ok(ConnectTo {
        host: host_of(host),
        port: port_of(port)?,
        to_host: host_of(to_host),
        to_port: port_of(to_port)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn local_addresses_take_lists_and_cidr_blocks() {
        let spec =
            NetSpec::parse(&strings(&["127.0.0.2,127.0.0.8/30", "::1"]), &[], &[]).expect("valid");
        let shown: Vec<String> = spec.local_addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.2",
                "127.0.0.8",
                "127.0.0.9",
                "127.0.0.10",
                "127.0.0.11",
                "::1"
            ]
        );
        let v6 = NetSpec::parse(&strings(&["2001:db8::/125"]), &[], &[]).expect("valid");
        assert_eq!(v6.local_addrs.len(), 8);
        for bad in ["127.0.0.1/33", "localhost", "10.0.0.0/8", "1.2.3.4/x"] {
            assert!(NetSpec::parse(&strings(&[bad]), &[], &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_and_connect_to_read_as_curl_writes_them() {
        let spec = NetSpec::parse(
            &[],
            &strings(&["example.test:443:127.0.0.1,[::1]", "Other.test:*:10.0.0.1"]),
            &strings(&["a.test:80:127.0.0.1:8080", "c.test::[::1]:", "::b.test:"]),
        )
        .expect("valid");
        let localhost: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(
            spec.pinned("EXAMPLE.test", 443),
            Some(&[localhost, "::1".parse().expect("ip")][..])
        );
        assert_eq!(spec.pinned("example.test", 80), None);
        assert_eq!(spec.pinned("other.test", 1234).map(<[_]>::len), Some(1));
        assert_eq!(spec.destination("a.test", 80), ("127.0.0.1", 8080));
        assert_eq!(spec.destination("c.test", 5), ("::1", 5));
        // The last rule takes any host and port: only the host changes.
        assert_eq!(spec.destination("a.test", 81), ("b.test", 81));
        for bad in [
            "example.test:443",
            "x:notaport:1.2.3.4",
            "x:80:not-an-ip",
            ":80:1.2.3.4",
        ] {
            assert!(NetSpec::parse(&[], &strings(&[bad]), &[]).is_err(), "{bad}");
        }
        assert!(NetSpec::parse(&[], &[], &strings(&["a:80:b"])).is_err());
    }
}
