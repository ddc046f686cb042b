//! `{id}` templates: text compiled once into literal parts and holes, expanded per item into a
//! reused buffer (no allocation per request once the buffer has grown). Each hole says how the
//! key is written into it: as it is, or percent-encoded where it lands in a URL.

/// Every occurrence of this in a template is replaced by the item's key.
pub const PLACEHOLDER: &str = "{id}";

/// How a key is written into a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Byte for byte (header values, bodies).
    Raw,
    /// Percent-encoded except for RFC 3986's unreserved characters, so that a key holding a
    /// space, `&`, `/`, `?`, `%`, `+` or non-ASCII stays one path segment or query value.
    Url,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    Hole,
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    escape: Escape,
}

impl Template {
    /// Splits `source` at every `{id}`.
    pub fn new(source: &[u8], escape: Escape) -> Self {
        let hole = PLACEHOLDER.as_bytes();
        let mut parts = Vec::new();
        let mut rest = source;
        loop {
            let at = rest.windows(hole.len()).position(|w| w == hole);
            let literal = &rest[..at.unwrap_or(rest.len())];
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_vec()));
            }
            match at {
                Some(at) => {
                    parts.push(Part::Hole);
                    rest = &rest[at + hole.len()..];
                }
                None => break,
            }
        }
        Self { parts, escape }
    }

    pub fn has_hole(&self) -> bool {
        self.parts.contains(&Part::Hole)
    }

    /// Appends the template with every hole filled by `key` to `out`.
    pub fn expand_into(&self, key: &[u8], out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text),
                Part::Hole => match self.escape {
                    Escape::Raw => out.extend_from_slice(key),
                    Escape::Url => percent_encode(key, out),
                },
            }
        }
    }

    /// The expansion for `key` as a new buffer (set-up and checks, not the hot path).
    pub fn expand(&self, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.expand_into(key, &mut out);
        out
    }
}

/// Appends `key` percent-encoded (RFC 3986 §2.1): every byte but `A-Z a-z 0-9 - . _ ~`.
pub fn percent_encode(key: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_every_hole_and_appends_to_the_buffer() {
        let t = Template::new(b"/{id}/log?id={id}&x=1", Escape::Raw);
        let mut out = b"GET ".to_vec();
        t.expand_into(b"42", &mut out);
        assert_eq!(out, b"GET /42/log?id=42&x=1");
        assert!(t.has_hole());
        assert_eq!(Template::new(b"{id}", Escape::Raw).expand(b"7"), b"7");
        assert!(!Template::new(b"no hole", Escape::Raw).has_hole());
    }

    #[test]
    fn url_holes_percent_encode_everything_but_unreserved() {
        let t = Template::new(b"/u?name={id}", Escape::Url);
        assert_eq!(
            t.expand("a b&c/d?e%f+g~h.é".as_bytes()),
            b"/u?name=a%20b%26c%2Fd%3Fe%25f%2Bg~h.%C3%A9"
        );
        assert_eq!(
            t.expand(b"12345"),
            b"/u?name=12345",
            "numbers pass as they are"
        );
    }
}
