//! WHIP and WHEP with real browsers and no SDK: headless Chromium (Debian's)
//! publishes its fake camera and microphone with a bare `RTCPeerConnection`
//! and WHIP at node A of a three-node swarm; a second bare page plays the
//! stream with WHEP at node C, which pipes it from A. The player's `getStats()`
//! must show decoded frames and audio growing; `DELETE` on the WHIP session
//! must end the stream at C (the player's media stops); and afterwards both
//! nodes hold no more transports than before. `tests/browser/drive-whip.mjs`
//! does the browser side.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mafalda_node::Node;
use mafalda_node::api::ApiConfig;
use mafalda_tests::browser::{PageSite, drive};
use mafalda_tests::node::connected_webrtc_nodes;
use mafalda_tests::swarm::eventually;

const TOKEN: &str = "whip-app-token";

/// A page origin the nodes let in, and the app token they require.
fn page_site_and_api() -> (PageSite, ApiConfig) {
    let (site, mut config) = mafalda_tests::browser::page_site_and_api();
    config.token = Some(TOKEN.to_owned());
    (site, config)
}

/// Transports on all of a node's workers (pipes included).
fn transports(node: &Node) -> u32 {
    node.media().status().iter().map(|w| w.objects.transports).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_page_publishes_with_whip_at_a_and_another_plays_with_whep_at_c() {
    let (site, config) = page_site_and_api();
    let nodes = connected_webrtc_nodes(3, config).await;
    let (a, a_api) = (&nodes[0].0, nodes[0].1);
    let (c, c_api) = (&nodes[2].0, nodes[2].1);
    let before = [transports(a), transports(c)];
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/whep-player.png");
    let (result, stderr) = drive(
        "drive-whip.mjs",
        vec![
            "--whip".into(),
            format!("http://{a_api}/v1/streams/webcam/whip"),
            "--whep".into(),
            format!("http://{c_api}/v1/streams/webcam/whep"),
            "--token".into(),
            TOKEN.into(),
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
    assert_eq!(result["ok"], true, "frames decoded and audio received grow at the player: {result}\n{stderr}");
    let (first, second) = (&result["first"], &result["second"]);
    assert!(second["framesDecoded"].as_u64() > first["framesDecoded"].as_u64(), "{result}");
    assert!(second["audioBytesReceived"].as_u64() > first["audioBytesReceived"].as_u64(), "{result}");
    let playing = &result["statusDuringPlay"]["streams"][0];
    assert_eq!(playing["stream"], "webcam", "C held the stream while it played: {result}");
    assert_eq!(playing["path"][0], a.peer_id().to_string(), "it came from A");
    assert!(playing["upstream"].is_string(), "C got it through a pipe: {result}");
    let location = result["whipLocation"].as_str().unwrap_or_default();
    assert!(location.contains("/v1/sessions/"), "the WHIP session's Location: {result}");
    assert_eq!(result["deleteStatus"], 204, "DELETE on the WHIP session: {result}");
    let after = &result["afterDelete"];
    let stopped = after["bytesStalled"] == true
        || matches!(after["connectionState"].as_str(), Some("failed" | "disconnected" | "closed"));
    assert!(stopped, "the player's media stopped once the WHIP session was deleted: {result}");
    let streams_after = result["statusAfterDelete"]["streams"].as_array().map_or(0, Vec::len);
    assert_eq!(streams_after, 0, "the stream ended at C: {result}");
    assert!(screenshot.exists(), "a screenshot of the playing page");
    // Nothing outlives the sessions: WHIP's transport at A, WHEP's transport,
    // router pipes and the pipe from A at C.
    let (a, c) = (Arc::clone(a), Arc::clone(c));
    let back = eventually(Duration::from_secs(20), || {
        let (a, c) = (Arc::clone(&a), Arc::clone(&c));
        async move { [transports(&a), transports(&c)] == before }
    })
    .await;
    assert!(back, "transports back to {before:?}: A {}, C {}", transports(&a), transports(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_a_wrong_token_reads_401_and_nothing_is_made() {
    let (site, config) = page_site_and_api();
    let nodes = connected_webrtc_nodes(1, config).await;
    let (a, a_api) = (&nodes[0].0, nodes[0].1);
    let before = transports(a);
    let (result, stderr) = drive(
        "drive-whip.mjs",
        vec!["--bad-token".into(), "--whip".into(), format!("http://{a_api}/v1/streams/webcam/whip")]
            .into_iter()
            .chain(site.args())
            .collect(),
    )
    .await;
    assert_eq!(result["ok"], true, "the page read a 401 (CORS on errors too): {result}\n{stderr}");
    assert_eq!(result["status"], 401, "{result}");
    assert!(a.streams().is_empty(), "nothing published");
    assert_eq!(transports(a), before, "no transport made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_from_a_bare_page_is_taken_as_layers_and_played_elsewhere() {
    let (site, config) = page_site_and_api();
    let nodes = connected_webrtc_nodes(2, config).await;
    let (a_api, b_api) = (nodes[0].1, nodes[1].1);
    let (result, stderr) = drive(
        "drive-whip.mjs",
        vec![
            "--whip".into(),
            format!("http://{a_api}/v1/streams/layers/whip"),
            "--whep".into(),
            format!("http://{b_api}/v1/streams/layers/whep"),
            "--token".into(),
            TOKEN.into(),
            "--simulcast".into(),
        ]
        .into_iter()
        .chain(site.args())
        .collect(),
    )
    .await;
    eprintln!("browser result: {result}");
    assert_eq!(result["ok"], true, "the player decodes the simulcast stream: {result}\n{stderr}");
    let answer = result["publisherAnswer"].as_str().unwrap_or_default();
    for line in ["a=rid:q recv", "a=rid:h recv", "a=rid:f recv", "a=simulcast:recv q;h;f"] {
        assert!(answer.contains(line), "the WHIP answer takes the layers ({line}): {answer}");
    }
    let outbound = result["publisherStats"]["outbound"].as_array().cloned().unwrap_or_default();
    let sending: Vec<&str> = outbound
        .iter()
        .filter(|o| o["kind"] == "video" && o["bytesSent"].as_u64().unwrap_or(0) > 0)
        .filter_map(|o| o["rid"].as_str())
        .collect();
    assert!(sending.len() >= 2, "the page sends more than one layer to the node: {outbound:?}");
}

/// A browser that dies (killed: no `DELETE`, no `close()`) must not leave its
/// sessions, stream or transports behind: the node notices the silence (ICE
/// consent, then a short grace) and closes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_browser_that_vanishes_are_closed_and_nothing_leaks() {
    let (site, config) = page_site_and_api();
    let nodes = connected_webrtc_nodes(2, config).await;
    let (a, a_api) = (Arc::clone(&nodes[0].0), nodes[0].1);
    let (b, b_api) = (Arc::clone(&nodes[1].0), nodes[1].1);
    let before = [transports(&a), transports(&b)];
    let (result, stderr) = drive(
        "drive-whip.mjs",
        vec![
            "--vanish".into(),
            "--whip".into(),
            format!("http://{a_api}/v1/streams/gone/whip"),
            "--whep".into(),
            format!("http://{b_api}/v1/streams/gone/whep"),
            "--token".into(),
            TOKEN.into(),
        ]
        .into_iter()
        .chain(site.args())
        .collect(),
    )
    .await;
    assert_eq!(result["ok"], true, "published, played, then killed: {result}\n{stderr}");
    assert_eq!(a.streams().len(), 1, "the stream outlives its publisher's last packet for a while");
    let cleaned = eventually(Duration::from_secs(90), || {
        let (a, b) = (Arc::clone(&a), Arc::clone(&b));
        async move { [transports(&a), transports(&b)] == before && a.streams().is_empty() && b.streams().is_empty() }
    })
    .await;
    assert!(
        cleaned,
        "A and B let go of everything: {:?} transports, streams {:?} / {:?}",
        [transports(&a), transports(&b)],
        a.streams(),
        b.streams()
    );
}
