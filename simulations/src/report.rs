//! Turns a run's [`Observations`] into figures (find latency, time to first
//! packet, hops, pipes per stream, per-node load and control-plane traffic,
//! recovery after churn, delivery) and pass/fail checks on behaviour, and
//! writes them as JSON and Markdown.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::runner::{ConsumerRecord, Observations};

/// A recovery gap longer than this counts as "not recovered".
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// Packets sent this shortly before a consumer stopped listening are not expected.
const IN_FLIGHT: Duration = Duration::from_millis(300);
/// Delivery below this (outside recovery windows) fails the run.
pub const DELIVERY_THRESHOLD: f64 = 0.99;

/// Summary of a set of durations, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Stats {
    /// Statistics of `values` (milliseconds).
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Self {
            count: sorted.len(),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: sorted[sorted.len() - 1],
            mean_ms: sorted.iter().sum::<f64>() / sorted.len() as f64,
        }
    }
}

/// One consumer in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerReport {
    /// Consumer number.
    pub index: usize,
    /// Stream id.
    pub stream: String,
    /// Entry node.
    pub entry: usize,
    /// Arrival, seconds after the streams started.
    pub arrived_s: f64,
    /// Find latency, ms (none if it failed).
    pub find_ms: Option<f64>,
    /// Why the find or the consume failed.
    pub error: Option<String>,
    /// Node indices from the origin to the entry node.
    pub path: Vec<usize>,
    /// Consume call to first packet, ms.
    pub first_packet_ms: Option<f64>,
    /// Packets expected from its first packet on.
    pub expected: usize,
    /// Of those, packets received.
    pub received: usize,
    /// Longest silence after a churn event on its path, ms.
    pub recovery_ms: Option<f64>,
    /// Packets sent during that silence (not counted against delivery).
    pub lost_in_recovery: usize,
}

/// One node in the report.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// Node index.
    pub index: usize,
    /// Peer id.
    pub peer: String,
    /// Bootstrap parent.
    pub bootstrap: Option<usize>,
    /// Running at the end.
    pub alive: bool,
    /// Consumers served (egresses) at the end.
    pub consumers: usize,
    /// Streams held at the end.
    pub streams_held: usize,
    /// Of those, relayed.
    pub relays: usize,
    /// Mean mediasoup worker CPU at the end, percent.
    pub cpu_percent: f64,
    /// libp2p bytes per second over the run.
    pub control_bytes_per_s: f64,
    /// Most mediasoup workers at once.
    pub workers_peak: usize,
    /// Workers closed after their idle grace.
    pub workers_closed: usize,
    /// Workers at the end.
    pub workers_end: usize,
}

/// A pipe between two nodes at the end of the run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PipeEdge {
    /// Upstream node.
    pub from: usize,
    /// Downstream node.
    pub to: usize,
    /// Stream index.
    pub stream: usize,
}

/// A churn event in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    /// Node index.
    pub node: usize,
    /// Killed at, seconds.
    pub killed_at_s: f64,
    /// Back at, seconds.
    pub restarted_at_s: Option<f64>,
    /// Consumers whose path went through it.
    pub affected: Vec<usize>,
}

/// Delivery over all consumers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivery {
    /// Packets expected.
    pub expected: usize,
    /// Packets received.
    pub received: usize,
    /// received / expected.
    pub ratio: f64,
    /// The same, not counting packets sent while a consumer's path was healing.
    pub ratio_outside_recovery: f64,
}

/// A pass/fail check on behaviour.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The figures behind it.
    pub detail: String,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Nodes.
    pub nodes: usize,
    /// Topology.
    pub topology: String,
    /// Whether media flowed.
    pub media: bool,
    /// Streams.
    pub streams: Vec<String>,
    /// Seconds to start all nodes and settle.
    pub startup_s: f64,
    /// Seconds of media.
    pub media_s: f64,
    /// Seconds of media the scenario asked for.
    pub planned_s: f64,
    /// Find latency.
    pub find_latency: Stats,
    /// Consume to first packet.
    pub time_to_first_packet: Stats,
    /// Hops from the origin → consumers.
    pub hops: BTreeMap<usize, usize>,
    /// Relays (pipes into a node) per stream at the end.
    pub pipes_per_stream: BTreeMap<String, usize>,
    /// libp2p bytes per second per node.
    pub control_bytes_per_node_per_s: Stats,
    /// Recovery after churn, per affected consumer.
    pub recovery: Stats,
    /// Delivery.
    pub delivery: Delivery,
    /// Churn events.
    pub churn: Vec<ChurnReport>,
    /// Nodes.
    pub node_reports: Vec<NodeReport>,
    /// Consumers.
    pub consumers: Vec<ConsumerReport>,
    /// Pipes at the end.
    pub pipes: Vec<PipeEdge>,
    /// Behaviour checks.
    pub checks: Vec<Check>,
    /// Whether every check passed.
    pub passed: bool,
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Builds the report of a run.
pub fn build(obs: &Observations) -> Report {
    let scenario = &obs.scenario;
    let consumers: Vec<ConsumerReport> = obs.consumers.iter().map(|c| consumer_report(obs, c)).collect();
    let finds: Vec<f64> = consumers.iter().filter_map(|c| c.find_ms).collect();
    let first_packets: Vec<f64> = consumers.iter().filter_map(|c| c.first_packet_ms).collect();
    let mut hops = BTreeMap::new();
    for consumer in consumers.iter().filter(|c| !c.path.is_empty()) {
        *hops.entry(consumer.path.len() - 1).or_insert(0) += 1;
    }
    let mut pipes = Vec::new();
    for node in &obs.nodes {
        for (stream, upstream) in &node.held {
            let index = scenario.streams.iter().position(|s| s.id == *stream);
            if let (Some(stream), Some(from)) = (index, upstream) {
                pipes.push(PipeEdge { from: *from, to: node.index, stream });
            }
        }
    }
    pipes.sort();
    let pipes_per_stream = scenario
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), pipes.iter().filter(|p| p.stream == i).count()))
        .collect();
    let run_s = (obs.startup + obs.media_time).as_secs_f64().max(1e-3);
    let node_reports: Vec<NodeReport> = obs
        .nodes
        .iter()
        .map(|n| NodeReport {
            index: n.index,
            peer: n.peer.clone(),
            bootstrap: n.bootstrap,
            alive: n.alive,
            consumers: n.egresses,
            streams_held: n.held.len(),
            relays: n.held.iter().filter(|(_, up)| up.is_some()).count(),
            cpu_percent: n.cpu_percent,
            control_bytes_per_s: n.control_bytes as f64 / run_s,
            workers_peak: n.workers_peak,
            workers_closed: n.workers_closed,
            workers_end: n.workers_end,
        })
        .collect();
    let control: Vec<f64> = node_reports.iter().filter(|n| n.alive).map(|n| n.control_bytes_per_s).collect();
    let recoveries: Vec<f64> = consumers.iter().filter_map(|c| c.recovery_ms).collect();
    let expected: usize = consumers.iter().map(|c| c.expected).sum();
    let received: usize = consumers.iter().map(|c| c.received).sum();
    let lost_in_recovery: usize = consumers.iter().map(|c| c.lost_in_recovery).sum();
    let delivery = Delivery {
        expected,
        received,
        ratio: ratio(received, expected),
        ratio_outside_recovery: ratio(received, expected.saturating_sub(lost_in_recovery)),
    };
    let churn: Vec<ChurnReport> = obs
        .churn
        .iter()
        .map(|c| ChurnReport {
            node: c.node,
            killed_at_s: c.killed_at.as_secs_f64(),
            restarted_at_s: c.restarted_at.map(|d| d.as_secs_f64()),
            affected: c.affected.clone(),
        })
        .collect();
    let checks = checks(obs, &consumers, &delivery, &churn);
    Report {
        scenario: scenario.name.clone(),
        nodes: scenario.nodes,
        topology: format!("{:?}", scenario.topology).to_lowercase(),
        media: scenario.media,
        streams: scenario.streams.iter().map(|s| s.id.clone()).collect(),
        startup_s: obs.startup.as_secs_f64(),
        media_s: obs.media_time.as_secs_f64(),
        planned_s: scenario.duration_s,
        find_latency: Stats::of(&finds),
        time_to_first_packet: Stats::of(&first_packets),
        hops,
        pipes_per_stream,
        control_bytes_per_node_per_s: Stats::of(&control),
        recovery: Stats::of(&recoveries),
        delivery,
        passed: checks.iter().all(|c| c.passed),
        checks,
        churn,
        node_reports,
        consumers,
        pipes,
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 1.0 } else { part as f64 / whole as f64 }
}

fn consumer_report(obs: &Observations, consumer: &ConsumerRecord) -> ConsumerReport {
    let sent = &obs.sent[consumer.stream];
    let error = match (&consumer.find, &consumer.path) {
        (Err(error), _) => Some(format!("find: {error}")),
        (Ok(_), Err(error)) if obs.scenario.media => Some(format!("consume: {error}")),
        _ if obs.scenario.media && consumer.first_packet.is_none() => Some("no packet arrived".into()),
        _ => None,
    };
    // A consumer at a node that was killed ends with it: count until then.
    let ended = obs.churn.iter().filter(|c| c.node == consumer.entry).map(|c| c.killed_at).min();
    // Packets still in flight when it stopped listening are not expected either
    // (on an overloaded machine the sender runs late and ends after that).
    let until = consumer.listened_until.saturating_sub(IN_FLIGHT);
    let until = ended.map_or(until, |killed_at| killed_at.min(until));
    let sent: &[Duration] = &sent[..sent.iter().take_while(|at| **at < until).count()];
    let received_indices: BTreeSet<u32> = consumer.arrivals.iter().map(|(index, _)| *index).collect();
    let (expected, received) = match received_indices.first() {
        Some(&first) => {
            let expected = sent.len().saturating_sub(first as usize);
            (expected, received_indices.iter().filter(|i| (**i as usize) < sent.len()).count())
        }
        // A consumer that got nothing expected everything sent after it arrived.
        None if obs.scenario.media => (sent.iter().filter(|t| **t >= consumer.arrived).count(), 0),
        None => (0, 0),
    };
    // Longest silence around a churn event on the consumer's path, from the
    // second before the kill to the end of listening (a trailing silence counts:
    // a consumer whose packets stopped for good never recovered).
    let mut recovery_ms = None;
    let mut lost_in_recovery = 0;
    for churn in obs.churn.iter().filter(|c| c.affected.contains(&consumer.index)) {
        let from = churn.killed_at.saturating_sub(Duration::from_secs(1));
        let mut times: Vec<Duration> = consumer.arrivals.iter().map(|(_, at)| *at).filter(|at| *at >= from).collect();
        times.insert(0, from.max(consumer.arrivals.first().map_or(from, |(_, at)| *at)));
        times.push(consumer.listened_until);
        let Some((before, after)) = times.windows(2).map(|w| (w[0], w[1])).max_by_key(|(a, b)| *b - *a) else {
            continue;
        };
        recovery_ms = Some(recovery_ms.unwrap_or(0.0_f64).max(ms(after - before)));
        let window = before..after;
        lost_in_recovery += sent
            .iter()
            .enumerate()
            .filter(|(index, at)| window.contains(*at) && !received_indices.contains(&(*index as u32)))
            .count();
    }
    ConsumerReport {
        index: consumer.index,
        stream: obs.scenario.streams[consumer.stream].id.clone(),
        entry: consumer.entry,
        arrived_s: consumer.arrived.as_secs_f64(),
        find_ms: consumer.find.as_ref().ok().map(|d| ms(*d)),
        error,
        path: consumer.path.clone().unwrap_or_default(),
        first_packet_ms: consumer.first_packet.map(ms),
        expected,
        received,
        recovery_ms,
        lost_in_recovery,
    }
}

fn checks(obs: &Observations, consumers: &[ConsumerReport], delivery: &Delivery, churn: &[ChurnReport]) -> Vec<Check> {
    let mut checks = Vec::new();
    let found = consumers.iter().filter(|c| c.find_ms.is_some()).count();
    checks.push(Check {
        name: "every stream is found from every entry node".into(),
        passed: found == consumers.len() && !consumers.is_empty(),
        detail: format!("{found} of {} finds succeeded", consumers.len()),
    });
    if obs.scenario.media {
        let served = consumers.iter().filter(|c| c.first_packet_ms.is_some()).count();
        checks.push(Check {
            name: "every consumer receives media".into(),
            passed: served == consumers.len(),
            detail: format!("{served} of {} consumers got packets", consumers.len()),
        });
        checks.push(Check {
            name: format!("at least {:.0} % of packets delivered outside recovery windows", DELIVERY_THRESHOLD * 100.0),
            passed: delivery.ratio_outside_recovery >= DELIVERY_THRESHOLD,
            detail: format!(
                "{:.2} % ({} of {} expected; {:.2} % counting recovery windows)",
                delivery.ratio_outside_recovery * 100.0,
                delivery.received,
                delivery.expected,
                delivery.ratio * 100.0
            ),
        });
        let affected: Vec<&ConsumerReport> = consumers.iter().filter(|c| c.recovery_ms.is_some()).collect();
        let recovered = affected.iter().filter(|c| c.recovery_ms.is_some_and(|r| r <= ms(RECOVERY_LIMIT))).count();
        if !churn.is_empty() {
            checks.push(Check {
                name: format!("every consumer behind a killed node recovers within {} s", RECOVERY_LIMIT.as_secs()),
                passed: recovered == affected.len(),
                detail: format!("{recovered} of {} affected consumers recovered", affected.len()),
            });
        }
    }
    let restarts = obs.churn.iter().filter(|c| c.restart_planned);
    let (wanted, back) = restarts.fold((0, 0), |(w, b), c| (w + 1, b + usize::from(c.restarted_at.is_some())));
    if wanted > 0 {
        checks.push(Check {
            name: "every restarted node rejoins".into(),
            passed: wanted == back,
            detail: format!("{back} of {wanted} restarted"),
        });
    }
    checks
}

/// The report as Markdown for people.
pub fn markdown(report: &Report) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(md, "# Simulation report: {}\n", report.scenario);
    let _ = writeln!(
        md,
        "{} nodes ({} topology), streams {}, media {}; swarm up in {:.1} s, {:.1} s of media.\n",
        report.nodes,
        report.topology,
        report.streams.join(", "),
        if report.media { "on" } else { "off (control plane only)" },
        report.startup_s,
        report.media_s
    );
    let _ = writeln!(md, "**Result: {}**\n", if report.passed { "PASS" } else { "FAIL" });
    if report.media_s > report.planned_s * 1.1 {
        let _ = writeln!(
            md,
            "Note: {:.0} s of planned media took {:.0} s: the machine was saturated and timers ran late, so latencies include queueing.\n",
            report.planned_s, report.media_s
        );
    }
    let _ = writeln!(md, "| check | result | figures |\n|---|---|---|");
    for check in &report.checks {
        let _ = writeln!(md, "| {} | {} | {} |", check.name, if check.passed { "pass" } else { "FAIL" }, check.detail);
    }
    let _ = writeln!(md, "\n| measure | n | p50 | p99 | max |\n|---|---|---|---|---|");
    for (name, stats, unit) in [
        ("find latency", &report.find_latency, "ms"),
        ("time to first packet", &report.time_to_first_packet, "ms"),
        ("recovery after churn", &report.recovery, "ms"),
        ("control-plane traffic per node", &report.control_bytes_per_node_per_s, "B/s"),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {:.1} {unit} | {:.1} {unit} | {:.1} {unit} |",
            stats.count, stats.p50_ms, stats.p99_ms, stats.max_ms
        );
    }
    let hops: Vec<String> = report.hops.iter().map(|(h, n)| format!("{h} hop(s): {n}")).collect();
    let _ = writeln!(
        md,
        "\nHops from the origin to consumers: {}.",
        if hops.is_empty() { "-".into() } else { hops.join(", ") }
    );
    let pipes: Vec<String> = report.pipes_per_stream.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    let _ = writeln!(md, "Pipes (relays) per stream at the end: {}.", pipes.join(", "));
    let _ = writeln!(
        md,
        "Delivery: {} of {} packets ({:.2} %; {:.2} % outside recovery windows).",
        report.delivery.received,
        report.delivery.expected,
        report.delivery.ratio * 100.0,
        report.delivery.ratio_outside_recovery * 100.0
    );
    for churn in &report.churn {
        let _ = writeln!(
            md,
            "Churn: node {} killed at {:.1} s{}; {} consumer(s) were behind it.",
            churn.node,
            churn.killed_at_s,
            churn.restarted_at_s.map_or_else(String::new, |t| format!(", back at {t:.1} s")),
            churn.affected.len()
        );
    }
    let busy: Vec<&NodeReport> = report.node_reports.iter().filter(|n| n.consumers > 0 || n.streams_held > 0).collect();
    if !busy.is_empty() {
        let _ = writeln!(
            md,
            "\n| node | consumers | streams held | relays | worker CPU | workers peak/closed/end | libp2p B/s |\n\
             |---|---|---|---|---|---|---|"
        );
        for n in busy {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.1} % | {}/{}/{} | {:.0} |",
                n.index,
                n.consumers,
                n.streams_held,
                n.relays,
                n.cpu_percent,
                n.workers_peak,
                n.workers_closed,
                n.workers_end,
                n.control_bytes_per_s
            );
        }
    }
    let failed: Vec<&ConsumerReport> = report.consumers.iter().filter(|c| c.error.is_some()).collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\nFailed consumers:");
        for c in failed {
            let _ = writeln!(md, "- #{} at node {}: {}", c.index, c.entry, c.error.as_deref().unwrap_or(""));
        }
    }
    let _ = writeln!(md, "\nPlots: `graph.svg` (bootstrap links and pipes), `latency.svg` (CDFs).");
    md
}
