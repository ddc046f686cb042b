//! What one robots.txt says to one user agent (RFC 9309): the `Allow`/`Disallow` rules of the
//! group for our product token (else of the `*` group), and its `Crawl-delay`. Read by the
//! `robotstxt` crate's parser (Google's, which the RFC was written from); matched here, longest
//! pattern first, with `*` and a final `$`.

use std::time::Duration;

use robotstxt::RobotsParseHandler;

/// Longest line handed to the parser. The crate skips what lies past 2083 × 8 bytes of a line,
/// but counts the skipped part in characters, not bytes: a longer line with multi-byte
/// characters after that point would make it slice inside a character and panic. Lines are cut
/// here first, at a character boundary, so it never sees one.
const MAX_LINE_BYTES: usize = 2083 * 8 - 2;
/// Longest `Crawl-delay` obeyed: a larger one is read as this, which still leaves a host alone
/// for most of a day. One that is no number of seconds (`abc`, `nan`, `inf`, a negative one) is
/// ignored, as if absent.
const MAX_CRAWL_DELAY: Duration = Duration::from_secs(86_400);

/// One `Allow` or `Disallow` line of the group that applies.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    pattern: Box<str>,
    allow: bool,
}

/// The rules of one robots.txt for one product token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Longest pattern first, `Allow` before `Disallow` of the same length (RFC 9309 §2.2.2:
    /// the most specific match wins, and `Allow` when they tie): the first that matches decides.
    rules: Vec<Rule>,
    crawl_delay: Option<Duration>,
}

impl Rules {
    /// The rules `body` gives to the product token `agent` (compared without case).
    pub fn parse(body: &[u8], agent: &str) -> Rules {
        let text = String::from_utf8_lossy(body);
        let text = cut_long_lines(&text);
        let mut reader = GroupReader {
            agent,
            ..GroupReader::default()
        };
        robotstxt::parse_robotstxt(&text, &mut reader);
        let (mut rules, crawl_delay) = match reader.ever_specific {
            true => (reader.specific, reader.specific_delay),
            false => (reader.global, reader.global_delay),
        };
        rules.sort_by(|a, b| {
            (b.pattern.len(), b.allow)
                .cmp(&(a.pattern.len(), a.allow))
                .then_with(|| a.pattern.cmp(&b.pattern))
        });
        rules.dedup();
        rules.shrink_to_fit();
        Rules { rules, crawl_delay }
    }

    /// True when `target` (path and query, as sent) may be fetched. `/robots.txt` always may.
    pub fn allows(&self, target: &[u8]) -> bool {
        if target == b"/robots.txt" {
            return true;
        }
        self.rules
            .iter()
            .find(|rule| matches(target, rule.pattern.as_bytes()))
            .is_none_or(|rule| rule.allow)
    }

    /// `Crawl-delay` of the group that applies.
    pub fn crawl_delay(&self) -> Option<Duration> {
        self.crawl_delay
    }

    /// How many `Allow` and `Disallow` rules apply.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Heap and inline bytes these rules hold (for the cache's budget).
    pub fn bytes(&self) -> usize {
        let patterns: usize = self.rules.iter().map(|rule| rule.pattern.len()).sum();
        std::mem::size_of::<Self>() + self.rules.capacity() * std::mem::size_of::<Rule>() + patterns
    }
}

/// `text` with every line longer than [`MAX_LINE_BYTES`] cut there (see it for why).
fn cut_long_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .split(['\n', '\r'])
        .any(|line| line.len() > MAX_LINE_BYTES)
    {
        return text.into();
    }
    let mut cut = String::with_capacity(text.len());
    for piece in text.split_inclusive(['\n', '\r']) {
        let (line, end) = match piece.char_indices().next_back() {
            Some((at, '\n' | '\r')) => piece.split_at(at),
            _ => (piece, ""),
        };
        let mut keep = line.len().min(MAX_LINE_BYTES);
        while !line.is_char_boundary(keep) {
            keep -= 1;
        }
        cut.push_str(&line[..keep]);
        cut.push_str(end);
    }
    cut.into()
}

/// True when `pattern` matches `path` from its start (RFC 9309 §2.2.3): `*` stands for any
/// run of bytes, and a final `$` for the end of the path. Greedy with one step back to the last
/// `*`: linear in most cases, `path × pattern` at worst (the crate's matcher moves a vector's
/// elements for each `*` and each byte: quadratic or worse, on patterns a server writes).
fn matches(path: &[u8], pattern: &[u8]) -> bool {
    let (pattern, to_the_end) = match pattern.strip_suffix(b"$") {
        Some(pattern) => (pattern, true),
        None => (pattern, false),
    };
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was in the pattern, and where in the path its run ends so far.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p == pattern.len() {
            if !to_the_end || t == path.len() {
                return true;
            }
        } else if pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
            continue;
        } else if path.get(t) == Some(&pattern[p]) {
            p += 1;
            t += 1;
            continue;
        }
        // A mismatch: the last `*` takes one more byte, else there is no match.
        match star {
            Some((at, run_end)) if run_end < path.len() => {
                star = Some((at, run_end + 1));
                p = at + 1;
                t = run_end + 1;
            }
            _ => return false,
        }
    }
}

/// Keeps the rules of the groups for our product token and of the `*` groups apart, as the
/// parser reads the file line by line (the grouping is Google's reference matcher's).
#[derive(Default)]
struct GroupReader<'a> {
    agent: &'a str,
    /// The lines since the last `User-agent` are for our product token / for `*`.
    in_specific: bool,
    in_global: bool,
    /// A rule came after the last `User-agent` line: the next one starts a new group.
    seen_rule: bool,
    ever_specific: bool,
    specific: Vec<Rule>,
    global: Vec<Rule>,
    specific_delay: Option<Duration>,
    global_delay: Option<Duration>,
}

impl GroupReader<'_> {
    /// A line of the group under way: true when it is a group that applies.
    fn in_group(&mut self) -> bool {
        self.seen_rule = true;
        self.in_specific || self.in_global
    }

    fn rule(&mut self, pattern: &str, allow: bool) {
        // An empty pattern matches nothing (`Disallow:` allows all).
        if !self.in_group() || pattern.is_empty() {
            return;
        }
        let rule = Rule {
            pattern: pattern.into(),
            allow,
        };
        match self.in_specific {
            true => self.specific.push(rule),
            false => self.global.push(rule),
        }
    }
}

impl RobotsParseHandler for GroupReader<'_> {
    fn handle_robots_start(&mut self) {}

    fn handle_robots_end(&mut self) {}

    fn handle_user_agent(&mut self, _line: u32, user_agent: &str) {
        if self.seen_rule {
            self.in_specific = false;
            self.in_global = false;
            self.seen_rule = false;
        }
        // `*`, alone or followed by a space and more (as Google reads it).
        if user_agent == "*" || user_agent.starts_with("* ") || user_agent.starts_with("*\t") {
            self.in_global = true;
        } else if !self.agent.is_empty()
            && product_token(user_agent).eq_ignore_ascii_case(self.agent)
        {
            self.in_specific = true;
            self.ever_specific = true;
        }
    }

    fn handle_allow(&mut self, _line: u32, value: &str) {
        self.rule(value, true);
    }

    fn handle_disallow(&mut self, _line: u32, value: &str) {
        self.rule(value, false);
    }

    fn handle_sitemap(&mut self, _line: u32, _value: &str) {
        self.seen_rule = true;
    }

    fn handle_unknown_action(&mut self, _line: u32, action: &str, value: &str) {
        if !self.in_group() || !action.eq_ignore_ascii_case("crawl-delay") {
            return;
        }
        let Some(delay) = crawl_delay_of(value) else {
            return;
        };
        // The first of a group counts, as most crawlers read it.
        let slot = match self.in_specific {
            true => &mut self.specific_delay,
            false => &mut self.global_delay,
        };
        slot.get_or_insert(delay);
    }
}

/// What a `Crawl-delay` value asks for: a finite number of seconds, not negative, up to
/// [`MAX_CRAWL_DELAY`] (more counts as that); `None` for anything else. (`f64` reads `nan`,
/// `inf` and `-1`, which `Duration` rejects: they are no delay, not the longest one.)
fn crawl_delay_of(value: &str) -> Option<Duration> {
    let seconds = value.parse::<f64>().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(seconds).map_or(MAX_CRAWL_DELAY, |d| d.min(MAX_CRAWL_DELAY)))
}

/// The product token of a user agent (RFC 9309 §2.2.1): its leading letters, `_` and `-`
/// (`ringscrape/0.1 (+https://…)` → `ringscrape`).
pub fn product_token(user_agent: &str) -> &str {
    let end = user_agent
        .find(|c: char| !(c.is_ascii_alphabetic() || c == '-' || c == '_'))
        .unwrap_or(user_agent.len());
    &user_agent[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(body: &str, agent: &str, target: &str) -> bool {
        Rules::parse(body.as_bytes(), agent).allows(target.as_bytes())
    }

    #[test]
    fn the_longest_match_decides_and_allow_wins_a_tie() {
        let body =
            "User-agent: *\nDisallow: /private\nAllow: /private/open\nDisallow: /a\nAllow: /a\n";
        assert!(!allows(body, "ringscrape", "/private/x"));
        assert!(allows(body, "ringscrape", "/private/open/page"));
        assert!(allows(body, "ringscrape", "/a/b"), "a tie goes to Allow");
        assert!(allows(body, "ringscrape", "/public"));
    }

    #[test]
    fn our_group_overrides_the_star_group_and_groups_merge() {
        let body = "User-agent: *\nDisallow: /\n\nUser-agent: RingScrape\nDisallow: /one\n\n\
                    User-agent: other\nUser-agent: ringscrape\nDisallow: /two\n";
        assert!(
            allows(body, "ringscrape", "/three"),
            "the * group does not apply to us"
        );
        assert!(!allows(body, "ringscrape", "/one"));
        assert!(
            !allows(body, "ringscrape", "/two"),
            "both groups naming us apply"
        );
        assert!(!allows(body, "somebot", "/three"));
    }

    #[test]
    fn star_and_dollar_patterns() {
        let body =
            "User-agent: *\nDisallow: /*.gif$\nDisallow: /*/private/\nAllow: /$\nDisallow: /\n";
        assert!(!allows(body, "x", "/img/a.gif"));
        assert!(allows(body, "x", "/"), "`/$` allows exactly the root");
        let body = "User-agent: *\nDisallow: /*.gif$\nDisallow: /*/private/\n";
        assert!(
            allows(body, "x", "/img/a.gif?size=2"),
            "$ anchors at the end"
        );
        assert!(!allows(body, "x", "/users/private/1"));
        assert!(
            allows(body, "x", "/private/1"),
            "* takes at least the first segment here"
        );
    }

    #[test]
    fn matching_agrees_with_the_reference_matcher() {
        use robotstxt::matcher::{
            LongestMatchRobotsMatchStrategy as Reference, RobotsMatchStrategy,
        };
        let paths = [
            "/",
            "/a",
            "/abc",
            "/a/b/c.html",
            "/x*y",
            "/fish.php?id=1",
            "/aab$",
            "",
        ];
        let patterns = [
            "/",
            "/a",
            "/a*",
            "/*c",
            "/a*b*c",
            "*",
            "/*.html$",
            "/a$",
            "/$",
            "/**",
            "/fish*.php",
            "/*?id=",
            "/a*a*b",
            "$",
            "/x*y$",
        ];
        for path in paths {
            for pattern in patterns {
                assert_eq!(
                    matches(path.as_bytes(), pattern.as_bytes()),
                    Reference::matches(path, pattern),
                    "{path:?} against {pattern:?}"
                );
            }
        }
    }

    #[test]
    fn a_pathological_pattern_is_quick() {
        let pattern = "/".to_string() + &"*a".repeat(200) + "$";
        let path = "/".to_string() + &"a".repeat(5_000) + "b";
        let started = std::time::Instant::now();
        assert!(!matches(path.as_bytes(), pattern.as_bytes()));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn no_rules_and_empty_disallow_allow_all() {
        assert!(allows("", "x", "/anything"));
        assert!(allows("User-agent: *\nDisallow:\n", "x", "/anything"));
        assert!(allows("User-agent: other\nDisallow: /\n", "x", "/anything"));
        assert!(allows("User-agent: *\nDisallow: /\n", "x", "/robots.txt"));
    }

    #[test]
    fn crawl_delay_of_the_group_that_applies() {
        let body = "User-agent: *\nCrawl-delay: 2\n\nUser-agent: ringscrape\nCrawl-delay: 0.5\n";
        let rules = Rules::parse(body.as_bytes(), "ringscrape");
        assert_eq!(rules.crawl_delay(), Some(Duration::from_millis(500)));
        let rules = Rules::parse(body.as_bytes(), "other");
        assert_eq!(rules.crawl_delay(), Some(Duration::from_secs(2)));
        let rules = Rules::parse(b"User-agent: *\ncrawl-delay: 1e300\n", "x");
        assert_eq!(rules.crawl_delay(), Some(MAX_CRAWL_DELAY));
        let rules = Rules::parse(b"User-agent: *\nCrawl-delay: soon\n", "x");
        assert_eq!(rules.crawl_delay(), None);
    }

    #[test]
    fn a_crawl_delay_that_is_no_delay_is_ignored_not_a_day() {
        for value in ["-1", "nan", "NaN", "-0.5", "inf", "-inf", "infinity", "abc"] {
            let body = format!("User-agent: *\nCrawl-delay: {value}\nDisallow: /x\n");
            let rules = Rules::parse(body.as_bytes(), "x");
            assert_eq!(rules.crawl_delay(), None, "Crawl-delay: {value}");
            assert_eq!(rules.len(), 1, "the rest of the group still read");
        }
        // Ignored, so a later valid one of the group counts.
        let rules = Rules::parse(b"User-agent: *\nCrawl-delay: -1\nCrawl-delay: 2\n", "x");
        assert_eq!(rules.crawl_delay(), Some(Duration::from_secs(2)));
        // Over a day is a day; zero stays zero (no spacing).
        assert_eq!(crawl_delay_of("90000"), Some(MAX_CRAWL_DELAY));
        assert_eq!(crawl_delay_of("1e300"), Some(MAX_CRAWL_DELAY));
        assert_eq!(crawl_delay_of("0"), Some(Duration::ZERO));
        assert_eq!(crawl_delay_of("-0"), Some(Duration::ZERO));
    }

    #[test]
    fn a_long_line_of_multibyte_characters_does_not_panic() {
        let body = format!(
            "User-agent: *\nDisallow: /{}\nDisallow: /b\n",
            "é".repeat(20_000)
        );
        let rules = Rules::parse(body.as_bytes(), "x");
        assert!(!rules.allows(b"/b"));
        let body = format!(
            "User-agent: *\r\nDisallow: /{}\r\nDisallow: /c\r\n",
            "é".repeat(9_000)
        );
        assert!(!Rules::parse(body.as_bytes(), "x").allows(b"/c"));
    }

    #[test]
    fn non_ascii_patterns_match_percent_encoded_paths() {
        let body = "User-agent: *\nDisallow: /café\n";
        assert!(!allows(body, "x", "/caf%C3%A9/menu"));
    }

    #[test]
    fn product_tokens() {
        assert_eq!(product_token("ringscrape/0.1"), "ringscrape");
        assert_eq!(product_token("My-Bot_2 (+https://x)"), "My-Bot_");
        assert_eq!(product_token("123"), "");
    }
}
