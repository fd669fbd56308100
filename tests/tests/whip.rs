//! WHIP and WHEP over real nodes' HTTP APIs, playing the clients a node meets:
//! well-behaved ones (their offers answered with the node's candidates and
//! the client's own payload types, the stream found and piped across the
//! swarm), and rogue ones — no or a wrong token, the wrong content type, a
//! malformed or unusable SDP, too many sessions, someone else's session, a
//! client that never connects. Each refusal must make nothing: no stream, no
//! transport left behind. Media flow itself is checked with Chromium in
//! `whip_browser.rs`.

use std::sync::Arc;
use std::time::Duration;

use mafalda_media::running_worker_threads;
use mafalda_node::Node;
use mafalda_node::api::{ApiConfig, Limits};
use mafalda_node::sdp_session::liveness::CONNECT_TIMEOUT;
use mafalda_tests::node::{connected_webrtc_nodes, webrtc_node_with_api_config};
use mafalda_tests::sdp::{bare, header, player_offer, post, publisher_offer, unusable_offer};
use mafalda_tests::swarm::eventually;

const TOKEN: &str = "app-token";
const ADMIN: &str = "admin-token";
const SDP: &str = "application/sdp";

fn config() -> ApiConfig {
    let mut config = ApiConfig::default();
    config.token = Some(TOKEN.into());
    config.admin_token = Some(ADMIN.into());
    config.origins = vec!["http://127.0.0.1:9".parse().expect("origin")];
    config
}

fn transports(node: &Node) -> u32 {
    node.media().status().iter().map(|w| w.objects.transports).sum()
}

async fn settles(node: &Arc<Node>, expected: u32) -> bool {
    let node = Arc::clone(node);
    eventually(Duration::from_secs(15), || {
        let node = Arc::clone(&node);
        async move { transports(&node) == expected && node.streams().is_empty() }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whip_requests_get_clear_errors_and_make_nothing() {
    let (a, api, _) = webrtc_node_with_api_config(None, config()).await;
    let baseline = transports(&a);
    let whip = "/v1/streams/cam/whip";
    let offer = publisher_offer(111, 96);

    let no_token = post(api, whip, None, SDP, "", &offer).await;
    assert_eq!(no_token.status, 401, "{no_token:?}");
    let wrong = post(api, whip, Some("not-the-token"), SDP, "", &offer).await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    let json = post(api, whip, Some(TOKEN), "application/json", "", &offer).await;
    assert_eq!(json.status, 415, "{json:?}");
    assert!(json.body.contains("application/sdp"), "the error names the expected type: {}", json.body);
    let malformed = post(api, whip, Some(TOKEN), SDP, "", "hello, I am not SDP").await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert!(malformed.body.contains("line 1"), "the error names the line: {}", malformed.body);
    let bad_line = offer.replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:300 opus/48000/2");
    let bad_line = post(api, whip, Some(TOKEN), SDP, "", &bad_line).await;
    assert_eq!(bad_line.status, 400, "{bad_line:?}");
    assert!(bad_line.body.contains("payload type"), "{}", bad_line.body);
    let unusable = post(api, whip, Some(TOKEN), SDP, "", &unusable_offer()).await;
    assert_eq!(unusable.status, 422, "{unusable:?}");
    assert!(
        unusable.body.contains("PCMU") && unusable.body.contains("AV1"),
        "says what was offered: {}",
        unusable.body
    );
    assert!(unusable.body.contains("video/VP8"), "and what the node takes: {}", unusable.body);
    let no_fingerprint: String =
        offer.lines().filter(|l| !l.starts_with("a=fingerprint")).map(|l| format!("{l}\r\n")).collect();
    let no_fingerprint = post(api, whip, Some(TOKEN), SDP, "", &no_fingerprint).await;
    assert_eq!(no_fingerprint.status, 422, "{no_fingerprint:?}");
    assert!(no_fingerprint.body.contains("fingerprint"), "{}", no_fingerprint.body);
    let huge = format!("{offer}{}", "a=x-filler:0123456789\r\n".repeat(4000));
    let huge = post(api, whip, Some(TOKEN), SDP, "", &huge).await;
    assert_eq!(huge.status, 413, "an offer over the body limit: {}", huge.status);
    let bad_id = post(api, "/v1/streams/no%20spaces/whip", Some(TOKEN), SDP, "", &offer).await;
    assert_eq!(bad_id.status, 400, "{bad_id:?}");

    assert!(a.streams().is_empty(), "nothing published");
    assert_eq!(transports(&a), baseline, "no transport left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_stream_is_played_with_whep_elsewhere_in_the_players_own_payload_types() {
    let nodes = connected_webrtc_nodes(2, config()).await;
    let (a, a_api) = (&nodes[0].0, nodes[0].1);
    let (b, b_api) = (&nodes[1].0, nodes[1].1);
    let baseline = [transports(a), transports(b)];

    let published = post(a_api, "/v1/streams/cam/whip", Some(TOKEN), SDP, "", &publisher_offer(111, 96)).await;
    assert_eq!(published.status, 201, "{published:?}");
    assert_eq!(header(&published, "content-type"), Some(SDP));
    let whip_session = header(&published, "location").expect("Location").to_owned();
    assert!(whip_session.starts_with("/v1/sessions/"), "{whip_session}");
    let answer = &published.body;
    for line in ["a=ice-lite", "a=recvonly", "a=rtpmap:111 opus/48000/2", "a=rtpmap:96 VP8/90000", "a=fmtp:97 apt=96"] {
        assert!(answer.contains(line), "the answer has {line}: {answer}");
    }
    assert!(answer.contains("a=group:BUNDLE 0 1"), "{answer}");
    assert!(answer.contains(" 127.0.0.1 ") && answer.contains("typ host"), "the node's candidate: {answer}");
    assert!(!answer.contains("PCMU"), "only what the node takes is answered: {answer}");
    assert_eq!(a.streams().len(), 1, "published at A");
    assert_eq!(a.streams()[0].stream, "cam");

    let again = post(a_api, "/v1/streams/cam/whip", Some(TOKEN), SDP, "", &publisher_offer(111, 96)).await;
    assert_eq!(again.status, 409, "the stream is published here already: {again:?}");
    let missing = post(b_api, "/v1/streams/nobody-has-this/whep", Some(TOKEN), SDP, "", &player_offer(109, 120)).await;
    assert_eq!(missing.status, 404, "{missing:?}");

    // The player numbers VP8 120 and opus 109; the node must send with those.
    let playing = post(b_api, "/v1/streams/cam/whep", Some(TOKEN), SDP, "", &player_offer(109, 120)).await;
    assert_eq!(playing.status, 201, "{playing:?}");
    let answer = &playing.body;
    assert!(answer.contains("m=video 9 UDP/TLS/RTP/SAVPF 120\r\n"), "VP8 in the player's payload type: {answer}");
    assert!(answer.contains("a=rtpmap:120 VP8/90000"), "{answer}");
    assert!(answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 109\r\n"), "{answer}");
    assert!(answer.contains("a=sendonly") && answer.contains("a=ssrc:"), "{answer}");
    let held = b.streams();
    assert_eq!(held.len(), 1, "B holds the stream to play it");
    assert_eq!(held[0].path.first(), Some(&a.peer_id().to_string()), "piped from A: {held:?}");
    let whep_session = header(&playing, "location").expect("Location").to_owned();
    let metrics = bare(b_api, "GET", "/metrics", Some(TOKEN), "").await.body;
    assert!(metrics.contains("mafalda_sdp_sessions{role=\"whep\"} 1"), "B counts its player: {metrics}");
    assert!(metrics.contains("mafalda_sdp_sessions{role=\"whip\"} 0"), "and no publisher: {metrics}");

    let patch = bare(b_api, "PATCH", &whep_session, Some(TOKEN), "").await;
    assert_eq!(patch.status, 405, "no trickle ICE: {patch:?}");
    assert!(header(&patch, "allow").is_some_and(|allow| allow.contains("DELETE")), "{patch:?}");
    let ended = bare(b_api, "DELETE", &whep_session, Some(TOKEN), "").await;
    assert_eq!(ended.status, 204, "{ended:?}");
    let twice = bare(b_api, "DELETE", &whep_session, Some(TOKEN), "").await;
    assert_eq!(twice.status, 404, "{twice:?}");
    let ended = bare(a_api, "DELETE", &whip_session, Some(TOKEN), "").await;
    assert_eq!(ended.status, 204, "{ended:?}");
    assert!(settles(a, baseline[0]).await, "A: the stream ended and its transports closed ({})", transports(a));
    assert!(settles(b, baseline[1]).await, "B: the relay and the player's router closed ({})", transports(b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_per_token_and_only_their_owner_or_the_admin_ends_them() {
    let mut config = config();
    config.limits = Limits { sessions: 2, ..Limits::default() };
    let (a, api, _) = webrtc_node_with_api_config(None, config).await;
    let baseline = transports(&a);
    let first = post(api, "/v1/streams/one/whip", Some(TOKEN), SDP, "", &publisher_offer(111, 96)).await;
    assert_eq!(first.status, 201, "{first:?}");
    let second = post(api, "/v1/streams/one/whep", Some(TOKEN), SDP, "", &player_offer(111, 96)).await;
    assert_eq!(second.status, 201, "{second:?}");
    let with_two = transports(&a);
    let third = post(api, "/v1/streams/one/whep", Some(TOKEN), SDP, "", &player_offer(111, 96)).await;
    assert_eq!(third.status, 429, "over the token's cap of 2 sessions: {third:?}");
    assert_eq!(transports(&a), with_two, "the refused session made nothing");
    // The admin has a cap of its own, and may end the app's sessions.
    let admins = post(api, "/v1/streams/one/whep", Some(ADMIN), SDP, "", &player_offer(111, 96)).await;
    assert_eq!(admins.status, 201, "{admins:?}");
    let admins = header(&admins, "location").expect("Location").to_owned();
    let by_app = bare(api, "DELETE", &admins, Some(TOKEN), "").await;
    assert_eq!(by_app.status, 403, "the app token may not end the admin's session: {by_app:?}");
    let whip = header(&first, "location").expect("Location").to_owned();
    let by_admin = bare(api, "DELETE", &whip, Some(ADMIN), "").await;
    assert_eq!(by_admin.status, 204, "{by_admin:?}");
    // The stream ended: its players' sessions close on their own.
    assert!(settles(&a, baseline).await, "everything closed with the stream ({} transports)", transports(&a));
    let gone = bare(api, "DELETE", &admins, Some(ADMIN), "").await;
    assert_eq!(gone.status, 404, "the player's session closed when its stream ended: {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_allowed_origins_preflight_without_a_token_and_read_errors() {
    let (a, api, _) = webrtc_node_with_api_config(None, config()).await;
    let allowed = "Origin: http://127.0.0.1:9\r\nAccess-Control-Request-Method: POST\r\n\
                   Access-Control-Request-Headers: authorization, content-type\r\n";
    let preflight = bare(api, "OPTIONS", "/v1/streams/cam/whip", None, allowed).await;
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(header(&preflight, "access-control-allow-origin"), Some("http://127.0.0.1:9"));
    let headers = header(&preflight, "access-control-allow-headers").unwrap_or_default();
    assert!(headers.contains("authorization") && headers.contains("content-type"), "{preflight:?}");
    assert!(header(&preflight, "access-control-allow-methods").is_some_and(|m| m.contains("POST")), "{preflight:?}");

    let foreign = "Origin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\n";
    let refused = bare(api, "OPTIONS", "/v1/streams/cam/whip", None, foreign).await;
    assert_eq!(refused.status, 403, "a page of another origin learns nothing: {refused:?}");
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    let posted = post(
        api,
        "/v1/streams/cam/whip",
        Some(TOKEN),
        SDP,
        "Origin: http://evil.example\r\n",
        &publisher_offer(111, 96),
    )
    .await;
    assert_eq!(posted.status, 403, "{posted:?}");

    let wrong_token = post(
        api,
        "/v1/streams/cam/whip",
        Some("wrong"),
        SDP,
        "Origin: http://127.0.0.1:9\r\n",
        &publisher_offer(111, 96),
    )
    .await;
    assert_eq!(wrong_token.status, 401, "{wrong_token:?}");
    assert_eq!(
        header(&wrong_token, "access-control-allow-origin"),
        Some("http://127.0.0.1:9"),
        "the page can read the 401"
    );
    let made = post(
        api,
        "/v1/streams/cam/whip",
        Some(TOKEN),
        SDP,
        "Origin: http://127.0.0.1:9\r\n",
        &publisher_offer(111, 96),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let exposed = header(&made, "access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("location"), "the page can read the session's Location: {made:?}");

    // A WHIP client's own OPTIONS (no Origin): what the endpoint takes.
    let options = bare(api, "OPTIONS", "/v1/streams/cam/whip", None, "").await;
    assert_eq!(options.status, 204, "{options:?}");
    assert_eq!(header(&options, "accept-post"), Some(SDP));
    assert_eq!(a.streams().len(), 1, "only the accepted POST published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_connects_loses_its_session_and_its_stream() {
    let (a, api, _) = webrtc_node_with_api_config(None, config()).await;
    let baseline = transports(&a);
    let made = post(api, "/v1/streams/ghost/whip", Some(TOKEN), SDP, "", &publisher_offer(111, 96)).await;
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(a.streams().len(), 1);
    // The offer's fingerprint and ICE credentials are made up: nobody will connect.
    tokio::time::sleep(CONNECT_TIMEOUT - Duration::from_secs(2)).await;
    assert_eq!(a.streams().len(), 1, "still waiting for the client before the timeout");
    assert!(settles(&a, baseline).await, "closed after {CONNECT_TIMEOUT:?} ({} transports)", transports(&a));
    let location = header(&made, "location").expect("Location").to_owned();
    let gone = bare(api, "DELETE", &location, Some(TOKEN), "").await;
    assert_eq!(gone.status, 404, "{gone:?}");
}

/// A node that stops ends its WHIP and WHEP sessions though its API stays up
/// (until the process exits it answers /readyz 503): a player's router holds
/// a worker, and a worker thread still running when the process exits races
/// the destructors exit runs. Nothing of theirs outlives `shutdown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_ends_its_sessions_and_no_worker_outlives_it() {
    let (a, api, _) = webrtc_node_with_api_config(None, config()).await;
    let publishing = post(api, "/v1/streams/cam/whip", Some(TOKEN), SDP, "", &publisher_offer(111, 96)).await;
    assert_eq!(publishing.status, 201, "{publishing:?}");
    let playing = post(api, "/v1/streams/cam/whep", Some(TOKEN), SDP, "", &player_offer(109, 120)).await;
    assert_eq!(playing.status, 201, "{playing:?}");
    assert!(running_worker_threads() >= 1, "the node runs a worker");

    a.shutdown().await;
    assert_eq!(running_worker_threads(), 0, "a worker still runs after the node stopped");
    // The API still answers, with no session left to end.
    let session = header(&playing, "location").expect("a Location");
    let gone = bare(api, "DELETE", session, Some(TOKEN), "").await;
    assert_eq!(gone.status, 404, "{gone:?}");
}
