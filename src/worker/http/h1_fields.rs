//! The header fields of an answer's head that shape how it is read, for `h1_parse`: which
//! names it acts on (in any case, compared a word at a time) and the forms of their values
//! (a plain decimal length, a value folded over lines).

use crate::worker::schedule::quota;

/// The headers that shape how an answer is read.
pub(super) enum Known {
    ContentLength,
    TransferEncoding,
    Connection,
    RetryAfter,
    Location,
    ContentEncoding,
    RateLimit(quota::Field),
    Other,
}

impl Known {
    /// `name` must be a header name as `h1_head` passes it (a token, RFC 9110 §5.6.2).
    pub(super) fn of(name: &[u8]) -> Known {
        let is = |known: &str| token_is(name, known.as_bytes());
        // The length first: most header lines are none of these, and differ in length.
        match name.len() {
            14 if is("content-length") => Known::ContentLength,
            17 if is("transfer-encoding") => Known::TransferEncoding,
            10 if is("connection") => Known::Connection,
            11 if is("retry-after") => Known::RetryAfter,
            16 if is("content-encoding") => Known::ContentEncoding,
            8 if is("location") => Known::Location,
            _ => quota::Field::of(name).map_or(Known::Other, Known::RateLimit),
        }
    }
}

/// Whether `token` is `lower` (lower-case letters and `-`, at least 8 bytes, as long as
/// `token`) in any case. Eight bytes folded at once (the last word overlapping the one before):
/// byte by byte, comparing the names of the answer's lines was 2% of a plain request's
/// instructions. Setting bit 5 maps an upper-case letter to its lower case and leaves `-` as
/// it is; no other token byte (which excludes CR, 0x0D) lands on a lower-case letter or `-`.
fn token_is(token: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower.len() >= 8 && token.len() == lower.len());
    let word = |bytes: &[u8], at: usize| {
        let mut eight = [0; 8];
        eight.copy_from_slice(&bytes[at..at + 8]);
        u64::from_ne_bytes(eight)
    };
    let fold = u64::from_ne_bytes([0x20; 8]);
    let last = lower.len() - 8;
    let mut at = 0;
    loop {
        let at_or_last = at.min(last);
        if word(token, at_or_last) | fold != word(lower, at_or_last) {
            return false;
        }
        if at_or_last == last {
            return true;
        }
        at += 8;
    }
}

/// `  42 ` → 42: decimal digits between optional blanks, no sign, no overflow.
pub(super) fn parse_decimal(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Appends a header value with each obsolete line fold (a line end and the blanks after it)
/// replaced by one space, as RFC 9112 §5.2 tells a user agent to.
pub(super) fn unfold_into(value: &[u8], out: &mut Vec<u8>) {
    let mut rest = value;
    while let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        out.extend_from_slice(&rest[..end]);
        out.push(b' ');
        let blanks = rest[end..]
            .iter()
            .take_while(|&&b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .count();
        rest = &rest[end + blanks..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_name_matches_in_any_case_and_no_other_token_does() {
        let token_bytes: Vec<u8> = (b'0'..=b'9')
            .chain(b'a'..=b'z')
            .chain(b'A'..=b'Z')
            .chain(*b"!#$%&'*+-.^_`|~")
            .collect();
        for known in [
            "content-length",
            "transfer-encoding",
            "connection",
            "retry-after",
            "content-encoding",
            "location",
        ] {
            let upper = known.to_ascii_uppercase();
            assert!(token_is(known.as_bytes(), known.as_bytes()));
            assert!(token_is(upper.as_bytes(), known.as_bytes()));
            // Every token byte at every place: a match exactly when the bytes match in any case.
            for at in 0..known.len() {
                for &b in &token_bytes {
                    let mut name = upper.clone().into_bytes();
                    name[at] = b;
                    let expected = name.eq_ignore_ascii_case(known.as_bytes());
                    assert_eq!(
                        token_is(&name, known.as_bytes()),
                        expected,
                        "{known} {at} {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn content_length_is_plain_decimal() {
        assert_eq!(parse_decimal(b" 42 "), Some(42));
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b"1 2"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
    }
}
