//! The run over time and over its id space, as data every report is a view of (`--summary-json`
//! now; a live page and an HTML report next):
//!
//! - [`Timeline`]: what the rows said, second by second — rows, requests (so retries), status
//!   classes, error kinds, bytes, and latency quantiles (within 1%) from a sparse log-scale
//!   histogram per bucket. Memory is bounded: past [`MAX_BUCKETS`], neighbouring buckets are merged and the
//!   bucket width doubles, so a 10-hour run keeps ~1,100 buckets of 32 s.
//! - [`IdMap`]: the index space cut into at most [`MAX_CELLS`] cells, each counting its items
//!   that ended well, that failed, and (by difference) that are pending. A resumed run starts
//!   with the earlier run's rows.
//!
//! Filled batch by batch as the writer writes ([`Views`], held by the supervisor's views, a
//! [`crate::output::writer::RowObserver`]), in the order rows reach the file.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::ids::IdRange;
use crate::model::{ErrorKind, Record};

/// Buckets kept at most before neighbours are merged.
pub const MAX_BUCKETS: usize = 2048;
/// Cells of the id-space map at most.
pub const MAX_CELLS: u64 = 4096;
/// Width of a latency bin: each is 2% wider than the one below, so the middle of a bin is within
/// 1% of every latency in it (quarter-octave bins, ±9%, drew p90 = p99 on a real run).
const BIN_RATIO: f64 = 1.02;

/// Latencies by log-scale bin, sparse: only the bins in use, in order. One second's answers fill
/// a few dozen to a few hundred of the ~1,100 bins a `u32` of microseconds spans, so a bucket
/// holds a few KB at most (the dense array would be 4.5 KB for every bucket), and a row costs a
/// logarithm and a binary search: no allocation but when a new bin comes into use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LogHistogram {
    /// (bin, count), bins ascending.
    bins: Vec<(u16, u32)>,
}

impl LogHistogram {
    fn bin(us: u64) -> u16 {
        let us = us.max(1) as f64;
        // A u32 of microseconds is bin 1,120 at most; clamped for anything wider.
        (us.ln() / BIN_RATIO.ln()).min(f64::from(u16::MAX)) as u16
    }

    /// The bin's middle value (geometric), in microseconds.
    fn value(bin: u16) -> f64 {
        BIN_RATIO.powf(f64::from(bin) + 0.5)
    }

    fn add(&mut self, bin: u16, n: u32) {
        match self.bins.binary_search_by_key(&bin, |&(b, _)| b) {
            Ok(at) => self.bins[at].1 = self.bins[at].1.saturating_add(n),
            Err(at) => self.bins.insert(at, (bin, n)),
        }
    }

    fn record(&mut self, us: u64) {
        self.add(Self::bin(us), 1);
    }

    fn merge(&mut self, other: &LogHistogram) {
        for &(bin, n) in &other.bins {
            self.add(bin, n);
        }
    }

    /// The value at quantile `q` (0..=1), in milliseconds; `None` when empty.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.bins.iter().map(|&(_, c)| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for &(bin, count) in &self.bins {
            seen += u64::from(count);
            if seen >= rank {
                return Some(Self::value(bin) / 1000.0);
            }
        }
        None
    }
}

/// What the rows of one stretch of time said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bucket {
    rows: u64,
    requests: u64,
    /// Rows answered 1xx..5xx (no error), by class.
    classes: [u64; 5],
    errors: [u64; ErrorKind::ALL.len()],
    bytes: u64,
    latency: LogHistogram,
    /// Time requests waited at the workers' rate gates (`--rate`, 429s), summed.
    throttled_us: u64,
}

impl Bucket {
    fn record(&mut self, record: &Record) {
        self.rows += 1;
        self.requests += u64::from(record.attempts);
        self.bytes += record.bytes;
        match (record.status, record.error) {
            (_, Some(kind)) => self.errors[kind.slot()] += 1,
            (Some(status), None) => {
                let class = usize::from(status / 100).clamp(1, 5) - 1;
                self.classes[class] += 1;
                self.latency.record(u64::from(record.latency_us));
            }
            (None, None) => {}
        }
    }

    fn merge(&mut self, other: &Bucket) {
        self.rows += other.rows;
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.throttled_us += other.throttled_us;
        for (mine, theirs) in self.classes.iter_mut().zip(other.classes) {
            *mine += theirs;
        }
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        self.latency.merge(&other.latency);
    }

    fn to_json(&self, start_s: f64) -> serde_json::Value {
        let errors: serde_json::Map<String, serde_json::Value> =
            ErrorKind::named_counts(&self.errors).collect();
        json!({
            "t": start_s,
            "rows": self.rows,
            "requests": self.requests,
            "retries": self.requests.saturating_sub(self.rows),
            "status": {"1xx": self.classes[0], "2xx": self.classes[1], "3xx": self.classes[2],
                       "4xx": self.classes[3], "5xx": self.classes[4]},
            "errors": errors,
            "bytes": self.bytes,
            "throttled_s": self.throttled_us as f64 / 1e6,
            "latency_ms": {"p50": self.latency.quantile_ms(0.5),
                           "p90": self.latency.quantile_ms(0.9),
                           "p99": self.latency.quantile_ms(0.99)},
        })
    }
}

/// The run's rows over time, in buckets of `width` (one second, doubled as the run grows).
#[derive(Debug, Clone)]
pub struct Timeline {
    started: Instant,
    width: Duration,
    buckets: Vec<Bucket>,
    /// The workers' time throttled as last noted (a running total).
    throttled_us: u64,
}

impl Timeline {
    pub fn new(started: Instant) -> Timeline {
        Timeline {
            started,
            width: Duration::from_secs(1),
            buckets: Vec::new(),
            throttled_us: 0,
        }
    }

    /// The bucket for `now`, made (and older ones merged) as needed.
    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let at = now.saturating_duration_since(self.started);
        let mut slot = (at.as_nanos() / self.width.as_nanos()) as usize;
        while slot >= MAX_BUCKETS {
            self.halve();
            slot = (at.as_nanos() / self.width.as_nanos()) as usize;
        }
        if self.buckets.len() <= slot {
            self.buckets.resize_with(slot + 1, Bucket::default);
        }
        &mut self.buckets[slot]
    }

    /// Counts `record`, written at `now`.
    pub fn record(&mut self, record: &Record, now: Instant) {
        self.bucket(now).record(record);
    }

    /// The workers had waited `total_us` at their rate gates by `now`: what is new since the
    /// last note goes into `now`'s bucket.
    pub fn note_throttled(&mut self, total_us: u64, now: Instant) {
        let new = total_us.saturating_sub(self.throttled_us);
        self.throttled_us = self.throttled_us.max(total_us);
        if new > 0 {
            self.bucket(now).throttled_us += new;
        }
    }

    /// Merges neighbouring buckets: half as many, twice as wide.
    fn halve(&mut self) {
        let merged = self
            .buckets
            .chunks(2)
            .map(|pair| {
                let mut bucket = pair[0].clone();
                if let Some(second) = pair.get(1) {
                    bucket.merge(second);
                }
                bucket
            })
            .collect();
        self.buckets = merged;
        self.width *= 2;
    }

    /// The buckets as `--summary-json` holds them: each with its start in seconds (the last may
    /// be cut short by the run's end).
    pub fn to_json(&self) -> serde_json::Value {
        self.buckets_to_json(self.buckets.len())
    }

    /// The buckets that had ended `elapsed` after the timeline's start: what the page and the
    /// report draw. The bucket still filling would be drawn as a cliff (400 rows/s where the
    /// rate is 6,000), as would the one a run's end cut short.
    pub fn whole_to_json(&self, elapsed: Duration) -> serde_json::Value {
        let whole = (elapsed.as_nanos() / self.width.as_nanos()) as usize;
        self.buckets_to_json(whole.min(self.buckets.len()))
    }

    fn buckets_to_json(&self, n: usize) -> serde_json::Value {
        let width = self.width.as_secs_f64();
        json!({
            "bucket_s": width,
            "buckets": self.buckets[..n]
                .iter()
                .enumerate()
                .map(|(at, bucket)| bucket.to_json(at as f64 * width))
                .collect::<Vec<_>>(),
        })
    }
}

/// The index space in cells: how many items of each ended well, failed, or are pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    range: IdRange,
    /// Items per cell (the last cell may have fewer).
    per_cell: u64,
    ok: Vec<u64>,
    failed: Vec<u64>,
}

impl IdMap {
    pub fn new(range: IdRange) -> IdMap {
        let per_cell = range.len().div_ceil(MAX_CELLS).max(1);
        let cells = range.len().div_ceil(per_cell) as usize;
        IdMap {
            range,
            per_cell,
            ok: vec![0; cells],
            failed: vec![0; cells],
        }
    }

    /// Item `index` ended: well (a 2xx row) or not.
    pub fn ended(&mut self, index: u64, succeeded: bool) {
        if !self.range.contains(index) {
            return;
        }
        let cell = ((index - self.range.start) / self.per_cell) as usize;
        match succeeded {
            true => self.ok[cell] += 1,
            false => self.failed[cell] += 1,
        }
    }

    /// Counts a written row: its item ends unless more pages of it follow.
    pub fn record(&mut self, record: &Record) {
        if !record.more {
            self.ended(record.index, record.succeeded());
        }
    }

    /// Items in cell `cell`.
    fn size(&self, cell: usize) -> u64 {
        let start = self.range.start + cell as u64 * self.per_cell;
        self.per_cell.min(self.range.end - start)
    }

    /// The map as `--summary-json` holds it: per cell, its first index and counts. Built as
    /// values directly: `json!` would serialize the 4,096 cells' array once more to nest it,
    /// at a run's end, twice (the summary, the page's last state).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        let cells: Vec<Value> = (0..self.ok.len())
            .map(|cell| {
                let pending =
                    self.size(cell) - (self.ok[cell] + self.failed[cell]).min(self.size(cell));
                Value::Array(vec![
                    self.ok[cell].into(),
                    self.failed[cell].into(),
                    pending.into(),
                ])
            })
            .collect();
        let mut map = serde_json::Map::new();
        map.insert("start".into(), self.range.start.into());
        map.insert("end".into(), self.range.end.into());
        map.insert("per_cell".into(), self.per_cell.into());
        map.insert("cells".into(), Value::Array(cells));
        map.insert("legend".into(), json!(["ok", "failed", "pending"]));
        Value::Object(map)
    }

    /// Totals over every cell: (ok, failed).
    pub fn totals(&self) -> (u64, u64) {
        (self.ok.iter().sum(), self.failed.iter().sum())
    }
}

/// What is kept of the rows besides writing them: the run over time, and the id space with what
/// each item came to (seeded with an earlier run's rows when resuming).
#[derive(Debug, Clone)]
pub struct Views {
    pub timeline: Timeline,
    pub map: IdMap,
}

impl Views {
    /// Counts `records`, written at `now`.
    pub fn record(&mut self, records: &[Record], now: Instant) {
        // One bucket for the batch: looking it up per row (a 128-bit division and a clock
        // subtraction) was a third of the timeline's cost.
        let bucket = self.timeline.bucket(now);
        for record in records {
            bucket.record(record);
            self.map.record(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u64, status: Option<u16>, error: Option<ErrorKind>, latency_us: u32) -> Record {
        Record {
            index,
            status,
            error,
            latency_us,
            attempts: 1,
            bytes: 10,
            ..Record::default()
        }
    }

    #[test]
    fn buckets_stay_bounded_as_a_long_run_goes_on() {
        let start = Instant::now();
        let mut timeline = Timeline::new(start);
        // Ten hours, a row a second.
        for s in 0..36_000u64 {
            timeline.record(
                &row(s, Some(200), None, 1000),
                start + Duration::from_secs(s),
            );
        }
        assert!(timeline.buckets.len() <= MAX_BUCKETS);
        assert_eq!(timeline.width, Duration::from_secs(32));
        let rows: u64 = timeline.buckets.iter().map(|b| b.rows).sum();
        assert_eq!(rows, 36_000, "merging keeps every row");
        let json = timeline.to_json();
        assert_eq!(json["bucket_s"], 32.0);
        assert_eq!(json["buckets"][1]["t"], 32.0);
        assert!(json.to_string().len() < 1 << 20, "well under a few MB");
    }

    #[test]
    fn a_bucket_counts_classes_errors_retries_and_latency_quantiles() {
        let start = Instant::now();
        let mut timeline = Timeline::new(start);
        for (n, latency) in (0..100).zip((1..=100).map(|ms| ms * 1000)) {
            timeline.record(&row(n, Some(200), None, latency), start);
        }
        let mut retried = row(100, Some(503), None, 5000);
        retried.attempts = 3;
        timeline.record(&retried, start);
        timeline.record(&row(101, None, Some(ErrorKind::Timeout), 0), start);
        let bucket = &timeline.to_json()["buckets"][0];
        assert_eq!(bucket["rows"], 102);
        assert_eq!(bucket["retries"], 2);
        assert_eq!(bucket["status"]["2xx"], 100);
        assert_eq!(bucket["status"]["5xx"], 1);
        assert_eq!(bucket["errors"]["timeout"], 1);
        assert_eq!(bucket["requests"], 104);
        // 1..=100 ms and a 5 ms answer: each quantile within 1% of the latency at its rank.
        for (q, want) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)] {
            let got = bucket["latency_ms"][q].as_f64().expect("quantile");
            assert!((got / want - 1.0).abs() <= 0.01, "{q} {got} ms, not {want}");
        }
    }

    #[test]
    fn bucket_quantiles_are_within_one_percent_over_the_whole_range() {
        for us in [
            1u64,
            7,
            99,
            1_000,
            10_107,
            101_070,
            2_500_000,
            u64::from(u32::MAX),
        ] {
            let mut h = LogHistogram::default();
            h.record(us);
            let got = h.quantile_ms(0.5).expect("one value") * 1000.0;
            assert!(
                (got / us as f64 - 1.0).abs() <= 0.01,
                "{us} µs read as {got}"
            );
        }
        // Merged buckets count every row once, bins kept in order.
        let (mut a, mut b) = (LogHistogram::default(), LogHistogram::default());
        (1..=50).for_each(|ms| a.record(ms * 1000));
        (51..=100).for_each(|ms| b.record(ms * 1000));
        a.merge(&b);
        assert!(a.bins.windows(2).all(|w| w[0].0 < w[1].0));
        let p90 = a.quantile_ms(0.9).expect("p90");
        assert!((p90 / 90.0 - 1.0).abs() <= 0.01, "{p90}");
    }

    #[test]
    fn only_whole_buckets_are_drawn() {
        let start = Instant::now();
        let mut timeline = Timeline::new(start);
        for ms in (0..2500).step_by(100) {
            let at = start + Duration::from_millis(ms);
            timeline.record(&row(ms, Some(200), None, 1000), at);
        }
        let drawn = timeline.whole_to_json(Duration::from_millis(2500));
        let buckets = drawn["buckets"].as_array().expect("buckets");
        assert_eq!(
            buckets.len(),
            2,
            "seconds 0 and 1; the half second 2 is not drawn"
        );
        assert_eq!(buckets[1]["rows"], 10);
        assert_eq!(
            timeline.to_json()["buckets"][2]["rows"],
            5,
            "the summary keeps it"
        );
        let none = timeline.whole_to_json(Duration::from_millis(900));
        assert_eq!(none["buckets"], json!([]));
    }

    #[test]
    fn the_map_counts_each_cell_and_the_rest_is_pending() {
        let mut map = IdMap::new(IdRange::new(100, 10_100));
        assert_eq!(map.per_cell, 3);
        assert_eq!(map.ok.len(), 3334, "the last cell holds one item");
        map.record(&row(100, Some(200), None, 1));
        map.record(&row(101, Some(500), None, 1));
        map.record(&row(10_099, None, Some(ErrorKind::Reset), 1));
        let mut page = row(102, Some(200), None, 1);
        page.more = true;
        map.record(&page);
        let json = map.to_json();
        assert_eq!(json["cells"][0], json!([1, 1, 1]));
        assert_eq!(json["cells"][3333], json!([0, 1, 0]));
        assert_eq!(map.totals(), (1, 2));
        let mut small = IdMap::new(IdRange::new(0, 2));
        small.record(&row(1, Some(200), None, 1));
        assert_eq!(
            small.to_json().to_string(),
            r#"{"start":0,"end":2,"per_cell":1,"cells":[[0,0,1],[1,0,0]],"legend":["ok","failed","pending"]}"#,
            "the keys in this order, as the summary has always had them"
        );
    }
}
