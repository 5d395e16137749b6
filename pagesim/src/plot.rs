//! Miss-ratio curves as SVG: one panel per workload (or trace), miss ratio against cache size on
//! a log axis, a line per policy. Used by the study and by trace replay; no plotting crate (the
//! output is a few hundred lines of text).

use crate::sim::PolicyArg;
use std::fmt::Write as _;

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
    }
}

/// Draws `panels` (four per row) with a legend for `policies`; the x axis is labelled `x_label`
/// with ticks at `ticks` (value, label), on a log scale spanning the ticks and every point.
pub fn svg(
    panels: &[Panel],
    policies: &[PolicyArg],
    ticks: &[(f64, String)],
    x_label: &str,
) -> String {
    let (pw, ph) = (300.0, 220.0);
    let cols = panels.len().clamp(1, 4);
    let nrows = panels.len().div_ceil(cols).max(1);
    let (w, h) = (pw * cols as f64, ph * nrows as f64 + 40.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, &p) in policies.iter().enumerate() {
        let (color, label) = style(p);
        let x = 20.0 + i as f64 * 90.0;
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="16" x2="{}" y2="16" stroke="{color}" stroke-width="2"/><text x="{}" y="20">{label}</text>"#,
            x + 20.0,
            x + 25.0
        );
    }
    let xs = ticks
        .iter()
        .map(|t| t.0)
        .chain(panels.iter().flat_map(|p| p.points.iter().map(|q| q.1)))
        .filter(|x| *x > 0.0);
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let (xmin, xmax) = if lo.is_finite() && hi > lo {
        (lo.ln(), hi.ln())
    } else {
        (0.0, 1.0)
    };
    let (l, r, t, b) = (45.0, 15.0, 25.0, 35.0);
    for (k, panel) in panels.iter().enumerate() {
        let (ox, oy) = ((k % cols) as f64 * pw, 40.0 + (k / cols) as f64 * ph);
        let (iw, ih) = (pw - l - r, ph - t - b);
        let px = |x: f64| ox + l + (x.max(f64::MIN_POSITIVE).ln() - xmin) / (xmax - xmin) * iw;
        let py = |ratio: f64| oy + t + (1.0 - ratio.clamp(0.0, 1.0)) * ih;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
            ox + l,
            oy + t - 8.0,
            escape(&panel.title)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{iw}" height="{ih}" fill="none" stroke="#999"/>"##,
            ox + l,
            oy + t
        );
        for y in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{y}</text>"##,
                ox + l,
                py(y),
                ox + l + iw,
                py(y),
                ox + l - 4.0,
                py(y) + 4.0
            );
        }
        for (x, label) in ticks {
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                px(*x),
                oy + t + ih + 14.0,
                escape(label)
            );
        }
        let (yx, yy) = (ox + 10.0, oy + t + ih / 2.0);
        let _ = writeln!(
            s,
            r#"<text x="{yx}" y="{yy}" text-anchor="middle" transform="rotate(-90 {yx} {yy})">miss ratio</text>"#
        );
        for &policy in policies {
            let mut pts: Vec<(f64, f64)> = panel
                .points
                .iter()
                .filter(|q| q.0 == policy && q.1 > 0.0)
                .map(|q| (q.1, q.2))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let pts: Vec<String> = pts
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
                pts.join(" "),
                style(policy).0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            ox + l + iw / 2.0,
            oy + ph - 6.0,
            escape(x_label)
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

/// `text` with XML's special characters escaped (titles come from file names).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
