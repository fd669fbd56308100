//! The README's API examples, run as a new user would run them: the `sh`
//! blocks of "Running nodes" that talk to a node's API (`curl`, and the
//! `mafalda-node` client subcommands), each against two fresh nodes of one
//! swarm standing in for `localhost:7700` and `localhost:7701`. A command that
//! fails, or an HTTP answer that is an error, fails the test: the README
//! cannot drift from the API again (its `curl -d` once sent a form content
//! type the API refuses).

use std::process::Command;

mod common;

use common::{BINARY, NodeProcess};

/// The README, read from the workspace root.
fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// The `sh` blocks of the section headed `## {title}` (up to the next `## `).
fn shell_blocks(readme: &str, title: &str) -> Vec<String> {
    let heading = format!("## {title}\n");
    let start = readme.find(&heading).unwrap_or_else(|| panic!("the README has a section {title:?}"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("a closed code block");
        blocks.push(body[..close].to_owned());
        rest = &body[close..][3..];
    }
    blocks
}

/// Runs `block` with `sh -e` against nodes `a` (the README's port 7700) and `b`
/// (7701): `mafalda-node` is the binary under test and `curl` fails on an
/// HTTP error. Returns what it printed.
fn run_block(block: &str, a: &NodeProcess, b: &NodeProcess) -> String {
    let script = block
        .replace("localhost:7700", &a.api)
        .replace("localhost:7701", &b.api)
        .replace("127.0.0.1:7700", &a.api)
        .replace("127.0.0.1:7701", &b.api);
    let binary_dir = std::path::Path::new(BINARY).parent().expect("the binary's directory");
    let path = format!("{}:{}", binary_dir.display(), std::env::var("PATH").unwrap_or_default());
    let prelude = "curl() { command curl --fail-with-body --max-time 20 \"$@\"; echo; }\n";
    let output = Command::new("sh")
        .args(["-e", "-c", &format!("{prelude}{script}")])
        .env("PATH", path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the README's block failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_readme_api_examples_work_as_written() {
    let readme = readme();
    let blocks: Vec<String> = shell_blocks(&readme, "Running nodes")
        .into_iter()
        .filter(|block| block.contains("localhost:77") || block.contains("--api 127.0.0.1:77"))
        .collect();
    assert_eq!(blocks.len(), 2, "the curl block and the client block: {blocks:?}");
    for block in &blocks {
        let mut nodes = common::loopback_swarm(2).into_iter();
        let (a, b) = (nodes.next().expect("A"), nodes.next().expect("B"));
        let printed = run_block(block, &a, &b);
        // What the examples say they show, checked loosely (the README's
        // comments): the stream was found at B with A as its provider, and
        // taken out there.
        assert!(printed.contains(&a.peer_id), "B's find names A as the provider:\n{printed}");
        assert!(printed.contains("5004"), "the egress to port 5004 is reported:\n{printed}");
        for node in [b, a] {
            let (status, _) = node.signal_and_wait("INT", std::time::Duration::from_secs(6));
            assert!(status.success(), "exit after SIGINT: {status}");
        }
    }
}
