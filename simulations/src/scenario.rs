//! Scenario files: what to run, in TOML. Every field is checked before a node
//! starts, with an error that names the field.
//!
//! ```toml
//! name = "ci"
//! nodes = 9
//! topology = "chain"          # chain | star | random: who bootstraps from whom
//! seed = 7                    # randomness (random topology, entry nodes, arrivals)
//! duration_s = 20             # how long media flows after the first stream starts
//! media = true                # false: control plane only (publish + find, no RTP)
//!
//! [[streams]]
//! id = "cam-1"
//! at = 0                      # index of the publishing node
//!
//! [consumers]
//! count = 6                   # consumers at random entry nodes (never the origin)
//! arrive_from_s = 1
//! arrive_until_s = 6
//! stay_from_s = 10            # optional, with stay_until_s: each one leaves (stops its
//! stay_until_s = 40           # egress) after a random stay in this range (else it stays)
//!
//! [[consumer]]               # placed by hand: entry node, stream index, arrival
//! entry = 4
//! stream = 0
//! at_s = 0.5
//! leave_at_s = 7              # optional: stops its egress then (default: stays)
//!
//! [[workers]]                 # optional: these nodes get several mediasoup workers
//! nodes = [4, 7]              # (the others have one)
//! workers = 3                 # 1-4 per node
//! consumer_capacity = 1       # placement: a worker is full at 60 % of this (default 500)
//! idle_grace_s = 2            # an emptied worker closes after this long (default 30)
//!
//! [[churn]]
//! node = 4                    # killed at `at_s`, started again after `restart_after_s`
//!                             # (or `busiest_relay = true`: the node relaying to the
//!                             # most consumers at that moment)
//! at_s = 10
//! restart_after_s = 3
//! drain = true                # optional: drained (Node::drain, then shutdown) rather
//!                             # than killed
//!
//! relay_linger_s = 10         # optional: NodeConfig::relay_linger of every node (default 10)
//! settle_s = 60               # optional: after duration_s every consumer has left; wait up
//!                             # to this long for every node to be back at its baseline
//!                             # (transports, consumers, pipes, relayed streams) and report it
//!
//! [[latency]]                 # extra link latency, added to the RTT the cost model sees
//! a = 0
//! b = 8
//! ms = 40
//! ```

use std::path::Path;

use serde::Deserialize;

/// How nodes bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Node i bootstraps from node i − 1.
    Chain,
    /// Every node bootstraps from node 0.
    Star,
    /// Node i bootstraps from a random earlier node.
    Random,
}

impl Topology {
    /// The node that node `index` bootstraps from (none for node 0); draws
    /// from `rng` for [`Topology::Random`] only.
    pub fn bootstrap_of(self, index: usize, rng: &mut impl rand::Rng) -> Option<usize> {
        match (index, self) {
            (0, _) => None,
            (_, Self::Chain) => Some(index - 1),
            (_, Self::Star) => Some(0),
            (_, Self::Random) => Some(rng.random_range(0..index)),
        }
    }
}

/// A stream published during the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// Stream id.
    pub id: String,
    /// Index of the node that publishes it.
    pub at: usize,
}

/// Consumers arriving over time at random entry nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// How many.
    pub count: usize,
    /// First arrival, seconds after the streams start.
    #[serde(default)]
    pub arrive_from_s: f64,
    /// Last arrival.
    #[serde(default)]
    pub arrive_until_s: f64,
    /// Shortest stay: with `stay_until_s`, each consumer leaves (stops its
    /// egress) after a random stay in `stay_from_s..=stay_until_s` (or at the
    /// end of the run, if sooner). Without, it stays to the end.
    pub stay_from_s: Option<f64>,
    /// Longest stay.
    pub stay_until_s: Option<f64>,
}

/// One consumer placed by hand (in addition to the random ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedConsumer {
    /// Entry node.
    pub entry: usize,
    /// Index of the stream in `streams`.
    pub stream: usize,
    /// Arrival, seconds after the streams start.
    pub at_s: f64,
    /// When it leaves (stops its egress), seconds after the streams start;
    /// it stays to the end if absent.
    pub leave_at_s: Option<f64>,
}

/// Most mediasoup workers a simulated node may have (the simulation runs every
/// node in one process on a few cores).
pub const MAX_WORKERS: usize = 4;

/// Media settings for a group of nodes: several workers, so that consumers
/// overflow across workers (one pipe per extra worker) and emptied workers close.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersSpec {
    /// Indices of the nodes.
    pub nodes: Vec<usize>,
    /// Workers per node, 1 to [`MAX_WORKERS`].
    pub workers: usize,
    /// Consumers a worker is meant to carry (placement fills a worker at 60 %
    /// of it); mediasoup's guidance, 500, if absent.
    pub consumer_capacity: Option<u32>,
    /// Seconds a worker above the first stays after its last router went; 30
    /// if absent.
    pub idle_grace_s: Option<f64>,
}

/// A node killed and (optionally) restarted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    /// Index of the node; or leave it out and set `busiest_relay`.
    pub node: Option<usize>,
    /// Kill the node that relays to the most consumers at that moment (a
    /// non-origin node in the middle of their paths).
    #[serde(default)]
    pub busiest_relay: bool,
    /// When it is killed, seconds after the streams start.
    pub at_s: f64,
    /// When it starts again after being killed (never if absent).
    pub restart_after_s: Option<f64>,
    /// Drain it ([`mafalda_node::Node::drain`], then shut it down) rather
    /// than kill it; `restart_after_s` counts from the end of the drain.
    #[serde(default)]
    pub drain: bool,
}

/// Extra latency on the link between two nodes (both directions).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    /// One end.
    pub a: usize,
    /// The other end.
    pub b: usize,
    /// Extra latency in milliseconds.
    pub ms: u64,
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name, used in reports.
    pub name: String,
    /// How many nodes.
    pub nodes: usize,
    /// Bootstrap links.
    pub topology: Topology,
    /// Seed of every random choice.
    #[serde(default)]
    pub seed: u64,
    /// Seconds media flows after the streams start.
    pub duration_s: f64,
    /// Whether RTP flows (false: control plane only).
    #[serde(default = "yes")]
    pub media: bool,
    /// Streams published.
    pub streams: Vec<StreamSpec>,
    /// Consumers at random entry nodes.
    pub consumers: ConsumerSpec,
    /// Consumers placed by hand (to build relay chains that churn then breaks; a
    /// consumer at a node that is killed ends with it and counts until then).
    #[serde(default)]
    pub consumer: Vec<PlacedConsumer>,
    /// Nodes killed and restarted.
    #[serde(default)]
    pub churn: Vec<ChurnSpec>,
    /// Extra link latencies.
    #[serde(default)]
    pub latency: Vec<LatencySpec>,
    /// Nodes with several workers (a node in no group has one).
    #[serde(default)]
    pub workers: Vec<WorkersSpec>,
    /// How long a relay keeps a stream nobody consumes there, seconds
    /// (`NodeConfig::relay_linger`; the node's default, 10, if absent).
    pub relay_linger_s: Option<f64>,
    /// With it, every consumer leaves by `duration_s`; then the run waits up
    /// to this long for each surviving node to be back at its baseline (its
    /// transports, consumers, pipes and relayed streams before any consumer
    /// arrived) and reports every node that is not.
    pub settle_s: Option<f64>,
}

fn yes() -> bool {
    true
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown fields.
    #[error("{path} is not a valid scenario: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A value is out of range.
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// Most nodes a scenario may start in one process.
pub const MAX_NODES: usize = 500;

impl Scenario {
    /// The worker settings of node `index`, if a `[[workers]]` group names it.
    pub fn workers_of(&self, index: usize) -> Option<&WorkersSpec> {
        self.workers.iter().find(|group| group.nodes.contains(&index))
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

    fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |message: String| Err(ScenarioError::Invalid(message));
        if !(2..=MAX_NODES).contains(&self.nodes) {
            return invalid(format!("nodes must be 2-{MAX_NODES}"));
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 3600.0) {
            return invalid("duration_s must be in (0, 3600]".into());
        }
        if self.streams.is_empty() {
            return invalid("at least one stream".into());
        }
        for stream in &self.streams {
            if stream.at >= self.nodes {
                return invalid(format!(
                    "stream {} is published at node {}, but there are {}",
                    stream.id, stream.at, self.nodes
                ));
            }
            if self.churn.iter().any(|c| c.node == Some(stream.at)) {
                return invalid(format!("node {} publishes {} and cannot churn", stream.at, stream.id));
            }
        }
        let c = &self.consumers;
        if !(0.0..=c.arrive_until_s).contains(&c.arrive_from_s) || c.arrive_until_s >= self.duration_s {
            return invalid("consumers must arrive in 0 <= arrive_from_s <= arrive_until_s < duration_s".into());
        }
        match (c.stay_from_s, c.stay_until_s) {
            (None, None) => {}
            (Some(from), Some(until)) if from > 0.0 && from <= until && until <= 3600.0 => {}
            (Some(_), Some(_)) => {
                return invalid("consumers must stay 0 < stay_from_s <= stay_until_s <= 3600 seconds".into());
            }
            _ => return invalid("consumers: set both stay_from_s and stay_until_s, or neither".into()),
        }
        let linger = self.relay_linger_s.unwrap_or(10.0);
        if !(linger > 0.0 && linger <= 600.0) {
            return invalid("relay_linger_s must be in (0, 600]".into());
        }
        if let Some(settle) = self.settle_s
            && !(settle > linger && settle <= 3600.0)
        {
            return invalid(format!(
                "settle_s must be longer than the relay linger ({linger} s) and at most 3600, got {settle}"
            ));
        }
        for placed in &self.consumer {
            if placed.entry >= self.nodes || placed.stream >= self.streams.len() {
                return invalid(format!(
                    "placed consumer at node {} of stream {} does not exist",
                    placed.entry, placed.stream
                ));
            }
            if !(placed.at_s >= 0.0 && placed.at_s < self.duration_s) {
                return invalid(format!("placed consumer at node {} must arrive during the run", placed.entry));
            }
            if placed.leave_at_s.is_some_and(|leave| !(leave > placed.at_s && leave < self.duration_s)) {
                return invalid(format!(
                    "placed consumer at node {} must leave after it arrives and before the end",
                    placed.entry
                ));
            }
        }
        for churn in &self.churn {
            match (churn.node, churn.busiest_relay) {
                (Some(node), false) if node < self.nodes => {}
                (None, true) => {}
                _ => return invalid("each churn names one existing `node` or sets `busiest_relay = true`".into()),
            }
            if !(churn.at_s > 0.0 && churn.at_s < self.duration_s) {
                return invalid(format!("churn at {} s is outside the run", churn.at_s));
            }
            if churn.restart_after_s.is_some_and(|after| after <= 0.0) {
                return invalid("restart_after_s must be positive".into());
            }
        }
        for (g, group) in self.workers.iter().enumerate() {
            if !(1..=MAX_WORKERS).contains(&group.workers) {
                return invalid(format!(
                    "workers group {g}: workers must be 1-{MAX_WORKERS} per node, got {}",
                    group.workers
                ));
            }
            if group.nodes.is_empty() {
                return invalid(format!("workers group {g}: `nodes` lists no node"));
            }
            if let Some(node) = group.nodes.iter().find(|n| **n >= self.nodes) {
                return invalid(format!("workers group {g}: node {node} does not exist (there are {})", self.nodes));
            }
            if let Some(node) =
                group.nodes.iter().find(|n| self.workers_of(**n).is_some_and(|first| !std::ptr::eq(first, group)))
            {
                return invalid(format!("workers group {g}: node {node} is already in an earlier group"));
            }
            if group.consumer_capacity == Some(0) {
                return invalid(format!("workers group {g}: consumer_capacity must be at least 1"));
            }
            if group.idle_grace_s.is_some_and(|grace| !(grace > 0.0 && grace <= 3600.0)) {
                return invalid(format!("workers group {g}: idle_grace_s must be in (0, 3600]"));
            }
        }
        for link in &self.latency {
            if link.a >= self.nodes || link.b >= self.nodes || link.a == link.b {
                return invalid(format!("latency link {}-{} is not between two nodes", link.a, link.b));
            }
        }
        Ok(())
    }
}

/// Reads the scenario file at `path` and parses it with `parse`; a parse
/// error names the file.
pub(crate) fn load_file<T>(path: &Path, parse: fn(&str) -> Result<T, ScenarioError>) -> Result<T, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
    parse(&text).map_err(|error| match error {
        ScenarioError::Parse { reason, .. } => ScenarioError::Parse { path: path.display().to_string(), reason },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        name = "t"
        nodes = 3
        topology = "chain"
        duration_s = 5
        [[streams]]
        id = "s"
        at = 0
        [consumers]
        count = 2
    "#;

    #[test]
    fn a_small_scenario_parses_with_defaults() {
        let scenario = Scenario::parse(SMALL).expect("valid");
        assert_eq!((scenario.nodes, scenario.topology, scenario.media), (3, Topology::Chain, true));
    }

    #[test]
    fn bad_scenarios_are_refused_naming_the_problem() {
        for (change, expected) in [
            ("nodes = 3", "nodes = 1"),
            ("at = 0", "at = 9"),
            ("count = 2", "count = 2\narrive_until_s = 9"),
            ("topology = \"chain\"", "topology = \"ring\""),
            ("duration_s = 5", "duration_s = 5\nspeed = 3"),
        ] {
            let text = SMALL.replace(change, expected);
            assert!(Scenario::parse(&text).is_err(), "{expected} must be refused");
        }
    }

    #[test]
    fn worker_groups_are_checked_naming_the_group() {
        let with = |groups: &str| format!("{SMALL}{groups}");
        let ok = Scenario::parse(&with("[[workers]]\nnodes = [1, 2]\nworkers = 3\nidle_grace_s = 2\n")).expect("valid");
        assert_eq!(ok.workers_of(2).map(|g| g.workers), Some(3));
        assert!(ok.workers_of(0).is_none(), "a node in no group has the default");
        for (groups, expected) in [
            ("[[workers]]\nnodes = [1]\nworkers = 5\n", "workers must be 1-4 per node, got 5"),
            ("[[workers]]\nnodes = [1]\nworkers = 0\n", "workers must be 1-4 per node, got 0"),
            ("[[workers]]\nnodes = [3]\nworkers = 2\n", "node 3 does not exist"),
            ("[[workers]]\nnodes = []\nworkers = 2\n", "lists no node"),
            (
                "[[workers]]\nnodes = [1]\nworkers = 2\n[[workers]]\nnodes = [1]\nworkers = 3\n",
                "group 1: node 1 is already",
            ),
            ("[[workers]]\nnodes = [1]\nworkers = 2\nconsumer_capacity = 0\n", "consumer_capacity"),
            ("[[workers]]\nnodes = [1]\nworkers = 2\nidle_grace_s = 0\n", "idle_grace_s"),
        ] {
            let error = Scenario::parse(&with(groups)).expect_err(expected).to_string();
            assert!(error.contains(expected), "{error:?} should say {expected:?}");
        }
    }

    #[test]
    fn churn_fields_are_checked_naming_the_field() {
        // Top-level keys go before the tables, tables after.
        let with = |stay: &str, top: &str, tables: &str| {
            SMALL
                .replace("count = 2", &format!("count = 2\n{stay}"))
                .replace("duration_s = 5", &format!("duration_s = 5\n{top}"))
                + tables
        };
        let stay = "stay_from_s = 1\nstay_until_s = 3";
        let ok = Scenario::parse(&with(
            stay,
            "relay_linger_s = 2\nsettle_s = 8",
            "[[churn]]\nnode = 1\nat_s = 2\ndrain = true\nrestart_after_s = 1\n",
        ))
        .expect("valid");
        assert_eq!((ok.consumers.stay_from_s, ok.consumers.stay_until_s), (Some(1.0), Some(3.0)));
        assert_eq!((ok.relay_linger_s, ok.settle_s), (Some(2.0), Some(8.0)));
        assert!(ok.churn[0].drain, "drained, not killed");
        let plain = Scenario::parse(&with("", "", "[[churn]]\nnode = 1\nat_s = 2\n")).expect("valid");
        assert!(!plain.churn[0].drain && plain.settle_s.is_none() && plain.consumers.stay_from_s.is_none());
        for (text, expected) in [
            (with("stay_from_s = 1", "", ""), "both stay_from_s and stay_until_s"),
            (with("stay_until_s = 1", "", ""), "both stay_from_s and stay_until_s"),
            (with("stay_from_s = 0\nstay_until_s = 1", "", ""), "0 < stay_from_s"),
            (with("stay_from_s = 3\nstay_until_s = 1", "", ""), "stay_from_s <= stay_until_s"),
            (with(stay, "relay_linger_s = 0", ""), "relay_linger_s must be in (0, 600]"),
            (with(stay, "relay_linger_s = 601", ""), "relay_linger_s must be in (0, 600]"),
            (with(stay, "settle_s = 10", ""), "settle_s must be longer than the relay linger (10 s)"),
            (
                with(stay, "relay_linger_s = 2\nsettle_s = 1.5", ""),
                "settle_s must be longer than the relay linger (2 s)",
            ),
            (with(stay, "settle_s = 4000", ""), "at most 3600"),
            (with(stay, "", "[[churn]]\nnode = 0\nat_s = 2\ndrain = true\n"), "node 0 publishes s and cannot churn"),
            (with(stay, "", "[[churn]]\nnode = 1\nat_s = 2\ndrain = \"yes\"\n"), "drain"),
            (with(stay, "", "[[churn]]\nnode = 1\nat_s = 2\ndrain = true\nrestart_after_s = 0\n"), "restart_after_s"),
            (with(stay, "", "[[churn]]\nat_s = 2\ndrain = true\n"), "busiest_relay"),
        ] {
            let error = Scenario::parse(&text).expect_err(expected).to_string();
            assert!(error.contains(expected), "{error:?} should say {expected:?}");
        }
    }

    #[test]
    fn a_placed_consumer_leaves_during_the_run() {
        let placed =
            |leave: &str| format!("{SMALL}[[consumer]]\nentry = 1\nstream = 0\nat_s = 1\nleave_at_s = {leave}\n");
        assert!(Scenario::parse(&placed("3")).is_ok());
        for leave in ["1", "0.5", "5"] {
            assert!(Scenario::parse(&placed(leave)).is_err(), "leaving at {leave} must be refused");
        }
    }
}
