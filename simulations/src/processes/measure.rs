//! Measuring the nodes from outside, over a window: the kernel's counters in
//! each namespace ([`accounting`](crate::netlab::accounting)), established
//! libp2p connections from `ss` and the peers `/v1/status` lists, CPU time
//! and memory from `/proc/<pid>`, and the nodes' own libp2p byte counters
//! from `/metrics` at both ends of the window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::http::Api;
use super::nodes::{PORTS, Swarm};
use crate::netlab::LabNode;
use crate::netlab::accounting::{self, Counters};

/// Shell commands run at once while sampling (each costs a fork and exec).
const PARALLEL_READS: usize = 4;

/// CPU time and memory of one process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcStat {
    /// User + system CPU seconds since it started (all threads).
    pub cpu_s: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Proportional set size (shared pages divided among their sharers), KiB.
    pub pss_kib: Option<u64>,
    /// Threads.
    pub threads: u64,
}

impl ProcStat {
    /// Reads `/proc/<pid>`; none if the process is gone.
    pub fn read(pid: u32, ticks_per_s: f64) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name (in parentheses, maybe with spaces).
        let rest: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
        let ticks = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |text: &str, name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        Some(Self {
            cpu_s: ticks / ticks_per_s,
            rss_kib: field(&status, "VmRSS:")?,
            pss_kib: field(&rollup, "Pss:"),
            threads: field(&status, "Threads:").unwrap_or(0),
        })
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if unknown).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// One node at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeSample {
    /// Seconds from the window's start.
    pub at_s: f64,
    /// The kernel's counters (see the accounting module).
    pub counters: Option<Counters>,
    /// The process.
    pub proc: Option<ProcStat>,
    /// Established TCP connections on the libp2p port (`ss`).
    pub connections: Option<usize>,
    /// Distinct peer addresses among them.
    pub peers_ss: Option<usize>,
    /// Connected peers `/v1/status` lists.
    pub peers_api: Option<usize>,
    /// TCP payload bytes (sent, received) per connection, keyed by its
    /// addresses (kept for the window's rates, not written out).
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

/// The machine's 1-, 5- and 15-minute load averages.
pub fn load_average() -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    (it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN))
}

/// `MemAvailable` of the machine, KiB.
pub fn mem_available_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.split_whitespace().next()?.parse().ok()
}

/// Measures every node over `length` with a sample every `every`.
pub async fn window(swarm: &Swarm, length: Duration, every: Duration) -> Window {
    let ticks = ticks_per_second();
    let runner_before = ProcStat::read(std::process::id(), ticks).map_or(0.0, |p| p.cpu_s);
    let start = Instant::now();
    let load_start = load_average().0;
    let metrics_start = metrics(swarm, start).await;
    let mut rounds = Vec::new();
    let count = (length.as_secs_f64() / every.as_secs_f64()).floor().max(1.0) as u32;
    for k in 0..=count {
        let due = start + length.mul_f64(f64::from(k) / f64::from(count));
        tokio::time::sleep_until(due.into()).await;
        rounds.push(sample_all(swarm, start, ticks).await);
    }
    let metrics_end = metrics(swarm, start).await;
    let runner_after = ProcStat::read(std::process::id(), ticks).map_or(0.0, |p| p.cpu_s);
    Window {
        rounds,
        metrics_start,
        metrics_end,
        load_average: (load_start, load_average().0),
        runner_cpu_s: runner_after - runner_before,
        length_s: start.elapsed().as_secs_f64(),
    }
}

async fn metrics(swarm: &Swarm, start: Instant) -> Vec<Option<MetricsSnapshot>> {
    let mut tasks = JoinSet::new();
    let limit = Arc::new(Semaphore::new(16));
    for node in &swarm.nodes {
        let (api, index, limit) = (node.api.clone(), node.index, Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let answer = api.get("/metrics", Duration::from_secs(5)).await.ok().filter(|a| a.ok());
            (index, answer.map(|a| MetricsSnapshot::parse(&a.body, start.elapsed().as_secs_f64())))
        });
    }
    let mut out = vec![None; swarm.nodes.len()];
    while let Some(Ok((index, snapshot))) = tasks.join_next().await {
        out[index] = snapshot;
    }
    out
}

/// One sample of every node.
pub async fn sample_all(swarm: &Swarm, start: Instant, ticks: f64) -> Vec<NodeSample> {
    let mut tasks = JoinSet::new();
    let limit = Arc::new(Semaphore::new(PARALLEL_READS));
    for node in &swarm.nodes {
        let place = swarm.lab.nodes()[node.index].clone();
        let (api, pid, index, limit) = (node.api.clone(), node.pid, node.index, Arc::clone(&limit));
        tasks.spawn(async move {
            let peers_api = peers_from_status(&api).await;
            let permit = limit.acquire_owned().await;
            let mut sample =
                tokio::task::spawn_blocking(move || sample_node(&place, pid, start, ticks)).await.unwrap_or_default();
            drop(permit);
            match peers_api {
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

fn sample_node(place: &LabNode, pid: u32, start: Instant, ticks: f64) -> NodeSample {
    let mut sample = NodeSample { at_s: start.elapsed().as_secs_f64(), ..NodeSample::default() };
    match Counters::read(place) {
        Ok(counters) => sample.counters = Some(counters),
        Err(error) => sample.errors.push(error.to_string()),
    }
    match accounting::p2p_connections(place, PORTS.p2p) {
        Ok(connections) => {
            sample.connections = Some(connections.len());
            let peers: std::collections::BTreeSet<_> = connections.iter().map(|c| c.peer.ip()).collect();
            sample.peers_ss = Some(peers.len());
            sample.tcp = connections
                .iter()
                .map(|c| (format!("{}-{}", c.local, c.peer), (c.bytes_sent, c.bytes_received)))
                .collect();
        }
        Err(error) => sample.errors.push(error.to_string()),
    }
    sample.proc = ProcStat::read(pid, ticks);
    if sample.proc.is_none() {
        sample.errors.push(format!("process {pid} is gone"));
    }
    sample
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

    #[test]
    fn this_process_can_be_read_from_proc() {
        let stat = ProcStat::read(std::process::id(), ticks_per_second()).expect("readable");
        assert!(stat.rss_kib > 0 && stat.threads >= 1, "{stat:?}");
        assert!(ProcStat::read(u32::MAX - 1, 100.0).is_none());
    }
}
