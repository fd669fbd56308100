//! The acceptance for Remote Mediasoup: an app written against the
//! `mediasoup` npm API runs unchanged on a node. `clients/remote-mediasoup/
//! example/app.js` has `require('mediasoup')`, which its package.json maps to
//! remote-mediasoup; here it runs against a real node on 127.0.0.1, Debian's
//! ffmpeg sends a VP8 test pattern into its plain transport, and headless
//! Chromium (`tests/browser/drive-example.mjs`) plays the track from the app's
//! page with mediasoup-client. The page's `getStats()` must show decoded
//! frames growing. `scripts/setup.sh` installs ffmpeg, chromium and the npm
//! packages.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mafalda_tests::node::webrtc_node_with_api;
use mafalda_tests::process::Children;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The first line the app prints (its JSON start line), within 30 s.
async fn start_line(app: &mut Child) -> serde_json::Value {
    let stdout = app.stdout.take().expect("piped stdout");
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the app starts within 30 s")
        .expect("read task");
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("the app prints its start line as JSON ({e}): {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mediasoup_example_app_runs_unchanged_on_a_node_from_ffmpeg_to_chromium() {
    let example = repo().join("clients/remote-mediasoup/example");
    // The app's `mediasoup` is the client (npm's file: link), not mediasoup itself.
    let linked =
        example.join("node_modules/mediasoup").canonicalize().expect("npm ci in the example (scripts/setup.sh)");
    assert_eq!(linked, repo().join("clients/remote-mediasoup").canonicalize().expect("client dir"));

    let (node, api, _) = webrtc_node_with_api(None).await;
    let mut children = Children(Vec::new());
    let app = children.spawn(
        "node (the example app)",
        Command::new("node")
            .arg("app.js")
            .current_dir(&example)
            .env("MAFALDA_NODE_URL", format!("ws://{api}/v1/rope"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let started = start_line(app).await;
    eprintln!("app: {started}");
    let rtp = &started["rtp"];
    let page = started["page"].as_str().expect("page URL").to_owned();

    // ffmpeg's RTCP comes from a port of its own, which would mislead the
    // comedia transport into taking it for the sender: it sends RTP only.
    // One keyframe a second (-g 15), since ffmpeg ignores the browser's PLIs.
    children.spawn(
        "ffmpeg",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "60"])
            .args(["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "300k", "-g", "15"])
            .args(["-ssrc", &rtp["ssrc"].to_string(), "-payload_type", &rtp["payloadType"].to_string()])
            .args(["-rtpflags", "skip_rtcp", "-f", "rtp"])
            .arg(format!("rtp://{}:{}?pkt_size=1200", rtp["ip"].as_str().expect("ip"), rtp["port"]))
            .stdin(Stdio::null())
            // It prints the stream's SDP there; nothing to read.
            .stdout(Stdio::null()),
    );

    let screenshot = repo().join("target/remote-mediasoup-example.png");
    let _ = std::fs::remove_file(&screenshot);
    let driver = repo().join("tests/browser/drive-example.mjs");
    let shot = screenshot.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(driver)
            .args(["--page", &page, "--screenshot"])
            .arg(shot)
            .output()
            .expect("node runs tests/browser/drive-example.mjs")
    })
    .await
    .expect("driver task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the driver prints JSON ({e}): {stdout}\n{stderr}"));
    eprintln!("browser result: {result}");
    assert_eq!(result["ok"], true, "the page plays the track: {result}\n{stderr}");
    let (first, second) = (&result["first"], &result["second"]);
    let frames = |sample: &serde_json::Value| sample["framesDecoded"].as_u64().expect("framesDecoded");
    assert!(frames(first) > 0, "frames decoded by the first sample: {result}");
    assert!(frames(second) > frames(first), "decoded frames grow: {result}");
    assert!(second["bytesReceived"].as_u64() > first["bytesReceived"].as_u64(), "{result}");
    assert!(screenshot.exists(), "a screenshot of the playing page");

    drop(children);
    drop(node);
}
