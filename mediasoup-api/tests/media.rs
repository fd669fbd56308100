//! Producers, consumers and RTP observers over a real ROPE connection with
//! real mediasoup workers, with the options mediasoup's own Node test suite
//! uses and the shapes and error classes it expects.

mod common;

use std::time::Duration;

use common::{App, data, id};
use serde_json::{Value, json};
use tokio::net::UdpSocket;

/// test-Consumer.js's router codecs.
fn codecs() -> Value {
    json!([
        { "kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2, "parameters": { "foo": "bar" } },
        { "kind": "video", "mimeType": "video/VP8", "clockRate": 90000 },
        { "kind": "video", "mimeType": "video/H264", "clockRate": 90000,
          "parameters": { "level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "4d0032", "foo": "bar" } }
    ])
}

/// test-Consumer.js's audio producer options (appData stays with the client).
fn audio_producer() -> Value {
    json!({
        "kind": "audio",
        "rtpParameters": {
            "mid": "AUDIO",
            "codecs": [{ "mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                         "parameters": { "useinbandfec": 1, "usedtx": 1, "foo": 222.222, "bar": "333" } }],
            "headerExtensions": [
                { "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 10 },
                { "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 12 }
            ],
            "encodings": [{ "ssrc": 11111111 }],
            "rtcp": { "cname": "FOOBAR" }
        }
    })
}

/// test-Consumer.js's simulcast video producer options.
fn video_producer() -> Value {
    json!({
        "kind": "video",
        "rtpParameters": {
            "mid": "VIDEO",
            "codecs": [
                { "mimeType": "video/h264", "payloadType": 112, "clockRate": 90000,
                  "parameters": { "packetization-mode": 1, "profile-level-id": "4d0032" },
                  "rtcpFeedback": [{ "type": "nack", "parameter": "" }, { "type": "nack", "parameter": "pli" },
                                   { "type": "goog-remb", "parameter": "" }] },
                { "mimeType": "video/rtx", "payloadType": 113, "clockRate": 90000, "parameters": { "apt": 112 } }
            ],
            "headerExtensions": [
                { "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 10 },
                { "uri": "urn:3gpp:video-orientation", "id": 13 }
            ],
            "encodings": [
                { "ssrc": 22222222, "scalabilityMode": "L1T5", "rtx": { "ssrc": 22222223 } },
                { "ssrc": 22222224, "scalabilityMode": "L1T5", "rtx": { "ssrc": 22222225 } },
                { "ssrc": 22222226, "scalabilityMode": "L1T5", "rtx": { "ssrc": 22222227 } },
                { "ssrc": 22222228, "scalabilityMode": "L1T5", "rtx": { "ssrc": 22222229 } }
            ],
            "rtcp": { "cname": "FOOBAR" }
        }
    })
}

/// test-Consumer.js's device capabilities.
fn device_capabilities() -> Value {
    json!({
        "codecs": [
            { "mimeType": "audio/opus", "kind": "audio", "preferredPayloadType": 100, "clockRate": 48000, "channels": 2,
              "rtcpFeedback": [{ "type": "nack", "parameter": "" }] },
            { "mimeType": "video/H264", "kind": "video", "preferredPayloadType": 101, "clockRate": 90000,
              "parameters": { "level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "4d0032" },
              "rtcpFeedback": [{ "type": "nack", "parameter": "" }, { "type": "nack", "parameter": "pli" },
                               { "type": "ccm", "parameter": "fir" }, { "type": "goog-remb", "parameter": "" }] },
            { "mimeType": "video/rtx", "kind": "video", "preferredPayloadType": 102, "clockRate": 90000,
              "parameters": { "apt": 101 }, "rtcpFeedback": [] }
        ],
        "headerExtensions": [
            { "kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1, "preferredEncrypt": false },
            { "kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1, "preferredEncrypt": false },
            { "kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "preferredId": 2, "preferredEncrypt": false },
            { "kind": "audio", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 4, "preferredEncrypt": false },
            { "kind": "video", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 4, "preferredEncrypt": false },
            { "kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "preferredId": 10, "preferredEncrypt": false },
            { "kind": "video", "uri": "urn:3gpp:video-orientation", "preferredId": 11, "preferredEncrypt": false },
            { "kind": "video", "uri": "urn:ietf:params:rtp-hdrext:toffset", "preferredId": 12, "preferredEncrypt": false }
        ]
    })
}

/// A router with two WebRTC transports: (worker, router, transport 1, transport 2).
async fn setup(app: &App) -> (String, String, String, String) {
    let (worker, router) = app.router_with(codecs()).await;
    let first = id(&app.transport(&router, "createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"] })).await);
    let second = id(&app.transport(&router, "createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"] })).await);
    (worker, router, first, second)
}

#[tokio::test]
async fn produce_answers_producer_data_as_node_does() {
    let app = App::start().await;
    let (_worker, router, first, second) = setup(&app).await;
    let audio = app.ok(Some(&first), "produce", audio_producer()).await;
    assert_eq!(audio["kind"], "audio");
    assert_eq!(audio["type"], "simple");
    assert_eq!(audio["paused"], false);
    assert_eq!(audio["score"], json!([]));
    assert_eq!(
        audio["rtpParameters"]["codecs"][0]["parameters"],
        json!({ "useinbandfec": 1, "usedtx": 1, "foo": 222.222, "bar": "333" }),
        "parameter values the crate cannot hold come back as they were given"
    );
    assert!(audio["consumableRtpParameters"]["encodings"].is_array());
    let video = app.ok(Some(&second), "produce", video_producer()).await;
    assert_eq!(video["type"], "simulcast");
    let dump = app.ok(Some(&id(&audio)), "dump", json!(null)).await;
    assert_eq!(dump["id"], audio["id"]);
    assert_eq!(dump["rtpParameters"]["codecs"][0]["parameters"]["foo"], json!(222.222));
    assert_eq!(dump["rtpParameters"]["codecs"][0]["rtcpFeedback"], json!([]));
    assert_eq!(
        dump["rtpParameters"]["headerExtensions"],
        json!([
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 10, "parameters": {}, "encrypt": false },
            { "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 12, "parameters": {}, "encrypt": false }
        ])
    );
    assert_eq!(dump["rtpParameters"]["encodings"][0]["codecPayloadType"], 111);
    let video_dump = app.ok(Some(&id(&video)), "dump", json!(null)).await;
    assert_eq!(
        video_dump["rtpParameters"]["codecs"][0]["rtcpFeedback"],
        json!([{ "type": "nack" }, { "type": "nack", "parameter": "pli" }, { "type": "goog-remb" }])
    );
    assert_eq!(video_dump["rtpParameters"]["encodings"][0]["scalabilityMode"], "L1T5");
    assert_eq!(app.ok(Some(&id(&audio)), "getStats", json!(null)).await, json!([]));
    let router_dump = app.ok(Some(&router), "dump", json!(null)).await;
    assert_eq!(router_dump["mapProducerIdConsumerIds"].as_array().map(Vec::len), Some(2));
    // Trace types: unknown names are ignored, wrong ones are TypeErrors.
    app.ok(Some(&id(&audio)), "enableTraceEvent", json!({ "types": ["nack", "FOO", "fir"] })).await;
    let dump = app.ok(Some(&id(&audio)), "dump", json!(null)).await;
    assert_eq!(dump["traceEventTypes"], json!(["nack", "fir"]));
    for types in [json!(123), json!("rtp"), json!(["fir", 123.123])] {
        let refused = app.refused(Some(&id(&audio)), "enableTraceEvent", json!({ "types": types })).await;
        assert_eq!(refused.0, "TypeError", "{types}");
    }
}

#[tokio::test]
async fn wrong_produce_options_are_the_classes_node_throws_and_create_nothing() {
    let app = App::start().await;
    let (_worker, _router, first, _second) = setup(&app).await;
    let before = app.session.len();
    let h264 = json!({ "mimeType": "video/h264", "payloadType": 112, "clockRate": 90000,
                       "parameters": { "packetization-mode": 1, "profile-level-id": "4d0032" } });
    let rtx = |apt: u32| json!({ "mimeType": "video/rtx", "payloadType": 113, "clockRate": 90000, "parameters": { "apt": apt } });
    let type_errors = [
        json!({ "kind": "chicken", "rtpParameters": {} }),
        json!({ "kind": "audio", "rtpParameters": {} }),
        json!({ "kind": "audio", "rtpParameters": { "codecs": [], "headerExtensions": [], "encodings": [{ "ssrc": "1111" }],
                                                   "rtcp": { "cname": "qwerty" } } }),
        json!({ "kind": "video", "rtpParameters": { "codecs": [h264, rtx(112)], "headerExtensions": [], "encodings": [],
                                                   "rtcp": { "cname": "qwerty" } } }),
        json!({ "kind": "audio", "rtpParameters": { "codecs": [h264, rtx(111)], "headerExtensions": [],
                                                   "encodings": [{ "ssrc": 6666, "rtx": { "ssrc": 6667 } }],
                                                   "rtcp": { "cname": "video-1" } } }),
        json!({ "kind": "audio", "rtpParameters": audio_producer()["rtpParameters"].clone(), "appData": "NOT-AN-OBJECT" }),
    ];
    for options in type_errors {
        let (class, code) = app.refused(Some(&first), "produce", options.clone()).await;
        assert_eq!((class.as_str(), code), ("TypeError", -32602), "{options}");
    }
    let unsupported = [
        json!({ "kind": "audio", "rtpParameters": { "codecs": [{ "mimeType": "audio/ISAC", "payloadType": 108, "clockRate": 32000 }],
                                                   "headerExtensions": [], "encodings": [{ "ssrc": 1111 }], "rtcp": { "cname": "audio" } } }),
        json!({ "kind": "video", "rtpParameters": { "codecs": [
            { "mimeType": "video/h264", "payloadType": 112, "clockRate": 90000,
              "parameters": { "packetization-mode": 1, "profile-level-id": "CHICKEN" } }, rtx(112)],
            "headerExtensions": [], "encodings": [{ "ssrc": 6666, "rtx": { "ssrc": 6667 } }] } }),
        json!({ "kind": "audio", "rtpParameters": { "codecs": [{ "mimeType": "audio/chicken", "payloadType": 108, "clockRate": 32000 }] } }),
    ];
    for options in unsupported {
        let (class, code) = app.refused(Some(&first), "produce", options.clone()).await;
        assert_eq!((class.as_str(), code), ("UnsupportedError", -32031), "{options}");
    }
    // A MID or SSRC already in use: mediasoup's plain Error.
    let options = json!({ "kind": "audio", "rtpParameters": { "mid": "AUDIO",
        "codecs": [{ "mimeType": "audio/opus", "payloadType": 0, "clockRate": 48000, "channels": 2 }],
        "encodings": [{ "ssrc": 33333333 }] } });
    app.ok(Some(&first), "produce", options.clone()).await;
    let (class, code) = app.refused(Some(&first), "produce", options).await;
    assert_eq!((class.as_str(), code), ("Error", -32032));
    assert_eq!(app.session.len(), before + 1, "only the first good producer was made");
}

#[tokio::test]
async fn consume_answers_consumer_data_as_node_does() {
    let app = App::start().await;
    let (_worker, _router, first, second) = setup(&app).await;
    let audio = id(&app.ok(Some(&first), "produce", audio_producer()).await);
    let video = id(&app.ok(Some(&first), "produce", video_producer()).await);
    let consumer = app
        .ok(Some(&second), "consume", json!({ "producerId": audio, "rtpCapabilities": device_capabilities() }))
        .await;
    assert_eq!(consumer["producerId"], json!(audio));
    assert_eq!(consumer["kind"], "audio");
    assert_eq!(consumer["rtpParameters"]["mid"], "0");
    assert_eq!(
        consumer["rtpParameters"]["codecs"],
        json!([{ "mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2,
                 "parameters": { "useinbandfec": 1, "usedtx": 1, "foo": 222.222, "bar": "333" }, "rtcpFeedback": [] }])
    );
    assert_eq!(consumer["type"], "simple");
    assert_eq!((consumer["paused"].clone(), consumer["producerPaused"].clone()), (json!(false), json!(false)));
    assert_eq!(consumer["priority"], 1);
    assert_eq!(consumer["score"], json!({ "score": 10, "producerScore": 0, "producerScores": [0] }));
    assert!(consumer.get("preferredLayers").is_none() && consumer.get("currentLayers").is_none());

    app.ok(Some(&video), "pause", json!(null)).await;
    let video_consumer = app
        .ok(
            Some(&second),
            "consume",
            json!({ "producerId": video, "rtpCapabilities": device_capabilities(), "paused": true,
                    "preferredLayers": { "spatialLayer": 12, "temporalLayer": 0 } }),
        )
        .await;
    assert_eq!(video_consumer["rtpParameters"]["mid"], "1");
    assert_eq!(video_consumer["type"], "simulcast");
    assert_eq!(
        (video_consumer["paused"].clone(), video_consumer["producerPaused"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(video_consumer["preferredLayers"], json!({ "spatialLayer": 3, "temporalLayer": 0 }));
    assert_eq!(
        video_consumer["rtpParameters"]["codecs"][0]["rtcpFeedback"],
        json!([{ "type": "nack", "parameter": "" }, { "type": "nack", "parameter": "pli" },
               { "type": "ccm", "parameter": "fir" }, { "type": "goog-remb", "parameter": "" }])
    );
    assert_eq!(
        video_consumer["rtpParameters"]["codecs"][1],
        json!({ "mimeType": "video/rtx", "payloadType": 104, "clockRate": 90000, "parameters": { "apt": 103 }, "rtcpFeedback": [] })
    );
    let pipe = app
        .ok(
            Some(&second),
            "consume",
            json!({ "producerId": video, "rtpCapabilities": device_capabilities(), "pipe": true }),
        )
        .await;
    assert_eq!(pipe["type"], "pipe");
    assert!(pipe["rtpParameters"].get("mid").is_none());
    let custom = app
        .ok(
            Some(&second),
            "consume",
            json!({ "producerId": audio, "mid": "mid-x", "rtpCapabilities": device_capabilities() }),
        )
        .await;
    assert_eq!(custom["rtpParameters"]["mid"], "mid-x");

    let dump = app.ok(Some(&id(&consumer)), "dump", json!(null)).await;
    assert_eq!(dump["producerId"], json!(audio));
    assert_eq!(dump["supportedCodecPayloadTypes"], json!([100]));
    assert_eq!(
        dump["rtpParameters"]["headerExtensions"][0],
        json!({ "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 1, "parameters": {}, "encrypt": false })
    );
    let stats = app.ok(Some(&id(&consumer)), "getStats", json!(null)).await;
    assert_eq!(stats[0]["type"], "outbound-rtp");
    assert_eq!(stats[0]["mimeType"], "audio/opus");
    assert_eq!(stats[0]["ssrc"], consumer["rtpParameters"]["encodings"][0]["ssrc"]);

    // Layers and priority answer what the worker settled on.
    let layers = app
        .ok(Some(&id(&video_consumer)), "setPreferredLayers", json!({ "spatialLayer": 66, "temporalLayer": 66 }))
        .await;
    assert_eq!(layers["preferredLayers"], json!({ "spatialLayer": 3, "temporalLayer": 4 }));
    let layers =
        app.ok(Some(&id(&consumer)), "setPreferredLayers", json!({ "spatialLayer": 1, "temporalLayer": 1 })).await;
    assert_eq!(layers["preferredLayers"], Value::Null, "audio consumers have no layers");
    for params in [json!({}), json!({ "foo": "123" }), json!("foo"), json!({ "temporalLayer": 2 })] {
        let refused = app.refused(Some(&id(&video_consumer)), "setPreferredLayers", params.clone()).await;
        assert_eq!(refused.0, "TypeError", "{params}");
    }
    assert_eq!(app.ok(Some(&id(&video_consumer)), "setPriority", json!({ "priority": 2 })).await["priority"], 2);
    for params in [json!({}), json!({ "priority": 0 }), json!({ "priority": "foo" })] {
        let refused = app.refused(Some(&id(&video_consumer)), "setPriority", params.clone()).await;
        assert_eq!(refused.0, "TypeError", "{params}");
    }
    assert_eq!(app.ok(Some(&id(&video_consumer)), "unsetPriority", json!(null)).await["priority"], 1);
    app.ok(Some(&id(&video_consumer)), "requestKeyFrame", json!(null)).await;
}

#[tokio::test]
async fn wrong_consume_options_are_the_classes_node_throws() {
    let app = App::start().await;
    let (_worker, _router, first, second) = setup(&app).await;
    let audio = id(&app.ok(Some(&first), "produce", audio_producer()).await);
    let before = app.session.len();
    let unknown = "7a5d2a9c-0d35-4a4c-8f0a-3d8f2b9e6c11";
    let refused = app
        .refused(Some(&second), "consume", json!({ "producerId": unknown, "rtpCapabilities": device_capabilities() }))
        .await;
    assert_eq!(refused, ("TypeError".to_owned(), -32602));
    let refused = app.refused(Some(&second), "consume", json!({ "producerId": audio })).await;
    assert_eq!(refused.0, "TypeError", "rtpCapabilities are required out of a pipe transport");
    for capabilities in [
        json!({ "codecs": [{ "kind": "audio", "mimeType": "audio/ISAC", "preferredPayloadType": 100, "clockRate": 32000, "channels": 1 }],
                "headerExtensions": [] }),
        json!({ "codecs": [], "headerExtensions": [] }),
    ] {
        let refused = app
            .refused(Some(&second), "consume", json!({ "producerId": audio, "rtpCapabilities": capabilities }))
            .await;
        assert_eq!(refused, ("UnsupportedError".to_owned(), -32031));
    }
    assert_eq!(app.session.len(), before);
    // Another connection's producer is not found, as an unknown one.
    let other = App::start().await;
    let refused = other.refused(Some(&audio), "pause", json!(null)).await;
    assert_eq!(refused.1, -32001);
}

#[tokio::test]
async fn consumers_follow_their_producer_pause_resume_and_close() {
    let mut app = App::start().await;
    let (_worker, _router, first, second) = setup(&app).await;
    let audio = id(&app.ok(Some(&first), "produce", audio_producer()).await);
    let consumer = id(&app
        .ok(Some(&second), "consume", json!({ "producerId": audio, "rtpCapabilities": device_capabilities() }))
        .await);
    app.ok(Some(&audio), "pause", json!(null)).await;
    // The state first (so a mirror is current when the event arrives), then the event.
    // (A score change would come as a state change too.)
    let mut state = data(&app.event(&consumer, "changed").await);
    while state["producerPaused"] != true {
        state = data(&app.event(&consumer, "changed").await);
    }
    assert_eq!(state["paused"], false);
    app.event(&consumer, "producerpause").await;
    app.ok(Some(&audio), "resume", json!(null)).await;
    app.event(&consumer, "producerresume").await;
    assert_eq!(app.ok(Some(&audio), "dump", json!(null)).await["paused"], false);
    app.ok(Some(&consumer), "pause", json!(null)).await;
    while data(&app.event(&consumer, "changed").await)["paused"] != true {}
    assert_eq!(app.ok(Some(&consumer), "dump", json!(null)).await["paused"], true);
    app.ok(Some(&consumer), "resume", json!(null)).await;
    assert_eq!(app.ok(Some(&consumer), "dump", json!(null)).await["paused"], false);
    // The producer closes: the consumer hears producerclose, then closes.
    app.ok(Some(&audio), "close", json!(null)).await;
    app.event(&consumer, "producerclose").await;
    app.event(&consumer, "closed").await;
    assert_eq!(app.refused(Some(&consumer), "dump", json!(null)).await.1, -32001);
    // A transport's close closes its producers.
    let video = id(&app.ok(Some(&first), "produce", video_producer()).await);
    app.ok(Some(&first), "close", json!(null)).await;
    app.event(&video, "closed").await;
}

/// An RTP packet: opus (payload type 111), `ssrc`, with the audio level
/// header extension (id 12) saying −`level` dBov.
fn rtp_packet(sequence: u16, ssrc: u32, level: u8) -> Vec<u8> {
    let mut packet = vec![0x90, 111];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&(u32::from(sequence) * 960).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    // One-byte header extensions: 0xBEDE, one 32-bit word: id 12, length 1 byte, voice + level.
    packet.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0xc0, 0x80 | level, 0x00, 0x00]);
    packet.extend_from_slice(&[0xfc, 0xff, 0xfe]);
    packet
}

/// RTP from a UDP socket into a plain transport with comedia, consumed on a
/// direct transport (`rtp` events) and heard by an audio level observer.
#[tokio::test]
async fn real_rtp_reaches_a_direct_consumer_and_an_audio_level_observer() {
    let mut app = App::start().await;
    let (_worker, router) = app.router_with(codecs()).await;
    let plain = app
        .transport(
            &router,
            "createPlainTransport",
            json!({ "listenInfo": { "protocol": "udp", "ip": "127.0.0.1" }, "comedia": true }),
        )
        .await;
    let port = u16::try_from(plain["tuple"]["localPort"].as_u64().expect("local port")).expect("a port");
    let producer = id(&app
        .ok(
            Some(&id(&plain)),
            "produce",
            json!({ "kind": "audio", "rtpParameters": {
                "codecs": [{ "mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2 }],
                "headerExtensions": [{ "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 12 }],
                "encodings": [{ "ssrc": 1234 }] } }),
        )
        .await);
    let direct = id(&app.transport(&router, "createDirectTransport", json!({})).await);
    let consumer = id(&app
        .ok(Some(&direct), "consume", json!({ "producerId": producer, "rtpCapabilities": opus_capabilities() }))
        .await);

    // Observer options: wrong ones are TypeErrors and create nothing.
    let before = app.session.len();
    for options in [
        json!({ "maxEntries": 0 }),
        json!({ "maxEntries": -10 }),
        json!({ "threshold": "foo" }),
        json!({ "threshold": 10 }),
        json!({ "interval": false }),
        json!({ "appData": "NOT-AN-OBJECT" }),
    ] {
        let refused = app.refused(Some(&router), "createAudioLevelObserver", options.clone()).await;
        assert_eq!(refused.0, "TypeError", "{options}");
    }
    let refused = app.refused(Some(&router), "createActiveSpeakerObserver", json!({ "interval": false })).await;
    assert_eq!(refused.0, "TypeError");
    assert_eq!(app.session.len(), before);
    let observer =
        id(&app.ok(Some(&router), "createAudioLevelObserver", json!({ "interval": 250, "threshold": -127 })).await);
    let unknown = "7a5d2a9c-0d35-4a4c-8f0a-3d8f2b9e6c11";
    let refused = app.refused(Some(&observer), "addProducer", json!({ "producerId": unknown })).await;
    assert_eq!(refused.0, "TypeError");
    app.ok(Some(&observer), "addProducer", json!({ "producerId": producer })).await;
    let speaker = id(&app.ok(Some(&router), "createActiveSpeakerObserver", json!({})).await);
    app.ok(Some(&speaker), "addProducer", json!({ "producerId": producer })).await;

    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sender = tokio::spawn(async move {
        for sequence in 0..150_u16 {
            let _ = socket.send_to(&rtp_packet(sequence, 1234, 20), ("127.0.0.1", port)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let rtp = data(&app.event(&consumer, "rtp").await);
    let packet = rtp[0].as_str().expect("base64 packet");
    assert!(packet.len() > 16, "an RTP packet: {packet}");
    let volumes = data(&app.event(&observer, "volumes").await);
    assert_eq!(volumes[0][0]["producerId"], json!(producer));
    assert!(volumes[0][0]["volume"].as_i64().is_some_and(|volume| (-127..=0).contains(&volume)), "{volumes}");
    app.ok(Some(&observer), "pause", json!(null)).await;
    assert_eq!(data(&app.event(&observer, "changed").await)["paused"], true);
    app.ok(Some(&observer), "removeProducer", json!({ "producerId": producer })).await;
    sender.abort();
    let stats = app.ok(Some(&producer), "getStats", json!(null)).await;
    assert_eq!(stats[0]["type"], "inbound-rtp");
    assert!(stats[0]["packetCount"].as_u64().is_some_and(|count| count > 0), "{stats}");
    app.ok(Some(&router), "close", json!(null)).await;
    app.event(&observer, "closed").await;
}

/// Capabilities of an endpoint receiving opus only.
fn opus_capabilities() -> Value {
    json!({
        "codecs": [{ "kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100, "clockRate": 48000, "channels": 2 }],
        "headerExtensions": []
    })
}

/// A producer on a direct transport takes RTP through `send`; a consumer of it
/// on a direct transport gives it back as `rtp` events.
#[tokio::test]
async fn a_direct_producer_sends_rtp_to_a_direct_consumer() {
    use base64::Engine;
    let mut app = App::start().await;
    let (_worker, router) = app.router_with(codecs()).await;
    let direct = id(&app.transport(&router, "createDirectTransport", json!({})).await);
    let producer = id(&app
        .ok(
            Some(&direct),
            "produce",
            json!({ "kind": "audio", "rtpParameters": {
                "codecs": [{ "mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2 }],
                "encodings": [{ "ssrc": 4321 }] } }),
        )
        .await);
    let consumer = id(&app
        .ok(Some(&direct), "consume", json!({ "producerId": producer, "rtpCapabilities": opus_capabilities() }))
        .await);
    let engine = base64::engine::general_purpose::STANDARD;
    for sequence in 0..5_u16 {
        let packet = engine.encode(rtp_packet(sequence, 4321, 30));
        app.ok(Some(&producer), "send", json!({ "packet": packet })).await;
    }
    let rtp = data(&app.event(&consumer, "rtp").await);
    let packet = engine.decode(rtp[0].as_str().expect("base64 packet")).expect("base64");
    assert_eq!(packet[1] & 0x7f, 100, "the consumer's payload type");
    let refused = app.refused(Some(&producer), "send", json!({ "packet": "%%%" })).await;
    assert_eq!(refused.0, "TypeError");
}

/// test-multiopus.js: multichannel opus produced and consumed; wrong
/// stream counts are UnsupportedErrors, wrong channels an Error.
#[tokio::test]
async fn multiopus_is_produced_and_consumed_as_node_does() {
    let app = App::start().await;
    let multiopus = |channels: u8, num_streams: u8, coupled_streams: u8| {
        json!({ "mimeType": "audio/multiopus", "payloadType": 0, "clockRate": 48000, "channels": channels,
                "parameters": { "useinbandfec": 1, "channel_mapping": "0,4,1,2,3,5",
                                "num_streams": num_streams, "coupled_streams": coupled_streams } })
    };
    let (_worker, router) = app
        .router_with(json!([{ "kind": "audio", "mimeType": "audio/multiopus", "preferredPayloadType": 100,
            "clockRate": 48000, "channels": 6,
            "parameters": { "useinbandfec": 1, "channel_mapping": "0,4,1,2,3,5", "num_streams": 4, "coupled_streams": 2 } }]))
        .await;
    let transport = id(&app.transport(&router, "createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"] })).await);
    let producer = app
        .ok(
            Some(&transport),
            "produce",
            json!({ "kind": "audio", "rtpParameters": { "mid": "AUDIO", "codecs": [multiopus(6, 4, 2)],
            "headerExtensions": [{ "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 10 },
                                 { "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 12 }] } }),
        )
        .await;
    let mut expected = multiopus(6, 4, 2);
    expected["rtcpFeedback"] = json!([]);
    assert_eq!(producer["rtpParameters"]["codecs"], json!([expected]));
    let capabilities = |channels: u8| {
        json!({ "codecs": [{ "mimeType": "audio/multiopus", "kind": "audio", "preferredPayloadType": 100, "clockRate": 48000,
            "channels": channels, "parameters": { "channel_mapping": "0,4,1,2,3,5", "num_streams": 4, "coupled_streams": 2 } }] })
    };
    let consumer = app
        .ok(Some(&transport), "consume", json!({ "producerId": id(&producer), "rtpCapabilities": capabilities(6) }))
        .await;
    expected["payloadType"] = json!(100);
    assert_eq!(consumer["rtpParameters"]["codecs"], json!([expected]));
    let refused = app
        .refused(
            Some(&transport),
            "consume",
            json!({ "producerId": id(&producer), "rtpCapabilities": capabilities(8) }),
        )
        .await;
    assert_eq!(refused.0, "UnsupportedError");
    for codec in [multiopus(6, 2, 2), multiopus(6, 4, 1)] {
        let options = json!({ "kind": "audio", "rtpParameters": { "mid": "AUDIO2", "codecs": [codec] } });
        let refused = app.refused(Some(&transport), "produce", options.clone()).await;
        assert_eq!(refused.0, "UnsupportedError", "{options}");
    }
}

/// `pipeToRouter` (router.rs) between two routers of one connection: the
/// pipe producer keeps its producer's id, which this connection already
/// holds, so it is refused (an `Error`) and the producer is left as it was
/// (replacing it closed it, or deadlocked the session). The pipe consumer
/// recorded before answers as ConsumerData.
#[tokio::test]
async fn pipe_to_router_in_one_connection_keeps_the_id_under_its_own_object_id() {
    let mut app = App::start().await;
    let (_worker, router) = app.router_with(codecs()).await;
    // On another worker, as mediasoup's own tests pipe (one worker refuses a second handler of one id).
    let (_other_worker, other) = app.router_with(codecs()).await;
    let transport = id(&app.transport(&router, "createWebRtcTransport", json!({ "listenIps": ["127.0.0.1"] })).await);
    let producer = id(&app.ok(Some(&transport), "produce", audio_producer()).await);
    let piped = app.ok(Some(&router), "pipeToRouter", json!({ "producerId": producer, "router": other })).await;
    // mediasoup's pipe producer keeps the producer's id; its ROPE object is another one.
    assert_eq!(piped["pipeProducer"]["id"], json!(producer));
    let object = piped["pipeProducer"]["objectId"].as_str().expect("an object id of its own").to_owned();
    assert_eq!(object, format!("{producer}@{other}"));
    let dump = app.ok(Some(&object), "dump", json!(null)).await;
    assert_eq!(dump["id"], json!(producer));
    // The original is untouched.
    let dump = app.ok(Some(&producer), "dump", json!(null)).await;
    assert_eq!(dump["id"], json!(producer));
    assert_eq!(dump["rtpParameters"]["codecs"][0]["parameters"]["foo"], json!(222.222));
    // Closing the pipe producer closes it, not the original.
    app.ok(Some(&object), "close", json!(null)).await;
    app.event(&object, "closed").await;
    app.ok(Some(&producer), "dump", json!(null)).await;
}
