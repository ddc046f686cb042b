//! JSON Lines key files (`--keys keys.jsonl`): one flat object per line, its fields the columns.
//! A field's text is what fills a placeholder and what the row keeps, so both come from one
//! place ([`field`]): strings unescaped, integers exactly as written (serde_json's `Value` turns
//! one beyond 64 bits into a float), floats as their shortest round-trip text, booleans as
//! `true`/`false`, nested values as compact JSON, `null` absent. A column's kind is the widest
//! of its values' ([`Kinds`]), and narrower only when every value it held reads back exactly in it.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::row::KeyKind;

/// A JSON object's fields in file order, each value as its JSON text.
pub struct RawObject(Vec<(String, Box<RawValue>)>);

impl RawObject {
    /// `line` as an object; `None` when it is not one.
    pub fn parse(line: &[u8]) -> Option<RawObject> {
        serde_json::from_slice(line).ok()
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.0.iter().map(|(name, value)| (name.as_str(), &**value))
    }

    /// The value of field `name` (the last, if the object repeats it).
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| &**v)
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push(field);
                }
                Ok(RawObject(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// What one value is, for its column's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Boolean,
    /// An integer that fits an `i64`; `exact_f64` when a double holds it exactly (|n| ≤ 2^53).
    Integer {
        exact_f64: bool,
    },
    /// An integer beyond `i64` (no Int64 column holds it): its column is text.
    WideInteger,
    Float,
    Text,
}

/// Appends the text `value` fills a placeholder with to `out`: `None` (nothing appended) for
/// `null`, else what the value is.
pub fn field(value: &RawValue, out: &mut Vec<u8>) -> Option<Seen> {
    let text = value.get();
    match text.as_bytes().first() {
        None | Some(b'n') => None,
        Some(b't' | b'f') => {
            out.extend_from_slice(text.as_bytes());
            Some(Seen::Boolean)
        }
        Some(b'"') => {
            let unescaped: String = serde_json::from_str(text).unwrap_or_default();
            out.extend_from_slice(unescaped.as_bytes());
            Some(Seen::Text)
        }
        Some(b'[' | b'{') => {
            // Compact, whatever spacing the file has.
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(nested) => {
                    serde_json::to_writer(out, &nested).expect("a Vec takes any write");
                }
                Err(_) => out.extend_from_slice(text.as_bytes()),
            }
            Some(Seen::Text)
        }
        Some(_) => Some(number(text, out)),
    }
}

/// A JSON number's text (valid JSON: no `+`, no leading zeros), kept exact.
fn number(text: &str, out: &mut Vec<u8>) -> Seen {
    if !text.contains(['.', 'e', 'E']) {
        out.extend_from_slice(text.as_bytes());
        return match text.parse::<i64>() {
            Ok(n) => Seen::Integer {
                exact_f64: n.unsigned_abs() <= 1 << 53,
            },
            Err(_) => Seen::WideInteger,
        };
    }
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => {
            serde_json::to_writer(out, &x).expect("a Vec takes any write");
            Seen::Float
        }
        // `1e400`: no double holds it; kept as written, as text.
        _ => {
            out.extend_from_slice(text.as_bytes());
            Seen::Text
        }
    }
}

/// A column's kind so far: integers widen to floats when a double holds every one of them
/// exactly, anything else mixed is text. `None` while it has held only nulls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kinds {
    kind: Option<KeyKind>,
    /// An integer beyond 2^53 was seen: the column cannot become a float column.
    inexact_in_f64: bool,
}

impl Kinds {
    pub fn widen(&mut self, seen: Seen) {
        let this = match seen {
            Seen::Boolean => KeyKind::Boolean,
            Seen::Integer { exact_f64 } => {
                self.inexact_in_f64 |= !exact_f64;
                KeyKind::Integer
            }
            Seen::WideInteger | Seen::Text => KeyKind::Text,
            Seen::Float => KeyKind::Float,
        };
        self.kind = Some(match (self.kind, this) {
            (None, this) => this,
            (Some(a), b) if a == b => a,
            (Some(KeyKind::Integer), KeyKind::Float) | (Some(KeyKind::Float), KeyKind::Integer) => {
                KeyKind::Float
            }
            _ => KeyKind::Text,
        });
    }

    /// The column's kind: text when it held only nulls, or a float column would round one of
    /// its integers (the row must hold the key that was requested).
    pub fn kind(&self) -> KeyKind {
        match self.kind {
            None => KeyKind::Text,
            Some(KeyKind::Float) if self.inexact_in_f64 => KeyKind::Text,
            Some(kind) => kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(json: &str) -> (Option<Seen>, String) {
        let raw: Box<RawValue> = serde_json::from_str(json).expect("json");
        let mut out = Vec::new();
        let seen = field(&raw, &mut out);
        (seen, String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        assert_eq!(
            text_of("98765432109876543210"),
            (Some(Seen::WideInteger), "98765432109876543210".into())
        );
        assert_eq!(
            text_of("18446744073709551615"),
            (Some(Seen::WideInteger), "18446744073709551615".into()),
            "above i64::MAX: no Int64 holds it"
        );
        assert_eq!(
            text_of("9007199254740993"),
            (
                Some(Seen::Integer { exact_f64: false }),
                "9007199254740993".into()
            )
        );
        assert_eq!(
            text_of("-42"),
            (Some(Seen::Integer { exact_f64: true }), "-42".into())
        );
        assert_eq!(text_of("2.50"), (Some(Seen::Float), "2.5".into()));
        assert_eq!(text_of("1e400"), (Some(Seen::Text), "1e400".into()));
        assert_eq!(text_of(r#""a\"b""#), (Some(Seen::Text), "a\"b".into()));
        assert_eq!(text_of("[1, 2]"), (Some(Seen::Text), "[1,2]".into()));
        assert_eq!(text_of("null"), (None, String::new()));
    }

    #[test]
    fn a_column_is_a_float_only_when_a_double_holds_every_value() {
        let kind = |seen: &[Seen]| {
            let mut kinds = Kinds::default();
            seen.iter().for_each(|s| kinds.widen(*s));
            kinds.kind()
        };
        let small = Seen::Integer { exact_f64: true };
        let large = Seen::Integer { exact_f64: false };
        assert_eq!(kind(&[]), KeyKind::Text);
        assert_eq!(kind(&[small, large]), KeyKind::Integer);
        assert_eq!(kind(&[small, Seen::Float]), KeyKind::Float);
        assert_eq!(kind(&[large, Seen::Float]), KeyKind::Text);
        assert_eq!(kind(&[Seen::Float, large]), KeyKind::Text);
        assert_eq!(kind(&[small, Seen::WideInteger]), KeyKind::Text);
        assert_eq!(kind(&[Seen::Boolean, Seen::Boolean]), KeyKind::Boolean);
    }
}
