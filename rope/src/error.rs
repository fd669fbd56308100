//! Error codes and errors of the ROPE crate.

use serde::{Deserialize, Serialize};

use crate::message::Value;

/// JSON-RPC 2.0 codes, and ROPE's application codes (−32000 … −32099 are
/// reserved by JSON-RPC for implementations; ROPE uses them for its own errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// −32700: the bytes are not CBOR/JSON.
    ParseError,
    /// −32600: not a valid ROPE message.
    InvalidRequest,
    /// −32601: no such method (or object).
    MethodNotFound,
    /// −32602: the parameters do not fit the method.
    InvalidParams,
    /// −32603: the server failed.
    InternalError,
    /// −32000: the server is too busy to take the call.
    Busy,
    /// −32001: the target object does not exist (any more).
    ObjectNotFound,
    /// −32002: the message is larger than the limit.
    MessageTooLarge,
    /// Any other application code.
    Application(i64),
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            Self::ParseError => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams => -32602,
            Self::InternalError => -32603,
            Self::Busy => -32000,
            Self::ObjectNotFound => -32001,
            Self::MessageTooLarge => -32002,
            Self::Application(code) => code,
        }
    }

    /// The code for a number.
    pub fn from_code(code: i64) -> Self {
        match code {
            -32700 => Self::ParseError,
            -32600 => Self::InvalidRequest,
            -32601 => Self::MethodNotFound,
            -32602 => Self::InvalidParams,
            -32603 => Self::InternalError,
            -32000 => Self::Busy,
            -32001 => Self::ObjectNotFound,
            -32002 => Self::MessageTooLarge,
            other => Self::Application(other),
        }
    }
}

/// A JSON-RPC error object: a stable code, a message for people, optional data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("ROPE error {code}: {message}")]
pub struct RpcError {
    /// The numeric code (see [`ErrorCode`]).
    pub code: i64,
    /// What went wrong.
    pub message: String,
    /// Details, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code: code.code(), message: message.into(), data: None }
    }

    /// The same error carrying `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The code as an [`ErrorCode`].
    pub fn kind(&self) -> ErrorCode {
        ErrorCode::from_code(self.code)
    }
}
