//! `--plot FILE.svg`: throughput over time (sent and received per second) above the latency
//! percentile distribution (x: 1/(1-p) on a log scale, as HdrHistogram plots do).
//!
//! Owns: the drawing only (SVG through plotters; no fonts or bitmaps needed).
//! Must never: be on the measuring path (it runs after the run, from the report).

use plotters::prelude::*;

use crate::report::Report;
use crate::stats::Hist;

/// Draws the report's timeline and the histogram's distribution into an SVG file.
pub fn draw(path: &std::path::Path, report: &Report, hist: &Hist) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(340);

    let t_max = report.timeline.last().map_or(1, |s| s.t.max(1));
    let y_max = report
        .timeline
        .iter()
        .map(|s| s.sent_per_s.max(s.received_per_s))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!(
                "{:?} qos{}: messages per second",
                report.scenario, report.qos
            ),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..t_max, 0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(|e| err(&e))?;
    let sent = report.timeline.iter().map(|s| (s.t, s.sent_per_s as f64));
    let recv = report
        .timeline
        .iter()
        .map(|s| (s.t, s.received_per_s as f64));
    chart
        .draw_series(LineSeries::new(sent, &BLUE))
        .map_err(|e| err(&e))?
        .label("sent")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(recv, &RED))
        .map_err(|e| err(&e))?
        .label("received")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    // Latency by percentile: x = log10(1/(1-p)), 0 = p0, 1 = p90, 2 = p99, ...
    let points: Vec<(f64, f64)> = if hist.is_empty() {
        Vec::new()
    } else {
        hist.iter_quantiles(5)
            .map(|v| v.quantile_iterated_to())
            .filter(|q| *q < 1.0)
            .map(|q| {
                let ms = hist.value_at_quantile(q) as f64 / 1e6;
                ((1.0 / (1.0 - q)).log10(), ms)
            })
            .collect()
    };
    let x_max = points.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let y_max = points.iter().map(|p| p.1).fold(0.001f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("latency by percentile (ms)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .x_label_formatter(&|x| format!("{}", 100.0 - 100.0 / 10f64.powf(*x)))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(points, &BLUE))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
