//! Real browsers against a swarm: headless Chromium (Debian's) publishes its
//! fake camera and microphone with mediasoup-client at node A of a line
//! A ← B ← C, and a second page plays the stream from node C. The receiving
//! page's `getStats()` must show inbound bytes and decoded frames growing, and
//! node C must hold the stream as a relay (piped from another node).
//! `tests/browser/drive.mjs` does the browser side; `scripts/setup.sh`
//! installs chromium and its npm packages.

use std::path::Path;

use mafalda_tests::browser::{drive, page_site_and_api};
use mafalda_tests::node::webrtc_node_with_api_config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_publishes_at_one_node_and_another_plays_it_from_a_third() {
    let (site, config) = page_site_and_api();
    let (a, a_api, _) = webrtc_node_with_api_config(None, config.clone()).await;
    let (b, _, _) = webrtc_node_with_api_config(Some(&a), config.clone()).await;
    let (c, c_api, _) = webrtc_node_with_api_config(Some(&b), config).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-consumer.png");
    let (result, stderr) = drive(
        "drive.mjs",
        vec![
            "--publish".into(),
            format!("ws://{a_api}/v1/rope"),
            "--consume".into(),
            format!("ws://{c_api}/v1/rope"),
            "--stream".into(),
            "webcam".into(),
            "--status".into(),
            format!("http://{c_api}/v1/status"),
            "--screenshot".into(),
            screenshot.to_string_lossy().into_owned(),
        ]
        .into_iter()
        .chain(site.args())
        .collect(),
    )
    .await;
    eprintln!("browser result: {result}");
    assert_eq!(result["ok"], true, "inbound bytes and decoded frames grow: {result}\n{stderr}");
    let (first, second) = (&result["first"], &result["second"]);
    assert!(second["framesDecoded"].as_u64() > first["framesDecoded"].as_u64(), "{result}");
    assert!(second["bytesReceived"].as_u64() > first["bytesReceived"].as_u64(), "{result}");
    let stream = &result["node"]["streams"][0];
    assert_eq!(stream["stream"], "webcam", "node C held the stream while it played: {result}");
    assert_eq!(stream["path"][0], a.peer_id().to_string(), "it came from A");
    assert!(stream["upstream"].is_string(), "C got it through a pipe from another node: {result}");
    assert!(screenshot.exists(), "a screenshot of the playing page");
    drop((a, b, c));
}

/// A failed DTLS handshake (the page announces a fingerprint that is not its
/// own) is an error the page shows and the node counts, not a silent black video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dtls_handshake_is_shown_in_the_page_and_counted_by_the_node() {
    let (site, config) = page_site_and_api();
    let (a, a_api, _) = webrtc_node_with_api_config(None, config).await;
    let (result, stderr) = drive(
        "drive.mjs",
        vec!["--break-dtls".into(), format!("ws://{a_api}/v1/rope"), "--stream".into(), "broken".into()]
            .into_iter()
            .chain(site.args())
            .collect(),
    )
    .await;
    eprintln!("browser result: {result}");
    assert_eq!(result["ok"], true, "the page says the connection failed: {result}\n{stderr}");
    let mut metrics = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    a.register_metrics(&mut registry);
    prometheus_client::encoding::text::encode(&mut metrics, &registry).expect("encode");
    assert!(metrics.contains("webrtc_dtls_failures_total 1"), "the node counted the failure: {metrics}");
    drop(a);
}
