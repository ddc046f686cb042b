//! URLs as ringscrape fetches them: the [`Origin`] of an `http://` or `https://` URL, and a
//! reference (a redirect's `Location`, a next page's URL) resolved against the request it came
//! from as RFC 3986 §5.2 says. A reference has a scheme only when scheme characters come before
//! its first `:` (§3.1), so `/echo?return=https://x` is a path, while `mailto:x` is no path at
//! all: it is of a scheme ringscrape does not fetch. Dot segments are removed (§5.2.4).

/// The schemes ringscrape fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Where every request of a run goes: one origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written in the URL: the Host header and HTTP/2's `:authority`.
    pub authority: String,
}

/// Why a URL is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Of another scheme (`mailto:`, `ftp:`, `file:`), or of none.
    #[error("not an http:// or https:// URL")]
    NotHttp,
    /// An http(s) URL that cannot be fetched as written (a port above 65535, a malformed
    /// host, `user:password@`, a path that is not a valid request target).
    #[error("{0}")]
    Invalid(String),
}

/// Length of `scheme://authority` at the start of `url` (a `://` after the first `/`, `?` or
/// `#` is in the path or query, not after a scheme: `{url}?next=http://x` starts with `{url}`).
pub fn origin_len(url: &str) -> usize {
    let after_scheme = url
        .find("://")
        .filter(|&at| !url[..at].contains(['/', '?', '#']))
        .map_or(0, |at| at + 3);
    after_scheme
        + url[after_scheme..]
            .find(['/', '?', '#'])
            .unwrap_or(url.len() - after_scheme)
}

/// The origin of the absolute `url`.
pub fn parse_origin(url: &str) -> Result<Origin, UrlError> {
    if !url.contains("://") {
        return Err(UrlError::NotHttp);
    }
    let origin = &url[..origin_len(url)];
    let uri: http::Uri = origin
        .parse()
        .map_err(|e: http::uri::InvalidUri| UrlError::Invalid(e.to_string()))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err(UrlError::NotHttp),
    };
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or(UrlError::NotHttp)?;
    if authority.as_str().contains('@') {
        return Err(UrlError::Invalid(
            "user:password@ is not supported; send an Authorization header with -H".into(),
        ));
    }
    // `http` reads a port that is not a `u16` as none, which would be the scheme's default:
    // `:70000` must not become port 80 (curl refuses it too).
    let text = authority.as_str();
    let port_text = text
        .rfind(':')
        .filter(|&at| !text[at..].contains(']'))
        .map(|at| &text[at + 1..])
        .filter(|port| !port.is_empty());
    let port = match port_text {
        None => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        Some(port) => port.parse::<u16>().map_err(|_| {
            UrlError::Invalid(format!("port {port} is not a port number (0 to 65535)"))
        })?,
    };
    // An IPv6 literal comes bracketed; connecting wants it bare.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    Ok(Origin {
        scheme,
        host: host.to_string(),
        port,
        authority: authority.as_str().to_string(),
    })
}

/// Why an item's whole URL cannot be fetched (a `request` row's detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadUrl {
    #[error("the URL is empty")]
    Empty,
    #[error("a space in the URL (write it %20)")]
    Space,
    #[error("a control byte or white space (0x{0:02x}) in the URL")]
    Control(u8),
    #[error("the URL is not UTF-8")]
    NotUtf8,
    #[error("no scheme: a URL starts with http:// or https://")]
    NoScheme,
    #[error("a {0}: URL; only http:// and https:// are fetched")]
    OtherScheme(String),
    #[error("no host in the URL")]
    NoHost,
    #[error("a host name that is not ASCII: write it in punycode (xn--…)")]
    NotAscii,
    /// A bad port, `user:password@`, a malformed authority or request target.
    #[error("{0}")]
    Invalid(String),
}

/// An item's whole URL (`-u '{url}'`): its origin and request target (the fragment left out,
/// non-ASCII bytes of the path and query percent-encoded as browsers do, nothing else
/// re-encoded), or why it cannot be fetched.
pub fn split_url(url: &[u8]) -> Result<(Origin, Vec<u8>), BadUrl> {
    if url.is_empty() {
        return Err(BadUrl::Empty);
    }
    if let Some(&b) = url
        .iter()
        .find(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(if b == b' ' {
            BadUrl::Space
        } else {
            BadUrl::Control(b)
        });
    }
    let text = std::str::from_utf8(url).map_err(|_| BadUrl::NotUtf8)?;
    let scheme = scheme_of(text).ok_or(BadUrl::NoScheme)?;
    let lower = scheme.to_ascii_lowercase();
    if lower != "http" && lower != "https" {
        return Err(BadUrl::OtherScheme(lower));
    }
    let rest = text[scheme.len() + 1..]
        .strip_prefix("//")
        .ok_or(BadUrl::NoHost)?;
    let url = format!("{lower}://{rest}");
    let end = origin_len(&url);
    let authority = &url[lower.len() + 3..end];
    if authority.is_empty() || authority.starts_with(':') {
        return Err(BadUrl::NoHost);
    }
    if !authority.is_ascii() {
        return Err(BadUrl::NotAscii);
    }
    let origin = parse_origin(&url).map_err(|e| match e {
        UrlError::NotHttp => BadUrl::NoHost,
        UrlError::Invalid(why) => BadUrl::Invalid(why),
    })?;
    let rest = url[end..].split('#').next().unwrap_or_default();
    let mut target = Vec::with_capacity(rest.len() + 1);
    if !rest.starts_with('/') {
        target.push(b'/');
    }
    for &b in rest.as_bytes() {
        match b {
            0x80.. => crate::template::percent_encode(&[b], &mut target),
            b => target.push(b),
        }
    }
    http::uri::PathAndQuery::try_from(target.as_slice())
        .map_err(|e| BadUrl::Invalid(format!("not a valid path and query: {e}")))?;
    Ok((origin, target))
}

/// Why a reference is not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfollowed {
    /// Of a scheme ringscrape does not fetch (lower-cased): a redirect's 3xx row stays, as
    /// curl keeps it.
    OtherScheme(String),
    /// An http(s) URL that cannot be fetched as written: an error row.
    Invalid(String),
}

impl std::fmt::Display for Unfollowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfollowed::OtherScheme(scheme) => write!(f, "a {scheme}: URL is not fetched"),
            Unfollowed::Invalid(why) => f.write_str(why),
        }
    }
}

/// `reference` resolved against `target` (path and query) on `origin` (RFC 3986 §5.2.2, the
/// fragment left out: it is never sent).
pub fn resolve(
    origin: &Origin,
    target: &[u8],
    reference: &str,
) -> Result<(Origin, Vec<u8>), Unfollowed> {
    let reference = reference.split('#').next().unwrap_or_default();
    if let Some(scheme) = scheme_of(reference) {
        let scheme = scheme.to_ascii_lowercase();
        let rest = &reference[scheme.len() + 1..];
        if scheme != "http" && scheme != "https" {
            return Err(Unfollowed::OtherScheme(scheme));
        }
        if !rest.starts_with("//") {
            return Err(Unfollowed::Invalid(format!("{scheme}: URL without a host")));
        }
        return absolute(&format!("{scheme}:{rest}"));
    }
    if let Some(rest) = reference.strip_prefix("//") {
        return absolute(&format!("{}://{rest}", origin.scheme.as_str()));
    }
    let base = std::str::from_utf8(target)
        .map_err(|_| Unfollowed::Invalid("the page's own URL is not UTF-8".into()))?;
    let (base_path, base_query) = split_query(base);
    let (path, query) = split_query(reference);
    let (path, query) = if path.is_empty() {
        (base_path.to_string(), query.or(base_query))
    } else if path.starts_with('/') {
        (remove_dot_segments(path), query)
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |at| at + 1)];
        (remove_dot_segments(&format!("{dir}{path}")), query)
    };
    Ok((origin.clone(), request_target(&path, query)?))
}

/// An absolute http(s) URL: its origin and request target.
fn absolute(url: &str) -> Result<(Origin, Vec<u8>), Unfollowed> {
    let origin = parse_origin(url).map_err(|e| match e {
        UrlError::NotHttp => Unfollowed::Invalid("an http(s) URL without a host".into()),
        UrlError::Invalid(why) => Unfollowed::Invalid(why),
    })?;
    let (path, query) = split_query(&url[origin_len(url)..]);
    let path = match path {
        "" => "/".to_string(),
        path => remove_dot_segments(path),
    };
    Ok((origin, request_target(&path, query)?))
}

/// `path?query` as a request target, checked as one.
fn request_target(path: &str, query: Option<&str>) -> Result<Vec<u8>, Unfollowed> {
    let joined = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    http::uri::PathAndQuery::try_from(joined)
        .map(|target| target.as_str().as_bytes().to_vec())
        .map_err(|e| Unfollowed::Invalid(format!("not a valid request target: {e}")))
}

/// The scheme of `reference`, when it has one (RFC 3986 §3.1: a letter, then letters, digits,
/// `+`, `-` or `.`, up to the first `:`, which comes before any `/`, `?` or `#`).
fn scheme_of(reference: &str) -> Option<&str> {
    let end = reference.find([':', '/', '?', '#'])?;
    let scheme = &reference[..end];
    let well_formed = reference[end..].starts_with(':')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    well_formed.then_some(scheme)
}

fn split_query(text: &str) -> (&str, Option<&str>) {
    match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    }
}

/// RFC 3986 §5.2.4 for an absolute path: `.` and `..` segments resolved, never above the root.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (at, segment) in segments.iter().enumerate() {
        let last = at + 1 == segments.len();
        match *segment {
            "." | ".." => {
                // The leading empty segment is the root: `..` goes no higher.
                if *segment == ".." && out.len() > 1 {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            segment => out.push(segment),
        }
    }
    let path = out.join("/");
    match path.starts_with('/') {
        true => path,
        false => format!("/{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Origin {
        parse_origin("http://h:8/").expect("valid")
    }

    fn to(reference: &str) -> Result<String, Unfollowed> {
        resolve(&base(), b"/a/b?id=1", reference).map(|(origin, target)| {
            format!(
                "{}://{}{}",
                origin.scheme.as_str(),
                origin.authority,
                String::from_utf8_lossy(&target)
            )
        })
    }

    #[test]
    fn references_resolve_as_rfc_3986_says() {
        let ok = |reference: &str, expected: &str| {
            assert_eq!(to(reference), Ok(expected.to_string()), "{reference}");
        };
        ok("c?x=1", "http://h:8/a/c?x=1");
        ok("/root", "http://h:8/root");
        ok("?q=2", "http://h:8/a/b?q=2");
        ok("", "http://h:8/a/b?id=1");
        ok("#frag", "http://h:8/a/b?id=1");
        ok("../x", "http://h:8/x");
        ok("../../../x", "http://h:8/x");
        ok("./c/./d/../e", "http://h:8/a/c/e");
        ok("/a/b/..", "http://h:8/a/");
        ok("//cdn.example/p", "http://cdn.example/p");
        ok("HTTPS://Other.example", "https://Other.example/");
        ok("https://o.example/x/../y?z#f", "https://o.example/y?z");
        // A `://` in the query does not make a reference absolute.
        ok(
            "/echo/0?return=https://example.com/x",
            "http://h:8/echo/0?return=https://example.com/x",
        );
        ok("json?next=http://x", "http://h:8/a/json?next=http://x");
        ok("./mailto:x", "http://h:8/a/mailto:x");
    }

    #[test]
    fn other_schemes_are_not_followed_and_broken_urls_are_said() {
        let other = |reference: &str, scheme: &str| {
            assert_eq!(
                to(reference),
                Err(Unfollowed::OtherScheme(scheme.into())),
                "{reference}"
            );
        };
        other("mailto:admin@example.com", "mailto");
        other("javascript:alert(1)", "javascript");
        other("ftp://h/x", "ftp");
        other("file:///etc/passwd", "file");
        other("Tel:+1", "tel");
        for broken in [
            "http:/x",
            "http://h:70000/x",
            "http://h:99999999999/",
            "https://user:pw@h/x",
            "http://[::1/x",
            "http://",
        ] {
            assert!(
                matches!(to(broken), Err(Unfollowed::Invalid(_))),
                "{broken}: {:?}",
                to(broken)
            );
        }
    }

    #[test]
    fn a_port_is_a_u16_or_the_url_is_refused() {
        assert_eq!(parse_origin("http://h:65535/").map(|o| o.port), Ok(65535));
        assert_eq!(parse_origin("http://h/").map(|o| o.port), Ok(80));
        assert_eq!(parse_origin("https://[::1]/").map(|o| o.port), Ok(443));
        assert_eq!(parse_origin("https://[::1]:9/").map(|o| o.port), Ok(9));
        assert!(matches!(
            parse_origin("http://h:65536/"),
            Err(UrlError::Invalid(why)) if why.contains("65536")
        ));
    }
}
