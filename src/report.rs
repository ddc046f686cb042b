//! What a run shows when it ends, at the edge (as oha prints): the closing summary on stderr and
//! as the `--summary-json` document (one [`SummaryDocument`], printed two ways), and the line
//! that says what an incomplete run left and how to resume it. The supervisor computes the
//! outcome as a value; nothing below prints it.

pub mod driver;
pub mod hosts;
pub mod summary;

use std::fmt;

use crate::model::ErrorKind;
use crate::output::Output;
use crate::supervisor::{Missing, RunOutcome, TooManyFailed};
pub use summary::{Ran, SummaryDocument};

/// The closing summary on stderr and in `--summary-json`, and what is missing if anything.
pub fn show(outcome: &RunOutcome, ran: &Ran, summary_json: Option<&std::path::Path>) {
    if let Some(summary) = &outcome.summary {
        let document = SummaryDocument::new(summary, ran);
        crate::note!("{document}");
        if let Some(path) = summary_json {
            let text = serde_json::to_string(&document).expect("a summary serialises") + "\n";
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

impl SummaryDocument {
    /// The output as the stderr summary names it.
    fn output_name(&self) -> &str {
        match self.output.as_str() {
            "-" => "standard output",
            path => path,
        }
    }
}

/// The stderr summary: the document's figures, in words.
impl fmt::Display for SummaryDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_counts(f)?;
        self.ran_on.write_text(f)?;
        self.write_answers(f)?;
        if let Some(hosts) = &self.hosts {
            hosts.write_text(f)?;
        }
        self.write_latency(f)
    }
}

impl SummaryDocument {
    /// Items, rows by outcome, requests and retries, throttling, pace and bytes: the words of
    /// docs/guide.md's "Items, rows, requests, retries", each figure as `--summary-json` has it.
    fn write_counts(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.wall_s.max(1e-9);
        let ok_2xx: u64 = self.status.range(200..300).map(|(_, n)| n).sum();
        let answered: u64 = self.status.values().sum();
        let error_rows = self.error_rows();
        writeln!(f, "Summary:")?;
        writeln!(f, "  items      {} of {} done", self.items_done, self.items)?;
        writeln!(
            f,
            "  rows       {} written to {}  (2xx {ok_2xx}, other status {}, errors {error_rows})",
            self.rows,
            self.output_name(),
            answered - ok_2xx,
        )?;
        if error_rows > 0 {
            let kinds: Vec<String> = ErrorKind::ALL
                .iter()
                .filter_map(|kind| {
                    let n = self.errors.get(kind.as_str())?;
                    Some(format!("{} {n}", kind.as_str()))
                })
                .collect();
            writeln!(f, "  errors     {}", kinds.join(", "))?;
        }
        if !self.status.is_empty() {
            let codes: Vec<String> = self
                .status
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            writeln!(f, "  status     {}", codes.join(", "))?;
        }
        writeln!(
            f,
            "  requests   {} sent ({} retries), {:.0} req/s",
            self.requests, self.retries, self.req_per_s
        )?;
        if self.throttled_s > 0.0 {
            writeln!(
                f,
                "  throttled  {:.2} s (requests waiting at the rate gate; summed over shards)",
                self.throttled_s
            )?;
        }
        if self.paced_by_ratelimit_s > 0.0 {
            writeln!(
                f,
                "  paced by RateLimit: {:.2} s (requests waiting for the servers' quota; summed over shards)",
                self.paced_by_ratelimit_s
            )?;
        }
        if !self.concurrency_auto.is_empty() {
            let limits: Vec<String> = self.concurrency_auto.iter().map(u64::to_string).collect();
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
            self.bytes,
            self.bytes as f64 / 1e6 / secs,
            self.bytes_wire
        )?;
        Ok(())
    }

    /// What the answers showed: TLS, proxies, redirects, codings, extraction.
    fn write_answers(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let handshakes = self.tls_resumed + self.tls_full;
        if handshakes > 0 {
            writeln!(
                f,
                "  sessions   {} TLS handshakes, {} resumed ({:.1}%), {} full",
                handshakes,
                self.tls_resumed,
                100.0 * self.tls_resumed as f64 / handshakes as f64,
                self.tls_full
            )?;
        }
        if !self.tls_reasons.is_empty() {
            let reasons: Vec<String> = self
                .tls_reasons
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            writeln!(f, "  tls        {}", reasons.join(", "))?;
        }
        let proxied: u64 = self.proxies.values().map(|t| t.rows).sum();
        for (proxy, t) in &self.proxies {
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
        if self.redirect_limit > 0 {
            writeln!(
                f,
                "  redirects  {} answers were still redirects when --follow-redirects ran out (their rows hold the last 3xx)",
                self.redirect_limit
            )?;
        }
        if self.unknown_coding > 0 {
            writeln!(
                f,
                "  codings    {} bodies in a Content-Encoding ringscrape does not decode, kept as received",
                self.unknown_coding
            )?;
        }
        if self.extract_misses > 0 {
            writeln!(
                f,
                "  extract    {} cells left empty (body not JSON, or nothing found)",
                self.extract_misses
            )?;
        }
        Ok(())
    }

    /// The latency line (of rows that got an answer), last and without a line end.
    fn write_latency(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.latency_ms {
            None => write!(f, "  latency    no responses"),
            Some(l) => write!(
                f,
                "  latency    min {:.2} ms, mean {:.2} ms, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                l.min, l.mean, l.p50, l.p90, l.p99, l.p999, l.max
            ),
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
    use crate::stats::{HostBoard, HostFigures, Summary, WorkerStats};

    /// A 200 at once, and a timeout after 3 requests: 2 rows, 4 requests, 2 retries.
    fn two_rows_of_five_items() -> Summary {
        let mut stats = WorkerStats::new();
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
        Summary {
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
            drivers: Vec::new(),
        }
    }

    fn ran(argv: &[String]) -> Ran<'_> {
        Ran {
            argv,
            ended: std::time::UNIX_EPOCH + Duration::from_secs(10),
            exit_code: 0,
            complete: false,
        }
    }

    #[test]
    fn the_summary_names_counts_kinds_rate_and_settled_concurrency() {
        let argv = ["ringscrape".to_string(), "run".to_string()];
        let summary = two_rows_of_five_items();
        let document = SummaryDocument::new(&summary, &ran(&argv));
        let text = document.to_string();
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
        let json = serde_json::to_value(&document).expect("serialises");
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
        assert_eq!(json["version"], summary::SUMMARY_VERSION);
        assert_eq!(json["command"], "ringscrape run");
        assert_eq!(
            (json["started"].as_str(), json["ended"].as_str()),
            (
                Some("1970-01-01T00:00:09.000Z"),
                Some("1970-01-01T00:00:10.000Z")
            )
        );
        assert_eq!(
            (json["exit_code"].as_u64(), json["complete"].as_bool()),
            (Some(0), Some(false))
        );
        let back: SummaryDocument = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, document, "the document reads back as written");
    }

    /// Three hosts of a run of 2,000: one slow, one throttled, one failing; 3 s paced by quotas.
    fn of_many_hosts() -> Summary {
        let mut summary = two_rows_of_five_items();
        let host = |name: &str, requests, answered, mean_ms: u64, throttled, errors| HostFigures {
            host: name.to_string(),
            requests,
            answered,
            latency_us_sum: answered * mean_ms * 1000,
            throttled,
            errors,
            paced_us: 0,
        };
        summary.stats.paced_by_quota_us = 3_250_000;
        summary.stats.hosts = HostBoard {
            touched: 2000,
            top: vec![
                host("slow.example.com", 10, 10, 812, 0, 0),
                host("api.test:8443", 40, 37, 31, 12, 0),
                host("gone.test", 6, 0, 0, 0, 6),
            ],
        };
        summary.drivers = vec![crate::runtime::DriverChoice::IoUring; 2];
        summary
    }

    #[test]
    fn the_summary_of_many_hosts_names_the_worst_in_columns() {
        let argv = ["ringscrape".to_string(), "run".to_string()];
        let text = SummaryDocument::new(&of_many_hosts(), &ran(&argv)).to_string();
        let snapshot = "\
Summary:
  items      2 of 5 done
  rows       2 written to out.csv  (2xx 1, other status 0, errors 1)
  errors     timeout 1
  status     200 1
  requests   4 sent (2 retries), 4 req/s
  paced by RateLimit: 3.25 s (requests waiting for the servers' quota; summed over shards)
  concurrency auto: settled at 60, 58 in flight per worker (shard by shard)
  skipped    3 empty lines of the --ids-file
  wall       1.00 s
  bytes      20 decoded (0.00 MB/s), 0 on the wire
  driver     io_uring
  hosts      2000 touched
    slowest    slow.example.com  812.00 ms mean of 10 answered
               api.test:8443      31.00 ms mean of 37 answered
    throttled  api.test:8443     12 answers 429/503 of 40 requests
    failing    gone.test         6 error rows, 6 requests
  latency    min 1.00 ms, mean 1.00 ms, p50 1.00 ms, p90 1.00 ms, p99 1.00 ms, p99.9 1.00 ms, max 1.00 ms";
        assert_eq!(text, snapshot, "\n{text}");
    }

    #[test]
    fn the_summary_json_has_the_hosts_and_reads_back_without_them() {
        let argv = ["ringscrape".to_string(), "run".to_string()];
        let document = SummaryDocument::new(&of_many_hosts(), &ran(&argv));
        let mut json = serde_json::to_value(&document).expect("serialises");
        assert_eq!(json["paced_by_ratelimit_s"], 3.25);
        assert_eq!(json["hosts"]["touched"], 2000);
        assert_eq!(json["hosts"]["slowest"][0]["host"], "slow.example.com");
        assert_eq!(json["hosts"]["slowest"][0]["mean_ms"], 812.0);
        assert_eq!(json["hosts"]["throttled"][0]["throttled"], 12);
        assert_eq!(json["hosts"]["failing"][0]["errors"], 6);
        assert_eq!(json["driver"], "io_uring");
        assert_eq!(json["driver_workers"]["io_uring"], 2);
        assert_eq!(json["driver_why"], serde_json::Value::Null);
        let back: SummaryDocument = serde_json::from_value(json.clone()).expect("reads back");
        assert_eq!(back, document);
        // A document written before these fields (version 1 all the same) still reads.
        let fields = json.as_object_mut().expect("an object");
        fields.remove("hosts");
        fields.remove("paced_by_ratelimit_s");
        for key in ["driver", "driver_workers", "driver_why"] {
            fields.remove(key);
        }
        let old: SummaryDocument = serde_json::from_value(json).expect("an older document reads");
        assert_eq!((old.hosts, old.paced_by_ratelimit_s), (None, 0.0));
        assert_eq!(old.ran_on, driver::DriverView::default());
        // One host: no hosts block, no paced line.
        let one = SummaryDocument::new(&two_rows_of_five_items(), &ran(&argv));
        assert_eq!(one.hosts, None);
        let text = one.to_string();
        assert!(
            !text.contains("hosts ") && !text.contains("paced"),
            "{text}"
        );
    }

    #[test]
    fn a_summary_of_rows_on_standard_output_says_so() {
        let argv = ["ringscrape".to_string(), "run".to_string()];
        let stdout = Summary {
            output: None,
            ..two_rows_of_five_items()
        };
        let stdout = SummaryDocument::new(&stdout, &ran(&argv));
        assert!(stdout.to_string().contains("written to standard output"));
        assert_eq!(stdout.output, "-");
    }
}
