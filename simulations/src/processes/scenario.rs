//! Process scenarios (`mode = "processes"`): every node a `mafalda-node`
//! process in its own network namespace. Checked before anything starts,
//! with errors that name the field.
//!
//! ```toml
//! name = "idle-30"
//! mode = "processes"
//! nodes = 30
//! topology = "random"        # chain | star | random, as the in-process scenarios
//! seeds = 3                  # optional: nodes 0..3 join by the topology; every later node
//!                            # bootstraps from 2 of them at random (a deployment's seed nodes)
//! seed = 1                   # randomness (topology)
//! warmup_s = 60              # after every node is ready, before measuring
//! measure_s = 60             # the measurement window
//! sample_s = 5               # connections, memory and counters sampled this often in it
//! node_args = ["--max-peers", "24"]   # extra `mafalda-node run` flags for every node
//! peers_at_most = 24         # the check's bound on peers per node (default nodes - 1)
//! log = "info"               # RUST_LOG of the nodes (their logs: <out>/nodes/node-<i>.log)
//! find_concurrency = 16      # finds in flight at once in the discovery phase
//! find_timeout_s = 10        # the runner's deadline on one find
//!
//! [[streams]]                # published after the window (no RTP is sent), then
//! id = "probe-a"             # found from every other node
//! at = 0
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::scenario::{ScenarioError, StreamSpec, Topology, load_file};

/// How a scenario runs its nodes (only processes; the key tells such a file apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Every node a process in its own namespace.
    Processes,
}

/// A process scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessScenario {
    /// Name, used in reports.
    pub name: String,
    #[allow(dead_code)]
    mode: Mode,
    /// How many nodes (processes).
    pub nodes: usize,
    /// Bootstrap links among the seeds (or all nodes without `seeds`).
    pub topology: Topology,
    /// With it, only nodes `0..seeds` join by `topology`; each later node
    /// bootstraps from two of them (one if there is one).
    pub seeds: Option<usize>,
    /// Seed of every random choice.
    #[serde(default)]
    pub seed: u64,
    /// Seconds between every node being ready and the window.
    pub warmup_s: f64,
    /// Length of the measurement window, seconds.
    pub measure_s: f64,
    /// Sampling interval inside the window, seconds.
    #[serde(default = "five")]
    pub sample_s: f64,
    /// Extra flags for every `mafalda-node run`.
    #[serde(default)]
    pub node_args: Vec<String>,
    /// The most peers a node may be connected to (the check); `nodes - 1`
    /// if absent.
    pub peers_at_most: Option<usize>,
    /// `RUST_LOG` of the nodes.
    #[serde(default = "info")]
    pub log: String,
    /// Finds in flight at once.
    #[serde(default = "sixteen")]
    pub find_concurrency: usize,
    /// Deadline on one find, seconds.
    #[serde(default = "ten")]
    pub find_timeout_s: f64,
    /// Streams published after the window and found from every other node.
    #[serde(default)]
    pub streams: Vec<StreamSpec>,
    /// After the finds: seconds of watching the swarm from node 0 (`GET
    /// /v1/swarm` once a second), after as many quiet ones (0: none).
    #[serde(default)]
    pub monitor_s: f64,
}

fn five() -> f64 {
    5.0
}
fn ten() -> f64 {
    10.0
}
fn sixteen() -> usize {
    16
}
fn info() -> String {
    "info".into()
}

/// Most nodes a process scenario may start.
pub const MAX_PROCESS_NODES: usize = 1000;

impl ProcessScenario {
    /// Whether a scenario file's text asks for the process runner.
    pub fn is_processes(text: &str) -> bool {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|table| table.get("mode").and_then(|m| m.as_str().map(|m| m == "processes")))
            .unwrap_or(false)
    }

    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        load_file(path, Self::parse)
    }

    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = toml::from_str(text)
            .map_err(|e| ScenarioError::Parse { path: "scenario".into(), reason: e.to_string() })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The bound the check applies to each node's peers.
    pub fn peer_bound(&self) -> usize {
        self.peers_at_most.unwrap_or(self.nodes - 1)
    }

    /// Who each node bootstraps from (indices of earlier nodes).
    pub fn bootstrap_links(&self) -> Vec<Vec<usize>> {
        use rand::SeedableRng;
        use rand::seq::IndexedRandom;
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let seeds = self.seeds.unwrap_or(self.nodes);
        let seed_ids: Vec<usize> = (0..seeds).collect();
        (0..self.nodes)
            .map(|i| {
                if i < seeds {
                    self.topology.bootstrap_of(i, &mut rng).into_iter().collect()
                } else {
                    let mut picked: Vec<usize> = seed_ids.choose_multiple(&mut rng, 2).copied().collect();
                    picked.sort_unstable();
                    picked
                }
            })
            .collect()
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |message: String| Err(ScenarioError::Invalid(message));
        if !(2..=MAX_PROCESS_NODES).contains(&self.nodes) {
            return invalid(format!("nodes must be 2-{MAX_PROCESS_NODES}"));
        }
        if self.seeds.is_some_and(|seeds| !(1..=self.nodes).contains(&seeds)) {
            return invalid(format!("seeds must be 1-{} (the number of nodes)", self.nodes));
        }
        for (name, value, most) in [
            ("warmup_s", self.warmup_s, 3600.0),
            ("measure_s", self.measure_s, 3600.0),
            ("find_timeout_s", self.find_timeout_s, 600.0),
        ] {
            if !(value >= 0.0 && value <= most) || (name != "warmup_s" && value == 0.0) {
                return invalid(format!("{name} must be in (0, {most}] (warmup_s may be 0), got {value}"));
            }
        }
        if !(self.sample_s >= 0.5 && self.sample_s <= self.measure_s) {
            return invalid(format!("sample_s must be at least 0.5 and at most measure_s, got {}", self.sample_s));
        }
        if self.peers_at_most == Some(0) {
            return invalid("peers_at_most must be at least 1".into());
        }
        if !(1..=256).contains(&self.find_concurrency) {
            return invalid("find_concurrency must be 1-256".into());
        }
        if let Some(flag) = self.node_args.iter().find(|a| RESERVED.iter().any(|r| a.split('=').next() == Some(*r))) {
            return invalid(format!("node_args may not set {flag}: the runner sets it for each node"));
        }
        for stream in &self.streams {
            if stream.at >= self.nodes {
                return invalid(format!(
                    "stream {} is published at node {}, but there are {}",
                    stream.id, stream.at, self.nodes
                ));
            }
        }
        Ok(())
    }
}

/// Flags the runner gives every node itself.
const RESERVED: [&str; 7] =
    ["--listen", "--bootstrap", "--api", "--media-ip", "--identity", "--rtc-ports", "--api-token"];

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        name = "t"
        mode = "processes"
        nodes = 10
        topology = "random"
        seeds = 3
        warmup_s = 1
        measure_s = 2
        sample_s = 1
        [[streams]]
        id = "s"
        at = 4
    "#;

    #[test]
    fn a_process_scenario_is_recognised_and_parses() {
        assert!(ProcessScenario::is_processes(SMALL));
        assert!(!ProcessScenario::is_processes("name = \"x\"\nnodes = 3\n"));
        let scenario = ProcessScenario::parse(SMALL).expect("valid");
        assert_eq!((scenario.nodes, scenario.peer_bound(), scenario.find_concurrency), (10, 9, 16));
    }

    #[test]
    fn seeds_join_by_the_topology_and_the_others_through_two_seeds() {
        let scenario = ProcessScenario::parse(SMALL).expect("valid");
        let links = scenario.bootstrap_links();
        assert!(links[0].is_empty());
        assert!(links[1..3].iter().all(|l| l.len() == 1));
        for (i, l) in links.iter().enumerate().skip(3) {
            assert!(l.len() == 2 && l[0] != l[1] && l.iter().all(|s| *s < 3), "node {i}: {l:?}");
        }
        assert_eq!(links, scenario.bootstrap_links(), "the same seed, the same links");
        let chain =
            ProcessScenario::parse(&SMALL.replace("seeds = 3\n", "").replace("random", "chain")).expect("valid");
        assert_eq!(chain.bootstrap_links()[9], vec![8]);
    }

    #[test]
    fn bad_process_scenarios_are_refused_naming_the_field() {
        for (change, expected) in [
            ("seeds = 3", "seeds = 11"),
            ("measure_s = 2", "measure_s = 0"),
            ("sample_s = 1", "sample_s = 9"),
            ("at = 4", "at = 10"),
            ("seeds = 3", "seeds = 3\nnode_args = [\"--api=1.2.3.4:5\"]"),
            ("seeds = 3", "seeds = 3\npeers_at_most = 0"),
            ("mode = \"processes\"", "mode = \"threads\""),
            ("seeds = 3", "seeds = 3\nspeed = 1"),
        ] {
            let text = SMALL.replace(change, expected);
            assert!(ProcessScenario::parse(&text).is_err(), "{expected} must be refused");
        }
    }
}
