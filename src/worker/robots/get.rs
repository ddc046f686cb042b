//! Getting one origin's `/robots.txt` as RFC 9309 §2.3 says: over HTTP/1.1 on a connection of
//! its own (through the run's proxies, `--resolve` and TLS settings: the dialer is the worker's
//! for that origin), up to 5 redirects followed, at most [`MAX_ROBOTS_BYTES`] read; and what
//! the answer comes to: rules (2xx), all allowed (4xx, "unavailable"), or all disallowed (5xx,
//! or unreachable).

use std::rc::Rc;
use std::time::Duration;

use super::rules::{Rules, product_token};
use crate::model::ErrorKind;
use crate::request::Origin;
use crate::worker::conn::connect::Dialer;
use crate::worker::conn::proxy;
use crate::worker::failure::Failure;
use crate::worker::http::answer::{Answer, Wants};
use crate::worker::http::h1::H1Conn;

/// The most of a robots.txt read (RFC 9309 §2.5: at least 500 KiB must be parsed); past it,
/// the first part is parsed, up to its last line end within the limit (whatever the framing:
/// see [`Wants::cut_past_max`]).
pub const MAX_ROBOTS_BYTES: usize = 500 << 10;
/// Redirects followed (RFC 9309 §2.3.1.2: at least five).
const MAX_REDIRECTS: usize = 5;

/// What a host's robots.txt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// A 2xx: its rules for our product token.
    Rules { status: u16, rules: Rules },
    /// Unavailable (a 4xx, a redirect that leads nowhere, more than 5): every URL allowed.
    AllowAll { why: String },
    /// Unreachable (a 5xx, or no answer at all): every URL of the host disallowed.
    DisallowAll { why: String },
}

impl Said {
    /// Whether `target` (path and query) may be fetched.
    pub fn allows(&self, target: &[u8]) -> bool {
        match self {
            Said::Rules { rules, .. } => rules.allows(target),
            Said::AllowAll { .. } => true,
            Said::DisallowAll { .. } => false,
        }
    }

    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            Said::Rules { rules, .. } => rules.crawl_delay(),
            _ => None,
        }
    }

    /// Bytes held beyond the enum itself.
    pub fn bytes(&self) -> usize {
        match self {
            Said::Rules { rules, .. } => rules.bytes(),
            Said::AllowAll { why } | Said::DisallowAll { why } => why.capacity(),
        }
    }

    /// What `-v` says of it.
    pub fn describe(&self) -> String {
        match self {
            Said::Rules { status, rules } => {
                let delay = rules
                    .crawl_delay()
                    .map(|d| format!(", crawl-delay {} s", d.as_secs_f64()))
                    .unwrap_or_default();
                format!("{status}: {} rules{delay}", rules.len())
            }
            Said::AllowAll { why } => format!("{why}: all allowed"),
            Said::DisallowAll { why } => format!("{why}: all disallowed"),
        }
    }
}

/// Opens connections to an origin: the worker's dialer for it.
pub type DialerFor<'a> = &'a dyn Fn(&Origin) -> Result<Rc<Dialer>, Failure>;

/// Gets `origin`'s robots.txt as `user_agent`, within `deadline` in all, and reads what it says
/// to that user agent's product token.
pub async fn get(
    origin: &Origin,
    user_agent: &str,
    dialer_for: DialerFor<'_>,
    deadline: Duration,
) -> Said {
    let getting = Box::pin(follow(origin, user_agent, dialer_for));
    match monoio::time::timeout(deadline, getting).await {
        Ok(said) => said,
        Err(_) => Said::DisallowAll {
            why: format!("no answer within {} s", deadline.as_secs_f64()),
        },
    }
}

/// The redirects from `origin`'s `/robots.txt` followed to an answer.
async fn follow(origin: &Origin, user_agent: &str, dialer_for: DialerFor<'_>) -> Said {
    let mut at = (origin.clone(), b"/robots.txt".to_vec());
    let mut answer = Answer::default();
    for _ in 0..=MAX_REDIRECTS {
        let got = once(&at.0, &at.1, user_agent, dialer_for, &mut answer).await;
        let status = answer.status;
        match got {
            Ok(()) => {}
            // Its first part is read (RFC 9309 §2.5), whole lines only.
            Err(failure) if failure.kind == ErrorKind::BodyTooLarge && is_2xx(status) => {
                if let Some(mut decoding) = answer.decoding.take() {
                    answer.body = decoding.take_body();
                }
                answer.body.truncate(whole_lines(&answer.body));
            }
            Err(failure) => {
                let why = format!("{}: {}", failure.kind.as_str(), failure.detail);
                return Said::DisallowAll { why };
            }
        }
        match status {
            200..=299 => {
                let rules = Rules::parse(&answer.body, product_token(user_agent));
                return Said::Rules { status, rules };
            }
            300..=399 => {
                let Some(location) = answer.location.take() else {
                    let why = format!("{status} without a Location");
                    return Said::AllowAll { why };
                };
                let location = String::from_utf8_lossy(&location);
                match crate::url::resolve(&at.0, &at.1, &location) {
                    Ok(next) => at = next,
                    Err(e) => {
                        let why = format!("{status} to {location:?} ({e})");
                        return Said::AllowAll { why };
                    }
                }
            }
            500..=599 => {
                return Said::DisallowAll {
                    why: status.to_string(),
                };
            }
            _ => {
                return Said::AllowAll {
                    why: status.to_string(),
                };
            }
        }
    }
    Said::AllowAll {
        why: format!("more than {MAX_REDIRECTS} redirects"),
    }
}

/// How much of `body`, the first part of a longer file, is whole lines: up to its last line
/// end. A line cut by the limit is dropped, not read as a shorter rule (`Disallow: /p/` of
/// `Disallow: /p/2` would disallow far more).
fn whole_lines(body: &[u8]) -> usize {
    body.iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(0, |at| at + 1)
}

fn is_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

/// One GET of `target` on `origin`, its answer (body kept) in `answer`.
async fn once(
    origin: &Origin,
    target: &[u8],
    user_agent: &str,
    dialer_for: DialerFor<'_>,
    answer: &mut Answer,
) -> Result<(), Failure> {
    answer.status = 0;
    answer.body.clear();
    let dialer = dialer_for(origin)?;
    let (stream, route) = dialer.dial().await?;
    let mut request = request(origin, target, user_agent);
    if let Some((prefix, auth)) = dialer.forward(route) {
        proxy::to_absolute_form(&mut request, prefix, auth);
    }
    let wants = Wants {
        capture: &[],
        keep_body: true,
        memory: None,
        head_request: false,
        max_body: MAX_ROBOTS_BYTES,
        cut_past_max: true,
        decode: true,
    };
    H1Conn::new(stream)
        .exchange(&mut request, &wants, answer)
        .await
}

/// The request for `target` on `origin`, as `user_agent`.
fn request(origin: &Origin, target: &[u8], user_agent: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + target.len() + user_agent.len());
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(origin.authority.as_bytes());
    out.extend_from_slice(b"\r\nuser-agent: ");
    out.extend_from_slice(user_agent.as_bytes());
    out.extend_from_slice(b"\r\naccept: text/plain, */*\r\naccept-encoding: gzip, deflate\r\n");
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_host_and_the_agent() {
        let origin = crate::url::parse_origin("http://example.com:8080/x").expect("an origin");
        let request = request(&origin, b"/robots.txt", "ringscrape/1");
        let text = String::from_utf8(request).expect("ASCII");
        assert!(text.starts_with("GET /robots.txt HTTP/1.1\r\nhost: example.com:8080\r\n"));
        assert!(text.contains("\r\nuser-agent: ringscrape/1\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_cut_file_keeps_its_whole_lines() {
        assert_eq!(
            whole_lines(b"User-agent: *\nDisallow: /a\nDisallow: /p/"),
            "User-agent: *\nDisallow: /a\n".len()
        );
        assert_eq!(whole_lines(b"a\r\nb\r"), 5);
        assert_eq!(whole_lines(b"no line end at all"), 0);
        assert_eq!(whole_lines(b""), 0);
    }

    #[test]
    fn what_each_outcome_allows() {
        let rules = Rules::parse(b"User-agent: *\nDisallow: /no\n", "x");
        let said = Said::Rules { status: 200, rules };
        assert!(said.allows(b"/yes") && !said.allows(b"/no"));
        assert!(Said::AllowAll { why: "404".into() }.allows(b"/no"));
        assert!(!Said::DisallowAll { why: "503".into() }.allows(b"/yes"));
    }
}
