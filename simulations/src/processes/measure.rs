//! Measuring the nodes from outside, over a window. Every sample reads
//! `/proc` ([`procfs`](super::procfs): CPU time, memory, the namespace's TCP
//! table and `eth0` counters; no command runs) and asks `/v1/status` for the
//! connected peers. The first and the last sample also read the kernel's
//! accounting counters in each namespace
//! ([`accounting`](crate::netlab::accounting), `iptables-save`) and the
//! connections' TCP byte counters (`ss`), and the nodes' `/metrics` is read
//! just before and after. Rates are taken between a node's first and last
//! sample. The runner raises its own scheduling priority while it measures
//! (`renice -10`; the nodes keep theirs), so a saturated machine delays the
//! nodes, not the instrument.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::http::Api;
use super::nodes::{PORTS, Swarm};
use super::procfs::{self, ProcStat};
use crate::netlab::LabNode;
use crate::netlab::accounting::{self, Counters};

/// Shell commands run at once while sampling (each costs a fork and exec).
const PARALLEL_READS: usize = 4;

/// One node at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeSample {
    /// Seconds from the window's start.
    pub at_s: f64,
    /// The kernel's counters (see the accounting module); first and last sample.
    pub counters: Option<Counters>,
    /// The process.
    pub proc: Option<ProcStat>,
    /// Established TCP connections on the libp2p port (the namespace's TCP table).
    pub connections: Option<usize>,
    /// Distinct peer addresses among them.
    pub peers_tcp: Option<usize>,
    /// Bytes received and sent on `eth0` (all traffic).
    pub eth0: Option<(u64, u64)>,
    /// Connected peers `/v1/status` lists.
    pub peers_api: Option<usize>,
    /// TCP payload bytes (sent, received) per connection (`ss`), keyed by its
    /// addresses; first and last sample (kept for the rates, not written out).
    #[serde(skip)]
    pub tcp: BTreeMap<String, (u64, u64)>,
    /// What could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The counters of a node's `/metrics` that the report uses: libp2p's
/// bandwidth counters and any `mafalda_p2p_*_total` family, by labels.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MetricsSnapshot {
    /// Seconds from the window's start.
    pub at_s: f64,
    /// `name{labels}` → value.
    pub values: BTreeMap<String, f64>,
}

impl MetricsSnapshot {
    /// Keeps the samples of interest from Prometheus/OpenMetrics text.
    pub fn parse(text: &str, at_s: f64) -> Self {
        let values = parse_prometheus(text)
            .into_iter()
            .filter(|(name, _, _)| {
                name.starts_with("libp2p_bandwidth_bytes")
                    || (name.starts_with("mafalda_p2p_") && name.ends_with("_total"))
            })
            .map(|(name, labels, value)| {
                let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                (format!("{name}{{{}}}", labels.join(",")), value)
            })
            .collect();
        Self { at_s, values }
    }
}

/// Samples `name`, labels (sorted) and value from Prometheus text; lines
/// that do not parse are skipped.
pub fn parse_prometheus(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let Some((labels, rest)) = parse_labels(&line[open + 1..]) else { continue };
                (&line[..open], labels, rest)
            }
            None => {
                let Some((name, rest)) = line.split_once(' ') else { continue };
                (name, BTreeMap::new(), rest)
            }
        };
        if let Some(Ok(value)) = rest.split_whitespace().next().map(str::parse::<f64>) {
            samples.push((name.to_owned(), labels, value));
        }
    }
    samples
}

/// Parses `a="x",b="y"} rest` into labels and `rest`.
fn parse_labels(text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => value.push(chars.next()?.1),
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        rest = &after[end + 1..];
    }
}

/// Everything the window recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    /// Samples: one round per `sample_s`, one entry per node.
    pub rounds: Vec<Vec<NodeSample>>,
    /// Each node's `/metrics` at the start and at the end.
    pub metrics_start: Vec<Option<MetricsSnapshot>>,
    /// See `metrics_start`.
    pub metrics_end: Vec<Option<MetricsSnapshot>>,
    /// The machine's 1-minute load average at the start and at the end.
    pub load_average: (f64, f64),
    /// CPU seconds the runner itself used during the window.
    pub runner_cpu_s: f64,
    /// Length of the window, seconds.
    pub length_s: f64,
}

/// Measures every node over `length` with a sample every `every`.
pub async fn window(swarm: &Swarm, length: Duration, every: Duration) -> Window {
    raise_priority();
    let ticks = procfs::ticks_per_second();
    let runner_before = procfs::cpu_s(std::process::id(), ticks).unwrap_or(0.0);
    let start = Instant::now();
    let load_start = procfs::load_average().0;
    let metrics_start = metrics(swarm, start).await;
    let mut rounds = Vec::new();
    let count = (length.as_secs_f64() / every.as_secs_f64()).floor().max(1.0) as u32;
    for k in 0..=count {
        let due = start + length.mul_f64(f64::from(k) / f64::from(count));
        tokio::time::sleep_until(due.into()).await;
        rounds.push(sample_all(swarm, start, ticks, k == 0 || k == count).await);
    }
    let metrics_end = metrics(swarm, start).await;
    let runner_after = procfs::cpu_s(std::process::id(), ticks).unwrap_or(0.0);
    Window {
        rounds,
        metrics_start,
        metrics_end,
        load_average: (load_start, procfs::load_average().0),
        runner_cpu_s: runner_after - runner_before,
        length_s: start.elapsed().as_secs_f64(),
    }
}

/// Gives every thread of this process nice −10 (the threads and commands it
/// starts from now on inherit it; the nodes, started before, keep theirs).
fn raise_priority() {
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .collect();
    let done = std::process::Command::new("renice")
        .args(["-n", "-10", "-p"])
        .args(&threads)
        .stdout(std::process::Stdio::null())
        .status();
    if !done.is_ok_and(|s| s.success()) {
        tracing::warn!("cannot raise the runner's priority: samples may be late on a saturated machine");
    }
}

async fn metrics(swarm: &Swarm, start: Instant) -> Vec<Option<MetricsSnapshot>> {
    metrics_texts(swarm)
        .await
        .into_iter()
        .map(|read| read.map(|(text, at)| MetricsSnapshot::parse(&text, at.duration_since(start).as_secs_f64())))
        .collect()
}

/// Every node's `/metrics` text (16 read at a time), by node index, with
/// when it came; none for a node that did not answer within 5 s.
pub async fn metrics_texts(swarm: &Swarm) -> Vec<Option<(String, Instant)>> {
    let mut tasks = JoinSet::new();
    let limit = Arc::new(Semaphore::new(16));
    for node in &swarm.nodes {
        let (api, index, limit) = (node.api.clone(), node.index, Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let answer = api.get("/metrics", Duration::from_secs(5)).await.ok().filter(|a| a.ok());
            (index, answer.map(|a| (a.body, Instant::now())))
        });
    }
    let mut out = vec![None; swarm.nodes.len()];
    while let Some(Ok((index, text))) = tasks.join_next().await {
        out[index] = text;
    }
    out
}

/// One sample of every node; `full` adds the accounting counters and `ss`.
pub async fn sample_all(swarm: &Swarm, start: Instant, ticks: f64, full: bool) -> Vec<NodeSample> {
    let mut tasks = JoinSet::new();
    let limit = Arc::new(Semaphore::new(PARALLEL_READS));
    for node in &swarm.nodes {
        let place = swarm.lab.nodes()[node.index].clone();
        let (api, pid, index, limit) = (node.api.clone(), node.pid, node.index, Arc::clone(&limit));
        tasks.spawn(async move {
            let mut sample = sample_node(pid, start, ticks);
            if full {
                let permit = limit.acquire_owned().await;
                let commands = tokio::task::spawn_blocking(move || read_commands(&place)).await;
                drop(permit);
                match commands {
                    Ok(Ok((counters, tcp))) => (sample.counters, sample.tcp) = (Some(counters), tcp),
                    Ok(Err(error)) => sample.errors.push(error),
                    Err(error) => sample.errors.push(error.to_string()),
                }
            }
            match peers_from_status(&api).await {
                Ok(peers) => sample.peers_api = Some(peers),
                Err(error) => sample.errors.push(error),
            }
            (index, sample)
        });
    }
    let mut out = vec![NodeSample::default(); swarm.nodes.len()];
    while let Some(Ok((index, sample))) = tasks.join_next().await {
        out[index] = sample;
    }
    out
}

async fn peers_from_status(api: &Api) -> Result<usize, String> {
    let answer = api.get("/v1/status", Duration::from_secs(5)).await.map_err(|e| e.to_string())?;
    let status: serde_json::Value = serde_json::from_str(&answer.body).map_err(|e| format!("/v1/status: {e}"))?;
    status["connectedPeers"]
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| format!("/v1/status {}: no connectedPeers", answer.status))
}

fn sample_node(pid: u32, start: Instant, ticks: f64) -> NodeSample {
    let mut sample = NodeSample { at_s: start.elapsed().as_secs_f64(), ..NodeSample::default() };
    sample.proc = ProcStat::read(pid, ticks);
    if sample.proc.is_none() {
        sample.errors.push(format!("process {pid} is gone"));
    }
    if let Some((connections, peers)) = procfs::tcp_established(pid, PORTS.p2p) {
        (sample.connections, sample.peers_tcp) = (Some(connections), Some(peers));
    }
    sample.eth0 = procfs::eth0_bytes(pid);
    sample
}

/// The accounting counters and the libp2p connections' TCP byte counters.
type CommandReads = (Counters, BTreeMap<String, (u64, u64)>);

fn read_commands(place: &LabNode) -> Result<CommandReads, String> {
    let counters = Counters::read(place).map_err(|e| e.to_string())?;
    let connections = accounting::p2p_connections(place, PORTS.p2p).map_err(|e| e.to_string())?;
    let tcp =
        connections.iter().map(|c| (format!("{}-{}", c.local, c.peer), (c.bytes_sent, c.bytes_received))).collect();
    Ok((counters, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_samples_are_parsed_with_labels_and_junk_is_skipped() {
        let text = "# HELP x\nlibp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} 1234\n\
                    mafalda_p2p_bytes_total{protocol=\"/ipfs/kad/1.0.0\",direction=\"out\"} 5.5e3\n\
                    mafalda_connected_peers 7\nbroken{a=\"x} 1\nmafalda_p2p_messages_total{protocol=\"a\\\"b\"} 2\n# EOF\n";
        let all = parse_prometheus(text);
        assert_eq!(all.len(), 4, "{all:?}");
        assert_eq!(all[3].1["protocol"], "a\"b");
        let snapshot = MetricsSnapshot::parse(text, 1.0);
        assert_eq!(snapshot.values.len(), 3, "{snapshot:?}");
        assert_eq!(snapshot.values["mafalda_p2p_bytes_total{direction=\"out\",protocol=\"/ipfs/kad/1.0.0\"}"], 5500.0);
    }
}
