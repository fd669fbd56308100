//! The CI gate: runs `scenarios/ci.toml` (9 real nodes, 3 streams, a relay
//! killed and restarted, three nodes with several workers) and fails when
//! discovery, delivery or recovery breaks, or when consumers do not overflow
//! across workers or an emptied worker is not closed.
//! The report lands in `target/simulation-ci/` for a person to look at.

use std::path::Path;

use mafalda_simulations::{Scenario, report, runner, write_report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_scenario_finds_delivers_and_recovers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scenario = Scenario::load(&root.join("scenarios/ci.toml")).expect("the CI scenario is valid");
    let observations = runner::run(&scenario).await.expect("the scenario runs");
    let report = report::build(&observations);
    let out = root.join("../target/simulation-ci");
    write_report(&report, &out).expect("write the report");
    let summary = report::markdown(&report);
    eprintln!("{summary}");
    assert!(
        !report.churn.is_empty() && !report.churn[0].affected.is_empty(),
        "the churn broke a relay chain: {summary}"
    );
    for check in &report.checks {
        assert!(check.passed, "{}: {}\n\n{summary}", check.name, check.detail);
    }
    // The multi-worker nodes (see the scenario): consumers overflowed across
    // workers, and a worker emptied by the consumers leaving node 7 was closed.
    let node7 = &observations.nodes[7];
    assert!(node7.workers_peak >= 2, "node 7 overflowed onto other workers: {node7:?}\n\n{summary}");
    assert!(node7.workers_closed >= 1, "node 7 closed an emptied worker: {node7:?}\n\n{summary}");
}
