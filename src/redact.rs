//! Credentials kept out of every message: the values of credential headers (`Authorization`,
//! `Cookie`, `X-Api-Key`…), the user and password in a URL, and both in a command line shown
//! back to the user (the resume command, `tune`'s run line). Errors, notes and `-v` lines go
//! through here before they name a header, a proxy or a target.

/// What a redacted value is shown as.
const REDACTED: &str = "<redacted>";

/// True for a header whose value is a secret: `Authorization`, `Proxy-Authorization`, `Cookie`,
/// and any name with `key`, `token`, `secret`, `auth` or `session` in it (`X-Api-Key`).
pub fn is_credential(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    name == "cookie"
        || ["key", "token", "secret", "auth", "session"]
            .iter()
            .any(|part| name.contains(part))
}

/// A `Name: value` line as a message may show it: the value of a credential header redacted,
/// also when the colon is missing (`Authorization Bearer …`: the first word is the name).
pub fn redact_header(line: &str) -> String {
    match line.split_once(':') {
        Some((name, _)) if is_credential(name) => format!("{name}: {REDACTED}"),
        Some(_) => line.to_string(),
        None => match line.trim().split_once(char::is_whitespace) {
            Some((name, _)) if is_credential(name) => format!("{name} {REDACTED}"),
            _ => line.to_string(),
        },
    }
}

/// A command line as a message may show it (the resume command, `tune`'s run line): the values
/// of credential headers given with `-H`/`--header` redacted; `-H @FILE` stays as given.
pub fn redact_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut header_next = false;
    let mut proxy_next = false;
    for arg in args {
        let shown = if header_next {
            header_next = false;
            redact_value_arg(arg)
        } else if arg == "-H" || arg == "--header" || arg == "--headers" {
            header_next = true;
            arg.clone()
        } else if let Some(line) = arg.strip_prefix("--header=") {
            format!("--header={}", redact_value_arg(line))
        } else if let Some(line) = arg.strip_prefix("--headers=") {
            format!("--headers={}", redact_value_arg(line))
        } else if let Some(line) = arg.strip_prefix("-H").filter(|l| !l.is_empty()) {
            format!("-H{}", redact_value_arg(line))
        } else if proxy_next {
            proxy_next = false;
            redact_url(arg)
        } else if arg == "--proxy" {
            proxy_next = true;
            arg.clone()
        } else if let Some(url) = arg.strip_prefix("--proxy=") {
            format!("--proxy={}", redact_url(url))
        } else {
            arg.clone()
        };
        out.push(shown);
    }
    out
}

fn redact_value_arg(line: &str) -> String {
    if line.starts_with('@') {
        line.to_string()
    } else {
        redact_header(line)
    }
}

/// A proxy URL with its user name and password replaced by `***`.
pub fn redact_url(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), text),
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => text.to_string(),
    }
}

/// Free text from another program (a credential command's stderr) as a message may show it:
/// each of `known` (secrets it may repeat) replaced, and the value after a credential's name
/// (`Authorization: …` to the end of the line, `token=…` to the next space or separator) and
/// the word after `Bearer`/`Basic` redacted.
pub fn redact_text(text: &str, known: &[&str]) -> String {
    let mut text = text.to_string();
    // Shorter values are too likely to be ordinary words of the message.
    for secret in known.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, REDACTED);
    }
    let bytes = text.as_bytes();
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut at) = (0, 0);
    while at < bytes.len() {
        let sign = bytes[at];
        if !matches!(sign, b':' | b'=' | b' ') {
            at += 1;
            continue;
        }
        let name_start = bytes[..at]
            .iter()
            .rposition(|&b| !name_byte(b))
            .map_or(0, |p| p + 1);
        let name = &text[name_start..at];
        let (value_start, value_end) = match sign {
            b':' | b'=' if secret_name(name) => {
                let start = at + 1 + bytes[at + 1..].iter().take_while(|b| **b == b' ').count();
                let end = if sign == b':' {
                    bytes[start..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |p| start + p)
                } else {
                    word_end(bytes, start)
                };
                (start, end)
            }
            b' ' if ["bearer", "basic", "digest"]
                .iter()
                .any(|scheme| name.eq_ignore_ascii_case(scheme)) =>
            {
                (at + 1, word_end(bytes, at + 1))
            }
            _ => {
                at += 1;
                continue;
            }
        };
        if value_end > value_start && &text[value_start..value_end] != REDACTED {
            out.push_str(&text[copied..value_start]);
            out.push_str(REDACTED);
            copied = value_end;
        }
        at = value_end.max(at + 1);
    }
    out.push_str(&text[copied..]);
    out
}

/// A name whose value is a secret: a credential header's, or a password's.
fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty() && (is_credential(name) || lower.contains("pass") || lower.contains("pwd"))
}

/// Where the word starting at `start` ends: at white space, a quote or a separator.
fn word_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b'&' | b';' | b',' | b'"' | b'\''))
        .map_or(bytes.len(), |p| start + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_a_message() {
        let args: Vec<String> = [
            "ringscrape",
            "run",
            "-H",
            "Authorization: Bearer s3cret",
            "--header=X-Api-Key: k3y",
            "-HCookie: c00kie",
            "-H",
            "Accept: text/plain",
            "-H",
            "@headers.txt",
            "--headers",
            "X-Session-Id: sess1",
            "-u",
            "http://h/{id}",
            "--proxy",
            "socks5://alice:pr0xy@127.0.0.1:1080",
            "--proxy=http://bob:pr0xy2@p:3128",
        ]
        .map(String::from)
        .to_vec();
        let shown = redact_args(&args).join(" ");
        assert!(
            shown.contains("--proxy socks5://***@127.0.0.1:1080"),
            "{shown}"
        );
        for secret in ["s3cret", "k3y", "c00kie", "sess1", "pr0xy", "alice", "bob"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("-H Accept: text/plain") && shown.contains("-H @headers.txt"),
            "{shown}"
        );
        assert!(shown.contains("Authorization: <redacted>"), "{shown}");
        assert_eq!(
            redact_header("X-Token no-colon-secret"),
            "X-Token <redacted>"
        );
        assert_eq!(redact_header("NoColonHere"), "NoColonHere");
        assert_eq!(redact_url("http://u:p@h:1/x"), "http://***@h:1/x");
    }

    #[test]
    fn free_text_keeps_its_words_and_loses_its_secrets() {
        let cases = [
            (
                "error: Authorization: Bearer SECRET1 (expired)",
                "error: Authorization: <redacted>",
            ),
            ("token=SECRET2 rejected", "token=<redacted> rejected"),
            (
                "GET /t?user=me&password=SECRET3&x=1 failed",
                "GET /t?user=me&password=<redacted>&x=1 failed",
            ),
            (
                "sent bearer SECRET4, got 401",
                "sent bearer <redacted>, got 401",
            ),
            ("login: account locked", "login: account locked"),
            ("token service down", "token service down"),
            ("echoed SECRET5xyz back", "echoed <redacted> back"),
        ];
        for (text, shown) in cases {
            assert_eq!(redact_text(text, &["SECRET5xyz", "ab"]), shown);
        }
        assert_eq!(redact_text("a: ab", &["ab"]), "a: ab", "too short to guess");
    }
}
