//! Remote Mediasoup through a real node's `/v1/rope`: mediasoup's objects
//! belong to the connection that made them, obey the API tokens, and close
//! when the connection ends.

use std::net::SocketAddr;
use std::time::Duration;

use mafalda_node::api::ApiConfig;
use mafalda_rope::{CallError, Client, ClientConfig, ClientEvent, EventKind, Value};
use mafalda_tests::node::webrtc_node_with_api_config;
use mafalda_tests::rope::call_json as call;
use mafalda_tests::swarm::{connected_within, eventually};
use serde_json::json;

const APP: &str = "app-s3cret";
const ADMIN: &str = "admin-s3cret";

async fn rope(addr: SocketAddr, token: &str) -> (Client, tokio::sync::mpsc::Receiver<ClientEvent>) {
    let url = format!("ws://{addr}/v1/rope?format=json&access_token={token}");
    Client::connect(url, ClientConfig::default()).await.expect("connect over ROPE")
}

fn rpc_code(result: Result<serde_json::Value, CallError>) -> i64 {
    match result {
        Err(CallError::Rpc(error)) => error.code,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_workers_are_its_own_and_close_with_its_connection() {
    let mut config = ApiConfig::default();
    config.token = Some(APP.into());
    config.admin_token = Some(ADMIN.into());
    let (_node, addr, _port) = webrtc_node_with_api_config(None, config).await;
    let (app, _app_events) = rope(addr, APP).await;
    let (other, mut other_events) = rope(addr, APP).await;

    let worker = call(&app, None, "mediasoup.createWorker", json!({ "logLevel": "warn" })).await.expect("worker");
    let worker = worker["id"].as_str().expect("worker id").to_owned();
    let router = call(
        &app,
        Some(&worker),
        "createRouter",
        json!({ "mediaCodecs": [
        { "kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2 }
    ] }),
    )
    .await
    .expect("router");
    let router = router["id"].as_str().expect("router id").to_owned();
    let mirrored = eventually(Duration::from_secs(5), || async {
        app.mirror().iter().any(|object| object.id == router && object.object_type == "router")
    })
    .await;
    assert!(mirrored, "the router is an object of the app's mirror");

    // Another connection neither sees nor reaches them.
    assert!(!other.mirror().iter().any(|object| object.id == worker));
    assert_eq!(rpc_code(call(&other, Some(&router), "dump", json!(null)).await), -32001);
    assert_eq!(rpc_code(call(&other, Some(&worker), "close", json!(null)).await), -32001);
    // Files on the node take the admin token.
    let files = json!({ "dtlsCertificateFile": "/etc/hostname", "dtlsPrivateKeyFile": "/etc/hostname" });
    assert_eq!(rpc_code(call(&other, None, "mediasoup.createWorker", files).await), -32003);

    // The other connection makes its own worker; when it disconnects, the worker closes.
    let own = call(&other, None, "mediasoup.createWorker", json!({})).await.expect("own worker");
    let own = own["id"].as_str().expect("id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event =
            tokio::time::timeout_at(deadline, other_events.recv()).await.expect("created in time").expect("open");
        if let ClientEvent::Object(event) = event
            && event.object == own
        {
            assert_eq!(event.name, EventKind::Created);
            break;
        }
    }
    drop(other);
    drop(other_events);

    // The first app's objects are untouched by that, and still answer.
    let dump = call(&app, Some(&worker), "dump", json!(null)).await.expect("dump");
    assert_eq!(dump["routerIds"], json!([router]));
    // The app closes its worker: the router goes with it.
    call(&app, Some(&worker), "close", json!(null)).await.expect("close");
    assert_eq!(rpc_code(call(&app, Some(&router), "dump", json!(null)).await), -32001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_another_node_is_driven_through_the_entry_and_dies_with_its_node() {
    let (entry, addr, _) = mafalda_tests::node::webrtc_node_with_api(None).await;
    let host = mafalda_tests::node::node_with(Some(&entry), |_| {}).await;
    let host_id = host.peer_id().to_string();
    assert!(
        connected_within(entry.swarm(), host.peer_id(), Duration::from_secs(10)).await,
        "the host joined the entry"
    );
    let url = format!("ws://{addr}/v1/rope?format=json");
    let (app, mut events) = Client::connect(url, ClientConfig::default()).await.expect("connect");

    // Not a peer id: a TypeError, nothing made.
    let error = call(&app, None, "mediasoup.createWorker", json!({ "node": "nobody" })).await;
    assert_eq!(rpc_code(error), -32602);

    let worker = call(&app, None, "mediasoup.createWorker", json!({ "node": host_id, "logLevel": "warn" }))
        .await
        .expect("a worker on the other node");
    let worker = worker["id"].as_str().expect("worker id").to_owned();
    // The answer comes after the object exists at the entry: it can be called at once.
    let router = call(
        &app,
        Some(&worker),
        "createRouter",
        json!({ "mediaCodecs": [
        { "kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2 }
    ] }),
    )
    .await
    .expect("a router on the other node, through the entry");
    let router = router["id"].as_str().expect("router id").to_owned();
    let dump = call(&app, Some(&worker), "dump", json!(null)).await.expect("dump through the entry");
    assert_eq!(dump["routerIds"], json!([router]));
    assert!(app.mirror().iter().any(|object| object.id == router && object.object_type == "router"));

    // A bad call on a remote object keeps mediasoup's error class.
    let Err(CallError::Rpc(error)) =
        call(&app, Some(&worker), "updateSettings", json!({ "logLevel": "chicken" })).await
    else {
        panic!("a wrong log level is refused");
    };
    let data: serde_json::Value = error.data.expect("data").deserialized().expect("JSON");
    assert_eq!(data["name"], "TypeError");

    // A second app's session there ends with its connection.
    let (second, _second_events) =
        Client::connect(format!("ws://{addr}/v1/rope?format=json"), ClientConfig::default()).await.expect("connect");
    call(&second, None, "mediasoup.createWorker", json!({ "node": host_id })).await.expect("second app's worker");
    assert_eq!(host.hosted_app_sessions(), 2);
    drop(second);
    assert!(
        eventually(Duration::from_secs(5), || async { host.hosted_app_sessions() == 1 }).await,
        "the host closed the session of the app that left: {} hosted",
        host.hosted_app_sessions()
    );

    // The host leaves: the worker dies at the entry, its router closes.
    host.shutdown().await;
    let mut heard = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let closed = |heard: &Vec<(String, String)>, object: &str| heard.iter().any(|(o, n)| o == object && n == "closed");
    while !closed(&heard, &worker) || !closed(&heard, &router) {
        let next = tokio::time::timeout_at(deadline, events.recv()).await.expect("the worker closes in time");
        if let ClientEvent::Object(event) = next.expect("events open") {
            heard.push((event.object.clone(), event.name.as_str().to_owned()));
        }
    }
    let position = |object: &str, name: &str| heard.iter().position(|(o, n)| o == object && n == name);
    let died = position(&worker, "died").unwrap_or_else(|| panic!("the worker died: {heard:?}"));
    assert!(died < position(&worker, "closed").expect("closed"), "died comes first: {heard:?}");
    assert!(position(&router, "closed").is_some(), "its router closed: {heard:?}");
    assert!(!app.mirror().iter().any(|object| object.id == worker || object.id == router));
}

/// A peer's ROPE call; the error code it got, or `None` when it succeeded.
async fn peer_call(
    rogue: &mafalda_tests::swarm::TestNode,
    to: mafalda_swarm::PeerId,
    method: &str,
    params: serde_json::Value,
) -> Option<i64> {
    match rogue.handle.call(to, method, None, Value::serialized(&params).expect("params")).await {
        Ok(_) => None,
        Err(mafalda_swarm::CallError::Remote(error)) => Some(error.code),
        Err(other) => panic!("{method}: the node did not answer: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_peer_can_neither_inject_objects_into_an_app_nor_reach_another_entrys_session() {
    let (entry, addr, _) = mafalda_tests::node::webrtc_node_with_api(None).await;
    let host = mafalda_tests::node::node_with(Some(&entry), |_| {}).await;
    let rogue = mafalda_tests::swarm::spawn_node(mafalda_tests::swarm::loopback_config().with_bootstrap(vec![
        entry.listen_addrs().await.expect("addrs").remove(0).with_p2p(entry.peer_id()).expect("p2p"),
    ]))
    .await;
    assert!(connected_within(entry.swarm(), host.peer_id(), Duration::from_secs(10)).await);
    let (app, _events) =
        Client::connect(format!("ws://{addr}/v1/rope?format=json"), ClientConfig::default()).await.expect("connect");
    let worker = call(&app, None, "mediasoup.createWorker", json!({ "node": host.peer_id().to_string() }))
        .await
        .expect("a worker on the host");
    let worker = worker["id"].as_str().expect("id").to_owned();
    let before = app.mirror();

    // The rogue pretends to host the app's session: refused, nothing appears.
    let forged = json!({ "session": 1, "events": [
        { "object": "forged", "objectType": "worker", "name": "created", "data": {} },
        { "object": worker, "objectType": "worker", "name": "closed", "data": null },
    ] });
    for session in 0..4 {
        let mut forged = forged.clone();
        forged["session"] = json!(session);
        assert_eq!(peer_call(&rogue, entry.peer_id(), "mediasoup.session.events", forged).await, Some(-32001));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.mirror(), before, "the app's objects are untouched");

    // The rogue calls the host as if it were the entry: another peer's sessions are not its own.
    for session in 0..4 {
        let probe = json!({ "session": session, "target": worker, "method": "close" });
        assert_eq!(peer_call(&rogue, host.peer_id(), "mediasoup.session.call", probe).await, Some(-32001));
    }
    // Malformed forwarding calls are refused as bad params.
    assert_eq!(
        peer_call(&rogue, host.peer_id(), "mediasoup.session.call", json!({ "nonsense": true })).await,
        Some(-32602)
    );
    // The app's worker still answers through its entry.
    call(&app, Some(&worker), "dump", json!(null)).await.expect("the worker is alive");

    // A rogue may host its own sessions, but at most 16.
    for session in 0..16 {
        let open = json!({ "session": session, "method": "mediasoup.createWorker", "params": {} });
        assert_eq!(peer_call(&rogue, host.peer_id(), "mediasoup.session.call", open).await, None);
    }
    let one_more = json!({ "session": 99, "method": "mediasoup.createWorker", "params": {} });
    assert_eq!(peer_call(&rogue, host.peer_id(), "mediasoup.session.call", one_more).await, Some(-32004));
    assert_eq!(host.hosted_app_sessions(), 17, "the app's session and the rogue's 16");
    // When the rogue leaves, its sessions close.
    rogue.handle.shutdown().await.expect("shutdown");
    assert!(
        eventually(Duration::from_secs(10), || async { host.hosted_app_sessions() == 1 }).await,
        "the rogue's sessions closed with it"
    );
}
