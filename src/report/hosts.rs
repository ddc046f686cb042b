//! The per-host views of a run of many hosts: how many hosts it touched, and the top of three
//! rankings — slowest (mean latency), most throttled (429/503 answers), most failing (error
//! rows) — ranked from the workers' merged [`HostBoard`]. One [`HostsView`] is shown by the
//! stderr summary (as text, here), `--summary-json` and the live page (as JSON).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::stats::{HostBoard, HostFigures};

/// Hosts shown in each ranking at most.
pub const TOP_HOSTS: usize = 10;

/// The hosts a run touched, and the top of each ranking (a ranking no host belongs in is
/// empty: no host answered, none was throttled, none failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostsView {
    /// Distinct hosts requests were sent to.
    pub touched: u64,
    /// Highest mean latency of the answered requests first.
    pub slowest: Vec<HostLine>,
    /// Most 429 and 503 answers first.
    pub throttled: Vec<HostLine>,
    /// Most error rows first.
    pub failing: Vec<HostLine>,
}

/// One host's figures, as each ranking shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLine {
    /// The host (and `:port` when not the scheme's default).
    pub host: String,
    /// Requests sent to it (every attempt).
    pub requests: u64,
    /// Requests it answered, and their mean latency (`None`: none answered).
    pub answered: u64,
    pub mean_ms: Option<f64>,
    /// Answers 429 or 503.
    pub throttled: u64,
    /// Rows of it that ended in an error.
    pub errors: u64,
    /// Time its requests waited for its own limits and pacing.
    pub paced_s: f64,
}

impl HostsView {
    /// The view of `board`; `None` when the run touched one host or none (the summary's own
    /// figures say it all then).
    pub fn of(board: &HostBoard) -> Option<HostsView> {
        if board.touched <= 1 {
            return None;
        }
        let ranked = |key: fn(&HostFigures) -> Option<f64>| -> Vec<HostLine> {
            let mut hosts: Vec<(f64, &HostFigures)> = board
                .top
                .iter()
                .filter_map(|h| key(h).filter(|k| *k > 0.0).map(|k| (k, h)))
                .collect();
            // Highest first; ties by name, so the lists do not shuffle between refreshes.
            hosts.sort_by(|(ka, a), (kb, b)| kb.total_cmp(ka).then_with(|| a.host.cmp(&b.host)));
            hosts.truncate(TOP_HOSTS);
            hosts.into_iter().map(|(_, h)| HostLine::of(h)).collect()
        };
        Some(HostsView {
            touched: board.touched,
            slowest: ranked(mean_latency_us),
            throttled: ranked(|h| Some(h.throttled as f64)),
            failing: ranked(|h| Some(h.errors as f64)),
        })
    }

    /// The summary's lines for the view, each ending a line: the count, then each non-empty
    /// ranking, hosts and figures in columns.
    pub fn write_text(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  hosts      {} touched", self.touched)?;
        let lists: [(&str, &[HostLine], Figures); 3] = [
            ("slowest", &self.slowest, |h| {
                let mean = h.mean_ms.unwrap_or_default();
                format!("{mean:.2} ms mean of {} answered", h.answered)
            }),
            ("throttled", &self.throttled, |h| {
                format!("{} answers 429/503 of {} requests", h.throttled, h.requests)
            }),
            ("failing", &self.failing, |h| {
                format!("{} error rows, {} requests", h.errors, h.requests)
            }),
        ];
        let width = lists
            .iter()
            .flat_map(|(_, hosts, _)| hosts.iter().map(|h| h.host.chars().count()))
            .max()
            .unwrap_or(0);
        for (label, hosts, figures) in lists {
            let texts: Vec<String> = hosts.iter().map(figures).collect();
            // Right-align the first number of each line, so the figures line up.
            let lead = |t: &String| t.find(' ').unwrap_or(t.len());
            let lead_width = texts.iter().map(lead).max().unwrap_or(0);
            for (i, (host, text)) in hosts.iter().zip(&texts).enumerate() {
                let label = if i == 0 { label } else { "" };
                let pad = " ".repeat(lead_width - lead(text));
                writeln!(f, "    {label:<10} {:<width$}  {pad}{text}", host.host)?;
            }
        }
        Ok(())
    }
}

/// How one ranking words a host's figures.
type Figures = fn(&HostLine) -> String;

impl HostLine {
    fn of(h: &HostFigures) -> HostLine {
        HostLine {
            host: h.host.clone(),
            requests: h.requests,
            answered: h.answered,
            mean_ms: mean_latency_us(h).map(|us| us / 1000.0),
            throttled: h.throttled,
            errors: h.errors,
            paced_s: h.paced_us as f64 / 1e6,
        }
    }
}

/// The mean latency of a host's answered requests, in microseconds (`None`: none answered).
fn mean_latency_us(h: &HostFigures) -> Option<f64> {
    (h.answered > 0).then(|| h.latency_us_sum as f64 / h.answered as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that answered `answered` of `requests` at `mean_ms` each.
    fn host(name: &str, requests: u64, answered: u64, mean_ms: u64) -> HostFigures {
        HostFigures {
            host: name.to_string(),
            requests,
            answered,
            latency_us_sum: answered * mean_ms * 1000,
            ..HostFigures::default()
        }
    }

    fn board(touched: u64, top: Vec<HostFigures>) -> HostBoard {
        HostBoard { touched, top }
    }

    fn names(lines: &[HostLine]) -> Vec<&str> {
        lines.iter().map(|h| h.host.as_str()).collect()
    }

    #[test]
    fn one_host_or_none_shows_nothing() {
        assert_eq!(HostsView::of(&board(0, vec![])), None);
        assert_eq!(
            HostsView::of(&board(1, vec![host("a.test", 10, 10, 5)])),
            None
        );
    }

    #[test]
    fn each_ranking_puts_the_worst_first_and_leaves_out_hosts_with_nothing() {
        let mut throttled = host("t.test", 10, 10, 1);
        throttled.throttled = 4;
        let mut failing = host("f.test", 10, 2, 3);
        failing.errors = 8;
        let mut unanswered = host("x.test", 3, 0, 0);
        unanswered.errors = 3;
        let view = HostsView::of(&board(
            40,
            vec![
                host("fast.test", 10, 10, 2),
                throttled,
                failing,
                host("slow.test", 10, 10, 90),
                unanswered,
            ],
        ))
        .expect("40 hosts are shown");
        assert_eq!(view.touched, 40);
        // A host that answered nothing has no latency to rank.
        assert_eq!(
            names(&view.slowest),
            ["slow.test", "f.test", "fast.test", "t.test"]
        );
        assert_eq!(view.slowest[0].mean_ms, Some(90.0));
        assert_eq!(names(&view.throttled), ["t.test"]);
        assert_eq!(names(&view.failing), ["f.test", "x.test"]);
        assert_eq!(view.failing[1].mean_ms, None);
    }

    #[test]
    fn ties_are_ranked_by_name_and_only_ten_are_kept() {
        let hosts: Vec<HostFigures> = (0..15)
            .rev()
            .map(|i| host(&format!("h{i:02}.test"), 10, 10, 7))
            .collect();
        let view = HostsView::of(&board(15, hosts)).expect("15 hosts are shown");
        let expected: Vec<String> = (0..10).map(|i| format!("h{i:02}.test")).collect();
        assert_eq!(names(&view.slowest), expected);
        assert!(view.throttled.is_empty() && view.failing.is_empty());
    }

    #[test]
    fn fewer_than_ten_hosts_are_all_shown() {
        let view = HostsView::of(&board(
            3,
            vec![
                host("a.test", 1, 1, 1),
                host("b.test", 1, 1, 3),
                host("c.test", 1, 1, 2),
            ],
        ))
        .expect("3 hosts are shown");
        assert_eq!(names(&view.slowest), ["b.test", "c.test", "a.test"]);
    }
}
