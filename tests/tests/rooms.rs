//! Rooms that span nodes: apps at different nodes join one room through
//! their own node's `/v1/rope`, see every producer of it wherever it was
//! made, consume it with real RTP arriving at a UDP socket, and see it go
//! when its producer, its app or its node does. Real nodes, real mediasoup,
//! real libp2p on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mafalda_node::Node;
use mafalda_rope::CallError;
use mafalda_tests::node::webrtc_node_with_api;
use mafalda_tests::room::{OPUS_PT, RoomApp};
use mafalda_tests::rtp::{assert_delivered, receive_rtp, send_paced, test_stream};
use mafalda_tests::swarm::{connected_within, eventually};
use serde_json::json;
use tokio::net::UdpSocket;

/// `count` nodes with their API, all joined through the first and connected.
async fn swarm_of(count: usize) -> Vec<(Arc<Node>, SocketAddr)> {
    mafalda_tests::node::connected_webrtc_nodes(count, mafalda_tests::node::test_api_config()).await
}

fn rpc_error(result: Result<serde_json::Value, CallError>) -> (i64, String) {
    match result {
        Err(CallError::Rpc(error)) => {
            let name = error
                .data
                .as_ref()
                .and_then(|data| data.deserialized::<serde_json::Value>().ok())
                .and_then(|data| data["name"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (error.code, name)
        }
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_made_at_one_node_is_seen_and_played_at_another() {
    let nodes = swarm_of(2).await;
    let (a_node, b_node) = (&nodes[0].0, &nodes[1].0);
    let a = RoomApp::connect(nodes[0].1).await;
    let mut b = RoomApp::connect(nodes[1].1).await;

    let joined = a.join("standup").await;
    assert_eq!(joined["id"], "room:standup");
    assert_eq!(joined["producers"], json!([]));
    assert_eq!(joined["nodes"], json!([a_node.peer_id().to_string()]));
    assert!(joined["rtpCapabilities"]["codecs"].as_array().is_some_and(|codecs| !codecs.is_empty()));
    let joined = b.join("standup").await;
    let mut both = vec![a_node.peer_id().to_string(), b_node.peer_id().to_string()];
    both.sort();
    assert_eq!(joined["nodes"], json!(both), "the second node met the first on joining");
    assert!(a.sees("standup", Duration::from_secs(5), |room| room["nodes"] == json!(both)).await);

    // A publishes: B's app hears of it with the same id, A's node, its appData.
    let started = Instant::now();
    let producer = a.produce_opus("standup", 4242).await;
    assert!(
        b.sees("standup", Duration::from_secs(5), |room| room["producers"].as_array().is_some_and(|producers| {
            producers.len() == 1
                && producers[0]["id"] == producer.id.as_str()
                && producers[0]["node"] == a_node.peer_id().to_string().as_str()
                && producers[0]["kind"] == "audio"
                && producers[0]["paused"] == false
                && producers[0]["appData"] == json!({ "who": "test" })
        }))
        .await,
        "B sees A's producer"
    );
    eprintln!("produce at A to the room's change at B: {:?}", started.elapsed());
    let status = a.ok(None, "node.status", json!(null)).await;
    assert_eq!(
        status["rooms"],
        json!([{ "room": "standup", "apps": 1, "members": [b_node.peer_id().to_string()], "producers": 1 }]),
        "the node's status shows the room"
    );

    // B plays it: the room's id for the producer, RTP at B's socket.
    let consumer = b.consume_plain("standup", &producer.id).await.expect("consume A's producer at B");
    assert_eq!(consumer.answer["producerId"], producer.id.as_str(), "the room's id, not the local copy's");
    assert_eq!(consumer.answer["kind"], "audio");
    let sender = UdpSocket::bind(("127.0.0.1", 0)).await.expect("bind");
    let packets = test_stream(4242, OPUS_PT, 100);
    let (_, received) = tokio::join!(
        send_paced(&sender, producer.target, &packets, Duration::from_millis(5)),
        receive_rtp(&consumer.socket, consumer.ssrc, packets.len(), Duration::from_secs(2)),
    );
    assert_delivered(&packets, &received, consumer.payload_type, consumer.ssrc);

    // A pauses: the room says so, and B's consumer hears its producer paused.
    a.ok(Some(&producer.id), "pause", json!(null)).await;
    assert!(
        b.sees("standup", Duration::from_secs(5), |room| room["producers"][0]["paused"] == true).await,
        "the pause reached B's room"
    );
    let consumer_paused = eventually(Duration::from_secs(5), || async {
        b.client.mirror().iter().any(|object| {
            object.id == consumer.id
                && object.state.deserialized::<serde_json::Value>().is_ok_and(|state| state["producerPaused"] == true)
        })
    })
    .await;
    assert!(consumer_paused, "B's consumer follows the producer's pause");
    a.ok(Some(&producer.id), "resume", json!(null)).await;
    assert!(b.sees("standup", Duration::from_secs(5), |room| room["producers"][0]["paused"] == false).await);

    // A closes it: gone from B's room, and B's consumer closed itself, saying why.
    while b.events.try_recv().is_ok() {}
    a.ok(Some(&producer.id), "close", json!(null)).await;
    assert!(b.sees("standup", Duration::from_secs(5), |room| room["producers"] == json!([])).await);
    assert!(
        eventually(Duration::from_secs(5), || async { !b.has_object(&consumer.id) }).await,
        "the consumer closed with its producer"
    );
    let mut reason = None;
    while let Ok(event) = b.events.try_recv() {
        if let mafalda_rope::ClientEvent::Object(event) = event
            && event.object == consumer.id
            && event.name == mafalda_rope::EventKind::Closed
        {
            reason = event.data.deserialized::<serde_json::Value>().ok();
        }
    }
    assert_eq!(reason, Some(json!({ "reason": "producerclose" })), "the closed event says why");
    assert!(a_node.streams().is_empty(), "the producer's stream ended at its node");
    assert!(eventually(Duration::from_secs(5), || async { b_node.streams().is_empty() }).await, "and its copy at B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_or_dropping_the_connection_removes_the_apps_producers_everywhere() {
    let nodes = swarm_of(2).await;
    let a = RoomApp::connect(nodes[0].1).await;
    let b = RoomApp::connect(nodes[1].1).await;
    a.join("leavers").await;
    b.join("leavers").await;
    let first = a.produce_opus("leavers", 1).await;
    assert!(
        b.sees("leavers", Duration::from_secs(5), |room| room["producers"].as_array().is_some_and(|p| p.len() == 1))
            .await
    );
    let consumer = b.consume_plain("leavers", &first.id).await.expect("consume");

    // `leave`: the room object and everything made in it close at A; B sees the producer go.
    a.ok(Some("room:leavers"), "leave", json!(null)).await;
    let gone =
        eventually(Duration::from_secs(5), || async { !a.has_object("room:leavers") && !a.has_object(&first.id) })
            .await;
    assert!(gone, "the room object and its producer closed at A");
    assert!(
        b.sees("leavers", Duration::from_secs(5), |room| room["producers"] == json!([])
            && room["nodes"].as_array().is_some_and(|nodes| nodes.len() == 1))
            .await,
        "A's node left the room"
    );
    assert!(eventually(Duration::from_secs(5), || async { !b.has_object(&consumer.id) }).await);

    // Joined again, then the connection drops: after the session's grace, gone everywhere.
    a.join("leavers").await;
    let second = a.produce_opus("leavers", 2).await;
    assert!(b.sees("leavers", Duration::from_secs(5), |room| room["producers"][0]["id"] == second.id.as_str()).await);
    drop(a);
    assert!(b.sees("leavers", Duration::from_secs(10), |room| room["producers"] == json!([])).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_producers_close_everywhere_within_two_seconds() {
    let nodes = swarm_of(3).await;
    let (a, b, c) =
        (RoomApp::connect(nodes[0].1).await, RoomApp::connect(nodes[1].1).await, RoomApp::connect(nodes[2].1).await);
    for app in [&a, &b, &c] {
        app.join("fragile").await;
    }
    let doomed = b.produce_opus("fragile", 7).await;
    let kept = c.produce_opus("fragile", 8).await;
    for app in [&a, &c] {
        assert!(
            app.sees("fragile", Duration::from_secs(5), |room| room["producers"]
                .as_array()
                .is_some_and(|p| p.len() == 2))
                .await
        );
    }
    let consumer = a.consume_plain("fragile", &doomed.id).await.expect("consume B's producer at A");

    let killed = Instant::now();
    nodes[1].0.shutdown().await;
    let only_kept = json!([kept.id]);
    assert!(
        a.sees("fragile", Duration::from_secs(2), |room| {
            room["producers"].as_array().is_some_and(|p| p.len() == 1 && p[0]["id"] == only_kept[0])
        })
        .await,
        "B's producer gone from A's room within 2 s"
    );
    assert!(
        c.sees("fragile", Duration::from_secs(2), |room| room["producers"].as_array().is_some_and(|p| p.len() == 1))
            .await
    );
    assert!(
        eventually(Duration::from_secs(2), || async { !a.has_object(&consumer.id) }).await,
        "A's consumer of it closed"
    );
    eprintln!("node killed to its producers gone everywhere: {:?}", killed.elapsed());
    // The other two still play each other.
    let played = a.consume_plain("fragile", &kept.id).await.expect("C's producer still plays at A");
    let sender = UdpSocket::bind(("127.0.0.1", 0)).await.expect("bind");
    let packets = test_stream(8, OPUS_PT, 50);
    let (_, received) = tokio::join!(
        send_paced(&sender, kept.target, &packets, Duration::from_millis(5)),
        receive_rtp(&played.socket, played.ssrc, packets.len(), Duration::from_secs(2)),
    );
    assert_delivered(&packets, &received, played.payload_type, played.ssrc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_room_calls_are_typed_errors_and_change_nothing() {
    let nodes = swarm_of(2).await;
    let a = RoomApp::connect(nodes[0].1).await;
    let b = RoomApp::connect(nodes[1].1).await;
    // Room ids are checked like stream ids.
    for bad in
        [json!({ "room": "" }), json!({ "room": "a/b" }), json!({ "room": "x".repeat(200) }), json!({ "nope": 1 })]
    {
        let (code, name) = rpc_error(a.call(None, "room.join", bad).await);
        assert_eq!((code, name.as_str()), (-32602, "TypeError"));
    }
    a.join("strict").await;
    let (_, name) = rpc_error(a.call(None, "room.join", json!({ "room": "strict" })).await);
    assert_eq!(name, "InvalidStateError", "joined twice");
    // Where a room transport listens is the node's to say.
    let (_, name) = rpc_error(
        a.call(
            Some("room:strict"),
            "createPlainTransport",
            json!({ "listenInfo": { "protocol": "udp", "ip": "0.0.0.0" } }),
        )
        .await,
    );
    assert_eq!(name, "TypeError");
    let producer = a.produce_opus("strict", 9).await;
    b.join("strict").await;
    assert!(
        b.sees("strict", Duration::from_secs(5), |room| room["producers"].as_array().is_some_and(|p| p.len() == 1))
            .await
    );

    // Unknown producer; incompatible capabilities; malformed RTP parameters.
    let (_, name) =
        rpc_error(b.consume_plain("strict", "0b0c8a4e-8f33-4a5e-9d7e-2f6d1b1f0a01").await.map(|c| c.answer));
    assert_eq!(name, "TypeError");
    let transport = b.ok(Some("room:strict"), "createPlainTransport", json!({ "comedia": true })).await;
    let transport = transport["id"].as_str().expect("id").to_owned();
    let vp8_only = json!({ "codecs": [{ "kind": "video", "mimeType": "video/VP8", "clockRate": 90000, "preferredPayloadType": 101 }] });
    let (_, name) = rpc_error(
        b.call(Some(&transport), "consume", json!({ "producerId": producer.id, "rtpCapabilities": vp8_only })).await,
    );
    assert_eq!(name, "UnsupportedError");
    assert_eq!(
        b.ok(Some("room:strict"), "canConsume", json!({ "producerId": producer.id, "rtpCapabilities": vp8_only }))
            .await,
        json!(false)
    );
    let caps = b.room("strict").expect("room")["rtpCapabilities"].clone();
    assert_eq!(
        b.ok(Some("room:strict"), "canConsume", json!({ "producerId": producer.id, "rtpCapabilities": caps })).await,
        json!(true)
    );
    let (_, name) = rpc_error(
        b.call(Some(&transport), "produce", json!({ "kind": "audio", "rtpParameters": { "codecs": "no" } })).await,
    );
    assert_eq!(name, "TypeError");
    // Another connection's object.
    let (code, _) = rpc_error(b.call(Some(&producer.id), "close", json!(null)).await);
    assert_eq!(code, -32001);
    // Nothing changed: the producer is still the room's only one, at both nodes.
    for app in [&a, &b] {
        assert_eq!(app.producer_ids("strict"), vec![producer.id.clone()]);
    }
    a.ok(None, "room.join", json!({ "room": "after" })).await;
    assert!(nodes[0].0.streams().len() == 1, "the node still holds just the producer's stream");
}

/// A peer that is not a node plays the rogue with `room.sync`: malformed and
/// oversized entries are refused, a room the node is not in keeps nothing,
/// and the phantom producer it does get listed fails to play with a typed
/// error and goes when the rogue stops answering as a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_peers_room_entries_are_checked_bounded_and_dropped() {
    use mafalda_rope::Value;
    use mafalda_tests::swarm::{loopback_config, spawn_node};

    let nodes = swarm_of(1).await;
    let node = &nodes[0].0;
    let rogue = spawn_node(loopback_config().with_bootstrap(node.listen_addrs().await.expect("addrs"))).await;
    let app = RoomApp::connect(nodes[0].1).await;
    app.join("victim").await;
    let sync = |room: &str, producers: serde_json::Value| {
        Value::serialized(&json!({ "room": room, "entry": { "incarnation": 1, "seq": 1, "producers": producers } }))
            .expect("encode")
    };
    let producer = |id: String| {
        json!({ "id": id, "kind": "audio", "paused": false, "appData": {},
                "codecs": [{ "mimeType": "audio/opus", "clockRate": 48000, "channels": 2 }] })
    };
    let refused = |result: Result<Value, mafalda_swarm::CallError>| match result {
        Err(mafalda_swarm::CallError::Remote(error)) => error.code,
        other => panic!("expected a refusal, got {other:?}"),
    };

    // Malformed: not a UUID; too many producers; a field nobody sends.
    let bad_id = sync("victim", json!([producer("not-a-uuid".into())]));
    assert_eq!(refused(rogue.handle.call(node.peer_id(), "room.sync", None, bad_id).await), -32602);
    let many: Vec<_> = (0..200).map(|_| producer(uuid_text())).collect();
    let flood = sync("victim", json!(many));
    assert_eq!(refused(rogue.handle.call(node.peer_id(), "room.sync", None, flood).await), -32602);
    let odd = Value::serialized(
        &json!({ "room": "victim", "entry": { "incarnation": 1, "seq": 1, "producers": [], "x": 1 } }),
    )
    .expect("encode");
    assert_eq!(refused(rogue.handle.call(node.peer_id(), "room.sync", None, odd).await), -32602);
    assert!(app.producer_ids("victim").is_empty(), "nothing refused reached the room");

    // A room the node is not in: an empty answer, nothing kept.
    let answer =
        rogue.handle.call(node.peer_id(), "room.sync", None, sync("elsewhere", json!([]))).await.expect("answer");
    let answer: serde_json::Value = answer.deserialized().expect("json");
    assert_eq!(answer["entry"], serde_json::Value::Null);
    assert_eq!(node.rooms().len(), 1, "no state for a room nobody here joined");

    // A well-formed entry is taken (the rogue is a member like any other)...
    let phantom = uuid_text();
    rogue
        .handle
        .call(node.peer_id(), "room.sync", None, sync("victim", json!([producer(phantom.clone())])))
        .await
        .expect("merged");
    assert!(app.sees("victim", Duration::from_secs(5), |room| room["producers"][0]["id"] == phantom.as_str()).await);
    // ...but its producer plays only if it really pipes it: it does not.
    let error = app.consume_plain("victim", &phantom).await.map(|consumer| consumer.answer);
    assert!(error.is_err(), "a phantom producer is a typed error, not a consumer");
    // It does not answer syncs as a member does: checked and dropped.
    assert!(
        app.sees("victim", Duration::from_secs(15), |room| room["producers"] == json!([])).await,
        "the rogue's entry is gone once it failed to sync"
    );
    assert_eq!(node.rooms()[0].members, Vec::<mafalda_swarm::PeerId>::new());
}

fn uuid_text() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// An app's WebSocket is cut (a TCP relay drops it) while it publishes into
/// a room: it reconnects within the grace with its session token; its
/// producer was never closed at the other node and media kept flowing. Cut
/// again and not back: after the grace, its producer is gone everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_that_comes_back_within_the_grace_keeps_its_producer_playing_everywhere() {
    use mafalda_node::api::ApiConfig;
    use mafalda_tests::tcp_relay::TcpRelay;

    let mut config = ApiConfig::default();
    config.session_grace = Duration::from_secs(3);
    // The app reaches the node through the relay's port.
    config.hosts = vec!["127.0.0.1".parse().expect("a host")];
    let (a_node, a_api, _) = mafalda_tests::node::webrtc_node_with_api_config(None, config).await;
    let (b_node, b_api, _) = webrtc_node_with_api(Some(&a_node)).await;
    assert!(connected_within(b_node.swarm(), a_node.peer_id(), Duration::from_secs(10)).await);
    let relay = TcpRelay::start(a_api).await;
    // This first client reconnects by itself after the cut, without the
    // token (a new, empty session): the app resumes with a client of its own.
    let a = RoomApp::connect(relay.addr()).await;
    let token = a.session_token();
    let b = RoomApp::connect(b_api).await;
    a.join("flaky").await;
    b.join("flaky").await;
    let producer = a.produce_opus("flaky", 31).await;
    assert!(b.sees("flaky", Duration::from_secs(5), |room| room["producers"][0]["id"] == producer.id.as_str()).await);
    let consumer = b.consume_plain("flaky", &producer.id).await.expect("consume");

    // 300 packets, one every 10 ms; the connection is cut once packet 100 is
    // sent and the app is back once packet 150 is: packets 100-149 go while
    // the app is away.
    let sender = UdpSocket::bind(("127.0.0.1", 0)).await.expect("bind");
    let packets = test_stream(31, OPUS_PT, 300);
    let (cut_now, back_now) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
    let sending = async {
        let pace = Duration::from_millis(10);
        send_paced(&sender, producer.target, &packets[..100], pace).await;
        cut_now.notify_one();
        send_paced(&sender, producer.target, &packets[100..150], pace).await;
        back_now.notify_one();
        send_paced(&sender, producer.target, &packets[150..], pace).await;
    };
    let receiving = receive_rtp(&consumer.socket, consumer.ssrc, packets.len(), Duration::from_secs(2));
    let reconnecting = async {
        cut_now.notified().await;
        relay.cut();
        back_now.notified().await;
        RoomApp::resume(relay.addr(), Some(&token)).await
    };
    let ((), received, a) = tokio::join!(sending, receiving, reconnecting);
    assert_eq!(a.session_token(), token, "the same session came back");
    assert!(a.has_object("room:flaky") && a.has_object(&producer.id), "its room and producer are intact");
    assert!(b.has_object(&consumer.id), "B's consumer was never closed");
    assert!(received.len() >= 297, "{} of 300 packets reached B across the cut", received.len());
    let indices: std::collections::HashSet<u32> = received
        .iter()
        .filter_map(|packet| {
            packet.payload.get(1..5).map(|bytes| u32::from_be_bytes(bytes.try_into().expect("4 bytes")))
        })
        .collect();
    let missed: Vec<u32> = (100..150).filter(|index| !indices.contains(index)).collect();
    assert!(missed.is_empty(), "media kept flowing while the app was away; missed {missed:?}");
    // The resumed connection drives its objects.
    a.ok(Some(&producer.id), "pause", json!(null)).await;
    assert!(b.sees("flaky", Duration::from_secs(5), |room| room["producers"][0]["paused"] == true).await);

    // Cut again, and not back (the client would reconnect by itself, with
    // the token in its URL): gone everywhere once the grace ran out.
    drop(a);
    relay.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(b.has_object(&consumer.id), "still within the grace");
    assert!(b.sees("flaky", Duration::from_secs(5), |room| room["producers"] == json!([])).await);
    assert!(eventually(Duration::from_secs(2), || async { !b.has_object(&consumer.id) }).await);
}

/// Mediasoup-cluster from one endpoint: an app connected to A makes room
/// transports on B (`node`); they live there (B's ports, B's producers)
/// and carry media, driven through the app's own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_made_with_node_lives_on_that_node_and_carries_media() {
    let (a_node, a_api, a_port) = webrtc_node_with_api(None).await;
    let (b_node, _b_api, b_port) = webrtc_node_with_api(Some(&a_node)).await;
    assert!(connected_within(a_node.swarm(), b_node.peer_id(), Duration::from_secs(10)).await);
    let b_id = b_node.peer_id().to_string();
    let app = RoomApp::connect(a_api).await;
    let listener = RoomApp::connect(a_api).await;
    app.join("cluster").await;
    listener.join("cluster").await;

    // A WebRTC transport on B: its candidates are B's WebRTC port, not A's.
    let webrtc = app.ok(Some("room:cluster"), "createWebRtcTransport", json!({ "node": b_id })).await;
    let ports: Vec<u64> =
        webrtc["iceCandidates"].as_array().expect("candidates").iter().filter_map(|c| c["port"].as_u64()).collect();
    assert!(
        !ports.is_empty() && ports.iter().all(|port| *port == u64::from(b_port)),
        "{ports:?} are B's {b_port}, not A's {a_port}"
    );
    let webrtc_id = webrtc["id"].as_str().expect("id").to_owned();
    assert!(
        eventually(Duration::from_secs(5), || async { app.has_object(&webrtc_id) }).await,
        "mirrored in the app's own connection"
    );

    // A plain transport and a producer on B, made and driven from A.
    let plain = app.ok(Some("room:cluster"), "createPlainTransport", json!({ "node": b_id, "comedia": true })).await;
    let plain_id = plain["id"].as_str().expect("id").to_owned();
    let port = plain["tuple"]["localPort"].as_u64().expect("port");
    let produced = app
        .ok(
            Some(&plain_id),
            "produce",
            json!({ "kind": "audio", "rtpParameters": mafalda_tests::room::opus_parameters(55) }),
        )
        .await;
    let producer = produced["id"].as_str().expect("id").to_owned();
    assert!(
        listener.sees("cluster", Duration::from_secs(5), |room| room["producers"][0]["node"] == b_id.as_str()).await,
        "the producer is B's"
    );
    assert_eq!(b_node.streams().len(), 1, "B holds it");
    // Played at A by the other app: RTP sent to B's transport arrives.
    let consumer = listener.consume_plain("cluster", &producer).await.expect("consume");
    let sender = UdpSocket::bind(("127.0.0.1", 0)).await.expect("bind");
    let packets = test_stream(55, OPUS_PT, 60);
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let (_, received) = tokio::join!(
        send_paced(&sender, target, &packets, Duration::from_millis(5)),
        receive_rtp(&consumer.socket, consumer.ssrc, packets.len(), Duration::from_secs(2)),
    );
    assert_delivered(&packets, &received, consumer.payload_type, consumer.ssrc);

    // Leaving at A closes what the app made on B.
    app.ok(Some("room:cluster"), "leave", json!(null)).await;
    assert!(
        eventually(Duration::from_secs(5), || async { !app.has_object(&plain_id) && !app.has_object(&webrtc_id) })
            .await
    );
    assert!(listener.sees("cluster", Duration::from_secs(5), |room| room["producers"] == json!([])).await);
    assert!(eventually(Duration::from_secs(5), || async { b_node.rooms().is_empty() }).await, "B left the room");
    // Not a peer id: a TypeError.
    app.join("cluster").await;
    let (code, name) =
        rpc_error(app.call(Some("room:cluster"), "createPlainTransport", json!({ "node": "nobody" })).await);
    assert_eq!((code, name.as_str()), (-32602, "TypeError"));
}

/// The room converges when a node joins late (it pulls what is there) and
/// when a node restarts with the same identity (its new entries beat the
/// tombstone the others keep of its last run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_and_a_restarted_node_converge_on_the_room() {
    use mafalda_swarm::Keypair;
    use mafalda_tests::node::{node_with, serve_api};

    let (seed, seed_api, _) = webrtc_node_with_api(None).await;
    let keypair = Keypair::generate_ed25519();
    let restarting = {
        let keypair = keypair.clone();
        Arc::new(node_with(Some(&seed), move |config| config.swarm.keypair = keypair).await)
    };
    let restarting_id = restarting.peer_id().to_string();
    let seeded = RoomApp::connect(seed_api).await;
    seeded.join("converge").await;
    let before = {
        let app = RoomApp::connect(serve_api(Arc::clone(&restarting)).await).await;
        app.join("converge").await;
        let producer = app.produce_opus("converge", 70).await;
        assert!(
            seeded
                .sees("converge", Duration::from_secs(5), |room| room["producers"][0]["id"] == producer.id.as_str())
                .await
        );
        // Late: a third node joins after the producer exists; the join's answer has it.
        let (late, late_api, _) = webrtc_node_with_api(Some(&seed)).await;
        let late_app = RoomApp::connect(late_api).await;
        let joined = late_app.join("converge").await;
        assert_eq!(joined["producers"][0]["id"], producer.id.as_str(), "the late joiner pulled the room");
        assert_eq!(joined["nodes"].as_array().map(Vec::len), Some(3));
        drop((late_app, late));
        (app, producer)
    };

    // Killed (no leave said), then back under the same identity with a new producer.
    restarting.shutdown().await;
    assert!(seeded.sees("converge", Duration::from_secs(2), |room| room["producers"] == json!([])).await);
    drop(before);
    drop(restarting);
    let back = Arc::new(node_with(Some(&seed), move |config| config.swarm.keypair = keypair).await);
    assert_eq!(back.peer_id().to_string(), restarting_id);
    let app = RoomApp::connect(serve_api(Arc::clone(&back)).await).await;
    app.join("converge").await;
    let producer = app.produce_opus("converge", 71).await;
    assert!(
        seeded
            .sees("converge", Duration::from_secs(5), |room| {
                room["producers"].as_array().is_some_and(|p| p.len() == 1 && p[0]["id"] == producer.id.as_str())
                    && room["producers"][0]["node"] == restarting_id.as_str()
            })
            .await,
        "the restarted node's producer is in the room again"
    );
}

/// A node started without `--webrtc-ports` still gives rooms WebRTC
/// transports: they listen on the node's media IP, on ports of its range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_webrtc_transports_need_no_webrtc_server() {
    use mafalda_tests::node::{node_with, serve_api};
    let node = Arc::new(node_with(None, |_| {}).await);
    let app = RoomApp::connect(serve_api(Arc::clone(&node)).await).await;
    app.join("plain-node").await;
    let transport = app.ok(Some("room:plain-node"), "createWebRtcTransport", json!({ "enableSctp": true })).await;
    let candidates = transport["iceCandidates"].as_array().expect("candidates");
    let protocols: Vec<&str> = candidates.iter().filter_map(|c| c["protocol"].as_str()).collect();
    assert!(protocols.contains(&"udp") && protocols.contains(&"tcp"), "{protocols:?}");
    assert!(candidates.iter().all(|c| c["address"] == "127.0.0.1"), "{candidates:?}");
    assert!(transport["sctpParameters"]["port"].is_u64(), "SCTP when asked for");
    assert!(transport["dtlsParameters"]["fingerprints"].as_array().is_some_and(|f| !f.is_empty()));
}

/// A node lets go of a relayed stream nobody consumes after its linger; a
/// room consumer counts as one: the copy it plays from stays as long as it
/// is open, and goes (after the linger) once it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_consumer_keeps_its_copy_of_a_remote_producer_past_the_relay_linger() {
    use mafalda_tests::node::{node_with, serve_api};
    let origin = Arc::new(node_with(None, |_| {}).await);
    let player = Arc::new(node_with(Some(&origin), |config| config.relay_linger = Duration::from_millis(500)).await);
    assert!(connected_within(player.swarm(), origin.peer_id(), Duration::from_secs(10)).await);
    let a = RoomApp::connect(serve_api(Arc::clone(&origin)).await).await;
    let b = RoomApp::connect(serve_api(Arc::clone(&player)).await).await;
    a.join("linger").await;
    b.join("linger").await;
    let producer = a.produce_opus("linger", 90).await;
    assert!(b.sees("linger", Duration::from_secs(5), |room| room["producers"][0]["id"] == producer.id.as_str()).await);
    let consumer = b.consume_plain("linger", &producer.id).await.expect("consume");
    // Four lingers of media: all of it arrives, the copy stays.
    let sender = UdpSocket::bind(("127.0.0.1", 0)).await.expect("bind");
    let packets = test_stream(90, OPUS_PT, 100);
    let (_, received) = tokio::join!(
        send_paced(&sender, producer.target, &packets, Duration::from_millis(20)),
        receive_rtp(&consumer.socket, consumer.ssrc, packets.len(), Duration::from_secs(2)),
    );
    assert_delivered(&packets, &received, consumer.payload_type, consumer.ssrc);
    assert!(b.has_object(&consumer.id), "the consumer is still open");
    assert_eq!(player.streams().len(), 1, "the copy stays while consumed");
    // Closed: the copy goes after the linger.
    b.ok(Some(&consumer.id), "close", json!(null)).await;
    assert!(eventually(Duration::from_secs(5), || async { player.streams().is_empty() }).await, "then let go");
    assert!(b.producer_ids("linger") == vec![producer.id.clone()], "the room still lists the producer");
}

/// Within a node a room is a spanning router of its own: its producers and
/// the copies piped in from other nodes live there, not in the node's
/// router; it goes once nothing of the room is left here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_is_a_spanning_router_of_its_own_at_each_node() {
    let nodes = swarm_of(2).await;
    let (a_node, b_node) = (&nodes[0].0, &nodes[1].0);
    let a = RoomApp::connect(nodes[0].1).await;
    let b = RoomApp::connect(nodes[1].1).await;
    a.join("own").await;
    b.join("own").await;
    let producer = a.produce_opus("own", 3).await;
    assert!(b.sees("own", Duration::from_secs(5), |room| room["producers"][0]["id"] == producer.id.as_str()).await);
    let consumer = b.consume_plain("own", &producer.id).await.expect("consume");
    for node in [a_node, b_node] {
        let router = node.room_router("own").expect("the room's router");
        assert_eq!(router.id(), "room:own");
        let mut producers = 0;
        for router in router.routers().await {
            producers += router.dump().await.expect("dump").map_producer_id_consumer_ids.len();
        }
        assert_eq!(producers, 1, "the producer (or its copy) is in the room's router");
    }
    assert!(a_node.room_router("other").is_none());
    drop(consumer);
    a.ok(Some("room:own"), "leave", json!(null)).await;
    b.ok(Some("room:own"), "leave", json!(null)).await;
    for node in [a_node, b_node] {
        assert!(
            eventually(Duration::from_secs(15), || async { node.room_router("own").is_none() }).await,
            "the room's router goes with the room"
        );
    }
}
