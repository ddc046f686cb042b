//! The state document the page renders (live from `/state`, or inside a report): typed and
//! versioned, one kind per page — a run's progress, totals, timeline, id map, workers, proxies
//! and hosts, or `tune`'s sweep. It holds no request header, no body and no URL (of a host, its
//! name and port only).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::hosts::HostsView;
use crate::runtime::Driver;
use crate::stats::ProxyTally;

/// The state document's version: raised when a field changes meaning or goes away.
pub const STATE_VERSION: u32 = 1;

/// What the page shows, by kind (`"kind": "run"` or `"tune"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StateDocument {
    Run(Box<RunState>),
    Tune(TuneState),
}

impl StateDocument {
    /// The document as the page reads it.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a state document serialises")
    }
}

/// A run at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// [`STATE_VERSION`].
    pub version: u32,
    pub running: bool,
    /// Since the run (and its timeline) started.
    pub elapsed_s: f64,
    pub progress: ItemsDone,
    pub totals: Totals,
    /// Whole buckets only (see `crate::timeline`).
    pub timeline: serde_json::Value,
    pub id_map: serde_json::Value,
    pub workers: Vec<WorkerState>,
    pub proxies: BTreeMap<String, ProxyTally>,
    /// With more than one host: how many were touched, and the slowest, most throttled and most
    /// failing (host names and figures only).
    #[serde(default)]
    pub hosts: Option<HostsView>,
}

/// Items of the run, and those with all their rows (an earlier run's included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemsDone {
    pub items: u64,
    pub done: u64,
}

/// The rows written by this run, in the summary's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub rows: u64,
    pub requests: u64,
    pub retries: u64,
    /// Answered rows by status class (`2xx`…).
    pub status: BTreeMap<String, u64>,
    /// Error rows by kind.
    pub errors: BTreeMap<String, u64>,
    pub bytes: u64,
    pub bytes_wire: u64,
    pub throttled_s: f64,
    /// Time requests waited because of the servers' rate-limit headers, as the summary's
    /// `paced by RateLimit`.
    #[serde(default)]
    pub paced_by_ratelimit_s: f64,
}

/// One worker's latest figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerState {
    pub shard: usize,
    pub rows: u64,
    pub in_flight: u64,
    /// Its event loop, once it has said (a container that refuses io_uring gets epoll).
    #[serde(default)]
    pub driver: Option<Driver>,
}

/// `tune`'s sweep: each step, the knee, the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneState {
    /// [`STATE_VERSION`].
    pub version: u32,
    pub steps: Vec<TuneStep>,
    pub knee: Option<String>,
    pub p99_budget_ms: f64,
}

/// What one step of the sweep measured (`None`: no answer to measure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneStep {
    pub concurrency: String,
    pub req_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: u64,
}
