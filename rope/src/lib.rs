//! ROPE — Remote Objects, Procedures and Events.
//!
//! JSON-RPC 2.0 semantics between an application and a node, and between nodes:
//! requests, responses, notifications, and ROPE's object events and snapshots.
//! A [`Server`] holds a registry of typed objects whose methods clients call; on
//! connect it sends a snapshot of every object, then broadcasts each creation,
//! close and state change to every client. A [`Client`] keeps a mirror of those
//! objects, correlates calls with timeouts, and reconnects by itself, reconciling
//! its mirror from the new snapshot. Either side may call the other.
//!
//! Layout: [`message`] (the model), [`codec`] (CBOR and JSON, size-capped),
//! [`error`] (codes), `session` (one connection: correlation, dispatch, limits),
//! [`server`], [`client`], [`transport`] (the small trait and WebSocket).
//! `PROTOCOL.md` describes the wire for implementers in other languages.

pub mod client;
pub mod codec;
pub mod error;
pub mod message;
pub mod server;
mod session;
pub mod transport;

pub use client::{CallError, Client, ClientConfig, ClientEvent, ConnectError};
pub use server::{Handler, Peer, Server};

pub use error::{ErrorCode, RpcError};
pub use message::{
    Event, EventKind, Message, Notification, ObjectId, ObjectState, Request, RequestId, Response, Snapshot, Value,
};
