//! A real app connection for the tests: a ROPE server on 127.0.0.1 whose root
//! hands `mediasoup.*` to a [`Session`], and a ROPE client over WebSocket that
//! calls it and hears its events. Real mediasoup workers throughout.

#![allow(dead_code, missing_docs)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use mafalda_mediasoup_api::{Grants, Host, Limits, Session};
use mafalda_nss_link as _;
use mafalda_rope::transport::websocket;
use mafalda_rope::{
    CallError, Client, ClientConfig, ClientEvent, ErrorCode, Event, Handler, Request, RpcError, Server, Value,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

struct Root(OnceLock<Session>);

impl Handler for Root {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let session = self.0.get().cloned();
        Box::pin(async move {
            let session = session.ok_or_else(|| RpcError::new(ErrorCode::InternalError, "not ready"))?;
            session.call_root(&request.method, &request.params).await
        })
    }
}

/// One app connected to a session.
pub struct App {
    pub host: Arc<Host>,
    pub client: Client,
    pub events: mpsc::Receiver<ClientEvent>,
    pub session: Session,
    pub server: Server,
}

/// The error an app call failed with.
pub fn rpc(error: CallError) -> RpcError {
    match error {
        CallError::Rpc(error) => error,
        other => panic!("expected an error answer, got {other}"),
    }
}

/// The mediasoup class an error carries in `data.name`.
pub fn class(error: &RpcError) -> String {
    let data: serde_json::Value = error.data.as_ref().and_then(|d| d.deserialized().ok()).unwrap_or_default();
    data["name"].as_str().unwrap_or_default().to_owned()
}

impl App {
    /// A session with the default caps, every grant, app workers on ports 20000-29999.
    pub async fn start() -> App {
        Self::start_with(Limits::default(), Grants { workers: true, files: true }).await
    }

    pub async fn start_with(limits: Limits, grants: Grants) -> App {
        let root = Arc::new(Root(OnceLock::new()));
        let server = Server::new(root.clone());
        let host = Arc::new(Host::new(limits, 20000..=29999));
        let session = Session::new(Arc::clone(&host), server.clone(), grants);
        let _ = root.0.set(session.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        websocket::serve(listener, server.clone());
        let (client, events) =
            Client::connect(format!("ws://{addr}/v1/rope"), ClientConfig::default()).await.expect("connect");
        App { host, client, events, session, server }
    }

    /// Calls `method` on `target` (or the root) with JSON params.
    pub async fn call(
        &self,
        target: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        let params = Value::serialized(&params).expect("params");
        let answer = self.client.call(method, target, params).await?;
        Ok(answer.deserialized().expect("JSON answer"))
    }

    /// Like [`App::call`], panicking on an error.
    pub async fn ok(&self, target: Option<&str>, method: &str, params: serde_json::Value) -> serde_json::Value {
        match self.call(target, method, params).await {
            Ok(answer) => answer,
            Err(error) => panic!("{method} on {target:?} failed: {error}"),
        }
    }

    /// A new worker's id.
    pub async fn worker(&self) -> String {
        let answer = self.ok(None, "mediasoup.createWorker", json!({ "logLevel": "warn" })).await;
        answer["id"].as_str().expect("worker id").to_owned()
    }

    /// A new router (opus + VP8 + H264) on a new worker: (worker id, router answer).
    pub async fn router(&self) -> (String, serde_json::Value) {
        let worker = self.worker().await;
        let router = self.ok(Some(&worker), "createRouter", json!({ "mediaCodecs": media_codecs() })).await;
        (worker, router)
    }

    /// The next event of `object` named `name` within 5 s (others are skipped).
    pub async fn event(&mut self, object: &str, name: &str) -> Event {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {name} event of {object} within 5 s"))
                .expect("events open");
            if let ClientEvent::Object(event) = next
                && event.object == object
                && event.name.as_str() == name
            {
                return event;
            }
        }
    }
}

/// The codecs mediasoup's own tests give their routers.
pub fn media_codecs() -> serde_json::Value {
    json!([
        { "kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2,
          "parameters": { "useinbandfec": 1, "foo": "bar" } },
        { "kind": "video", "mimeType": "video/VP8", "clockRate": 90000 },
        { "kind": "video", "mimeType": "video/H264", "clockRate": 90000,
          "parameters": { "level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "4d0032" } }
    ])
}

impl App {
    /// A new router on a new worker: (worker id, router id).
    pub async fn router_id(&self) -> (String, String) {
        let (worker, router) = self.router().await;
        (worker, router["id"].as_str().expect("router id").to_owned())
    }

    /// The state of `object` in the client's mirror (`Null` when absent).
    pub fn state(&self, object: &str) -> serde_json::Value {
        self.client
            .mirror()
            .into_iter()
            .find(|entry| entry.id == object)
            .and_then(|entry| entry.state.deserialized().ok())
            .unwrap_or_default()
    }

    /// The arguments (JSON) of the next event of `object` named `name`.
    pub async fn event_args(&mut self, object: &str, name: &str) -> serde_json::Value {
        let event = self.event(object, name).await;
        event.data.deserialized().expect("JSON event data")
    }

    /// The error class (`data.name`) `method` on `target` fails with.
    pub async fn refusal(&self, target: Option<&str>, method: &str, params: serde_json::Value) -> RpcError {
        match self.call(target, method, params.clone()).await {
            Ok(answer) => panic!("{method} {params} on {target:?} answered {answer}"),
            Err(error) => rpc(error),
        }
    }
}

/// A port free on 127.0.0.1 now (UDP or TCP).
pub fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|socket| socket.local_addr()).expect("free UDP port").port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free TCP port")
            .port()
    }
}

impl App {
    /// Waits (5 s) for a `closed` event of each of `objects`, in any order.
    pub async fn closed_all(&mut self, objects: &[&str]) {
        let mut waiting: Vec<&str> = objects.to_vec();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !waiting.is_empty() {
            let next = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no closed event of {waiting:?} within 5 s"))
                .expect("events open");
            if let ClientEvent::Object(event) = next
                && event.name.as_str() == "closed"
            {
                waiting.retain(|object| *object != event.object);
            }
        }
    }
}

impl App {
    /// The arguments of the next event of each of `names` of `object`, in
    /// any order (5 s; other events are skipped).
    pub async fn events_args(
        &mut self,
        object: &str,
        names: &[&str],
    ) -> std::collections::HashMap<String, serde_json::Value> {
        let mut found = std::collections::HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while found.len() < names.len() {
            let next = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("not all of {names:?} of {object} within 5 s, just {found:?}"))
                .expect("events open");
            if let ClientEvent::Object(event) = next
                && event.object == object
                && names.contains(&event.name.as_str())
                && !found.contains_key(event.name.as_str())
            {
                let args: serde_json::Value = event.data.deserialized().expect("JSON event data");
                found.insert(event.name.as_str().to_owned(), args);
            }
        }
        found
    }
}

/// An event's data as JSON.
pub fn data(event: &Event) -> serde_json::Value {
    event.data.deserialized().expect("JSON event data")
}

/// The id in an answer.
pub fn id(answer: &serde_json::Value) -> String {
    answer["id"].as_str().expect("an id").to_owned()
}

impl App {
    /// A router with `codecs` on a new worker: (worker id, router id).
    pub async fn router_with(&self, codecs: serde_json::Value) -> (String, String) {
        let worker = self.worker().await;
        let router = self.ok(Some(&worker), "createRouter", json!({ "mediaCodecs": codecs })).await;
        (worker, id(&router))
    }

    /// A new transport of router `router` (`method` is `createWebRtcTransport`, …): its answer.
    pub async fn transport(&self, router: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.ok(Some(router), method, params).await
    }

    /// The error class (`data.name`) and code a failing call answers.
    pub async fn refused(&self, target: Option<&str>, method: &str, params: serde_json::Value) -> (String, i64) {
        let error = rpc(self.call(target, method, params.clone()).await.expect_err("refused"));
        (class(&error), error.code)
    }
}
