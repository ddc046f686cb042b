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
}
