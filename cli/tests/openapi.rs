//! `GET /v1/openapi.json` against the real router: every path the router
//! serves is described (a route added without its description fails here),
//! every described method reaches a handler, and every method not described
//! is refused with 405.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

mod common;

use common::NodeProcess;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Status and body of `method url` with the app token and an empty JSON body.
fn request(method: &str, url: &str) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "10", "-X", &method.to_uppercase(), "-H", "authorization: Bearer app-token"])
        .args(["-H", "content-type: application/json", "-d", "{}", "-w", "\n%{http_code}", url])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("a status line");
    (code.trim().parse().expect("an HTTP status"), body.to_owned())
}

/// The paths `.route("…")` gives the router in `node/src/api/mod.rs`.
fn routed_paths() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../node/src/api/mod.rs");
    let source = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {path}: {error}"));
    source.split(".route(\"").skip(1).map(|rest| rest.split('"').next().expect("a path literal").to_owned()).collect()
}

#[test]
fn the_openapi_document_describes_every_route_and_only_real_ones() {
    let node = NodeProcess::start(&["--api-token", "app-token", "--api-admin-token", "admin-token"]);
    let base = format!("http://{}", node.api);
    // Needs no token, like the probes.
    let output =
        Command::new("curl").args(["-s", "--fail", &format!("{base}/v1/openapi.json")]).output().expect("curl");
    assert!(output.status.success(), "the document is served without a token");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["openapi"], "3.0.3");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"), "the binary's version");
    let paths = document["paths"].as_object().expect("paths");

    let described: BTreeSet<String> = paths.keys().cloned().collect();
    let routed = routed_paths();
    assert!(routed.len() >= 10, "routes read from the router: {routed:?}");
    let undescribed: Vec<&String> = routed.difference(&described).collect();
    assert!(undescribed.is_empty(), "routes without a description in node/src/api/openapi.rs: {undescribed:?}");
    let unrouted: Vec<&String> = described.difference(&routed).collect();
    assert!(unrouted.is_empty(), "described paths the router does not serve: {unrouted:?}");

    for (path, operations) in paths {
        let url = format!(
            "{base}{}",
            path.replace("{id}", "cam").replace("{egress}", "egress-1").replace("{session}", "session-1")
        );
        let operations = operations.as_object().expect("operations");
        for method in METHODS {
            let (status, body) = request(method, &url);
            if let Some(operation) = operations.get(method) {
                let summary = operation["summary"].as_str().unwrap_or_default();
                assert!(!summary.is_empty(), "{method} {path} has a summary");
                assert!(
                    operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}: responses"
                );
                // The router's own 404 (no route) has no body; a handler's has the reason.
                assert!(
                    status != 405 && !(status == 404 && body.is_empty()),
                    "{method} {path} reaches a handler: {status} {body}"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is not described, and refused: {body}");
            }
        }
    }
    let (status, _) = node.signal_and_wait("INT", Duration::from_secs(6));
    assert!(status.success(), "still running after every request (the app token cannot drain it): {status}");
}
