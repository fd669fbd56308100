//! WebRTC, plain, pipe and direct transports over a real ROPE connection with
//! real mediasoup workers and real sockets on 127.0.0.1: their data, dumps and
//! stats in mediasoup Node's shapes, `connect`, state and named events,
//! TypeErrors for bad options, closing with their router.

mod common;

use common::{App, class, free_port};
use serde_json::{Value, json};

/// `field` of `object` is absent (Node's objects leave it undefined).
fn absent(object: &Value, field: &str) -> bool {
    object.as_object().is_some_and(|map| !map.contains_key(field))
}

fn id_of(answer: &Value) -> String {
    answer["id"].as_str().expect("an id").to_owned()
}

/// Waits (3 s) until `object`'s dump has `field` equal to `expected`: the
/// crate sends the worker a close from a task of its own, so a dump right
/// after a close may still list the closed object for a few milliseconds.
async fn dump_until(app: &App, object: &str, field: &str, expected: &Value) {
    let start = std::time::Instant::now();
    loop {
        let dump = app.ok(Some(object), "dump", json!(null)).await;
        if dump[field] == *expected {
            return;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(3), "dump.{field} is still {}", dump[field]);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

const FINGERPRINT: &str =
    "82:5A:68:3D:36:C3:0A:DE:AF:E7:32:43:D2:88:83:57:AC:2D:65:E5:80:C4:B6:FB:AF:1A:A0:21:9F:6D:0C:AD";

#[tokio::test]
async fn webrtc_transport_data_dump_and_stats_have_node_shapes() {
    let app = App::start().await;
    let (_worker, router) = app.router_id().await;
    let options = json!({
        "listenInfos": [
            { "protocol": "udp", "ip": "127.0.0.1", "announcedAddress": "9.9.9.1" },
            { "protocol": "tcp", "ip": "127.0.0.1", "announcedAddress": "9.9.9.1" },
            { "protocol": "udp", "ip": "127.0.0.1", "announcedAddress": "foo1.bar.org" },
            { "protocol": "tcp", "ip": "127.0.0.1" },
        ],
        "enableTcp": true,
        "preferUdp": true,
        "enableSctp": true,
        "numSctpStreams": { "OS": 2048, "MIS": 2048 },
        "maxSctpMessageSize": 1_000_000,
        "appData": { "foo": "bar" },
    });
    let transport = app.ok(Some(&router), "createWebRtcTransport", options).await;
    let id = id_of(&transport);
    assert_eq!(app.ok(Some(&router), "dump", json!(null)).await["transportIds"], json!([id]));
    assert_eq!(transport["iceRole"], "controlled");
    assert_eq!(transport["iceParameters"]["iceLite"], true);
    assert!(transport["iceParameters"]["usernameFragment"].is_string());
    assert!(transport["iceParameters"]["password"].is_string());
    assert_eq!(
        transport["sctpParameters"],
        json!({ "port": 5000, "OS": 2048, "MIS": 2048, "maxMessageSize": 1_000_000 })
    );
    let candidates = transport["iceCandidates"].as_array().expect("iceCandidates");
    let expected = [("9.9.9.1", "udp"), ("9.9.9.1", "tcp"), ("foo1.bar.org", "udp"), ("127.0.0.1", "tcp")];
    assert_eq!(candidates.len(), expected.len(), "{candidates:?}");
    for (candidate, (ip, protocol)) in candidates.iter().zip(expected) {
        assert_eq!(candidate["ip"], ip, "{candidate}");
        assert_eq!(candidate["address"], ip, "{candidate}");
        assert_eq!(candidate["protocol"], protocol, "{candidate}");
        assert_eq!(candidate["type"], "host", "{candidate}");
        assert!(candidate["port"].is_u64() && candidate["foundation"].is_string(), "{candidate}");
        if protocol == "tcp" {
            assert_eq!(candidate["tcpType"], "passive", "{candidate}");
        } else {
            assert!(absent(candidate, "tcpType"), "{candidate}");
        }
    }
    let priorities: Vec<u64> = candidates.iter().filter_map(|candidate| candidate["priority"].as_u64()).collect();
    assert!(priorities.windows(2).all(|pair| pair[0] > pair[1]), "priorities fall: {priorities:?}");
    assert_eq!(transport["iceState"], "new");
    assert!(absent(&transport, "iceSelectedTuple"));
    assert_eq!(transport["dtlsParameters"]["role"], "auto");
    assert!(transport["dtlsParameters"]["fingerprints"].as_array().is_some_and(|prints| !prints.is_empty()));
    assert_eq!(transport["dtlsState"], "new");
    assert!(absent(&transport, "dtlsRemoteCert"));
    assert_eq!(transport["sctpState"], "new");
    assert_eq!(app.state(&id), json!({ "iceState": "new", "dtlsState": "new", "sctpState": "new" }));

    let dump = app.ok(Some(&id), "dump", json!(null)).await;
    assert_eq!(dump["id"], json!(id));
    assert_eq!(dump["direct"], false);
    assert_eq!(dump["producerIds"], json!([]));
    assert_eq!(dump["consumerIds"], json!([]));
    for field in ["iceRole", "iceParameters", "iceCandidates", "iceState", "dtlsParameters", "dtlsState"] {
        assert_eq!(dump[field], transport[field], "dump.{field}");
    }
    assert_eq!(dump["sctpParameters"], transport["sctpParameters"]);
    assert_eq!(dump["sctpState"], "new");
    assert!(absent(&dump, "iceSelectedTuple"));
    assert!(dump["recvRtpHeaderExtensions"].is_object());
    assert!(dump["rtpListener"]["ssrcTable"].is_array() && dump["rtpListener"]["midTable"].is_array());
    assert!(dump["mapSsrcConsumerId"].is_array());
    assert_eq!(dump["traceEventTypes"], json!([]));

    let plain = json!({ "listenInfos": [{ "protocol": "udp", "ip": "127.0.0.1", "announcedAddress": "9.9.9.1" }] });
    let other = id_of(&app.ok(Some(&router), "createWebRtcTransport", plain).await);
    let stats = app.ok(Some(&other), "getStats", json!(null)).await;
    let stats = stats.as_array().expect("stats array");
    assert_eq!(stats.len(), 1);
    let stat = &stats[0];
    assert_eq!(stat["type"], "webrtc-transport");
    assert_eq!(stat["transportId"], json!(other));
    assert!(stat["timestamp"].is_u64());
    assert_eq!(
        (&stat["iceRole"], &stat["iceState"], &stat["dtlsState"]),
        (&json!("controlled"), &json!("new"), &json!("new"))
    );
    for zero in ["bytesReceived", "recvBitrate", "bytesSent", "sendBitrate", "rtpBytesReceived", "rtxBytesSent"] {
        assert_eq!(stat[zero], 0, "{zero}");
    }
    for undefined in ["sctpState", "iceSelectedTuple", "maxIncomingBitrate"] {
        assert!(absent(stat, undefined), "stats[0].{undefined} is undefined in Node: {stat}");
    }
    assert!(absent(
        &app.ok(Some(&router), "createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"] })).await,
        "sctpState"
    ));
}

#[tokio::test]
async fn webrtc_transport_listen_ips_and_webrtc_server() {
    let mut app = App::start().await;
    let (worker, router) = app.router_id().await;
    let options = json!({
        "listenIps": [{ "ip": "127.0.0.1" }],
        "enableUdp": true,
        "enableTcp": true,
        "preferUdp": false,
        "initialAvailableOutgoingBitrate": 1_000_000,
    });
    let transport = app.ok(Some(&router), "createWebRtcTransport", options).await;
    let first = id_of(&transport);
    let candidates = transport["iceCandidates"].as_array().expect("iceCandidates");
    assert_eq!(candidates.len(), 2);
    assert_eq!((&candidates[0]["ip"], &candidates[0]["protocol"]), (&json!("127.0.0.1"), &json!("udp")));
    assert_eq!((&candidates[1]["ip"], &candidates[1]["protocol"]), (&json!("127.0.0.1"), &json!("tcp")));

    let (udp, tcp) = (free_port(true), free_port(false));
    let server_options = json!({ "listenInfos": [
        { "protocol": "udp", "ip": "127.0.0.1", "port": udp },
        { "protocol": "tcp", "ip": "127.0.0.1", "port": tcp },
    ] });
    let server = id_of(&app.ok(Some(&worker), "createWebRtcServer", server_options).await);
    let options = json!({ "webRtcServer": server, "enableUdp": false, "appData": { "foo": "bar" } });
    let transport = app.ok(Some(&router), "createWebRtcTransport", options).await;
    let id = id_of(&transport);
    assert_eq!(transport["iceCandidates"].as_array().map(Vec::len), Some(1));
    let candidate = &transport["iceCandidates"][0];
    assert_eq!((&candidate["ip"], &candidate["port"]), (&json!("127.0.0.1"), &json!(tcp)));
    assert_eq!((&candidate["protocol"], &candidate["tcpType"]), (&json!("tcp"), &json!("passive")));
    let server_dump = app.ok(Some(&server), "dump", json!(null)).await;
    assert_eq!(server_dump["webRtcTransportIds"], json!([id]));
    let restarted = app.ok(Some(&id), "restartIce", json!(null)).await;
    assert!(restarted["iceParameters"]["usernameFragment"].is_string());
    let server_dump = app.ok(Some(&server), "dump", json!(null)).await;
    assert_eq!(server_dump["localIceUsernameFragments"].as_array().map(Vec::len), Some(2), "{server_dump}");

    // Closing the server closes the transports listening on it, in mediasoup too.
    app.ok(Some(&server), "close", json!(null)).await;
    app.closed_all(&[&id, &server]).await;
    dump_until(&app, &worker, "webRtcServerIds", &json!([])).await;
    assert_eq!(app.ok(Some(&worker), "dump", json!(null)).await["routerIds"], json!([router]));
    dump_until(&app, &router, "transportIds", &json!([first])).await;
}

#[tokio::test]
async fn wrong_transport_options_are_type_errors_and_create_nothing() {
    let app = App::start().await;
    let (worker, router) = app.router_id().await;
    let server = id_of(
        &app.ok(
            Some(&worker),
            "createWebRtcServer",
            json!({ "listenInfos": [{ "protocol": "udp", "ip": "127.0.0.1", "port": free_port(true) }] }),
        )
        .await,
    );
    let objects = app.session.len();
    let udp = json!({ "protocol": "udp", "ip": "127.0.0.1" });
    let cases = [
        ("createWebRtcTransport", json!({})),
        ("createWebRtcTransport", json!({ "listenInfos": [] })),
        (
            "createWebRtcTransport",
            json!({ "listenInfos": [{ "protocol": "udp", "ip": "127.0.0.1", "portRange": { "min": 4000, "max": 3000 } }] }),
        ),
        ("createWebRtcTransport", json!({ "listenIps": [123] })),
        ("createWebRtcTransport", json!({ "listenInfos": "127.0.0.1" })),
        ("createWebRtcTransport", json!({ "listenIps": "127.0.0.1" })),
        ("createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"], "appData": "NOT-AN-OBJECT" })),
        ("createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"], "enableSctp": true, "numSctpStreams": "foo" })),
        ("createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"], "enableUdp": false })),
        ("createWebRtcTransport", json!({ "webRtcServer": server, "listenInfos": [udp] })),
        ("createWebRtcTransport", json!({ "webRtcServer": router })),
        ("createWebRtcTransport", json!({ "webRtcServer": "not-an-object" })),
        ("createWebRtcTransport", json!({ "listenInfos": [{ "protocol": "sctp", "ip": "127.0.0.1" }] })),
        ("createWebRtcTransport", json!({ "listenInfos": [udp], "iceConsentTimeout": 1000 })),
        ("createPlainTransport", json!({})),
        (
            "createPlainTransport",
            json!({ "listenInfo": { "protocol": "udp", "ip": "127.0.0.1", "portRange": { "min": 4000, "max": 3000 } } }),
        ),
        ("createPlainTransport", json!({ "listenIp": "123" })),
        ("createPlainTransport", json!({ "listenIp": ["127.0.0.1"] })),
        ("createPlainTransport", json!({ "listenInfo": { "protocol": "tcp", "ip": "127.0.0.1" } })),
        ("createPlainTransport", json!({ "listenInfo": udp, "appData": "NOT-AN-OBJECT" })),
        ("createPlainTransport", json!({ "listenInfo": udp, "listenIp": "127.0.0.1" })),
        ("createPlainTransport", json!({ "listenInfo": udp, "srtpCryptoSuite": "FOO" })),
        ("createPipeTransport", json!({})),
        ("createPipeTransport", json!({ "listenIp": "123" })),
        ("createPipeTransport", json!({ "listenIp": ["127.0.0.1"] })),
        ("createPipeTransport", json!({ "listenInfo": { "protocol": "tcp", "ip": "127.0.0.1" } })),
        ("createPipeTransport", json!({ "listenInfo": udp, "appData": "NOT-AN-OBJECT" })),
        ("createDirectTransport", json!({ "maxMessageSize": "foo" })),
        ("createDirectTransport", json!({ "maxMessageSize": -2000 })),
        ("createDirectTransport", json!({ "appData": 1 })),
    ];
    for (method, options) in cases {
        let error = app.refusal(Some(&router), method, options.clone()).await;
        assert_eq!(class(&error), "TypeError", "{method} {options}: {error:?}");
        assert_eq!(error.code, -32602, "{method} {options}");
    }
    assert_eq!(app.session.len(), objects);
    assert_eq!(app.ok(Some(&router), "dump", json!(null)).await["transportIds"], json!([]));

    // What the worker refuses is an Error: a port range with one port, taken.
    let port = free_port(true);
    let single =
        json!({ "listenInfos": [{ "protocol": "udp", "ip": "127.0.0.1", "portRange": { "min": port, "max": port } }] });
    app.ok(Some(&router), "createWebRtcTransport", single.clone()).await;
    let error = app.refusal(Some(&router), "createWebRtcTransport", single).await;
    assert_eq!(class(&error), "Error", "{error:?}");
    assert_eq!(app.session.len(), objects + 1);
}

#[tokio::test]
async fn webrtc_connect_bitrates_and_trace_events() {
    let app = App::start().await;
    let (_worker, router) = app.router_id().await;
    let options = json!({ "listenInfos": [{ "protocol": "udp", "ip": "127.0.0.1" }] });
    let id = id_of(&app.ok(Some(&router), "createWebRtcTransport", options).await);
    let print = |algorithm: &str, value: &str| json!({ "algorithm": algorithm, "value": value });
    let non_ascii = "é".repeat(47) + "A";
    for wrong in [
        json!({}),
        json!({ "dtlsParameters": { "fingerprints": [print("sha-256000", FINGERPRINT)], "role": "client" } }),
        json!({ "dtlsParameters": { "fingerprints": [print("sha-256", FINGERPRINT)], "role": "chicken" } }),
        json!({ "dtlsParameters": { "fingerprints": [], "role": "client" } }),
        json!({ "dtlsParameters": { "fingerprints": [print("sha-256", "82:5A")], "role": "client" } }),
        // As long in bytes as a SHA-256 value, but not ASCII: refused, no panic.
        json!({ "dtlsParameters": { "fingerprints": [print("sha-256", &non_ascii)], "role": "client" } }),
    ] {
        let error = app.refusal(Some(&id), "connect", wrong.clone()).await;
        assert_eq!(class(&error), "TypeError", "{wrong}: {error:?}");
    }
    let dtls = json!({ "dtlsParameters": { "fingerprints": [print("sha-256", FINGERPRINT)], "role": "client" } });
    assert_eq!(app.ok(Some(&id), "connect", dtls.clone()).await, Value::Null);
    let again = app.refusal(Some(&id), "connect", dtls).await;
    assert_eq!(class(&again), "Error", "connect() already called: {again:?}");

    assert_eq!(app.ok(Some(&id), "setMaxIncomingBitrate", json!({ "bitrate": 1_000_000 })).await, Value::Null);
    assert_eq!(app.ok(Some(&id), "setMaxIncomingBitrate", json!({ "bitrate": 0 })).await, Value::Null);
    assert_eq!(app.ok(Some(&id), "setMinOutgoingBitrate", json!({ "bitrate": 3_000_000 })).await, Value::Null);
    // mediasoup Node's limits: a max under the min, or a min over the max, is refused.
    app.refusal(Some(&id), "setMaxOutgoingBitrate", json!({ "bitrate": 2_000_000 })).await;
    assert_eq!(app.ok(Some(&id), "setMinOutgoingBitrate", json!({ "bitrate": 0 })).await, Value::Null);
    assert_eq!(app.ok(Some(&id), "setMaxOutgoingBitrate", json!({ "bitrate": 2_000_000 })).await, Value::Null);
    app.refusal(Some(&id), "setMinOutgoingBitrate", json!({ "bitrate": 3_000_000 })).await;
    assert_eq!(app.ok(Some(&id), "setMaxOutgoingBitrate", json!({ "bitrate": 0 })).await, Value::Null);
    assert_eq!(app.ok(Some(&id), "setMinOutgoingBitrate", json!({ "bitrate": 3_000_000 })).await, Value::Null);
    let error = app.refusal(Some(&id), "setMaxIncomingBitrate", json!({ "bitrate": -1 })).await;
    assert_eq!(class(&error), "TypeError");

    for (types, expected) in [
        (json!({ "types": ["foo", "probation"] }), json!(["probation"])),
        (json!({ "types": [] }), json!([])),
        (json!({ "types": ["probation", "FOO", "bwe", "BAR"] }), json!(["probation", "bwe"])),
        (json!({}), json!([])),
    ] {
        assert_eq!(app.ok(Some(&id), "enableTraceEvent", types.clone()).await, Value::Null);
        assert_eq!(app.ok(Some(&id), "dump", json!(null)).await["traceEventTypes"], expected, "{types}");
    }
    for wrong in [json!({ "types": 123 }), json!({ "types": "probation" }), json!({ "types": ["probation", 123.123] })]
    {
        let error = app.refusal(Some(&id), "enableTraceEvent", wrong.clone()).await;
        assert_eq!(class(&error), "TypeError", "{wrong}");
    }
    let error = app.refusal(Some(&id), "chicken", json!(null)).await;
    assert_eq!(error.code, -32601);
}

#[tokio::test]
async fn plain_transport_with_comedia_learns_its_tuple_from_a_real_packet() {
    let mut app = App::start().await;
    let (_worker, router) = app.router_id().await;
    let options = json!({ "listenInfo": { "protocol": "udp", "ip": "127.0.0.1" }, "comedia": true });
    let transport = app.ok(Some(&router), "createPlainTransport", options).await;
    let id = id_of(&transport);
    assert_eq!((&transport["rtcpMux"], &transport["comedia"]), (&json!(true), &json!(true)));
    let tuple = &transport["tuple"];
    assert_eq!((&tuple["localAddress"], &tuple["localIp"]), (&json!("127.0.0.1"), &json!("127.0.0.1")));
    assert_eq!(tuple["protocol"], "udp");
    assert!(absent(tuple, "remoteIp") && absent(tuple, "remotePort"), "{tuple}");
    for undefined in ["rtcpTuple", "sctpParameters", "sctpState", "srtpParameters"] {
        assert!(absent(&transport, undefined), "{undefined}: {transport}");
    }
    assert_eq!(app.state(&id), json!({ "tuple": tuple }));
    let port = tuple["localPort"].as_u64().and_then(|port| u16::try_from(port).ok()).expect("localPort");

    // A real RTP packet (version 2, payload type 100, SSRC 1234) from a socket of ours.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let from = socket.local_addr().expect("addr").port();
    let mut packet = vec![0x80, 100, 0, 1, 0, 0, 0, 1, 0, 0, 0x04, 0xd2];
    packet.extend_from_slice(&[0; 20]);
    socket.send_to(&packet, ("127.0.0.1", port)).expect("send");
    let args = app.event_args(&id, "tuple").await;
    let learnt = &args[0];
    assert_eq!((&learnt["remoteIp"], &learnt["remotePort"]), (&json!("127.0.0.1"), &json!(from)), "{args}");
    assert_eq!((&learnt["localPort"], &learnt["localIp"]), (&json!(port), &json!("127.0.0.1")));
    assert_eq!(app.state(&id)["tuple"], *learnt, "the mirror has the tuple before the event");
    let stats = app.ok(Some(&id), "getStats", json!(null)).await;
    assert_eq!(stats[0]["type"], "plain-rtp-transport");
    assert_eq!(stats[0]["tuple"], *learnt);
    assert!(stats[0]["bytesReceived"].as_u64().is_some_and(|bytes| bytes >= 32), "{stats}");
}

#[tokio::test]
async fn plain_transport_connect_srtp_dump_and_stats() {
    let mut app = App::start().await;
    let (_worker, router) = app.router_id().await;
    let rtp = free_port(true);
    let rtcp = free_port(true);
    let options = json!({
        "listenInfo": { "protocol": "udp", "ip": "127.0.0.1", "port": rtp },
        "rtcpListenInfo": { "protocol": "udp", "ip": "127.0.0.1", "port": rtcp },
        "rtcpMux": false,
        "enableSctp": true,
    });
    let transport = app.ok(Some(&router), "createPlainTransport", options).await;
    let id = id_of(&transport);
    assert_eq!(transport["tuple"]["localPort"], json!(rtp));
    assert_eq!(transport["rtcpTuple"]["localPort"], json!(rtcp));
    assert_eq!(transport["rtcpTuple"]["localIp"], "127.0.0.1");
    assert_eq!(
        transport["sctpParameters"],
        json!({ "port": 5000, "OS": 1024, "MIS": 1024, "maxMessageSize": 262_144 })
    );
    assert_eq!(transport["sctpState"], "new");
    let dump = app.ok(Some(&id), "dump", json!(null)).await;
    for field in ["tuple", "rtcpTuple", "sctpParameters", "sctpState"] {
        assert_eq!(dump[field], transport[field], "dump.{field}");
    }
    assert_eq!((&dump["rtcpMux"], &dump["comedia"], &dump["direct"]), (&json!(false), &json!(false), &json!(false)));

    for wrong in [
        json!({}),
        json!({ "ip": "::::1234" }),
        json!({ "ip": "127.0.0.1", "port": 1234 }),
        json!({ "ip": "127.0.0.1", "port": 1234, "__rtcpPort": 1235 }),
        json!({ "ip": "127.0.0.1", "port": "chicken", "rtcpPort": 1235 }),
        json!({ "ip": "127.0.0.1", "port": 9998, "rtcpPort": 9999,
                "srtpParameters": { "cryptoSuite": "AES_CM_128_HMAC_SHA1_80", "keyBase64": "ZnQ3eWJraDg0d3ZoYzM5cXN1Y2pnaHU5NWxrZTVv" } }),
    ] {
        let error = app.refusal(Some(&id), "connect", wrong.clone()).await;
        assert_eq!(class(&error), "TypeError", "{wrong}: {error:?}");
    }
    let (remote, remote_rtcp) = (free_port(true), free_port(true));
    let connect = json!({ "ip": "127.0.0.1", "port": remote, "rtcpPort": remote_rtcp });
    assert_eq!(app.ok(Some(&id), "connect", connect.clone()).await, Value::Null);
    let changed = app.event(&id, "changed").await;
    let state: Value = changed.data.deserialized().expect("state");
    assert_eq!((&state["tuple"]["remoteIp"], &state["tuple"]["remotePort"]), (&json!("127.0.0.1"), &json!(remote)));
    assert_eq!(state["rtcpTuple"]["remotePort"], json!(remote_rtcp));
    assert_eq!(state["sctpState"], "new");
    assert_eq!(class(&app.refusal(Some(&id), "connect", connect).await), "Error", "connect() already called");
    let error = app.refusal(Some(&id), "setMaxOutgoingBitrate", json!({ "bitrate": 100_000 })).await;
    assert_eq!(class(&error), "UnsupportedError");
    assert_eq!(app.ok(Some(&id), "setMaxIncomingBitrate", json!({ "bitrate": 100_000 })).await, Value::Null);

    let announced = json!({ "listenInfo": { "protocol": "udp", "ip": "127.0.0.1", "announcedAddress": "9.9.9.1" } });
    let announced = app.ok(Some(&router), "createPlainTransport", announced).await;
    assert_eq!(
        (&announced["tuple"]["localIp"], &announced["tuple"]["localAddress"]),
        (&json!("9.9.9.1"), &json!("9.9.9.1"))
    );

    // SRTP: the default suite, then the remote's.
    let srtp =
        app.ok(Some(&router), "createPlainTransport", json!({ "listenIp": "127.0.0.1", "enableSrtp": true })).await;
    let srtp_id = id_of(&srtp);
    assert_eq!(srtp["srtpParameters"]["cryptoSuite"], "AES_CM_128_HMAC_SHA1_80");
    assert_eq!(srtp["srtpParameters"]["keyBase64"].as_str().map(str::len), Some(40));
    let key = "ZnQ3eWJraDg0d3ZoYzM5cXN1Y2pnaHU5NWxrZTVv";
    let port = free_port(true);
    for wrong in [
        json!({ "ip": "127.0.0.1", "port": port }),
        json!({ "ip": "127.0.0.1", "port": port, "srtpParameters": 1 }),
        json!({ "ip": "127.0.0.1", "port": port, "srtpParameters": { "keyBase64": key } }),
        json!({ "ip": "127.0.0.1", "port": port, "srtpParameters": { "cryptoSuite": "AES_CM_128_HMAC_SHA1_80" } }),
        json!({ "ip": "127.0.0.1", "port": port, "srtpParameters": { "cryptoSuite": "FOO", "keyBase64": key } }),
        json!({ "ip": "127.0.0.1", "port": port, "srtpParameters": { "cryptoSuite": 123, "keyBase64": key } }),
        json!({ "ip": "127.0.0.1", "port": port, "srtpParameters": { "cryptoSuite": "AES_CM_128_HMAC_SHA1_80", "keyBase64": [] } }),
    ] {
        let error = app.refusal(Some(&srtp_id), "connect", wrong.clone()).await;
        assert_eq!(class(&error), "TypeError", "{wrong}: {error:?}");
    }
    let gcm = json!({ "cryptoSuite": "AEAD_AES_256_GCM", "keyBase64": "YTdjcDBvY2JoMGY5YXNlNDc0eDJsdGgwaWRvNnJsamRrdG16aWVpZHphdHo=" });
    let connect = json!({ "ip": "127.0.0.1", "port": port, "srtpParameters": gcm });
    assert_eq!(app.ok(Some(&srtp_id), "connect", connect).await, Value::Null);
    let dump = app.ok(Some(&srtp_id), "dump", json!(null)).await;
    assert_eq!(dump["srtpParameters"]["cryptoSuite"], "AEAD_AES_256_GCM");
    assert_eq!(dump["srtpParameters"]["keyBase64"].as_str().map(str::len), Some(60));

    let stats = app.ok(Some(&srtp_id), "getStats", json!(null)).await;
    let stat = &stats[0];
    assert_eq!(stat["type"], "plain-rtp-transport");
    assert_eq!(stat["transportId"], json!(srtp_id));
    assert_eq!((&stat["tuple"]["localIp"], &stat["tuple"]["protocol"]), (&json!("127.0.0.1"), &json!("udp")));
    assert!(absent(stat, "rtcpTuple") && absent(stat, "sctpState"), "{stat}");
    for zero in ["bytesReceived", "recvBitrate", "rtpBytesSent", "probationBytesSent"] {
        assert_eq!(stat[zero], 0, "{zero}");
    }
}

#[tokio::test]
async fn pipe_transports_connect_to_each_other() {
    let mut app = App::start().await;
    let (_worker, router) = app.router_id().await;
    let options = json!({ "listenInfo": { "protocol": "udp", "ip": "127.0.0.1" }, "enableRtx": true });
    let one = app.ok(Some(&router), "createPipeTransport", options).await;
    let one_id = id_of(&one);
    assert_eq!(one["rtx"], true);
    assert_eq!((&one["tuple"]["localIp"], &one["tuple"]["protocol"]), (&json!("127.0.0.1"), &json!("udp")));
    for undefined in ["srtpParameters", "sctpParameters", "sctpState"] {
        assert!(absent(&one, undefined), "{undefined}: {one}");
    }
    let gcm = json!({ "cryptoSuite": "AEAD_AES_256_GCM", "keyBase64": "YTdjcDBvY2JoMGY5YXNlNDc0eDJsdGgwaWRvNnJsamRrdG16aWVpZHphdHo=" });
    for wrong in [
        json!({ "ip": "127.0.0.1", "port": 9999, "srtpParameters": gcm }),
        json!({ "ip": "127.0.0.1", "port": 9999, "srtpParameters": "invalid" }),
        json!({ "port": 9999 }),
        json!({ "ip": "127.0.0.1" }),
    ] {
        let error = app.refusal(Some(&one_id), "connect", wrong.clone()).await;
        assert_eq!(class(&error), "TypeError", "{wrong}: {error:?}");
    }
    let two =
        app.ok(Some(&router), "createPipeTransport", json!({ "listenIp": "127.0.0.1", "enableSctp": true })).await;
    let two_id = id_of(&two);
    assert_eq!(two["rtx"], false);
    assert_eq!(two["sctpState"], "new");
    let connect = |tuple: &Value| json!({ "ip": "127.0.0.1", "port": tuple["localPort"] });
    assert_eq!(app.ok(Some(&one_id), "connect", connect(&two["tuple"])).await, Value::Null);
    let state: Value = app.event(&one_id, "changed").await.data.deserialized().expect("state");
    assert_eq!(state["tuple"]["remotePort"], two["tuple"]["localPort"]);
    assert_eq!(app.ok(Some(&two_id), "connect", connect(&one["tuple"])).await, Value::Null);
    let dump = app.ok(Some(&one_id), "dump", json!(null)).await;
    assert_eq!(dump["rtx"], true);
    assert_eq!(dump["tuple"], state["tuple"]);
    let stats = app.ok(Some(&two_id), "getStats", json!(null)).await;
    assert_eq!(stats[0]["type"], "pipe-transport");
    assert_eq!(stats[0]["tuple"]["remotePort"], one["tuple"]["localPort"]);

    let srtp =
        app.ok(Some(&router), "createPipeTransport", json!({ "listenIp": "127.0.0.1", "enableSrtp": true })).await;
    assert_eq!(srtp["srtpParameters"]["keyBase64"].as_str().map(str::len), Some(60));
    let srtp_id = id_of(&srtp);
    let error = app.refusal(Some(&srtp_id), "connect", json!({ "ip": "127.0.0.1", "port": 9999 })).await;
    assert_eq!(class(&error), "TypeError");
    let connect = json!({ "ip": "127.0.0.1", "port": free_port(true), "srtpParameters": gcm });
    assert_eq!(app.ok(Some(&srtp_id), "connect", connect).await, Value::Null);
}

#[tokio::test]
async fn direct_transport_dump_stats_and_rtcp() {
    let app = App::start().await;
    let (_worker, router) = app.router_id().await;
    let transport =
        app.ok(Some(&router), "createDirectTransport", json!({ "maxMessageSize": 1024, "appData": {} })).await;
    let id = id_of(&transport);
    assert_eq!(transport, json!({ "id": id }));
    assert_eq!(app.state(&id), json!({}));
    let dump = app.ok(Some(&id), "dump", json!(null)).await;
    assert_eq!(dump["direct"], true);
    for empty in ["producerIds", "consumerIds", "dataProducerIds", "dataConsumerIds"] {
        assert_eq!(dump[empty], json!([]), "{empty}");
    }
    assert!(dump["recvRtpHeaderExtensions"].is_object() && dump["rtpListener"].is_object());
    let stats = app.ok(Some(&id), "getStats", json!(null)).await;
    assert_eq!((&stats[0]["type"], &stats[0]["transportId"]), (&json!("direct-transport"), &json!(id)));
    assert_eq!(stats[0]["rtpBytesReceived"], 0);
    assert_eq!(app.ok(Some(&id), "connect", json!(null)).await, Value::Null);
    // An RTCP receiver report with no blocks.
    let report = base64_of(&[0x80, 201, 0, 1, 0, 0, 0, 1]);
    assert_eq!(app.ok(Some(&id), "sendRtcp", json!({ "packet": report })).await, Value::Null);
    assert_eq!(class(&app.refusal(Some(&id), "sendRtcp", json!({ "packet": "not base64!" })).await), "TypeError");
    assert_eq!(class(&app.refusal(Some(&id), "sendRtcp", json!({})).await), "TypeError");
    let error = app.refusal(Some(&id), "setMaxIncomingBitrate", json!({ "bitrate": 1000 })).await;
    assert_eq!(class(&error), "UnsupportedError");
    assert_eq!(
        app.ok(Some(&router), "createDirectTransport", json!(null)).await.as_object().map(|map| map.len()),
        Some(1)
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn closing_the_router_closes_its_transports() {
    let mut app = App::start().await;
    let (worker, router) = app.router_id().await;
    let udp = json!({ "protocol": "udp", "ip": "127.0.0.1" });
    let transports = [
        id_of(
            &app.ok(Some(&router), "createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"], "enableSctp": true }))
                .await,
        ),
        id_of(&app.ok(Some(&router), "createPlainTransport", json!({ "listenInfo": udp })).await),
        id_of(&app.ok(Some(&router), "createPipeTransport", json!({ "listenInfo": udp })).await),
        id_of(&app.ok(Some(&router), "createDirectTransport", json!({})).await),
    ];
    assert_eq!(app.session.len(), 6);
    app.ok(Some(&router), "close", json!(null)).await;
    let mut closed: Vec<&str> = transports.iter().map(String::as_str).collect();
    closed.push(&router);
    app.closed_all(&closed).await;
    assert_eq!(app.session.len(), 1, "just the worker");
    for transport in &transports {
        let error = common::rpc(app.call(Some(transport), "dump", json!(null)).await.expect_err("closed"));
        assert_eq!(error.code, -32001);
    }
    dump_until(&app, &worker, "routerIds", &json!([])).await;

    // Closing a transport itself: `closed`, and gone from the router.
    let router = app.ok(Some(&worker), "createRouter", json!({})).await;
    let router = id_of(&router);
    let transport = id_of(&app.ok(Some(&router), "createPlainTransport", json!({ "listenIp": "127.0.0.1" })).await);
    app.ok(Some(&transport), "close", json!(null)).await;
    app.event(&transport, "closed").await;
    dump_until(&app, &router, "transportIds", &json!([])).await;
}

#[tokio::test]
async fn another_connections_transport_is_not_found() {
    let app = App::start().await;
    let (worker, router) = app.router_id().await;
    let transport = id_of(&app.ok(Some(&router), "createDirectTransport", json!({})).await);
    let server = json!({ "listenInfos": [{ "protocol": "udp", "ip": "127.0.0.1", "port": free_port(true) }] });
    let server = id_of(&app.ok(Some(&worker), "createWebRtcServer", server).await);

    let other = App::start().await;
    let error = common::rpc(other.call(Some(&transport), "dump", json!(null)).await.expect_err("not found"));
    assert_eq!(error.code, -32001);
    let error = common::rpc(other.call(Some(&transport), "close", json!(null)).await.expect_err("not found"));
    assert_eq!(error.code, -32001);
    // Nor may another connection's router use this one's WebRTC server.
    let (_, other_router) = other.router_id().await;
    let error = other.refusal(Some(&other_router), "createWebRtcTransport", json!({ "webRtcServer": server })).await;
    assert_eq!(class(&error), "TypeError");
    assert_eq!(app.ok(Some(&transport), "dump", json!(null)).await["direct"], true);
}

/// A STUN Binding request as a controlling ICE agent sends it to mediasoup:
/// USERNAME `server:client`, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE,
/// MESSAGE-INTEGRITY (HMAC-SHA1 keyed with the server's password), FINGERPRINT.
fn stun_binding_request(server_ufrag: &str, password: &str) -> Vec<u8> {
    use hmac::{KeyInit, Mac};

    fn attribute(message: &mut Vec<u8>, kind: u16, value: &[u8]) {
        message.extend_from_slice(&kind.to_be_bytes());
        message.extend_from_slice(&u16::try_from(value.len()).expect("short").to_be_bytes());
        message.extend_from_slice(value);
        message.resize(message.len().div_ceil(4) * 4, 0);
    }
    fn set_length(message: &mut [u8], extra: usize) {
        let length = u16::try_from(message.len() - 20 + extra).expect("short");
        message[2..4].copy_from_slice(&length.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFF_u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    let mut message = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42];
    message.extend_from_slice(b"mafaldaswarm");
    attribute(&mut message, 0x0006, format!("{server_ufrag}:client").as_bytes());
    attribute(&mut message, 0x0024, &0x6E00_01FF_u32.to_be_bytes());
    attribute(&mut message, 0x802A, &0x0102_0304_0506_0708_u64.to_be_bytes());
    attribute(&mut message, 0x0025, &[]);
    set_length(&mut message, 24);
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(password.as_bytes()).expect("any key length");
    mac.update(&message);
    attribute(&mut message, 0x0008, &mac.finalize().into_bytes());
    set_length(&mut message, 8);
    let fingerprint = crc32(&message) ^ 0x5354_554E;
    attribute(&mut message, 0x8028, &fingerprint.to_be_bytes());
    message
}

#[tokio::test]
async fn webrtc_transport_ice_and_dtls_states_follow_a_real_peer() {
    let mut app = App::start().await;
    let (_worker, router) = app.router_id().await;
    let options = json!({ "listenInfos": [{ "protocol": "udp", "ip": "127.0.0.1" }] });
    let transport = app.ok(Some(&router), "createWebRtcTransport", options).await;
    let id = id_of(&transport);
    // The peer is the DTLS server: once ICE completes, mediasoup starts DTLS as client.
    let dtls = json!({ "dtlsParameters": { "fingerprints": [{ "algorithm": "sha-256", "value": FINGERPRINT }], "role": "server" } });
    app.ok(Some(&id), "connect", dtls).await;
    let parameters = &transport["iceParameters"];
    let (ufrag, password) = (parameters["usernameFragment"].as_str(), parameters["password"].as_str());
    let request = stun_binding_request(ufrag.expect("ufrag"), password.expect("password"));
    let port = transport["iceCandidates"][0]["port"].as_u64().and_then(|port| u16::try_from(port).ok()).expect("port");

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let from = socket.local_addr().expect("addr").port();
    socket.send_to(&request, ("127.0.0.1", port)).expect("send");
    socket.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
    let mut response = [0u8; 1500];
    let (length, _) = socket.recv_from(&mut response).expect("a STUN response");
    assert_eq!(&response[..2], &[0x01, 0x01], "a Binding success response ({length} bytes)");

    let events = app.events_args(&id, &["icestatechange", "iceselectedtuplechange", "dtlsstatechange"]).await;
    assert_eq!(events["icestatechange"], json!(["completed"]));
    assert_eq!(events["dtlsstatechange"], json!(["connecting"]));
    let tuple = &events["iceselectedtuplechange"][0];
    assert_eq!((&tuple["remoteIp"], &tuple["remotePort"]), (&json!("127.0.0.1"), &json!(from)), "{tuple}");
    let local = (&tuple["localIp"], &tuple["localPort"], &tuple["protocol"]);
    assert_eq!(local, (&json!("127.0.0.1"), &json!(port), &json!("udp")));
    let state = app.state(&id);
    assert_eq!((&state["iceState"], &state["iceSelectedTuple"]), (&json!("completed"), tuple), "{state}");
    assert_eq!(state["dtlsState"], "connecting");
    let stats = app.ok(Some(&id), "getStats", json!(null)).await;
    assert_eq!(stats[0]["iceSelectedTuple"], *tuple);
    assert_eq!(stats[0]["iceState"], "completed");
}
