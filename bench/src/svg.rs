//! Bar charts as plain SVG, written by hand: grouped bars with axes, a legend and the value
//! printed on every bar, readable on GitHub's light background.
//!
//! No plotting dependency: the charts are a few rectangles and labels, and a text format the
//! reader can diff. Linear or logarithmic (for latencies, whose percentiles span decades).

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 64.0;

/// Colours for series, in order.
pub const PALETTE: [&str; 4] = ["#2b6cb0", "#a0aec0", "#38a169", "#d69e2e"];

/// One chart.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    /// Labels under each group of bars.
    pub groups: Vec<String>,
    /// Series names (the legend) and colours; one bar per series in each group.
    pub series: Vec<(String, String)>,
    /// `values[group][series]`; `None` leaves a gap.
    pub values: Vec<Vec<Option<f64>>>,
    pub log: bool,
    /// How values are printed on the bars and axis.
    pub format: fn(f64) -> String,
    /// One colour per group, overriding the series colour (one series coloured by target);
    /// empty for none.
    pub group_colours: Vec<String>,
    /// The legend, when it is not the series (with `group_colours`); empty for the series.
    pub legend: Vec<(String, String)>,
}

impl BarChart {
    pub fn render(&self) -> String {
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let max = self
            .values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .fold(0.0_f64, f64::max);
        let min = self
            .values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let scale = Scale::new(min, max, self.log);
        let y = |v: f64| TOP + plot_h - scale.fraction(v) * plot_h;

        let mut s = String::new();
        let _ = write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">"##
        );
        let _ = write!(
            s,
            r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/><text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold" fill="#1a202c">{}</text>"##,
            WIDTH / 2.0,
            esc(&self.title)
        );
        // Axis label, rotated along the y axis.
        let _ = write!(
            s,
            r##"<text x="16" y="{}" text-anchor="middle" fill="#4a5568" transform="rotate(-90 16 {})">{}</text>"##,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            esc(&self.y_label)
        );
        for tick in scale.ticks() {
            let ty = y(tick);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#e2e8f0"/><text x="{}" y="{:.1}" text-anchor="end" fill="#4a5568">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                ty + 4.0,
                esc(&(self.format)(tick))
            );
        }
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="#4a5568"/><line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#4a5568"/>"##,
            TOP + plot_h,
            WIDTH - RIGHT,
            TOP + plot_h,
            TOP + plot_h
        );

        let groups = self.groups.len().max(1) as f64;
        let series = self.series.len().max(1) as f64;
        let group_w = plot_w / groups;
        let bar_w = (group_w * 0.8 / series).min(80.0);
        for (g, label) in self.groups.iter().enumerate() {
            let group_x = LEFT + group_w * g as f64;
            let bars_x = group_x + (group_w - bar_w * series) / 2.0;
            for (k, (_, colour)) in self.series.iter().enumerate() {
                let colour = self.group_colours.get(g).unwrap_or(colour);
                let Some(v) = self
                    .values
                    .get(g)
                    .and_then(|row| row.get(k))
                    .copied()
                    .flatten()
                else {
                    continue;
                };
                let x = bars_x + bar_w * k as f64;
                let top = y(v);
                let h = (TOP + plot_h - top).max(0.0);
                let _ = write!(
                    s,
                    r##"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#1a202c">{}</text>"##,
                    (bar_w - 2.0).max(1.0),
                    x + bar_w / 2.0,
                    top - 4.0,
                    esc(&(self.format)(v))
                );
            }
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#1a202c">{}</text>"##,
                group_x + group_w / 2.0,
                TOP + plot_h + 18.0,
                esc(label)
            );
        }
        // Legend, centred under the group labels.
        let legend = if self.legend.is_empty() {
            &self.series
        } else {
            &self.legend
        };
        if legend.len() > 1 {
            let item_w = 130.0;
            let start = (WIDTH - item_w * legend.len() as f64) / 2.0;
            for (k, (name, colour)) in legend.iter().enumerate() {
                let x = start + item_w * k as f64;
                let ly = HEIGHT - 18.0;
                let _ = write!(
                    s,
                    r##"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{ly:.1}" fill="#1a202c">{}</text>"##,
                    ly - 10.0,
                    x + 18.0,
                    esc(name)
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Maps values to the plot's height.
struct Scale {
    log: bool,
    /// Linear: 0..top. Log: 10^lo..10^hi.
    top: f64,
    lo: f64,
    hi: f64,
    step: f64,
}

impl Scale {
    /// A scale for values in `min..=max` (log: from the decade below `min`).
    fn new(min: f64, max: f64, log: bool) -> Scale {
        if log {
            let hi = max.max(1.0).log10().ceil().max(1.0);
            let lo = if min.is_finite() {
                (min.max(1.0).log10().floor() - 1.0).clamp(0.0, hi - 1.0)
            } else {
                0.0
            };
            Scale {
                log,
                top: 0.0,
                lo,
                hi,
                step: 1.0,
            }
        } else {
            let step = nice_step(max.max(1e-9) * 1.15 / 5.0);
            let top = (max * 1.15 / step).ceil().max(1.0) * step;
            Scale {
                log,
                top,
                lo: 0.0,
                hi: 0.0,
                step,
            }
        }
    }

    /// 0 at the bottom, 1 at the top.
    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            ((v.max(1.0).log10() - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        } else {
            (v / self.top).clamp(0.0, 1.0)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            ((self.lo as i32)..=(self.hi as i32))
                .map(|e| 10f64.powi(e))
                .collect()
        } else {
            let n = (self.top / self.step).round() as usize;
            (0..=n).map(|i| i as f64 * self.step).collect()
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Escapes text for SVG.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bars_values_and_legend() {
        let chart = BarChart {
            title: "Deliveries <per> second".into(),
            y_label: "deliveries/s".into(),
            groups: vec!["1000".into(), "5000".into()],
            series: vec![
                ("wsgate".into(), PALETTE[0].into()),
                ("node".into(), PALETTE[2].into()),
            ],
            values: vec![vec![Some(1.5), Some(3.0)], vec![Some(2.0), None]],
            log: false,
            format: |v| format!("{v:.1}"),
            group_colours: Vec::new(),
            legend: Vec::new(),
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("Deliveries &lt;per&gt; second"));
        assert_eq!(
            svg.matches("fill=\"#2b6cb0\"").count(),
            3,
            "two bars and a legend swatch"
        );
        assert!(svg.contains(">3.0<"));
    }

    #[test]
    fn scales() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(340.0), 500.0);
        let log = Scale::new(2.0, 25_000.0, true);
        assert_eq!(
            log.ticks(),
            vec![1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0]
        );
        assert!((log.fraction(1000.0) - 0.6).abs() < 1e-9);
        let high = Scale::new(60_000.0, 4_000_000.0, true);
        assert_eq!(high.ticks().first(), Some(&1000.0));
        let lin = Scale::new(0.0, 100.0, false);
        assert!(lin.top >= 115.0);
        assert_eq!(lin.fraction(0.0), 0.0);
    }
}
