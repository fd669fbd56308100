//! ROPE messages: JSON-RPC 2.0 requests, responses and notifications, plus the
//! two notifications ROPE adds, object events (`rope.event`) and the state
//! snapshot sent on connect (`rope.snapshot`).
//!
//! Every message travels as one JSON-RPC 2.0 object (see `PROTOCOL.md`), so a
//! plain JSON-RPC client can read all of it. [`Message`] is the typed view; the
//! codecs convert through a single wire struct so CBOR and JSON cannot diverge.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{ErrorCode, RpcError};

/// A dynamic value: parameters, results, object state. CBOR-native; in JSON,
/// byte strings become arrays of numbers and map keys must be strings.
pub type Value = ciborium::Value;

/// Method name of object events.
pub const EVENT_METHOD: &str = "rope.event";
/// Method name of the snapshot sent on connect.
pub const SNAPSHOT_METHOD: &str = "rope.snapshot";
/// Longest method name or object id accepted.
pub const MAX_NAME_LEN: usize = 256;

/// A request id: a number (what this crate sends) or a string (allowed by JSON-RPC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// Numeric id.
    Number(u64),
    /// Text id.
    Text(String),
}

/// Identifier of a remote object (e.g. a router or a transport id).
pub type ObjectId = String;

/// A call: `method` on the object `target` (or on the server itself).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Correlates the response.
    pub id: RequestId,
    /// Dotted method path, e.g. `router.createPipeTransport`.
    pub method: String,
    /// The object called, if not the server itself.
    pub target: Option<ObjectId>,
    /// Parameters (`Null` when none).
    pub params: Value,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The request's id (`None` only when the request was too broken to have one).
    pub id: Option<RequestId>,
    /// The result, or the error.
    pub outcome: Result<Value, RpcError>,
}

/// A one-way message with no answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Dotted method path.
    pub method: String,
    /// Parameters.
    pub params: Value,
}

/// What happened to an object.
///
/// On the wire a lower-case name: `created`, `changed`, `closed`, or any other
/// name for one of the object's own events ([`EventKind::Named`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The object now exists; `data` is its state.
    Created,
    /// The object is gone.
    Closed,
    /// The object's state changed; `data` is the new state.
    Changed,
    /// One of the object's own events (e.g. mediasoup's `score`); `data` is
    /// its arguments. It does not change the mirror.
    Named(String),
}

impl EventKind {
    /// The name on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Created => "created",
            Self::Closed => "closed",
            Self::Changed => "changed",
            Self::Named(name) => name,
        }
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(serde::de::Error::custom("event name must be 1 to 256 characters"));
        }
        Ok(match name.as_str() {
            "created" => Self::Created,
            "closed" => Self::Closed,
            "changed" => Self::Changed,
            _ => Self::Named(name),
        })
    }
}

/// An object lifecycle or state event, broadcast to every client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The object.
    pub object: ObjectId,
    /// Its type, e.g. `router`.
    #[serde(rename = "objectType")]
    pub object_type: String,
    /// What happened.
    pub name: EventKind,
    /// The object's state after the event (`Null` for closed).
    pub data: Value,
}

/// One object as a snapshot lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectState {
    /// The object.
    pub id: ObjectId,
    /// Its type.
    #[serde(rename = "objectType")]
    pub object_type: String,
    /// Its state.
    pub state: Value,
}

/// Every object a client may see, sent when it connects.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The objects, in creation order.
    pub objects: Vec<ObjectState>,
}

/// Any ROPE message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call.
    Request(Request),
    /// An answer.
    Response(Response),
    /// A one-way message.
    Notification(Notification),
    /// An object event.
    Event(Event),
    /// The state on connect.
    Snapshot(Snapshot),
}

/// The one shape every message has on the wire (a JSON-RPC 2.0 object).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    jsonrpc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<RequestId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<RpcError>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn to_value<T: Serialize>(value: &T) -> Value {
    Value::serialized(value).unwrap_or(Value::Null)
}

impl Wire {
    pub(crate) fn id_ref(&self) -> Option<&RequestId> {
        self.id.as_ref()
    }
}

impl From<&Message> for Wire {
    fn from(message: &Message) -> Self {
        let mut wire = Wire {
            jsonrpc: "2.0".to_owned(),
            id: None,
            method: None,
            target: None,
            params: None,
            result: None,
            error: None,
        };
        match message {
            Message::Request(request) => {
                wire.id = Some(request.id.clone());
                wire.method = Some(request.method.clone());
                wire.target = request.target.clone();
                wire.params = Some(request.params.clone());
            }
            Message::Response(response) => {
                wire.id = response.id.clone();
                match &response.outcome {
                    Ok(result) => wire.result = Some(result.clone()),
                    Err(error) => wire.error = Some(error.clone()),
                }
            }
            Message::Notification(notification) => {
                wire.method = Some(notification.method.clone());
                wire.params = Some(notification.params.clone());
            }
            Message::Event(event) => {
                wire.method = Some(EVENT_METHOD.to_owned());
                wire.params = Some(to_value(event));
            }
            Message::Snapshot(snapshot) => {
                wire.method = Some(SNAPSHOT_METHOD.to_owned());
                wire.params = Some(to_value(snapshot));
            }
        }
        wire
    }
}

impl TryFrom<Wire> for Message {
    type Error = RpcError;

    /// Classifies a wire object, or says why it is not a valid message
    /// (−32600, carrying the request id when there is one).
    fn try_from(wire: Wire) -> Result<Self, RpcError> {
        let invalid = |reason: &str| RpcError::new(ErrorCode::InvalidRequest, reason);
        if wire.jsonrpc != "2.0" {
            return Err(invalid("jsonrpc must be \"2.0\""));
        }
        if let Some(RequestId::Text(text)) = &wire.id
            && text.len() > MAX_NAME_LEN
        {
            return Err(invalid("request id too long"));
        }
        for name in [&wire.method, &wire.target].into_iter().flatten() {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(invalid("method and target must be 1 to 256 characters"));
            }
        }
        match (wire.id, wire.method, wire.result, wire.error) {
            (Some(id), Some(method), None, None) => Ok(Message::Request(Request {
                id,
                method,
                target: wire.target,
                params: wire.params.unwrap_or(Value::Null),
            })),
            (id, None, Some(result), None) if wire.params.is_none() => {
                Ok(Message::Response(Response { id, outcome: Ok(result) }))
            }
            (id, None, None, Some(error)) if wire.params.is_none() => {
                Ok(Message::Response(Response { id, outcome: Err(error) }))
            }
            (None, Some(method), None, None) => {
                let params = wire.params.unwrap_or(Value::Null);
                match method.as_str() {
                    EVENT_METHOD => params.deserialized().map(Message::Event).map_err(|_| invalid("malformed event")),
                    SNAPSHOT_METHOD => {
                        params.deserialized().map(Message::Snapshot).map_err(|_| invalid("malformed snapshot"))
                    }
                    _ => Ok(Message::Notification(Notification { method, params })),
                }
            }
            _ => Err(invalid("not a request, response or notification")),
        }
    }
}

impl Message {
    /// The request id this message carries, if any (for error responses).
    pub fn request_id(&self) -> Option<&RequestId> {
        match self {
            Message::Request(request) => Some(&request.id),
            Message::Response(response) => response.id.as_ref(),
            _ => None,
        }
    }
}

impl Response {
    /// A successful answer to `id`.
    pub fn ok(id: RequestId, result: Value) -> Self {
        Self { id: Some(id), outcome: Ok(result) }
    }

    /// A failed answer to `id`.
    pub fn err(id: Option<RequestId>, error: RpcError) -> Self {
        Self { id, outcome: Err(error) }
    }
}
