//! What a run shows when it ends, at the edge (as oha prints): the closing summary on stderr and
//! as the `--summary-json` document, and the line that says what an incomplete run left and how
//! to resume it. The supervisor computes the outcome as a value; nothing below prints it.

use std::fmt;

use crate::model::ErrorKind;
use crate::output::Output;
use crate::stats::Summary;
use crate::supervisor::{Missing, RunOutcome, TooManyFailed};

/// The closing summary on stderr and in `--summary-json`, and what is missing if anything.
pub fn show(outcome: &RunOutcome, summary_json: Option<&std::path::Path>) {
    if let Some(summary) = &outcome.summary {
        crate::note!("{summary}");
        if let Some(path) = summary_json {
            let text = summary.to_json().to_string() + "\n";
            if let Err(e) = crate::document::write(path, text.as_bytes()) {
                crate::say!("ringscrape: --summary-json {}: {e}", path.display());
            }
        }
    }
    if let Some(missing) = &outcome.missing {
        crate::say!("{missing}");
    }
    if let Some(over) = &outcome.too_many_failed {
        crate::say!("{over}");
    }
}

impl fmt::Display for TooManyFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ringscrape: {} of {} rows failed ({}), more than --max-failed {} allows: exit {}",
            self.failed,
            self.rows,
            percent(self.failed as f64 / self.rows.max(1) as f64),
            percent(self.limit),
            TooManyFailed::EXIT_CODE
        )
    }
}

/// A share as a percentage with no more digits than it needs: `5%`, `0.5%`, `33.3%`.
fn percent(ratio: f64) -> String {
    let text = format!("{:.1}", ratio * 100.0);
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}%")
}

impl Summary {
    /// The `--summary-json` document: the same figures as the text summary.
    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.stats;
        let wall = self.wall.as_secs_f64();
        let h = &s.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let latency = if h.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::json!({
                "min": ms(h.min()),
                "mean": h.mean() / 1000.0,
                "p50": ms(h.value_at_quantile(0.5)),
                "p90": ms(h.value_at_quantile(0.9)),
                "p99": ms(h.value_at_quantile(0.99)),
                "p999": ms(h.value_at_quantile(0.999)),
                "max": ms(h.max()),
            })
        };
        let status: serde_json::Map<String, serde_json::Value> = s
            .statuses
            .iter()
            .map(|(code, n)| (code.to_string(), (*n).into()))
            .collect();
        let errors: serde_json::Map<String, serde_json::Value> =
            crate::model::ErrorKind::named_counts(&s.errors_by_kind).collect();
        serde_json::json!({
            "items": self.items,
            "items_done": self.items_done,
            "output": self.output.as_ref().map_or("-".into(), |p| p.display().to_string()),
            "rows": self.rows_written,
            "requests": s.requests,
            "status": status,
            "errors": errors,
            "retries": self.retries(),
            "empty_lines": self.empty_lines,
            "throttled_s": s.throttled_us as f64 / 1e6,
            "wall_s": wall,
            "req_per_s": self.req_per_s(),
            "bytes": s.bytes,
            "bytes_wire": s.answers.wire_bytes,
            "unknown_coding": s.answers.unknown_coding,
            "extract_misses": s.answers.extract_misses,
            "redirect_limit": s.answers.redirect_limit,
            "tls_resumed": s.answers.tls_resumed,
            "tls_full": s.answers.tls_full,
            "tls_reasons": s.answers.tls_reasons,
            "proxies": s.answers.proxies,
            "latency_ms": latency,
            "concurrency_auto": self.auto_concurrency,
            "timeline": self.timeline.as_ref().map(crate::timeline::Timeline::to_json),
            "id_map": self.map.as_ref().map(crate::timeline::IdMap::to_json),
        })
    }
}

impl Summary {
    /// Requests beyond each row's first: one figure for every view.
    fn retries(&self) -> u64 {
        self.stats.requests.saturating_sub(self.stats.rows)
    }

    /// Requests (every attempt) per second of the run: one figure for every view.
    fn req_per_s(&self) -> f64 {
        self.stats.requests as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The output as the summary names it.
    fn output_name(&self) -> String {
        self.output
            .as_ref()
            .map_or("standard output".into(), |p| p.display().to_string())
    }
}

fn millis(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_counts(f)?;
        self.write_answers(f)?;
        self.write_latency(f)
    }
}

impl Summary {
    /// Items, rows by outcome, requests and retries, throttling, pace and bytes: the words of
    /// docs/guide.md's "Items, rows, requests, retries", each figure as `--summary-json` has it.
    fn write_counts(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let secs = self.wall.as_secs_f64().max(1e-9);
        writeln!(f, "Summary:")?;
        writeln!(f, "  items      {} of {} done", self.items_done, self.items)?;
        writeln!(
            f,
            "  rows       {} written to {}  (2xx {}, other status {}, errors {})",
            self.rows_written,
            self.output_name(),
            s.ok_2xx,
            s.other_status,
            s.errors
        )?;
        if s.errors > 0 {
            let kinds: Vec<String> = ErrorKind::ALL
                .iter()
                .filter(|kind| s.errors_by_kind[kind.slot()] > 0)
                .map(|kind| format!("{} {}", kind.as_str(), s.errors_by_kind[kind.slot()]))
                .collect();
            writeln!(f, "  errors     {}", kinds.join(", "))?;
        }
        if !s.statuses.is_empty() {
            let codes: Vec<String> = s
                .statuses
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            writeln!(f, "  status     {}", codes.join(", "))?;
        }
        writeln!(
            f,
            "  requests   {} sent ({} retries), {:.0} req/s",
            s.requests,
            self.retries(),
            self.req_per_s()
        )?;
        if s.throttled_us > 0 {
            writeln!(
                f,
                "  throttled  {:.2} s (requests waiting at the rate gate; summed over shards)",
                s.throttled_us as f64 / 1e6
            )?;
        }
        if !self.auto_concurrency.is_empty() {
            let limits: Vec<String> = self.auto_concurrency.iter().map(u64::to_string).collect();
            writeln!(
                f,
                "  concurrency auto: settled at {} in flight per worker (shard by shard)",
                limits.join(", ")
            )?;
        }
        if self.empty_lines > 0 {
            writeln!(
                f,
                "  skipped    {} empty lines of the --ids-file",
                self.empty_lines
            )?;
        }
        writeln!(f, "  wall       {secs:.2} s")?;
        writeln!(
            f,
            "  bytes      {} decoded ({:.2} MB/s), {} on the wire",
            s.bytes,
            s.bytes as f64 / 1e6 / secs,
            s.answers.wire_bytes
        )?;
        Ok(())
    }

    /// What the answers showed: TLS, proxies, redirects, codings, extraction.
    fn write_answers(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let a = &s.answers;
        let handshakes = a.tls_resumed + a.tls_full;
        if handshakes > 0 {
            writeln!(
                f,
                "  sessions   {} TLS handshakes, {} resumed ({:.1}%), {} full",
                handshakes,
                a.tls_resumed,
                100.0 * a.tls_resumed as f64 / handshakes as f64,
                a.tls_full
            )?;
        }
        if !a.tls_reasons.is_empty() {
            let reasons: Vec<String> = a
                .tls_reasons
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            writeln!(f, "  tls        {}", reasons.join(", "))?;
        }
        let proxied: u64 = a.proxies.values().map(|t| t.rows).sum();
        for (proxy, t) in &a.proxies {
            writeln!(
                f,
                "  proxy      {proxy}: {} rows ({:.1}%), {} connections, {} failures, benched {:.1} s",
                t.rows,
                100.0 * t.rows as f64 / proxied.max(1) as f64,
                t.connections,
                t.failures,
                t.bench_ms as f64 / 1e3
            )?;
        }
        if a.redirect_limit > 0 {
            writeln!(
                f,
                "  redirects  {} answers were still redirects when --follow-redirects ran out (their rows hold the last 3xx)",
                a.redirect_limit
            )?;
        }
        if s.answers.unknown_coding > 0 {
            writeln!(
                f,
                "  codings    {} bodies in a Content-Encoding ringscrape does not decode, kept as received",
                s.answers.unknown_coding
            )?;
        }
        if s.answers.extract_misses > 0 {
            writeln!(
                f,
                "  extract    {} cells left empty (body not JSON, or nothing found)",
                s.answers.extract_misses
            )?;
        }
        Ok(())
    }

    /// The latency line (of rows that got an answer), last and without a line end.
    fn write_latency(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let h = &s.latency_us;
        if h.is_empty() {
            write!(f, "  latency    no responses")
        } else {
            write!(
                f,
                "  latency    min {:.2} ms, mean {:.2} ms, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                millis(h.min()),
                h.mean() / 1000.0,
                millis(h.value_at_quantile(0.5)),
                millis(h.value_at_quantile(0.9)),
                millis(h.value_at_quantile(0.99)),
                millis(h.value_at_quantile(0.999)),
                millis(h.max())
            )
        }
    }
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stdin = if self.keys_on_stdin {
            " (with the same keys on standard input)"
        } else {
            ""
        };
        let (have, items, resume) = (self.have_rows, self.items, &self.resume_command);
        match &self.output {
            Output::File(path) if self.torn_after_failure.is_some_and(|torn| torn > 0) => write!(
                f,
                "ringscrape: {have} of {items} items have whole rows in {}, then {} bytes of a torn row that --resume cuts; resume with: {resume}{stdin}",
                path.display(),
                self.torn_after_failure.unwrap_or_default()
            ),
            Output::File(path) => write!(
                f,
                "ringscrape: {have} of {items} items have rows in {}; resume with: {resume}{stdin}",
                path.display()
            ),
            Output::Stdout => write!(
                f,
                "ringscrape: {have} of {items} items have rows (written to stdout, which cannot be resumed)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Record;
    use crate::stats::WorkerStats;

    #[test]
    fn the_summary_names_counts_kinds_rate_and_settled_concurrency() {
        let mut stats = WorkerStats::new();
        // A 200 at once, and a timeout after 3 requests: 2 rows, 4 requests, 2 retries.
        for (status, error, attempts) in [(Some(200), None, 1), (None, Some(ErrorKind::Timeout), 3)]
        {
            stats.record(&Record {
                status,
                bytes: 10,
                latency_us: 1_000,
                attempts,
                error,
                ..Record::default()
            });
        }
        let summary = Summary {
            stats,
            rows_written: 2,
            items: 5,
            items_done: 2,
            output: Some("out.csv".into()),
            empty_lines: 3,
            wall: Duration::from_secs(1),
            auto_concurrency: vec![60, 58],
            timeline: None,
            map: None,
        };
        let text = summary.to_string();
        for line in [
            "items      2 of 5 done",
            "rows       2 written to out.csv  (2xx 1, other status 0, errors 1)",
            "timeout 1",
            // Requests are every attempt, in the text as in the JSON.
            "requests   4 sent (2 retries), 4 req/s",
            "settled at 60, 58 in flight",
            "skipped    3 empty lines",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        let json = summary.to_json();
        assert_eq!(json["rows"], 2);
        assert_eq!(
            (json["requests"].as_u64(), json["retries"].as_u64()),
            (Some(4), Some(2))
        );
        assert_eq!(json["req_per_s"], 4.0);
        assert_eq!(
            (json["items"].as_u64(), json["items_done"].as_u64()),
            (Some(5), Some(2))
        );
        assert_eq!(json["output"], "out.csv");
        assert_eq!(json["errors"]["timeout"], 1);
        assert_eq!(json["status"]["200"], 1);
        let stdout = Summary {
            output: None,
            ..summary
        };
        assert!(stdout.to_string().contains("written to standard output"));
        assert_eq!(stdout.to_json()["output"], "-");
    }
}
