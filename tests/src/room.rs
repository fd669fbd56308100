//! An app in a room, as the room tests drive it over a node's `/v1/rope`:
//! join, publish RTP through a plain transport, consume into a UDP socket,
//! and read the room object's state from the app's own mirror.

use std::net::SocketAddr;
use std::time::Duration;

use mafalda_rope::{CallError, Client, ClientConfig, ClientEvent};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::media::LOOPBACK;
use crate::rope::call_json;
use crate::swarm::eventually;

/// The Opus payload type the room tests produce with.
pub const OPUS_PT: u8 = 100;

/// One app connection at one node.
pub struct RoomApp {
    /// The ROPE client.
    pub client: Client,
    /// Its events (kept so the client keeps its mirror).
    pub events: mpsc::Receiver<ClientEvent>,
}

/// A producer the app makes from RTP it sends itself.
pub struct PlainProducer {
    /// The room's id for it.
    pub id: String,
    /// Where to send its RTP.
    pub target: SocketAddr,
}

/// A consumer whose RTP arrives at `socket`.
pub struct PlainConsumer {
    /// Its id.
    pub id: String,
    /// The answer of `consume`.
    pub answer: Value,
    /// Where its RTP arrives.
    pub socket: UdpSocket,
    /// The SSRC and payload type it sends with.
    pub ssrc: u32,
    /// The payload type it sends with.
    pub payload_type: u8,
}

impl RoomApp {
    /// Connects to the node whose API is at `api`.
    pub async fn connect(api: SocketAddr) -> Self {
        Self::resume(api, None).await
    }

    /// Connects to the node whose API is at `api`, resuming session `token` if given.
    pub async fn resume(api: SocketAddr, token: Option<&str>) -> Self {
        let mut url = format!("ws://{api}/v1/rope?format=json");
        if let Some(token) = token {
            url.push_str(&format!("&session={token}"));
        }
        let (client, events) = Client::connect(url, ClientConfig::default()).await.expect("connect over ROPE");
        Self { client, events }
    }

    /// The app session's token (the node's `session` object).
    pub fn session_token(&self) -> String {
        let session = self.client.mirror().into_iter().find(|object| object.id == "session").expect("a session object");
        let state: Value = session.state.deserialized().expect("JSON state");
        state["token"].as_str().expect("token").to_owned()
    }

    /// Calls `method` on `target`, panicking on an error answer.
    pub async fn ok(&self, target: Option<&str>, method: &str, params: Value) -> Value {
        self.call(target, method, params).await.unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    /// Calls `method` on `target`.
    pub async fn call(&self, target: Option<&str>, method: &str, params: Value) -> Result<Value, CallError> {
        call_json(&self.client, target, method, params).await
    }

    /// Joins `room`; answers the room's view.
    pub async fn join(&self, room: &str) -> Value {
        self.ok(None, "room.join", json!({ "room": room })).await
    }

    /// The room object's state in the app's mirror (`None` if it has none).
    pub fn room(&self, room: &str) -> Option<Value> {
        let id = format!("room:{room}");
        let object = self.client.mirror().into_iter().find(|object| object.id == id)?;
        object.state.deserialized().ok()
    }

    /// The ids of the room's producers, as the app's mirror shows them.
    pub fn producer_ids(&self, room: &str) -> Vec<String> {
        self.room(room)
            .and_then(|state| state["producers"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|producer| producer["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until the app sees `check` hold for the room's state.
    pub async fn sees(&self, room: &str, within: Duration, check: impl Fn(&Value) -> bool) -> bool {
        eventually(within, || async { self.room(room).is_some_and(|state| check(&state)) }).await
    }

    /// Whether object `id` is in the app's mirror.
    pub fn has_object(&self, id: &str) -> bool {
        self.client.mirror().iter().any(|object| object.id == id)
    }

    /// A plain transport (comedia) in `room` and an Opus producer on it with `ssrc`.
    pub async fn produce_opus(&self, room: &str, ssrc: u32) -> PlainProducer {
        let target = format!("room:{room}");
        let transport =
            self.ok(Some(&target), "createPlainTransport", json!({ "comedia": true, "rtcpMux": true })).await;
        let transport_id = transport["id"].as_str().expect("transport id").to_owned();
        let port = transport["tuple"]["localPort"].as_u64().expect("local port");
        let producer = self
            .ok(
                Some(&transport_id),
                "produce",
                json!({ "kind": "audio", "rtpParameters": opus_parameters(ssrc), "appData": { "who": "test" } }),
            )
            .await;
        let id = producer["id"].as_str().expect("producer id").to_owned();
        let target = SocketAddr::new(LOOPBACK, u16::try_from(port).expect("port"));
        PlainProducer { id, target }
    }

    /// A plain transport in `room` sending to a new UDP socket, and a
    /// consumer of room producer `producer` on it.
    pub async fn consume_plain(&self, room: &str, producer: &str) -> Result<PlainConsumer, CallError> {
        let state = self.room(room).expect("in the room");
        let target = format!("room:{room}");
        let transport =
            self.ok(Some(&target), "createPlainTransport", json!({ "comedia": false, "rtcpMux": true })).await;
        let transport_id = transport["id"].as_str().expect("transport id").to_owned();
        let socket = UdpSocket::bind((LOOPBACK, 0)).await.expect("bind a receiving socket");
        let port = socket.local_addr().expect("addr").port();
        self.ok(Some(&transport_id), "connect", json!({ "ip": "127.0.0.1", "port": port })).await;
        let answer = self
            .call(
                Some(&transport_id),
                "consume",
                json!({ "producerId": producer, "rtpCapabilities": state["rtpCapabilities"] }),
            )
            .await?;
        let id = answer["id"].as_str().expect("consumer id").to_owned();
        let ssrc = answer["rtpParameters"]["encodings"][0]["ssrc"].as_u64().expect("ssrc");
        let payload_type = answer["rtpParameters"]["codecs"][0]["payloadType"].as_u64().expect("payload type");
        Ok(PlainConsumer {
            id,
            answer,
            socket,
            ssrc: u32::try_from(ssrc).expect("ssrc"),
            payload_type: u8::try_from(payload_type).expect("payload type"),
        })
    }
}

/// Opus RTP parameters as mediasoup's Node API writes them.
pub fn opus_parameters(ssrc: u32) -> Value {
    json!({
        "codecs": [{ "mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000, "channels": 2,
                     "parameters": {}, "rtcpFeedback": [] }],
        "encodings": [{ "ssrc": ssrc }],
        "headerExtensions": [],
        "rtcp": { "cname": "room-test", "reducedSize": true }
    })
}
