//! Private swarms from the command line: `mafalda-node swarm-key` makes a key
//! that `run --swarm-key` takes; bad key files and QUIC with a key are refused
//! at start with a message that says why.

use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_mafalda-node");

fn run_to_exit(args: &[&str]) -> (bool, String) {
    let output = Command::new(BINARY)
        .arg("run")
        .args(["--api", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run mafalda-node");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn swarm_key_prints_a_fresh_key_in_the_libp2p_format() {
    let print = || {
        let output = Command::new(BINARY).arg("swarm-key").output().expect("run swarm-key");
        assert!(output.status.success());
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let (first, second) = (print(), print());
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[..2], ["/key/swarm/psk/1.0.0/", "/base16/"], "{first}");
    assert_eq!(lines[2].len(), 64, "{first}");
    assert!(lines[2].chars().all(|c| c.is_ascii_hexdigit()), "{first}");
    assert_ne!(first, second, "each key is fresh");
}

#[test]
fn bad_key_files_and_quic_with_a_key_are_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("mafalda-swarm-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.key");
    std::fs::write(&bad, "/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n").expect("write");
    let (ok, stderr) = run_to_exit(&["--swarm-key", bad.to_str().expect("path")]);
    assert!(!ok && stderr.contains("bad.key"), "a bad key file names itself: {stderr}");

    let missing = dir.join("missing.key");
    let (ok, stderr) = run_to_exit(&["--swarm-key", missing.to_str().expect("path")]);
    assert!(!ok && stderr.contains("missing.key"), "{stderr}");

    let good = dir.join("swarm.key");
    let key = Command::new(BINARY).arg("swarm-key").output().expect("swarm-key").stdout;
    std::fs::write(&good, key).expect("write");
    let (ok, stderr) =
        run_to_exit(&["--swarm-key", good.to_str().expect("path"), "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"]);
    assert!(!ok && stderr.to_lowercase().contains("quic"), "QUIC with a key is refused clearly: {stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
