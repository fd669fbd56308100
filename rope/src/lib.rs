//! ROPE — Remote Objects, Procedures and Events.
//!
//! JSON-RPC 2.0 semantics between an application and a node, and between nodes:
//! requests, responses, notifications and object events, encoded as CBOR or JSON.
//! Transport-agnostic: WebSocket and libp2p request-response adapt it.
//! (The protocol itself lands with its own issue; this crate reserves its place.)
