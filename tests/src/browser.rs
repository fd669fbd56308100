//! Running the Node.js drivers in `tests/browser/` (headless Chromium with
//! playwright-core, installed by `scripts/setup.sh`) from a test: a driver
//! prints one JSON object on stdout; its stderr is the pages' consoles.

use std::path::Path;
use std::process::Command;

/// Where a driver serves its pages: a loopback address of this test's own
/// and a port that was free on it ([`crate::ports`]: the nodes must be told
/// the page's origin before the page exists).
#[derive(Clone, Copy, Debug)]
pub struct PageSite(std::net::SocketAddr);

impl PageSite {
    /// The `--page-host` and `--page-port` arguments of the drivers.
    pub fn args(&self) -> Vec<String> {
        vec!["--page-host".into(), self.0.ip().to_string(), "--page-port".into(), self.0.port().to_string()]
    }

    /// The pages' origin, as the nodes must list it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.0)
    }
}

/// A page site and an API configuration that lets pages of that origin (and
/// no other) in.
pub fn page_site_and_api() -> (PageSite, mafalda_node::api::ApiConfig) {
    let site = PageSite(crate::ports::unshared_tcp_addr());
    let mut config = mafalda_node::api::ApiConfig::default();
    config.origins = vec![site.origin().parse().expect("origin")];
    (site, config)
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
