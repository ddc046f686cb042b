//! What `tune` steps through and what each step measured: shared by the sweep (`tune.rs`) and
//! its plot (`plot.rs`).

/// One step's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Fixed(usize),
    Auto,
}

/// What one step measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub step: Step,
    pub req_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// With `auto`: the limits the workers settled on.
    pub settled: Vec<u64>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Fixed(n) => write!(f, "{n}"),
            Step::Auto => write!(f, "auto"),
        }
    }
}
