//! Templates with `{name}` holes: text compiled once into literal parts and holes, expanded per
//! item into a reused buffer (no allocation per request once the buffer has grown). A hole is a
//! slot of the item's [`Values`]: `{id}` is slot 0, a key file's columns the slots after it. Each
//! hole says how its value is written: as it is, or percent-encoded where it lands in a URL.
//! Braces around any other text stay literal (a JSON body keeps its `{"a": 1}`).

/// The name of slot 0: `{id}`.
pub const ID_NAME: &str = "id";

/// How a value is written into a hole.
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
    /// The value of this slot.
    Hole(usize),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    escape: Escape,
    /// The parts before the first literal `?`: a URL's path, where a value of only dots
    /// would be a dot segment.
    path_parts: usize,
}

/// The values one item fills holes with, in one reused buffer: slot 0 is `{id}`, then every
/// column of each key file, in order. A value may be absent (a JSON `null`, a missing field):
/// it fills a hole with nothing and leaves its column empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    bytes: Vec<u8>,
    /// Per slot: where its value ends in `bytes`, and whether it is present.
    slots: Vec<(usize, bool)>,
    /// The item's record could not be read (a malformed line of a key file): why. The item
    /// fails as `request` instead of being fetched.
    pub malformed: Option<String>,
}

impl Values {
    /// Values of one slot: `{id}` only.
    #[cfg(test)]
    pub fn one(id: &[u8]) -> Values {
        let mut values = Values::default();
        values.push(Some(id));
        values
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.slots.clear();
        self.malformed = None;
    }

    /// Appends the next slot's value.
    pub fn push(&mut self, value: Option<&[u8]>) {
        if let Some(value) = value {
            self.bytes.extend_from_slice(value);
        }
        self.slots.push((self.bytes.len(), value.is_some()));
    }

    /// Appends the next slot's value, written by `write` into the buffer.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.bytes);
        self.slots.push((self.bytes.len(), true));
    }

    /// Appends the next slot's value, written by `write` into the buffer; absent when `write`
    /// says there is none (it must then have written nothing).
    pub fn push_field(&mut self, write: impl FnOnce(&mut Vec<u8>) -> bool) {
        let present = write(&mut self.bytes);
        self.slots.push((self.bytes.len(), present));
    }

    /// Appends every slot of `other` (and its malformation, if any).
    pub fn extend(&mut self, other: &Values) {
        for slot in 0..other.len() {
            self.push(other.get(slot));
        }
        if self.malformed.is_none() {
            self.malformed.clone_from(&other.malformed);
        }
    }

    /// Bytes held by every slot together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The value of `slot`; `None` when it is absent (or there is no such slot).
    pub fn get(&self, slot: usize) -> Option<&[u8]> {
        let &(end, present) = self.slots.get(slot)?;
        let start = slot.checked_sub(1).map_or(0, |before| self.slots[before].0);
        present.then(|| &self.bytes[start..end])
    }

    /// `{id}`'s value (empty when there is none).
    pub fn id(&self) -> &[u8] {
        self.get(0).unwrap_or_default()
    }

    /// The values after `{id}`: the key files' columns, as a row keeps them.
    pub fn columns(&self) -> Vec<Option<Vec<u8>>> {
        (1..self.len())
            .map(|slot| self.get(slot).map(<[u8]>::to_vec))
            .collect()
    }
}

impl Template {
    /// Splits `source` at every `{id}`.
    #[cfg(test)]
    pub fn new(source: &[u8], escape: Escape) -> Self {
        Self::with_names(source, escape, &[ID_NAME])
    }

    /// Splits `source` at every `{name}` of `names` (slot k for `names[k]`).
    pub fn with_names(source: &[u8], escape: Escape, names: &[impl AsRef<str>]) -> Self {
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        for piece in Pieces::new(source, names) {
            match piece {
                Piece::Text(text) | Piece::Stranger { text, .. } => {
                    literal.extend_from_slice(text);
                }
                Piece::Hole(slot) => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Hole(slot));
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let path_parts = parts
            .iter()
            .position(|p| matches!(p, Part::Literal(text) if text.contains(&b'?')))
            .unwrap_or(parts.len());
        Self {
            parts,
            escape,
            path_parts,
        }
    }

    /// `text` as it is: no hole, whatever braces it holds.
    pub fn literal(text: &[u8]) -> Self {
        Self {
            parts: vec![Part::Literal(text.to_vec())],
            escape: Escape::Raw,
            path_parts: 1,
        }
    }

    pub fn has_hole(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Hole(_)))
    }

    /// The slots this template's holes take values from.
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Hole(slot) => Some(*slot),
            Part::Literal(_) => None,
        })
    }

    /// The slots of the holes before the first literal `stop` byte (with `?`: a URL's path).
    pub fn slots_before(&self, stop: u8) -> Vec<usize> {
        let mut slots = Vec::new();
        for part in &self.parts {
            match part {
                Part::Hole(slot) => slots.push(*slot),
                Part::Literal(text) if text.contains(&stop) => break,
                Part::Literal(_) => {}
            }
        }
        slots
    }

    /// Appends the template with every hole filled from `values` to `out`.
    pub fn expand_into(&self, values: &Values, out: &mut Vec<u8>) {
        for (at, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(text) => out.extend_from_slice(text),
                Part::Hole(slot) => {
                    let value = values.get(*slot).unwrap_or_default();
                    let dots = !value.is_empty() && value.iter().all(|&b| b == b'.');
                    match self.escape {
                        Escape::Raw => out.extend_from_slice(value),
                        // A key of only dots (`..`, `.`) in the path would be a dot segment,
                        // which servers resolve to the parent (RFC 3986 §5.2.4).
                        Escape::Url if dots && at < self.path_parts => {
                            value.iter().for_each(|_| out.extend_from_slice(b"%2E"));
                        }
                        Escape::Url => percent_encode(value, out),
                    }
                }
            }
        }
    }

    /// The expansion for `values` as a new buffer (set-up and checks, not the hot path).
    pub fn expand(&self, values: &Values) -> Vec<u8> {
        let mut out = Vec::new();
        self.expand_into(values, &mut out);
        out
    }
}

/// The `{name}`s of `source` that no name of `names` fills, as written (`{date}`): text that
/// looks like a placeholder (see [`Pieces`]) and would be sent as it is, braces and all.
pub fn unfilled<'s>(source: &'s [u8], names: &[impl AsRef<str>]) -> Vec<&'s str> {
    Pieces::new(source, names)
        .filter_map(|piece| match piece {
            Piece::Stranger { name, .. } => Some(name),
            Piece::Text(_) | Piece::Hole(_) => None,
        })
        .collect()
}

/// A run of a template's source, as [`Pieces`] cuts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'s> {
    /// Bytes sent as they are.
    Text(&'s [u8]),
    /// `{name}` of the name of slot k.
    Hole(usize),
    /// `{name}` shaped like a placeholder (a letter or `_`, then letters, digits, `_`, `-` or
    /// `.`) whose name fills no slot: sent as it is, which the run refuses before it starts.
    Stranger { text: &'s [u8], name: &'s str },
}

/// The one reading of a template's braces: from each `{` to the first `}` after it is a hole
/// when the text between them is a slot's name; any other braces stay text (a JSON body's
/// `{"a": 1}`, `{ a }`), the `{` alone being text when what follows holds no name.
struct Pieces<'s, 'n, N> {
    rest: &'s [u8],
    names: &'n [N],
}

impl<'s, 'n, N: AsRef<str>> Pieces<'s, 'n, N> {
    fn new(source: &'s [u8], names: &'n [N]) -> Self {
        Self {
            rest: source,
            names,
        }
    }

    /// Cuts `rest` at `at`: the piece before it, the rest after.
    fn take(&mut self, at: usize) -> &'s [u8] {
        let (piece, rest) = self.rest.split_at(at);
        self.rest = rest;
        piece
    }
}

impl<'s, N: AsRef<str>> Iterator for Pieces<'s, '_, N> {
    type Item = Piece<'s>;

    fn next(&mut self) -> Option<Piece<'s>> {
        if self.rest.is_empty() {
            return None;
        }
        match self.rest.iter().position(|&b| b == b'{') {
            None => return Some(Piece::Text(self.take(self.rest.len()))),
            Some(0) => {}
            Some(open) => return Some(Piece::Text(self.take(open))),
        }
        let Some(close) = self.rest.iter().position(|&b| b == b'}') else {
            return Some(Piece::Text(self.take(self.rest.len())));
        };
        let name = &self.rest[1..close];
        if let Some(slot) = self
            .names
            .iter()
            .position(|n| n.as_ref().as_bytes() == name)
        {
            self.take(close + 1);
            return Some(Piece::Hole(slot));
        }
        if let Some(name) = std::str::from_utf8(name)
            .ok()
            .filter(|n| looks_like_name(n))
        {
            return Some(Piece::Stranger {
                text: self.take(close + 1),
                name,
            });
        }
        Some(Piece::Text(self.take(1)))
    }
}

/// True for the text of a placeholder as people write one (`user`, `day_2`, `x-id`): a letter
/// or `_`, then letters, digits, `_`, `-` or `.`; never JSON (`"a": 1`) nor a regex count (`2`).
fn looks_like_name(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
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
        t.expand_into(&Values::one(b"42"), &mut out);
        assert_eq!(out, b"GET /42/log?id=42&x=1");
        assert!(t.has_hole());
        assert_eq!(
            Template::new(b"{id}", Escape::Raw).expand(&Values::one(b"7")),
            b"7"
        );
        assert!(!Template::new(b"no hole", Escape::Raw).has_hole());
    }

    #[test]
    fn url_holes_percent_encode_everything_but_unreserved() {
        let t = Template::new(b"/u?name={id}", Escape::Url);
        assert_eq!(
            t.expand(&Values::one("a b&c/d?e%f+g~h.é".as_bytes())),
            b"/u?name=a%20b%26c%2Fd%3Fe%25f%2Bg~h.%C3%A9"
        );
        assert_eq!(
            t.expand(&Values::one(b"12345")),
            b"/u?name=12345",
            "numbers pass as they are"
        );
    }

    #[test]
    fn a_key_of_only_dots_is_no_dot_segment() {
        let t = Template::new(b"/api/users/{id}/delete?k={id}", Escape::Url);
        assert_eq!(
            t.expand(&Values::one(b"..")),
            b"/api/users/%2E%2E/delete?k=..",
            "in the query, dots are no segment"
        );
        assert_eq!(t.expand(&Values::one(b".")), b"/api/users/%2E/delete?k=.");
        assert_eq!(
            t.expand(&Values::one(b"a..b")),
            b"/api/users/a..b/delete?k=a..b",
            "dots beside other bytes make no dot segment"
        );
        assert_eq!(
            Template::new(b"/{id}", Escape::Raw).expand(&Values::one(b"..")),
            b"/..",
            "raw holes (headers, bodies) are as they are"
        );
        assert_eq!(t.slots_before(b'?'), [0]);
    }

    #[test]
    fn named_holes_take_their_slots_and_other_braces_stay() {
        let names = ["id", "user", "date"];
        let t = Template::with_names(
            br#"{"user":"{user}","on":"{date}","n":{id},"x":{nope}}"#,
            Escape::Raw,
            &names,
        );
        let mut values = Values::one(b"7");
        values.push(Some(b"ann"));
        values.push(None);
        assert_eq!(
            t.expand(&values),
            br#"{"user":"ann","on":"","n":7,"x":{nope}}"#
        );
        assert_eq!(t.slots().collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(values.get(2), None, "absent, not empty");
        assert_eq!(values.columns(), [Some(b"ann".to_vec()), None]);
        let unclosed = Template::with_names(b"a{user", Escape::Raw, &names);
        assert!(!unclosed.has_hole());
        assert_eq!(unclosed.expand(&values), b"a{user");
    }

    #[test]
    fn a_name_in_braces_that_no_slot_has_is_unfilled_and_other_braces_are_not() {
        let names = ["id", "user", "day"];
        assert_eq!(
            unfilled(b"/users/{user}/logs?date={date}&d={day}", &names),
            ["date"]
        );
        assert_eq!(unfilled(b"X-Day: {dya} {ID}", &names), ["dya", "ID"]);
        let json = br#"{"a": {id}, "b": {"c": 1}, "n": {}, "re": "a{2}", "q": "{ user }"}"#;
        assert!(
            unfilled(json, &names).is_empty(),
            "JSON and counts are text"
        );
        assert_eq!(unfilled(br#"{"a":{user_2}}"#, &names), ["user_2"]);
        assert!(unfilled(b"{unclosed", &names).is_empty());
        let t = Template::with_names(b"{dya}{day}", Escape::Raw, &names);
        let mut values = Values::one(b"7");
        values.push(Some(b"ann"));
        values.push(Some(b"mon"));
        assert_eq!(
            t.expand(&values),
            b"{dya}mon",
            "an unfilled name stays text"
        );
    }
}
