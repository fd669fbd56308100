//! The process lab in the test command: 10 `mafalda-node` processes, each in
//! its own network namespace with its own address (`scenarios/lab-10.toml`).
//! It fails when a node does not join, a stream published at one node is not
//! found from every other, a node has more peers than the scenario allows, a
//! node process dies, or the lab leaves a namespace, veth, bridge, claim file
//! or iptables rule behind, after a run that worked and after one that failed
//! (a node that cannot start). Figures are written to `target/process-lab/`,
//! not asserted. Needs root (the machine's test command runs as root).

use std::path::{Path, PathBuf};
use std::time::Instant;

use mafalda_simulations::netlab;
use mafalda_simulations::processes::{self, ProcessError, ProcessScenario, report};

/// The node binary: `MAFALDA_NODE_BIN`, or built by cargo in this profile.
fn node_binary() -> PathBuf {
    processes::node_binary(!cfg!(debug_assertions)).expect("build mafalda-node")
}

/// What carries `run`'s prefix anywhere on the machine: namespaces and links,
/// its claim file, root-namespace iptables rules about lab chains.
fn traces_of(run: &str) -> Vec<String> {
    let mut found: Vec<String> =
        netlab::leftovers().expect("list namespaces and links").into_iter().filter(|n| n.starts_with(run)).collect();
    for claim in std::fs::read_dir(netlab::STATE_DIR).into_iter().flatten().flatten() {
        if std::fs::read_to_string(claim.path()).unwrap_or_default().starts_with(run) {
            found.push(claim.path().display().to_string());
        }
    }
    let rules = std::process::Command::new("iptables-save").output().expect("iptables-save");
    let rules = String::from_utf8_lossy(&rules.stdout);
    found.extend(rules.lines().filter(|l| l.contains("MFS_")).map(|l| format!("root iptables: {l}")));
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_of_processes_in_namespaces_joins_finds_and_leaves_nothing_behind() {
    netlab::check_root().expect("the process lab needs root");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scenario = ProcessScenario::load(&root.join("scenarios/lab-10.toml")).expect("the lab scenario is valid");
    let binary = node_binary();
    let out = root.join("../target/process-lab");

    let lab = processes::make_lab(scenario.nodes).await.expect("make the lab");
    let run = lab.run_id().to_owned();
    assert!(!traces_of(&run).is_empty(), "the lab exists while it runs");
    let observations = processes::run_in_lab(&scenario, lab, &binary, &out, None, Instant::now()).await;
    let leftovers = traces_of(&run);
    let observations = observations.expect("the swarm runs");
    let report = report::build(&observations);
    report::write(&report, &out).expect("write the report");
    let summary = report::markdown(&report);
    eprintln!("{summary}");
    assert!(leftovers.is_empty(), "the lab left {leftovers:?} behind");
    for check in &report.checks {
        assert!(check.passed, "{}: {}\n\n{summary}", check.name, check.detail);
    }
    // The checks above hold figures that must exist for them to mean anything.
    let expected_finds = scenario.streams.len() * (scenario.nodes - 1);
    assert_eq!(report.finds.attempted, expected_finds, "every other node looked for every stream");
    let inside = report.inside.as_ref().expect("the nodes' own figures were read after the finds");
    assert_eq!(inside.nodes_read, scenario.nodes, "every node's /metrics: {summary}");
    let counted = inside.finds.as_ref().map_or(0.0, |f| f.count);
    assert!(counted >= expected_finds as f64, "the nodes counted every find ({counted}): {summary}");
    assert!(inside.describes_ok >= 1.0, "finding nodes asked providers to describe: {summary}");
    assert!(report.finds_cost.cpu_s > 0.0 && report.finds_cost.wall_s > 0.0, "the finds cost CPU: {summary}");
    assert!(report.find_cpu_ms.is_some_and(f64::is_finite), "the CPU per find is in report.json: {summary}");
    assert_eq!(report.peers_tcp_max.count, scenario.nodes, "every namespace's TCP table was read");
    assert!(report.peers_tcp_max.min >= 1.0, "every node has a libp2p peer over its own interface: {summary}");
    // The runner's own requests cross every node's interface: the accounting
    // rules saw them (idle nodes may send no control traffic in a short window).
    assert_eq!(report.control_bps.count, scenario.nodes, "the counters were read in every namespace");
    assert!(report.classes_bps.get("api").is_some_and(|api| api.min > 0.0), "the kernel counted traffic: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_node_cannot_start_fails_and_leaves_nothing_behind() {
    netlab::check_root().expect("the process lab needs root");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("scenarios/lab-10.toml")).expect("read the scenario");
    // A flag value the node refuses: it exits at once.
    let args = text.lines().find(|l| l.starts_with("node_args")).expect("the scenario sets node_args");
    let text = text.replace(args, "node_args = [\"--max-connections\", \"0\"]").replace("nodes = 10", "nodes = 3");
    let scenario = ProcessScenario::parse(&text.replace("at = 8", "at = 2")).expect("valid");
    let lab = processes::make_lab(scenario.nodes).await.expect("make the lab");
    let run = lab.run_id().to_owned();
    let out = root.join("../target/process-lab-failing");
    let result = processes::run_in_lab(&scenario, lab, &node_binary(), &out, None, Instant::now()).await;
    assert!(matches!(result, Err(ProcessError::Exited { index: 0, .. })), "node 0 exits: {result:?}");
    let leftovers = traces_of(&run);
    assert!(leftovers.is_empty(), "the failed run left {leftovers:?} behind");
}
