//! The request template: method, URL, headers and body, each with `{id}` holes (and `{name}`
//! holes for a key file's columns), compiled once (and checked, so a bad template fails before
//! any worker starts) and expanded per item into reused buffers: the whole HTTP/1.1 request in
//! one buffer, or its parts for HTTP/2.
//!
//! A placeholder may stand in the path and query (percent-encoded there), in header values and
//! in the body (as it is), and in the host (one name per key, as mass probing does: each request
//! then goes to its own host, on a connection of its own); not in the scheme or the port. A value
//! that would break a header (CR, LF or NUL), or cannot be part of a host name, fails that item
//! with error kind `request`, never retried.

use serde::{Deserialize, Serialize};

mod framing;

pub use framing::{connection_specific, reserved_for_ringscrape};

use crate::redact::{is_credential, redact_header, redact_url};
use crate::template::{Escape, ID_NAME, Template, Values};
pub use crate::url::{Origin, Scheme};
use crate::url::{Unfollowed, UrlError, origin_len};

/// What the user asked for, as it travels to the workers (each compiles it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSpec {
    pub url: String,
    /// `None`: GET, or POST when there is a body (as curl does).
    pub method: Option<String>,
    /// `Name: value` lines, in order.
    pub headers: Vec<String>,
    pub body: Option<Vec<u8>>,
    pub user_agent: String,
    /// `accept-encoding` sent unless the headers have one (`None`: none of ours).
    pub accept_encoding: Option<String>,
    /// The key files' column names: each is a placeholder `{name}` beside `{id}`.
    #[serde(default)]
    pub key_columns: Vec<String>,
}

impl RequestSpec {
    /// Every placeholder's name, by slot: `id`, then the key columns.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(ID_NAME)
            .chain(self.key_columns.iter().map(String::as_str))
            .collect()
    }

    /// Every text of the request that placeholders are filled in, with the flag that gave it:
    /// the URL, each header line, the body and the user agent.
    pub fn templates(&self) -> Vec<(&'static str, &[u8])> {
        let mut texts = vec![("url", self.url.as_bytes())];
        texts.extend(self.headers.iter().map(|h| ("header", h.as_bytes())));
        texts.extend(self.body.as_deref().map(|b| ("data", b)));
        texts.push(("user-agent", self.user_agent.as_bytes()));
        texts
    }

    /// Whether each slot (of [`RequestSpec::names`]) fills a placeholder somewhere in the
    /// request.
    pub fn used_slots(&self) -> Vec<bool> {
        let names = self.names();
        let mut used = vec![false; names.len()];
        for (_, text) in self.templates() {
            for slot in Template::with_names(text, Escape::Raw, &names).slots() {
                used[slot] = true;
            }
        }
        used
    }
}

/// The codings ringscrape decodes, asked for by default as aiohttp, httpx and curl
/// `--compressed` do: a real API then sends 3–10× fewer bytes.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

/// A compiled [`RequestSpec`].
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub origin: Origin,
    pub method: http::Method,
    /// Path and query.
    path: Template,
    /// Header names as given (lower-cased for HTTP/2), values with raw holes; `host` and
    /// `user-agent` added unless given.
    headers: Vec<(http::HeaderName, Template)>,
    body: Option<Template>,
    /// The slots whose values land in a header value (and must then be checked for line
    /// breaks).
    header_slots: Vec<usize>,
    /// The placeholders in the URL's path (before `?`), by slot and name: an absent value
    /// there would leave an empty path segment.
    path_holes: Vec<(usize, String)>,
    /// `{id}` in the host (one name per key, as mass probing does): the host with its hole;
    /// `origin` then names no real host, and [`RequestTemplate::origin_of`] gives each key's.
    host: Option<Template>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("--url {0}: only http:// and https:// URLs are supported")]
    Scheme(String),
    #[error("--url {0}: not a valid URL once {{id}} is filled in ({1})")]
    Url(String, String),
    #[error(
        "--url {0}: {{id}} may stand in the host, the path or the query, not in the scheme or port"
    )]
    HoleInOrigin(String),
    #[error("--url {0}: must contain {{id}} (or use {{id}} in a header or the body)")]
    NoPlaceholder(String),
    #[error("--method {0:?}: not a valid HTTP method")]
    Method(String),
    #[error("--header {0:?}: expected 'Name: value'")]
    HeaderSyntax(String),
    #[error("--header {0:?}: {1}")]
    Header(String, String),
    #[error("--user-agent {0:?}: not a valid header value (a line break, NUL or control byte)")]
    UserAgent(String),
    #[error(
        "--header {0:?}: ringscrape frames each request itself (content-length from the body); a second framing header is the request-smuggling shape (RFC 9112 §6.3): leave it out"
    )]
    Framing(String),
}

/// A redirect to follow: where it points and how the request changes (RFC 9110 §15.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub origin: Origin,
    /// Path and query to ask for.
    pub target: Vec<u8>,
    pub method: http::Method,
    /// Whether the body is sent again (307/308 keep it; 303, and 301/302 after a POST, don't).
    pub with_body: bool,
}

/// Whether header `name` stays off a request to another origin than its item's own (another
/// host, port or scheme, https→http included): every header the redaction list names a
/// credential (`Authorization`, `Cookie`, `X-Api-Key`…), as curl drops `Authorization` and
/// `Cookie`.
fn stays_home(name: &http::HeaderName) -> bool {
    is_credential(name.as_str())
}

/// The key's bytes would end a header line early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBreaksHeader;

impl RequestTemplate {
    pub fn compile(spec: &RequestSpec) -> Result<Self, RequestError> {
        let names = spec.names();
        let origin_end = origin_len(&spec.url);
        let (origin, host) = origin_of(&spec.url, origin_end, &names)?;
        let mut path_text = &spec.url[origin_end..];
        if let Some(hash) = path_text.find('#') {
            path_text = &path_text[..hash];
        }
        let path = Template::with_names(
            if path_text.is_empty() {
                b"/"
            } else {
                path_text.as_bytes()
            },
            Escape::Url,
            &names,
        );
        let method_text = spec
            .method
            .clone()
            .unwrap_or_else(|| if spec.body.is_some() { "POST" } else { "GET" }.into());
        let method = http::Method::from_bytes(method_text.as_bytes())
            .map_err(|_| RequestError::Method(method_text.clone()))?;
        let headers = headers_of(spec, &origin, &names)?;
        let mut header_slots: Vec<usize> = headers.iter().flat_map(|(_, v)| v.slots()).collect();
        header_slots.sort_unstable();
        header_slots.dedup();
        let body = spec
            .body
            .as_deref()
            .map(|b| Template::with_names(b, Escape::Raw, &names));
        if !path.has_hole()
            && header_slots.is_empty()
            && host.is_none()
            && !body.as_ref().is_some_and(Template::has_hole)
        {
            return Err(RequestError::NoPlaceholder(shown(&spec.url)));
        }
        let path_holes = path
            .slots_before(b'?')
            .into_iter()
            .map(|slot| (slot, names[slot].to_string()))
            .collect();
        let template = RequestTemplate {
            origin,
            method,
            path_holes,
            path,
            headers,
            body,
            header_slots,
            host,
        };
        template.check_path(&spec.url, names.len())?;
        Ok(template)
    }

    /// This template with `headers` sent as they are, in place of any `-H` of the same name:
    /// the credentials of `--auth-command` (fixed text: no placeholder is filled in them).
    pub fn with_headers(&self, headers: &[(http::HeaderName, http::HeaderValue)]) -> Self {
        let mut template = self.clone();
        // The supervisor refuses these in the command's output; kept out here as well, so no
        // path can put a second framing header on the wire.
        let headers = headers
            .iter()
            .filter(|(name, _)| !reserved_for_ringscrape(name));
        template
            .headers
            .retain(|(name, _)| !headers.clone().any(|(given, _)| given == name));
        for (name, value) in headers {
            let value = Template::literal(value.as_bytes());
            template.headers.push((name.clone(), value));
        }
        template
    }

    /// The first `-H` header that HTTP/2 forbids (`Connection`, `Upgrade`…), as a message
    /// may show it: `--http2` refuses it at start rather than failing every request.
    pub fn connection_specific_header(&self) -> Option<String> {
        let probe = probe(self.header_slots.last().map_or(1, |last| last + 1));
        self.headers
            .iter()
            .find(|(name, value)| connection_specific(name, &value.expand(&probe)))
            .map(|(name, _)| name.to_string())
    }

    /// The name of a placeholder of the URL's path whose value is absent (a JSON `null`, a
    /// missing field): such an item is not sent, rather than sent with an empty segment.
    pub fn absent_in_path(&self, values: &Values) -> Option<&str> {
        self.path_holes
            .iter()
            .find(|(slot, _)| values.get(*slot).is_none())
            .map(|(_, name)| name.as_str())
    }

    /// True when each key names its own host (`{id}` in the host).
    pub fn host_varies(&self) -> bool {
        self.host.is_some()
    }

    /// The origin of `key`'s request: the run's, or with `{id}` in the host, the key's own (a
    /// key that cannot be part of a host name is refused).
    pub fn origin_of(&self, values: &Values) -> Result<Origin, KeyBreaksHeader> {
        let Some(host) = &self.host else {
            return Ok(self.origin.clone());
        };
        let host = host.expand(values);
        let label_byte = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        let empty_label = host.first() == Some(&b'.') || host.windows(2).any(|w| w == b"..");
        if host.is_empty() || host.len() > 253 || empty_label || !host.iter().all(label_byte) {
            return Err(KeyBreaksHeader);
        }
        let host = String::from_utf8(host).map_err(|_| KeyBreaksHeader)?;
        let explicit_port = self
            .origin
            .authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let authority = if explicit_port {
            format!("{host}:{}", self.origin.port)
        } else {
            host.clone()
        };
        Ok(Origin {
            scheme: self.origin.scheme,
            host,
            port: self.origin.port,
            authority,
        })
    }

    /// True when `origin` is not the item's own: with `{id}` (or a key column) in the host,
    /// the key's host is home, not the template's stand-in.
    fn elsewhere(&self, values: &Values, origin: &Origin) -> bool {
        match &self.host {
            None => *origin != self.origin,
            Some(_) => self.origin_of(values).map_or(true, |own| *origin != own),
        }
    }

    fn check_path(&self, url: &str, slots: usize) -> Result<(), RequestError> {
        let path = self.path.expand(&probe(slots));
        http::uri::PathAndQuery::try_from(path.as_slice())
            .map(|_| ())
            .map_err(|e| RequestError::Url(shown(url), e.to_string()))
    }

    /// Writes the whole HTTP/1.1 request for `key` into `out` (cleared first); `body` is scratch.
    pub fn write_h1(
        &self,
        values: &Values,
        out: &mut Vec<u8>,
        body: &mut Vec<u8>,
    ) -> Result<(), KeyBreaksHeader> {
        self.write_h1_via(values, None, out, body)
    }

    /// Like [`RequestTemplate::write_h1`], for the next hop of a redirect.
    pub fn write_h1_hop(
        &self,
        values: &Values,
        hop: &Hop,
        out: &mut Vec<u8>,
        body: &mut Vec<u8>,
    ) -> Result<(), KeyBreaksHeader> {
        self.write_h1_via(values, Some(hop), out, body)
    }

    fn write_h1_via(
        &self,
        values: &Values,
        hop: Option<&Hop>,
        out: &mut Vec<u8>,
        body: &mut Vec<u8>,
    ) -> Result<(), KeyBreaksHeader> {
        self.check_values(values)?;
        out.clear();
        let method = hop.map_or(&self.method, |h| &h.method);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        match hop {
            Some(hop) => out.extend_from_slice(&hop.target),
            None => self.path.expand_into(values, out),
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let elsewhere = hop.filter(|h| self.elsewhere(values, &h.origin));
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            match elsewhere {
                Some(_) if stays_home(name) => {
                    out.truncate(out.len() - name.as_str().len() - 2);
                    continue;
                }
                Some(hop) if name == http::header::HOST => {
                    out.extend_from_slice(hop.origin.authority.as_bytes());
                }
                _ => value.expand_into(values, out),
            }
            out.extend_from_slice(b"\r\n");
        }
        body.clear();
        let with_body = hop.is_none_or(|h| h.with_body);
        if let Some(template) = self.body.as_ref().filter(|_| with_body) {
            template.expand_into(values, body);
        }
        if (self.body.is_some() && with_body) || method_expects_body(method) {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        Ok(())
    }

    /// The request target (path and query) for `values`.
    pub fn target(&self, values: &Values) -> Vec<u8> {
        self.path.expand(values)
    }

    /// The request for `key` (or for a redirect's next hop) as an `http::Request` for HTTP/2,
    /// with its body.
    pub fn build_h2(
        &self,
        values: &Values,
        hop: Option<&Hop>,
    ) -> Result<http::Request<Vec<u8>>, KeyBreaksHeader> {
        self.check_values(values)?;
        let origin = hop.map_or(&self.origin, |h| &h.origin);
        let scheme = match origin.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let mut uri = format!("{scheme}://{}", origin.authority).into_bytes();
        match hop {
            Some(hop) => uri.extend_from_slice(&hop.target),
            None => self.path.expand_into(values, &mut uri),
        }
        let mut request = http::Request::builder()
            .method(hop.map_or(&self.method, |h| &h.method).clone())
            .uri(uri)
            .version(http::Version::HTTP_2);
        let elsewhere = hop.is_some_and(|h| self.elsewhere(values, &h.origin));
        for (name, value) in &self.headers {
            // HTTP/2 carries the host as :authority (RFC 9113 §8.3.1), and has no
            // connection-specific headers (§8.2.2): dropped, as curl drops them.
            let value = value.expand(values);
            if name != http::header::HOST
                && !(elsewhere && stays_home(name))
                && !connection_specific(name, &value)
            {
                request = request.header(name, value);
            }
        }
        let with_body = hop.is_none_or(|h| h.with_body);
        let body = match &self.body {
            Some(template) if with_body => template.expand(values),
            _ => Vec::new(),
        };
        // As over HTTP/1.1: servers read the length from the header (RFC 9113 §8.1.1 allows it).
        if !body.is_empty() || method_expects_body(request.method_ref().unwrap_or(&self.method)) {
            request = request.header(http::header::CONTENT_LENGTH, body.len());
        }
        request.body(body).map_err(|_| KeyBreaksHeader)
    }

    /// Where a 3xx answer with `location`, to a `method` request for `target` on `origin`,
    /// sends the next request; `Ok(None)` when the status is not a redirect or the location is
    /// of a scheme ringscrape does not fetch (the row then keeps the 3xx, as curl does); an
    /// error when it is an http(s) URL that cannot be fetched (a port above 65535, say).
    pub fn redirect(
        &self,
        origin: &Origin,
        target: &[u8],
        method: &http::Method,
        status: u16,
        location: &[u8],
    ) -> Result<Option<Hop>, String> {
        let (method, with_body) = match status {
            307 | 308 => (method.clone(), true),
            303 if method == http::Method::HEAD => (http::Method::HEAD, false),
            303 => (http::Method::GET, false),
            301 | 302 if method == http::Method::POST => (http::Method::GET, false),
            301 | 302 => (method.clone(), true),
            _ => return Ok(None),
        };
        let location = std::str::from_utf8(location)
            .map_err(|_| "the Location is not UTF-8".to_string())?
            .trim();
        match crate::url::resolve(origin, target, location) {
            Ok((origin, target)) => Ok(Some(Hop {
                origin,
                target,
                method,
                with_body,
            })),
            Err(Unfollowed::OtherScheme(_)) => Ok(None),
            Err(Unfollowed::Invalid(why)) => {
                Err(format!("the Location {}: {why}", redact_url(location)))
            }
        }
    }

    /// Refuses values that would end a header line early where they land in one.
    fn check_values(&self, values: &Values) -> Result<(), KeyBreaksHeader> {
        let breaks = |slot: &usize| {
            values
                .get(*slot)
                .is_some_and(|v| v.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)))
        };
        if self.header_slots.iter().any(breaks) {
            Err(KeyBreaksHeader)
        } else {
            Ok(())
        }
    }
}

/// The `Name: value` lines of `text` that are valid headers (others are left out).
pub fn header_lines(text: &str) -> Vec<(http::HeaderName, http::HeaderValue)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
            let value = http::HeaderValue::from_str(value.trim()).ok()?;
            Some((name, value))
        })
        .collect()
}

/// Methods whose requests are framed with a `content-length` even when the body is empty
/// (RFC 9110 §8.6: a user agent should send one for POST and PUT).
fn method_expects_body(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}

/// Values that fill every hole with `0`: a stand-in to check what a template makes.
fn probe(slots: usize) -> Values {
    let mut values = Values::default();
    for _ in 0..slots {
        values.push(Some(b"0"));
    }
    values
}

/// The origin of `url` (its first `origin_end` bytes), and with a placeholder in its host, the
/// host as a template. A placeholder may stand in the host only: not in the scheme, nor in the
/// port.
fn origin_of(
    url: &str,
    origin_end: usize,
    names: &[&str],
) -> Result<(Origin, Option<Template>), RequestError> {
    let has_hole =
        |text: &str| Template::with_names(text.as_bytes(), Escape::Raw, names).has_hole();
    let origin_text = &url[..origin_end];
    if !has_hole(origin_text) {
        return Ok((parse_origin(url)?, None));
    }
    let after_scheme = origin_text.find("://").map_or(0, |at| at + 3);
    let port_at = origin_text.rfind(':').filter(|&at| at >= after_scheme);
    if has_hole(&origin_text[..after_scheme])
        || port_at.is_some_and(|at| has_hole(&origin_text[at..]))
    {
        return Err(RequestError::HoleInOrigin(shown(url)));
    }
    // Parsed with a stand-in name to check the rest of the URL.
    let whole = Template::with_names(url.as_bytes(), Escape::Raw, names);
    let probe = String::from_utf8_lossy(&whole.expand(&probe(names.len()))).into_owned();
    let mut origin = parse_origin(&probe)?;
    let host_end = port_at.unwrap_or(origin_end);
    let host_text = &origin_text[after_scheme..host_end];
    origin.authority = origin_text[after_scheme..].to_string();
    Ok((
        origin,
        Some(Template::with_names(
            host_text.as_bytes(),
            Escape::Raw,
            names,
        )),
    ))
}

/// The request's headers: `-H` lines, then `Host`, `User-Agent` and `Accept-Encoding` unless
/// given.
fn headers_of(
    spec: &RequestSpec,
    origin: &Origin,
    names: &[&str],
) -> Result<Vec<(http::HeaderName, Template)>, RequestError> {
    let mut headers = Vec::with_capacity(spec.headers.len() + 2);
    for line in &spec.headers {
        headers.push(parse_header(line, names)?);
    }
    let has = |name: &http::HeaderName, headers: &[(http::HeaderName, Template)]| {
        headers.iter().any(|(n, _)| n == name)
    };
    if !has(&http::header::HOST, &headers) {
        let host = Template::with_names(origin.authority.as_bytes(), Escape::Raw, names);
        headers.insert(0, (http::header::HOST, host));
    }
    if !has(&http::header::USER_AGENT, &headers) {
        // Checked as -H values are: a CR or LF would put a header line of its own on the wire.
        http::HeaderValue::from_str(&spec.user_agent)
            .map_err(|_| RequestError::UserAgent(spec.user_agent.clone()))?;
        let agent = Template::with_names(spec.user_agent.as_bytes(), Escape::Raw, names);
        headers.push((http::header::USER_AGENT, agent));
    }
    if let Some(codings) = &spec.accept_encoding
        && !has(&http::header::ACCEPT_ENCODING, &headers)
    {
        let codings = Template::with_names(codings.as_bytes(), Escape::Raw, names);
        headers.push((http::header::ACCEPT_ENCODING, codings));
    }
    Ok(headers)
}

/// `url` as a message may show it: a password in it (`user:PASS@host`) left out.
fn shown(url: &str) -> String {
    redact_url(url)
}

/// The origin of `--url` (or of it with its holes filled), as a usage error when it has none.
fn parse_origin(url: &str) -> Result<Origin, RequestError> {
    crate::url::parse_origin(url).map_err(|e| match e {
        UrlError::NotHttp => RequestError::Scheme(shown(url)),
        UrlError::Invalid(why) => RequestError::Url(shown(url), why),
    })
}

/// `Name: value` → a checked header name and a value template (the value with its holes filled
/// in by a digit must be a valid header value).
fn parse_header(line: &str, names: &[&str]) -> Result<(http::HeaderName, Template), RequestError> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| RequestError::HeaderSyntax(redact_header(line)))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| RequestError::Header(redact_header(line), e.to_string()))?;
    if framing::frames(&name) {
        return Err(RequestError::Framing(redact_header(line)));
    }
    let value = value.trim();
    let template = Template::with_names(value.as_bytes(), Escape::Raw, names);
    http::HeaderValue::from_bytes(&template.expand(&probe(names.len())))
        .map_err(|_| RequestError::Header(redact_header(line), "invalid value".into()))?;
    Ok((name, template))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> RequestSpec {
        RequestSpec {
            url: url.into(),
            method: None,
            headers: Vec::new(),
            body: None,
            user_agent: "ringscrape/test".into(),
            accept_encoding: None,
            key_columns: Vec::new(),
        }
    }

    fn h1(template: &RequestTemplate, key: &[u8]) -> String {
        let (mut out, mut body) = (Vec::new(), Vec::new());
        template
            .write_h1(&Values::one(key), &mut out, &mut body)
            .expect("key fits");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_get_carries_host_with_port_and_the_user_agent() {
        let t = RequestTemplate::compile(&spec("http://h:8080/log?id={id}")).expect("valid");
        assert_eq!(
            h1(&t, b"42"),
            "GET /log?id=42 HTTP/1.1\r\nhost: h:8080\r\nuser-agent: ringscrape/test\r\n\r\n"
        );
        assert_eq!(t.origin.port, 8080);
        let t = RequestTemplate::compile(&spec("https://example.org/{id}")).expect("valid");
        assert_eq!((t.origin.port, t.origin.scheme), (443, Scheme::Https));
    }

    #[test]
    fn method_headers_and_body_expand_the_key() {
        let mut s = spec("http://h/items");
        s.headers = vec!["Authorization: Bearer t0k".into(), "X-Item: {id}".into()];
        s.body = Some(b"{\"id\":\"{id}\"}".to_vec());
        s.user_agent = "ua".into();
        let t = RequestTemplate::compile(&s).expect("valid");
        assert_eq!(t.method, http::Method::POST, "a body makes it a POST");
        assert_eq!(
            h1(&t, b"a b"),
            "POST /items HTTP/1.1\r\nhost: h\r\nauthorization: Bearer t0k\r\nx-item: a b\r\n\
             user-agent: ua\r\ncontent-length: 12\r\n\r\n{\"id\":\"a b\"}"
        );
        let (mut out, mut body) = (Vec::new(), Vec::new());
        assert_eq!(
            t.write_h1(&Values::one(b"x\r\ny: 1"), &mut out, &mut body),
            Err(KeyBreaksHeader)
        );
        let request = t.build_h2(&Values::one(b"7"), None).expect("h2 request");
        assert_eq!(request.uri(), "http://h/items");
        assert_eq!(request.headers()["x-item"], "7");
        assert!(request.headers().get("host").is_none());
        assert_eq!(request.body(), b"{\"id\":\"7\"}");
    }

    #[test]
    fn given_host_and_user_agent_replace_ours() {
        let mut s = spec("http://127.0.0.1:9/{id}");
        s.headers = vec!["Host: example.org".into(), "User-Agent: me".into()];
        s.method = Some("DELETE".into());
        let t = RequestTemplate::compile(&s).expect("valid");
        assert_eq!(
            h1(&t, b"1"),
            "DELETE /1 HTTP/1.1\r\nhost: example.org\r\nuser-agent: me\r\n\r\n"
        );
    }

    #[test]
    fn keys_are_percent_encoded_in_the_url_only() {
        let mut s = spec("http://h/u/{id}?q={id}");
        s.headers = vec!["X-Key: {id}".into()];
        let t = RequestTemplate::compile(&s).expect("valid");
        let text = h1(&t, "a/b?c&d é".as_bytes());
        assert!(
            text.starts_with("GET /u/a%2Fb%3Fc%26d%20%C3%A9?q=a%2Fb%3Fc%26d%20%C3%A9 HTTP/1.1"),
            "{text}"
        );
        assert!(text.contains("x-key: a/b?c&d é\r\n"), "{text}");
    }

    #[test]
    fn key_columns_fill_path_query_host_header_and_body() {
        let mut s = spec("http://{tenant}.example/users/{user}/logs?date={date}");
        s.key_columns = vec![
            "user".into(),
            "date".into(),
            "tenant".into(),
            "token".into(),
        ];
        s.headers = vec!["X-Api-Key: {token}".into()];
        s.body = Some(br#"{"user":"{user}","n":{id}}"#.to_vec());
        let t = RequestTemplate::compile(&s).expect("valid");
        let mut values = Values::one(b"3");
        for value in [&b"ann lee"[..], b"2026-01-02", b"acme", b"k1"] {
            values.push(Some(value));
        }
        let text = {
            let (mut out, mut body) = (Vec::new(), Vec::new());
            t.write_h1(&values, &mut out, &mut body).expect("fits");
            String::from_utf8(out).expect("utf-8")
        };
        assert!(
            text.starts_with(
                "POST /users/ann%20lee/logs?date=2026-01-02 HTTP/1.1\r\nhost: acme.example\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("x-api-key: k1\r\n"), "{text}");
        assert!(text.ends_with(r#"{"user":"ann lee","n":3}"#), "{text}");
        assert_eq!(t.origin_of(&values).expect("host").host, "acme.example");
        // Only values that land in a header are checked for line breaks.
        let mut broken = Values::one(b"3");
        for value in [&b"a\nb"[..], b"d", b"acme", b"k1"] {
            broken.push(Some(value));
        }
        assert!(
            t.write_h1(&broken, &mut Vec::new(), &mut Vec::new())
                .is_ok()
        );
        let mut broken = Values::one(b"3");
        for value in [&b"a"[..], b"d", b"acme", b"k\r\n1"] {
            broken.push(Some(value));
        }
        assert_eq!(
            t.write_h1(&broken, &mut Vec::new(), &mut Vec::new()),
            Err(KeyBreaksHeader)
        );
        s.url = "http://h:{date}/".into();
        assert!(matches!(
            RequestTemplate::compile(&s),
            Err(RequestError::HoleInOrigin(_))
        ));
    }

    #[test]
    fn credentials_replace_a_header_of_the_same_name_and_stay_as_they_are() {
        let mut s = spec("http://h/{id}");
        s.headers = vec!["Authorization: Bearer old".into(), "X-A: 1".into()];
        let t = RequestTemplate::compile(&s).expect("valid");
        let fresh = header_lines("not a header\nAuthorization: Bearer {id}\nCookie: s=1; t={x}\n");
        assert_eq!(fresh.len(), 2);
        let text = h1(&t.with_headers(&fresh), b"7");
        assert!(!text.contains("old"), "{text}");
        assert!(text.contains("authorization: Bearer {id}\r\n"), "{text}");
        assert!(text.contains("cookie: s=1; t={x}\r\n") && text.contains("x-a: 1\r\n"));
    }

    #[test]
    fn a_header_without_a_colon_is_refused_without_its_secret() {
        let mut s = spec("http://h/{id}");
        s.headers = vec!["Authorization Bearer s3cret".into()];
        let err = RequestTemplate::compile(&s)
            .expect_err("no colon")
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn id_in_the_host_gives_each_key_its_own_origin_and_host_header() {
        let template = RequestTemplate::compile(&spec("https://{id}.example.com:8443/a"))
            .expect("a hole in the host");
        assert!(template.host_varies());
        let origin = template
            .origin_of(&Values::one(b"shop-7"))
            .expect("a host name");
        assert_eq!(
            (origin.host.as_str(), origin.port, origin.authority.as_str()),
            ("shop-7.example.com", 8443, "shop-7.example.com:8443")
        );
        assert_eq!(origin.scheme, Scheme::Https);
        let mut out = Vec::new();
        template
            .write_h1(&Values::one(b"shop-7"), &mut out, &mut Vec::new())
            .expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with("GET /a HTTP/1.1\r\nhost: shop-7.example.com:8443\r\n"),
            "{text}"
        );
        for bad in [&b"a/b"[..], b"a b", b"", b"x\r\ny"] {
            assert!(template.origin_of(&Values::one(bad)).is_err(), "{bad:?}");
        }
        let plain = RequestTemplate::compile(&spec("http://{id}/")).expect("the whole host");
        assert_eq!(
            plain
                .origin_of(&Values::one(b"10.0.0.1"))
                .expect("an address")
                .authority,
            "10.0.0.1"
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        let bad = |url: &str| RequestTemplate::compile(&spec(url)).expect_err(url);
        assert!(matches!(
            bad("http://h/log?id=1"),
            RequestError::NoPlaceholder(_)
        ));
        assert!(matches!(bad("ftp://h/{id}"), RequestError::Scheme(_)));
        assert!(matches!(bad("/log?id={id}"), RequestError::Scheme(_)));
        assert!(matches!(
            bad("http://h:8{id}/x"),
            RequestError::HoleInOrigin(_)
        ));
        assert!(matches!(
            bad("http{id}://h/x"),
            RequestError::HoleInOrigin(_)
        ));
        assert!(matches!(
            bad("http://h/log?id={id} x"),
            RequestError::Url(..)
        ));
        let mut s = spec("http://h/{id}");
        s.headers = vec!["no colon".into()];
        assert!(matches!(
            RequestTemplate::compile(&s),
            Err(RequestError::HeaderSyntax(_))
        ));
        s.headers = vec!["Bad Name: x".into()];
        assert!(matches!(
            RequestTemplate::compile(&s),
            Err(RequestError::Header(..))
        ));
        s.headers = vec![];
        s.method = Some("GE T".into());
        assert!(matches!(
            RequestTemplate::compile(&s),
            Err(RequestError::Method(_))
        ));
    }

    #[test]
    fn redirects_resolve_the_location_and_change_the_method_as_rfc_9110_says() {
        let mut s = spec("http://h:8/a/b?id={id}");
        s.headers = vec!["Authorization: Bearer x".into()];
        s.body = Some(b"{id}".to_vec());
        let t = RequestTemplate::compile(&s).expect("valid");
        let post = http::Method::POST;
        let hop = |status, location: &str| {
            t.redirect(&t.origin, b"/a/b?id=1", &post, status, location.as_bytes())
                .expect("a usable Location")
        };
        let same = hop(307, "c?x=1").expect("relative");
        assert_eq!(
            (same.target.as_slice(), same.with_body),
            (&b"/a/c?x=1"[..], true)
        );
        assert_eq!(same.origin, t.origin);
        let other = hop(302, "https://other.example/z").expect("absolute");
        assert_eq!(
            (other.origin.port, other.method.clone(), other.with_body),
            (443, http::Method::GET, false)
        );
        assert_eq!(hop(303, "/root").expect("absolute path").target, b"/root");
        assert_eq!(
            hop(301, "//cdn.example/p")
                .expect("scheme-relative")
                .origin
                .host,
            "cdn.example"
        );
        assert_eq!(hop(200, "/x"), None, "not a redirect");
        assert_eq!(hop(302, "ftp://x/y"), None, "not http: the 3xx stays");
        assert_eq!(hop(302, "mailto:a@b"), None, "not a path: the 3xx stays");
        let broken = t.redirect(&t.origin, b"/", &post, 302, b"http://h:70000/x");
        assert!(
            broken.is_err_and(|why| why.contains("70000")),
            "an error row"
        );

        let (mut out, mut body) = (Vec::new(), Vec::new());
        t.write_h1_hop(&Values::one(b"1"), &other, &mut out, &mut body)
            .expect("fits");
        let text = String::from_utf8(out.clone()).expect("utf-8");
        assert!(
            text.starts_with("GET /z HTTP/1.1\r\nhost: other.example\r\n"),
            "{text}"
        );
        assert!(
            !text.contains("authorization"),
            "credentials stay home: {text}"
        );
        assert!(!text.contains("content-length"), "{text}");
        t.write_h1_hop(&Values::one(b"1"), &same, &mut out, &mut body)
            .expect("fits");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with("POST /a/c?x=1 HTTP/1.1\r\nhost: h:8\r\nauthorization: Bearer x\r\n"),
            "{text}"
        );
        assert!(text.ends_with("content-length: 1\r\n\r\n1"), "{text}");
    }

    #[test]
    fn a_framing_header_is_refused_and_never_sent_twice() {
        for line in ["Content-Length: 5", "transfer-encoding: chunked"] {
            let mut s = spec("http://h/{id}");
            s.headers = vec![line.into()];
            s.body = Some(b"a".to_vec());
            assert!(
                matches!(RequestTemplate::compile(&s), Err(RequestError::Framing(_))),
                "{line}"
            );
        }
        // Nor from the credentials, should one get past the supervisor.
        let t = RequestTemplate::compile(&spec("http://h/{id}")).expect("valid");
        let fresh =
            header_lines("Content-Length: 0\nTransfer-Encoding: chunked\nHost: evil\nA: b\n");
        let text = h1(&t.with_headers(&fresh), b"7");
        assert_eq!(
            text,
            "GET /7 HTTP/1.1\r\nhost: h\r\nuser-agent: ringscrape/test\r\na: b\r\n\r\n"
        );
    }

    #[test]
    fn http2_leaves_out_connection_specific_headers() {
        let mut s = spec("http://h/{id}");
        s.headers = vec![
            "Connection: keep-alive".into(),
            "Keep-Alive: 5".into(),
            "TE: gzip".into(),
            "X-A: 1".into(),
        ];
        let t = RequestTemplate::compile(&s).expect("valid over HTTP/1.1");
        assert_eq!(
            t.connection_specific_header().as_deref(),
            Some("connection")
        );
        let request = t.build_h2(&Values::one(b"7"), None).expect("h2 request");
        let names: Vec<&str> = request.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-a", "user-agent"]);
        s.headers = vec!["TE: trailers".into()];
        let t = RequestTemplate::compile(&s).expect("valid");
        assert_eq!(
            t.connection_specific_header(),
            None,
            "te: trailers is allowed"
        );
    }

    #[test]
    fn credentials_go_to_the_items_own_origin_only_every_one_the_redaction_list_names() {
        let mut s = spec("https://{id}.example.com/list?key=1");
        s.headers = vec![
            "Authorization: Bearer a".into(),
            "Cookie: s=1".into(),
            "X-Api-Key: k".into(),
            "Accept: */*".into(),
        ];
        let t = RequestTemplate::compile(&s).expect("valid");
        let values = Values::one(b"tenant");
        let own = t.origin_of(&values).expect("a host");
        let page = |origin: &Origin| {
            let hop = Hop {
                origin: origin.clone(),
                target: b"/list?key=1&page=2".to_vec(),
                method: http::Method::GET,
                with_body: true,
            };
            let mut out = Vec::new();
            t.write_h1_hop(&values, &hop, &mut out, &mut Vec::new())
                .expect("fits");
            let h2 = t.build_h2(&values, Some(&hop)).expect("fits");
            let h2_names: Vec<String> = h2.headers().keys().map(|n| n.to_string()).collect();
            (String::from_utf8(out).expect("utf-8"), h2_names.join(","))
        };
        // A page on the key's own host keeps them (it is not the template's stand-in host).
        let (h1, h2) = page(&own);
        for name in ["authorization", "cookie", "x-api-key"] {
            assert!(h1.contains(&format!("{name}: ")), "{name}: {h1}");
            assert!(h2.contains(name), "{name}: {h2}");
        }
        // Another host, or the same one over plain http, gets none of them.
        let other = Origin {
            host: "evil.example".into(),
            authority: "evil.example".into(),
            ..own.clone()
        };
        let plain = Origin {
            scheme: Scheme::Http,
            port: 80,
            ..own.clone()
        };
        for origin in [other, plain] {
            let (h1, h2) = page(&origin);
            for name in ["authorization", "cookie", "x-api-key"] {
                assert!(!h1.contains(name), "{name} to {origin:?}: {h1}");
                assert!(!h2.contains(name), "{name} to {origin:?}: {h2}");
            }
            assert!(h1.contains("accept: */*"), "{h1}");
        }
    }
}
