//! Turns a run's [`Observations`] into figures (find latency, time to first
//! packet, hops, pipes per stream, per-node load and control-plane traffic,
//! recovery after churn, delivery) and pass/fail checks on behaviour, and
//! writes them as JSON and Markdown.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::runner::{ConsumerRecord, Observations, Resources};

/// A recovery gap longer than this counts as "not recovered".
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// Packets sent this shortly before a consumer stopped listening are not expected.
const IN_FLIGHT: Duration = Duration::from_millis(300);
/// Delivery below this (outside recovery windows) fails the run.
pub const DELIVERY_THRESHOLD: f64 = 0.99;
/// A drain's loss window opens this long before the drain starts (packets in
/// flight then must arrive too)...
const DRAIN_LEAD: Duration = Duration::from_millis(500);
/// ... and closes this long after `Node::drain` returned (the old pipes are
/// closed by then: a consumer not moved in time falls silent).
const DRAIN_TAIL: Duration = Duration::from_secs(2);

/// One protocol's part of the control plane, over the nodes running at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProtocolShare {
    /// Label (`kad`, `gossipsub`, `identify`, `ping`, `rope`, `other`).
    pub protocol: String,
    /// Payload bytes in + out per second per node: median.
    pub median_per_node_b_per_s: f64,
    /// Payload bytes in + out per second per node: mean.
    pub mean_per_node_b_per_s: f64,
    /// Its share of all protocols' payload bytes, 0-1.
    pub share: f64,
    /// Streams opened per node (either side), mean over the media phase.
    pub streams_per_node: f64,
}

/// Each protocol's share of the payload bytes the running nodes counted
/// (`NodeRecord::control_by_protocol`) per second of the media phase, `media_s`.
fn protocol_shares(nodes: &[crate::runner::NodeRecord], media_s: f64) -> Vec<ProtocolShare> {
    let running: Vec<_> = nodes.iter().filter(|n| n.alive).collect();
    let total: u64 = running.iter().flat_map(|n| n.control_by_protocol.values()).map(|c| c.bytes).sum();
    let mut labels: Vec<&String> = running.iter().flat_map(|n| n.control_by_protocol.keys()).collect();
    labels.sort();
    labels.dedup();
    labels
        .into_iter()
        .map(|label| {
            let rates: Vec<f64> = running
                .iter()
                .map(|n| n.control_by_protocol.get(label).map_or(0, |c| c.bytes) as f64 / media_s)
                .collect();
            let bytes: u64 = running.iter().filter_map(|n| n.control_by_protocol.get(label)).map(|c| c.bytes).sum();
            let streams: u64 = running.iter().filter_map(|n| n.control_by_protocol.get(label)).map(|c| c.streams).sum();
            let stats = Stats::of(&rates);
            ProtocolShare {
                protocol: label.clone(),
                median_per_node_b_per_s: stats.p50_ms,
                mean_per_node_b_per_s: stats.mean_ms,
                share: if total == 0 { 0.0 } else { bytes as f64 / total as f64 },
                streams_per_node: streams as f64 / running.len().max(1) as f64,
            }
        })
        .collect()
}

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
    /// Its entry node was killed or drained before its first packet arrived
    /// (it could get no media; not counted as a consumer that got none).
    pub ended_with_entry: bool,
    /// Packets sent while a relay on its path drained (see `DRAIN_LEAD`,
    /// `DRAIN_TAIL`), from its first packet on.
    pub drain_expected: usize,
    /// Indices of those that never arrived.
    pub drain_lost: Vec<u32>,
    /// Longest silence while a relay on its path drained, ms.
    pub drain_gap_ms: Option<f64>,
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
    /// libp2p bytes per second during the media phase.
    pub control_bytes_per_s: f64,
    /// libp2p bytes from its start to the media phase (joining).
    pub join_bytes: Option<u64>,
    /// Most mediasoup workers at once.
    pub workers_peak: usize,
    /// Workers closed after their idle grace.
    pub workers_closed: usize,
    /// Workers at the end.
    pub workers_end: usize,
    /// Resources before any consumer arrived (or at its restart).
    pub baseline: Option<Resources>,
    /// Resources after every consumer left and the settle wait.
    pub settled: Option<Resources>,
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
    /// `kill` or `drain`.
    pub kind: String,
    /// Killed (or its drain started) at, seconds.
    pub killed_at_s: f64,
    /// A drain: when `Node::drain` returned, seconds.
    pub drained_at_s: Option<f64>,
    /// A drain: downstream peers moved / not moved.
    pub moved: Option<usize>,
    /// A drain: downstream peers that did not confirm a move.
    pub not_moved: Option<usize>,
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

/// Consumers behind draining relays, over all drains.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainSummary {
    /// Relays drained.
    pub drains: usize,
    /// Consumer-drain pairs: a consumer (at another node, listening) whose
    /// stream came through the relay when its drain started.
    pub affected: usize,
    /// Packets those consumers should have got during the drains.
    pub expected: usize,
    /// Of those, packets that never arrived.
    pub lost: usize,
    /// Longest silence of any of them during a drain, ms.
    pub largest_gap_ms: f64,
    /// Downstream peers moved before their pipe closed.
    pub moved: usize,
    /// Downstream peers that did not confirm a move.
    pub not_moved: usize,
}

/// A node not back at its baseline after every consumer left.
#[derive(Debug, Clone, Serialize)]
pub struct NotBack {
    /// Node index.
    pub node: usize,
    /// Before any consumer arrived.
    pub baseline: Resources,
    /// At the end.
    pub end: Resources,
}

/// Resources after every consumer left, against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct SettleReport {
    /// The relay linger the nodes ran with, seconds.
    pub relay_linger_s: f64,
    /// From the last consumer leaving to every running node being back at
    /// its baseline, seconds (none: not within `settle_s`).
    pub back_after_s: Option<f64>,
    /// From the last consumer leaving to the final snapshot, seconds.
    pub waited_s: f64,
    /// Running nodes compared.
    pub nodes: usize,
    /// Sum over them before any consumer arrived.
    pub baseline_total: Resources,
    /// Sum over them at the end.
    pub end_total: Resources,
    /// Nodes not back at their baseline, with their figures.
    pub not_back: Vec<NotBack>,
    /// Origins that no longer hold their publication (stream ids).
    pub publications_lost: Vec<String>,
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
    /// libp2p bytes per second per node during the media phase.
    pub control_bytes_per_node_per_s: Stats,
    /// libp2p bytes per node from its start to the media phase (joining the
    /// swarm and its routing tables and meshes forming), in bytes.
    pub join_bytes_per_node: Stats,
    /// The control plane by protocol (running nodes).
    pub control_by_protocol: Vec<ProtocolShare>,
    /// Recovery after churn, per affected consumer.
    pub recovery: Stats,
    /// Delivery.
    pub delivery: Delivery,
    /// Churn events.
    pub churn: Vec<ChurnReport>,
    /// Most consumers listening at once.
    pub consumers_peak: usize,
    /// Consumers behind draining relays (scenarios with drains).
    pub drain: Option<DrainSummary>,
    /// Resources after every consumer left (scenarios with `settle_s`).
    pub settle: Option<SettleReport>,
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
    let media_s = obs.media_time.as_secs_f64().max(1e-3);
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
            control_bytes_per_s: n.control_bytes as f64 / media_s,
            join_bytes: n.join_bytes,
            workers_peak: n.workers_peak,
            workers_closed: n.workers_closed,
            workers_end: n.workers_end,
            baseline: n.baseline,
            settled: n.settled,
        })
        .collect();
    let control: Vec<f64> = node_reports.iter().filter(|n| n.alive).map(|n| n.control_bytes_per_s).collect();
    let join: Vec<f64> = node_reports.iter().filter_map(|n| n.join_bytes).map(|b| b as f64).collect();
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
            kind: if c.drain.is_some() { "drain" } else { "kill" }.into(),
            killed_at_s: c.killed_at.as_secs_f64(),
            drained_at_s: c.drain.as_ref().map(|d| d.ended_at.as_secs_f64()),
            moved: c.drain.as_ref().map(|d| d.moved),
            not_moved: c.drain.as_ref().map(|d| d.not_moved),
            restarted_at_s: c.restarted_at.map(|d| d.as_secs_f64()),
            affected: c.affected.clone(),
        })
        .collect();
    let drains: Vec<_> = obs.churn.iter().filter_map(|c| c.drain.as_ref().map(|d| (c, d))).collect();
    let drain = (!drains.is_empty()).then(|| DrainSummary {
        drains: drains.len(),
        affected: drains.iter().map(|(c, _)| c.affected.len()).sum(),
        expected: consumers.iter().map(|c| c.drain_expected).sum(),
        lost: consumers.iter().map(|c| c.drain_lost.len()).sum(),
        largest_gap_ms: consumers.iter().filter_map(|c| c.drain_gap_ms).fold(0.0, f64::max),
        moved: drains.iter().map(|(_, d)| d.moved).sum(),
        not_moved: drains.iter().map(|(_, d)| d.not_moved).sum(),
    });
    let settle = settle_report(obs);
    let mut listening: Vec<(Duration, i32)> = obs
        .consumers
        .iter()
        .filter(|c| c.path.is_ok())
        .flat_map(|c| [(c.arrived, 1), (c.listened_until.max(c.arrived), -1)])
        .collect();
    listening.sort();
    let consumers_peak = listening
        .iter()
        .scan(0_i32, |now, (_, step)| {
            *now += step;
            Some(*now)
        })
        .max()
        .unwrap_or(0)
        .max(0) as usize;
    let checks = checks(obs, &consumers, &delivery, &churn, drain.as_ref(), settle.as_ref());
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
        control_by_protocol: protocol_shares(&obs.nodes, media_s),
        join_bytes_per_node: Stats::of(&join),
        recovery: Stats::of(&recoveries),
        delivery,
        passed: checks.iter().all(|c| c.passed),
        checks,
        churn,
        consumers_peak,
        drain,
        settle,
        node_reports,
        consumers,
        pipes,
    }
}

fn settle_report(obs: &Observations) -> Option<SettleReport> {
    let settle = obs.settle.as_ref()?;
    let compared: Vec<(usize, Resources, Resources)> =
        obs.nodes.iter().filter_map(|n| Some((n.index, n.baseline?, n.settled?))).collect();
    let total = |pick: fn(&(usize, Resources, Resources)) -> Resources| {
        compared.iter().map(pick).fold(Resources::default(), |sum, r| Resources {
            transports: sum.transports + r.transports,
            spare_pipes: sum.spare_pipes + r.spare_pipes,
            consumers: sum.consumers + r.consumers,
            pipes: sum.pipes + r.pipes,
            relayed: sum.relayed + r.relayed,
            published: sum.published + r.published,
            egresses: sum.egresses + r.egresses,
            producers: sum.producers + r.producers,
            routers: sum.routers + r.routers,
        })
    };
    let not_back = compared
        .iter()
        .filter(|(_, baseline, end)| !end.back_to(baseline))
        .map(|(node, baseline, end)| NotBack { node: *node, baseline: *baseline, end: *end })
        .collect();
    let publications_lost = obs
        .scenario
        .streams
        .iter()
        .filter(|s| !obs.nodes[s.at].alive || obs.nodes[s.at].settled.is_none_or(|r| r.published == 0))
        .map(|s| s.id.clone())
        .collect();
    Some(SettleReport {
        relay_linger_s: settle.linger.as_secs_f64(),
        back_after_s: settle.back_after.map(|d| d.as_secs_f64()),
        waited_s: settle.waited.as_secs_f64(),
        nodes: compared.len(),
        baseline_total: total(|c| c.1),
        end_total: total(|c| c.2),
        not_back,
        publications_lost,
    })
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 1.0 } else { part as f64 / whole as f64 }
}

/// The longest gap between packet arrivals (`arrivals`, in the order they
/// came) from `from` (or the first arrival, if later) to `until`, a trailing
/// silence included; `None` when `from` is not before `until`.
fn longest_silence(arrivals: &[Duration], from: Duration, until: Duration) -> Option<(Duration, Duration)> {
    if from >= until {
        return None;
    }
    let mut times = vec![from.max(arrivals.first().copied().unwrap_or(from)).min(until)];
    times.extend(arrivals.iter().copied().filter(|at| (from..until).contains(at)));
    times.push(until);
    times.windows(2).map(|w| (w[0], w[1])).max_by_key(|(a, b)| b.saturating_sub(*a))
}

fn consumer_report(obs: &Observations, consumer: &ConsumerRecord) -> ConsumerReport {
    let sent = &obs.sent[consumer.stream];
    let error = match (&consumer.find, &consumer.path) {
        (Err(error), _) => Some(format!("find: {error}")),
        (Ok(_), Err(error)) if obs.scenario.media => Some(format!("consume: {error}")),
        _ if obs.scenario.media && consumer.first_packet.is_none() => Some("no packet arrived".into()),
        _ => None,
    };
    // A consumer at a node that was killed (or drained) after it arrived ends
    // with it: count until then.
    let ended = obs
        .churn
        .iter()
        .filter(|c| c.node == consumer.entry && c.killed_at >= consumer.arrived)
        .map(|c| c.killed_at)
        .min();
    let ended_with_entry = ended.is_some_and(|ended| consumer.arrivals.first().is_none_or(|(_, first)| *first > ended));
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
    // It listened until its own node was killed, if that came first: the
    // silence after that is its node's death, not a recovery that failed.
    let listened = ended.map_or(consumer.listened_until, |killed_at| killed_at.min(consumer.listened_until));
    let arrival_times: Vec<Duration> = consumer.arrivals.iter().map(|(_, at)| *at).collect();
    let mut recovery_ms = None;
    let mut lost_in_recovery = 0;
    for churn in obs.churn.iter().filter(|c| c.drain.is_none() && c.affected.contains(&consumer.index)) {
        let from = churn.killed_at.saturating_sub(Duration::from_secs(1));
        let Some((before, after)) = longest_silence(&arrival_times, from, listened) else { continue };
        recovery_ms = Some(recovery_ms.unwrap_or(0.0_f64).max(ms(after - before)));
        let window = before..after;
        lost_in_recovery += sent
            .iter()
            .enumerate()
            .filter(|(index, at)| window.contains(*at) && !received_indices.contains(&(*index as u32)))
            .count();
    }
    // Drains of a relay on its path: every packet sent meanwhile must arrive
    // (by payload index, whatever the SSRC after the move).
    let mut drain_expected = 0;
    let mut drain_lost = Vec::new();
    let mut drain_gap_ms: Option<f64> = None;
    for churn in obs.churn.iter().filter(|c| c.affected.contains(&consumer.index)) {
        let (Some(drain), Some(&first)) = (&churn.drain, received_indices.first()) else { continue };
        let from = churn.killed_at.saturating_sub(DRAIN_LEAD);
        let to = drain.ended_at + DRAIN_TAIL;
        for (index, _) in
            sent.iter().enumerate().filter(|(index, at)| (from..to).contains(*at) && *index >= first as usize)
        {
            drain_expected += 1;
            if !received_indices.contains(&(index as u32)) {
                drain_lost.push(index as u32);
            }
        }
        let last = to.min(consumer.listened_until);
        let before = consumer.arrivals.iter().map(|(_, at)| *at).rfind(|at| *at < from).unwrap_or(from);
        let mut times = vec![before];
        times.extend(consumer.arrivals.iter().map(|(_, at)| *at).filter(|at| (from..last).contains(at)));
        times.push(last);
        let gap = times.windows(2).map(|w| w[1].saturating_sub(w[0])).max().unwrap_or_default();
        drain_gap_ms = Some(drain_gap_ms.unwrap_or(0.0).max(ms(gap)));
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
        ended_with_entry,
        drain_expected,
        drain_lost,
        drain_gap_ms,
    }
}

fn checks(
    obs: &Observations,
    consumers: &[ConsumerReport],
    delivery: &Delivery,
    churn: &[ChurnReport],
    drain: Option<&DrainSummary>,
    settle: Option<&SettleReport>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let found = consumers.iter().filter(|c| c.find_ms.is_some()).count();
    checks.push(Check {
        name: "every stream is found from every entry node".into(),
        passed: found == consumers.len() && !consumers.is_empty(),
        detail: format!("{found} of {} finds succeeded", consumers.len()),
    });
    if obs.scenario.media {
        let served = consumers.iter().filter(|c| c.first_packet_ms.is_some()).count();
        let cut = consumers.iter().filter(|c| c.first_packet_ms.is_none() && c.ended_with_entry).count();
        let should = consumers.len() - cut;
        checks.push(Check {
            name: "every consumer receives media".into(),
            passed: served == should,
            detail: if cut == 0 {
                format!("{served} of {should} consumers got packets")
            } else {
                format!(
                    "{served} of {should} consumers got packets ({cut} more arrived at a node killed or drained before their first packet)"
                )
            },
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
        if churn.iter().any(|c| c.kind == "kill") {
            checks.push(Check {
                name: format!("every consumer behind a killed node recovers within {} s", RECOVERY_LIMIT.as_secs()),
                passed: recovered == affected.len(),
                detail: format!("{recovered} of {} affected consumers recovered", affected.len()),
            });
        }
    }
    if let Some(drain) = drain.filter(|_| obs.scenario.media) {
        checks.push(Check {
            name: "consumers behind a draining relay lose no packet".into(),
            passed: drain.affected > 0 && drain.lost == 0,
            detail: format!(
                "{} of {} packets lost by {} consumer(s) behind {} drained relay(s); largest gap {:.0} ms{}",
                drain.lost,
                drain.expected,
                drain.affected,
                drain.drains,
                drain.largest_gap_ms,
                if drain.affected == 0 { " (no consumer was behind a drained relay: nothing tested)" } else { "" }
            ),
        });
        checks.push(Check {
            name: "a drained relay moves every downstream peer before closing its pipe".into(),
            passed: drain.not_moved == 0,
            detail: format!("{} moved, {} did not", drain.moved, drain.not_moved),
        });
    }
    if let Some(settle) = settle {
        let not_back: Vec<String> = settle.not_back.iter().map(|n| format!("node {}", n.node)).collect();
        checks.push(Check {
            name: "every running node is back at its baseline once every consumer left".into(),
            passed: settle.not_back.is_empty() && settle.publications_lost.is_empty() && settle.back_after_s.is_some(),
            detail: format!(
                "{} of {} nodes back (transports {} → {}, consumers {} → {}, pipes {} → {}, relayed {} → {}, publications {} → {}) {}{}",
                settle.nodes - settle.not_back.len(),
                settle.nodes,
                settle.baseline_total.transports,
                settle.end_total.transports,
                settle.baseline_total.consumers,
                settle.end_total.consumers,
                settle.baseline_total.pipes,
                settle.end_total.pipes,
                settle.baseline_total.relayed,
                settle.end_total.relayed,
                settle.baseline_total.published,
                settle.end_total.published,
                match settle.back_after_s {
                    Some(after) => format!("{after:.1} s after the last consumer left (linger {:.0} s)", settle.relay_linger_s),
                    None => format!("not within {:.1} s of the last consumer leaving", settle.waited_s),
                },
                if not_back.is_empty() && settle.publications_lost.is_empty() {
                    String::new()
                } else {
                    format!("; not back: {}; publications lost: {:?}", not_back.join(", "), settle.publications_lost)
                }
            ),
        });
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
        ("control-plane traffic per node, media phase", &report.control_bytes_per_node_per_s, "B/s"),
        ("control-plane bytes per node to join", &report.join_bytes_per_node, "B"),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {:.1} {unit} | {:.1} {unit} | {:.1} {unit} |",
            stats.count, stats.p50_ms, stats.p99_ms, stats.max_ms
        );
    }
    if !report.control_by_protocol.is_empty() {
        let shares: Vec<String> = report
            .control_by_protocol
            .iter()
            .map(|p| {
                format!(
                    "{} {:.0} B/s (mean {:.0}; {:.1} %; {:.0} streams per node)",
                    p.protocol,
                    p.median_per_node_b_per_s,
                    p.mean_per_node_b_per_s,
                    p.share * 100.0,
                    p.streams_per_node
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "\nControl plane by protocol in the media phase (payload bytes in + out per node, median over running nodes; \
             framing not included): {}.",
            shares.join(", ")
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
    let _ = writeln!(md, "Most consumers listening at once: {}.", report.consumers_peak);
    for churn in &report.churn {
        let what = match (churn.drained_at_s, churn.moved, churn.not_moved) {
            (Some(done), Some(moved), Some(not_moved)) => format!(
                "drained from {:.2} s to {done:.2} s ({moved} downstream peer(s) moved, {not_moved} not), then shut down",
                churn.killed_at_s
            ),
            _ => format!("killed at {:.1} s", churn.killed_at_s),
        };
        let _ = writeln!(
            md,
            "Churn: node {} {what}{}; {} consumer(s) were behind it.",
            churn.node,
            churn.restarted_at_s.map_or_else(String::new, |t| format!(", back at {t:.1} s")),
            churn.affected.len()
        );
    }
    if let Some(drain) = &report.drain {
        let _ = writeln!(
            md,
            "Drains: {} consumer(s) behind {} drained relay(s) got {} of {} packets sent meanwhile ({} lost); largest gap {:.0} ms.",
            drain.affected,
            drain.drains,
            drain.expected - drain.lost,
            drain.expected,
            drain.lost,
            drain.largest_gap_ms
        );
        for c in report.consumers.iter().filter(|c| !c.drain_lost.is_empty()) {
            let _ = writeln!(
                md,
                "- consumer #{} at node {} ({}): lost packets {:?}, gap {:.0} ms",
                c.index,
                c.entry,
                c.stream,
                c.drain_lost,
                c.drain_gap_ms.unwrap_or(0.0)
            );
        }
    }
    if let Some(settle) = &report.settle {
        let _ = writeln!(
            md,
            "\nAfter every consumer left ({} running nodes, relay linger {:.0} s): {}.\n",
            settle.nodes,
            settle.relay_linger_s,
            match settle.back_after_s {
                Some(after) => format!("every one back at its baseline {after:.1} s after the last consumer left"),
                None => format!("not all back at their baseline {:.1} s after the last consumer left", settle.waited_s),
            }
        );
        let _ = writeln!(
            md,
            "| | transports | spare pipe transports | consumers | pipes | relayed streams | publications | egresses | producers | routers |\n\
             |---|---|---|---|---|---|---|---|---|---|"
        );
        let row = |name: &str, r: &Resources| {
            format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.transports,
                r.spare_pipes,
                r.consumers,
                r.pipes,
                r.relayed,
                r.published,
                r.egresses,
                r.producers,
                r.routers
            )
        };
        let _ = writeln!(md, "{}", row("baseline, all nodes", &settle.baseline_total));
        let _ = writeln!(md, "{}", row("end, all nodes", &settle.end_total));
        for n in &settle.not_back {
            let _ = writeln!(md, "{}", row(&format!("node {} baseline", n.node), &n.baseline));
            let _ = writeln!(md, "{}", row(&format!("node {} end", n.node), &n.end));
        }
        if !settle.publications_lost.is_empty() {
            let _ = writeln!(md, "\nPublications no longer held by their origin: {:?}.", settle.publications_lost);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_longest_silence_ends_when_listening_ends() {
        let arrivals: Vec<Duration> =
            (0..100).map(|i| ms(i * 20)).filter(|at| *at < ms(1000) || *at >= ms(1400)).collect();
        // A gap of 400 ms after a kill at 1 s, then steady packets to the end (2 s).
        assert_eq!(longest_silence(&arrivals, ms(500), ms(2000)), Some((ms(980), ms(1400))));
        // Packets stop for good: the trailing silence counts.
        assert_eq!(longest_silence(&arrivals[..60], ms(500), ms(5000)), Some((ms(1580), ms(5000))));
        // Its own node died at 1.8 s: listening ended there, not at 5 s.
        assert_eq!(longest_silence(&arrivals[..60], ms(500), ms(1800)), Some((ms(980), ms(1400))));
        // Its node died before the kill: nothing to recover.
        assert_eq!(longest_silence(&arrivals, ms(1900), ms(1800)), None);
        // It arrived after the kill: from its first packet on.
        let gap = longest_silence(&arrivals[50..], ms(500), ms(2000)).map(|(before, after)| after - before);
        assert_eq!(gap, Some(ms(20)), "no gap before its first packet counts");
    }
}
