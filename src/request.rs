//! The request template: method, URL, headers and body, each with `{id}` holes (and `{name}`
//! holes for a key file's columns), compiled once (and checked, so a bad template fails before
//! any worker starts) and expanded per item into reused buffers: the whole HTTP/1.1 request in
//! one buffer, or its parts for HTTP/2.
//!
//! A placeholder may stand in the path and query (percent-encoded there), in header values and
//! in the body (as it is), in the host (one name per key, as mass probing does: each request
//! then goes to its own host, on a connection of its own), and for the URL's start: the whole
//! URL, its origin or a prefix (`{url}`, `{base}/api?id={id}`; see `item_url`). A value that
//! would break a header (CR, LF or NUL), cannot be part of a host name, or makes no fetchable
//! URL, fails that item with error kind `request`, never retried.

use serde::{Deserialize, Serialize};

mod framing;
mod item_url;

pub use framing::{connection_specific, reserved_for_ringscrape};
pub use item_url::UnusableKey;
use item_url::Varies;

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
    /// Base64 in the worker spec: TOML would write each byte as a number (~4.6 bytes each).
    #[serde(default, with = "base64_body")]
    pub body: Option<Vec<u8>>,
    pub user_agent: String,
    /// `accept-encoding` sent unless the headers have one (`None`: none of ours).
    pub accept_encoding: Option<String>,
    /// The key files' column names: each is a placeholder `{name}` beside `{id}`.
    #[serde(default)]
    pub key_columns: Vec<String>,
}

#[cfg(test)]
impl RequestSpec {
    /// A GET of `url` with nothing else asked: where a test's request starts.
    pub fn of_url(url: &str) -> RequestSpec {
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
/// The largest body `-d` sends: it travels to every worker base64-encoded inside the worker
/// spec, one frame of at most [`crate::wire::MAX_FRAME_LEN`] (16 MiB) with the rest of the spec.
pub const MAX_BODY_LEN: usize = 8 << 20;

/// The body as base64 text (see [`RequestSpec::body`]).
mod base64_body {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub fn serialize<S: Serializer>(body: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        body.as_ref().map(|b| STANDARD.encode(b)).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| STANDARD.decode(text).map_err(D::Error::custom))
            .transpose()
    }
}

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
    /// A placeholder in the host, or for the URL's start: `origin` then names no real host,
    /// and [`RequestTemplate::origin_of`] gives each item's.
    varies: Option<Varies>,
    /// When no header varies (no hole, the host the run's): every header line as HTTP/1.1
    /// writes it (`name: value\r\n`), written whole rather than line by line and piece by
    /// piece for each request (about 3% of a plain request's instructions).
    fixed_lines: Option<Box<[u8]>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("--url {0}: only http:// and https:// URLs are supported")]
    Scheme(String),
    #[error("--url {0}: not a valid URL once {{id}} is filled in ({1})")]
    Url(String, String),
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

/// One request, its values checked: what a protocol's encoder writes, in the template's order.
pub struct RequestParts<'a> {
    template: &'a RequestTemplate,
    values: &'a Values,
    hop: Option<&'a Hop>,
    /// With a placeholder at the URL's start and no hop: the item's origin and target.
    own: Option<(Origin, Vec<u8>)>,
    /// A redirect to another origin than the item's own: credentials stay home.
    elsewhere: bool,
}

/// A header's value in a request.
pub enum HeaderValueOf<'a> {
    /// Its template, filled with the request's values.
    Filled(&'a Template),
    /// The `Host` of a redirect to another origin: that origin's authority.
    Authority(&'a str),
}

impl<'a> RequestParts<'a> {
    pub fn method(&self) -> &'a http::Method {
        self.hop.map_or(&self.template.method, |h| &h.method)
    }

    /// Where the request goes: the template's origin, the item's own, or the redirect's.
    pub fn origin(&self) -> &Origin {
        match (self.hop, &self.own) {
            (Some(hop), _) => &hop.origin,
            (None, Some((own, _))) => own,
            (None, None) => &self.template.origin,
        }
    }

    /// Appends the request target (path and query).
    pub fn write_target(&self, out: &mut Vec<u8>) {
        match (self.hop, &self.own) {
            (Some(hop), _) => out.extend_from_slice(&hop.target),
            (None, Some((_, target))) => out.extend_from_slice(target),
            (None, None) => self.template.path.expand_into(self.values, out),
        }
    }

    /// The headers that go, in order: on a redirect to another origin, those that stay home
    /// (credentials) are left out and `Host` names that origin; with a placeholder at the
    /// URL's start, `Host` is the item's authority (unless `-H` gave one).
    pub fn headers(&self) -> impl Iterator<Item = (&'a http::HeaderName, HeaderValueOf<'_>)> {
        let elsewhere = self.elsewhere;
        let per_item = self
            .template
            .varies
            .as_ref()
            .is_some_and(Varies::host_from_url);
        let authority = self.origin().authority.as_str();
        self.template
            .headers
            .iter()
            .filter(move |(name, _)| !(elsewhere && stays_home(name)))
            .map(move |(name, value)| match name == http::header::HOST {
                true if elsewhere || per_item => (name, HeaderValueOf::Authority(authority)),
                _ => (name, HeaderValueOf::Filled(value)),
            })
    }

    /// Every header line (`name: value\r\n`, in order) when none varies for this request —
    /// it goes to the item's own origin, no header has a hole — else `None`: then
    /// [`RequestParts::headers`] gives them one by one.
    pub fn fixed_lines(&self) -> Option<&'a [u8]> {
        match (self.hop, &self.own) {
            (None, None) => self.template.fixed_lines.as_deref(),
            _ => None,
        }
    }

    /// Appends a header's value.
    pub fn write_value(&self, value: &HeaderValueOf<'_>, out: &mut Vec<u8>) {
        match value {
            HeaderValueOf::Filled(template) => template.expand_into(self.values, out),
            HeaderValueOf::Authority(authority) => out.extend_from_slice(authority.as_bytes()),
        }
    }

    /// Writes the body into `out` (cleared first); true when the request has one to send
    /// (a redirect that drops it, 303 say, has none).
    pub fn write_body(&self, out: &mut Vec<u8>) -> bool {
        out.clear();
        let with_body = self.hop.is_none_or(|h| h.with_body);
        let body = self.template.body.as_ref().filter(|_| with_body);
        if let Some(template) = body {
            template.expand_into(self.values, out);
        }
        body.is_some()
    }

    /// The method's requests carry a `content-length` even with an empty body (RFC 9110 §8.6:
    /// a user agent should send one for POST and PUT).
    pub fn expects_body(&self) -> bool {
        method_expects_body(self.method())
    }
}

impl RequestTemplate {
    pub fn compile(spec: &RequestSpec) -> Result<Self, RequestError> {
        let names = spec.names();
        let origin_end = origin_len(&spec.url);
        let (origin, mut varies) = item_url::origin_of(&spec.url, origin_end, &names)
            .map_err(|e| url_error(&spec.url, e))?;
        let mut path_text = &spec.url[origin_end..];
        if let Some(hash) = path_text.find('#') {
            path_text = &path_text[..hash];
        }
        // After a placeholder for the URL's start, nothing: the value's own path.
        let starts = matches!(varies, Some(Varies::Start { .. }));
        let path = Template::with_names(
            if path_text.is_empty() && !starts {
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
        if let Some(Varies::Start { host_given, .. }) = &mut varies {
            *host_given = spec.headers.iter().any(|line| {
                line.split_once(':')
                    .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
            });
        }
        let mut header_slots: Vec<usize> = headers.iter().flat_map(|(_, v)| v.slots()).collect();
        header_slots.sort_unstable();
        header_slots.dedup();
        let body = spec
            .body
            .as_deref()
            .map(|b| Template::with_names(b, Escape::Raw, &names));
        if !path.has_hole()
            && header_slots.is_empty()
            && varies.is_none()
            && !body.as_ref().is_some_and(Template::has_hole)
        {
            return Err(RequestError::NoPlaceholder(shown(&spec.url)));
        }
        let path_holes = path
            .slots_before(b'?')
            .into_iter()
            .map(|slot| (slot, names[slot].to_string()))
            .collect();
        let mut template = RequestTemplate {
            origin,
            method,
            path_holes,
            path,
            headers,
            body,
            header_slots,
            varies,
            fixed_lines: None,
        };
        template.fixed_lines = template.render_fixed_lines();
        if !starts {
            template.check_path(&spec.url, names.len())?;
        }
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
        template.fixed_lines = template.render_fixed_lines();
        template
    }

    /// See [`RequestTemplate::fixed_lines`]: `None` when a header has a hole or the host is
    /// each item's.
    fn render_fixed_lines(&self) -> Option<Box<[u8]>> {
        if self.varies.is_some() || self.headers.iter().any(|(_, value)| value.has_hole()) {
            return None;
        }
        let none = Values::default();
        let mut lines = Vec::new();
        for (name, value) in &self.headers {
            lines.extend_from_slice(name.as_str().as_bytes());
            lines.extend_from_slice(b": ");
            value.expand_into(&none, &mut lines);
            lines.extend_from_slice(b"\r\n");
        }
        Some(lines.into_boxed_slice())
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

    /// True when each item names its own host (a placeholder in the host, or for the URL's
    /// start).
    pub fn host_varies(&self) -> bool {
        self.varies.is_some()
    }

    /// The origin of the item with `values`: the run's, or with a placeholder in the host or
    /// for the URL's start, the item's own (a value that makes no host, or no fetchable URL, is
    /// refused, saying why). The one answer to "which host does this item go to".
    pub fn origin_of(&self, values: &Values) -> Result<Origin, UnusableKey> {
        match &self.varies {
            None => Ok(self.origin.clone()),
            Some(varies) => varies.origin(&self.origin, &self.path, values),
        }
    }

    /// True when `origin` is not the item's own: with a placeholder in the host (or for the
    /// URL's start), the item's host is home, not the template's stand-in.
    fn elsewhere(&self, values: &Values, origin: &Origin) -> bool {
        match &self.varies {
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

    /// The request for `values` (or for a redirect's next `hop`) as each protocol's encoder
    /// reads it (`worker/http/h1.rs`, `h2.rs`): what goes is decided here, how it is written
    /// there. An error when a value would end a header line early (or, with a placeholder for
    /// the URL's start, makes no URL: [`RequestTemplate::origin_of`] said so before).
    pub fn parts<'a>(
        &'a self,
        values: &'a Values,
        hop: Option<&'a Hop>,
    ) -> Result<RequestParts<'a>, KeyBreaksHeader> {
        self.check_values(values)?;
        let own = match (&self.varies, hop) {
            (Some(varies @ Varies::Start { .. }), None) => Some(
                varies
                    .url(&self.path, values)
                    .map_err(|_| KeyBreaksHeader)?,
            ),
            _ => None,
        };
        Ok(RequestParts {
            template: self,
            values,
            hop,
            own,
            elsewhere: hop.is_some_and(|h| self.elsewhere(values, &h.origin)),
        })
    }

    /// The request target (path and query) for `values` (with a placeholder for the URL's
    /// start, the item's URL's; empty when it makes none, which `origin_of` refuses first).
    pub fn target(&self, values: &Values) -> Vec<u8> {
        match &self.varies {
            Some(varies @ Varies::Start { .. }) => varies
                .url(&self.path, values)
                .map(|(_, target)| target)
                .unwrap_or_default(),
            _ => self.path.expand(values),
        }
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

/// Why `--url` has no origin, as a usage error.
fn url_error(url: &str, error: UrlError) -> RequestError {
    match error {
        UrlError::NotHttp => RequestError::Scheme(shown(url)),
        UrlError::Invalid(why) => RequestError::Url(shown(url), why),
    }
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
