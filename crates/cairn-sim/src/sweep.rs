//! `--sweep`: the mean hop count for rings of 10 to 10,000 nodes, as a table
//! and as an SVG plot beside the (1/2)·log2 N line of the Chord paper.

use crate::report::Report;
use std::fmt::Write;

/// One row of the sweep.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SweepPoint {
    pub nodes: usize,
    pub hops_mean: f64,
    pub hops_p99: u32,
    pub chord_half_log2: f64,
    pub failure_rate: f64,
    pub wall_seconds: f64,
}

impl SweepPoint {
    pub fn from_report(report: &Report) -> SweepPoint {
        SweepPoint {
            nodes: report.nodes,
            hops_mean: report.final_lookups.hops_mean,
            hops_p99: report.final_lookups.hops_p99,
            chord_half_log2: 0.5 * (report.nodes as f64).log2(),
            failure_rate: report.final_lookups.failure_rate,
            wall_seconds: report.wall_seconds,
        }
    }
}

/// The sweep as a text table.
pub fn table(points: &[SweepPoint]) -> String {
    let mut out =
        String::from("     N   hops mean   hops p99   (1/2)log2 N   failed+wrong   wall s\n");
    for p in points {
        let _ = writeln!(
            out,
            "{:>6}   {:>9.2}   {:>8}   {:>11.2}   {:>11.4}%   {:>6.1}",
            p.nodes,
            p.hops_mean,
            p.hops_p99,
            p.chord_half_log2,
            p.failure_rate * 100.0,
            p.wall_seconds
        );
    }
    out
}

/// The sweep as an SVG plot: hops against N (log scale), with the Chord line.
pub fn svg(points: &[SweepPoint]) -> String {
    let (width, height, margin) = (640.0, 400.0, 60.0);
    let max_nodes = points.iter().map(|p| p.nodes).max().unwrap_or(10).max(10) as f64;
    let max_hops = points
        .iter()
        .map(|p| p.hops_mean.max(p.chord_half_log2))
        .fold(1.0, f64::max)
        .ceil()
        + 1.0;
    let x = |n: f64| {
        margin + (n.log10() - 1.0) / (max_nodes.log10() - 1.0).max(1e-9) * (width - 2.0 * margin)
    };
    let y = |h: f64| height - margin - h / max_hops * (height - 2.0 * margin);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">cairn-sim: lookup hops vs ring size</text>"#,
        width / 2.0
    );
    // Axes with ticks.
    let _ = writeln!(
        out,
        r#"<line x1="{margin}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{margin}" y1="{margin}" x2="{margin}" y2="{0}" stroke="black"/>"#,
        height - margin,
        width - margin
    );
    let mut decade = 10.0;
    while decade <= max_nodes * 1.01 {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{decade}</text>"#,
            x(decade),
            height - margin + 18.0
        );
        decade *= 10.0;
    }
    for h in 0..=(max_hops as u32) {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{h}</text><line x1="{margin}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="#eee"/>"##,
            margin - 8.0,
            y(f64::from(h)) + 4.0,
            width - margin
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">nodes N (log scale)</text><text x="16" y="{}" transform="rotate(-90 16 {2})" text-anchor="middle">hops</text>"#,
        width / 2.0,
        height - 16.0,
        height / 2.0
    );
    // The Chord paper's (1/2)·log2 N, and the measured means.
    let chord: Vec<String> = (0..=40)
        .map(|k| {
            let n = 10f64.powf(1.0 + k as f64 / 40.0 * (max_nodes.log10() - 1.0));
            format!("{:.1},{:.1}", x(n), y(0.5 * n.log2()))
        })
        .collect();
    let _ = writeln!(
        out,
        r#"<polyline points="{}" fill="none" stroke="gray" stroke-dasharray="6 4"/>"#,
        chord.join(" ")
    );
    let measured: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.nodes as f64), y(p.hops_mean)))
        .collect();
    let _ = writeln!(
        out,
        r#"<polyline points="{}" fill="none" stroke="steelblue" stroke-width="2"/>"#,
        measured.join(" ")
    );
    for p in points {
        let _ = writeln!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="steelblue"/><text x="{0:.1}" y="{:.1}" text-anchor="middle">{:.2}</text>"#,
            x(p.nodes as f64),
            y(p.hops_mean),
            y(p.hops_mean) - 10.0,
            p.hops_mean
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{0}" y="{1}" fill="steelblue">— measured mean hops</text><text x="{0}" y="{2}" fill="gray">- - (1/2)·log2 N (Chord paper)</text>"#,
        margin + 10.0,
        margin + 10.0,
        margin + 26.0
    );
    out.push_str("</svg>\n");
    out
}
