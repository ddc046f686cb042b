//! Seeing a run: `--dashboard ADDR` (a live page while it works) and `--report FILE.html` (the
//! same page, self-contained, when it ends). Both are views of one state document
//! ([`StateDocument`], typed in `state.rs`, made from a [`State`]):
//! progress, the totals of the rows written, the timeline and the id-space map of
//! [`crate::timeline`], each worker's and proxy's figures, and the hosts that were slowest,
//! most throttled or failing most (of a run of many hosts). The page's code and its charting
//! library (uPlot, MIT, in `assets/uplot`) are inside the binary: no CDN, no network.
//!
//! The state holds no request header, no body and no URL: nothing a credential could be in.

pub mod server;
pub mod state;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::report::hosts::HostsView;
use crate::stats::WorkerStats;
use crate::timeline::{IdMap, Timeline};
pub use state::StateDocument;
use state::{ItemsDone, RunState, STATE_VERSION, Totals, WorkerState};

const PAGE_HTML: &str = include_str!("assets/page.html");
const PAGE_CSS: &str = include_str!("assets/page.css");
const PAGE_JS: &str = include_str!("assets/page.js");
const UPLOT_JS: &str = include_str!("assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uplot/uPlot.min.css");

/// What a view shows of a run at one moment.
pub struct State<'a> {
    pub running: bool,
    /// Since the run (and its timeline) started.
    pub elapsed: Duration,
    /// Items of the run (this node's), and those that have all their rows (an earlier run's
    /// included).
    pub items: u64,
    pub done: u64,
    /// The rows written by this run, tallied.
    pub tally: &'a WorkerStats,
    pub rows: u64,
    pub timeline: &'a Timeline,
    pub map: &'a IdMap,
    /// Each worker's latest figures, by shard.
    pub workers: &'a [WorkerStats],
}

impl State<'_> {
    /// The state document the page renders.
    pub fn document(&self) -> StateDocument {
        let t = self.tally;
        let mut classes = BTreeMap::new();
        for (code, n) in &t.statuses {
            *classes.entry(format!("{}xx", code / 100)).or_default() += n;
        }
        let mut answers = crate::stats::AnswerCounts::default();
        let mut throttled_us = 0;
        let mut paced_by_quota_us = 0;
        let mut hosts = crate::stats::HostBoard::default();
        for worker in self.workers {
            answers.merge(&worker.answers);
            throttled_us += worker.throttled_us;
            paced_by_quota_us += worker.paced_by_quota_us;
            hosts.merge(&worker.hosts);
        }
        StateDocument::Run(Box::new(RunState {
            version: STATE_VERSION,
            running: self.running,
            elapsed_s: self.elapsed.as_secs_f64(),
            progress: ItemsDone {
                items: self.items,
                done: self.done,
            },
            totals: Totals {
                rows: self.rows,
                requests: t.requests,
                retries: t.requests.saturating_sub(t.rows),
                status: classes,
                errors: t.errors_by_name(),
                bytes: t.bytes,
                bytes_wire: answers.wire_bytes,
                throttled_s: throttled_us as f64 / 1e6,
                paced_by_ratelimit_s: paced_by_quota_us as f64 / 1e6,
            },
            // Whole buckets only: `elapsed` and the timeline count from one start.
            timeline: self.timeline.whole_to_json(self.elapsed),
            id_map: self.map.to_json(),
            workers: self
                .workers
                .iter()
                .enumerate()
                .map(|(shard, w)| WorkerState {
                    shard,
                    rows: w.rows,
                    in_flight: w.in_flight,
                    driver: w.driver.as_ref().map(crate::runtime::DriverChoice::driver),
                })
                .collect(),
            proxies: answers.proxies,
            hosts: HostsView::of(&hosts),
        }))
    }
}

/// The page: live (it fetches `/state` every second) or a report (the state, JSON text, inside
/// it).
pub fn page(state: &str, live: bool) -> String {
    // `</` would end the script element the JSON sits in.
    let state = state.replace("</", "<\\/");
    PAGE_HTML
        .replace("{{TITLE}}", if live { "live" } else { "report" })
        .replace("{{MODE}}", if live { "running" } else { "report" })
        .replace("{{LIVE}}", if live { "true" } else { "false" })
        .replace("{{UPLOT_CSS}}", UPLOT_CSS)
        .replace("{{PAGE_CSS}}", PAGE_CSS)
        .replace("{{UPLOT_JS}}", UPLOT_JS)
        .replace("{{PAGE_JS}}", PAGE_JS)
        .replace("{{STATE}}", &state)
}

/// Writes the report: the page with `state` inside, at `path` (as [`crate::document::write`]
/// writes any document: a regular file whole or not at all, anything else through).
pub fn write_report(path: &std::path::Path, state: &StateDocument) -> std::io::Result<()> {
    crate::document::write(path, page(&state.to_text(), false).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::IdRange;
    use crate::model::Record;
    use serde_json::json;

    #[test]
    fn the_state_has_the_hosts_of_every_worker_when_more_than_one() {
        let started = std::time::Instant::now();
        let timeline = Timeline::new(started);
        let map = IdMap::new(IdRange::new(0, 10));
        let tally = WorkerStats::new();
        let worker = |host: &str, errors| {
            let mut stats = WorkerStats::new();
            stats.paced_by_quota_us = 500_000;
            stats.driver = Some(crate::runtime::DriverChoice::EpollForced);
            stats.hosts.touched = 1;
            stats.hosts.top.push(crate::stats::HostFigures {
                host: host.to_string(),
                requests: 4,
                errors,
                ..Default::default()
            });
            stats
        };
        let state = |workers: &[WorkerStats]| {
            let document = State {
                running: true,
                elapsed: Duration::from_secs(1),
                items: 10,
                done: 0,
                tally: &tally,
                rows: 0,
                timeline: &timeline,
                map: &map,
                workers,
            }
            .document();
            serde_json::to_value(&document).expect("serialises")
        };
        let two = state(&[worker("a.test", 1), worker("b.test", 3)]);
        assert_eq!(two["workers"][0]["driver"], "epoll");
        assert_eq!(two["hosts"]["touched"], 2);
        assert_eq!(two["hosts"]["failing"][0]["host"], "b.test");
        assert_eq!(two["hosts"]["failing"][1]["host"], "a.test");
        assert_eq!(two["totals"]["paced_by_ratelimit_s"], 1.0);
        // One host: the page's Hosts panel stays hidden.
        assert_eq!(state(&[worker("a.test", 1)])["hosts"], json!(null));
        let html = page(&two.to_string(), false);
        assert!(html.contains(r#"id="hosts-section""#) && html.contains("renderHosts"));
    }

    #[test]
    fn the_report_holds_its_state_and_asks_for_nothing_outside() {
        let started = std::time::Instant::now();
        let mut timeline = Timeline::new(started);
        let mut map = IdMap::new(IdRange::new(0, 10));
        let mut tally = WorkerStats::new();
        let record = Record {
            index: 3,
            status: Some(200),
            attempts: 1,
            latency_us: 1200,
            ..Record::default()
        };
        timeline.record(&record, started);
        timeline.record(&record, started + Duration::from_millis(1500));
        map.record(&record);
        tally.record(&record);
        let state = State {
            running: false,
            elapsed: Duration::from_millis(1800),
            items: 10,
            done: 1,
            tally: &tally,
            rows: 1,
            timeline: &timeline,
            map: &map,
            workers: &[WorkerStats::new()],
        }
        .document();
        let state = serde_json::to_value(&state).expect("serialises");
        assert_eq!(state["version"], STATE_VERSION);
        assert_eq!(state["totals"]["status"]["2xx"], 1);
        // A worker yet to say its event loop has none.
        assert_eq!(state["workers"][0]["driver"], json!(null));
        // 1.8 s in: the first second is drawn, the second (cut short by the end) is not.
        assert_eq!(
            state["timeline"]["buckets"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(state["id_map"]["cells"][3], json!([1, 0, 0]));
        let html = page(&state.to_string(), false);
        assert!(html.contains(r#""kind":"run""#));
        assert!(!html.contains("{{"), "every placeholder filled");
        // A count of the page's own refreshes says nothing about the run.
        assert!(!html.contains("updates"), "no updates counter");
        // No asset is fetched from anywhere: no src= or href= to a URL.
        for attribute in ["src=\"http", "href=\"http", "src='http", "@import"] {
            assert!(!html.contains(attribute), "{attribute}");
        }
        let script = page(&json!({"x": "</script><b>"}).to_string(), false);
        assert!(
            !script.contains("</script><b>"),
            "state cannot end its script element"
        );
    }
}
