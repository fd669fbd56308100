//! The growth table: how one node's cost grows with the swarm, read from
//! process reports (`report.json` of `mode = "processes"` runs), one row per
//! report sorted by swarm size, as Markdown, JSON and an SVG of small plots
//! (median per node, with the p90 or p99 above it as a lighter mark). A
//! report directory named after its scenario plus a suffix (`idle-30-before`)
//! belongs to the series of that suffix (`before`); each series is a line of
//! its own colour.
//!
//! ```sh
//! mafalda-sim --scale simulations/reports/idle-{30,100}-before simulations/reports/idle-{30,100}-after \
//!     simulations/reports/discovery-300-after --out simulations/reports/scale
//! ```

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Why the table cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaleError {
    /// A report cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One swarm size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScaleRow {
    /// The report's scenario.
    pub scenario: String,
    /// Its series: the report directory's name after the scenario's
    /// (`idle-30-before` → `before`), or `current`.
    pub series: String,
    /// Where it was read from.
    pub report: String,
    /// Nodes.
    pub nodes: usize,
    /// Extra node flags.
    pub node_args: Vec<String>,
    /// Control-plane bytes/s per node (in + out): median.
    pub bps_median: f64,
    /// p90.
    pub bps_p90: f64,
    /// CPU s/s per node: median.
    pub cpu_median: f64,
    /// p90.
    pub cpu_p90: f64,
    /// RSS MiB per node: median.
    pub rss_median: f64,
    /// PSS MiB per node: median.
    pub pss_median: f64,
    /// libp2p connections per node: median.
    pub connections_median: f64,
    /// Largest.
    pub connections_max: f64,
    /// Finds that succeeded / made.
    pub finds: (u64, u64),
    /// Find latency p50, ms.
    pub find_p50_ms: f64,
    /// p99.
    pub find_p99_ms: f64,
    /// CPU ms per find above idle, over every node process (NaN in reports
    /// older than the figure).
    pub find_cpu_ms: f64,
    /// The machine's 1-minute load average at the window's end.
    pub load_average: f64,
}

/// Reads one row per report directory.
pub fn from_reports(dirs: &[PathBuf]) -> Result<Vec<ScaleRow>, ScaleError> {
    let mut rows = dirs.iter().map(|dir| read_row(&dir.join("report.json"))).collect::<Result<Vec<_>, _>>()?;
    rows.sort_by(|a, b| (&a.series, a.nodes).cmp(&(&b.series, b.nodes)));
    Ok(rows)
}

fn series_of(dir: &Path, scenario: &str) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = name.strip_prefix(scenario).unwrap_or("").trim_start_matches(['-', '_']);
    if suffix.is_empty() { "current".into() } else { suffix.into() }
}

fn read_row(path: &Path) -> Result<ScaleRow, ScaleError> {
    let err = |reason: String| ScaleError::Read { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let r: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    if r.get("control_bps").is_none() {
        return Err(err("not a process report (no control_bps)".into()));
    }
    let f = |a: &str, b: &str| r[a][b].as_f64().unwrap_or(f64::NAN);
    let scenario = r["scenario"].as_str().unwrap_or("?").to_owned();
    Ok(ScaleRow {
        series: series_of(path.parent().unwrap_or(path), &scenario),
        scenario,
        report: path.display().to_string(),
        nodes: r["nodes"].as_u64().unwrap_or(0) as usize,
        node_args: r["node_args"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(Into::into)).collect())
            .unwrap_or_default(),
        bps_median: f("control_bps", "median"),
        bps_p90: f("control_bps", "p90"),
        cpu_median: f("cpu_s_per_s", "median"),
        cpu_p90: f("cpu_s_per_s", "p90"),
        rss_median: f("rss_mib", "median"),
        pss_median: f("pss_mib", "median"),
        connections_median: f("connections", "median"),
        connections_max: f("connections", "max"),
        finds: (r["finds"]["succeeded"].as_u64().unwrap_or(0), r["finds"]["attempted"].as_u64().unwrap_or(0)),
        find_p50_ms: r["finds"]["latency"]["p50_ms"].as_f64().unwrap_or(f64::NAN),
        find_p99_ms: r["finds"]["latency"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
        find_cpu_ms: r["find_cpu_ms"].as_f64().unwrap_or(f64::NAN),
        load_average: r["load_average_end"][0].as_f64().unwrap_or(f64::NAN),
    })
}

/// The table for people.
pub fn markdown(rows: &[ScaleRow]) -> String {
    let mut out = String::from(
        "# Cost per node as the swarm grows\n\nEach node its own process in its own network namespace; figures per node \
         over each report's window (median, p90 in brackets). Regenerate with the command in `simulations/src/scale.rs`.\n\n\
         | series | nodes | report | control B/s (in + out) | CPU s/s | RSS MiB | PSS MiB | connections (max) | finds | find p50 / p99 ms | CPU ms per find | load avg | node flags |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let args = if r.node_args.is_empty() { "-".to_owned() } else { format!("`{}`", r.node_args.join(" ")) };
        let cpu_per_find = if r.find_cpu_ms.is_finite() { format!("{:.1}", r.find_cpu_ms) } else { "-".to_owned() };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} ({:.0}) | {:.4} ({:.4}) | {:.1} | {:.1} | {:.0} ({:.0}) | {}/{} | {:.1} / {:.1} | {cpu_per_find} | {:.2} | {args} |",
            r.series,
            r.nodes,
            r.scenario,
            r.bps_median,
            r.bps_p90,
            r.cpu_median,
            r.cpu_p90,
            r.rss_median,
            r.pss_median,
            r.connections_median,
            r.connections_max,
            r.finds.0,
            r.finds.1,
            r.find_p50_ms,
            r.find_p99_ms,
            r.load_average
        );
    }
    out
}

/// Writes `scale.md`, `scale.json` and `scale.svg` into `dir`.
pub fn write(rows: &[ScaleRow], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(rows).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("scale.json"), json + "\n")?;
    std::fs::write(dir.join("scale.md"), markdown(rows))?;
    std::fs::write(dir.join("scale.svg"), svg(rows))
}

type Pick = fn(&ScaleRow) -> (f64, f64);

/// (median, p90) colours of each series.
const SERIES_COLORS: [(&str, &str); 4] =
    [("#1f77b4", "#9ecae1"), ("#d62728", "#fcae91"), ("#2ca02c", "#a1d99b"), ("#9467bd", "#cbc9e2")];

/// Five small plots against the number of nodes.
pub fn svg(rows: &[ScaleRow]) -> String {
    let panels: [(&str, Pick); 5] = [
        ("control plane B/s per node", |r| (r.bps_median, r.bps_p90)),
        ("CPU s/s per node", |r| (r.cpu_median, r.cpu_p90)),
        ("RSS MiB per node", |r| (r.rss_median, r.rss_median)),
        ("libp2p connections per node", |r| (r.connections_median, r.connections_max)),
        ("find latency ms (p50, p99)", |r| (r.find_p50_ms, r.find_p99_ms)),
    ];
    let (pw, ph) = (300.0, 220.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#,
        w = 3.0 * pw,
        h = 2.0 * ph + 30.0
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="18" font-size="14">Cost per node against swarm size (dark: median; light: p90, or max for connections, p99 for finds)</text>"#
    );
    let max_n = rows.iter().map(|r| r.nodes).max().unwrap_or(1).max(1) as f64;
    let mut names: Vec<&String> = rows.iter().map(|r| &r.series).collect();
    names.sort();
    names.dedup();
    for (s, series) in names.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.0}" y="{:.0}" font-size="12" fill="{}">&#9679; {series}</text>"#,
            2.0 * pw + 20.0,
            30.0 + ph + 40.0 + 18.0 * s as f64,
            SERIES_COLORS[s % SERIES_COLORS.len()].0
        );
    }
    for (k, (title, pick)) in panels.iter().enumerate() {
        let (ox, oy) = ((k % 3) as f64 * pw, 30.0 + (k / 3) as f64 * ph);
        let (left, right, top, bottom) = (ox + 50.0, ox + pw - 15.0, oy + 25.0, oy + ph - 30.0);
        let max_y = rows.iter().map(|r| pick(r).1.max(pick(r).0)).filter(|v| v.is_finite()).fold(0.0, f64::max);
        let max_y = if max_y > 0.0 { max_y * 1.1 } else { 1.0 };
        let x = |n: f64| left + (right - left) * n / max_n;
        let y = |v: f64| bottom - (bottom - top) * v / max_y;
        let _ = writeln!(svg, r#"<text x="{:.0}" y="{:.0}" font-size="12">{title}</text>"#, left, oy + 15.0);
        let _ =
            writeln!(svg, r##"<path d="M{left:.1},{top:.1} V{bottom:.1} H{right:.1}" fill="none" stroke="#444"/>"##);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 4.0,
            top + 4.0,
            short(max_y)
        );
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">0</text>"#, left - 4.0, bottom);
        let mut sizes: Vec<usize> = rows.iter().map(|r| r.nodes).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for n in sizes {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{n}</text>"#,
                x(n as f64),
                bottom + 14.0
            );
        }
        for (s, series) in names.iter().enumerate() {
            let (dark, light) = SERIES_COLORS[s % SERIES_COLORS.len()];
            let mut line = String::new();
            for r in rows.iter().filter(|r| &r.series == *series) {
                let (median, high) = pick(r);
                let px = x(r.nodes as f64);
                if high.is_finite() {
                    let _ = writeln!(svg, r#"<circle cx="{px:.1}" cy="{:.1}" r="3" fill="{light}"/>"#, y(high));
                }
                if median.is_finite() {
                    let _ = writeln!(svg, r#"<circle cx="{px:.1}" cy="{:.1}" r="4" fill="{dark}"/>"#, y(median));
                    let _ = write!(line, "{}{px:.1},{:.1}", if line.is_empty() { "" } else { " " }, y(median));
                }
            }
            let _ = writeln!(svg, r#"<polyline points="{line}" fill="none" stroke="{dark}" stroke-width="1.5"/>"#);
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">nodes</text>"#,
            (left + right) / 2.0,
            bottom + 26.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_from_process_reports_and_sorted_by_size() {
        let dir = std::env::temp_dir().join(format!("mfs-scale-{}", std::process::id()));
        for (dir_name, name, nodes, bps) in [("big-after", "big", 100, 60000.0), ("small", "small", 30, 19000.0)] {
            let report = serde_json::json!({
                "scenario": name, "nodes": nodes, "node_args": [],
                "control_bps": {"median": bps, "p90": bps * 1.1}, "cpu_s_per_s": {"median": 0.01, "p90": 0.02},
                "rss_mib": {"median": 40.0}, "pss_mib": {"median": 25.0}, "connections": {"median": 29.0, "max": 29.0},
                "finds": {"succeeded": 29, "attempted": 29, "latency": {"p50_ms": 12.0, "p99_ms": 40.0}},
                "load_average_end": [1.0, 1.0, 1.0]
            });
            let mut report = report;
            if name == "big" {
                report["find_cpu_ms"] = serde_json::json!(6.5);
            }
            std::fs::create_dir_all(dir.join(dir_name)).expect("temp dir");
            std::fs::write(dir.join(dir_name).join("report.json"), report.to_string()).expect("write");
        }
        let (big, small) = (dir.join("big-after"), dir.join("small"));
        let rows = from_reports(&[big, small.clone()]).expect("readable");
        let series: Vec<(&str, usize)> = rows.iter().map(|r| (r.series.as_str(), r.nodes)).collect();
        assert_eq!(series, [("after", 100), ("current", 30)]);
        let table = markdown(&rows);
        assert!(table.contains("| current | 30 | small | 19000 (20900)"), "{table}");
        assert!(table.contains("| 12.0 / 40.0 | 6.5 | 1.00 |"), "the CPU per find, when reported: {table}");
        assert!(table.contains("| 12.0 / 40.0 | - | 1.00 |"), "and a dash for older reports: {table}");
        assert!(svg(&rows).starts_with("<svg") && svg(&rows).contains("find latency"));
        std::fs::write(small.join("report.json"), "{\"nodes\": 3}").expect("write");
        assert!(from_reports(&[small]).is_err(), "an in-process report is refused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
