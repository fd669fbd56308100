//! What operators deploy with: the systemd unit passes `systemd-analyze
//! verify` without a warning and the node starts from the command line it
//! gives with the example settings (a misspelt key or a flag the binary lost
//! would stop it); the Grafana dashboard draws only series the nodes export;
//! the Dockerfile builds as the setup script does and its runtime stage has
//! the binary's libraries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

use common::{BINARY, NodeProcess};

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name)
}

/// The unit's `ExecStart` line, split on whitespace (it has no quoting).
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit.lines().find_map(|line| line.strip_prefix("ExecStart=")).expect("the unit has an ExecStart");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_systemd_unit_verifies_and_starts_the_node_with_the_example_settings() {
    let unit = std::fs::read_to_string(deploy_file("mafalda-node.service")).expect("read the unit");
    let dir = std::env::temp_dir().join(format!("mafalda-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let command = exec_start(&unit);
    assert_eq!(command[0], "/usr/local/bin/mafalda-node", "where the unit's comments install it");

    // systemd checks the unit with the binary under test in its place.
    let copy = dir.join("mafalda-node.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/mafalda-node", BINARY)).expect("write the unit");
    let verified = Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect("run systemd-analyze");
    let complaints = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success() && complaints.trim().is_empty(), "systemd-analyze verify: {complaints}");

    // The node starts from the unit's command line and the example settings;
    // only the addresses are moved to loopback ports of this test (flags win
    // over the file), and the identity to a temporary file.
    let settings = dir.join("node.toml");
    std::fs::copy(deploy_file("node.toml"), &settings).expect("copy the settings");
    let identity = dir.join("node.key");
    let mut args: Vec<String> = Vec::new();
    let mut rest = command[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "run" => {}
            "--config" => {
                rest.next();
                args.extend(["--config".into(), settings.display().to_string()]);
            }
            "--identity" => {
                rest.next();
                args.extend(["--identity".into(), identity.display().to_string()]);
            }
            other => args.push(other.to_owned()),
        }
    }
    let (log_format, run_args) = args.split_at(2);
    assert_eq!(log_format, ["--log-format", "json"], "the unit logs JSON lines for the journal");
    // (`--log-format` is global: it may follow `run`, as NodeProcess puts it.)
    let mut here: Vec<&str> = log_format.iter().chain(run_args).map(String::as_str).collect();
    here.extend(["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--media-ip", "127.0.0.1"]);
    let node = NodeProcess::start(&here);
    assert!(node.peer_id.starts_with("12D3KooW"), "started: {}", node.peer_id);
    assert!(identity.exists(), "the identity is kept where the unit says");
    let (status, took) = node.signal_and_wait("TERM", Duration::from_secs(10));
    assert!(status.success(), "SIGTERM (systemd's stop) drains and exits 0: {status}");
    assert!(took < Duration::from_secs(45), "within the unit's TimeoutStopSec: {took:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The names of the samples in a `/metrics` answer (`mafalda_streams`,
/// `mafalda_rope_calls_total`, `mafalda_find_latency_seconds_bucket`, …).
fn sample_names(exposition: &str) -> std::collections::HashSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// `deploy/grafana-dashboard.json` asks only for series the nodes export
/// (a renamed metric would leave a panel empty without a word), and every
/// panel queries the dashboard's data source and node selection.
#[test]
fn the_grafana_dashboard_asks_only_for_metrics_a_node_exports() {
    let text = std::fs::read_to_string(deploy_file("grafana-dashboard.json")).expect("read the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "streams, workers, peers, bytes, finds, calls…: {} panels", panels.len());
    let mut queries: Vec<String> = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: the dashboard's data source");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty()).expect("queries");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            assert!(expr.contains(r#"instance=~"$instance""#), "{title}: follows the node selection: {expr}");
            queries.push(expr.to_owned());
        }
    }
    let variables = dashboard["templating"]["list"].as_array().expect("variables");
    queries.extend(variables.iter().filter_map(|v| v["definition"].as_str().map(str::to_owned)));

    // Two nodes that have published, found, piped and taken out a stream
    // export every series the dashboard draws.
    let mut nodes = common::loopback_swarm(2).into_iter();
    let (a, b) = (nodes.next().expect("A"), nodes.next().expect("B"));
    let _sink = common::publish_cam_and_take_it_out(&a, &b);
    let mut exported = sample_names(&common::curl_json("GET", &format!("http://{}/metrics", a.api), None));
    exported.extend(sample_names(&common::curl_json("GET", &format!("http://{}/metrics", b.api), None)));

    let mut asked = std::collections::BTreeSet::new();
    for query in &queries {
        let words = query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        asked.extend(words.filter(|w| w.starts_with("mafalda_") || w.starts_with("libp2p_")).map(str::to_owned));
    }
    let missing: Vec<&String> = asked.iter().filter(|name| !exported.contains(*name)).collect();
    assert!(missing.is_empty(), "the dashboard asks for series no node exports: {missing:?} (asked: {asked:?})");
    assert!(asked.len() >= 10, "the dashboard draws the node's main series: {asked:?}");
    for node in [b, a] {
        let (status, _) = node.signal_and_wait("INT", Duration::from_secs(6));
        assert!(status.success(), "exit after SIGINT: {status}");
    }
}

/// The Debian package holding `library` (a path `ldd` printed), if any.
fn debian_package_of(library: &str) -> Option<String> {
    let real = std::fs::canonicalize(library).ok()?;
    let real = real.to_str()?;
    // Merged /usr: dpkg may know the file under either name.
    let names = [real.to_owned(), real.strip_prefix("/usr").unwrap_or(real).to_owned(), format!("/usr{real}")];
    names.iter().find_map(|name| {
        let output = Command::new("dpkg").args(["-S", name]).output().ok()?;
        let line = String::from_utf8_lossy(&output.stdout).lines().next()?.to_owned();
        Some(line.split(':').next()?.to_owned())
    })
}

/// The Dockerfile builds with the setup script (`--node-only`) and the
/// release command of the README, and its runtime stage installs the Debian
/// package of every shared library the binary needs beyond what Debian's
/// slim image has. (`docker build` itself needs a daemon, which CI has not.)
#[test]
fn the_dockerfile_builds_as_setup_does_and_its_runtime_has_the_binarys_libraries() {
    let dockerfile = std::fs::read_to_string(deploy_file("../Dockerfile")).expect("read the Dockerfile");
    let stages: Vec<&str> = dockerfile.lines().filter(|line| line.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage: {stages:?}");
    assert!(stages[1].contains("debian:bookworm"), "the runtime is Debian bookworm: {}", stages[1]);
    for step in ["./scripts/setup.sh --node-only", "cargo build --release --locked -p mafalda-cli"] {
        assert!(dockerfile.contains(step), "the build runs {step}");
    }
    let runtime = &dockerfile[dockerfile.rfind("FROM ").expect("a runtime stage")..];
    let install = runtime.lines().find(|line| line.contains("apt-get install")).expect("the runtime installs packages");
    let installed: Vec<&str> = install
        .split_whitespace()
        .skip_while(|word| *word != "--no-install-recommends")
        .skip(1)
        .take_while(|word| !matches!(*word, "\\" | "&&"))
        .collect();
    assert!(!installed.is_empty(), "packages after --no-install-recommends: {install}");
    // In debian:bookworm-slim already (Essential: yes).
    let in_slim = ["libc6", "libgcc-s1"];
    let ldd = Command::new("ldd").arg(BINARY).output().expect("run ldd");
    let libraries = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let mut needed = std::collections::BTreeSet::new();
    for line in libraries.lines() {
        let Some(path) = line.split("=>").nth(1).and_then(|rest| rest.split_whitespace().next()) else { continue };
        let package = debian_package_of(path).unwrap_or_else(|| panic!("no Debian package holds {path}"));
        needed.insert(package.trim_end_matches(":amd64").to_owned());
    }
    assert!(needed.iter().any(|p| p == "libnss3"), "ldd read: {needed:?}");
    // A library's package is installed if it or a package depending on it is
    // (libnss3 brings libnspr4).
    let brought = |package: &str| {
        installed.iter().any(|top| {
            *top == package || {
                let depends = Command::new("apt-cache").args(["depends", "--no-recommends", top]).output();
                depends.is_ok_and(|d| String::from_utf8_lossy(&d.stdout).contains(&format!("Depends: {package}")))
            }
        })
    };
    let missing: Vec<&String> = needed.iter().filter(|p| !in_slim.contains(&p.as_str()) && !brought(p)).collect();
    assert!(missing.is_empty(), "the runtime stage lacks {missing:?} (installs {installed:?}; needs {needed:?})");
}
