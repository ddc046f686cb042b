//! What the failures were, in words with the fix: "the server answered plain HTTP: use http://"
//! rather than "the target looks down". The workers note the signs an error kind alone does not
//! carry (a refused connect, nginx's 400 for plain HTTP on its HTTPS port, an HTTP/1 answer to
//! the HTTP/2 preface; [`Signs`]); the supervisor watches the first rows ([`FirstAnswers`]) and,
//! when they all failed alike, says once why ([`diagnose`]), as it does when `--abort-after`
//! stops the run.

use std::cell::Cell;

use crate::failed::FailedRows;
use crate::model::{ErrorKind, Record};
use crate::stats::AnswerCounts;
use crate::url::{Origin, Scheme};

pub use crate::stats::Signs;

/// Rows the first-answers watch looks at: enough that one odd answer is not the pattern, few
/// enough that the warning comes within the run's first second.
pub const FIRST_ANSWERS: u64 = 100;

/// How a row failed, as far as the diagnosis goes: its status, or its error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    Status(u16),
    Error(ErrorKind),
}

impl Failed {
    /// `None` when the row does not count as failed.
    pub fn of(record: &Record) -> Option<Failed> {
        if !FailedRows::AT_LEAST_400.counts(record.status, record.error) {
            return None;
        }
        Some(match (record.error, record.status) {
            (Some(kind), _) => Failed::Error(kind),
            (None, status) => Failed::Status(status.unwrap_or_default()),
        })
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Status(status) => write!(f, "status {status}"),
            Failed::Error(kind) => write!(f, "error {}", kind.as_str()),
        }
    }
}

/// Watches the run's first [`FIRST_ANSWERS`] rows: did they all fail the same way?
#[derive(Debug, Default)]
pub struct FirstAnswers {
    seen: u64,
    first: Option<Failed>,
    /// Some row so far succeeded or failed otherwise than the first.
    mixed: bool,
}

impl FirstAnswers {
    pub fn record(&mut self, record: &Record) {
        if self.seen >= FIRST_ANSWERS {
            return;
        }
        let failed = Failed::of(record);
        if self.seen == 0 {
            self.first = failed;
        }
        self.mixed |= failed.is_none() || failed != self.first;
        self.seen += 1;
    }

    /// How the first rows all failed and how many they were: once [`FIRST_ANSWERS`] rows are
    /// in, or, when the run has `ended`, all its rows (a run of at least a few).
    pub fn all_failed_alike(&self, ended: bool) -> Option<(Failed, u64)> {
        // A run that ended has said all it will: a smoke test of a few ids is when a newcomer
        // needs the words most.
        let enough = self.seen >= FIRST_ANSWERS || (ended && self.seen > 0);
        if self.mixed || !enough {
            return None;
        }
        self.first.map(|failed| (failed, self.seen))
    }
}

/// What the diagnosis knows of the job: where it goes and how.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The URL template's origin (with `{id}` in the host, a stand-in: see `host_varies`).
    pub origin: Option<Origin>,
    /// Each key names its own host.
    pub host_varies: bool,
    pub http2: bool,
    /// `--ca-cert` was given.
    pub ca_cert: bool,
    /// A proxy carries the connections (it resolves and connects, not this host).
    pub proxied: bool,
    /// `--resolve` or `--connect-to` decide where some names go.
    pub pinned: bool,
}

impl Target {
    /// The URL's one host when this machine resolves it (no `{id}` in it, no proxy, no
    /// `--resolve` or `--connect-to`, not an address): the name to check before the run starts.
    pub fn host_to_resolve(&self) -> Option<(&str, u16)> {
        let origin = self.origin.as_ref()?;
        let address = origin
            .host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok();
        (!self.host_varies && !self.proxied && !self.pinned && !address)
            .then_some((origin.host.as_str(), origin.port))
    }

    fn host(&self) -> String {
        match &self.origin {
            Some(origin) if !self.host_varies => origin.host.clone(),
            _ => "the keys' hosts".into(),
        }
    }

    fn address(&self) -> String {
        match &self.origin {
            Some(origin) if !self.host_varies => format!("{}:{}", origin.host, origin.port),
            Some(origin) => format!("port {} of the keys' hosts", origin.port),
            None => "the target".into(),
        }
    }

    fn https(&self) -> bool {
        self.origin
            .as_ref()
            .is_some_and(|o| o.scheme == Scheme::Https)
    }
}

/// Says the diagnosis once a run: when the first rows all failed alike, or when `--abort-after`
/// stops the run, whichever comes first.
#[derive(Debug, Default)]
pub struct Diagnosis {
    target: Target,
    said: Cell<bool>,
    /// How the first rows failed, once said.
    first_said: Cell<Option<Failed>>,
    /// A tick saw the first rows fail alike: the next one says so, once the workers' figures
    /// (sent at least every second) have caught up with those rows.
    pending: Cell<bool>,
}

impl Diagnosis {
    pub fn new(target: Target) -> Diagnosis {
        Diagnosis {
            target,
            ..Diagnosis::default()
        }
    }

    /// The warning line when the first rows all failed alike, once; `ended`: the run is over
    /// and `answers` are the workers' last figures.
    pub fn first_rows(
        &self,
        first: &FirstAnswers,
        answers: &AnswerCounts,
        ended: bool,
    ) -> Option<String> {
        // A warning, not an error: `-q` leaves it out (and the stop line then says it all).
        if self.said.get() || !crate::verbosity::says(crate::verbosity::Verbosity::Normal) {
            return None;
        }
        let (failed, n) = first.all_failed_alike(ended)?;
        if !ended && !self.pending.replace(true) {
            return None;
        }
        self.said.set(true);
        self.first_said.set(Some(failed));
        let which = match n {
            1 => "the only row failed".to_string(),
            n if n < FIRST_ANSWERS => format!("all {n} rows failed"),
            n => format!("the first {n} rows all failed"),
        };
        Some(format!(
            "ringscrape: warning: {which} with {failed}: {}",
            diagnose(failed, answers, &self.target)
        ))
    }

    /// The line that says why `--abort-after` stopped the run: `kind`, when every failure of
    /// the last `limit` was of one kind.
    pub fn abort(&self, limit: u64, kind: Option<ErrorKind>, answers: &AnswerCounts) -> String {
        self.said.set(true);
        let why = match kind {
            // Said a moment ago by the first rows' warning: not twice.
            Some(kind) if self.first_said.get() == Some(Failed::Error(kind)) => {
                format!("error {}, as said above", kind.as_str())
            }
            Some(kind) => diagnose(Failed::Error(kind), answers, &self.target),
            None => "the target looks down".into(),
        };
        format!(
            "ringscrape: stopping: the last {limit} items in a row failed: {why} (--abort-after)"
        )
    }
}

/// Why rows failed as `failed` did, in words with the fix, from what the workers saw
/// (`answers`) and what the job is (`target`).
pub fn diagnose(failed: Failed, answers: &AnswerCounts, target: &Target) -> String {
    let signs = &answers.signs;
    match failed {
        Failed::Error(ErrorKind::Tls) => tls(answers, target),
        Failed::Status(400) if signs.https_port > 0 => {
            "the port speaks HTTPS (the server answered 400 \"The plain HTTP request was sent to HTTPS port\"): use https://".into()
        }
        Failed::Status(status) => {
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let hint = match status {
                401 | 403 => ": check the credentials (-H, --auth-command)",
                404 | 410 => ": check the URL template",
                429 => ": the server limits the rate; try --rate",
                _ => "",
            };
            format!("the server answered {status} {reason}{hint}")
        }
        Failed::Error(ErrorKind::Dns) if target.proxied => {
            format!("{} did not resolve (by the proxy)", target.host())
        }
        Failed::Error(ErrorKind::Dns) if target.host_varies => {
            "the hosts made from the keys do not resolve: check the host part of --url".into()
        }
        Failed::Error(ErrorKind::Dns) => format!(
            "{} does not resolve: check the host name in --url (or --resolve HOST:PORT:ADDR)",
            target.host()
        ),
        Failed::Error(ErrorKind::Connect) if signs.refused > 0 => format!(
            "nothing listens at {} (connection refused): check the port in --url",
            target.address()
        ),
        Failed::Error(ErrorKind::Connect) => format!(
            "{} did not accept connections within --connect-timeout: check the address, and any firewall",
            target.address()
        ),
        Failed::Error(ErrorKind::Reset | ErrorKind::Protocol | ErrorKind::Closed)
            if target.http2 && signs.not_h2 > 0 =>
        {
            "the server does not speak HTTP/2 (it answered the HTTP/2 preface in HTTP/1): drop --http2".into()
        }
        Failed::Error(ErrorKind::Timeout) => {
            "no answer within --timeout: the server is slow or stalled".into()
        }
        Failed::Error(ErrorKind::Proxy) => "the proxy failed (see the proxy lines below)".into(),
        Failed::Error(kind) => format!("every one ended in a {} error", kind.as_str()),
    }
}

/// Why TLS failed: the most frequent reason the workers saw, in words with the fix.
fn tls(answers: &AnswerCounts, target: &Target) -> String {
    let Some((reason, _)) = answers.tls_reasons.iter().max_by_key(|(_, n)| **n) else {
        return "the TLS handshake failed".into();
    };
    let has = |words: &[&str]| words.iter().any(|w| reason.contains(w));
    if has(&["InvalidContentType", "corrupt message"]) {
        return "the server answered plain HTTP, not TLS: use http://".into();
    }
    if has(&["NotValidForName", "not valid for name"]) {
        return format!(
            "the server's certificate is not for {} ({reason}): use the name it was issued for, or -k",
            target.host()
        );
    }
    if has(&["Expired", "NotValidYet"]) {
        return format!(
            "the server's certificate is out of its validity period ({reason}): -k skips the check"
        );
    }
    if has(&[
        "UnknownIssuer",
        "CaUsedAsEndEntity",
        "BadSignature",
        "invalid peer certificate",
    ]) {
        // rustls' names (`Other(OtherError(CaUsedAsEndEntity))`) in words.
        let reason = if has(&["CaUsedAsEndEntity"]) {
            "it is self-signed, made as a CA's".to_string()
        } else if has(&["UnknownIssuer"]) {
            "its issuer is not among the trusted CAs".to_string()
        } else {
            reason.clone()
        };
        return if target.ca_cert {
            format!(
                "the server's certificate is not trusted, even with --ca-cert ({reason}): give the certificate of the CA that signed it, or the server's own, or -k"
            )
        } else {
            format!(
                "the server's certificate is not trusted ({reason}): use --ca-cert FILE (the CA that signed it, or the server's own certificate), or -k"
            )
        };
    }
    if target.https() {
        format!("the TLS handshake failed ({reason})")
    } else {
        format!("TLS failed ({reason})")
    }
}

/// Resolves `host` as the system does (getaddrinfo: `/etc/hosts`, then DNS): `Err` when the
/// name has no address, which every request would then fail on. A resolver that is only slow
/// or down for a moment (`EAI_AGAIN`) is not the name's fault: `Ok`, and the rows say `dns`.
pub fn check_resolves(host: &str, port: u16) -> std::io::Result<()> {
    use std::net::ToSocketAddrs;
    match (host, port).to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(std::io::Error::other("no address")),
        Err(e) if e.to_string().contains("Temporary failure") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The workers' part: what a failure shows beyond its kind, noted into `signs`. `detail` is the
/// failure in words (the I/O error, or the HTTP/2 library's).
pub fn note_failure(signs: &mut Signs, kind: ErrorKind, detail: &str) {
    match kind {
        // ECONNREFUSED: no listener (or a firewall's reject), not a server too busy to accept.
        ErrorKind::Connect if detail.contains("refused") => signs.refused += 1,
        // "HTTP/1.1 400…" read as an HTTP/2 frame header is a frame of ~4.7 MB: the length
        // check fails before anything else, which is how the h2 library says it.
        ErrorKind::Reset | ErrorKind::Protocol if detail.contains("frame with invalid size") => {
            signs.not_h2 += 1
        }
        _ => {}
    }
}

/// True when an answer's body is a server's "plain HTTP on the HTTPS port" page: nginx's, Apache's
/// or Go's words.
pub fn says_https_port(body: &[u8]) -> bool {
    const WORDS: [&[u8]; 3] = [
        b"plain HTTP request was sent to HTTPS port",
        b"speaking plain HTTP to an SSL-enabled server port",
        b"Client sent an HTTP request to an HTTPS server",
    ];
    WORDS
        .iter()
        .any(|words| body.windows(words.len()).any(|w| w == *words))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: Option<u16>, error: Option<ErrorKind>) -> Record {
        Record {
            status,
            error,
            attempts: 1,
            ..Record::default()
        }
    }

    fn target(url: &str) -> Target {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (host, port) = rest.split_once(':').expect("a port");
        Target {
            origin: Some(Origin {
                scheme: if scheme == "https" {
                    Scheme::Https
                } else {
                    Scheme::Http
                },
                host: host.into(),
                port: port.parse().expect("a port"),
                authority: rest.into(),
            }),
            ..Target::default()
        }
    }

    #[test]
    fn the_first_answers_fail_alike_only_when_every_one_fails_the_same_way() {
        let mut watch = FirstAnswers::default();
        for _ in 0..FIRST_ANSWERS - 1 {
            watch.record(&row(Some(400), None));
        }
        assert_eq!(watch.all_failed_alike(false), None, "not yet enough rows");
        assert_eq!(
            watch.all_failed_alike(true),
            Some((Failed::Status(400), FIRST_ANSWERS - 1)),
            "a run that ended has said all it will"
        );
        watch.record(&row(Some(400), None));
        assert_eq!(
            watch.all_failed_alike(false),
            Some((Failed::Status(400), FIRST_ANSWERS))
        );
        // Rows past the first ones change nothing.
        watch.record(&row(Some(200), None));
        assert!(watch.all_failed_alike(false).is_some());

        let mut mixed = FirstAnswers::default();
        mixed.record(&row(None, Some(ErrorKind::Tls)));
        mixed.record(&row(None, Some(ErrorKind::Timeout)));
        for _ in 0..FIRST_ANSWERS {
            mixed.record(&row(None, Some(ErrorKind::Tls)));
        }
        assert_eq!(mixed.all_failed_alike(true), None);

        let mut smoke = FirstAnswers::default();
        smoke.record(&row(None, Some(ErrorKind::Tls)));
        assert_eq!(smoke.all_failed_alike(false), None);
        assert_eq!(
            smoke.all_failed_alike(true),
            Some((Failed::Error(ErrorKind::Tls), 1)),
            "a run of one id that failed says why"
        );

        let mut fine = FirstAnswers::default();
        for _ in 0..FIRST_ANSWERS {
            fine.record(&row(Some(200), None));
        }
        assert_eq!(fine.all_failed_alike(true), None);
        let mut short = FirstAnswers::default();
        short.record(&row(Some(404), None));
        assert_eq!(
            short.all_failed_alike(false),
            None,
            "one row of a run going on is no pattern"
        );
    }

    #[test]
    fn each_mistake_is_named_with_its_fix() {
        let mut answers = AnswerCounts::default();
        let https = target("https://localhost:8443");
        answers.add_tls_reason("received corrupt message of type InvalidContentType", 5);
        assert!(diagnose(Failed::Error(ErrorKind::Tls), &answers, &https).contains("use http://"));

        let mut answers = AnswerCounts::default();
        answers.add_tls_reason(
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
            5,
        );
        let words = diagnose(Failed::Error(ErrorKind::Tls), &answers, &https);
        assert!(
            words.contains("not trusted (it is self-signed, made as a CA's)")
                && words.contains("use --ca-cert FILE")
                && words.contains("or -k"),
            "{words}"
        );

        let mut answers = AnswerCounts::default();
        let http = target("http://127.0.0.1:8443");
        answers.signs.https_port = 1;
        assert!(diagnose(Failed::Status(400), &answers, &http).contains("use https://"));
        assert!(
            !diagnose(Failed::Status(400), &AnswerCounts::default(), &http).contains("https://")
        );

        let words = diagnose(
            Failed::Error(ErrorKind::Dns),
            &AnswerCounts::default(),
            &target("http://no-such-host.invalid:80"),
        );
        assert!(
            words.contains("no-such-host.invalid does not resolve"),
            "{words}"
        );

        let mut answers = AnswerCounts::default();
        note_failure(
            &mut answers.signs,
            ErrorKind::Connect,
            "Connection refused (os error 111)",
        );
        let words = diagnose(Failed::Error(ErrorKind::Connect), &answers, &http);
        assert!(
            words.contains("nothing listens at 127.0.0.1:8443"),
            "{words}"
        );

        let mut answers = AnswerCounts::default();
        note_failure(
            &mut answers.signs,
            ErrorKind::Reset,
            "connection error detected: frame with invalid size",
        );
        let h2 = Target {
            http2: true,
            ..http.clone()
        };
        let words = diagnose(Failed::Error(ErrorKind::Reset), &answers, &h2);
        assert!(words.contains("drop --http2"), "{words}");
    }

    #[test]
    fn the_https_port_page_is_recognised_and_an_ordinary_400_is_not() {
        let nginx = b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>";
        assert!(says_https_port(nginx));
        assert!(!says_https_port(b"{\"error\":\"bad request\"}"));
    }
}
