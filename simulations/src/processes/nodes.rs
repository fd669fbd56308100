//! The swarm's processes: one `mafalda-node run` per lab namespace, listening
//! on the node's own address, with its log in a file; started in bootstrap
//! order, waited for until ready, stopped by signal and killed if anything
//! goes wrong (a [`Swarm`] drops its processes before its lab).

use std::fs::OpenOptions;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;
use tracing::{debug, info};

use super::ProcessError;
use super::http::Api;
use super::scenario::ProcessScenario;
use crate::netlab::Lab;
use crate::netlab::accounting::Ports;

/// The ports every node uses on its own address.
pub const PORTS: Ports = Ports { api: 7700, p2p: 4001, media: 20000..=29999 };

/// One node process.
#[derive(Debug)]
pub struct NodeProcess {
    /// Index in the swarm.
    pub index: usize,
    /// Its address.
    pub ip: IpAddr,
    /// Its peer id.
    pub peer_id: String,
    /// Its API.
    pub api: Api,
    /// Its process id (`ip netns exec` execs the node in place).
    pub pid: u32,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    /// Seconds from the first start to `/readyz` answering 200.
    pub ready_s: Option<f64>,
    child: Child,
}

impl NodeProcess {
    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(format!("cannot be waited for: {error}")),
        }
    }

    /// The last lines of its log, for errors.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

/// The lab and the processes in it; the processes are killed first on drop.
#[derive(Debug)]
pub struct Swarm {
    /// The nodes (dropped first: killed on drop).
    pub nodes: Vec<NodeProcess>,
    /// The network lab (dropped last: removes everything).
    pub lab: Lab,
    /// When the first node started.
    pub started: Instant,
}

/// Starts every node of `scenario` in `lab`: node `i` starts once the nodes
/// it bootstraps from answer `/healthz`. Identities go to `dir/nodes/`.
pub async fn start(
    scenario: &ProcessScenario,
    lab: Lab,
    binary: &Path,
    dir: &Path,
    token: &str,
) -> Result<Swarm, ProcessError> {
    let nodes_dir = dir.join("nodes");
    std::fs::create_dir_all(&nodes_dir).map_err(|e| ProcessError::io(&nodes_dir, e))?;
    let mut swarm = Swarm { nodes: Vec::new(), lab, started: Instant::now() };
    let links = scenario.bootstrap_links();
    let mut healthy = vec![false; scenario.nodes];
    for (i, bootstrap) in links.iter().enumerate() {
        for &b in bootstrap {
            if !healthy[b] {
                wait_healthy(&mut swarm.nodes[b], Duration::from_secs(30)).await?;
                healthy[b] = true;
            }
        }
        let node = spawn(scenario, &swarm, i, bootstrap, binary, &nodes_dir, token)?;
        swarm.nodes.push(node);
    }
    info!(nodes = scenario.nodes, took = ?swarm.started.elapsed(), "every node process started");
    Ok(swarm)
}

fn spawn(
    scenario: &ProcessScenario,
    swarm: &Swarm,
    index: usize,
    bootstrap: &[usize],
    binary: &Path,
    dir: &Path,
    token: &str,
) -> Result<NodeProcess, ProcessError> {
    let place = &swarm.lab.nodes()[index];
    let identity = dir.join(format!("node-{index}.key"));
    let keypair = mafalda_swarm::identity::load_or_create(&identity)
        .map_err(|e| ProcessError::Spawn { index, reason: e.to_string() })?;
    let peer_id = keypair.public().to_peer_id().to_string();
    let log = dir.join(format!("node-{index}.log"));
    let file = OpenOptions::new().create(true).append(true).open(&log).map_err(|e| ProcessError::io(&log, e))?;
    let stderr = file.try_clone().map_err(|e| ProcessError::io(&log, e))?;
    let ip = IpAddr::V4(place.ip);
    let mut command = place.command(binary);
    command
        .arg("run")
        .arg(format!("--listen=/ip4/{ip}/tcp/{}", PORTS.p2p))
        .arg(format!("--api={ip}:{}", PORTS.api))
        .arg(format!("--media-ip={ip}"))
        .arg(format!("--rtc-ports={}-{}", PORTS.media.start(), PORTS.media.end()))
        .arg(format!("--identity={}", identity.display()));
    for &b in bootstrap {
        let (peer, addr) = (&swarm.nodes[b].peer_id, swarm.nodes[b].ip);
        command.arg(format!("--bootstrap=/ip4/{addr}/tcp/{}/p2p/{peer}", PORTS.p2p));
    }
    if !scenario.node_args.iter().any(|a| a.starts_with("--workers")) {
        command.arg("--workers=1");
    }
    command
        .args(&scenario.node_args)
        .env("MAFALDA_API_TOKEN", token)
        .env("RUST_LOG", &scenario.log)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let child = command.spawn().map_err(|e| ProcessError::Spawn { index, reason: e.to_string() })?;
    let pid = child.id().ok_or_else(|| ProcessError::Spawn { index, reason: "exited at once".into() })?;
    debug!(index, pid, %ip, ?bootstrap, "node started");
    let api = Api { addr: SocketAddr::new(ip, PORTS.api), token: token.to_owned() };
    Ok(NodeProcess { index, ip, peer_id, api, pid, log, ready_s: None, child })
}

/// Polls `path` on `node` until it answers 200, failing if the process exits
/// or `within` passes.
async fn wait_for(node: &mut NodeProcess, path: &str, within: Duration) -> Result<(), ProcessError> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = node.exited() {
            return Err(ProcessError::Exited { index: node.index, status, log: node.log_tail() });
        }
        let last = match node.api.get(path, Duration::from_secs(2)).await {
            Ok(answer) if answer.ok() => return Ok(()),
            Ok(answer) => format!("{} {}", answer.status, answer.body.trim()),
            Err(error) => error.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(ProcessError::NotReady { index: node.index, waited: within, last });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_healthy(node: &mut NodeProcess, within: Duration) -> Result<(), ProcessError> {
    wait_for(node, "/healthz", within).await
}

/// Waits until every node's `/readyz` answers 200 (workers up, joined), at
/// most `within` in all; records when each became ready.
pub async fn wait_ready(swarm: &mut Swarm, within: Duration) -> Result<(), ProcessError> {
    let deadline = Instant::now() + within;
    for node in &mut swarm.nodes {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        wait_for(node, "/readyz", left).await?;
        node.ready_s.get_or_insert(swarm.started.elapsed().as_secs_f64());
    }
    info!(took = ?swarm.started.elapsed(), "every node ready");
    Ok(())
}

/// Nodes whose process has exited, with how.
pub fn exited(swarm: &mut Swarm) -> Vec<(usize, String)> {
    swarm.nodes.iter_mut().filter_map(|n| n.exited().map(|status| (n.index, status))).collect()
}

/// Stops every node: SIGINT (stop at once), then SIGKILL for any still
/// running after `grace`.
pub async fn stop(swarm: &mut Swarm, grace: Duration) {
    let pids: Vec<String> =
        swarm.nodes.iter_mut().filter_map(|n| n.exited().is_none().then(|| n.pid.to_string())).collect();
    if !pids.is_empty() {
        let _ = tokio::process::Command::new("kill").arg("-INT").args(&pids).status().await;
    }
    let deadline = Instant::now() + grace;
    for node in &mut swarm.nodes {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, node.child.wait()).await.is_err() {
            let _ = node.child.kill().await;
        }
    }
}
