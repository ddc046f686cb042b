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
use crate::request::{Hop, Origin, RequestTemplate};
use crate::template::{Values, percent_encode};
use crate::url::resolve;

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
                resolve(&template.origin, b"/", url).map_err(|e| bad(&e.to_string()))?
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
    /// it gives none; an error, holding what it gave, when that cannot be followed (another
    /// scheme, a port above 65535, `user:pw@`, …): the chain must not end as if that page were
    /// its last.
    pub fn next_of(
        &self,
        origin: &Origin,
        target: &[u8],
        link: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, UnusableNext> {
        let given = match &self.extractor {
            None => link.and_then(next_link),
            Some(extractor) => extractor.run(body).0.into_iter().next().flatten(),
        };
        let Some(given) = given else {
            return Ok(None);
        };
        let given = trim(&given);
        if given.is_empty() {
            return Ok(None);
        }
        if self.pages.param.is_some() {
            return Ok(Some(given.to_vec()));
        }
        let unusable = |why: String| UnusableNext {
            given: given.to_vec(),
            why,
        };
        let text = std::str::from_utf8(given).map_err(|_| unusable("not UTF-8".into()))?;
        resolve(origin, target, text)
            .map(|(origin, target)| Some(url_of(&origin, &target)))
            .map_err(|e| unusable(e.to_string()))
    }

    /// The URL of an item's first page in the form its nexts take (none with `--next-param`,
    /// whose nexts are cursors): a next that leads back to it is a loop too.
    pub fn first_page(&self, template: &RequestTemplate, values: &Values) -> Option<Vec<u8>> {
        if self.pages.param.is_some() {
            return None;
        }
        let origin = template.origin_of(values).ok()?;
        Some(url_of(&origin, &template.target(values)))
    }
}

/// A next a page gave that cannot be followed: its row keeps it, as an error.
#[derive(Debug, PartialEq, Eq)]
pub struct UnusableNext {
    pub given: Vec<u8>,
    pub why: String,
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
    let mut url = format!("{}://{}", origin.scheme.as_str(), origin.authority).into_bytes();
    url.extend_from_slice(target);
    url
}

/// The target of a `rel="next"` link of a `Link` header value (RFC 8288 §3): `<URL>; rel="next"`,
/// among others separated by commas; `rel` may hold several relation types. A parameter's value
/// may be a quoted string, in which commas, semicolons and `<` are text (`title="a, </x>;
/// rel=next"` is no link of its own).
fn next_link(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let mut rest = text.trim_start_matches([' ', '\t', ',']);
    while !rest.is_empty() {
        let Some(after_open) = rest.strip_prefix('<') else {
            // Not a link: skipped to the next comma.
            let end = rest.find(',').map_or(rest.len(), |at| at + 1);
            rest = rest[end..].trim_start_matches([' ', '\t', ',']);
            continue;
        };
        let close = after_open.find('>')?;
        let target = &after_open[..close];
        let (params, after) = link_params(&after_open[close + 1..]);
        let is_next = params.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("rel")
                && value
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.as_bytes().to_vec());
        }
        rest = after.trim_start_matches([' ', '\t', ',']);
    }
    None
}

/// The `; name=value` parameters at the start of `text` (a quoted value unquoted), up to the
/// comma that ends the link outside quotes; and what follows that comma.
fn link_params(text: &str) -> (Vec<(&str, String)>, &str) {
    let mut params = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let Some(after) = rest.strip_prefix(';') else {
            // A comma ends the link; anything else (garbage) runs to the next comma.
            let end = rest.find(',').map_or(rest.len(), |at| at + 1);
            return (params, &rest[end..]);
        };
        let name_end = after.find(['=', ';', ',']).unwrap_or(after.len());
        let name = after[..name_end].trim();
        rest = &after[name_end..];
        let Some(value) = rest.strip_prefix('=') else {
            params.push((name, String::new()));
            continue;
        };
        let value = value.trim_start_matches([' ', '\t']);
        if let Some(quoted) = value.strip_prefix('"') {
            let mut unquoted = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((at, c)) = chars.next() {
                match c {
                    '\\' => unquoted.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = at + 1;
                        break;
                    }
                    c => unquoted.push(c),
                }
            }
            params.push((name, unquoted));
            rest = &quoted[end..];
        } else {
            let end = value.find([';', ',']).unwrap_or(value.len());
            params.push((name, value[..end].trim().to_string()));
            rest = &value[end..];
        }
    }
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
    use crate::url::Scheme;

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
        assert_eq!(next_link(b"garbage, </n>; rel=next"), Some(b"/n".to_vec()));
        // RFC 8288 §3: a comma inside a quoted parameter does not end the link.
        assert_eq!(
            next_link(br#"</a>; rel="prev"; title="x, </evil>; rel=next", </b>; rel=next"#),
            Some(b"/b".to_vec())
        );
        assert_eq!(
            next_link(br#"</a>; title="x, </evil>; rel=\"next\""; rel=prev"#),
            None
        );
        assert_eq!(
            next_link(br#"</a>;rel=next;title="x""#),
            Some(b"/a".to_vec())
        );
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
            Ok(Some(b"http://h:8080/list/json?key=1&page=1".to_vec()))
        );
        assert_eq!(
            next(br#"{"next":"/echo/0?return=https://example.com/x"}"#),
            Ok(Some(
                b"http://h:8080/echo/0?return=https://example.com/x".to_vec()
            )),
            "a relative reference, `://` in its query or not"
        );
        assert_eq!(next(br#"{"next":null}"#), Ok(None));
        assert_eq!(next(br#"{"next":""}"#), Ok(None));
        assert_eq!(next(br#"{"items":[]}"#), Ok(None));
        for unusable in [
            "ftp://h/x",
            "file:///etc/passwd",
            "http://u:pw@h/x",
            "http://h:70000/",
        ] {
            let body = format!(r#"{{"next":"{unusable}"}}"#);
            assert!(
                matches!(next(body.as_bytes()), Err(UnusableNext { given, .. }) if given == unusable.as_bytes()),
                "{unusable}"
            );
        }
        let chain = Chain::default().advanced(b"u1".to_vec());
        assert!(chain.has_seen(b"u1") && !chain.has_seen(b"u2"));
        assert_eq!(chain.page, 1);
    }
}
