//! The process runner: a [`ProcessScenario`] runs every node as its own
//! `mafalda-node` process in its own network namespace of a
//! [`Lab`](crate::netlab::Lab), drives the nodes only through their HTTP API,
//! and measures each from outside (kernel counters, `ss`, `/proc`):
//!
//! 1. the lab (bridge, namespaces, veths, accounting rules) is made;
//! 2. the nodes start in bootstrap order (node `i` once the nodes it
//!    bootstraps from answer `/healthz`), each with its own identity file, API
//!    token and log file under `<out>/nodes/`, and every `/readyz` must answer
//!    200 (joined) within `30 s + 0.2 s × nodes`;
//! 3. after `warmup_s`, the [`measure`] window of `measure_s`;
//! 4. [`discovery`]: the scenario's streams are published and found from
//!    every other node;
//! 5. the nodes are stopped (SIGINT, SIGKILL after 5 s) and the lab removed
//!    (also when any step fails, or the run is dropped on Ctrl-C).
//!
//! [`report`] turns what was recorded into figures and checks.

pub mod discovery;
pub mod http;
pub mod inside;
pub mod measure;
pub mod monitor;
pub mod nodes;
pub mod procfs;
pub mod report;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::info;

pub use scenario::ProcessScenario;

use crate::netlab::{self, Lab, LabError, accounting};

/// Why a process run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The network lab failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// The node binary could not be built or found.
    #[error("cannot build mafalda-node: {0}")]
    Build(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A node could not be started.
    #[error("node {index} cannot start: {reason}")]
    Spawn {
        /// The node.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A node's process exited while it was waited for.
    #[error("node {index} exited ({status}); its log ends with:\n{log}")]
    Exited {
        /// The node.
        index: usize,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// A node did not answer 200 in time.
    #[error("node {index} was not ready within {waited:?}: {last}")]
    NotReady {
        /// The node.
        index: usize,
        /// How long it was given.
        waited: Duration,
        /// Its last answer.
        last: String,
    },
    /// A stream could not be published.
    #[error("cannot publish {stream}: {reason}")]
    Publish {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },
}

impl ProcessError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
}

/// Everything a process run recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessObservations {
    /// The scenario's name.
    pub scenario: String,
    /// The lab's prefix (`mfsXXXX`).
    pub run_id: String,
    /// How many nodes.
    pub nodes: usize,
    /// The node binary.
    pub binary: String,
    /// The commit the runner ran from (`git describe --always --dirty`), if
    /// it ran inside a git work tree: the code the binary was built from when
    /// it was built there.
    pub code: Option<String>,
    /// Extra node flags.
    pub node_args: Vec<String>,
    /// Bootstrap links.
    pub bootstrap: Vec<Vec<usize>>,
    /// The bound on peers per node that is checked.
    pub peers_at_most: usize,
    /// Seconds to make the lab.
    pub lab_setup_s: f64,
    /// Seconds from the first node's start to the last one's readiness.
    pub ready_all_s: f64,
    /// Per node: seconds from the first start to its readiness.
    pub ready_s: Vec<Option<f64>>,
    /// The machine's `MemAvailable` before the lab, KiB.
    pub mem_available_before_kib: Option<u64>,
    /// The same at the end of the window, KiB.
    pub mem_available_during_kib: Option<u64>,
    /// The machine's load averages (1, 5, 15 min) when the window ended.
    pub load_average_end: (f64, f64, f64),
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// The measurement window.
    pub window: measure::Window,
    /// Every find.
    pub finds: Vec<discovery::FindResult>,
    /// What the nodes measured of those finds (when there were finds).
    pub inside: Option<inside::InsideFinds>,
    /// What the finds cost the machine (publishing included).
    pub finds_cost: FindsCost,
    /// Watching the swarm from node 0 (when the scenario asks).
    pub monitor: Option<monitor::MonitorProbe>,
    /// Nodes whose process exited before the end, with how.
    pub exited: Vec<(usize, String)>,
}

/// Runs `scenario` with `binary` (a `mafalda-node`), node files under `out`,
/// in a new lab.
pub async fn run(scenario: &ProcessScenario, binary: &Path, out: &Path) -> Result<ProcessObservations, ProcessError> {
    netlab::check_root()?;
    let mem_available_before_kib = procfs::mem_available_kib();
    let started = Instant::now();
    let lab = make_lab(scenario.nodes).await?;
    run_in_lab(scenario, lab, binary, out, mem_available_before_kib, started).await
}

/// A lab with the accounting rules of [`nodes::PORTS`], made off the async
/// threads.
pub async fn make_lab(nodes: usize) -> Result<Lab, ProcessError> {
    let rules = accounting::rules(&nodes::PORTS);
    tokio::task::spawn_blocking(move || Lab::create(nodes, &rules, 8))
        .await
        .map_err(|e| ProcessError::Spawn { index: 0, reason: format!("lab set-up: {e}") })?
        .map_err(ProcessError::Lab)
}

/// Runs `scenario` in `lab` (made by [`make_lab`] at `started`, when the
/// machine had `mem_available_before_kib`); the lab is removed when this
/// returns, whatever happened.
pub async fn run_in_lab(
    scenario: &ProcessScenario,
    lab: Lab,
    binary: &Path,
    out: &Path,
    mem_available_before_kib: Option<u64>,
    started: Instant,
) -> Result<ProcessObservations, ProcessError> {
    let count = scenario.nodes;
    if lab.nodes().len() != count {
        let reason = format!("the lab has {} namespaces for {count} nodes", lab.nodes().len());
        return Err(ProcessError::Spawn { index: lab.nodes().len().min(count), reason });
    }
    std::fs::create_dir_all(out).map_err(|e| ProcessError::io(out, e))?;
    let lab_setup_s = started.elapsed().as_secs_f64();
    let token = format!("{:032x}", rand::random::<u128>());
    let run_id = lab.run_id().to_owned();
    let mut swarm = nodes::start(scenario, lab, binary, out, &token).await?;
    let join_timeout = Duration::from_secs(30) + Duration::from_millis(200 * count as u64);
    nodes::wait_ready(&mut swarm, join_timeout).await?;
    let ready_all_s = swarm.started.elapsed().as_secs_f64();
    info!(warmup_s = scenario.warmup_s, "warming up");
    tokio::time::sleep(Duration::from_secs_f64(scenario.warmup_s)).await;
    info!(measure_s = scenario.measure_s, "measuring");
    let window = measure::window(
        &swarm,
        Duration::from_secs_f64(scenario.measure_s),
        Duration::from_secs_f64(scenario.sample_s),
    )
    .await;
    let mem_available_during_kib = procfs::mem_available_kib();
    let load_average_end = procfs::load_average();
    info!(streams = scenario.streams.len(), "discovery");
    let ticks = procfs::ticks_per_second();
    let (cpu_before, finds_started) = (nodes_cpu_s(&swarm, ticks), Instant::now());
    let finds = discovery::run(scenario, &swarm).await?;
    let wall_s = finds_started.elapsed().as_secs_f64();
    let finds_cost = FindsCost { cpu_s: nodes_cpu_s(&swarm, ticks) - cpu_before, wall_s };
    let inside = if finds.is_empty() { None } else { Some(inside::read(&swarm).await) };
    let monitor = if scenario.monitor_s > 0.0 {
        info!(seconds = scenario.monitor_s, "watching the swarm from node 0");
        monitor::run(&swarm, scenario.monitor_s).await
    } else {
        None
    };
    let exited = nodes::exited(&mut swarm);
    nodes::stop(&mut swarm, Duration::from_secs(5)).await;
    let observations = ProcessObservations {
        scenario: scenario.name.clone(),
        run_id,
        nodes: count,
        binary: binary.display().to_string(),
        code: git_describe(),
        node_args: scenario.node_args.clone(),
        bootstrap: scenario.bootstrap_links(),
        peers_at_most: scenario.peer_bound(),
        lab_setup_s,
        ready_all_s,
        ready_s: swarm.nodes.iter().map(|n| n.ready_s).collect(),
        mem_available_before_kib,
        mem_available_during_kib,
        load_average_end,
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        window,
        finds,
        inside,
        finds_cost,
        monitor,
        exited,
    };
    tokio::task::spawn_blocking(move || drop(swarm)).await.ok();
    Ok(observations)
}

/// CPU the node processes used while the streams were published and found.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FindsCost {
    /// User + system CPU seconds of every node process (workers included:
    /// they are threads of the node).
    pub cpu_s: f64,
    /// Seconds from the first publication to the last answer.
    pub wall_s: f64,
}

/// CPU seconds the node processes used so far (those still running).
fn nodes_cpu_s(swarm: &nodes::Swarm, ticks_per_s: f64) -> f64 {
    swarm.nodes.iter().filter_map(|n| procfs::cpu_s(n.pid, ticks_per_s)).sum()
}

/// The node binary for a test: `MAFALDA_NODE_BIN` if set, else built by
/// cargo (`--release` or not).
pub fn node_binary(release: bool) -> Result<PathBuf, ProcessError> {
    match std::env::var_os("MAFALDA_NODE_BIN") {
        Some(path) => Ok(path.into()),
        None => build_node(release),
    }
}

/// Builds `mafalda-node` with cargo (`--release` or not) and returns its path.
pub fn build_node(release: bool) -> Result<PathBuf, ProcessError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "-p", "mafalda-cli", "--bin", "mafalda-node", "--message-format=json-render-diagnostics"]);
    if release {
        command.arg("--release");
    }
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| ProcessError::Build(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(ProcessError::Build(format!("cargo build exited with {}", output.status)));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "mafalda-node")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| ProcessError::Build("cargo named no mafalda-node executable".into()))
}

fn git_describe() -> Option<String> {
    let output = std::process::Command::new("git").args(["describe", "--always", "--dirty"]).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
