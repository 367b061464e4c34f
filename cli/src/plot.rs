//! The build report's SVG: per layer, the planner's LUT4 and flip-flop estimates and the cycles
//! per input, next to the design's interval. Plain SVG written here (a handful of rectangles and
//! labels): no font files are needed to render or to build it.

use std::fmt::Write;

/// One layer's figures.
pub struct LayerBar {
    pub name: String,
    pub lut: usize,
    pub ff: usize,
    pub cycles: usize,
}

/// Two panels: resources per layer (LUT4, FF) and cycles per input per layer.
pub fn svg(title: &str, layers: &[LayerBar], interval: usize, footer: &str) -> String {
    let (w, h) = (900.0, 420.0);
    let (top, bottom) = (60.0, 340.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="20" y="25" font-size="16">{}</text>"#,
        escape(title)
    );
    let panel = |s: &mut String,
                 x0: f64,
                 label: &str,
                 series: &[(&str, &str, Vec<usize>)],
                 line: Option<usize>| {
        let pw = 400.0;
        let max = series
            .iter()
            .flat_map(|x| x.2.iter().copied())
            .chain(line)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let _ = writeln!(s, r#"<text x="{x0}" y="{}">{label}</text>"#, top - 10.0);
        let _ = writeln!(
            s,
            r#"<line x1="{x0}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/>"#,
            x0 + pw
        );
        let n = layers.len().max(1) as f64;
        let group = pw / n;
        let bw = group * 0.8 / series.len() as f64;
        for (i, l) in layers.iter().enumerate() {
            let gx = x0 + i as f64 * group + group * 0.1;
            for (k, (_, color, values)) in series.iter().enumerate() {
                let v = values[i] as f64;
                let bh = (bottom - top) * v / max;
                let x = gx + k as f64 * bw;
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{}: {}</title></rect>"#,
                    bottom - bh,
                    bw * 0.95,
                    escape(&l.name),
                    values[i]
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                    x + bw / 2.0,
                    bottom - bh - 3.0,
                    values[i]
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                gx + group * 0.4,
                bottom + 15.0,
                escape(&l.name)
            );
        }
        if let Some(t) = line {
            let y = bottom - (bottom - top) * t as f64 / max;
            let _ = writeln!(
                s,
                r#"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="red" stroke-dasharray="4"/><text x="{}" y="{:.1}" fill="red" text-anchor="end">interval {t}</text>"#,
                x0 + pw,
                x0 + pw,
                y - 4.0
            );
        }
        for (k, (name, color, _)) in series.iter().enumerate() {
            let lx = x0 + k as f64 * 110.0;
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
                bottom + 28.0,
                lx + 14.0,
                bottom + 37.0
            );
        }
    };
    panel(
        &mut s,
        30.0,
        "estimated resources per layer",
        &[
            ("LUT4", "#4472c4", layers.iter().map(|l| l.lut).collect()),
            (
                "flip-flops",
                "#ed7d31",
                layers.iter().map(|l| l.ff).collect(),
            ),
        ],
        None,
    );
    panel(
        &mut s,
        470.0,
        "cycles per input per layer",
        &[(
            "cycles",
            "#70ad47",
            layers.iter().map(|l| l.cycles).collect(),
        )],
        Some(interval),
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="{}">{}</text>"#,
        h - 15.0,
        escape(footer)
    );
    s.push_str("</svg>\n");
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
