//! `deploy/`: the systemd unit passes `systemd-analyze verify` without a
//! warning, and the node starts from the command line it gives with the
//! example settings file (a misspelt key or a flag the binary lost would stop
//! it).

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
