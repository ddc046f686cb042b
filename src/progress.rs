//! The one-line progress display on stderr (indicatif), fed by the writer as rows land. Drawn only
//! on a terminal and unless `--no-progress`; otherwise every call is a no-op.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(total: u64, wanted: bool) -> Self {
        if !wanted || !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {rate} ETA {eta} {msg}",
        )
        .expect("static template is valid")
        .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{:.0} req/s", state.per_sec());
        })
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message("errors 0");
        bar.enable_steady_tick(Duration::from_millis(250));
        Self { bar: Some(bar) }
    }

    /// `rows` more rows were written; `errors` is the running total of error rows.
    pub fn advance(&self, rows: u64, errors: u64, errors_changed: bool) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
            if errors_changed {
                bar.set_message(format!("errors {errors}"));
            }
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
