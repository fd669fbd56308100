//! Data producers and data consumers over a real ROPE connection with real
//! mediasoup workers, with the options mediasoup's own Node test suite uses:
//! SCTP ones on WebRTC transports, direct ones with real messages.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{App, data, id};
use serde_json::{Value, json};

fn encode(text: &str) -> String {
    STANDARD.encode(text)
}

fn decode(event: &Value) -> String {
    let bytes = STANDARD.decode(event[0].as_str().expect("base64 message")).expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

/// A router (no codecs) with two WebRTC transports with SCTP: (router, transport 1, transport 2).
async fn setup(app: &App) -> (String, String, String) {
    let (_worker, router) = app.router_with(json!([])).await;
    let sctp = json!({ "listenIps": ["127.0.0.1"], "enableSctp": true });
    let first = id(&app.transport(&router, "createWebRtcTransport", sctp.clone()).await);
    let second = id(&app.transport(&router, "createWebRtcTransport", sctp).await);
    (router, first, second)
}

#[tokio::test]
async fn sctp_data_producers_answer_node_data_and_refuse_wrong_options() {
    let app = App::start().await;
    let (router, first, second) = setup(&app).await;
    let one = app
        .ok(
            Some(&first),
            "produceData",
            json!({ "sctpStreamParameters": { "streamId": 666 }, "label": "foo", "protocol": "bar" }),
        )
        .await;
    assert_eq!(one["type"], "sctp");
    assert_eq!(one["sctpStreamParameters"], json!({ "streamId": 666, "ordered": true }));
    assert_eq!(
        (one["label"].clone(), one["protocol"].clone(), one["paused"].clone()),
        (json!("foo"), json!("bar"), json!(false))
    );
    let two = app
        .ok(
            Some(&second),
            "produceData",
            json!({ "sctpStreamParameters": { "streamId": 777, "maxRetransmits": 3 }, "label": "foo", "protocol": "bar", "paused": true }),
        )
        .await;
    assert_eq!(two["sctpStreamParameters"], json!({ "streamId": 777, "ordered": false, "maxRetransmits": 3 }));
    assert_eq!(two["paused"], true);
    let dump = app.ok(Some(&id(&two)), "dump", json!(null)).await;
    assert_eq!(
        (dump["paused"].clone(), dump["sctpStreamParameters"]["maxRetransmits"].clone()),
        (json!(true), json!(3))
    );
    let stats = app.ok(Some(&id(&one)), "getStats", json!(null)).await;
    assert_eq!(stats[0]["type"], "data-producer");
    assert_eq!((stats[0]["label"].clone(), stats[0]["messagesReceived"].clone()), (json!("foo"), json!(0)));
    let router_dump = app.ok(Some(&router), "dump", json!(null)).await;
    assert_eq!(router_dump["mapDataProducerIdDataConsumerIds"].as_array().map(Vec::len), Some(2));

    let before = app.session.len();
    for options in [
        json!({}),
        json!({ "sctpStreamParameters": { "foo": "foo" } }),
        json!({ "sctpStreamParameters": { "streamId": 999, "ordered": true, "maxPacketLifeTime": 4000 } }),
        json!({ "sctpStreamParameters": { "streamId": 999, "maxRetransmits": 1, "maxPacketLifeTime": 4000 } }),
        json!({ "sctpStreamParameters": { "streamId": 999 }, "appData": "NOT-AN-OBJECT" }),
    ] {
        let refused = app.refused(Some(&first), "produceData", options.clone()).await;
        assert_eq!(refused, ("TypeError".to_owned(), -32602), "{options}");
    }
    let refused =
        app.refused(Some(&first), "produceData", json!({ "sctpStreamParameters": { "streamId": 666 } })).await;
    assert_eq!(refused, ("Error".to_owned(), -32032), "a stream id already in use");
    assert_eq!(app.session.len(), before);

    // pause/resume change the state and the dump.
    app.ok(Some(&id(&one)), "pause", json!(null)).await;
    assert_eq!(app.ok(Some(&id(&one)), "dump", json!(null)).await["paused"], true);
    app.ok(Some(&id(&one)), "resume", json!(null)).await;
    assert_eq!(app.ok(Some(&id(&one)), "dump", json!(null)).await["paused"], false);
}

#[tokio::test]
async fn sctp_data_consumers_answer_node_data_and_close_with_their_producer() {
    let mut app = App::start().await;
    let (_router, first, second) = setup(&app).await;
    let producer = id(&app
        .ok(
            Some(&first),
            "produceData",
            json!({ "sctpStreamParameters": { "streamId": 12345, "ordered": false, "maxPacketLifeTime": 5000 },
                    "label": "foo", "protocol": "bar" }),
        )
        .await);
    let consumer = app
        .ok(
            Some(&second),
            "consumeData",
            json!({ "dataProducerId": producer, "maxPacketLifeTime": 4000, "subchannels": [0, 1, 1, 1, 2, 65535, 65536, 65537, 100] }),
        )
        .await;
    assert_eq!(consumer["dataProducerId"], json!(producer));
    assert_eq!(consumer["type"], "sctp");
    let sctp = &consumer["sctpStreamParameters"];
    assert!(sctp["streamId"].is_u64());
    assert_eq!((sctp["ordered"].clone(), sctp["maxPacketLifeTime"].clone()), (json!(false), json!(4000)));
    assert!(sctp.get("maxRetransmits").is_none());
    assert_eq!((consumer["label"].clone(), consumer["protocol"].clone()), (json!("foo"), json!("bar")));
    let mut subchannels: Vec<u64> =
        consumer["subchannels"].as_array().expect("subchannels").iter().filter_map(Value::as_u64).collect();
    subchannels.sort_unstable();
    assert_eq!(subchannels, [0, 1, 2, 100, 65535]);
    let consumer = id(&consumer);
    let dump = app.ok(Some(&consumer), "dump", json!(null)).await;
    assert_eq!(
        (dump["dataProducerPaused"].clone(), dump["sctpStreamParameters"]["maxPacketLifeTime"].clone()),
        (json!(false), json!(4000))
    );
    let stats = app.ok(Some(&consumer), "getStats", json!(null)).await;
    assert_eq!((stats[0]["type"].clone(), stats[0]["messagesSent"].clone()), (json!("data-consumer"), json!(0)));

    let answer = app.ok(Some(&consumer), "setSubchannels", json!({ "subchannels": [999, 999, 998, 65536] })).await;
    let mut subchannels: Vec<u64> =
        answer["subchannels"].as_array().expect("subchannels").iter().filter_map(Value::as_u64).collect();
    subchannels.sort_unstable();
    assert_eq!(subchannels, [0, 998, 999]);
    assert_eq!(app.ok(Some(&consumer), "setSubchannels", json!({ "subchannels": [] })).await["subchannels"], json!([]));
    assert_eq!(app.ok(Some(&consumer), "addSubchannel", json!({ "subchannel": 5 })).await["subchannels"], json!([5]));
    assert_eq!(app.ok(Some(&consumer), "removeSubchannel", json!({ "subchannel": 5 })).await["subchannels"], json!([]));
    assert_eq!(app.ok(Some(&consumer), "getBufferedAmount", json!(null)).await, json!({ "bufferedAmount": 0 }));
    app.ok(Some(&consumer), "setBufferedAmountLowThreshold", json!({ "threshold": 1000 })).await;

    // The data producer pauses: the consumer's state, then its event.
    app.ok(Some(&producer), "pause", json!(null)).await;
    // (Earlier calls changed the state too: their events come first.)
    while data(&app.event(&consumer, "changed").await)["dataProducerPaused"] != true {}
    app.event(&consumer, "dataproducerpause").await;
    assert_eq!(app.ok(Some(&consumer), "dump", json!(null)).await["dataProducerPaused"], true);
    app.ok(Some(&producer), "resume", json!(null)).await;
    app.event(&consumer, "dataproducerresume").await;

    let unknown = "7a5d2a9c-0d35-4a4c-8f0a-3d8f2b9e6c11";
    let refused = app.refused(Some(&second), "consumeData", json!({ "dataProducerId": unknown })).await;
    assert_eq!(refused.0, "TypeError");

    app.ok(Some(&producer), "close", json!(null)).await;
    app.event(&consumer, "dataproducerclose").await;
    app.event(&consumer, "closed").await;
    assert_eq!(app.refused(Some(&consumer), "dump", json!(null)).await.1, -32001);
}

#[tokio::test]
async fn direct_messages_go_through_as_message_events() {
    let mut app = App::start().await;
    let (_worker, router) = app.router_with(json!([])).await;
    let direct = id(&app.transport(&router, "createDirectTransport", json!({})).await);
    let producer = app.ok(Some(&direct), "produceData", json!({ "label": "foo", "protocol": "bar" })).await;
    assert_eq!(producer["type"], "direct");
    assert!(producer.get("sctpStreamParameters").is_none());
    let producer = id(&producer);
    let consumer = app.ok(Some(&direct), "consumeData", json!({ "dataProducerId": producer })).await;
    assert_eq!(consumer["type"], "direct");
    assert!(consumer.get("sctpStreamParameters").is_none());
    assert_eq!(consumer["subchannels"], json!([]));
    let consumer = id(&consumer);
    let dump = app.ok(Some(&consumer), "dump", json!(null)).await;
    assert!(dump.get("sctpStreamParameters").is_none(), "{dump}");

    app.ok(Some(&producer), "send", json!({ "message": encode("hello"), "ppid": 51 })).await;
    let message = data(&app.event(&consumer, "message").await);
    assert_eq!((decode(&message), message[1].clone()), ("hello".to_owned(), json!(51)));
    app.ok(Some(&producer), "send", json!({ "message": encode("bytes"), "ppid": 53 })).await;
    let message = data(&app.event(&consumer, "message").await);
    assert_eq!((decode(&message), message[1].clone()), ("bytes".to_owned(), json!(53)));
    // Paused, nothing goes through; resumed, it does again.
    app.ok(Some(&producer), "pause", json!(null)).await;
    app.ok(Some(&producer), "send", json!({ "message": encode("lost"), "ppid": 51 })).await;
    app.ok(Some(&producer), "resume", json!(null)).await;
    app.ok(Some(&producer), "send", json!({ "message": encode("again"), "ppid": 51 })).await;
    let message = data(&app.event(&consumer, "message").await);
    assert_eq!(decode(&message), "again");
    let stats = app.ok(Some(&producer), "getStats", json!(null)).await;
    assert_eq!(stats[0]["messagesReceived"], 4);
    let stats = app.ok(Some(&consumer), "getStats", json!(null)).await;
    assert_eq!(stats[0]["messagesSent"], 3);

    // Subchannels: a message for subchannel 7 only reaches a consumer subscribed to it.
    let seven =
        id(&app.ok(Some(&direct), "consumeData", json!({ "dataProducerId": producer, "subchannels": [7] })).await);
    app.ok(Some(&producer), "send", json!({ "message": encode("seven"), "ppid": 51, "subchannels": [7] })).await;
    let message = data(&app.event(&seven, "message").await);
    assert_eq!(decode(&message), "seven");

    for params in [json!({ "message": encode("x"), "ppid": 50 }), json!({ "message": "%%%", "ppid": 51 }), json!({})] {
        let refused = app.refused(Some(&producer), "send", params.clone()).await;
        assert_eq!(refused.0, "TypeError", "{params}");
    }
    let refused = app.refused(Some(&consumer), "send", json!({ "message": encode("x"), "ppid": 51 })).await;
    assert_eq!(refused.0, "TypeError", "send() on a direct data consumer");
    app.ok(Some(&direct), "close", json!(null)).await;
    app.closed_all(&[&consumer, &seven, &producer, &direct]).await;
    assert!(app.session.len() == 2, "the worker and the router remain");
}

/// `pipeToRouter` of a data producer between two routers of one
/// connection: refused (the pipe data producer keeps the data producer's
/// id), the data producer left as it was.
#[tokio::test]
async fn pipe_to_router_in_one_connection_keeps_the_data_producer_id_under_its_own_object_id() {
    let app = App::start().await;
    let (router, first, _second) = setup(&app).await;
    let (_worker, other) = app.router_with(json!([])).await;
    let producer = id(&app
        .ok(Some(&first), "produceData", json!({ "sctpStreamParameters": { "streamId": 1 }, "label": "foo" }))
        .await);
    let piped = app.ok(Some(&router), "pipeToRouter", json!({ "dataProducerId": producer, "router": other })).await;
    assert_eq!(piped["pipeDataProducer"]["id"], json!(producer));
    let object = piped["pipeDataProducer"]["objectId"].as_str().expect("an object id of its own").to_owned();
    assert_eq!(app.ok(Some(&object), "dump", json!(null)).await["label"], "foo");
    assert_eq!(app.ok(Some(&producer), "dump", json!(null)).await["label"], "foo");
}
