//! `mafalda-sim`: runs a scenario file and writes its report.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Runs a Mafalda Swarm scenario with real nodes on 127.0.0.1 and writes a
/// report (report.json, summary.md, graph.svg, latency.svg). A scenario with
/// `mode = "processes"` runs each node as its own process in its own network
/// namespace (needs root) and writes report.json and summary.md.
#[derive(Debug, Parser)]
#[command(name = "mafalda-sim", version)]
struct Args {
    /// Scenario file (TOML; see simulations/scenarios/).
    #[arg(required_unless_present_any = ["cleanup", "scale"])]
    scenario: Option<PathBuf>,
    /// Directory the report is written to.
    #[arg(long, default_value = "target/simulation")]
    out: PathBuf,
    /// Exit with status 1 when a behaviour check fails (for CI).
    #[arg(long)]
    check: bool,
    /// Process scenarios: the mafalda-node binary to run (default: build it
    /// with `cargo build --release -p mafalda-cli`).
    #[arg(long, value_name = "PATH")]
    node_bin: Option<PathBuf>,
    /// Remove what earlier network labs left behind (namespaces, veths,
    /// bridges, processes in them) when their runner is gone, and exit.
    #[arg(long, conflicts_with_all = ["scenario", "scale"])]
    cleanup: bool,
    /// Write the growth table and plot (scale.md, scale.json, scale.svg) to
    /// --out from these process reports' directories, and exit.
    #[arg(long, value_name = "REPORT_DIR", num_args = 1.., conflicts_with = "scenario")]
    scale: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,mafalda_simulations=info,libp2p_gossipsub=error")
        }))
        .with_writer(std::io::stderr)
        .init();
    if args.cleanup {
        let cleaned = mafalda_simulations::netlab::cleanup_stale()?;
        println!(
            "removed {} namespaces, {} links and {} processes of {} earlier runs {:?}",
            cleaned.namespaces,
            cleaned.links,
            cleaned.processes,
            cleaned.runs.len(),
            cleaned.runs
        );
        return Ok(());
    }
    if !args.scale.is_empty() {
        let table = mafalda_simulations::scale::from_reports(&args.scale)?;
        mafalda_simulations::scale::write(&table, &args.out)
            .with_context(|| format!("cannot write to {}", args.out.display()))?;
        print!("{}", mafalda_simulations::scale::markdown(&table));
        return Ok(());
    }
    let path = args.scenario.clone().context("a scenario file")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if mafalda_simulations::rooms::RoomsScenario::is_rooms(&text) {
        return run_rooms(&args, &path, &runtime);
    }
    if mafalda_simulations::processes::ProcessScenario::is_processes(&text) {
        return run_processes(&args, &path, &runtime);
    }
    let scenario = mafalda_simulations::Scenario::load(&path)?;
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
fn run_rooms(args: &Args, path: &std::path::Path, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    use mafalda_simulations::rooms;
    let scenario = rooms::RoomsScenario::load(path)?;
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

/// A process scenario (`mode = "processes"`): each node its own process in its
/// own network namespace. Ctrl-C or SIGTERM stops it and removes the lab.
fn run_processes(args: &Args, path: &std::path::Path, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    use mafalda_simulations::processes::{self, report};
    let scenario = processes::ProcessScenario::load(path)?;
    mafalda_simulations::netlab::check_root()?;
    let binary = match &args.node_bin {
        Some(binary) => binary.clone(),
        None => processes::build_node(true)?,
    };
    let observations = runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = processes::run(&scenario, &binary, &args.out) => Ok(result?),
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted: the nodes were stopped and the lab removed"),
            _ = terminate.recv() => anyhow::bail!("terminated: the nodes were stopped and the lab removed"),
        }
    })?;
    let report = report::build(&observations);
    report::write(&report, &args.out).with_context(|| format!("cannot write the report to {}", args.out.display()))?;
    print!("{}", report::markdown(&report));
    println!("\nreport written to {}", args.out.display());
    if args.check && !report.passed {
        anyhow::bail!("scenario {} failed its checks", report.scenario);
    }
    Ok(())
}
