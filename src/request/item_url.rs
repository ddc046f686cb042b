//! Where each item's request goes when its values say: a placeholder in the host only
//! (`https://{host}/x`, one host name per key, as mass probing does), or one that stands for
//! the URL's start — the whole URL (`-u '{url}'`), its origin or a prefix
//! (`-u '{base}/api?id={id}'`), a scheme or a port. In the second case the values at the start
//! are written as they are (a URL is not percent-encoded again), then the whole URL is checked
//! per item: a bad one fails that item as `request`, saying why.
//!
//! [`Varies::origin`] is the one answer to "which host does this item go to" (routing,
//! gates, DNS and TLS all ask it): a few hundred nanoseconds, one small allocation.

use crate::template::{Escape, Template, Values};
use crate::url::{BadUrl, Origin, Scheme, UrlError, parse_origin, split_url};

/// Why an item's values make no request (its row says `request`, with this as the detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnusableKey(pub String);

/// How the items' origins vary.
#[derive(Debug, Clone)]
pub enum Varies {
    /// A placeholder in the host only: the host as a template (the scheme and port are the
    /// URL's own, the port written in the authority when the URL wrote one).
    Host { host: Template, explicit_port: bool },
    /// A placeholder at the URL's start (in its scheme, its port, or before any `://`): the
    /// start as a template of raw values; the rest of the URL (the template's path, whose
    /// values are percent-encoded as ever) follows it, and the whole is parsed per item.
    Start {
        start: Template,
        /// `-H 'Host: …'` was given: it is sent as given, not the item's authority.
        host_given: bool,
    },
}

/// How a URL template's start (`origin_text`, up to its path) is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartKind {
    /// No placeholder: one origin for every item.
    Fixed,
    /// A placeholder in the host only: `origin_text[host]` is the host.
    Host { host: (usize, usize) },
    /// A placeholder in the scheme or port, or no literal `scheme://` before the first one.
    Start,
}

/// What kind of start `origin_text` (the URL template up to its path) has.
fn start_kind(origin_text: &str, names: &[&str]) -> StartKind {
    let has_hole =
        |text: &str| Template::with_names(text.as_bytes(), Escape::Raw, names).has_hole();
    if !has_hole(origin_text) {
        return StartKind::Fixed;
    }
    let Some(after_scheme) = origin_text.find("://").map(|at| at + 3) else {
        return StartKind::Start;
    };
    let port_at = origin_text.rfind(':').filter(|&at| at >= after_scheme);
    if has_hole(&origin_text[..after_scheme])
        || port_at.is_some_and(|at| has_hole(&origin_text[at..]))
    {
        return StartKind::Start;
    }
    StartKind::Host {
        host: (after_scheme, port_at.unwrap_or(origin_text.len())),
    }
}

/// The origin of the URL template `url` (its first `origin_end` bytes; a stand-in when it
/// varies), and how it varies: with a placeholder in its host, the host as a template; with one
/// in the scheme or port or before any `://`, the URL's start as a template (the rest is
/// checked per item, with the values in it). What the template itself writes wrong (a scheme
/// not fetched, a space) is wrong for every item: refused now.
pub fn origin_of(
    url: &str,
    origin_end: usize,
    names: &[&str],
) -> Result<(Origin, Option<Varies>), UrlError> {
    let origin_text = &url[..origin_end];
    // Every hole filled with `0`, to check what the template itself writes.
    let mut zeros = Values::default();
    names.iter().for_each(|_| zeros.push(Some(b"0")));
    let whole = Template::with_names(url.as_bytes(), Escape::Raw, names);
    let probe = String::from_utf8_lossy(&whole.expand(&zeros)).into_owned();
    let (after_scheme, host_end) = match start_kind(origin_text, names) {
        StartKind::Fixed => return Ok((parse_origin(url)?, None)),
        StartKind::Host { host } => host,
        StartKind::Start => {
            match split_url(probe.as_bytes()) {
                Err(BadUrl::OtherScheme(_)) => return Err(UrlError::NotHttp),
                Err(why @ (BadUrl::Space | BadUrl::Control(_) | BadUrl::NotAscii)) => {
                    return Err(UrlError::Invalid(why.to_string()));
                }
                _ => {}
            }
            let start = Template::with_names(origin_text.as_bytes(), Escape::Raw, names);
            let host_given = false;
            return Ok((stand_in(), Some(Varies::Start { start, host_given })));
        }
    };
    let mut origin = parse_origin(&probe)?;
    origin.authority = origin_text[after_scheme..].to_string();
    let explicit_port = host_end < origin_end;
    let host_text = &origin_text[after_scheme..host_end];
    let host = Template::with_names(host_text.as_bytes(), Escape::Raw, names);
    let varies = Varies::Host {
        host,
        explicit_port,
    };
    Ok((origin, Some(varies)))
}

impl Varies {
    /// The origin of the item with `values`; `stand_in`: the template's origin (its scheme
    /// and port, for a placeholder in the host); `rest`: the template after its start.
    pub fn origin(
        &self,
        stand_in: &Origin,
        rest: &Template,
        values: &Values,
    ) -> Result<Origin, UnusableKey> {
        match self {
            Varies::Host {
                host,
                explicit_port,
            } => host_origin(host, *explicit_port, stand_in, values),
            Varies::Start { .. } => self.url(rest, values).map(|(origin, _)| origin),
        }
    }

    /// The item's origin and request target, with a placeholder at the URL's start; `None`
    /// otherwise (the target is then the template's path).
    pub fn url(&self, rest: &Template, values: &Values) -> Result<(Origin, Vec<u8>), UnusableKey> {
        let Varies::Start { start, .. } = self else {
            return Err(UnusableKey("the URL's start is fixed".into()));
        };
        let mut url = start.expand(values);
        rest.expand_into(values, &mut url);
        split_url(&url).map_err(|why| {
            let mut shown = crate::redact::redact_url(&String::from_utf8_lossy(&url));
            if shown.len() > 200 {
                let cut = (0..=200).rev().find(|&at| shown.is_char_boundary(at));
                shown.truncate(cut.unwrap_or(0));
                shown.push('…');
            }
            UnusableKey(format!("the URL {shown:?}: {why}"))
        })
    }

    /// True when each item's `Host` is its URL's authority (a placeholder at the URL's start,
    /// no `-H 'Host: …'`).
    pub fn host_from_url(&self) -> bool {
        matches!(
            self,
            Varies::Start {
                host_given: false,
                ..
            }
        )
    }
}

/// The stand-in origin of a template whose start is a placeholder: never dialed (each item
/// goes to its own), an address so that nothing resolves it.
fn stand_in() -> Origin {
    Origin {
        scheme: Scheme::Http,
        host: std::net::Ipv4Addr::UNSPECIFIED.to_string(),
        port: 80,
        authority: std::net::Ipv4Addr::UNSPECIFIED.to_string(),
    }
}

/// The origin with `host` filled from `values` (a value that cannot be part of a host name is
/// refused).
fn host_origin(
    host: &Template,
    explicit_port: bool,
    stand_in: &Origin,
    values: &Values,
) -> Result<Origin, UnusableKey> {
    let not_a_host = || UnusableKey("the key cannot be part of a host name".into());
    let host = host.expand(values);
    let label_byte = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    let empty_label = host.first() == Some(&b'.') || host.windows(2).any(|w| w == b"..");
    if host.is_empty() || host.len() > 253 || empty_label || !host.iter().all(label_byte) {
        return Err(not_a_host());
    }
    let host = String::from_utf8(host).map_err(|_| not_a_host())?;
    let authority = if explicit_port {
        format!("{host}:{}", stand_in.port)
    } else {
        host.clone()
    };
    Ok(Origin {
        scheme: stand_in.scheme,
        host,
        port: stand_in.port,
        authority,
    })
}
