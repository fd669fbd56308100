//! Every message type through both codecs, golden CBOR bytes, and bad input.

use mafalda_rope::codec::{CodecError, cbor, json};
use mafalda_rope::{
    ErrorCode, Event, EventKind, Message, Notification, ObjectState, Request, RequestId, Response, RpcError, Snapshot,
    Value,
};

fn samples() -> Vec<Message> {
    let params = Value::Map(vec![
        (Value::Text("kind".into()), Value::Text("video".into())),
        (Value::Text("ssrc".into()), Value::Integer(1234.into())),
        (Value::Text("key".into()), Value::Bytes(vec![1, 2, 3])),
    ]);
    vec![
        Message::Request(Request {
            id: RequestId::Number(7),
            method: "router.createPipeTransport".into(),
            target: Some("router-1".into()),
            params: params.clone(),
        }),
        Message::Request(Request {
            id: RequestId::Text("abc".into()),
            method: "status".into(),
            target: None,
            params: Value::Null,
        }),
        Message::Response(Response::ok(RequestId::Number(7), params.clone())),
        Message::Response(Response::ok(RequestId::Number(8), Value::Null)),
        Message::Response(Response::err(
            Some(RequestId::Number(9)),
            RpcError::new(ErrorCode::MethodNotFound, "no such method").with_data(Value::Text("x".into())),
        )),
        Message::Response(Response::err(None, RpcError::new(ErrorCode::ParseError, "garbage"))),
        Message::Notification(Notification { method: "log".into(), params: Value::Text("hi".into()) }),
        Message::Event(Event {
            object: "transport-3".into(),
            object_type: "transport".into(),
            name: EventKind::Changed,
            data: params,
        }),
        Message::Snapshot(Snapshot {
            objects: vec![ObjectState {
                id: "router-1".into(),
                object_type: "router".into(),
                state: Value::Map(vec![(Value::Text("worker".into()), Value::Integer(0.into()))]),
            }],
        }),
    ]
}

#[test]
fn every_message_type_round_trips_through_cbor() {
    for message in samples() {
        let bytes = cbor::encode(&message).expect("encode");
        assert_eq!(cbor::decode(&bytes).expect("decode"), message);
    }
}

#[test]
fn every_message_type_round_trips_through_json() {
    for message in samples() {
        let text = json::encode(&message).expect("encode");
        let decoded = json::decode(&text).expect("decode");
        // JSON has no byte strings: bytes come back as an array of numbers.
        let again = json::encode(&decoded).expect("re-encode");
        assert_eq!(again, text, "stable through JSON");
        if !text.contains("[1,2,3]") {
            assert_eq!(decoded, message);
        }
    }
}

#[test]
fn json_is_plain_json_rpc() {
    let request = Message::Request(Request {
        id: RequestId::Number(1),
        method: "router.close".into(),
        target: Some("r1".into()),
        params: Value::Null,
    });
    assert_eq!(
        json::encode(&request).expect("encode"),
        r#"{"jsonrpc":"2.0","id":1,"method":"router.close","target":"r1","params":null}"#
    );
    let ok = Message::Response(Response::ok(RequestId::Number(1), Value::Null));
    assert_eq!(json::encode(&ok).expect("encode"), r#"{"jsonrpc":"2.0","id":1,"result":null}"#);
}

/// The wire format must not drift silently: these bytes are the protocol.
#[test]
fn golden_cbor_bytes() {
    let request = Message::Request(Request {
        id: RequestId::Number(1),
        method: "ping".into(),
        target: None,
        params: Value::Null,
    });
    let expected_request = [
        0xa4, // map(4)
        0x67, b'j', b's', b'o', b'n', b'r', b'p', b'c', 0x63, b'2', b'.', b'0', // "jsonrpc": "2.0"
        0x62, b'i', b'd', 0x01, // "id": 1
        0x66, b'm', b'e', b't', b'h', b'o', b'd', 0x64, b'p', b'i', b'n', b'g', // "method": "ping"
        0x66, b'p', b'a', b'r', b'a', b'm', b's', 0xf6, // "params": null
    ];
    assert_eq!(cbor::encode(&request).expect("encode"), expected_request);

    let error = Message::Response(Response::err(Some(RequestId::Number(2)), RpcError::new(ErrorCode::Busy, "busy")));
    let expected_error = [
        0xa3, // map(3)
        0x67, b'j', b's', b'o', b'n', b'r', b'p', b'c', 0x63, b'2', b'.', b'0', // "jsonrpc": "2.0"
        0x62, b'i', b'd', 0x02, // "id": 2
        0x65, b'e', b'r', b'r', b'o', b'r', // "error":
        0xa2, 0x64, b'c', b'o', b'd', b'e', 0x39, 0x7c, 0xff, // {"code": -32000,
        0x67, b'm', b'e', b's', b's', b'a', b'g', b'e', 0x64, b'b', b'u', b's', b'y', // "message": "busy"}
    ];
    assert_eq!(cbor::encode(&error).expect("encode"), expected_error);
    assert_eq!(cbor::decode(&expected_error).expect("decode"), error);
}

#[test]
fn garbage_is_a_parse_error_and_wrong_shapes_are_invalid_requests() {
    for garbage in [&b"\xff\xff\xff"[..], b"", b"\x1f"] {
        assert!(matches!(cbor::decode(garbage), Err(CodecError::Parse(_))), "{garbage:?}");
    }
    assert!(matches!(json::decode("{not json"), Err(CodecError::Parse(_))));
    let error = json::decode(r#"{"jsonrpc":"2.0","id":5,"result":1,"error":{"code":1,"message":"x"}}"#)
        .expect_err("both result and error");
    assert_eq!(error.to_rpc_error().code, -32600);
    assert_eq!(error.request_id(), Some(RequestId::Number(5)), "the id survives for the error answer");
    let error = json::decode(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).expect_err("wrong version");
    assert_eq!(error.to_rpc_error().code, -32600);
    let error = json::decode(r#"[1,2,3]"#).expect_err("not an object");
    assert_eq!(error.to_rpc_error().code, -32600);
    let long = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#, "m".repeat(300));
    assert_eq!(json::decode(&long).expect_err("long method").to_rpc_error().code, -32600);
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let big = vec![0u8; 2048];
    assert_eq!(cbor::decode_with_limit(&big, 1024), Err(CodecError::TooLarge { size: 2048, limit: 1024 }));
    let message = Message::Notification(Notification { method: "x".into(), params: Value::Bytes(vec![0; 2048]) });
    assert!(matches!(cbor::encode_with_limit(&message, 1024), Err(CodecError::TooLarge { .. })));
}
