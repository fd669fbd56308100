//! An API no web page can drive: real nodes with their API on 127.0.0.1, real
//! HTTP and WebSocket clients. Foreign origins and foreign Host names are
//! refused; what an app makes only it (or the admin token) can close; each
//! connection and token holds a bounded number of objects.

use std::net::SocketAddr;
use std::time::Duration;

use mafalda_node::Node;
use mafalda_node::api::{self, ApiConfig, Limits};
use mafalda_rope::{CallError, Client, ClientConfig, ClientEvent, EventKind, Value};
use mafalda_tests::http::{raw, upgrade};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::node::webrtc_node_with_api_config;
use mafalda_tests::swarm::eventually;
use tokio::net::UdpSocket;

const APP: &str = "app-s3cret";
const ADMIN: &str = "admin-s3cret";

fn config(token: Option<&str>, admin: Option<&str>) -> ApiConfig {
    let mut config = ApiConfig::default();
    config.token = token.map(str::to_owned);
    config.admin_token = admin.map(str::to_owned);
    config.session_grace = mafalda_tests::node::TEST_SESSION_GRACE;
    config
}

/// `method path` with `Host: addr`, the bearer token and the extra header lines given.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let answer = raw(addr, &head, body).await;
    let json = serde_json::from_str(&answer.body).unwrap_or(serde_json::Value::Null);
    (answer.status, json)
}

async fn rope(addr: SocketAddr, token: &str) -> (Client, tokio::sync::mpsc::Receiver<ClientEvent>) {
    let url = format!("ws://{addr}/v1/rope?format=json&access_token={token}");
    Client::connect(url, ClientConfig::default()).await.expect("connect over ROPE")
}

fn value(json: serde_json::Value) -> Value {
    Value::serialized(&json).expect("CBOR value")
}

fn unvalue(value: Value) -> serde_json::Value {
    value.deserialized().expect("JSON value")
}

/// The ROPE error code of a call that must fail.
fn code(result: Result<Value, CallError>) -> i64 {
    match result {
        Err(CallError::Rpc(error)) => error.code,
        other => panic!("an error expected, got {other:?}"),
    }
}

fn transports(node: &Node) -> u32 {
    node.media().status().iter().map(|w| w.objects.transports).sum()
}

async fn publish(client: &Client, stream: &str) -> Result<Value, CallError> {
    let tracks = serde_json::json!([{"kind": "audio", "codec": "opus", "payloadType": OPUS_PAYLOAD_TYPE, "ssrc": 7}]);
    client.call("stream.publish", None, value(serde_json::json!({"stream": stream, "tracks": tracks}))).await
}

async fn consume(client: &Client, stream: &str, port: u16) -> Result<Value, CallError> {
    let params = serde_json::json!({"stream": stream, "ip": "127.0.0.1", "port": port});
    client.call("stream.consume", None, value(params)).await
}

/// Waits for the next object event on `id`, skipping others.
async fn object_event(events: &mut tokio::sync::mpsc::Receiver<ClientEvent>, id: &str) -> EventKind {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::Object(event))) if event.object == id => return event.name,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no event on object {id}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_need_the_nodes_own_or_a_listed_origin() {
    let mut config = config(None, None);
    config.origins = vec!["https://app.example".parse().expect("origin")];
    let (node, addr, _) = webrtc_node_with_api_config(None, config).await;
    let host = addr.to_string();

    let foreign = upgrade(addr, "", &host, Some("http://evil.example")).await;
    assert_eq!(foreign.status, 403, "{foreign:?}");
    let error: serde_json::Value = serde_json::from_str(&foreign.body).expect("a JSON error");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("http://evil.example")), "{error}");
    // Near misses of allowed origins are foreign too.
    for origin in ["https://app.example.evil", "http://app.example", "null", format!("https://{addr}").as_str()] {
        assert_eq!(upgrade(addr, "", &host, Some(origin)).await.status, 403, "{origin}");
    }

    for origin in [Some(format!("http://{addr}")), Some(format!("http://localhost:{}", addr.port())), None] {
        let answer = upgrade(addr, "", &host, origin.as_deref()).await;
        assert_eq!(answer.status, 101, "{origin:?}: {answer:?}");
        assert!(answer.headers.to_ascii_lowercase().contains("sec-websocket-accept"), "{answer:?}");
    }
    assert_eq!(upgrade(addr, "", &host, Some("https://app.example")).await.status, 101, "listed origin");
    // A rebound name is refused before its origin (its own) could pass.
    assert_eq!(upgrade(addr, "", "evil.example", Some("http://evil.example")).await.status, 421);
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_and_foreign_host_names_are_refused_over_http() {
    let mut config = config(None, None);
    config.hosts = vec!["media.example.com".parse().expect("host")];
    let (node, addr, _) = webrtc_node_with_api_config(None, config).await;
    let tracks = r#"{"tracks":[{"kind":"audio","codec":"opus","payloadType":100,"ssrc":1}]}"#;

    // A page at another site POSTs with a "simple" content type, no preflight: refused, nothing published.
    let foreign = "Origin: http://evil.example\r\nContent-Type: text/plain\r\n";
    let (code, body) = http(addr, "PUT", "/v1/streams/cam/rtp-ingest", None, foreign, tracks).await;
    assert_eq!(code, 403, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("Origin")), "{body}");
    let target = r#"{"ip":"127.0.0.1","port":5004}"#;
    assert_eq!(http(addr, "POST", "/v1/streams/cam/rtp-egress", None, foreign, target).await.0, 403);
    assert!(node.streams().is_empty(), "the refused request published nothing");
    // The node's own origin, and programs without one, pass.
    let own = format!("Origin: http://{addr}\r\nContent-Type: application/json\r\n");
    assert_eq!(http(addr, "PUT", "/v1/streams/cam/rtp-ingest", None, &own, tracks).await.0, 201);
    assert_eq!(http(addr, "GET", "/v1/status", None, "", "").await.0, 200);

    // DNS rebinding: evil.example now resolves to 127.0.0.1; its requests name it in Host.
    let port = addr.port();
    for (host, expected) in [
        ("evil.example".to_owned(), 421),
        (format!("evil.example:{port}"), 421),
        (format!("127.0.0.2:{port}"), 421),
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        ("media.example.com".to_owned(), 200),
        ("MEDIA.example.com.:443".to_owned(), 200),
    ] {
        let answer = raw(addr, &format!("GET /v1/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"), "").await;
        assert_eq!(answer.status, expected, "Host {host}: {answer:?}");
        if expected == 421 {
            assert!(answer.body.contains("\"error\""), "a JSON error: {answer:?}");
        }
    }
    let no_host = raw(addr, "GET /v1/status HTTP/1.1\r\nConnection: close\r\n", "").await;
    assert_eq!(no_host.status, 400, "HTTP/1.1 without Host: {no_host:?}");
    let absolute =
        raw(addr, "GET http://evil.example/v1/status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n", "")
            .await;
    assert_eq!(absolute.status, 421, "{absolute:?}");
    assert_eq!(node.streams().len(), 1, "only the allowed publication happened");
    drop(node);
}

/// What one connection makes, another cannot close; its maker and the admin can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_maker_or_the_admin_closes_an_egress_a_stream_or_a_transport() {
    let (node, addr, _) = webrtc_node_with_api_config(None, config(Some(APP), Some(ADMIN))).await;
    let (maker, mut maker_events) = rope(addr, APP).await;
    let (other, _) = rope(addr, APP).await;
    let (admin, _) = rope(addr, ADMIN).await;
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let port = receiver.local_addr().expect("addr").port();

    publish(&maker, "cam").await.expect("publish");
    let first =
        unvalue(consume(&maker, "cam", port).await.expect("first egress"))["id"].as_str().expect("id").to_owned();
    let second =
        unvalue(consume(&maker, "cam", port).await.expect("second egress"))["id"].as_str().expect("id").to_owned();

    // Another connection with the same app token: every way to close is refused, with -32003.
    assert_eq!(api::FORBIDDEN, -32003);
    match other.call("egress.close", None, value(serde_json::json!({"egress": first}))).await {
        Err(CallError::Rpc(error)) => {
            assert_eq!(error.code, api::FORBIDDEN);
            assert!(error.message.contains("only its owner or the admin"), "{error:?}");
        }
        unexpected => panic!("refused expected, got {unexpected:?}"),
    }
    // Its mirror shows the egresses and the stream before they are closed through it.
    let mirrored = || async {
        let ids: Vec<String> = other.mirror().into_iter().map(|o| o.id).collect();
        [first.as_str(), second.as_str(), "stream:cam"].iter().all(|id| ids.iter().any(|i| i == id))
    };
    assert!(eventually(Duration::from_secs(10), mirrored).await, "{:?}", other.mirror());
    assert_eq!(code(other.call("close", Some(&first), Value::Null).await), api::FORBIDDEN, "its mirror object");
    assert_eq!(code(other.call("object.close", None, value(serde_json::json!({"id": first}))).await), api::FORBIDDEN);
    assert_eq!(code(other.call("close", Some("stream:cam"), Value::Null).await), api::FORBIDDEN);
    assert_eq!(code(other.call("stream.unpublish", None, value(serde_json::json!({"stream": "cam"}))).await), -32003);
    // HTTP with the app token is another owner too (HTTP's owner is the token, ROPE's the connection).
    let path = format!("/v1/streams/cam/rtp-egress/{first}");
    let (status, body) = http(addr, "DELETE", &path, Some(APP), "", "").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(node.egress_count(), 2, "nothing was closed");
    assert_eq!(node.streams().len(), 1);

    // The maker closes one; the admin (over HTTP) the other.
    maker.call("close", Some(&first), Value::Null).await.expect("the maker closes its egress");
    assert_eq!(http(addr, "DELETE", &format!("/v1/streams/cam/rtp-egress/{second}"), Some(ADMIN), "", "").await.0, 204);
    assert_eq!(node.egress_count(), 0);

    // WebRTC transports live on their connection: others cannot even see them,
    // and `object.close` by id is refused to all but the admin.
    let before = transports(&node);
    let made = unvalue(maker.call("webrtc.createTransport", None, Value::Null).await.expect("transport"));
    let transport = made["id"].as_str().expect("id").to_owned();
    assert_eq!(object_event(&mut maker_events, &transport).await, EventKind::Created);
    assert_eq!(code(other.call("close", Some(&transport), Value::Null).await), -32001, "not visible elsewhere");
    let by_id = value(serde_json::json!({"id": transport}));
    assert_eq!(code(other.call("object.close", None, by_id.clone()).await), api::FORBIDDEN);
    assert_eq!(transports(&node), before + 1, "still open");
    admin.call("object.close", None, by_id.clone()).await.expect("the admin closes it");
    assert_eq!(object_event(&mut maker_events, &transport).await, EventKind::Closed, "its maker is told");
    assert!(eventually(Duration::from_secs(5), || async { transports(&node) == before }).await, "closed in mediasoup");
    assert_eq!(code(admin.call("object.close", None, by_id).await), -32001, "gone");
    let own = unvalue(maker.call("webrtc.createTransport", None, Value::Null).await.expect("transport"));
    maker.call("close", Some(own["id"].as_str().expect("id")), Value::Null).await.expect("the maker closes its own");

    // The admin may end another's publication; egresses made over ROPE close with their connection.
    let third =
        unvalue(consume(&maker, "cam", port).await.expect("third egress"))["id"].as_str().expect("id").to_owned();
    assert_eq!(node.egresses()[0].id, third);
    drop(maker);
    assert!(
        eventually(Duration::from_secs(10), || async { node.egress_count() == 0 && node.streams().is_empty() }).await,
        "the maker's egress and publication ended with its connection: {:?} {:?}",
        node.egresses(),
        node.streams()
    );
    publish(&other, "cam2").await.expect("publish");
    let stream = value(serde_json::json!({"id": "stream:cam2"}));
    assert_eq!(code(admin.call("object.close", None, Value::Null).await), -32602, "needs an id");
    admin.call("object.close", None, stream).await.expect("the admin ends it");
    assert!(node.streams().is_empty());
    drop((other, admin, node));
}

/// Past its cap a connection (or a token over HTTP) is refused with a typed
/// error and nothing is made; others are not affected and the node stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_its_cap_is_refused_and_the_node_stays_healthy() {
    let mut config = config(Some(APP), None);
    config.limits = Limits { egresses: 3, publications: 1, ..Limits::default() };
    let transports_cap = Limits::default().transports;
    assert_eq!(transports_cap, 16, "the documented default");
    let (node, addr, _) = webrtc_node_with_api_config(None, config).await;
    let (greedy, _) = rope(addr, APP).await;
    let (neighbour, _) = rope(addr, APP).await;

    // Transports, at the default cap.
    let before = transports(&node);
    let mut made = Vec::new();
    for _ in 0..transports_cap {
        let answer = unvalue(greedy.call("webrtc.createTransport", None, Value::Null).await.expect("under the cap"));
        made.push(answer["id"].as_str().expect("id").to_owned());
    }
    match greedy.call("webrtc.createTransport", None, Value::Null).await {
        Err(CallError::Rpc(error)) => {
            assert_eq!(error.code, api::LIMIT_REACHED);
            assert_eq!(api::LIMIT_REACHED, -32004);
            assert!(error.message.contains("at most 16 transports"), "{error:?}");
        }
        other => panic!("the 17th transport is refused, got {other:?}"),
    }
    assert_eq!(transports(&node), before + 16, "the refused transport was not made");
    neighbour.call("webrtc.createTransport", None, Value::Null).await.expect("the cap is per connection");
    greedy.call("close", Some(&made[0]), Value::Null).await.expect("close one");
    greedy.call("webrtc.createTransport", None, Value::Null).await.expect("room again after a close");

    // Publications and egresses, at configured caps.
    publish(&greedy, "cam").await.expect("the one publication");
    assert_eq!(code(publish(&greedy, "cam2").await), api::LIMIT_REACHED);
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let port = receiver.local_addr().expect("addr").port();
    let mut egresses = Vec::new();
    for _ in 0..3 {
        let egress = unvalue(consume(&greedy, "cam", port).await.expect("under the cap"));
        egresses.push(egress["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(code(consume(&greedy, "cam", port).await), api::LIMIT_REACHED);
    assert_eq!(node.egress_count(), 3, "the refused egress was not made");
    consume(&neighbour, "cam", port).await.expect("another connection has its own cap");

    // Over HTTP the cap is per token.
    let target = format!(r#"{{"ip":"127.0.0.1","port":{port}}}"#);
    let json = "Content-Type: application/json\r\n";
    for _ in 0..3 {
        assert_eq!(http(addr, "POST", "/v1/streams/cam/rtp-egress", Some(APP), json, &target).await.0, 201);
    }
    let (status, body) = http(addr, "POST", "/v1/streams/cam/rtp-egress", Some(APP), json, &target).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("at most 3 egresses")), "{body}");
    assert_eq!(node.egress_count(), 7);

    // Healthy: it answers, and a closed egress frees its slot.
    let status = unvalue(greedy.call("node.status", None, Value::Null).await.expect("status"));
    assert_eq!(status["egresses"], 7);
    assert_eq!(http(addr, "GET", "/v1/status", Some(APP), "", "").await.0, 200);
    greedy.call("close", Some(&egresses[0]), Value::Null).await.expect("close one");
    consume(&greedy, "cam", port).await.expect("room again after a close");
    assert_eq!(node.egress_count(), 7);
    drop((greedy, neighbour, node));
}
