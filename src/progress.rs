//! The one-line progress display on stderr (indicatif), a row observer of the writer fed as rows
//! land. Drawn only
//! on a terminal and unless `--no-progress`; otherwise every call is a no-op.
//!
//! It speaks the summary's words (docs/guide.md, "Items, rows, requests, retries"): items done of
//! the run's, requests per second (every attempt, as the summary's `req/s`), error rows. Every
//! figure has thousands separators and a fixed width, so the line does not jump as it grows; the
//! ETA shows only once an item is done (before that there is no rate to go by).

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::model::Record;
use crate::output::writer::{RowObserver, WriterReport};

/// Widest request rate the line makes room for (`9,999,999 req/s`), so it keeps its width.
const RATE_WIDTH: usize = 9;

/// The line; a clone draws the same line (the writer observes with one, the lines printed
/// around it suspend it through another).
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    /// What the bar's position (items done) does not hold, read when the line is drawn.
    tally: Arc<Tally>,
}

/// Running totals the writer adds to and the drawing thread reads.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
}

impl Progress {
    pub fn new(total: u64, wanted: bool) -> Self {
        let tally = Arc::new(Tally::default());
        if !wanted || !std::io::stderr().is_terminal() {
            return Self { bar: None, tally };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
        let seen = tally.clone();
        let style = ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {figures}")
            .expect("static template is valid")
            .with_key(
                "figures",
                move |state: &ProgressState, w: &mut dyn fmt::Write| {
                    let _ = w.write_str(&figures(
                        state.pos(),
                        state.len().unwrap_or(0),
                        seen.requests.load(Ordering::Relaxed),
                        seen.errors.load(Ordering::Relaxed),
                        state.elapsed(),
                    ));
                },
            )
            .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Self {
            bar: Some(bar),
            tally,
        }
    }

    /// Runs `f` (which prints to stderr) with the progress line out of its way.
    pub fn suspend(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The line shows the run's running totals: items done, requests, error rows.
impl RowObserver for Progress {
    fn rows(&mut self, _shard: usize, _records: &[Record], written: &WriterReport) {
        if let Some(bar) = &self.bar {
            let tally = &self.tally;
            tally
                .requests
                .store(written.tally.requests, Ordering::Relaxed);
            tally.errors.store(written.errors, Ordering::Relaxed);
            bar.set_position(written.ended);
        }
    }
}

/// The line's figures after the bar: `  1,234/20,000 items    6,404 req/s  errors     12  ETA
/// 00:00:03`, as wide for 0 done as for all (until the rate passes [`RATE_WIDTH`]).
fn figures(done: u64, total: u64, requests: u64, errors: u64, elapsed: Duration) -> String {
    let width = HumanCount(total).to_string().len();
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        (requests as f64 / secs).round() as u64
    } else {
        0
    };
    let eta = match done {
        // Nothing done yet: no rate to tell the time left by.
        0 => "--:--:--".to_string(),
        _ => {
            let left = total.saturating_sub(done) as f64 * secs / done as f64;
            let left = left.round() as u64;
            format!("{:02}:{:02}:{:02}", left / 3600, left / 60 % 60, left % 60)
        }
    };
    format!(
        "{done:>width$}/{total} items  {rate:>RATE_WIDTH$} req/s  errors {errors:>width$}  ETA {eta}",
        done = HumanCount(done).to_string(),
        total = HumanCount(total),
        rate = HumanCount(rate).to_string(),
        errors = HumanCount(errors).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_eta_before_an_item_is_done_then_one_from_the_items_rate() {
        let start = figures(0, 3000, 0, 0, Duration::ZERO);
        assert!(start.ends_with("ETA --:--:--"), "{start}");
        let later = figures(0, 3000, 40, 0, Duration::from_millis(800));
        assert!(later.ends_with("ETA --:--:--"), "{later}");
        // 1,000 of 3,000 in 10 s: 20 s left.
        let going = figures(1000, 3000, 1000, 0, Duration::from_secs(10));
        assert!(going.ends_with("ETA 00:00:20"), "{going}");
    }

    #[test]
    fn every_figure_has_separators_and_the_line_keeps_its_width() {
        let line = figures(12_345, 20_000, 64_040, 1_234, Duration::from_secs(10));
        assert_eq!(
            line,
            "12,345/20,000 items      6,404 req/s  errors  1,234  ETA 00:00:06"
        );
        let widths: Vec<usize> = [
            figures(0, 20_000, 0, 0, Duration::ZERO),
            figures(7, 20_000, 9, 1, Duration::from_millis(300)),
            figures(999, 20_000, 99_999, 12, Duration::from_secs(1)),
            figures(20_000, 20_000, 9_999_999, 20_000, Duration::from_secs(1)),
        ]
        .iter()
        .map(|line| line.chars().count())
        .collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{widths:?}");
    }
}
