//! The ROPE messages nodes exchange over request-response.
//!
//! Provisional shapes until the ROPE crate's message model is plugged in here;
//! the swarm only needs them to be serde types.

use serde::{Deserialize, Serialize};

/// A ROPE call from one node to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeRequest {
    /// Dotted method path, e.g. `stream.describe`.
    pub method: String,
    /// Parameters.
    pub params: ciborium::Value,
}

/// The answer to a [`RopeRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RopeResponse {
    /// The call succeeded.
    Result(ciborium::Value),
    /// The call failed with a JSON-RPC style code and message.
    Error {
        /// Error code (−32603 internal, −32000 busy, ...).
        code: i64,
        /// Human-readable message.
        message: String,
    },
}

impl RopeResponse {
    /// An error answer.
    pub fn error(code: i64, message: impl Into<String>) -> Self {
        Self::Error { code, message: message.into() }
    }
}

/// Error code the swarm answers with when the node cannot take more calls.
pub const BUSY: i64 = -32000;
/// Error code the swarm answers an oversized or malformed request with.
pub const INVALID_REQUEST: i64 = -32600;
/// Error code the swarm answers with when the node dropped a call unanswered.
pub const INTERNAL: i64 = -32603;
