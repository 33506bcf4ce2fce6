//! The RTO and RPO charts of the HTML report, drawn by plotters as inline SVG.

use chrono::{DateTime, TimeZone, Utc};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::html::esc;
use crate::progress::human_duration;

pub(super) struct Point {
    pub(super) t: DateTime<Utc>,
    pub(super) v: Option<f64>,
    pub(super) passed: bool,
}

/// Seconds → the unit that reads best for the largest value.
pub(super) fn unit_for(max: f64) -> (f64, &'static str) {
    if max < 120.0 {
        (1.0, "seconds")
    } else if max < 2.0 * 3600.0 {
        (60.0, "minutes")
    } else if max < 2.0 * 86400.0 {
        (3600.0, "hours")
    } else {
        (86400.0, "days")
    }
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn err(e: plotters::drawing::DrawingAreaErrorKind<std::io::Error>) -> String {
    e.to_string()
}

/// The time axis: a lone drill gets an hour either side; a history, a margin of its own span.
fn x_range(points: &[Point]) -> (f64, f64) {
    let ts: Vec<f64> = points.iter().map(|p| p.t.timestamp() as f64).collect();
    let (lo, hi) = match (
        ts.iter().cloned().reduce(f64::min),
        ts.iter().cloned().reduce(f64::max),
    ) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            let n = Utc::now().timestamp() as f64;
            (n, n)
        }
    };
    let pad = if hi > lo {
        ((hi - lo) * 0.06).max(30.0)
    } else {
        1800.0
    };
    (lo - pad, hi + pad)
}

/// A line chart of one measure per drill against its target, as inline SVG. Passed drills are
/// green dots, failed ones red; drills where the measure could not be taken are red crosses on
/// the axis. `extra` is a second series (the worst RPO).
pub(super) fn chart(
    title: &str,
    what: &str,
    points: &[Point],
    extra: &[(DateTime<Utc>, f64)],
    target: Option<f64>,
) -> Result<String, String> {
    let max = points
        .iter()
        .filter_map(|p| p.v)
        .chain(extra.iter().map(|e| e.1))
        .chain(target)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let (div, unit) = unit_for(max);
    let ymax = max / div * 1.15;
    let (x0, x1) = x_range(points);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (760, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0f64..ymax)
            .map_err(err)?;
        draw_mesh(&mut chart, what, unit, x1 - x0)?;
        if let Some(t) = target {
            draw_target(&mut chart, t, div, (x0, x1))?;
        }
        if !extra.is_empty() {
            draw_extra(&mut chart, extra, div)?;
        }
        draw_measured(&mut chart, what, points, div)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    // Name the chart for screen readers and for whoever greps the file.
    Ok(buf.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(title)),
        1,
    ))
}

const RED: RGBColor = RGBColor(180, 35, 24);
const GREEN: RGBColor = RGBColor(23, 128, 61);
const BLUE: RGBColor = RGBColor(78, 121, 167);
const ORANGE: RGBColor = RGBColor(242, 142, 43);

/// Axes, grid and labels; dates with hours when the chart spans less than two days.
fn draw_mesh(chart: &mut Chart, what: &str, unit: &str, span: f64) -> Result<(), String> {
    let fmt_x = move |x: &f64| -> String {
        let t = Utc.timestamp_opt(*x as i64, 0).single().unwrap_or_default();
        if span < 2.0 * 86400.0 {
            t.format("%m-%d %H:%M").to_string()
        } else {
            t.format("%Y-%m-%d").to_string()
        }
    };
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|y: &f64| {
            if *y >= 10.0 || *y == 0.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .y_desc(format!("{what} ({unit})"))
        .x_desc("drill (UTC)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(err)
}

/// The target as a dashed red line across the chart.
fn draw_target(chart: &mut Chart, t: f64, div: f64, (x0, x1): (f64, f64)) -> Result<(), String> {
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x0, t / div), (x1, t / div)],
            8,
            5,
            RED.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!("target {}", human_duration(t)))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
    Ok(())
}

/// The second series (the worst RPO): an orange line with a dot per drill.
fn draw_extra(chart: &mut Chart, extra: &[(DateTime<Utc>, f64)], div: f64) -> Result<(), String> {
    chart
        .draw_series(LineSeries::new(
            extra.iter().map(|(t, v)| (t.timestamp() as f64, v / div)),
            ORANGE.stroke_width(2),
        ))
        .map_err(err)?
        .label("worst RPO, last 30 days")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], ORANGE.stroke_width(2)));
    chart
        .draw_series(extra.iter().map(|(t, v)| {
            Rectangle::new(
                [
                    (t.timestamp() as f64, v / div),
                    (t.timestamp() as f64, v / div),
                ],
                ORANGE.stroke_width(5),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// The measure itself: a blue line, green or red dots, red crosses where it was not taken.
fn draw_measured(chart: &mut Chart, what: &str, points: &[Point], div: f64) -> Result<(), String> {
    let measured: Vec<(f64, f64, bool)> = points
        .iter()
        .filter_map(|p| p.v.map(|v| (p.t.timestamp() as f64, v / div, p.passed)))
        .collect();
    chart
        .draw_series(LineSeries::new(
            measured.iter().map(|(x, y, _)| (*x, *y)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label(what.to_string())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(measured.iter().map(|(x, y, passed)| {
            Circle::new((*x, *y), 5, if *passed { GREEN } else { RED }.filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(
            points
                .iter()
                .filter(|p| p.v.is_none())
                .map(|p| Cross::new((p.t.timestamp() as f64, 0.0), 6, RED.stroke_width(2))),
        )
        .map_err(err)?;
    Ok(())
}
