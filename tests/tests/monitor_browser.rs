//! The monitor page in a real browser and a node that wants a token: the
//! page asks for it and draws nothing without it, or with a wrong one. (The
//! page drawing a live swarm of node processes is `cli/tests/monitor_page.rs`.)

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use mafalda_node::api::ApiConfig;
use mafalda_tests::node::connected_webrtc_nodes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

const TOKEN: &str = "monitor-page-token";

/// Reads the driver's lines until one's state passes `check` or `within`
/// passes; that state, or the last one seen.
async fn until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> (bool, Value) {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = Value::Null;
    loop {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let Ok(parsed) = serde_json::from_str::<Value>(&line) else { continue };
                if parsed.get("state").is_none() {
                    continue;
                }
                if check(&parsed["state"]) {
                    return (true, parsed["state"].clone());
                }
                last = parsed["state"].clone();
            }
            Ok(_) | Err(_) => return (false, last),
        }
    }
}

/// Opens `/monitor` at `api` with the driver (`token` in its URL if given) and
/// returns the first state the page reports with an error.
async fn first_error(api: std::net::SocketAddr, token: Option<&str>) -> Value {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/drive-monitor.mjs");
    let mut command = Command::new("node");
    command.arg(driver).args(["--url", &format!("http://{api}/monitor"), "--seconds", "30"]);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("run the driver");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (_, state) = until(&mut lines, Duration::from_secs(20), |s| !s["error"].is_null()).await;
    stdin.write_all(b"quit\n").await.ok();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_page_asks_for_the_token_and_shows_nothing_without_it() {
    let mut config = ApiConfig::default();
    config.token = Some(TOKEN.into());
    let nodes = connected_webrtc_nodes(1, config).await;
    let api = nodes[0].1;
    let state = first_error(api, None).await;
    assert_eq!(state["error"], "the node wants a token", "{state:#}");
    assert_eq!(state["nodes"].as_array().map(Vec::len), Some(0), "nothing drawn: {state:#}");
    assert_eq!(state["connected"], false);
    let state = first_error(api, Some("not-the-token")).await;
    assert_eq!(state["error"], "the node refused the token", "{state:#}");
    assert_eq!(state["nodes"].as_array().map(Vec::len), Some(0), "{state:#}");
}
