//! The apps' HTTP API over real sockets: two nodes, a stream published through
//! one API and taken out through the other, bad input, auth and metrics; and
//! the same over the ROPE WebSocket API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mafalda_media::MediaConfig;
use mafalda_node::{Node, NodeConfig, api};
use mafalda_rope::{Client, ClientConfig, ClientEvent, EventKind, Value};
use mafalda_tests::media::{LOOPBACK, OPUS_PAYLOAD_TYPE};
use mafalda_tests::node::webrtc_node_with_api;
use mafalda_tests::rtp::assert_carried;
use mafalda_tests::swarm::loopback_config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const SSRC: u32 = 0x0a0b_0c0d;

/// One HTTP/1.1 request; returns the status code and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the API");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status line");
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

async fn node_with_api(bootstrap: Option<&Node>, token: Option<&str>) -> (Arc<Node>, SocketAddr) {
    let mut media = MediaConfig::default();
    media.workers = 1;
    let mut swarm = loopback_config();
    if let Some(seed) = bootstrap {
        swarm = swarm.with_bootstrap(seed.listen_addrs().await.expect("addrs"));
    }
    let node = Arc::new(Node::start(NodeConfig::new(media, swarm)).await.expect("start"));
    let listener = TcpListener::bind((LOOPBACK, 0)).await.expect("bind API");
    let (addr, _task) = api::serve(Arc::clone(&node), listener, token.map(str::to_owned)).expect("serve API");
    (node, addr)
}

/// Sends 150 Opus packets into `ingest` and checks they all come out at
/// `receiver`, in order and intact, with the SSRC and payload type `egress` announced.
async fn deliver_through(ingest: SocketAddr, receiver: &UdpSocket, egress: &serde_json::Value) {
    let ssrc = egress["tracks"][0]["ssrc"].as_u64().expect("ssrc") as u32;
    let payload_type = egress["tracks"][0]["payloadType"].as_u64().expect("pt") as u8;
    assert_carried(ingest, SSRC, receiver, (ssrc, payload_type), 150).await;
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body expected ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_through_one_api_and_take_out_through_another() {
    let (a, a_api) = node_with_api(None, Some("s3cret")).await;
    let (b, b_api) = node_with_api(Some(&a), None).await;
    let token = Some("s3cret");

    // Auth.
    assert_eq!(http(a_api, "GET", "/v1/status", None, None).await.0, 401);
    assert_eq!(http(a_api, "GET", "/v1/status", Some("wrong"), None).await.0, 401);
    let (code, body) = http(a_api, "GET", "/v1/status", token, None).await;
    assert_eq!(code, 200);
    assert_eq!(json(&body)["peerId"], a.peer_id().to_string());

    // Publish at a.
    let tracks =
        format!(r#"{{"tracks":[{{"kind":"audio","codec":"opus","payloadType":{OPUS_PAYLOAD_TYPE},"ssrc":{SSRC}}}]}}"#);
    let (code, body) = http(a_api, "PUT", "/v1/streams/cam/rtp-ingest", token, Some(&tracks)).await;
    assert_eq!(code, 201, "{body}");
    let ingest = json(&body);
    let ingest: SocketAddr =
        format!("{}:{}", ingest["ip"].as_str().expect("ip"), ingest["port"]).parse().expect("ingest address");

    // Find and take out at b.
    let (code, body) = http(b_api, "GET", "/v1/streams/cam", None, None).await;
    assert_eq!(code, 200, "{body}");
    let providers = json(&body)["providers"].clone();
    assert_eq!(providers[0]["peer"], a.peer_id().to_string());
    assert_eq!(providers[0]["hops"], 0);
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let target = format!(r#"{{"ip":"127.0.0.1","port":{}}}"#, receiver.local_addr().expect("addr").port());
    let (code, body) = http(b_api, "POST", "/v1/streams/cam/rtp-egress", None, Some(&target)).await;
    assert_eq!(code, 201, "{body}");
    let egress = json(&body);
    assert_eq!(egress["path"], serde_json::json!([a.peer_id().to_string(), b.peer_id().to_string()]));
    deliver_through(ingest, &receiver, &egress).await;

    // Metrics, then stop the egress and the publication.
    let (code, metrics) = http(b_api, "GET", "/metrics", None, None).await;
    assert_eq!(code, 200);
    assert!(metrics.contains("mafalda_streams 1") && metrics.contains("mafalda_egresses 1"), "{metrics}");
    assert!(metrics.contains("mafalda_worker_cpu_percent{worker="), "{metrics}");
    assert!(
        metrics.contains("mafalda_pipe_pairs{side=\"asking\"} 1")
            && metrics.contains("mafalda_pipe_pairs{side=\"serving\"} 0"),
        "b pipes the stream in over one kept pair: {metrics}"
    );
    assert!(
        metrics.contains("mafalda_find_latency_seconds_count 1"),
        "one find: the consume right after the GET pipes from what the GET found {metrics}"
    );
    assert!(
        metrics.contains(r#"mafalda_rope_calls_total{method="stream.pipe",direction="out",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"mafalda_rope_call_latency_seconds_count{method="stream.describe"}"#), "{metrics}");
    // libp2p's own metrics follow, once, before the single closing EOF.
    assert!(metrics.contains("\nlibp2p_swarm_connections_established_total"), "{metrics}");
    assert!(!metrics.contains("libp2p_libp2p"), "one prefix: {metrics}");
    assert!(metrics.contains("libp2p_bandwidth_bytes_total"), "{metrics}");
    assert!(metrics.contains("libp2p_kad_"), "{metrics}");
    assert_eq!(metrics.matches("# EOF").count(), 1, "{metrics}");
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    let egress_path = format!("/v1/streams/cam/rtp-egress/{}", egress["id"].as_str().expect("id"));
    assert_eq!(http(b_api, "DELETE", &egress_path, None, None).await.0, 204);
    assert_eq!(http(b_api, "DELETE", &egress_path, None, None).await.0, 404, "already stopped");
    assert_eq!(http(a_api, "DELETE", "/v1/streams/cam/rtp-ingest", token, None).await.0, 204);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let (node, api) = node_with_api(None, None).await;
    let (code, body) = http(api, "GET", "/v1/streams/nobody", None, None).await;
    assert_eq!(code, 404, "{body}");
    assert!(json(&body)["error"].as_str().expect("message").contains("not found"));
    let (code, body) = http(api, "PUT", "/v1/streams/cam/rtp-ingest", None, Some("{not json")).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("error"), "{body}");
    let unknown_codec = r#"{"tracks":[{"kind":"audio","codec":"mp3","payloadType":100,"ssrc":1}]}"#;
    assert_eq!(http(api, "PUT", "/v1/streams/cam/rtp-ingest", None, Some(unknown_codec)).await.0, 422);
    let mismatched = r#"{"tracks":[{"kind":"video","codec":"opus","payloadType":100,"ssrc":1}]}"#;
    let (code, body) = http(api, "PUT", "/v1/streams/cam/rtp-ingest", None, Some(mismatched)).await;
    assert_eq!(code, 400, "{body}");
    let bad_id = r#"{"tracks":[{"kind":"audio","codec":"opus","payloadType":100,"ssrc":1}]}"#;
    assert_eq!(http(api, "PUT", "/v1/streams/bad%20id/rtp-ingest", None, Some(bad_id)).await.0, 400);
    let huge = format!(r#"{{"tracks":[],"pad":"{}"}}"#, "x".repeat(api::MAX_BODY_BYTES));
    assert_eq!(http(api, "PUT", "/v1/streams/cam/rtp-ingest", None, Some(&huge)).await.0, 413);
    let (code, body) = http(api, "GET", "/v1/status", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(json(&body)["streams"], serde_json::json!([]), "failed requests changed nothing");
    drop(node);
}

/// Waits for the next object event on `id`, skipping others.
async fn object_event(events: &mut tokio::sync::mpsc::Receiver<ClientEvent>, id: &str) -> mafalda_rope::Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::Object(event))) if event.object == id => return event,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no event on object {id}"),
        }
    }
}

fn value(json: serde_json::Value) -> Value {
    Value::serialized(&json).expect("CBOR value")
}

fn unvalue(value: Value) -> serde_json::Value {
    value.deserialized().expect("JSON value")
}

/// The WebSocket API: the HTTP operations as ROPE calls (JSON at one node, CBOR
/// at the other), node changes as object events, bad calls as typed errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rope_websocket_api_does_what_http_does_and_reports_changes() {
    let (a, a_api) = node_with_api(None, Some("s3cret")).await;
    let (b, b_api) = node_with_api(Some(&a), None).await;
    let unauthorized = Client::connect(format!("ws://{a_api}/v1/rope?format=json"), ClientConfig::default()).await;
    assert!(unauthorized.is_err(), "no token, no connection");
    let url = format!("ws://{a_api}/v1/rope?format=json&access_token=s3cret");
    let (at_a, mut a_events) = Client::connect(url, ClientConfig::default()).await.expect("connect to a");
    let (at_b, mut b_events) =
        Client::connect(format!("ws://{b_api}/v1/rope"), ClientConfig::default()).await.expect("connect to b");
    let held = |client: &Client| client.mirror().into_iter().filter(|object| object.id != "session").count();
    assert!(held(&at_a) == 0 && held(&at_b) == 0, "nothing held yet (only the session object)");

    // Publish at a over JSON: the answer says where to send, the stream appears as an object.
    let tracks =
        serde_json::json!([{"kind": "audio", "codec": "opus", "payloadType": OPUS_PAYLOAD_TYPE, "ssrc": SSRC}]);
    let ingest = unvalue(
        at_a.call("stream.publish", None, value(serde_json::json!({"stream": "cam", "tracks": tracks})))
            .await
            .expect("publish"),
    );
    let ingest: SocketAddr =
        format!("{}:{}", ingest["ip"].as_str().expect("ip"), ingest["port"]).parse().expect("ingest address");
    let created = object_event(&mut a_events, "stream:cam").await;
    assert_eq!(created.name, EventKind::Created);
    assert_eq!(unvalue(created.data)["hops"], 0);

    // Find and consume at b over CBOR.
    let found =
        unvalue(at_b.call("stream.find", None, value(serde_json::json!({"stream": "cam"}))).await.expect("find"));
    assert_eq!(found["tracks"][0]["codec"], "opus", "{found}");
    assert_eq!(found["providers"][0]["peer"], a.peer_id().to_string());
    let receiver = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind");
    let port = receiver.local_addr().expect("addr").port();
    let egress = unvalue(
        at_b.call("stream.consume", None, value(serde_json::json!({"stream": "cam", "ip": "127.0.0.1", "port": port})))
            .await
            .expect("consume"),
    );
    let egress_id = egress["id"].as_str().expect("egress id").to_owned();
    assert_eq!(object_event(&mut b_events, "stream:cam").await.name, EventKind::Created, "b now relays cam");
    let opened = object_event(&mut b_events, &egress_id).await;
    assert_eq!(opened.name, EventKind::Created);
    assert_eq!(unvalue(opened.data)["tracks"], egress["tracks"], "the object's state is the egress");
    deliver_through(ingest, &receiver, &egress).await;

    // Bad calls get typed errors and change nothing.
    let code = |result: Result<Value, mafalda_rope::CallError>| match result {
        Err(mafalda_rope::CallError::Rpc(error)) => error.code,
        other => panic!("an error expected, got {other:?}"),
    };
    assert_eq!(code(at_b.call("stream.find", None, value(serde_json::json!({"stream": "nobody"}))).await), -32001);
    assert_eq!(code(at_b.call("stream.find", None, value(serde_json::json!({"stream": "bad id"}))).await), -32602);
    assert_eq!(code(at_b.call("stream.consume", None, value(serde_json::json!({"stream": "cam"}))).await), -32602);
    assert_eq!(code(at_b.call("stream.teleport", None, Value::Null).await), -32601);
    assert_eq!(code(at_b.call("close", Some("egress-999"), Value::Null).await), -32001);
    let again = serde_json::json!({"stream": "cam", "tracks": tracks});
    assert_eq!(code(at_a.call("stream.publish", None, value(again)).await), -32010, "already published");

    // Close the egress through its object, then end the publication at a:
    // b's relay of it ends too, and b's app is told.
    at_b.call("close", Some(&egress_id), Value::Null).await.expect("close the egress");
    assert_eq!(object_event(&mut b_events, &egress_id).await.name, EventKind::Closed);
    at_a.call("close", Some("stream:cam"), Value::Null).await.expect("end the publication");
    assert_eq!(object_event(&mut a_events, "stream:cam").await.name, EventKind::Closed);
    // The relay's object changes first (its egress is gone: no local consumer), then closes.
    let mut relay_event = object_event(&mut b_events, "stream:cam").await;
    while relay_event.name == EventKind::Changed {
        relay_event = object_event(&mut b_events, "stream:cam").await;
    }
    assert_eq!(relay_event.name, EventKind::Closed, "the relay ended");
    let status = unvalue(at_b.call("node.status", None, Value::Null).await.expect("status"));
    assert_eq!((status["streams"].clone(), status["egresses"].clone()), (serde_json::json!([]), serde_json::json!(0)));
    assert_eq!(held(&at_b), 0, "the mirror follows the node");
    drop((a, b));
}

fn transports(node: &Node) -> u32 {
    node.media().status().iter().map(|w| w.objects.transports).sum()
}

/// Remote control of media objects: what mediasoup-client needs (capabilities,
/// transports, produce, consume, resume) against real mediasoup, the stream
/// published at one node and consumed at another through a pipe; everything a
/// connection made closes when it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_objects_are_driven_over_rope_and_closed_with_their_connection() {
    let (a, a_api, a_port) = webrtc_node_with_api(None).await;
    let (b, b_api, _) = webrtc_node_with_api(Some(&a)).await;
    let (at_a, mut a_events) =
        Client::connect(format!("ws://{a_api}/v1/rope?format=json"), ClientConfig::default()).await.expect("a");
    let (at_b, _) = Client::connect(format!("ws://{b_api}/v1/rope"), ClientConfig::default()).await.expect("b");
    let a_transports_before = transports(&a);

    let caps = unvalue(at_a.call("router.rtpCapabilities", None, Value::Null).await.expect("capabilities"));
    let mimes: Vec<&str> =
        caps["codecs"].as_array().expect("codecs").iter().filter_map(|c| c["mimeType"].as_str()).collect();
    assert!(mimes.contains(&"audio/opus") && mimes.contains(&"video/VP8"), "{mimes:?}");

    // Publish one Opus track from a WebRTC send transport at a.
    let send = unvalue(at_a.call("webrtc.createTransport", None, Value::Null).await.expect("send transport"));
    let send_id = send["id"].as_str().expect("id").to_owned();
    let candidate = &send["iceCandidates"][0];
    assert_eq!(
        (candidate["address"].as_str(), candidate["port"].as_u64()),
        (Some("127.0.0.1"), Some(u64::from(a_port)))
    );
    assert!(send["dtlsParameters"]["fingerprints"].as_array().is_some_and(|f| !f.is_empty()), "{send}");
    let created = object_event(&mut a_events, &send_id).await;
    assert_eq!((created.name, created.object_type.as_str()), (EventKind::Created, "webRtcTransport"));
    assert_eq!(unvalue(created.data), serde_json::json!({"iceState": "new", "dtlsState": "new"}));
    let rtp_parameters = serde_json::json!({
        "mid": "0",
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                    "parameters": {"useinbandfec": 1}, "rtcpFeedback": []}],
        "encodings": [{"ssrc": 11111111}],
        "headerExtensions": [],
        "rtcp": {"cname": "browser", "reducedSize": true}
    });
    let produce = serde_json::json!({"stream": "web", "kind": "audio", "rtpParameters": rtp_parameters});
    let produced = unvalue(at_a.call("produce", Some(&send_id), value(produce)).await.expect("produce"));
    let producer_id = produced["id"].as_str().expect("producer id").to_owned();
    assert_eq!(a.streams()[0].stream, "web", "the track is a stream at a");

    // Consume it at b: piped from a, consumer paused until resumed.
    let b_caps = at_b.call("router.rtpCapabilities", None, Value::Null).await.expect("capabilities");
    let recv = unvalue(at_b.call("webrtc.createTransport", None, Value::Null).await.expect("recv transport"));
    let recv_id = recv["id"].as_str().expect("id").to_owned();
    let consume = serde_json::json!({"stream": "web", "rtpCapabilities": unvalue(b_caps)});
    let consumers = unvalue(at_b.call("consume", Some(&recv_id), value(consume)).await.expect("consume"));
    assert_ne!(consumers[0]["producerId"], producer_id.as_str(), "each node names the producers it holds");
    assert_eq!(consumers[0]["kind"], "audio");
    assert_eq!(consumers[0]["rtpParameters"]["codecs"][0]["mimeType"], "audio/opus");
    let consumer_id = consumers[0]["id"].as_str().expect("consumer id").to_owned();
    at_b.call("resume", Some(&consumer_id), Value::Null).await.expect("resume");
    assert_eq!(b.streams()[0].upstream, Some(a.peer_id().to_string()), "b relays from a");

    // Bad calls are refused with typed errors.
    let code = |result: Result<Value, mafalda_rope::CallError>| match result {
        Err(mafalda_rope::CallError::Rpc(error)) => error.code,
        other => panic!("an error expected, got {other:?}"),
    };
    let no_codecs = serde_json::json!({"stream": "web", "rtpCapabilities": {"codecs": [], "headerExtensions": []}});
    assert_eq!(code(at_b.call("consume", Some(&recv_id), value(no_codecs)).await), -32602, "no common codec");
    let bad_dtls = serde_json::json!({"dtlsParameters": {"role": "client", "fingerprints": "nope"}});
    assert_eq!(code(at_b.call("connect", Some(&recv_id), value(bad_dtls)).await), -32602);
    let bad_kind = serde_json::json!({"stream": "web2", "kind": "smell", "rtpParameters": rtp_parameters});
    assert_eq!(code(at_a.call("produce", Some(&send_id), value(bad_kind)).await), -32602);
    let mut vp9 = rtp_parameters.clone();
    vp9["codecs"][0] = serde_json::json!({"mimeType": "video/VP9", "payloadType": 98, "clockRate": 90000,
                                          "parameters": {}, "rtcpFeedback": []});
    let unsupported = serde_json::json!({"stream": "web3", "kind": "video", "rtpParameters": vp9});
    match at_a.call("produce", Some(&send_id), value(unsupported)).await {
        Err(mafalda_rope::CallError::Rpc(error)) => {
            assert_eq!(error.code, -32602);
            assert!(error.message.contains("track rejected"), "says which track and why: {error:?}");
        }
        other => panic!("an unsupported codec is refused, got {other:?}"),
    }
    assert_eq!(a.streams().len(), 1, "the refused tracks published nothing");

    // a's app disconnects: its transport and producer close, the stream ends at a
    // and at its relay b.
    drop(at_a);
    let gone = mafalda_tests::swarm::eventually(Duration::from_secs(10), || async {
        transports(&a) < a_transports_before + 1 && a.streams().is_empty() && b.streams().is_empty()
    })
    .await;
    assert!(gone, "a: {} transports, streams {:?}; b streams {:?}", transports(&a), a.streams(), b.streams());
    // The consumer's close reaches b's app as an event, after the stream ended there.
    let consumer_closed = mafalda_tests::swarm::eventually(Duration::from_secs(5), || async {
        at_b.mirror().iter().all(|o| o.object_type != "consumer")
    })
    .await;
    assert!(consumer_closed, "b's consumer closed with the stream's end");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_on_a_node_without_it_is_a_clear_error() {
    let (node, api) = node_with_api(None, None).await;
    let (client, _) = Client::connect(format!("ws://{api}/v1/rope"), ClientConfig::default()).await.expect("connect");
    match client.call("webrtc.createTransport", None, Value::Null).await {
        Err(mafalda_rope::CallError::Rpc(error)) => {
            assert!(error.message.contains("WebRTC is not configured"), "{error:?}")
        }
        other => panic!("an error expected, got {other:?}"),
    }
    drop(node);
}
