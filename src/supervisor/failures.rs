//! What a run's failures come to: the job and the workers' figures as the diagnosis sees them
//! (`crate::diagnosis` holds the words), and `--max-failed`'s verdict on the share that failed.

use crate::config::RunConfig;
use crate::diagnosis::Target;
use crate::net::Protocol;
use crate::stats::AnswerCounts;

use super::pipes::StatsBoard;

/// The share of failed rows that passed `--max-failed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TooManyFailed {
    /// Rows of this run that failed, as `--max-failed` counts them ([`crate::failed::MaxFailed`]).
    pub failed: u64,
    /// Rows of this run.
    pub rows: u64,
    /// `--max-failed`, as a ratio.
    pub limit: f64,
}

impl TooManyFailed {
    /// The exit code of a run that passed `--max-failed`.
    pub const EXIT_CODE: u8 = 4;

    /// `failed` of `rows` judged against `limit`: `Some` when the share is above it.
    pub fn judge(failed: u64, rows: u64, limit: Option<f64>) -> Option<TooManyFailed> {
        let limit = limit?;
        (rows > 0 && failed as f64 > limit * rows as f64).then_some(TooManyFailed {
            failed,
            rows,
            limit,
        })
    }
}

/// What the workers have seen of the answers so far, summed (for the diagnosis).
pub(super) fn answers_so_far(board: &StatsBoard) -> AnswerCounts {
    let mut sum = AnswerCounts::default();
    if let Ok(board) = board.lock() {
        for stats in board.iter() {
            sum.merge(&stats.answers);
        }
    }
    sum
}

/// What the diagnosis needs to know of the job.
pub(super) fn target_of(cfg: &RunConfig) -> Target {
    let template = crate::request::RequestTemplate::compile(&cfg.fetch.request).ok();
    let net = &cfg.fetch.net;
    Target {
        host_varies: template.as_ref().is_some_and(|t| t.host_varies()),
        origin: template.map(|t| t.origin),
        http2: cfg.fetch.protocol == Protocol::Http2,
        ca_cert: cfg.fetch.trust.ca_cert.is_some(),
        proxied: net.http_proxy.is_some()
            || net.https_proxy.is_some()
            || !net.proxy_pool.is_empty(),
        pinned: !net.resolve.is_empty() || !net.connect_to.is_empty(),
    }
}
