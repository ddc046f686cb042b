//! What the supervisor shows of a run besides the closing summary: the live page's state,
//! made every second from the rows written and the workers' figures (`--dashboard`), and the
//! report written when the run ends however it ends (`--report`). Both come from one
//! [`crate::view::State`].

use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::pipes::StatsBoard;
use crate::metrics::Metrics;
use crate::output::writer::{Views, WriterReport};
use crate::stats::WorkerStats;
use crate::view::server::{self, Live};
use crate::view::{self, State};

/// The run's figures as the views need them, and where they go.
pub struct Showing {
    live: Option<Arc<Live>>,
    report: Option<PathBuf>,
    board: StatsBoard,
    started: Instant,
    /// Items of the run, and those an earlier run already finished.
    items: u64,
    kept: u64,
}

impl Showing {
    /// Starts serving the live page on `listener` (if `--dashboard`); `metrics` is served
    /// beside it.
    pub fn start(
        listener: Option<TcpListener>,
        metrics: Option<Arc<Metrics>>,
        report: Option<PathBuf>,
        board: &StatsBoard,
        started: Instant,
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
        })
    }

    /// Every second, from the writer: the time throttled goes into the timeline, and the live
    /// page gets a new state.
    pub fn tick(&self, report: &WriterReport, views: &mut Views) {
        let workers = self.workers();
        let throttled = workers.iter().map(|w| w.throttled_us).sum();
        views.timeline.note_throttled(throttled, Instant::now());
        if let Some(live) = &self.live {
            live.set(&self.state(report, views, &workers, true));
        }
    }

    /// The run has ended: the last state for the page, and the report.
    pub fn finish(&self, report: &WriterReport) {
        let Some(views) = &report.views else {
            return;
        };
        let workers = self.workers();
        let state = self.state(report, views, &workers, false);
        if let Some(path) = &self.report {
            match view::write_report(path, &state) {
                Ok(()) => crate::note!("ringscrape: report in {}", path.display()),
                Err(e) => crate::say!("ringscrape: --report {}: {e}", path.display()),
            }
        }
        if let Some(live) = &self.live {
            live.set(&state);
        }
    }

    fn workers(&self) -> Vec<WorkerStats> {
        self.board.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn state(
        &self,
        report: &WriterReport,
        views: &Views,
        workers: &[WorkerStats],
        running: bool,
    ) -> serde_json::Value {
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
        .to_json()
    }
}

/// Before each scrape of `/metrics`: the workers' in-flight requests, time throttled and
/// proxies, from their latest figures.
pub fn refresh_metrics(board: &StatsBoard) -> impl Fn(&Metrics) + Send + Sync + 'static {
    let board = board.clone();
    move |m| {
        if let Ok(board) = board.lock() {
            let inflight = board.iter().map(|s| s.in_flight).sum();
            let throttled = board.iter().map(|s| s.throttled_us).sum();
            m.set_workers(inflight, throttled);
            let mut proxies = crate::stats::AnswerCounts::default();
            for stats in board.iter() {
                proxies.merge(&stats.answers);
            }
            m.set_proxies(&proxies.proxies);
        }
    }
}
