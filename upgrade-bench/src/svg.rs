//! The timeline picture, written by hand: two panels (successful requests per 100 ms, failed
//! requests per 100 ms stacked by kind) sharing a time axis, upgrades marked. A few dozen
//! lines of SVG text instead of a plotting crate and its dependency tree.

use crate::loadgen::FAIL_KINDS;
use crate::stats::BIN_S;
use std::fmt::Write as _;

const W: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const OK_TOP: f64 = 44.0;
const OK_H: f64 = 190.0;
const FAIL_TOP: f64 = 270.0;
const FAIL_H: f64 = 90.0;
const H: f64 = 420.0;
const KIND_COLORS: [&str; FAIL_KINDS.len()] = [
    "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#17becf",
];

/// A round axis maximum >= `v` and >= 2 (1, 2 or 5 times a power of ten), so that half of
/// it is a whole number.
fn nice_max(v: f64) -> f64 {
    let v = v.max(2.0);
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

/// A round tick step for an axis of `span` seconds (about 10 ticks).
fn time_step(span: f64) -> f64 {
    [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|&s| span / s <= 12.0)
        .unwrap_or(1200.0)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document. `triggers` in seconds; `title` and `subtitle` one line each.
pub fn timeline(
    title: &str,
    subtitle: &str,
    ok: &[u32],
    fails: &[[u32; FAIL_KINDS.len()]],
    triggers: &[f64],
) -> String {
    let f = Frame::new(ok, fails);
    let mut s = String::new();
    head(&mut s, title, subtitle);
    panels(&mut s, &f);
    time_axis(&mut s, &f);
    // Upgrades.
    for &tr in triggers {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{OK_TOP}" x2="{0:.1}" y2="{1}" stroke="#2ca02c" stroke-opacity="0.6" stroke-dasharray="3,3"/>"##,
            f.x(tr),
            FAIL_TOP + FAIL_H
        );
    }
    successes(&mut s, &f, ok);
    failures(&mut s, &f, fails, ok.len());
    legend(&mut s);
    s.push_str("</svg>\n");
    s
}

/// The time axis and the two panels' scales.
struct Frame {
    /// Seconds the picture spans.
    span: f64,
    /// Top of the successes' scale.
    ok_max: f64,
    /// Top of the failures' scale.
    fail_max: f64,
}

impl Frame {
    fn new(ok: &[u32], fails: &[[u32; FAIL_KINDS.len()]]) -> Frame {
        let per_bin = fails.iter().map(|f| f.iter().sum::<u32>());
        Frame {
            span: (ok.len() as f64 * BIN_S).max(BIN_S),
            ok_max: nice_max(ok.iter().copied().max().unwrap_or(0) as f64),
            fail_max: nice_max(per_bin.max().unwrap_or(0) as f64),
        }
    }

    /// The x coordinate of `t` seconds.
    fn x(&self, t: f64) -> f64 {
        LEFT + (W - LEFT - RIGHT) * (t / self.span)
    }
}

/// The document's start: size, background, title and subtitle.
fn head(s: &mut String, title: &str, subtitle: &str) {
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="35" fill="#444">{}</text>"##,
        esc(subtitle)
    );
}

/// Panels, horizontal grid and y labels.
fn panels(s: &mut String, f: &Frame) {
    for (top, h, max, label) in [
        (OK_TOP, OK_H, f.ok_max, "ok / 100 ms"),
        (FAIL_TOP, FAIL_H, f.fail_max, "failed / 100 ms"),
    ] {
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{}" height="{h}" fill="none" stroke="#999"/>"##,
            W - LEFT - RIGHT
        );
        for frac in [0.0, 0.5, 1.0] {
            let y = top + h - h * frac;
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 4.0,
                y + 4.0,
                max * frac
            );
        }
        let _ = writeln!(
            s,
            r#"<text transform="translate(14,{:.1}) rotate(-90)" text-anchor="middle">{label}</text>"#,
            top + h / 2.0
        );
    }
}

/// Time ticks and the axis label.
fn time_axis(s: &mut String, f: &Frame) {
    let step = time_step(f.span);
    let mut t = 0.0;
    while t <= f.span + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#999"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            f.x(t),
            FAIL_TOP + FAIL_H,
            FAIL_TOP + FAIL_H + 4.0,
            FAIL_TOP + FAIL_H + 17.0,
            t
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        FAIL_TOP + FAIL_H + 32.0
    );
}

/// Successes: one polyline.
fn successes(s: &mut String, f: &Frame, ok: &[u32]) {
    let mut pts = String::new();
    for (i, &n) in ok.iter().enumerate() {
        let _ = write!(
            pts,
            "{:.1},{:.1} ",
            f.x((i as f64 + 0.5) * BIN_S),
            OK_TOP + OK_H - OK_H * (n as f64 / f.ok_max)
        );
    }
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="1"/>"##,
        pts.trim_end()
    );
}

/// Failures: stacked bars (`bins` of them across the width), or a note that there is none.
fn failures(s: &mut String, f: &Frame, fails: &[[u32; FAIL_KINDS.len()]], bins: usize) {
    let bw = ((W - LEFT - RIGHT) / bins.max(1) as f64).max(1.5);
    for (i, kinds) in fails.iter().enumerate() {
        let mut y = FAIL_TOP + FAIL_H;
        for (k, &n) in kinds.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let h = FAIL_H * (n as f64 / f.fail_max);
            y -= h;
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{y:.1}" width="{bw:.1}" height="{h:.1}" fill="{}"><title>{:.1} s: {n} {}</title></rect>"##,
                f.x(i as f64 * BIN_S),
                KIND_COLORS[k],
                i as f64 * BIN_S,
                FAIL_KINDS[k].1
            );
        }
    }
    if fails.iter().all(|f| f.iter().all(|&n| n == 0)) {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#2ca02c" font-size="14">no failed request</text>"##,
            (LEFT + W - RIGHT) / 2.0,
            FAIL_TOP + FAIL_H / 2.0 + 5.0
        );
    }
}

/// The legend: the upgrade marker, then a swatch per failure kind.
fn legend(s: &mut String) {
    let mut lx = LEFT;
    let ly = FAIL_TOP - 10.0;
    let mut item = |s: &mut String, color: &str, label: &str, dashed: bool| {
        let _ = if dashed {
            writeln!(
                s,
                r#"<line x1="{lx}" y1="{0}" x2="{1}" y2="{0}" stroke="{color}" stroke-dasharray="3,3" stroke-width="2"/>"#,
                ly - 4.0,
                lx + 14.0
            )
        } else {
            writeln!(
                s,
                r#"<rect x="{lx}" y="{}" width="12" height="8" fill="{color}"/>"#,
                ly - 8.0
            )
        };
        let _ = writeln!(s, r#"<text x="{}" y="{ly}">{label}</text>"#, lx + 18.0);
        lx += 30.0 + 7.0 * label.len() as f64;
    };
    item(s, "#2ca02c", "upgrade", true);
    for (k, (_, name)) in FAIL_KINDS.iter().enumerate() {
        item(s, KIND_COLORS[k], name, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_document() {
        let mut fails = vec![[0u32; FAIL_KINDS.len()]; 30];
        fails[12][0] = 7;
        let svg = timeline("t <1>", "sub", &[100; 30], &fails, &[1.2]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.contains("7 refused"));
        assert_eq!(nice_max(0.0), 2.0);
        assert_eq!(nice_max(4100.0), 5000.0);
        assert_eq!(time_step(300.0), 30.0);
    }
}
