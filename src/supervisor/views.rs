//! What the supervisor shows of a run besides the closing summary: the timeline and the id map
//! of the rows written (a row observer of the writer: the live page draws them, so they live
//! together), the live page's state made every second from them and the workers' figures
//! (`--dashboard`), and the report written when the run ends however it ends (`--report`). Both
//! come from one [`crate::view::State`].

use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::pipes::StatsBoard;
use crate::metrics::Metrics;
use crate::model::Record;
use crate::output::writer::{RowObserver, WriterReport};
use crate::stats::WorkerStats;
use crate::timeline::{IdMap, Timeline, Views};
use crate::view::server::{self, Live};
use crate::view::{self, State, StateDocument};

/// The run's figures as the views need them, and where they go.
pub struct Showing {
    live: Option<Arc<Live>>,
    report: Option<PathBuf>,
    board: StatsBoard,
    started: Instant,
    /// Items of the run, and those an earlier run already finished.
    items: u64,
    kept: u64,
    /// The rows over time and over the id space.
    views: Views,
}

impl Showing {
    /// Starts serving the live page on `listener` (if `--dashboard`); `metrics` is served
    /// beside it. `map` holds an earlier run's rows when resuming.
    pub fn start(
        listener: Option<TcpListener>,
        metrics: Option<Arc<Metrics>>,
        report: Option<PathBuf>,
        board: &StatsBoard,
        (started, map): (Instant, IdMap),
        (items, kept): (u64, u64),
    ) -> io::Result<Showing> {
        let live = match (listener, metrics) {
            (Some(listener), Some(metrics)) => {
                let live = Live::new(metrics);
                let bound = server::serve(listener, live.clone(), refresh_metrics(board))?;
                crate::note!("ringscrape: dashboard on http://{bound}/");
                if !bound.ip().is_loopback() {
                    crate::say!(
                        "ringscrape: warning: --dashboard {bound} is not a loopback address: anyone who can reach it sees the run's progress and figures"
                    );
                }
                Some(live)
            }
            _ => None,
        };
        Ok(Showing {
            live,
            report,
            board: board.clone(),
            started,
            items,
            kept,
            views: Views {
                timeline: Timeline::new(started),
                map,
            },
        })
    }

    /// Every second, from the writer: the time throttled goes into the timeline, and the live
    /// page gets a new state.
    fn tick(&mut self, report: &WriterReport) {
        // Summed under the lock: the workers' figures are copied (a latency histogram of
        // ~190 KB each) only for a page that shows them.
        let throttled = self
            .board
            .lock()
            .map(|board| board.iter().map(|w| w.throttled_us).sum())
            .unwrap_or_default();
        self.views
            .timeline
            .note_throttled(throttled, Instant::now());
        if let Some(live) = &self.live {
            live.set(&self.state(report, &self.workers(), true));
        }
    }

    /// The run has ended: the last state for the page, and the report; the views, for the
    /// summary.
    pub fn finish(self, report: &WriterReport) -> Views {
        if self.report.is_none() && self.live.is_none() {
            // Nothing shows the last state: not made (its id map alone is 4,096 cells).
            return self.views;
        }
        let workers = self.workers();
        let state = self.state(report, &workers, false);
        if let Some(path) = &self.report {
            match view::write_report(path, &state) {
                Ok(()) => crate::note!("ringscrape: report in {}", path.display()),
                Err(e) => crate::say!("ringscrape: --report {}: {e}", path.display()),
            }
        }
        if let Some(live) = &self.live {
            live.set(&state);
        }
        self.views
    }

    fn workers(&self) -> Vec<WorkerStats> {
        self.board.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn state(
        &self,
        report: &WriterReport,
        workers: &[WorkerStats],
        running: bool,
    ) -> StateDocument {
        let views = &self.views;
        State {
            running,
            elapsed: self.started.elapsed(),
            items: self.items,
            done: self.kept + report.ended,
            tally: &report.tally,
            rows: report.rows,
            timeline: &views.timeline,
            map: &views.map,
            workers,
        }
        .document()
    }
}

/// Every batch goes into the timeline and the map; every second, the live page gets a new state.
impl RowObserver for Showing {
    fn rows(&mut self, _shard: usize, records: &[Record], _written: &WriterReport) {
        self.views.record(records, Instant::now());
    }

    fn each_second(&mut self, written: &WriterReport) {
        self.tick(written);
    }
}

/// Before each scrape of `/metrics`: the workers' in-flight requests, time throttled, event
/// loops and proxies, from their latest figures.
pub fn refresh_metrics(board: &StatsBoard) -> impl Fn(&Metrics) + Send + Sync + 'static {
    let board = board.clone();
    move |m| {
        if let Ok(board) = board.lock() {
            let inflight = board.iter().map(|s| s.in_flight).sum();
            let throttled = board.iter().map(|s| s.throttled_us).sum();
            m.set_workers(inflight, throttled);
            m.set_drivers(board.iter().map(|s| s.driver.as_ref().map(|d| d.driver())));
            let mut proxies = crate::stats::AnswerCounts::default();
            for stats in board.iter() {
                proxies.merge(&stats.answers);
            }
            m.set_proxies(&proxies.proxies);
        }
    }
}
