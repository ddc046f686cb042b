//! The run over time and over its id space, as data every report is a view of (`--summary-json`
//! now; a live page and an HTML report next):
//!
//! - [`Timeline`]: what the rows said, second by second — rows, requests (so retries), status
//!   classes, error kinds, bytes, and latency quantiles from a small log-scale histogram per
//!   bucket. Memory is bounded: past [`MAX_BUCKETS`], neighbouring buckets are merged and the
//!   bucket width doubles, so a 10-hour run keeps ~1,100 buckets of 32 s.
//! - [`IdMap`]: the index space cut into at most [`MAX_CELLS`] cells, each counting its items
//!   that ended well, that failed, and (by difference) that are pending. A resumed run starts
//!   with the earlier run's rows.
//!
//! Filled by the writer, row by row, in the order rows reach the file.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::ids::IdRange;
use crate::model::{ErrorKind, Record};

/// Buckets kept at most before neighbours are merged.
pub const MAX_BUCKETS: usize = 2048;
/// Cells of the id-space map at most.
pub const MAX_CELLS: u64 = 4096;
/// Log-scale latency bins: 4 per power of two, from 1 µs to ~2^36 µs.
const BINS: usize = 4 * 36;

/// Latencies by log-scale bin: a quantile is known to within a quarter octave (±9%).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogHistogram {
    counts: Box<[u32; BINS]>,
}

impl Default for LogHistogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BINS]),
        }
    }
}

impl LogHistogram {
    fn bin(us: u64) -> usize {
        let us = us.max(1) as f64;
        ((us.log2() * 4.0) as usize).min(BINS - 1)
    }

    /// The bin's middle value, in microseconds.
    fn value(bin: usize) -> f64 {
        2f64.powf((bin as f64 + 0.5) / 4.0)
    }

    fn record(&mut self, us: u64) {
        let slot = &mut self.counts[Self::bin(us)];
        *slot = slot.saturating_add(1);
    }

    fn merge(&mut self, other: &LogHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// The value at quantile `q` (0..=1), in milliseconds; `None` when empty.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (bin, &count) in self.counts.iter().enumerate() {
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

    /// The buckets as `--summary-json` holds them: each with its start in seconds.
    pub fn to_json(&self) -> serde_json::Value {
        let width = self.width.as_secs_f64();
        json!({
            "bucket_s": width,
            "buckets": self
                .buckets
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

    /// The map as `--summary-json` holds it: per cell, its first index and counts.
    pub fn to_json(&self) -> serde_json::Value {
        let cells: Vec<serde_json::Value> = (0..self.ok.len())
            .map(|cell| {
                let pending =
                    self.size(cell) - (self.ok[cell] + self.failed[cell]).min(self.size(cell));
                json!([self.ok[cell], self.failed[cell], pending])
            })
            .collect();
        json!({
            "start": self.range.start,
            "end": self.range.end,
            "per_cell": self.per_cell,
            "cells": cells,
            "legend": ["ok", "failed", "pending"],
        })
    }

    /// Totals over every cell: (ok, failed).
    pub fn totals(&self) -> (u64, u64) {
        (self.ok.iter().sum(), self.failed.iter().sum())
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
        let p50 = bucket["latency_ms"]["p50"].as_f64().expect("p50");
        let p99 = bucket["latency_ms"]["p99"].as_f64().expect("p99");
        assert!((45.0..56.0).contains(&p50), "{p50}");
        assert!((90.0..110.0).contains(&p99), "{p99}");
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
    }
}
