//! An app's session on `/v1/rope` outlives a dropped WebSocket for the grace
//! period: reconnecting with its token finds everything intact; an app that
//! does not come back has everything closed. Real node, real ROPE clients.

use std::time::Duration;

use mafalda_node::api::ApiConfig;
use mafalda_rope::{Client, ClientConfig};
use mafalda_tests::node::webrtc_node_with_api_config;
use mafalda_tests::rope::call_json;
use mafalda_tests::swarm::eventually;
use serde_json::json;

fn session_token(client: &Client) -> String {
    let session = client.mirror().into_iter().find(|object| object.id == "session").expect("a session object");
    let state: serde_json::Value = session.state.deserialized().expect("JSON state");
    state["token"].as_str().expect("token").to_owned()
}

async fn call(client: &Client, target: Option<&str>, method: &str, params: serde_json::Value) -> serde_json::Value {
    call_json(client, target, method, params).await.unwrap_or_else(|error| panic!("{method}: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_its_connection_for_the_grace_and_no_longer() {
    let mut config = ApiConfig::default();
    config.session_grace = Duration::from_secs(2);
    let (node, addr, _) = webrtc_node_with_api_config(None, config).await;
    let url = format!("ws://{addr}/v1/rope?format=json");
    let (app, _events) = Client::connect(url.clone(), ClientConfig::default()).await.expect("connect");
    let token = session_token(&app);
    assert_eq!(token.len(), 32, "a 128-bit token");
    let published =
        json!({ "stream": "kept", "tracks": [{ "kind": "audio", "codec": "opus", "payloadType": 100, "ssrc": 1111 }] });
    call(&app, None, "stream.publish", published).await;
    let worker = call(&app, None, "mediasoup.createWorker", json!({})).await["id"].as_str().expect("id").to_owned();
    drop(app);

    // Back within the grace: the same session, its objects in the first snapshot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (app, _events) =
        Client::connect(format!("{url}&session={token}"), ClientConfig::default()).await.expect("reconnect");
    assert_eq!(session_token(&app), token, "the same session");
    assert!(app.mirror().iter().any(|object| object.id == worker), "its worker is there");
    assert_eq!(node.streams().len(), 1, "its stream was never unpublished");
    call(&app, Some(&worker), "dump", json!(null)).await;
    drop(app);

    // Someone else's token, or a stale one, opens a fresh session.
    let (stranger, _events) =
        Client::connect(format!("{url}&session=0123456789abcdef0123456789abcdef"), ClientConfig::default())
            .await
            .expect("connect");
    assert_ne!(session_token(&stranger), token);
    assert!(!stranger.mirror().iter().any(|object| object.id == worker));

    // Not back: after the grace, everything it made is gone.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(node.streams().len(), 1, "still within the grace");
    assert!(
        eventually(Duration::from_secs(5), || async { node.streams().is_empty() }).await,
        "the stream ended once the grace ran out"
    );
    let (late, _events) =
        Client::connect(format!("{url}&session={token}"), ClientConfig::default()).await.expect("connect");
    assert_ne!(session_token(&late), token, "an expired session is not resumed");
    assert!(!late.mirror().iter().any(|object| object.id == worker), "its worker closed");
}

/// A client often notices a dead connection before the node does (a NAT
/// timeout, a network change): its token takes the session over from the
/// connection the node still thinks is alive, which is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_takes_the_session_over_from_a_connection_still_open() {
    let (node, addr, _) = webrtc_node_with_api_config(None, ApiConfig::default()).await;
    let url = format!("ws://{addr}/v1/rope?format=json");
    let (old, _old_events) = Client::connect(url.clone(), ClientConfig::default()).await.expect("connect");
    let token = session_token(&old);
    let worker = call(&old, None, "mediasoup.createWorker", json!({})).await["id"].as_str().expect("id").to_owned();

    let (new, _events) =
        Client::connect(format!("{url}&session={token}"), ClientConfig::default()).await.expect("take over");
    assert_eq!(session_token(&new), token, "the same session, though the old connection never dropped");
    assert!(new.mirror().iter().any(|object| object.id == worker), "its worker is there");
    call(&new, Some(&worker), "dump", json!(null)).await;
    assert!(eventually(Duration::from_secs(5), || async { !old.is_connected() }).await, "the old connection was cut");
    assert!(call_json(&old, Some(&worker), "dump", json!(null)).await.is_err(), "the cut connection serves nothing");
    drop(node);
}
