//! Multi-node scenarios: start N real nodes on loopback (in this process, each
//! with its own mediasoup worker and libp2p swarm on real sockets), run a
//! workload described in a TOML [`scenario`], and [`report`] what the swarm did:
//! find latency, time to first packet, hops, pipes per stream, load and
//! control-plane traffic per node, recovery after churn and delivery, as JSON,
//! Markdown and [`svg`] plots, with pass/fail checks on behaviour.
//!
//! A scenario with `mode = "processes"` runs every node as its own
//! `mafalda-node` process in its own network namespace instead ([`netlab`],
//! [`processes`]) and measures each node from outside; [`scale`] tabulates
//! such reports over swarm sizes.

pub mod netlab;
pub mod processes;
pub mod report;
pub mod rooms;
pub mod runner;
pub mod scale;
pub mod scenario;
pub mod svg;

use std::path::Path;

use mafalda_nss_link as _;

pub use report::Report;
pub use scenario::Scenario;

/// Writes `report.json`, `summary.md`, `graph.svg` and `latency.svg` into `dir`.
pub fn write_report(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    std::fs::write(dir.join("summary.md"), report::markdown(report))?;
    std::fs::write(dir.join("graph.svg"), svg::graph(report))?;
    std::fs::write(dir.join("latency.svg"), svg::latency_cdf(report))?;
    Ok(())
}
