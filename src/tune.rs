//! `ringscrape tune`: finds the per-worker concurrency to use against a target. For each
//! concurrency asked for, a bounded `ringscrape run` (this same binary, rows thrown away, the
//! closing summary read back as JSON) scrapes its own stripe of fresh ids for a fixed time; the
//! table shows throughput and latency per step, marks the knee — the smallest concurrency within
//! 5% of the best throughput whose p99 fits the budget — and prints the `run` command to use.
//! A step may be `auto` (the run finds its own limit); it is advised when it beats the knee.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ids::{IdRange, IdRangeError};
use crate::report::SummaryDocument;
use crate::view::StateDocument;
use crate::view::state::{STATE_VERSION, TuneState, TuneStep};

mod plot;
mod step;

pub use plot::{PlotError, draw as plot};
pub use step::{Measured, Step};

/// Steps within this share of the best throughput count as reaching it.
const NEAR_BEST: f64 = 0.95;

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(
        "--concurrency {0:?}: expected a comma-separated list of whole numbers (or auto), e.g. 16,64,256,1024"
    )]
    Steps(String),
    #[error(transparent)]
    Ids(#[from] IdRangeError),
    #[error("--ids {0}: {1} ids cannot give each of the {2} steps a stripe of its own")]
    TooFewIds(IdRange, u64, usize),
    #[error("step --concurrency {0}: {1}")]
    Run(String, String),
    #[error(
        "{0} after --: tune sets it for every step, and the table would name what did not run; leave it out (tune's own --url, --ids, --shards and --concurrency come before --)"
    )]
    SetByTune(String),
    /// A step's run refused its flags (exit 2): its own one line.
    #[error("{0}")]
    RunUsage(String),
    #[error("tune: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("--report {0}: {1}")]
    Report(std::path::PathBuf, io::Error),
}

impl TuneError {
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            TuneError::Steps(_)
                | TuneError::Ids(_)
                | TuneError::TooFewIds(..)
                | TuneError::SetByTune(..)
                | TuneError::RunUsage(_)
        )
    }
}

/// The run flags each step is given by tune itself: one given again after `--` would win (the
/// last of a flag counts) and the table would be labelled with what did not run.
const SET_BY_TUNE: [(&str, Option<char>); 7] = [
    ("--concurrency", Some('c')),
    ("--shards", Some('s')),
    ("--ids", Some('i')),
    ("--url", Some('u')),
    ("--output", Some('o')),
    ("--summary-json", None),
    ("--grace", None),
];

/// Refuses a run flag after `--` that tune sets for every step.
pub fn check_run_flags(run_flags: &[String]) -> Result<(), TuneError> {
    for flag in run_flags {
        let name = flag.split('=').next().unwrap_or(flag);
        // `-c64` is `-c 64`: a short flag is its first letter after the dash.
        let short = name
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .and_then(|rest| rest.chars().next());
        if let Some((long, _)) = SET_BY_TUNE
            .iter()
            .find(|(long, letter)| name == *long || (short.is_some() && short == *letter))
        {
            return Err(TuneError::SetByTune((*long).to_string()));
        }
    }
    Ok(())
}

/// Parses `16,64,256,auto`.
pub fn parse_steps(text: &str) -> Result<Vec<Step>, TuneError> {
    let bad = || TuneError::Steps(text.to_string());
    let steps = text
        .split(',')
        .map(str::trim)
        .map(|item| match item {
            "auto" => Ok(Step::Auto),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Step::Fixed(n)),
                _ => Err(bad()),
            },
        })
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        return Err(bad());
    }
    Ok(steps)
}

/// A tuning session, checked.
pub struct Tune {
    pub url: String,
    pub ids: IdRange,
    pub shards: Option<usize>,
    pub steps: Vec<Step>,
    pub per_step: Duration,
    /// More `run` flags for every step (headers, TLS, …).
    pub run_flags: Vec<String>,
}

impl Tune {
    /// Runs every step in order, calling `done` after each.
    pub fn measure(&self, mut done: impl FnMut(&Measured)) -> Result<Vec<Measured>, TuneError> {
        let stripes = self.ids.split(self.steps.len());
        if stripes.iter().any(IdRange::is_empty) {
            return Err(TuneError::TooFewIds(
                self.ids,
                self.ids.len(),
                self.steps.len(),
            ));
        }
        let dir = tempfile::tempdir()?;
        let mut measured = Vec::with_capacity(self.steps.len());
        for (step, stripe) in self.steps.iter().zip(stripes) {
            let result = self.run_step(*step, stripe, dir.path())?;
            done(&result);
            measured.push(result);
        }
        Ok(measured)
    }

    /// One bounded run: stopped with SIGINT after `per_step` if its stripe is not done by then.
    fn run_step(&self, step: Step, stripe: IdRange, dir: &Path) -> Result<Measured, TuneError> {
        let summary = dir.join(format!("step-{step}.json"));
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command
            .args(["run", "--url", &self.url, "--ids", &stripe.to_string()])
            .args(["--concurrency", &step.to_string(), "--output", "-", "-q"])
            .args(["--grace", "0.2", "--summary-json"])
            .arg(&summary)
            .args(&self.run_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(shards) = self.shards {
            command.args(["--shards", &shards.to_string()]);
        }
        let mut child = command.spawn()?;
        let finished = wait_up_to(&mut child, self.per_step)?;
        if !finished {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        }
        let output = child.wait_with_output()?;
        let failed = |why: String| TuneError::Run(step.to_string(), why);
        let text = std::fs::read_to_string(&summary).map_err(|_| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let line = stderr.lines().next().unwrap_or("no summary");
            // The run's own `error:` line, not nested in a second one.
            let why = line.strip_prefix("error: ").unwrap_or(line).to_string();
            if output.status.code() == Some(2) {
                TuneError::RunUsage(format!("the run flags after --: {why}"))
            } else {
                failed(why)
            }
        })?;
        parse_summary(step, &text).ok_or_else(|| failed(format!("unreadable summary {text:?}")))
    }
}

/// Waits for `child` to exit, at most `limit`; true when it did.
fn wait_up_to(child: &mut std::process::Child, limit: Duration) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(false)
}

/// The figures of a `--summary-json` file (a [`SummaryDocument`], read typed).
fn parse_summary(step: Step, text: &str) -> Option<Measured> {
    let summary: SummaryDocument = serde_json::from_str(text).ok()?;
    let latency = summary.latency_ms;
    Some(Measured {
        step,
        req_per_s: summary.req_per_s,
        p50_ms: latency.map_or(f64::NAN, |l| l.p50),
        p99_ms: latency.map_or(f64::NAN, |l| l.p99),
        errors: summary.error_rows(),
        settled: summary.concurrency_auto,
    })
}

/// The advice: the knee among fixed steps (the smallest concurrency within 5% of the best
/// throughput whose p99 fits the budget), or `auto` when it does better than the knee.
pub fn advice(measured: &[Measured], p99_budget_ms: f64) -> Option<Step> {
    let fits = |m: &&Measured| m.p99_ms <= p99_budget_ms && m.errors == 0;
    let best = measured
        .iter()
        .filter(|m| m.step != Step::Auto)
        .map(|m| m.req_per_s)
        .fold(0.0, f64::max);
    let knee = measured
        .iter()
        .filter(|m| matches!(m.step, Step::Fixed(_)))
        .filter(fits)
        .filter(|m| m.req_per_s >= NEAR_BEST * best)
        .min_by_key(|m| match m.step {
            Step::Fixed(n) => n,
            Step::Auto => usize::MAX,
        });
    let auto = measured.iter().filter(|m| m.step == Step::Auto).find(fits);
    match (knee, auto) {
        (Some(knee), Some(auto)) if auto.req_per_s > knee.req_per_s / NEAR_BEST => Some(Step::Auto),
        (Some(knee), _) => Some(knee.step),
        (None, Some(_)) => Some(Step::Auto),
        (None, None) => None,
    }
}

/// The lowest fixed step's own p99 above the budget is the target's latency, not queueing: the
/// knee is then judged against it plus this share.
const OWN_LATENCY_SLACK: f64 = 1.2;
/// Throughput that grew by more than this share from the step before the highest one still
/// grows: larger steps may do better.
const STILL_GROWING: f64 = 1.2;

/// The p99 budget the knee is judged against, and why it is not the one given: when the
/// target's own latency (the p99 at the lowest fixed step) is already above the budget, no
/// concurrency can meet it, so the knee is judged against that latency plus a fifth.
pub fn judged_budget(measured: &[Measured], p99_budget_ms: f64) -> (f64, Option<String>) {
    let lowest = measured
        .iter()
        .filter_map(|m| match m.step {
            Step::Fixed(n) => Some((n, m.p99_ms)),
            Step::Auto => None,
        })
        .min_by_key(|(n, _)| *n);
    match lowest {
        Some((n, own)) if own.is_finite() && own > p99_budget_ms => {
            let budget = own * OWN_LATENCY_SLACK;
            let why = format!(
                "the target's own p99 at concurrency {n} is {own:.0} ms, above the {p99_budget_ms:.0} ms budget: \
                 judging the knee against {budget:.0} ms (its latency plus a fifth) instead"
            );
            (budget, Some(why))
        }
        _ => (p99_budget_ms, None),
    }
}

/// When throughput still grew at the highest fixed step: what to try next.
pub fn still_growing(measured: &[Measured]) -> Option<String> {
    let mut fixed: Vec<(usize, f64)> = measured
        .iter()
        .filter_map(|m| match m.step {
            Step::Fixed(n) => Some((n, m.req_per_s)),
            Step::Auto => None,
        })
        .collect();
    fixed.sort_by_key(|(n, _)| *n);
    let [.., (before, slower), (top, faster)] = fixed[..] else {
        return None;
    };
    (faster > slower * STILL_GROWING).then(|| {
        format!(
            "throughput still grows at the highest step ({before} -> {top}: {slower:.0} -> {faster:.0} req/s); \
             try larger steps: --concurrency {},{},{}",
            top,
            top * 2,
            top * 4
        )
    })
}

/// The table printed after the steps.
/// The sweep as a report's state document (`tune --report`): each step, the knee, the budget.
pub fn report_state(
    measured: &[Measured],
    knee: Option<Step>,
    p99_budget_ms: f64,
) -> StateDocument {
    let measured_ms = |ms: f64| (!ms.is_nan()).then_some(ms);
    StateDocument::Tune(TuneState {
        version: STATE_VERSION,
        steps: measured
            .iter()
            .map(|m| TuneStep {
                concurrency: m.step.to_string(),
                req_per_s: m.req_per_s,
                p50_ms: measured_ms(m.p50_ms),
                p99_ms: measured_ms(m.p99_ms),
                errors: m.errors,
            })
            .collect(),
        knee: knee.map(|k| k.to_string()),
        p99_budget_ms,
    })
}

pub fn table(measured: &[Measured], advice: Option<Step>) -> String {
    let mut out = format!(
        "{:>12} {:>10} {:>10} {:>10} {:>8}\n",
        "concurrency", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for m in measured {
        let mark = if Some(m.step) == advice {
            "  <- knee"
        } else {
            ""
        };
        let settled = if m.settled.is_empty() {
            String::new()
        } else {
            let limits: Vec<String> = m.settled.iter().map(u64::to_string).collect();
            format!("  (settled at {})", limits.join(", "))
        };
        out += &format!(
            "{:>12} {:>10.0} {:>10.1} {:>10.1} {:>8}{mark}{settled}\n",
            m.step.to_string(),
            m.req_per_s,
            m.p50_ms,
            m.p99_ms,
            m.errors
        );
    }
    out
}

#[cfg(test)]
pub(in crate::tune) mod tests {
    use super::*;

    #[test]
    fn a_run_flag_tune_sets_itself_is_refused_after_the_double_dash() {
        let flags = |list: &[&str]| list.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        for given in [
            &["--concurrency", "64"][..],
            &["-c64"],
            &["--concurrency=64"],
            &["-s", "2"],
            &["--output", "x.csv"],
        ] {
            let err = check_run_flags(&flags(given)).expect_err("set by tune");
            assert!(
                err.is_usage() && err.to_string().contains("tune sets it"),
                "{err}"
            );
        }
        check_run_flags(&flags(&["-H", "X-A: 1", "--timeout", "5", "-k", "--http2"]))
            .expect("flags tune leaves to the user");
    }

    /// A measured step; `n` 0 is `auto`.
    pub(in crate::tune) fn step(n: usize, req_per_s: f64, p99_ms: f64) -> Measured {
        Measured {
            step: if n == 0 { Step::Auto } else { Step::Fixed(n) },
            req_per_s,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            errors: 0,
            settled: Vec::new(),
        }
    }

    #[test]
    fn a_slow_target_is_judged_against_its_own_latency_and_growth_is_told() {
        let slow = [
            step(16, 35.0, 900.0),
            step(64, 140.0, 905.0),
            step(256, 560.0, 910.0),
            step(1024, 2170.0, 930.0),
        ];
        assert_eq!(advice(&slow, 200.0), None, "nothing fits 200 ms");
        let (budget, why) = judged_budget(&slow, 200.0);
        assert!((budget - 1080.0).abs() < 1e-9, "{budget}");
        assert!(
            why.expect("said")
                .contains("own p99 at concurrency 16 is 900 ms")
        );
        assert_eq!(advice(&slow, budget), Some(Step::Fixed(1024)));
        let grows = still_growing(&slow).expect("still growing");
        assert!(grows.ends_with("--concurrency 1024,2048,4096"), "{grows}");
        let flat = [step(16, 100.0, 5.0), step(64, 110.0, 6.0)];
        assert_eq!(judged_budget(&flat, 200.0), (200.0, None));
        assert_eq!(still_growing(&flat), None);
    }

    #[test]
    fn parses_steps_and_refuses_nonsense() {
        assert_eq!(
            parse_steps("16, 64,auto").expect("valid"),
            [Step::Fixed(16), Step::Fixed(64), Step::Auto]
        );
        for bad in ["", "0", "16,,64", "many"] {
            assert!(parse_steps(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_knee_is_the_smallest_step_near_the_best_within_budget() {
        let steps = [
            step(16, 600.0, 52.0),
            step(64, 1240.0, 60.0),
            step(256, 1270.0, 410.0),
            step(1024, 1265.0, 1600.0),
        ];
        // 256 is the best but misses the budget; 64 is within 5% of it and fits.
        assert_eq!(advice(&steps, 200.0), Some(Step::Fixed(64)));
        // Nothing fits a budget of 10 ms.
        assert_eq!(advice(&steps, 10.0), None);
        let mut with_auto = steps.to_vec();
        with_auto.push(step(0, 1275.0, 120.0));
        assert_eq!(
            advice(&with_auto, 200.0),
            Some(Step::Fixed(64)),
            "auto not 5% better"
        );
        with_auto[1].req_per_s = 1000.0;
        with_auto[2].p99_ms = 100.0;
        with_auto[2].req_per_s = 1100.0;
        assert_eq!(advice(&with_auto, 200.0), Some(Step::Auto));
    }
}
