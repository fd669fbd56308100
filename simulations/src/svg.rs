//! SVG plots of a report, written by hand (plain SVG 1.1 that any browser opens):
//! the swarm graph with its pipes, and latency CDFs.

use std::fmt::Write;

use crate::report::Report;

const COLORS: [&str; 8] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

/// Nodes on a circle; grey lines are bootstrap links, coloured arrows are pipes
/// (one colour per stream), filled nodes are origins, crossed nodes were killed.
pub fn graph(report: &Report) -> String {
    let n = report.nodes.max(1);
    let size = 200.0 + 12.0 * (n as f64).min(120.0);
    let (cx, cy, r) = (size / 2.0, size / 2.0 + 20.0, size / 2.0 - 60.0);
    let node_r = if n > 60 { 4.0 } else { 9.0 };
    let pos = |i: usize| {
        let angle = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        (cx + r * angle.cos(), cy + r * angle.sin())
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="sans-serif" font-size="12">"#,
        w = size,
        h = size + 40.0
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="18" font-size="14">{}: {} nodes, pipes at the end (grey: bootstrap links)</text>"#,
        escape(&report.scenario),
        report.nodes
    );
    for (s, stream) in report.streams.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="10" y="{y}" fill="{c}">&#9632; {name}</text>"#,
            y = 36 + 14 * s,
            c = COLORS[s % COLORS.len()],
            name = escape(stream)
        );
    }
    let _ = writeln!(
        svg,
        r#"<defs>{}</defs>"#,
        COLORS
            .iter()
            .enumerate()
            .map(|(i, c)| format!(
                r#"<marker id="a{i}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>"#
            ))
            .collect::<String>()
    );
    for node in &report.node_reports {
        if let Some(parent) = node.bootstrap {
            let ((x1, y1), (x2, y2)) = (pos(parent), pos(node.index));
            let _ = writeln!(svg, r##"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="#ddd"/>"##);
        }
    }
    for pipe in &report.pipes {
        let ((x1, y1), (x2, y2)) = (pos(pipe.from), pos(pipe.to));
        // Stop the arrow at the node's edge.
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-6);
        let (x2, y2) = (x2 - dx / len * node_r, y2 - dy / len * node_r);
        let color = COLORS[pipe.stream % COLORS.len()];
        let _ = writeln!(
            svg,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{color}" stroke-width="2" marker-end="url(#a{m})"/>"#,
            m = pipe.stream % COLORS.len()
        );
    }
    let origins: Vec<usize> =
        report.node_reports.iter().filter(|n| n.streams_held > n.relays).map(|n| n.index).collect();
    for node in &report.node_reports {
        let (x, y) = pos(node.index);
        let fill = if origins.contains(&node.index) { "#333" } else { "white" };
        let _ = writeln!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{node_r}" fill="{fill}" stroke="black"><title>node {i} ({peer}): {c} consumers, {h} streams</title></circle>"#,
            i = node.index,
            peer = node.peer,
            c = node.consumers,
            h = node.streams_held
        );
        if report.churn.iter().any(|c| c.node == node.index) {
            let d = node_r + 3.0;
            let _ = writeln!(
                svg,
                r#"<path d="M{a:.1},{b:.1} L{c:.1},{e:.1} M{a:.1},{e:.1} L{c:.1},{b:.1}" stroke="black" stroke-width="2"/>"#,
                a = x - d,
                b = y - d,
                c = x + d,
                e = y + d
            );
        }
        if n <= 60 {
            let (lx, ly) = (cx + (r + 22.0) * (x - cx) / r, cy + (r + 22.0) * (y - cy) / r);
            let _ = writeln!(
                svg,
                r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="middle" dominant-baseline="middle">{}</text>"#,
                node.index
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Cumulative distributions of find latency and time to first packet.
pub fn latency_cdf(report: &Report) -> String {
    let finds: Vec<f64> = report.consumers.iter().filter_map(|c| c.find_ms).collect();
    let firsts: Vec<f64> = report.consumers.iter().filter_map(|c| c.first_packet_ms).collect();
    let max = finds.iter().chain(&firsts).copied().fold(1.0_f64, f64::max);
    let (w, h, left, bottom, top, right) = (640.0, 400.0, 60.0, 50.0, 40.0, 20.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let x = |ms: f64| left + pw * ms / max;
    let y = |q: f64| top + ph * (1.0 - q);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        writeln!(svg, r#"<text x="{left}" y="20" font-size="14">{}: latency CDFs</text>"#, escape(&report.scenario));
    let _ = writeln!(
        svg,
        r#"<line x1="{left}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" stroke="black"/>"#,
        y0 = y(0.0),
        x1 = x(max)
    );
    for tick in 0..=4 {
        let value = max * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{value:.0} ms</text>"#,
            x(value),
            y(0.0) + 18.0
        );
        let q = f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0} %</text>"#,
            left - 6.0,
            y(q) + 4.0,
            q * 100.0
        );
    }
    for (i, (name, values)) in [("find", &finds), ("first packet", &firsts)].into_iter().enumerate() {
        if values.is_empty() {
            continue;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let mut points = format!("{:.1},{:.1}", x(0.0), y(0.0));
        for (k, v) in sorted.iter().enumerate() {
            let before = k as f64 / sorted.len() as f64;
            let after = (k + 1) as f64 / sorted.len() as f64;
            let _ = write!(points, " {:.1},{:.1} {:.1},{:.1}", x(*v), y(before), x(*v), y(after));
        }
        let color = COLORS[i + 1];
        let _ = writeln!(svg, r#"<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{name} (n={})</text>"#,
            w - 160.0,
            top + 20.0 + 16.0 * i as f64,
            sorted.len()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
