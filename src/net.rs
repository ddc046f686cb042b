//! Where connections go and come from, as the user said it: `--local-addr` (source addresses,
//! CIDR blocks expanded), `--resolve HOST:PORT:ADDR[,ADDR…]` and `--connect-to
//! HOST:PORT:HOST2:PORT2` (curl's syntax and meaning), and the proxy (`--proxy`, or the
//! variables every HTTP tool reads, with `NO_PROXY`). Parsed and checked here, once, into a
//! [`NetSpec`] that travels to the workers; the workers' dialer applies it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::redact::redact_url;

/// Most source addresses a `--local-addr` list may expand to (a /16 of IPv4).
pub const MAX_LOCAL_ADDRS: usize = 1 << 16;

/// The run's connection routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Source addresses to spread connections over (empty: the kernel picks).
    pub local_addrs: Vec<IpAddr>,
    /// `--resolve`: names pinned to addresses.
    pub resolve: Vec<Pin>,
    /// `--connect-to`: names and ports whose connections go elsewhere.
    pub connect_to: Vec<ConnectTo>,
    /// The proxy for `http://` targets, and for `https://` ones.
    pub http_proxy: Option<Proxy>,
    pub https_proxy: Option<Proxy>,
    /// `--proxy-file`: proxies to spread connections over (for every target).
    pub proxy_pool: Vec<Proxy>,
    /// `NO_PROXY`: hosts reached directly (names match their subdomains too; `*`: all).
    pub no_proxy: Vec<String>,
    /// `--dns-refresh`: how often the target's name is resolved again while the run lasts.
    pub dns_refresh: std::time::Duration,
}

/// The protocol requests to the run's origin are sent in, chosen once from the flags
/// (`--http2`); each has its exchange in `worker/http/`. Other origins (a key's own host, a
/// redirect elsewhere) are always spoken to over HTTP/1.1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    Http1,
    /// `--http2`: offered by ALPN over TLS (the server may still choose HTTP/1.1), spoken with
    /// prior knowledge over plain TCP (h2c).
    Http2,
}

impl Protocol {
    /// The protocol `--http2` (or its absence) asks for.
    pub fn from_flags(http2: bool) -> Protocol {
        if http2 {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    }

    /// What a TLS handshake offers by ALPN: nothing for HTTP/1.1 (every server's default).
    pub fn alpn(self) -> &'static [&'static [u8]] {
        match self {
            Protocol::Http1 => &[],
            Protocol::Http2 => &[b"h2", b"http/1.1"],
        }
    }

    /// Many requests share a connection at once: a few connections whatever the concurrency.
    pub fn multiplexes(self) -> bool {
        self == Protocol::Http2
    }

    /// Plain-HTTP requests may go to an HTTP proxy in absolute form (HTTP/1.1 only; HTTP/2
    /// goes through a `CONNECT` tunnel).
    pub fn forwards_through_proxy(self) -> bool {
        self == Protocol::Http1
    }
}

/// How a proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyKind {
    /// `http://`: a forward proxy for plain HTTP, a `CONNECT` tunnel for the rest.
    Http,
    /// `socks5://`: this client resolves the target's name.
    Socks5,
    /// `socks5h://`: the proxy resolves it.
    Socks5h,
}

/// A proxy, credentials included (never shown: see its `Debug` and [`Proxy::shown`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxy {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Proxy {
    /// `http://[user:pass@]host[:port]`, `socks5://…` or `socks5h://…` (user and password
    /// percent-decoded; ports default to 1080 for SOCKS and 3128 for HTTP, squid's and
    /// tinyproxy's, where curl says 1080 for every scheme).
    pub fn parse(text: &str) -> Result<Proxy, NetError> {
        let bad = || NetError::Proxy(redact_url(text));
        let (scheme, rest) = text.split_once("://").unwrap_or(("http", text));
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "socks5" => ProxyKind::Socks5,
            "socks5h" => ProxyKind::Socks5h,
            _ => return Err(bad()),
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, pass) = match userinfo {
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                (Some(percent_decode(user)), Some(percent_decode(pass)))
            }
            None => (None, None),
        };
        let default_port = if kind == ProxyKind::Http { 3128 } else { 1080 };
        let (host, port) = split_host_port(hostport).ok_or_else(bad)?;
        let port = match port {
            Some(port) => port.parse::<u16>().map_err(|_| bad())?,
            None => default_port,
        };
        Ok(Proxy {
            kind,
            host: host.to_string(),
            port,
            user,
            pass,
        })
    }

    /// The proxy as it may be shown: scheme, host and port, credentials as `***`.
    pub fn shown(&self) -> String {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        };
        let auth = if self.user.is_some() { "***@" } else { "" };
        format!("{scheme}://{auth}{}:{}", self.host, self.port)
    }
}

/// `host[:port]` or `[v6]:port` split, the host unbracketed; `None` when it is neither (an
/// open bracket, a second colon, characters no host name has).
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        return match after {
            "" => Some((v6, None)),
            _ => Some((v6, Some(after.strip_prefix(':')?))),
        };
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    (!host.is_empty() && host.chars().all(name_like)).then_some((host, port))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut k = 0;
    while k < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[k] == b'%'
            && k + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[k + 1]), hex(bytes[k + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            k += 3;
        } else {
            out.push(bytes[k]);
            k += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Default for NetSpec {
    fn default() -> Self {
        NetSpec {
            local_addrs: Vec::new(),
            resolve: Vec::new(),
            connect_to: Vec::new(),
            http_proxy: None,
            https_proxy: None,
            proxy_pool: Vec::new(),
            no_proxy: Vec::new(),
            dns_refresh: DNS_REFRESH,
        }
    }
}

/// How often a name is resolved again by default: the system resolver does not say a
/// record's TTL.
pub const DNS_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

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
    #[error("--local-addr {0}: not an address of this machine ({1})")]
    LocalAddrAbsent(IpAddr, String),
    #[error("--local-addr: none is an {0} address, and the target is {1}")]
    NoSourceFamily(&'static str, String),
    #[error("--resolve {0}: expected HOST:PORT:ADDR[,ADDR...] (PORT may be *)")]
    Resolve(String),
    #[error("--connect-to {0}: expected HOST:PORT:HOST2:PORT2 (any part may be empty)")]
    ConnectTo(String),
    #[error("proxy {0}: expected http://, socks5:// or socks5h://[user:pass@]host[:port]")]
    Proxy(String),
    #[error("--proxy-file {0}: {1}")]
    ProxyFile(String, String),
    #[error("--proxy-file {0}: line {1}: {2}")]
    ProxyFileLine(String, usize, Box<NetError>),
    #[error("--proxy and --proxy-file: give one")]
    TwoProxySources,
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

    /// Checks that every `--local-addr` is an address of this machine, by binding it once
    /// (a UDP socket, port chosen by the kernel): an address that is not would fail every
    /// connection as if the target were down.
    pub fn check_local_addrs(self) -> Result<NetSpec, NetError> {
        for &addr in &self.local_addrs {
            std::net::UdpSocket::bind((addr, 0))
                .map_err(|e| NetError::LocalAddrAbsent(addr, e.to_string()))?;
        }
        Ok(self)
    }

    /// With `--local-addr`, a target reached directly at addresses known now (written in the
    /// URL, or pinned by `--resolve`) needs a source address of their family: `--local-addr
    /// ::1` for `http://127.0.0.1/` would fail every connection as if the target were down.
    pub fn check_source_family(&self, host: &str, port: u16, https: bool) -> Result<(), NetError> {
        if self.local_addrs.is_empty() || !self.proxies_for(host, https).is_empty() {
            return Ok(());
        }
        let (dest, port) = self.destination(host, port);
        let known: Vec<IpAddr> = match self.pinned(dest, port) {
            Some(addrs) => addrs.to_vec(),
            None => unbracket(dest).parse().into_iter().collect(),
        };
        let reachable = |addr: &IpAddr| {
            self.local_addrs
                .iter()
                .any(|local| local.is_ipv4() == addr.is_ipv4())
        };
        match known.first() {
            Some(first) if !known.iter().any(reachable) => {
                let family = if first.is_ipv4() { "IPv4" } else { "IPv6" };
                Err(NetError::NoSourceFamily(family, dest.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Sets the proxies: `flag` (`--proxy`, `RINGSCRAPE_PROXY`, the config file) for every
    /// target, else what `env` says as curl reads it: `http_proxy` for `http://`,
    /// `https_proxy` for `https://`, `all_proxy` for either (each in lower or upper case, lower
    /// first), and `no_proxy`.
    pub fn with_proxies(
        mut self,
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NetSpec, NetError> {
        let var = |name: &str| {
            env(name)
                .or_else(|| env(&name.to_ascii_uppercase()))
                .filter(|v| !v.trim().is_empty())
        };
        let parse = |text: Option<String>| text.as_deref().map(Proxy::parse).transpose();
        match flag.filter(|f| !f.trim().is_empty()) {
            Some(flag) => {
                let proxy = Proxy::parse(flag)?;
                self.http_proxy = Some(proxy.clone());
                self.https_proxy = Some(proxy);
            }
            None => {
                let all = var("all_proxy");
                self.http_proxy = parse(var("http_proxy").or(all.clone()))?;
                self.https_proxy = parse(var("https_proxy").or(all))?;
            }
        }
        self.no_proxy = var("no_proxy")
            .map(|list| {
                list.split(',')
                    .map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(self)
    }

    pub fn with_dns_refresh(mut self, every: std::time::Duration) -> NetSpec {
        self.dns_refresh = every;
        self
    }

    /// `--proxy-file`: one proxy URL a line (blank lines and `#` comments skipped).
    pub fn with_proxy_file(
        mut self,
        path: Option<&std::path::Path>,
        flag: Option<&str>,
    ) -> Result<NetSpec, NetError> {
        let Some(path) = path else {
            return Ok(self);
        };
        let shown = path.display().to_string();
        if flag.is_some_and(|f| !f.trim().is_empty()) {
            return Err(NetError::TwoProxySources);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| NetError::ProxyFile(shown.clone(), e.to_string()))?;
        for (k, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let proxy = Proxy::parse(line)
                .map_err(|e| NetError::ProxyFileLine(shown.clone(), k + 1, Box::new(e)))?;
            self.proxy_pool.push(proxy);
        }
        if self.proxy_pool.is_empty() {
            return Err(NetError::ProxyFile(shown, "no proxy in it".into()));
        }
        // The file replaces a proxy from the environment.
        self.http_proxy = None;
        self.https_proxy = None;
        Ok(self)
    }

    /// The proxies for a connection to `host` (`https`: an `https://` target): the
    /// `--proxy-file` pool, or the one proxy; none when `NO_PROXY` names the host.
    pub fn proxies_for(&self, host: &str, https: bool) -> Vec<&Proxy> {
        if self.bypasses(host) {
            return Vec::new();
        }
        if !self.proxy_pool.is_empty() {
            return self.proxy_pool.iter().collect();
        }
        let one = if https {
            self.https_proxy.as_ref()
        } else {
            self.http_proxy.as_ref()
        };
        one.into_iter().collect()
    }

    /// True when `NO_PROXY` names `host`: `*`, the host itself, a domain it is in, its IP
    /// address, or a CIDR block its IP address is in (as curl 7.86 and later read it: an
    /// address written in the URL, never one a name resolves to).
    fn bypasses(&self, host: &str) -> bool {
        let host = unbracket(host).to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        self.no_proxy.iter().any(|entry| {
            entry == "*"
                || *entry == host
                || host
                    .strip_suffix(entry.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.'))
                || ip.is_some_and(|ip| block(entry).is_some_and(|block| block.holds(ip)))
        })
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

    /// The addresses `--resolve` pins `host:port` to, if any: a pin of the name itself before
    /// one of every name (`*`), as curl picks them.
    pub fn pinned(&self, host: &str, port: u16) -> Option<&[IpAddr]> {
        let pin_for = |name: &str| {
            self.resolve.iter().find(|pin| {
                pin.host.eq_ignore_ascii_case(name) && pin.port.is_none_or(|p| p == port)
            })
        };
        pin_for(host)
            .or_else(|| pin_for(ANY_HOST))
            .map(|pin| pin.addrs.as_slice())
    }
}

/// A CIDR block: `127.0.0.0/29`, `2001:db8::/125`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    addr: IpAddr,
    /// Bits of the address that vary inside the block.
    host_bits: u32,
}

impl Block {
    fn base(self) -> u128 {
        bits_of(self.addr) & !self.mask()
    }

    fn mask(self) -> u128 {
        u128::MAX.checked_shr(128 - self.host_bits).unwrap_or(0)
    }

    fn holds(self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && bits_of(ip) & !self.mask() == self.base()
    }
}

fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `text` as a CIDR block, if it is one (an address, a slash, a prefix length that fits).
fn block(text: &str) -> Option<Block> {
    let (addr, bits) = text.split_once('/')?;
    let addr: IpAddr = unbracket(addr).parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    let width: u32 = if addr.is_ipv4() { 32 } else { 128 };
    Some(Block {
        addr,
        host_bits: width.checked_sub(bits)?,
    })
}

/// One address, or every address of a CIDR block (`127.0.0.0/29`: eight).
fn expand_cidr(text: &str) -> Result<Vec<IpAddr>, NetError> {
    let bad = || NetError::LocalAddr(text.into());
    if !text.contains('/') {
        return Ok(vec![text.parse().map_err(|_| bad())?]);
    }
    let block = block(text).ok_or_else(bad)?;
    if block.host_bits > 16 {
        return Err(NetError::TooManyLocalAddrs(text.into()));
    }
    let base = block.base();
    Ok((0..=block.mask())
        .map(|k| match block.addr {
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

/// `--resolve`'s host that stands for every name.
const ANY_HOST: &str = "*";

fn parse_pin(text: &str) -> Result<Pin, NetError> {
    let bad = || NetError::Resolve(text.into());
    let parts = fields(text);
    let [host, port, addrs] = parts[..] else {
        return Err(bad());
    };
    // curl's `+HOST` asks to resolve lazily, when first needed: this client resolves nothing
    // before a connection needs it, so it is HOST.
    let host = host.strip_prefix('+').unwrap_or(host);
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
        // `*` pins every name (after a pin of the name itself); `+HOST` is HOST.
        let wild = NetSpec::parse(
            &[],
            &strings(&["*:8080:10.0.0.9", "+named.test:8080:10.0.0.1"]),
            &[],
        )
        .expect("valid");
        let addr = |text: &str| -> IpAddr { text.parse().expect("ip") };
        assert_eq!(wild.pinned("any.test", 8080), Some(&[addr("10.0.0.9")][..]));
        assert_eq!(
            wild.pinned("named.test", 8080),
            Some(&[addr("10.0.0.1")][..])
        );
        assert_eq!(wild.pinned("any.test", 80), None);
        assert!(NetSpec::parse(&[], &strings(&["+:80:10.0.0.1"]), &[]).is_err());
        // A source address of the family the target is known to be at.
        let v6_only =
            NetSpec::parse(&strings(&["::1"]), &strings(&["*:80:10.0.0.1"]), &[]).expect("valid");
        assert!(v6_only.check_source_family("name.test", 80, false).is_err());
        assert!(v6_only.check_source_family("127.0.0.1", 81, false).is_err());
        assert!(v6_only.check_source_family("[::1]", 81, false).is_ok());
        assert!(
            v6_only
                .check_source_family("unpinned.test", 81, false)
                .is_ok(),
            "not known yet"
        );
        let proxied = v6_only
            .with_proxies(Some("http://[::1]:3128"), |_| None)
            .expect("valid");
        assert!(
            proxied.check_source_family("127.0.0.1", 80, false).is_ok(),
            "the proxy's"
        );
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

    /// The one proxy for `host`, if any.
    fn one<'a>(spec: &'a NetSpec, host: &str, https: bool) -> Option<&'a Proxy> {
        let proxies = spec.proxies_for(host, https);
        assert!(proxies.len() <= 1, "{proxies:?}");
        proxies.first().copied()
    }

    /// `env` answering from `vars`, as `std::env::var` would.
    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn proxies_come_from_the_environment_as_curl_reads_it() {
        let spec = NetSpec::default()
            .with_proxies(
                None,
                env(&[
                    ("HTTPS_PROXY", "socks5h://u%40x:p%3Aw@proxy.test"),
                    ("http_proxy", "proxy.test:8080"),
                    (
                        "NO_PROXY",
                        "internal.test, .corp.test,10.1.2.3,192.168.8.0/22,[fd00::]/16",
                    ),
                ]),
            )
            .expect("valid");
        let https = one(&spec, "api.test", true).expect("https proxy");
        assert_eq!(
            (
                https.kind,
                https.port,
                https.user.as_deref(),
                https.pass.as_deref()
            ),
            (ProxyKind::Socks5h, 1080, Some("u@x"), Some("p:w"))
        );
        assert_eq!(https.shown(), "socks5h://***@proxy.test:1080");
        assert!(!format!("{https:?}").contains("p:w"));
        let http = one(&spec, "api.test", false).expect("http proxy");
        assert_eq!((http.kind, http.port), (ProxyKind::Http, 8080));
        for direct in [
            "internal.test",
            "a.internal.test",
            "corp.test",
            "x.corp.test",
            "10.1.2.3",
            "192.168.8.1",
            "192.168.11.255",
            "[fd00::1]",
        ] {
            assert!(one(&spec, direct, true).is_none(), "{direct}");
        }
        for proxied in [
            "notinternal.test",
            "10.1.2.4",
            "192.168.12.0",
            "192.168.7.255",
            "[fd01::1]",
        ] {
            assert!(one(&spec, proxied, true).is_some(), "{proxied}");
        }
    }

    #[test]
    fn the_proxy_flag_wins_over_the_environment_and_no_proxy_star_bypasses_all() {
        // The flag wins over the environment, for both schemes.
        let flagged = NetSpec::default()
            .with_proxies(
                Some("socks5://127.0.0.1:9"),
                env(&[("ALL_PROXY", "http://x:1")]),
            )
            .expect("valid");
        assert_eq!(one(&flagged, "a", false).map(|p| p.port), Some(9));
        assert_eq!(one(&flagged, "a", true).map(|p| p.port), Some(9));
        let all = NetSpec::default()
            .with_proxies(None, env(&[("ALL_PROXY", "http://x:1"), ("no_proxy", "*")]))
            .expect("valid");
        assert!(one(&all, "a", false).is_none());
    }

    #[test]
    fn proxy_urls_take_default_ports_and_bracketed_v6_and_refuse_the_rest() {
        assert_eq!(
            Proxy::parse("ftp://u:secret@x:1")
                .expect_err("scheme")
                .to_string(),
            "proxy ftp://***@x:1: expected http://, socks5:// or socks5h://[user:pass@]host[:port]"
        );
        // No port: squid's 3128 for HTTP, 1080 for SOCKS; an IPv6 address in brackets.
        assert_eq!(Proxy::parse("http://p.test").map(|p| p.port), Ok(3128));
        assert_eq!(Proxy::parse("socks5://p.test").map(|p| p.port), Ok(1080));
        let v6 = Proxy::parse("http://[::1]:8080").expect("v6");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8080));
        assert_eq!(Proxy::parse("http://[::1]").map(|p| p.port), Ok(3128));
        for bad in [
            "http://u:p@[::1",
            "host:1:2",
            "http://[::1]x",
            "http://[nope]:1",
            "http://a b:1",
            "http://:8080",
            "http://h:",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
    }
}
