//! `mafalda-node`: runs one Mafalda Swarm node.
//!
//! Flags are parsed in [`args`]; this file sets up logging, runs the chosen
//! subcommand and maps SIGINT/SIGTERM onto an orderly shutdown.

mod args;
mod client;
mod config_file;
mod demo;
mod process_exit;
mod top;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use mafalda_node::Node;
use mafalda_nss_link as _;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, Command, LogFormat, RunArgs};

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    if let (Command::Run(args), Some(("run", run_matches))) = (&mut cli.command, matches.subcommand())
        && let Err(error) = args.apply_config_file(run_matches)
    {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let serves_until_exit = matches!(cli.command, Command::Run(_));
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(*args).await,
            Command::Demo { seconds } => match wait_for_signal() {
                Ok(stop) => demo::run(seconds, stop).await,
                Err(error) => Err(error),
            },
            Command::SwarmKey => {
                print!("{}", mafalda_swarm::SwarmKey::generate().to_key_file());
                Ok(())
            }
            Command::Status { target } => client::status(&target).await,
            Command::Top { target, interval, once } => {
                top::top(&target, std::time::Duration::from_secs_f64(interval.max(0.1)), once).await
            }
            Command::Publish { stream, tracks, source, target } => {
                client::publish(&target, &stream, tracks, source).await
            }
            Command::Find { stream, target } => client::find(&target, &stream).await,
            Command::Consume { stream, to, ports, sdp, target } => {
                client::consume(&target, &stream, to, ports, sdp.as_deref()).await
            }
        }
    });
    if serves_until_exit && result.is_ok() {
        // The node has stopped; its API still answers (/readyz 503) and must
        // until the very end: shutting the runtime down would close the
        // listener first and refuse connections from a running process.
        process_exit::exit(0);
    }
    // Worker threads are already closed; don't wait for stray blocking tasks.
    runtime.shutdown_timeout(Duration::from_millis(200));
    let code = match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            1
        }
    };
    process_exit::exit(code)
}

/// Logs go to stderr (stdout carries the node's identity and addresses);
/// `RUST_LOG` selects what is shown, `info` by default.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).init(),
        // The event's fields at the top level (`message`, `stream`, …) and the
        // span it happened in, as collectors index them.
        LogFormat::Json => lines.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Handlers first: a signal that arrives while starting must still stop us cleanly.
    let mut signals = Signals::install()?;
    // The API's settings first: a refusal must come before any side effect (an identity file).
    let api_config = args.api_config()?;
    let config = args.node_config()?;
    let listener = tokio::net::TcpListener::bind(args.api)
        .await
        .with_context(|| format!("cannot listen for the API on {}", args.api))?;
    let node = Arc::new(Node::start(config).await.context("starting the node")?);
    let (api_addr, api_task) = mafalda_node::api::serve_with(Arc::clone(&node), listener, api_config)?;

    say(&format!("peer id: {}", node.peer_id()));
    for addr in node.listen_addrs().await? {
        say(&format!("listening on: {addr}"));
    }
    say(&format!("api: http://{api_addr}/v1/status"));

    let why = tokio::select! {
        signal = signals.next() => signal,
        () = node.drained() => "drained through the API",
    };
    if why == "SIGTERM" {
        // Drain with the API still up: /readyz answers 503 the whole time.
        info!("SIGTERM: draining (a second signal stops at once)");
        tokio::select! {
            report = node.drain() => info!(?report, "drained"),
            signal = signals.next() => warn!(signal, "stopping before the drain is over"),
        }
    }
    info!(why, "shutting down");
    // The node first, the API never: until the process exits, a load
    // balancer still gets an answer (/readyz 503), not a refused connection.
    // Other handles (an app's WebSocket session) may still be alive: the
    // node stops all the same, and they see a stopped node.
    if tokio::time::timeout(SHUTDOWN_GRACE, node.shutdown()).await.is_err() {
        warn!(grace = ?SHUTDOWN_GRACE, "shutdown did not finish in time; exiting anyway");
    }
    // The API task keeps serving: `main` exits the process without closing it.
    drop(api_task);
    Ok(())
}

/// Prints a line on stdout; a closed stdout (the reader went away) is not an error.
fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// The SIGINT and SIGTERM handlers, installed once.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// The demo's stop: the first SIGINT or SIGTERM.
fn wait_for_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    let mut signals = Signals::install()?;
    Ok(async move { signals.next().await })
}
