//! The process run's report: per-node figures over the window (rates from
//! the first and last sample of each node), their spread over the nodes
//! (median, p90, max), libp2p's own counters per protocol when the nodes
//! export them, discovery, and the behaviour checks; as JSON and Markdown.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use super::ProcessObservations;
use super::discovery::FindResult;
use super::measure::{MetricsSnapshot, NodeSample};
use crate::report::{Check, Stats};

const MIB: f64 = 1024.0;

/// Median, 90th percentile, extremes and mean of a figure over the nodes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    /// Nodes with a value.
    pub count: usize,
    /// Median.
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest.
    pub max: f64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
}

impl Spread {
    /// The spread of `values` (`None`s left out).
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Self {
        let mut sorted: Vec<f64> = values.into_iter().flatten().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return Self::default();
        }
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Self {
            count: sorted.len(),
            median: rank(0.5),
            p90: rank(0.9),
            max: sorted[sorted.len() - 1],
            min: sorted[0],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        }
    }
}

/// One node's figures over the window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFigures {
    /// Index.
    pub index: usize,
    /// Control-plane bytes/s received (kernel counters).
    pub control_in_bps: Option<f64>,
    /// Control-plane bytes/s sent.
    pub control_out_bps: Option<f64>,
    /// Control-plane packets/s, both ways.
    pub control_pps: Option<f64>,
    /// Bytes/s (in + out) per counted class: api, p2p, media, other.
    pub classes_bps: BTreeMap<String, f64>,
    /// TCP payload bytes/s (in + out) on the libp2p connections, from `ss`
    /// (connections that closed inside the window are missing).
    pub tcp_payload_bps: Option<f64>,
    /// libp2p's own bandwidth counters (`libp2p_bandwidth_bytes_total`), in + out.
    pub libp2p_bps: Option<f64>,
    /// Established libp2p TCP connections at the end of the window (the
    /// namespace's TCP table).
    pub connections_end: Option<usize>,
    /// The most seen in any sample.
    pub connections_max: Option<usize>,
    /// Distinct peers (by address) of those connections, the most in any sample.
    pub peers_tcp_max: Option<usize>,
    /// Connected peers in `/v1/status`, at the most.
    pub peers_api_max: Option<usize>,
    /// CPU seconds per second (all the process's threads).
    pub cpu_s_per_s: Option<f64>,
    /// Resident memory at the end, MiB.
    pub rss_mib: Option<f64>,
    /// Proportional set size at the end, MiB (shared pages split among the nodes).
    pub pss_mib: Option<f64>,
    /// Seconds from the first start to ready.
    pub ready_s: Option<f64>,
}

/// A libp2p per-protocol counter over the swarm.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolRow {
    /// `name{labels}` as the node exports it.
    pub series: String,
    /// Its rate per node (per second for byte and message counters).
    pub per_node: Spread,
}

/// Discovery's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FindSummary {
    /// Finds made.
    pub attempted: usize,
    /// Finds that succeeded.
    pub succeeded: usize,
    /// Latency of the successful ones.
    pub latency: Stats,
    /// Every failed find.
    pub failures: Vec<FindResult>,
}

/// The swarm at one sample.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesPoint {
    /// Seconds into the window.
    pub at_s: f64,
    /// Median bytes/s (in + out) on `eth0` per node since the previous
    /// sample: all traffic, the runner's API requests included.
    pub eth0_bps_median: f64,
    /// Median connections per node.
    pub connections_median: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// Scenario name.
    pub scenario: String,
    /// Nodes (processes).
    pub nodes: usize,
    /// Extra node flags.
    pub node_args: Vec<String>,
    /// The commit the run was made from, if known.
    pub code: Option<String>,
    /// Bound on peers per node that is checked.
    pub peers_at_most: usize,
    /// Window length, seconds.
    pub window_s: f64,
    /// Samples taken in it.
    pub samples: usize,
    /// The machine: logical CPUs.
    pub cpus: usize,
    /// 1-minute load average at the window's start and end.
    pub load_average: (f64, f64),
    /// Load averages (1, 5, 15 min) at the window's end.
    pub load_average_end: (f64, f64, f64),
    /// CPU the runner itself used during the window, seconds per second.
    pub runner_cpu_s_per_s: f64,
    /// Seconds to make the lab.
    pub lab_setup_s: f64,
    /// Seconds from the first start to every node ready.
    pub ready_all_s: f64,
    /// The machine's memory taken per node (drop of `MemAvailable` / nodes), MiB.
    pub machine_mib_per_node: Option<f64>,
    /// Control-plane bytes/s, in + out, per node: the headline.
    pub control_bps: Spread,
    /// Received.
    pub control_in_bps: Spread,
    /// Sent.
    pub control_out_bps: Spread,
    /// Packets/s, both ways.
    pub control_pps: Spread,
    /// Bytes/s per counted class.
    pub classes_bps: BTreeMap<String, Spread>,
    /// TCP payload bytes/s from `ss`.
    pub tcp_payload_bps: Spread,
    /// libp2p's bandwidth counters, bytes/s.
    pub libp2p_bps: Spread,
    /// Established libp2p connections at the end.
    pub connections: Spread,
    /// Most peers by the kernel's TCP table.
    pub peers_tcp_max: Spread,
    /// Most peers by `/v1/status`.
    pub peers_api_max: Spread,
    /// CPU seconds per second.
    pub cpu_s_per_s: Spread,
    /// RSS, MiB.
    pub rss_mib: Spread,
    /// PSS, MiB.
    pub pss_mib: Spread,
    /// `mafalda_p2p_*_total` series (per protocol and direction), when exported.
    pub protocols: Vec<ProtocolRow>,
    /// Discovery.
    pub finds: FindSummary,
    /// Discovery as the nodes measured it.
    pub inside: Option<super::inside::InsideFinds>,
    /// What the discovery phase cost the node processes.
    pub finds_cost: super::FindsCost,
    /// CPU milliseconds per find above the window's idle rate, over every
    /// node process (see [`cpu_ms_per_find`]); none without finds.
    pub find_cpu_ms: Option<f64>,
    /// The swarm over the window.
    pub series: Vec<SeriesPoint>,
    /// Per node.
    pub node_figures: Vec<NodeFigures>,
    /// Watching the swarm from node 0.
    pub monitor: Option<super::monitor::MonitorProbe>,
    /// Behaviour checks.
    pub checks: Vec<Check>,
    /// Whether every check passed.
    pub passed: bool,
}

/// Builds the report.
pub fn build(obs: &ProcessObservations) -> ProcessReport {
    let w = &obs.window;
    let first = w.rounds.first().cloned().unwrap_or_default();
    let last = w.rounds.last().cloned().unwrap_or_default();
    let node_figures: Vec<NodeFigures> = (0..obs.nodes)
        .map(|i| {
            let mut f = node(first.get(i), last.get(i), &w.rounds, i);
            f.libp2p_bps = rate_of(w.metrics_start.get(i), w.metrics_end.get(i), |name| {
                name.starts_with("libp2p_bandwidth_bytes_total")
            });
            f.ready_s = obs.ready_s.get(i).copied().flatten();
            f
        })
        .collect();
    let spread = |get: &dyn Fn(&NodeFigures) -> Option<f64>| Spread::of(node_figures.iter().map(get));
    let classes: Vec<String> = node_figures.iter().flat_map(|f| f.classes_bps.keys().cloned()).collect();
    let classes_bps = classes
        .into_iter()
        .map(|class| {
            let s = spread(&|f| f.classes_bps.get(&class).copied());
            (class, s)
        })
        .collect();
    let finds = summarize_finds(&obs.finds);
    let mut report = ProcessReport {
        scenario: obs.scenario.clone(),
        nodes: obs.nodes,
        node_args: obs.node_args.clone(),
        code: obs.code.clone(),
        peers_at_most: obs.peers_at_most,
        window_s: w.length_s,
        samples: w.rounds.len(),
        cpus: obs.cpus,
        load_average: w.load_average,
        load_average_end: obs.load_average_end,
        runner_cpu_s_per_s: w.runner_cpu_s / w.length_s.max(f64::EPSILON),
        lab_setup_s: obs.lab_setup_s,
        ready_all_s: obs.ready_all_s,
        machine_mib_per_node: obs
            .mem_available_before_kib
            .zip(obs.mem_available_during_kib)
            .map(|(before, during)| before.saturating_sub(during) as f64 / MIB / obs.nodes as f64),
        control_bps: spread(&|f| f.control_in_bps.zip(f.control_out_bps).map(|(a, b)| a + b)),
        control_in_bps: spread(&|f| f.control_in_bps),
        control_out_bps: spread(&|f| f.control_out_bps),
        control_pps: spread(&|f| f.control_pps),
        classes_bps,
        tcp_payload_bps: spread(&|f| f.tcp_payload_bps),
        libp2p_bps: spread(&|f| f.libp2p_bps),
        connections: spread(&|f| f.connections_end.map(|c| c as f64)),
        peers_tcp_max: spread(&|f| f.peers_tcp_max.map(|c| c as f64)),
        peers_api_max: spread(&|f| f.peers_api_max.map(|c| c as f64)),
        cpu_s_per_s: spread(&|f| f.cpu_s_per_s),
        rss_mib: spread(&|f| f.rss_mib),
        pss_mib: spread(&|f| f.pss_mib),
        protocols: protocols(&w.metrics_start, &w.metrics_end),
        finds,
        inside: obs.inside.clone(),
        finds_cost: obs.finds_cost,
        find_cpu_ms: None,
        series: series(&w.rounds),
        node_figures,
        monitor: obs.monitor.clone(),
        checks: Vec::new(),
        passed: false,
    };
    report.find_cpu_ms = cpu_ms_per_find(&report);
    report.checks = checks(obs, &report);
    report.passed = report.checks.iter().all(|c| c.passed);
    report
}

/// CPU seconds the node processes would have used anyway while the finds
/// ran, at the window's idle rate.
fn idle_cpu_s(r: &ProcessReport) -> f64 {
    r.node_figures.iter().filter_map(|f| f.cpu_s_per_s).sum::<f64>() * r.finds_cost.wall_s
}

/// CPU milliseconds per find above idle: what the publications and finds
/// cost every node process, less the window's idle rate over their wall time.
fn cpu_ms_per_find(r: &ProcessReport) -> Option<f64> {
    (r.finds.attempted > 0).then(|| 1000.0 * (r.finds_cost.cpu_s - idle_cpu_s(r)).max(0.0) / r.finds.attempted as f64)
}

fn node(first: Option<&NodeSample>, last: Option<&NodeSample>, rounds: &[Vec<NodeSample>], i: usize) -> NodeFigures {
    let mut f = NodeFigures { index: i, ..NodeFigures::default() };
    let (Some(first), Some(last)) = (first, last) else { return f };
    let dt = last.at_s - first.at_s;
    if dt > 0.0 {
        if let (Some(a), Some(b)) = (first.counters, last.counters) {
            let d = b.since(&a);
            let control = d.control_plane();
            f.control_in_bps = Some(control.in_bytes as f64 / dt);
            f.control_out_bps = Some(control.out_bytes as f64 / dt);
            f.control_pps = Some((control.in_packets + control.out_packets) as f64 / dt);
            for (name, flow) in [("api", d.api), ("p2p", d.p2p), ("media", d.media), ("other", d.other)] {
                f.classes_bps.insert(name.into(), (flow.in_bytes + flow.out_bytes) as f64 / dt);
            }
        }
        if let (Some(a), Some(b)) = (first.proc, last.proc) {
            f.cpu_s_per_s = Some((b.cpu_s - a.cpu_s) / dt);
        }
        if first.counters.is_some() && last.counters.is_some() {
            let bytes: u64 = last
                .tcp
                .iter()
                .map(|(key, (sent, received))| {
                    let (sent0, received0) = first.tcp.get(key).copied().unwrap_or((0, 0));
                    sent.saturating_sub(sent0) + received.saturating_sub(received0)
                })
                .sum();
            f.tcp_payload_bps = Some(bytes as f64 / dt);
        }
    }
    let column =
        |get: &dyn Fn(&NodeSample) -> Option<usize>| rounds.iter().filter_map(|r| r.get(i).and_then(get)).max();
    f.connections_end = last.connections;
    f.connections_max = column(&|s| s.connections);
    f.peers_tcp_max = column(&|s| s.peers_tcp);
    f.peers_api_max = column(&|s| s.peers_api);
    f.rss_mib = last.proc.map(|p| p.rss_kib as f64 / MIB);
    f.pss_mib = last.proc.and_then(|p| p.pss_kib).map(|k| k as f64 / MIB);
    f
}

/// Sum over the series that `pick` selects, per second, between two snapshots.
fn rate_of(
    start: Option<&Option<MetricsSnapshot>>,
    end: Option<&Option<MetricsSnapshot>>,
    pick: impl Fn(&str) -> bool,
) -> Option<f64> {
    let (Some(Some(a)), Some(Some(b))) = (start, end) else { return None };
    let dt = b.at_s - a.at_s;
    let total: f64 =
        b.values.iter().filter(|(k, _)| pick(k)).map(|(k, v)| v - a.values.get(k).copied().unwrap_or(0.0)).sum();
    let any = b.values.keys().any(|k| pick(k));
    (any && dt > 0.0).then(|| total / dt)
}

fn protocols(start: &[Option<MetricsSnapshot>], end: &[Option<MetricsSnapshot>]) -> Vec<ProtocolRow> {
    let names: std::collections::BTreeSet<&String> =
        end.iter().flatten().flat_map(|m| m.values.keys()).filter(|k| k.starts_with("mafalda_p2p_")).collect();
    names
        .into_iter()
        .map(|series| ProtocolRow {
            series: series.clone(),
            per_node: Spread::of(start.iter().zip(end).map(|(a, b)| rate_of(Some(a), Some(b), |k| k == series))),
        })
        .collect()
}

fn summarize_finds(finds: &[FindResult]) -> FindSummary {
    let ok: Vec<f64> = finds.iter().filter(|f| f.ok).map(|f| f.latency_ms).collect();
    FindSummary {
        attempted: finds.len(),
        succeeded: ok.len(),
        latency: Stats::of(&ok),
        failures: finds.iter().filter(|f| !f.ok).cloned().collect(),
    }
}

fn series(rounds: &[Vec<NodeSample>]) -> Vec<SeriesPoint> {
    rounds
        .windows(2)
        .map(|pair| {
            let rates = pair[0].iter().zip(&pair[1]).map(|(a, b)| {
                let ((rx0, tx0), (rx1, tx1)) = (a.eth0?, b.eth0?);
                let dt = b.at_s - a.at_s;
                (dt > 0.0).then(|| (rx1.saturating_sub(rx0) + tx1.saturating_sub(tx0)) as f64 / dt)
            });
            SeriesPoint {
                at_s: pair[1].iter().map(|s| s.at_s).fold(0.0, f64::max),
                eth0_bps_median: Spread::of(rates).median,
                connections_median: Spread::of(pair[1].iter().map(|s| s.connections.map(|c| c as f64))).median,
            }
        })
        .collect()
}

fn checks(obs: &ProcessObservations, report: &ProcessReport) -> Vec<Check> {
    let mut checks = Vec::new();
    let ready = obs.ready_s.iter().filter(|r| r.is_some()).count();
    checks.push(Check {
        name: "every node joins (its /readyz answers 200)".into(),
        passed: ready == obs.nodes,
        detail: format!("{ready} of {} nodes, all within {:.1} s of the first start", obs.nodes, obs.ready_all_s),
    });
    let bound = obs.peers_at_most as f64;
    let worst_tcp = report.peers_tcp_max.max;
    let worst_api = report.peers_api_max.max;
    let read = report.peers_tcp_max.count == obs.nodes && report.peers_api_max.count == obs.nodes;
    checks.push(Check {
        name: format!("no node has more than {} peers", obs.peers_at_most),
        passed: read && worst_tcp <= bound && worst_api <= bound,
        detail: format!(
            "most peers of any node in any sample: {worst_tcp} by the kernel's TCP table, {worst_api} by /v1/status \
             (read at {} and {} of {} nodes)",
            report.peers_tcp_max.count, report.peers_api_max.count, obs.nodes
        ),
    });
    if report.finds.attempted > 0 {
        checks.push(Check {
            name: "every stream is found from every other node".into(),
            passed: report.finds.succeeded == report.finds.attempted,
            detail: format!("{} of {} finds succeeded", report.finds.succeeded, report.finds.attempted),
        });
    }
    if let Some(m) = &report.monitor {
        checks.push(Check {
            name: "watching from one node shows every node, live".into(),
            passed: m.failures == 0 && m.nodes_live == obs.nodes,
            detail: format!(
                "{} of {} nodes live in the last answer; {} failed requests",
                m.nodes_live, obs.nodes, m.failures
            ),
        });
    }
    checks.push(Check {
        name: "no node process exits during the run".into(),
        passed: obs.exited.is_empty(),
        detail: if obs.exited.is_empty() {
            "all running at the end".into()
        } else {
            obs.exited.iter().map(|(i, s)| format!("node {i}: {s}")).collect::<Vec<_>>().join("; ")
        },
    });
    checks
}

/// Writes `report.json` and `summary.md` into `dir`.
pub fn write(report: &ProcessReport, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    std::fs::write(dir.join("summary.md"), markdown(report))
}

fn row(out: &mut String, what: &str, s: &Spread, unit: &str, digits: usize) {
    let _ = writeln!(
        out,
        "| {what} | {:.digits$} {unit} | {:.digits$} {unit} | {:.digits$} {unit} | {} |",
        s.median, s.p90, s.max, s.count
    );
}

/// The report for people.
pub fn markdown(r: &ProcessReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Process lab report: {}\n", r.scenario);
    let args = if r.node_args.is_empty() { "none".to_owned() } else { format!("`{}`", r.node_args.join(" ")) };
    let _ = writeln!(
        out,
        "{} `mafalda-node` processes, each in its own network namespace on a bridge (extra flags: {args}); \
         code {}; lab made in {:.1} s, every node ready {:.1} s after the first started. Window: {:.0} s, {} samples. \
         Machine: {} CPUs, load average {:.2} → {:.2} over the window ({:.2} / {:.2} / {:.2} at its end); \
         the runner itself used {:.2} CPU s/s.\n",
        r.nodes,
        r.code.as_deref().map_or("unknown".into(), |c| format!("`{c}`")),
        r.lab_setup_s,
        r.ready_all_s,
        r.window_s,
        r.samples,
        r.cpus,
        r.load_average.0,
        r.load_average.1,
        r.load_average_end.0,
        r.load_average_end.1,
        r.load_average_end.2,
        r.runner_cpu_s_per_s
    );
    let _ = writeln!(out, "**Result: {}**\n", if r.passed { "PASS" } else { "FAIL" });
    let _ = writeln!(out, "| check | result | figures |\n|---|---|---|");
    for c in &r.checks {
        let _ = writeln!(out, "| {} | {} | {} |", c.name, if c.passed { "pass" } else { "FAIL" }, c.detail);
    }
    let _ = writeln!(out, "\n## Cost per node over the window\n");
    let _ = writeln!(out, "| per node | median | p90 | max | nodes |\n|---|---|---|---|---|");
    row(&mut out, "control plane, in + out (kernel)", &r.control_bps, "B/s", 0);
    row(&mut out, "control plane, in", &r.control_in_bps, "B/s", 0);
    row(&mut out, "control plane, out", &r.control_out_bps, "B/s", 0);
    row(&mut out, "control plane packets, in + out", &r.control_pps, "pkt/s", 1);
    row(&mut out, "libp2p TCP payload, in + out (ss)", &r.tcp_payload_bps, "B/s", 0);
    row(&mut out, "libp2p's own counters, in + out (/metrics)", &r.libp2p_bps, "B/s", 0);
    row(&mut out, "libp2p connections (kernel TCP table, at the end)", &r.connections, "", 0);
    row(&mut out, "peers (kernel TCP table, most in any sample)", &r.peers_tcp_max, "", 0);
    row(&mut out, "peers (/v1/status, most in any sample)", &r.peers_api_max, "", 0);
    row(&mut out, "CPU", &r.cpu_s_per_s, "s/s", 4);
    row(&mut out, "RSS (at the end)", &r.rss_mib, "MiB", 1);
    row(&mut out, "PSS (at the end)", &r.pss_mib, "MiB", 1);
    if let Some(mib) = r.machine_mib_per_node {
        let _ = writeln!(out, "\nThe machine's available memory dropped by {mib:.1} MiB per node (lab and processes).");
    }
    let _ = writeln!(out, "\nBytes by class (the control plane is `p2p + other`):\n");
    let _ = writeln!(out, "| class, in + out | median | p90 | max | nodes |\n|---|---|---|---|---|");
    for (class, s) in &r.classes_bps {
        row(&mut out, &format!("`{class}`"), s, "B/s", 0);
    }
    if r.protocols.is_empty() {
        let _ = writeln!(out, "\nThe nodes export no per-protocol counters (`mafalda_p2p_*_total`).");
    } else {
        let _ = writeln!(out, "\nThe nodes' own per-protocol counters (rate per node):\n");
        let _ = writeln!(out, "| series | median | p90 | max | nodes |\n|---|---|---|---|---|");
        for p in &r.protocols {
            row(&mut out, &format!("`{}`", p.series), &p.per_node, "/s", 1);
        }
    }
    if r.finds.attempted > 0 {
        let l = &r.finds.latency;
        let _ = writeln!(
            out,
            "\n## Discovery\n\n{} of {} finds succeeded; latency (HTTP request to answer at the finding node) \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms.",
            r.finds.succeeded, r.finds.attempted, l.p50_ms, l.p99_ms, l.max_ms
        );
        if let Some(inside) = &r.inside {
            let histogram = |h: &Option<super::inside::SummedHistogram>| {
                h.as_ref().map_or("none recorded".to_owned(), |h| {
                    format!("{:.0}, p50 ≤ {:.1} ms, p99 ≤ {:.1} ms", h.count, h.p50_at_most_ms, h.p99_at_most_ms)
                })
            };
            let _ = writeln!(
                out,
                "\nInside the nodes ({} read after the finds; quantiles are bucket bounds): finds {}; \
                 `stream.describe` calls made {} ({:.0} answered, {:.0} failed).",
                inside.nodes_read,
                histogram(&inside.finds),
                histogram(&inside.describes),
                inside.describes_ok,
                inside.describes_failed
            );
        }
        let cost = &r.finds_cost;
        let _ = writeln!(
            out,
            "\nThe node processes used {:.2} CPU s in the {:.1} s the publications and finds took ({:.0}% of the \
             machine's {} CPUs; {:.2} s at the window's idle rate): {:.1} ms of CPU per find above idle, over \
             every process it touched.",
            cost.cpu_s,
            cost.wall_s,
            100.0 * cost.cpu_s / (cost.wall_s * r.cpus as f64).max(f64::EPSILON),
            r.cpus,
            idle_cpu_s(r),
            r.find_cpu_ms.unwrap_or(0.0)
        );
        for f in r.finds.failures.iter().take(20) {
            let _ = writeln!(out, "- {} from node {}: {}", f.stream, f.from, f.error.as_deref().unwrap_or("?"));
        }
    }
    if let Some(m) = &r.monitor {
        let _ = writeln!(
            out,
            "\n## Watching the swarm\n\n`GET /v1/swarm` at node 0, once a second ({} requests, {} failed): the first \
             (crawl, nothing cached) {:.0} ms; then p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms. The last answer showed {} \
             nodes ({} live); the largest was {} bytes. ROPE bytes sent by all nodes: {:.0} B/s with nobody watching, \
             {:.0} B/s while watched.",
            m.requests,
            m.failures,
            m.first_ms,
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            m.nodes_shown,
            m.nodes_live,
            m.largest_bytes,
            m.rope_bps_idle,
            m.rope_bps_watched
        );
    }
    let _ = writeln!(out, "\n## Per node\n");
    let _ = writeln!(
        out,
        "| node | control B/s in | out | connections | peers (tcp / api) | CPU s/s | RSS MiB | ready s |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let opt = |v: Option<f64>, d: usize| v.map_or("-".into(), |v| format!("{v:.d$}"));
    let opt_n = |v: Option<usize>| v.map_or("-".into(), |v| v.to_string());
    for f in &r.node_figures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            f.index,
            opt(f.control_in_bps, 0),
            opt(f.control_out_bps, 0),
            opt_n(f.connections_end),
            opt_n(f.peers_tcp_max),
            opt_n(f.peers_api_max),
            opt(f.cpu_s_per_s, 4),
            opt(f.rss_mib, 1),
            opt(f.ready_s, 1)
        );
    }
    out
}
