//! Miss-ratio curves as SVG, drawn with `plotters` (its SVG backend, no font system: text is
//! written as `<text>` elements): one panel per workload (or trace), miss ratio against cache
//! size on a log axis, a line per policy, and a legend above the panels. Used by the study and by
//! trace replay.

use crate::sim::PolicyArg;
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One panel: a title and, per policy, its (cache size, miss ratio) points.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// The panel's title (the workload's or trace's name).
    pub title: String,
    /// `(policy, cache size, miss ratio)`; cache sizes must be positive (log axis).
    pub points: Vec<(PolicyArg, f64, f64)>,
}

/// The colour and label each policy is drawn with.
pub fn style(p: PolicyArg) -> (&'static str, &'static str) {
    match p {
        PolicyArg::Fifo => ("#d62728", "FIFO"),
        PolicyArg::Clock => ("#ff7f0e", "CLOCK"),
        PolicyArg::Sieve => ("#1f77b4", "SIEVE"),
        PolicyArg::S3fifo => ("#2ca02c", "S3-FIFO"),
    }
}

/// `p`'s colour from [`style`] as a plotters colour.
fn color(p: PolicyArg) -> RGBColor {
    let hex = style(p).0.trim_start_matches('#');
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
    RGBColor(byte(0), byte(2), byte(4))
}

/// Panel size and the height of the legend strip above the panels, in pixels.
const PANEL: (u32, u32) = (300, 230);
const LEGEND: u32 = 40;
/// Font size for 11px text: plotters' SVG backend writes `font-size` as the size given / 1.24.
const FONT: f64 = 11.0 * 1.24;

/// Draws `panels` (four per row) with a legend for `policies`; the x axis is labelled `x_label`
/// with ticks at `ticks` (value, label), on a log scale spanning the ticks and every point.
pub fn svg(
    panels: &[Panel],
    policies: &[PolicyArg],
    ticks: &[(f64, String)],
    x_label: &str,
) -> String {
    let mut out = String::new();
    // Drawing into a String cannot fail (the backend's only errors are I/O, and the font
    // without a font system only estimates text sizes).
    draw(&mut out, panels, policies, ticks, x_label).expect("drawing SVG into a String");
    out
}

/// The x range: the ticks' and points' positive sizes, or a factor of 3 either side if they are
/// all one value.
fn x_range(panels: &[Panel], ticks: &[(f64, String)]) -> (f64, f64) {
    let xs = ticks
        .iter()
        .map(|t| t.0)
        .chain(panels.iter().flat_map(|p| p.points.iter().map(|q| q.1)))
        .filter(|x| *x > 0.0 && x.is_finite());
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    if !lo.is_finite() {
        (1.0, 10.0)
    } else if hi > lo {
        (lo, hi)
    } else {
        (lo / 3.0, lo * 3.0)
    }
}

fn draw(
    out: &mut String,
    panels: &[Panel],
    policies: &[PolicyArg],
    ticks: &[(f64, String)],
    x_label: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let cols = panels.len().clamp(1, 4);
    let rows = panels.len().div_ceil(cols).max(1);
    let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32 + LEGEND);
    let root = SVGBackend::with_string(out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (legend, grid) = root.split_vertically(LEGEND);

    // One legend for every panel: a short bar in the policy's colour (a filled rectangle, so
    // that the only polylines in a policy's colour are its curves), then its name.
    let font = TextStyle::from(("sans-serif", FONT)).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, &p) in policies.iter().enumerate() {
        let x = 20 + i as i32 * 90;
        let y = LEGEND as i32 / 2;
        legend.draw(&Rectangle::new(
            [(x, y - 1), (x + 20, y + 1)],
            color(p).filled(),
        ))?;
        legend.draw(&Text::new(style(p).1, (x + 25, y), font.clone()))?;
    }

    let (lo, hi) = x_range(panels, ticks);
    let keys: Vec<f64> = ticks
        .iter()
        .map(|t| t.0)
        .filter(|x| (lo..=hi).contains(x))
        .collect();
    let label = |x: &f64| {
        ticks
            .iter()
            .find(|t| t.0 == *x)
            .map(|t| t.1.clone())
            .unwrap_or_default()
    };
    for (area, panel) in grid.split_evenly((rows, cols)).iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", FONT, FontStyle::Bold))
            .margin(8)
            .margin_right(20)
            .x_label_area_size(34)
            .y_label_area_size(42)
            .build_cartesian_2d((lo..hi).log_scale().with_key_points(keys.clone()), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_labels(keys.len())
            .x_label_formatter(&label)
            .y_labels(6)
            .y_label_formatter(&|y| format!("{y:.1}"))
            .x_desc(x_label)
            .y_desc("miss ratio")
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(RGBColor(0xee, 0xee, 0xee))
            .axis_style(RGBColor(0x99, 0x99, 0x99))
            .label_style(("sans-serif", FONT))
            .axis_desc_style(("sans-serif", FONT))
            .draw()?;
        // Close the plotting area's frame (the mesh draws the left and bottom axes only).
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(lo, 1.0), (hi, 1.0), (hi, 0.0)],
            RGBColor(0x99, 0x99, 0x99),
        )))?;
        for &policy in policies {
            let mut pts: Vec<(f64, f64)> = panel
                .points
                .iter()
                .filter(|q| q.0 == policy && q.1 > 0.0)
                .map(|q| (q.1, q.2.clamp(0.0, 1.0)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart.draw_series(LineSeries::new(pts, color(policy).stroke_width(2)))?;
        }
    }
    root.present()?;
    Ok(())
}
