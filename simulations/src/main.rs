//! `mafalda-sim`: runs a scenario file and writes its report.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Runs a Mafalda Swarm scenario with real nodes on 127.0.0.1 and writes a
/// report (report.json, summary.md, graph.svg, latency.svg).
#[derive(Debug, Parser)]
#[command(name = "mafalda-sim", version)]
struct Args {
    /// Scenario file (TOML; see simulations/scenarios/).
    scenario: PathBuf,
    /// Directory the report is written to.
    #[arg(long, default_value = "target/simulation")]
    out: PathBuf,
    /// Exit with status 1 when a behaviour check fails (for CI).
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,mafalda_simulations=info,libp2p_gossipsub=error")
        }))
        .with_writer(std::io::stderr)
        .init();
    let scenario = mafalda_simulations::Scenario::load(&args.scenario)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    let observations = runtime.block_on(mafalda_simulations::runner::run(&scenario))?;
    let report = mafalda_simulations::report::build(&observations);
    mafalda_simulations::write_report(&report, &args.out)
        .with_context(|| format!("cannot write the report to {}", args.out.display()))?;
    print!("{}", mafalda_simulations::report::markdown(&report));
    println!("\nreport written to {}", args.out.display());
    if args.check && !report.passed {
        anyhow::bail!("scenario {} failed its checks", report.scenario);
    }
    Ok(())
}
