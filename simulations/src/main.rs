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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    let text =
        std::fs::read_to_string(&args.scenario).with_context(|| format!("cannot read {}", args.scenario.display()))?;
    if mafalda_simulations::rooms::RoomsScenario::is_rooms(&text) {
        return run_rooms(&args, &runtime);
    }
    let scenario = mafalda_simulations::Scenario::load(&args.scenario)?;
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

/// A rooms scenario (a `[rooms]` table): apps in rooms over ROPE.
fn run_rooms(args: &Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    use mafalda_simulations::rooms;
    let scenario = rooms::RoomsScenario::load(&args.scenario)?;
    let observations = runtime.block_on(rooms::run(&scenario))?;
    let report = rooms::build(&observations);
    rooms::write(&observations, &report, &args.out)
        .with_context(|| format!("cannot write the report to {}", args.out.display()))?;
    print!("{}", rooms::markdown(&report, &scenario));
    println!("\nreport written to {}", args.out.display());
    if args.check && !report.passed {
        anyhow::bail!("scenario {} failed its checks", report.scenario);
    }
    Ok(())
}
