//! The `mafalda-node` binary serves WHIP and WHEP with its defaults: WebRTC is
//! on (each worker listening on a port of 39000-39999), and `--no-webrtc`
//! turns it off with a clear refusal rather than a failure deep inside.

use std::io::Write;
use std::process::{Command, Stdio};

use mafalda_tests::sdp::publisher_offer;

mod common;

use common::{BINARY, NodeProcess};

/// `POST url` with an SDP body through curl: status, headers and body.
fn post_sdp(url: &str, offer: &str) -> (u16, String, String) {
    let mut curl = Command::new("curl")
        .args(["-s", "-i", "--max-time", "20", "-X", "POST", "-H", "content-type: application/sdp"])
        .args(["--data-binary", "@-", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run curl");
    curl.stdin.take().expect("stdin").write_all(offer.as_bytes()).expect("write the offer");
    let output = curl.wait_with_output().expect("curl output");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

#[test]
fn whip_works_with_the_defaults_and_no_webrtc_refuses_it_clearly() {
    let loopback = ["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"];
    let node = NodeProcess::start(&loopback);
    let (status, head, answer) =
        post_sdp(&format!("http://{}/v1/streams/cam/whip", node.api), &publisher_offer(111, 96));
    assert_eq!(status, 201, "{head}\n{answer}");
    assert!(head.to_ascii_lowercase().contains("location: /v1/sessions/"), "{head}");
    let ports: Vec<u16> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| l.split(' ').nth(5).and_then(|p| p.parse().ok()))
        .collect();
    assert!(!ports.is_empty(), "candidates in the answer: {answer}");
    assert!(ports.iter().all(|p| (39000..=39999).contains(p)), "the default WebRTC ports: {ports:?}");
    node.stop();

    let off = NodeProcess::start(&[&loopback[..], &["--no-webrtc"][..]].concat());
    let (status, head, body) = post_sdp(&format!("http://{}/v1/streams/cam/whip", off.api), &publisher_offer(111, 96));
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(body.contains("WebRTC off"), "says why: {body}");
    off.stop();

    let help = Command::new(BINARY).args(["run", "--help"]).output().expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--no-webrtc") && help.contains("[default: 39000-39999]"), "{help}");
    assert!(help.contains("WHIP"), "--help says what the WebRTC ports serve");
}
