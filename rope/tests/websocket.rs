//! ROPE over real WebSocket connections on 127.0.0.1: mirrors, events,
//! reconnection, error codes, size limits and timeouts.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use mafalda_rope::transport::websocket;
use mafalda_rope::{
    CallError, Client, ClientConfig, ClientEvent, ErrorCode, EventKind, Handler, Request, RpcError, Server, Value,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

/// Server methods: `create {id, type, state}`, `slow`; object methods: `set`, `close`.
struct Root(std::sync::OnceLock<Server>);

struct Object(Server);

fn text(value: &Value, key: &str) -> Option<String> {
    value.as_map()?.iter().find(|(k, _)| k.as_text() == Some(key)).and_then(|(_, v)| v.as_text().map(str::to_owned))
}

impl Handler for Root {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let server = self.0.get().cloned();
        Box::pin(async move {
            let server = server.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "not ready"))?;
            match request.method.as_str() {
                "create" => {
                    let (Some(id), Some(kind)) = (text(&request.params, "id"), text(&request.params, "type")) else {
                        return Err(RpcError::new(ErrorCode::InvalidParams, "create needs text id and type"));
                    };
                    server.create(id, kind, Value::Text("new".into()), Arc::new(Object(server.clone())))?;
                    Ok(Value::Bool(true))
                }
                "slow" => {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    Ok(Value::Text("late".into()))
                }
                other => Err(RpcError::new(ErrorCode::MethodNotFound, format!("unknown method {other}"))),
            }
        })
    }
}

impl Handler for Object {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let server = self.0.clone();
        Box::pin(async move {
            let target = request.target.clone().unwrap_or_default();
            match request.method.as_str() {
                "set" => server.set_state(&target, request.params).map(|()| Value::Null),
                "close" => server.close(&target).map(|()| Value::Null),
                other => Err(RpcError::new(ErrorCode::MethodNotFound, format!("unknown method {other}"))),
            }
        })
    }
}

async fn start_server() -> (Server, String) {
    let root = Arc::new(Root(std::sync::OnceLock::new()));
    let server = Server::new(root.clone());
    let _ = root.0.set(server.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    websocket::serve(listener, server.clone());
    (server, format!("ws://{addr}/v1/rope"))
}

fn params(pairs: &[(&str, &str)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (Value::Text((*k).into()), Value::Text((*v).into()))).collect())
}

async fn next_object_event(events: &mut mpsc::Receiver<ClientEvent>) -> mafalda_rope::Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("in time").expect("open");
        if let ClientEvent::Object(event) = event {
            return event;
        }
    }
}

/// A TCP relay between a client and the server that a test can cut and restore.
struct Relay {
    url: String,
    cut: tokio::sync::watch::Sender<bool>,
}

async fn relay(server_url: &str) -> Relay {
    let upstream = server_url.trim_start_matches("ws://").split('/').next().expect("host").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let addr = listener.local_addr().expect("addr");
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { return };
            let mut cut_rx = cut_rx.clone();
            if *cut_rx.borrow() {
                continue; // refused while cut
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut_rx.wait_for(|cut| *cut) => {}
                }
            });
        }
    });
    Relay { url: format!("ws://{addr}/v1/rope"), cut }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_objects_and_a_reconnecting_client_catches_up() {
    let (server, url) = start_server().await;
    let (a, _a_events) = Client::connect(url.clone(), ClientConfig::default()).await.expect("a connects");
    let b_relay = relay(&url).await;
    let mut config = ClientConfig::default();
    config.reconnect_min = Duration::from_millis(50);
    let (b, mut b_events) = Client::connect(b_relay.url.clone(), config).await.expect("b connects");
    assert!(b.mirror().is_empty());

    // A creates: B's mirror shows it from one event.
    a.call("create", None, params(&[("id", "obj-1"), ("type", "router")])).await.expect("create");
    let event = next_object_event(&mut b_events).await;
    assert_eq!((event.object.as_str(), event.name.clone()), ("obj-1", EventKind::Created));
    assert_eq!(b.mirror().len(), 1);

    // A closes it: B sees it closed.
    a.call("close", Some("obj-1"), Value::Null).await.expect("close");
    let event = next_object_event(&mut b_events).await;
    assert_eq!((event.object.as_str(), event.name), ("obj-1", EventKind::Closed));
    assert!(b.mirror().is_empty());

    // Two objects B knows about.
    a.call("create", None, params(&[("id", "keep"), ("type", "router")])).await.expect("create");
    a.call("create", None, params(&[("id", "doomed"), ("type", "transport")])).await.expect("create");
    next_object_event(&mut b_events).await;
    next_object_event(&mut b_events).await;

    // B disconnects; meanwhile A changes things.
    b_relay.cut.send(true).expect("cut");
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), b_events.recv()).await.expect("in time");
        if event == Some(ClientEvent::Disconnected) {
            break;
        }
    }
    assert!(matches!(b.call("create", None, Value::Null).await, Err(CallError::Disconnected)));
    a.call("set", Some("keep"), Value::Text("changed".into())).await.expect("set");
    a.call("close", Some("doomed"), Value::Null).await.expect("close");
    a.call("create", None, params(&[("id", "born"), ("type", "consumer")])).await.expect("create");

    // B reconnects: its mirror equals the server's state, and it was told why.
    b_relay.cut.send(false).expect("restore");
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), b_events.recv()).await.expect("in time");
        match event.expect("open") {
            ClientEvent::Reconnected => break,
            ClientEvent::Object(event) => seen.push((event.object, event.name)),
            _ => {}
        }
    }
    let mut server_state = server.snapshot().objects;
    server_state.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(b.mirror(), server_state, "b's mirror equals the server's state");
    seen.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        seen,
        vec![
            ("born".to_owned(), EventKind::Created),
            ("doomed".to_owned(), EventKind::Closed),
            ("keep".to_owned(), EventKind::Changed),
        ],
        "reconciliation reports what happened while away"
    );
    assert!(b.call("set", Some("keep"), Value::Null).await.is_ok(), "b calls again after reconnecting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_their_json_rpc_codes() {
    let (_server, url) = start_server().await;
    let (client, _events) = Client::connect(url, ClientConfig::default()).await.expect("connect");
    let code = |result: Result<Value, CallError>| match result {
        Err(CallError::Rpc(error)) => error.code,
        other => panic!("expected an error answer, got {other:?}"),
    };
    assert_eq!(code(client.call("nope", None, Value::Null).await), -32601, "unknown method");
    assert_eq!(code(client.call("create", None, Value::Integer(3.into())).await), -32602, "wrong params");
    assert_eq!(code(client.call("set", Some("missing"), Value::Null).await), -32001, "unknown object");
}

async fn raw_socket(url: &str) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("raw connect");
    // The snapshot comes first.
    let first = socket.next().await.expect("frame").expect("ok");
    assert!(matches!(first, Frame::Binary(_)), "snapshot in CBOR by default");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_a_parse_error_and_oversized_frames_close_only_that_connection() {
    let (_server, url) = start_server().await;

    let mut raw = raw_socket(&url).await;
    raw.send(Frame::Binary(vec![0xff, 0x00, 0x13].into())).await.expect("send garbage");
    let answer = raw.next().await.expect("frame").expect("ok");
    let Frame::Binary(bytes) = answer else { panic!("binary answer expected: {answer:?}") };
    let message = mafalda_rope::codec::cbor::decode(&bytes).expect("a valid answer");
    let mafalda_rope::Message::Response(response) = message else { panic!("a response") };
    assert_eq!(response.outcome.expect_err("an error").code, -32700);

    // JSON clients get JSON back.
    let (mut json_raw, _) = tokio_tungstenite::connect_async(format!("{url}?format=json")).await.expect("connect");
    let snapshot = json_raw.next().await.expect("frame").expect("ok");
    assert!(matches!(snapshot, Frame::Text(ref t) if t.contains("rope.snapshot")), "{snapshot:?}");
    json_raw.send(Frame::Text(r#"{"jsonrpc":"2.0","id":4,"method":"nope"}"#.into())).await.expect("send");
    let answer = json_raw.next().await.expect("frame").expect("ok");
    assert!(matches!(answer, Frame::Text(ref t) if t.contains("-32601") && t.contains("\"id\":4")), "{answer:?}");

    // An oversized frame ends that connection with a clear close…
    let oversized = vec![0u8; mafalda_rope::codec::MAX_MESSAGE_SIZE + 1];
    let _ = raw.send(Frame::Binary(oversized.into())).await;
    let mut closed = false;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(5), raw.next()).await {
        match frame {
            Ok(Frame::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "the connection that sent the oversized frame is closed");
    // …and the server goes on.
    let (client, _events) = Client::connect(url, ClientConfig::default()).await.expect("server still up");
    assert!(client.call("create", None, params(&[("id", "x"), ("type", "y")])).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_is_a_typed_error_and_its_late_answer_is_dropped() {
    let (_server, url) = start_server().await;
    let mut config = ClientConfig::default();
    config.request_timeout = Duration::from_millis(150);
    let (client, _events) = Client::connect(url, config).await.expect("connect");
    let result = client.call("slow", None, Value::Null).await;
    assert_eq!(result, Err(CallError::Timeout(Duration::from_millis(150))));
    // The late answer arrives while the next call is in flight and must not be taken for it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let result = client.call("create", None, params(&[("id", "after"), ("type", "t")])).await;
    assert_eq!(result, Ok(Value::Bool(true)), "the next call gets its own answer");
    assert!(client.is_connected());
}

/// Calls go both ways: the server calls a method the client offers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_can_call_the_client() {
    struct ClientMethods;
    impl Handler for ClientMethods {
        fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
            Box::pin(async move {
                match request.method.as_str() {
                    "client.whoami" => Ok(Value::Text("browser-7".into())),
                    other => Err(RpcError::new(ErrorCode::MethodNotFound, format!("unknown method {other}"))),
                }
            })
        }
    }
    let (server, _) = start_server().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/v1/rope", listener.local_addr().expect("addr"));
    let accepting = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let socket = tokio_tungstenite::accept_async(stream).await.expect("handshake");
        let connection = websocket::connection(socket, websocket::Format::Cbor, mafalda_rope::codec::MAX_MESSAGE_SIZE);
        server.accept(connection)
    });
    let (client, _events) =
        Client::connect_with_handler(url, ClientConfig::default(), Arc::new(ClientMethods)).await.expect("connect");
    let (peer, _task) = accepting.await.expect("accepted");
    let timeout = Duration::from_secs(2);
    assert_eq!(peer.call("client.whoami", None, Value::Null, timeout).await, Ok(Value::Text("browser-7".into())));
    let unknown = peer.call("client.nope", None, Value::Null, timeout).await;
    assert!(matches!(unknown, Err(CallError::Rpc(ref e)) if e.code == -32601), "{unknown:?}");
    assert!(peer.is_connected());
    drop(client);
    let gone = eventually(|| !peer.is_connected()).await;
    assert!(gone, "the server sees the client leave");
}

async fn eventually(check: impl Fn() -> bool) -> bool {
    for _ in 0..50 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Records the order its calls finish in; `slow` takes 300 ms, `fast` none.
struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

impl Handler for Recorder {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let log = Arc::clone(&self.0);
        Box::pin(async move {
            if request.method == "slow" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let target = request.target.clone().unwrap_or_default();
            log.lock().expect("log").push(format!("{target}.{}", request.method));
            Ok(Value::Null)
        })
    }
}

#[tokio::test]
async fn calls_on_one_object_run_in_order_and_other_objects_do_not_wait() {
    let (server, url) = start_server().await;
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    for id in ["one", "two"] {
        server.create(id, "thing", Value::Null, Arc::new(Recorder(Arc::clone(&log)))).expect("create");
    }
    let (client, _events) = Client::connect(url, ClientConfig::default()).await.expect("connect");
    let (slow, fast, other) = tokio::join!(
        client.call("slow", Some("one"), Value::Null),
        client.call("fast", Some("one"), Value::Null),
        client.call("fast", Some("two"), Value::Null),
    );
    for outcome in [slow, fast, other] {
        outcome.expect("answered");
    }
    let log = log.lock().expect("log").clone();
    assert_eq!(log, ["two.fast", "one.slow", "one.fast"], "one's calls in order; two's did not wait");
}
