//! The closing summary as one typed, versioned document: what ran and how it ended, and the
//! run's figures under the names the stderr summary prints. `--summary-json` writes it, the
//! stderr summary is printed from it (so the two cannot disagree), and `tune` reads a step's
//! run back into it. Its fields are described in docs/guide.md ("Items, rows, requests,
//! retries", and `--summary-json`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::driver::DriverView;
use super::hosts::HostsView;
use crate::stats::{ProxyTally, Summary};

/// The document's version: raised when a field changes meaning or goes away (a new field does
/// not raise it). Documents written before it was versioned have no `version`.
pub const SUMMARY_VERSION: u32 = 1;

/// The closing summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryDocument {
    /// [`SUMMARY_VERSION`].
    pub version: u32,
    /// The program's version (`ringscrape --version`).
    pub ringscrape: String,
    /// The command line, with credentials (secret header values, user and password in URLs)
    /// redacted.
    pub command: String,
    /// When the run started and ended, RFC 3339 in UTC.
    pub started: String,
    pub ended: String,
    /// The process's exit code.
    pub exit_code: u8,
    /// Every item of the run has all its rows.
    pub complete: bool,
    /// Items of the run (this node's), and those with all their rows (an earlier run's too).
    pub items: u64,
    pub items_done: u64,
    /// The rows' file; `-`: standard output.
    pub output: String,
    /// Rows written by this run.
    pub rows: u64,
    /// Rows answered with a status (and no error), by status.
    pub status: BTreeMap<u16, u64>,
    /// Error rows, by error kind.
    pub errors: BTreeMap<String, u64>,
    /// Requests sent: every attempt of every row, retries included.
    pub requests: u64,
    /// Requests beyond each row's first (`requests − rows`).
    pub retries: u64,
    /// Requests per second of the whole run.
    pub req_per_s: f64,
    /// Time requests waited at the rate gate, summed over shards.
    pub throttled_s: f64,
    /// Time requests waited because of the servers' rate-limit headers, summed over shards.
    #[serde(default)]
    pub paced_by_ratelimit_s: f64,
    /// With `--concurrency auto`: the limit each worker settled on, by shard.
    pub concurrency_auto: Vec<u64>,
    /// Empty lines of an `--ids-file` (not items: no rows).
    pub empty_lines: u64,
    pub wall_s: f64,
    /// Body bytes decoded, and as they came off the wire.
    pub bytes: u64,
    pub bytes_wire: u64,
    pub tls_resumed: u64,
    pub tls_full: u64,
    pub tls_reasons: BTreeMap<String, u64>,
    pub proxies: BTreeMap<String, ProxyTally>,
    pub redirect_limit: u64,
    pub unknown_coding: u64,
    pub extract_misses: u64,
    /// With more than one host: how many the run touched, and the slowest, most throttled and
    /// most failing (`None`: one host, or a document of before issue 38).
    #[serde(default)]
    pub hosts: Option<HostsView>,
    /// The event loop the workers ran on (`driver`, `driver_workers`, `driver_why`).
    #[serde(flatten, default)]
    pub ran_on: DriverView,
    /// Latency of the answered rows; `None` when none was answered.
    pub latency_ms: Option<Latency>,
    /// The rows over time, and over the id space (see `crate::timeline`).
    pub timeline: Option<serde_json::Value>,
    pub id_map: Option<serde_json::Value>,
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// What the summary says of the run beyond its figures: the command and how it ended.
#[derive(Debug, Clone)]
pub struct Ran<'a> {
    /// The command line as typed (redacted here).
    pub argv: &'a [String],
    /// When the run ended (it started its wall time before).
    pub ended: SystemTime,
    pub exit_code: u8,
    pub complete: bool,
}

impl SummaryDocument {
    /// The document of `summary`, for a run that ended as `ran` says.
    pub fn new(summary: &Summary, ran: &Ran) -> SummaryDocument {
        let s = &summary.stats;
        let a = &s.answers;
        let h = &s.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let latency_ms = (!h.is_empty()).then(|| Latency {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        });
        let started = ran.ended.checked_sub(summary.wall).unwrap_or(ran.ended);
        SummaryDocument {
            version: SUMMARY_VERSION,
            ringscrape: env!("CARGO_PKG_VERSION").to_string(),
            command: shown_command(ran.argv),
            started: rfc3339(started),
            ended: rfc3339(ran.ended),
            exit_code: ran.exit_code,
            complete: ran.complete,
            items: summary.items,
            items_done: summary.items_done,
            output: summary
                .output
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string()),
            rows: summary.rows_written,
            status: s.statuses.clone(),
            errors: s.errors_by_name(),
            requests: s.requests,
            retries: s.requests.saturating_sub(s.rows),
            req_per_s: s.requests as f64 / summary.wall.as_secs_f64().max(1e-9),
            throttled_s: s.throttled_us as f64 / 1e6,
            paced_by_ratelimit_s: s.paced_by_quota_us as f64 / 1e6,
            concurrency_auto: summary.auto_concurrency.clone(),
            empty_lines: summary.empty_lines,
            wall_s: summary.wall.as_secs_f64(),
            bytes: s.bytes,
            bytes_wire: a.wire_bytes,
            tls_resumed: a.tls_resumed,
            tls_full: a.tls_full,
            tls_reasons: a.tls_reasons.clone(),
            proxies: a.proxies.clone(),
            redirect_limit: a.redirect_limit,
            unknown_coding: a.unknown_coding,
            extract_misses: a.extract_misses,
            hosts: HostsView::of(&s.hosts),
            ran_on: DriverView::of(&summary.drivers),
            latency_ms,
            timeline: summary.timeline.as_ref().map(|t| t.to_json()),
            id_map: summary.map.as_ref().map(|m| m.to_json()),
        }
    }

    /// Error rows of every kind.
    pub fn error_rows(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The command line as the document shows it: credential header values and the user and
/// password of any URL (`--url`, `--proxy`) redacted.
fn shown_command(argv: &[String]) -> String {
    let args: Vec<String> = crate::redact::redact_args(argv)
        .into_iter()
        .map(|arg| {
            if arg.contains("://") {
                crate::redact::redact_url(&arg)
            } else {
                arg
            }
        })
        .collect();
    shell_words::join(args)
}

/// `at` as RFC 3339 in UTC, to the millisecond: `2026-12-06T15:50:18.250Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60,
        since.subsec_millis()
    )
}

/// The (year, month, day) of `days` since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        let at = |secs: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year) and the end of 2026-12-06.
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_601_599, 999), "2026-12-06T23:59:59.999Z");
    }

    #[test]
    fn the_command_is_shown_without_its_credentials() {
        let argv: Vec<String> = [
            "ringscrape",
            "run",
            "--url",
            "http://user:pw@host/{id}",
            "-H",
            "Authorization: Bearer abc",
            "--proxy=socks5://u:p@proxy:1080",
            "-H",
            "Accept: text/html",
        ]
        .map(String::from)
        .to_vec();
        let shown = shown_command(&argv);
        for secret in ["pw", "abc", "u:p"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("'Accept: text/html'"), "{shown}");
        assert!(shown.contains("http://***@host/{id}"), "{shown}");
    }
}
