//! Running the Node.js drivers in `tests/browser/` (headless Chromium with
//! playwright-core, installed by `scripts/setup.sh`) from a test: a driver
//! prints one JSON object on stdout; its stderr is the pages' consoles.

use std::path::Path;
use std::process::Command;

/// A free TCP port on 127.0.0.1 for a driver's page server, and an API
/// configuration that lets pages of that origin (and no other) in: the nodes
/// are told the page's origin before the page exists.
pub fn page_port_and_api() -> (u16, mafalda_node::api::ApiConfig) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut config = mafalda_node::api::ApiConfig::default();
    config.origins = vec![format!("http://127.0.0.1:{port}").parse().expect("origin")];
    (port, config)
}

/// Runs `tests/browser/{script}` with `args`; returns its JSON result and stderr.
pub async fn drive(script: &str, args: Vec<String>) -> (serde_json::Value, String) {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser").join(script);
    let output =
        tokio::task::spawn_blocking(move || {
            Command::new("node").arg(&driver).args(args).output().unwrap_or_else(|e| {
                panic!("node runs {} (scripts/setup.sh installs its packages): {e}", driver.display())
            })
        })
        .await
        .expect("driver task");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let result = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the driver prints JSON ({e}): {stdout}\n{stderr}"));
    (result, stderr)
}
