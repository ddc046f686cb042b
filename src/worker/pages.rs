//! `--next`: an item's chain of pages. Where a chain stands ([`Chain`]: the page about to be
//! fetched and what the page before gave), the request for a page after the first (a [`Hop`]
//! to the URL the page before gave, or the item's first URL with the cursor as a query
//! parameter), and what an answer gives for the next page: the `rel="next"` of its `Link`
//! header, or an `--extract` expression of its body. A URL is resolved against the page it
//! came from, so the `next` column (and `--resume`) holds it whole.

use std::hash::{Hash, Hasher};

use super::failure::Failure;
use crate::extract::{ExtractError, ExtractSpec, Extractor};
use crate::model::{ErrorKind, Pages};
use crate::request::{Hop, Origin, RequestTemplate, Scheme, resolve_location};
use crate::template::{Values, percent_encode};

/// Where an item's chain of pages stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// The page about to be fetched (0: the item's first URL).
    pub page: u32,
    /// After the first page: what the page before gave (a URL, or a cursor).
    pub next: Option<Vec<u8>>,
    /// Hashes of every next this chain was given: one given twice is a loop.
    seen: Vec<u64>,
}

impl Chain {
    /// A chain that goes on from page `page` at `next` (a resumed one).
    pub fn from(page: u32, next: Vec<u8>) -> Chain {
        Chain {
            page,
            next: Some(next),
            seen: Vec::new(),
        }
    }

    /// True when `next` was given before in this chain.
    pub fn has_seen(&self, next: &[u8]) -> bool {
        self.seen.contains(&hash(next))
    }

    /// The chain after a page that gave `next`.
    pub fn advanced(&self, next: Vec<u8>) -> Chain {
        let mut seen = self.seen.clone();
        seen.push(hash(&next));
        Chain {
            page: self.page + 1,
            next: Some(next),
            seen,
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// How a worker follows pages.
pub struct Paging {
    pages: Pages,
    /// The expression that reads the next from a body (not for `link`).
    extractor: Option<Extractor>,
}

impl Paging {
    pub fn new(pages: &Pages) -> Result<Paging, ExtractError> {
        let extractor = match pages.by_link() {
            true => None,
            false => Some(Extractor::compile(&[ExtractSpec {
                name: "next".into(),
                expr: pages.next.clone(),
            }])?),
        };
        Ok(Paging {
            pages: pages.clone(),
            extractor,
        })
    }

    pub fn pages(&self) -> &Pages {
        &self.pages
    }

    /// The request for the chain's page: `None` for a first page (the template's own).
    pub fn hop(
        &self,
        template: &RequestTemplate,
        values: &Values,
        chain: &Chain,
    ) -> Result<Option<Hop>, Failure> {
        let Some(next) = &chain.next else {
            return Ok(None);
        };
        let bad = |detail: &str| Failure {
            kind: ErrorKind::Request,
            answered: false,
            detail: format!("the next page: {detail}"),
        };
        let (origin, target) = match &self.pages.param {
            Some(name) => {
                let origin = template
                    .origin_of(values)
                    .map_err(|_| bad("the key cannot be part of a host name"))?;
                (
                    origin,
                    with_query_param(&template.target(values), name, next),
                )
            }
            None => {
                let url = std::str::from_utf8(next).map_err(|_| bad("not UTF-8"))?;
                resolve_location(&template.origin, b"/", url)
                    .ok_or_else(|| bad("not an http(s) URL"))?
            }
        };
        Ok(Some(Hop {
            origin,
            target,
            method: template.method.clone(),
            with_body: true,
        }))
    }

    /// What an answer to the page at `origin` and `target` gives for the next page: the URL
    /// resolved against the page (or, with `--next-param`, the cursor as it is); `None` when
    /// it gives none.
    pub fn next_of(
        &self,
        origin: &Origin,
        target: &[u8],
        link: Option<&[u8]>,
        body: &[u8],
    ) -> Option<Vec<u8>> {
        let given = match &self.extractor {
            None => next_link(link?)?,
            Some(extractor) => extractor.run(body).0.into_iter().next().flatten()?,
        };
        let given = trim(&given);
        if given.is_empty() {
            return None;
        }
        if self.pages.param.is_some() {
            return Some(given.to_vec());
        }
        let text = std::str::from_utf8(given).ok()?;
        let (origin, target) = resolve_location(origin, target, text)?;
        Some(url_of(&origin, &target))
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(start), Some(end)) => &bytes[start..=end],
        _ => &[],
    }
}

/// `scheme://authority/target`.
pub fn url_of(origin: &Origin, target: &[u8]) -> Vec<u8> {
    let scheme = match origin.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let mut url = format!("{scheme}://{}", origin.authority).into_bytes();
    url.extend_from_slice(target);
    url
}

/// The target of a `rel="next"` link of a `Link` header value (RFC 8288): `<URL>; rel="next"`,
/// among others separated by commas; `rel` may hold several relation types.
fn next_link(value: &[u8]) -> Option<Vec<u8>> {
    let mut rest = std::str::from_utf8(value).ok()?;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        // The link's parameters run to the next link (a comma outside quotes and brackets).
        let params_end = rest[close..]
            .find(", <")
            .or_else(|| rest[close..].find(",<"))
            .map_or(rest.len(), |at| close + at);
        let params = &rest[close + 1..params_end];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.as_bytes().to_vec());
        }
        rest = &rest[params_end..];
    }
    None
}

/// `target` with query parameter `name` set to `value` (percent-encoded), in place of any of
/// that name.
fn with_query_param(target: &[u8], name: &str, value: &[u8]) -> Vec<u8> {
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(at) => (&target[..at], &target[at + 1..]),
        None => (target, &b""[..]),
    };
    let mut out = path.to_vec();
    out.push(b'?');
    for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
        if key != name.as_bytes() {
            out.extend_from_slice(pair);
            out.push(b'&');
        }
    }
    percent_encode(name.as_bytes(), &mut out);
    out.push(b'=');
    percent_encode(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        let header = br#"<https://api.example/x?page=1>; rel="prev", <https://api.example/x?page=3>; rel="next last""#;
        assert_eq!(
            next_link(header),
            Some(b"https://api.example/x?page=3".to_vec())
        );
        assert_eq!(
            next_link(br#"</a?b=1,2>; rel=next"#),
            Some(b"/a?b=1,2".to_vec())
        );
        assert_eq!(next_link(br#"<https://a/x>; rel="prev""#), None);
        assert_eq!(next_link(b"garbage"), None);
    }

    #[test]
    fn a_cursor_replaces_its_query_parameter() {
        assert_eq!(
            with_query_param(b"/list?key=7&after=old&x=1", "after", b"a b/c"),
            b"/list?key=7&x=1&after=a%20b%2Fc"
        );
        assert_eq!(with_query_param(b"/list", "after", b"z"), b"/list?after=z");
    }

    #[test]
    fn a_relative_next_is_resolved_against_its_page() {
        let paging = Paging::new(&Pages {
            next: "/next".into(),
            param: None,
            max_pages: None,
        })
        .expect("compiles");
        let origin = Origin {
            scheme: Scheme::Http,
            host: "h".into(),
            port: 8080,
            authority: "h:8080".into(),
        };
        let next = |body: &[u8]| paging.next_of(&origin, b"/list/json?key=1&page=0", None, body);
        assert_eq!(
            next(br#"{"next":"json?key=1&page=1"}"#),
            Some(b"http://h:8080/list/json?key=1&page=1".to_vec())
        );
        assert_eq!(next(br#"{"next":null}"#), None);
        assert_eq!(next(br#"{"next":""}"#), None);
        assert_eq!(next(br#"{"items":[]}"#), None);
        let chain = Chain::default().advanced(b"u1".to_vec());
        assert!(chain.has_seen(b"u1") && !chain.has_seen(b"u2"));
        assert_eq!(chain.page, 1);
    }
}
