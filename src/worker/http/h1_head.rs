//! An answer's head as bytes (RFC 9112 §2.2, §4, §5): the status line checked, each field
//! line split into its name and value and handed on as it is read, the head's end found.
//! What the fields mean is `h1_parse`'s (and `h1_fields`'s).
//!
//! It takes what httparse takes with obsolete line folding allowed in answers, and one thing
//! more, as curl does: control bytes (0x00–0x1F but for tab, CR and LF, and 0x7F) in a value,
//! kept as sent (trimmed at its ends like spaces), where httparse refused the head and it was
//! parsed again from a copy. Written for the hot path rather than taken from httparse: a value
//! needs no check byte by byte (anything but a line end may be in it), so a line is a name
//! checked against a table and a search for the line's end. For nginx's five-line head the
//! worker's instructions per plain request went 7,260 → 7,050 (callgrind, 20,000 requests).

/// The status line's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StatusLine {
    /// `HTTP/1.1` (else `HTTP/1.0`).
    pub http11: bool,
    /// The three digits as sent (`000`–`999`).
    pub code: u16,
}

/// The bytes are not an HTTP/1.x answer head (or a field's value makes no sense to its reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

/// Scans the head at the start of `data`, handing each field to `field(name, value)` in order
/// (a folded value spans its lines, line ends included: `h1_fields::unfold_into` joins them).
/// Returns the status line and the head's length (its blank line included); `None` when the
/// head has not all arrived — fields already handed on will be handed on again, from the
/// first, by the scan that finds it whole. An error as soon as a byte says this is no head,
/// whole or not.
pub(super) fn scan_head<'d>(
    data: &'d [u8],
    mut field: impl FnMut(&'d [u8], &'d [u8]) -> Result<(), Malformed>,
) -> Result<Option<(StatusLine, usize)>, Malformed> {
    let Some(start) = after_empty_lines(data)? else {
        return Ok(None);
    };
    let Some((status, mut at)) = status_line(data, start)? else {
        return Ok(None);
    };
    loop {
        match data.get(at) {
            None => return Ok(None),
            Some(b'\r' | b'\n') => return Ok(past_line_end(data, at)?.map(|len| (status, len))),
            Some(_) => {}
        }
        let Some(line) = field_line(data, at)? else {
            return Ok(None);
        };
        field(line.name, line.value)?;
        at = line.next;
    }
}

/// Where the status line starts: empty lines before it are skipped (as httparse does).
fn after_empty_lines(data: &[u8]) -> Result<Option<usize>, Malformed> {
    let mut at = 0;
    loop {
        match data.get(at) {
            None => return Ok(None),
            Some(b'\r' | b'\n') => match past_line_end(data, at)? {
                Some(next) => at = next,
                None => return Ok(None),
            },
            Some(_) => return Ok(Some(at)),
        }
    }
}

/// `HTTP/1.x SP DIGIT DIGIT DIGIT [SP reason] line-end` from `start`; the status and where
/// the field lines start. The reason may hold tabs, spaces, visible ASCII and bytes past 0x7F.
fn status_line(data: &[u8], start: usize) -> Result<Option<(StatusLine, usize)>, Malformed> {
    const VERSION: &[u8; 7] = b"HTTP/1.";
    let line = &data[start..];
    let prefix = &line[..line.len().min(VERSION.len())];
    if prefix != &VERSION[..prefix.len()] {
        return Err(Malformed);
    }
    let Some(&[minor, space, hundreds, tens, ones]) = line.get(7..12) else {
        return status_line_so_far(&line[7.min(line.len())..]).map(|()| None);
    };
    let http11 = match minor {
        b'1' => true,
        b'0' => false,
        _ => return Err(Malformed),
    };
    if space != b' ' || ![hundreds, tens, ones].iter().all(u8::is_ascii_digit) {
        return Err(Malformed);
    }
    let code = [hundreds, tens, ones]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let status = StatusLine { http11, code };
    let mut at = start + 12;
    match data.get(at) {
        None => return Ok(None),
        Some(b' ') => at += 1,
        Some(b'\r' | b'\n') => {}
        Some(_) => return Err(Malformed),
    }
    loop {
        match data.get(at) {
            None => return Ok(None),
            Some(b'\r' | b'\n') => return Ok(past_line_end(data, at)?.map(|next| (status, next))),
            Some(&b) if b == b'\t' || b >= b' ' && b != 0x7f => at += 1,
            Some(_) => return Err(Malformed),
        }
    }
}

/// The bytes of a status line cut short after `HTTP/1.`: an error if what there is already
/// cannot be one.
fn status_line_so_far(after_version: &[u8]) -> Result<(), Malformed> {
    let fits = after_version.iter().enumerate().all(|(at, b)| match at {
        0 => matches!(b, b'0' | b'1'),
        1 => *b == b' ',
        _ => b.is_ascii_digit(),
    });
    if fits { Ok(()) } else { Err(Malformed) }
}

/// One field line read.
struct FieldLine<'d> {
    name: &'d [u8],
    value: &'d [u8],
    /// Where the next line starts.
    next: usize,
}

/// The field line at `at`: its name (a token), its value (leading and trailing blanks off,
/// obsolete folds kept inside), where the next line starts; `None` when it has not all
/// arrived (a line end must be followed by a byte that says whether a fold comes next).
fn field_line(data: &[u8], at: usize) -> Result<Option<FieldLine<'_>>, Malformed> {
    let mut colon = at;
    while colon < data.len() && is_token_byte(data[colon]) {
        colon += 1;
    }
    match data.get(colon) {
        None => return Ok(None),
        Some(b':') if colon > at => {}
        Some(_) => return Err(Malformed),
    }
    let mut from = colon + 1;
    loop {
        let Some(end) = memchr::memchr2(b'\r', b'\n', &data[from..]).map(|n| from + n) else {
            return Ok(None);
        };
        let Some(next) = past_line_end(data, end)? else {
            return Ok(None);
        };
        match data.get(next) {
            None => return Ok(None),
            // An obsolete fold (RFC 9112 §5.2): the value goes on.
            Some(b' ' | b'\t') => from = next,
            Some(_) => {
                return Ok(Some(FieldLine {
                    name: &data[at..colon],
                    value: trim_blanks(&data[colon + 1..end]),
                    next,
                }));
            }
        }
    }
}

/// Where the line end at `at` (CR LF, or a bare LF; `data[at]` is one of them) ends; `None`
/// when its LF has not arrived. A CR alone is no line end, and nothing else in a head.
fn past_line_end(data: &[u8], at: usize) -> Result<Option<usize>, Malformed> {
    match (data[at], data.get(at + 1)) {
        (b'\n', _) => Ok(Some(at + 1)),
        (_, None) => Ok(None),
        (_, Some(b'\n')) => Ok(Some(at + 2)),
        (_, Some(_)) => Err(Malformed),
    }
}

/// `value` without the spaces, tabs, control bytes and fold line ends around it.
#[inline]
fn trim_blanks(mut value: &[u8]) -> &[u8] {
    let blank = |b: u8| b <= b' ' || b == 0x7f;
    while let [first, rest @ ..] = value
        && blank(*first)
    {
        value = rest;
    }
    while let [rest @ .., last] = value
        && blank(*last)
    {
        value = rest;
    }
    value
}

/// A byte a field name may hold (`tchar`, RFC 9110 §5.6.2).
fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// `tchar` as a table: a name is checked a byte at a time, and a lookup is one load.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'!' | b'#'..=b'\'' | b'*' | b'+');
        table[b] |= matches!(c, b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The status, length and fields of a whole head; `None` when more bytes are needed.
    type Scanned = Option<(StatusLine, usize, Vec<(Vec<u8>, Vec<u8>)>)>;

    fn scan(head: &[u8]) -> Result<Scanned, Malformed> {
        let mut fields = Vec::new();
        let scanned = scan_head(head, |name, value| {
            fields.push((name.to_vec(), value.to_vec()));
            Ok(())
        })?;
        Ok(scanned.map(|(status, len)| (status, len, fields)))
    }

    /// What httparse (as the worker configured it before this module) makes of `head`, its
    /// values taken from the same place of `sent`: `Err(true)` when it refused the head for a
    /// byte in a header value.
    fn httparse_scan(head: &[u8], sent: &[u8]) -> Result<Scanned, bool> {
        let mut headers = vec![httparse::EMPTY_HEADER; head.len() / 2 + 1];
        let mut response = httparse::Response::new(&mut headers);
        let parsed = httparse::ParserConfig::default()
            .allow_obsolete_multiline_headers_in_responses(true)
            .parse_response(&mut response, head);
        match parsed {
            Ok(httparse::Status::Partial) => Ok(None),
            Ok(httparse::Status::Complete(len)) => {
                let status = StatusLine {
                    http11: response.version == Some(1),
                    code: response.code.unwrap_or_default(),
                };
                let fields = response
                    .headers
                    .iter()
                    .map(|h| {
                        let at = h.value.as_ptr() as usize - head.as_ptr() as usize;
                        let value = &sent[at..at + h.value.len()];
                        (h.name.as_bytes().to_vec(), value.to_vec())
                    })
                    .collect();
                Ok(Some((status, len, fields)))
            }
            Err(e) => Err(e == httparse::Error::HeaderValue),
        }
    }

    /// `head` with its control bytes made spaces, as the worker used to parse again a head
    /// httparse refused for one in a value.
    fn blanked(head: &[u8]) -> Vec<u8> {
        let blank = |&b: &u8| match b {
            b'\t' | b'\r' | b'\n' => b,
            0..=0x1f | 0x7f => b' ',
            _ => b,
        };
        head.iter().map(blank).collect()
    }

    #[test]
    fn nginx_head_is_read_whole_and_each_cut_of_it_wants_more() {
        let head = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 10:30:23 GMT\r\n\
            Content-Type: application/json\r\nContent-Length: 48\r\nConnection: keep-alive\r\n\r\n{";
        let (status, len, fields) = scan(head).unwrap().unwrap();
        assert_eq!(
            status,
            StatusLine {
                http11: true,
                code: 200
            }
        );
        assert_eq!(len, head.len() - 1);
        assert_eq!(fields.len(), 5);
        assert_eq!(
            fields[1],
            (b"Date".to_vec(), b"Mon, 07 Dec 2026 10:30:23 GMT".to_vec())
        );
        assert_eq!(fields[3], (b"Content-Length".to_vec(), b"48".to_vec()));
        for cut in 0..len {
            assert_eq!(scan(&head[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn values_are_trimmed_folds_kept_and_control_bytes_taken() {
        let head =
            b"HTTP/1.0 404\nA:\t x \t\nB:\r\n  folded\r\n\tmore \r\nC:\r\nD: a\x01b\x7f\r\n\r\n";
        let (status, len, fields) = scan(head).unwrap().unwrap();
        assert_eq!(
            status,
            StatusLine {
                http11: false,
                code: 404
            }
        );
        assert_eq!(len, head.len());
        let values: Vec<&[u8]> = fields.iter().map(|(_, v)| v.as_slice()).collect();
        assert_eq!(values, [&b"x"[..], b"folded\r\n\tmore", b"", b"a\x01b"]);
    }

    #[test]
    fn what_is_no_head_is_refused_as_soon_as_it_shows() {
        for bad in [
            &b"HTTP/2.0 200 OK\r\n"[..],
            b"HTTP/1.2",
            b"HTTP/1.1  200",
            b"HTTP/1.1 2x0",
            b"HTTP/1.1 200OK",
            b"HTTP/1.1 200 O\x01K\r\n",
            b"ICY 200 OK\r\n",
            b"\rHTTP/1.1",
            b"HTTP/1.1 200 OK\r\nName : v\r\n",
            b"HTTP/1.1 200 OK\r\n: v\r\n",
            b"HTTP/1.1 200 OK\r\n folded-first: v\r\n",
            b"HTTP/1.1 200 OK\r\nA: b\rc\r\n",
            b"HTTP/1.1 200 OK\r\nA: b\r\n\rx",
            b"HTTP/1.1 200 OK\r\nN\xe9: v\r\n",
        ] {
            assert_eq!(
                scan(bad),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn control_starts_a_line(head: &[u8]) -> bool {
        let blank = blanked(head);
        head.windows(2)
            .zip(blank.windows(2))
            .any(|(sent, copy)| sent[0] == b'\n' && sent[1] != copy[1])
    }

    #[test]
    fn a_name_takes_the_bytes_httparse_took() {
        // (`A:: v` is a name `A` and a value `: v`.)
        for b in (0..=u8::MAX).filter(|&b| b != b':') {
            let head = [&b"HTTP/1.1 200 OK\r\nA"[..], &[b], b": v\r\n\r\n"].concat();
            let theirs = httparse_scan(&head, &head).is_ok();
            assert_eq!(is_token_byte(b), theirs, "byte {b:#x}");
            assert_eq!(scan(&head).is_ok(), theirs, "byte {b:#x}");
        }
    }

    /// A small deterministic generator: the same heads on every run.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    /// Heads of pieces HTTP is made of, then mutated a byte or two at a time: wherever
    /// httparse reads a head whole, this scan reads the same status, length and fields;
    /// wherever it wants more, so does this; wherever it refuses one, so does this — but for
    /// control bytes in a value, which httparse refuses and this (as curl) keeps: there, what
    /// this reads is what httparse read of the head with them made spaces, values as sent.
    #[test]
    fn reads_every_head_as_httparse_did_but_control_bytes_in_values() {
        const PIECES: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.0 301 Moved\n",
            b"\r\n",
            b"\n",
            b"Content-Length: 12\r\n",
            b"X-A:v\n",
            b"X-B: \r\n folded\r\n",
            b"Set-Cookie: a=b; c\r\n",
            b"E:\r\n",
            b" ",
            b"\t",
            b":",
            b"\r",
            b"\x01",
            b"\x7f",
            b"\xe9",
            b"\0",
            b"Name",
            b"value",
            b"200",
            b"HTTP/1.1 ",
        ];
        const BYTES: &[u8] = b" \t\r\n:\x00\x01\x7f\x80\xffaZ09-HTP/.";
        let mut rng = Lcg(7);
        let (mut whole, mut refused, mut controls) = (0, 0, 0);
        for _ in 0..200_000 {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            for _ in 0..rng.below(8) {
                head.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
            if rng.below(2) == 0 {
                head.extend_from_slice(b"\r\n");
            }
            for _ in 0..rng.below(3) {
                let at = rng.below(head.len());
                head[at] = BYTES[rng.below(BYTES.len())];
            }
            let ours = scan(&head);
            let theirs = match httparse_scan(&head, &head) {
                // A line starting with a control byte was a fold in the copy, an invalid
                // name without one; this refuses it always.
                Err(true) if control_starts_a_line(&head) => continue,
                Err(true) => {
                    controls += 1;
                    httparse_scan(&blanked(&head), &head)
                }
                theirs => theirs,
            };
            match theirs {
                Err(_) => {
                    refused += 1;
                    assert_eq!(ours, Err(Malformed), "{:?}", String::from_utf8_lossy(&head));
                }
                Ok(theirs) => {
                    whole += usize::from(theirs.is_some());
                    assert_eq!(ours, Ok(theirs), "{:?}", String::from_utf8_lossy(&head));
                }
            }
        }
        let counts = format!("{whole} whole, {refused} refused, {controls} with control bytes");
        assert!(
            whole > 15_000 && refused > 15_000 && controls > 1_000,
            "{counts}"
        );
    }
}
