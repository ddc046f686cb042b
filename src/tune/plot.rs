//! `tune --plot`: throughput and p99 latency against concurrency, as an SVG file: the knee,
//! the latency budget, and an `auto` step (which has no single concurrency) as a level line.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::step::{Measured, Step};

const WIDTH: u32 = 800;
const HEIGHT: u32 = 640;

#[derive(Debug, thiserror::Error)]
#[error("--plot {path}: {detail}")]
pub struct PlotError {
    path: String,
    detail: String,
}

/// Draws `measured` to `path`.
pub fn draw(
    path: &Path,
    measured: &[Measured],
    knee: Option<Step>,
    p99_budget_ms: f64,
) -> Result<(), PlotError> {
    let failed = |detail: String| PlotError {
        path: path.display().to_string(),
        detail,
    };
    draw_on(path, measured, knee, p99_budget_ms).map_err(|e| failed(e.to_string()))
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<LogCoord<f64>, RangedCoordf64>>;

/// One panel: concurrency on a log axis, `y_desc` from 0 to `y_top`, its grid drawn.
fn chart<'a>(
    area: &DrawingArea<SVGBackend<'a>, Shift>,
    caption: &str,
    y_desc: &str,
    (low, high): (f64, f64),
    y_top: f64,
) -> Result<Chart<'a>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((low..high).log_scale(), 0.0..y_top)?;
    chart
        .configure_mesh()
        .x_desc("concurrency per worker")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// The steps as drawn: fixed ones at their concurrency, `auto` as a level line, and the
/// concurrency axis' span.
struct Steps<'m> {
    fixed: Vec<(f64, &'m Measured)>,
    auto: Option<&'m Measured>,
    span: (f64, f64),
}

impl<'m> Steps<'m> {
    fn of(measured: &'m [Measured]) -> Steps<'m> {
        let fixed: Vec<(f64, &Measured)> = measured
            .iter()
            .filter_map(|m| match m.step {
                Step::Fixed(n) => Some((n as f64, m)),
                Step::Auto => None,
            })
            .collect();
        let auto = measured.iter().find(|m| m.step == Step::Auto);
        let (low, high) = fixed.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (c, _)| {
            (lo.min(*c), hi.max(*c))
        });
        // A log axis needs a span; with one step (or only auto), make one around it.
        let span = if fixed.is_empty() {
            (1.0, 1024.0)
        } else {
            (low / 1.5, (high * 1.5).max(low * 2.0))
        };
        Steps { fixed, auto, span }
    }
}

fn draw_on(path: &Path, measured: &[Measured], knee: Option<Step>, budget: f64) -> Drawn {
    let steps = Steps::of(measured);
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2);
    let knee_at = match knee {
        Some(Step::Fixed(n)) => Some(n as f64),
        _ => None,
    };
    draw_throughput(&top, measured, &steps, knee_at)?;
    draw_latency(&bottom, measured, &steps, budget)?;
    root.present()?;
    Ok(())
}

/// Throughput per step, the knee circled.
fn draw_throughput(
    top: &DrawingArea<SVGBackend<'_>, Shift>,
    measured: &[Measured],
    steps: &Steps<'_>,
    knee_at: Option<f64>,
) -> Drawn {
    let Steps { fixed, auto, span } = steps;
    let (low, high) = *span;
    let best = measured.iter().map(|m| m.req_per_s).fold(0.0, f64::max);
    let mut rate = chart(top, "throughput", "req/s", *span, best * 1.15 + 1.0)?;
    rate.draw_series(LineSeries::new(
        fixed.iter().map(|(c, m)| (*c, m.req_per_s)),
        BLUE.stroke_width(2),
    ))?
    .label("fixed concurrency")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    rate.draw_series(
        fixed
            .iter()
            .map(|(c, m)| Circle::new((*c, m.req_per_s), 4, BLUE.filled())),
    )?;
    if let Some(auto) = auto {
        rate.draw_series(DashedLineSeries::new(
            [(low, auto.req_per_s), (high, auto.req_per_s)],
            6,
            4,
            GREEN.stroke_width(2),
        ))?
        .label("auto")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], GREEN.stroke_width(2)));
    }
    if let Some((c, m)) = fixed.iter().find(|(c, _)| Some(*c) == knee_at) {
        rate.draw_series([Circle::new((*c, m.req_per_s), 8, RED.stroke_width(2))])?
            .label("knee")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, RED.stroke_width(2)));
    }
    rate.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    Ok(())
}

/// p99 latency per step, with the budget.
fn draw_latency(
    bottom: &DrawingArea<SVGBackend<'_>, Shift>,
    measured: &[Measured],
    steps: &Steps<'_>,
    budget: f64,
) -> Drawn {
    let Steps { fixed, auto, span } = steps;
    let (low, high) = *span;
    let worst = measured.iter().map(|m| m.p99_ms).fold(budget, f64::max);
    let mut latency = chart(bottom, "p99 latency", "ms", *span, worst * 1.15)?;
    latency.draw_series(LineSeries::new(
        fixed.iter().map(|(c, m)| (*c, m.p99_ms)),
        MAGENTA.stroke_width(2),
    ))?;
    latency.draw_series(
        fixed
            .iter()
            .map(|(c, m)| Circle::new((*c, m.p99_ms), 4, MAGENTA.filled())),
    )?;
    latency
        .draw_series(DashedLineSeries::new(
            [(low, budget), (high, budget)],
            6,
            4,
            BLACK.stroke_width(1),
        ))?
        .label(format!("budget {budget} ms"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
    if let Some(auto) = auto {
        latency
            .draw_series(DashedLineSeries::new(
                [(low, auto.p99_ms), (high, auto.p99_ms)],
                6,
                4,
                GREEN.stroke_width(2),
            ))?
            .label("auto")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], GREEN.stroke_width(2)));
    }
    latency
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::tests::step;

    #[test]
    fn draws_every_step_the_knee_and_the_budget() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tune.svg");
        let measured = [
            step(16, 600.0, 52.0),
            step(64, 1240.0, 60.0),
            step(256, 1270.0, 410.0),
            step(0, 1200.0, 110.0),
        ];
        draw(&path, &measured, Some(Step::Fixed(64)), 200.0).expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in [
            "throughput",
            "p99 latency",
            "knee",
            "auto",
            "budget 200 ms",
            "req/s",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // The three fixed steps are points on each chart, plus the knee's ring.
        assert!(svg.matches("<circle").count() > 3 + 3);
    }

    #[test]
    fn an_unwritable_path_is_an_error_not_a_panic() {
        let err = draw(
            Path::new("/nonexistent-dir/tune.svg"),
            &[step(8, 1.0, 1.0)],
            None,
            200.0,
        )
        .expect_err("no such directory");
        assert!(
            err.to_string()
                .starts_with("--plot /nonexistent-dir/tune.svg: "),
            "{err}"
        );
    }
}
