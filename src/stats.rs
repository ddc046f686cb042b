//! Counters and the latency histogram a worker keeps for its own requests, merged across shards
//! in the supervisor, and the end-of-run summary printed from them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

use crate::model::{ErrorKind, Record};
use crate::runtime::DriverChoice;
use crate::timeline::{IdMap, Timeline};

/// Latencies above an hour are clamped; the deadline ends requests long before that.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// TLS failure reasons kept apart at most; more are counted as "other".
const MAX_TLS_REASONS: usize = 32;

/// What a worker saw of the answers themselves, counted where they arrive (every attempt), as
/// opposed to the rows, which are counted where they are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerCounts {
    /// Body bytes as they came off the connection (before decoding).
    pub wire_bytes: u64,
    /// Answers whose `Content-Encoding` was not one ringscrape decodes (kept as received).
    pub unknown_coding: u64,
    /// `--extract` cells left empty: the body was not JSON, or the expression found nothing.
    pub extract_misses: u64,
    /// Attempts whose last hop was still a redirect when `--follow-redirects` ran out.
    pub redirect_limit: u64,
    /// TLS handshakes that resumed a session, and full ones (the certificate verified).
    pub tls_resumed: u64,
    pub tls_full: u64,
    /// Failed TLS handshakes by reason (unknown issuer, expired, wrong name, …).
    pub tls_reasons: BTreeMap<String, u64>,
    /// What each proxy carried, by the proxy as shown (credentials left out).
    pub proxies: BTreeMap<String, ProxyTally>,
    /// What failures showed beyond their error kind, for the diagnosis.
    pub signs: Signs,
}

/// Failures that tell more than their error kind: what `diagnosis` needs to name the mistake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signs {
    /// Connects refused (no listener at the port).
    pub refused: u64,
    /// 400 answers whose body says plain HTTP was sent to an HTTPS port.
    pub https_port: u64,
    /// HTTP/2 connections the server answered in HTTP/1.
    pub not_h2: u64,
}

impl Signs {
    pub fn merge(&mut self, other: &Signs) {
        self.refused += other.refused;
        self.https_port += other.https_port;
        self.not_h2 += other.not_h2;
    }

    /// Which signs have been seen at all (the worker sends its figures at once when this
    /// changes, so that the supervisor's diagnosis does not wait a second for them).
    pub fn seen(&self) -> [bool; 3] {
        [self.refused > 0, self.https_port > 0, self.not_h2 > 0]
    }
}

/// One proxy's share of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyTally {
    /// Connections it carried to the target.
    pub connections: u64,
    /// Rows answered through it (HTTP/1.1 and HTTP/2).
    pub rows: u64,
    /// Times it failed (refused, timed out, 407, CONNECT or SOCKS refused).
    pub failures: u64,
    /// Time it was benched after failing, in milliseconds.
    pub bench_ms: u64,
}

impl ProxyTally {
    pub fn add(&mut self, other: &ProxyTally) {
        self.connections += other.connections;
        self.rows += other.rows;
        self.failures += other.failures;
        self.bench_ms += other.bench_ms;
    }
}

impl AnswerCounts {
    pub fn merge(&mut self, other: &AnswerCounts) {
        self.wire_bytes += other.wire_bytes;
        self.unknown_coding += other.unknown_coding;
        self.extract_misses += other.extract_misses;
        self.redirect_limit += other.redirect_limit;
        self.tls_resumed += other.tls_resumed;
        self.tls_full += other.tls_full;
        for (reason, n) in &other.tls_reasons {
            self.add_tls_reason(reason, *n);
        }
        for (proxy, tally) in &other.proxies {
            self.proxies.entry(proxy.clone()).or_default().add(tally);
        }
        self.signs.merge(&other.signs);
    }

    pub fn add_tls_reason(&mut self, reason: &str, n: u64) {
        let reason =
            if self.tls_reasons.len() < MAX_TLS_REASONS || self.tls_reasons.contains_key(reason) {
                reason
            } else {
                "other"
            };
        *self.tls_reasons.entry(reason.to_string()).or_default() += n;
    }
}

/// What one host's requests came to, in the worker that fetched it (every item of a host goes to
/// one worker when the host varies): what the per-host views (summary, `--summary-json`, the
/// live page) rank hosts by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFigures {
    /// The host (and `:port` when not the scheme's default).
    pub host: String,
    /// Attempts sent to it.
    pub requests: u64,
    /// Rows of it that ended in an error.
    pub errors: u64,
    /// Answers 429 or 503 (the host asked to slow down).
    pub throttled: u64,
    /// Time its requests waited for its own limits and pacing, in microseconds.
    pub paced_us: u64,
    /// Sum of the latencies of its answered requests, in microseconds (mean = sum / answered).
    pub latency_us_sum: u64,
    /// Requests it answered.
    pub answered: u64,
}

/// The hosts a worker touched: how many, and those worth showing (the top of each ranking).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostBoard {
    /// Distinct hosts the worker sent requests to.
    pub touched: u64,
    /// The worker's candidates for the views' top lists (slowest, most throttled, most
    /// failing); the supervisor ranks them all again.
    pub top: Vec<HostFigures>,
}

impl HostBoard {
    /// Adds `other`'s hosts: one entry per host (its figures summed when both have it; a host
    /// is one worker's unless the run's items were not routed by host).
    pub fn merge(&mut self, other: &HostBoard) {
        self.touched += other.touched;
        for theirs in &other.top {
            match self.top.iter_mut().find(|mine| mine.host == theirs.host) {
                Some(mine) => mine.add(theirs),
                None => self.top.push(theirs.clone()),
            }
        }
    }
}

impl HostFigures {
    fn add(&mut self, other: &HostFigures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.throttled += other.throttled;
        self.paced_us += other.paced_us;
        self.latency_us_sum += other.latency_us_sum;
        self.answered += other.answered;
    }
}

/// One worker's counters (cumulative). Sent over the pipe now and then, and at the end.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    pub rows: u64,
    pub ok_2xx: u64,
    pub other_status: u64,
    pub errors: u64,
    pub bytes: u64,
    pub errors_by_kind: [u64; ErrorKind::ALL.len()],
    /// Time some request waited at the worker's rate gate (`--rate`, or slowed down by 429s).
    pub throttled_us: u64,
    /// Requests in flight when the snapshot was taken.
    pub in_flight: u64,
    /// Slots allowed a request in flight (the found limit, with `--concurrency auto`).
    pub concurrency_limit: u64,
    /// What the worker saw of the answers themselves.
    pub answers: AnswerCounts,
    /// Requests made (every attempt of every row; tallied where rows are, not sent on the wire).
    pub requests: u64,
    /// Rows by status code (tallied where rows are, not sent on the wire).
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of requests that got a response, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Time requests waited because of the servers' rate-limit headers (`RateLimit*`,
    /// `X-RateLimit-*`), in microseconds.
    pub paced_by_quota_us: u64,
    /// Per-host figures (runs whose host varies).
    pub hosts: HostBoard,
    /// The event loop the worker runs on (`None` until it has said: an older worker, or the
    /// writer's tally, which counts rows only).
    pub driver: Option<DriverChoice>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerStats {
    pub fn new() -> Self {
        Self {
            rows: 0,
            ok_2xx: 0,
            other_status: 0,
            errors: 0,
            bytes: 0,
            errors_by_kind: [0; ErrorKind::ALL.len()],
            throttled_us: 0,
            in_flight: 0,
            concurrency_limit: 0,
            answers: AnswerCounts::default(),
            requests: 0,
            statuses: BTreeMap::new(),
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
            paced_by_quota_us: 0,
            hosts: HostBoard::default(),
            driver: None,
        }
    }

    pub fn record(&mut self, record: &Record) {
        self.rows += 1;
        self.bytes += record.bytes;
        self.requests += u64::from(record.attempts);
        // A row keeps the status of an answer whose body then failed; the tallies count it
        // as an error only, as before rows kept it.
        let answered = record.status.filter(|_| record.error.is_none());
        if let Some(status) = answered {
            *self.statuses.entry(status).or_default() += 1;
        }
        match (record.status, record.error) {
            (_, Some(kind)) => {
                self.errors += 1;
                self.errors_by_kind[kind.slot()] += 1;
            }
            (Some(status), None) if (200..300).contains(&status) => self.ok_2xx += 1,
            (Some(_), None) => self.other_status += 1,
            (None, None) => {}
        }
        if answered.is_some() {
            self.latency_us
                .saturating_record(u64::from(record.latency_us).clamp(1, MAX_LATENCY_US));
        }
    }

    pub fn merge(&mut self, other: &WorkerStats) {
        self.rows += other.rows;
        self.ok_2xx += other.ok_2xx;
        self.other_status += other.other_status;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.throttled_us += other.throttled_us;
        self.paced_by_quota_us += other.paced_by_quota_us;
        self.hosts.merge(&other.hosts);
        self.answers.merge(&other.answers);
        // A shard's worker started again says its own driver: the latest one said is the shard's.
        if other.driver.is_some() {
            self.driver.clone_from(&other.driver);
        }
        self.requests += other.requests;
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        for (mine, theirs) in self.errors_by_kind.iter_mut().zip(other.errors_by_kind) {
            *mine += theirs;
        }
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms share the same bounds");
    }

    /// Error rows by the name of their kind, the kinds with none left out.
    pub fn errors_by_name(&self) -> BTreeMap<String, u64> {
        ErrorKind::ALL
            .iter()
            .filter(|kind| self.errors_by_kind[kind.slot()] > 0)
            .map(|kind| (kind.as_str().to_string(), self.errors_by_kind[kind.slot()]))
            .collect()
    }

    pub(crate) fn encode_latency(&self, out: &mut Vec<u8>) {
        V2Serializer::new()
            .serialize(&self.latency_us, out)
            .expect("serialising a histogram into a Vec cannot fail");
    }

    /// Reads the histogram at the front of `bytes`, leaving `bytes` at what follows it.
    pub(crate) fn decode_latency(&mut self, bytes: &mut &[u8]) -> Result<(), String> {
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(bytes)
            .map_err(|e| format!("{e:?}"))?;
        self.latency_us.add(&decoded).map_err(|e| format!("{e:?}"))
    }
}

/// What the run did, for the closing summary on stderr.
#[derive(Debug, Clone)]
pub struct Summary {
    pub stats: WorkerStats,
    pub rows_written: u64,
    /// Items of the run (this node's), and those with all their rows (an earlier run's
    /// included).
    pub items: u64,
    pub items_done: u64,
    /// The file the rows went to; `None`: standard output.
    pub output: Option<std::path::PathBuf>,
    /// Empty lines of an `--ids-file`: not items, no rows.
    pub empty_lines: u64,
    pub wall: Duration,
    /// With `--concurrency auto`: the limit each worker settled on, by shard (else empty).
    pub auto_concurrency: Vec<u64>,
    /// The rows over time.
    pub timeline: Option<Timeline>,
    /// What each item came to, over the id space (an earlier run's rows included).
    pub map: Option<IdMap>,
    /// The event loop of each worker that said (shard by shard).
    pub drivers: Vec<DriverChoice>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: Option<u16>, error: Option<ErrorKind>, latency_us: u32) -> Record {
        Record {
            index: 0,
            page: 0,
            more: false,
            status,
            bytes: 10,
            latency_us,
            attempts: 1,
            error,
            ..Record::default()
        }
    }

    #[test]
    fn counts_by_class_and_merges_across_workers() {
        let mut a = WorkerStats::new();
        a.record(&row(Some(200), None, 1_000));
        a.record(&row(Some(404), None, 3_000));
        let mut b = WorkerStats::new();
        b.record(&row(None, Some(ErrorKind::Timeout), 30_000_000));
        b.record(&row(Some(204), None, 2_000));
        a.merge(&b);
        assert_eq!(
            (a.rows, a.ok_2xx, a.other_status, a.errors, a.bytes),
            (4, 2, 1, 1, 40)
        );
        assert_eq!(a.errors_by_kind[ErrorKind::Timeout.slot()], 1);
        // Only responses count towards latency.
        assert_eq!(a.latency_us.len(), 3);
        assert!(a.latency_us.max() < 3_100);
    }
}
