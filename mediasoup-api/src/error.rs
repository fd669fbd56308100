//! Errors of mediasoup calls, each carrying the class mediasoup's Node API
//! throws so a client can rethrow the same one (see `PROTOCOL.md`, Errors).

use mafalda_rope::{ErrorCode, RpcError, Value};

/// ROPE code of mediasoup's `InvalidStateError`: the object (or its worker) is closed.
pub const INVALID_STATE: i64 = -32030;
/// ROPE code of mediasoup's `UnsupportedError`.
pub const UNSUPPORTED: i64 = -32031;
/// ROPE code of any other error mediasoup refuses a call with (`Error`).
pub const MEDIASOUP_ERROR: i64 = -32032;
/// ROPE code for "this connection already holds the most objects it may".
pub const LIMIT_REACHED: i64 = -32004;
/// ROPE code for "this takes a token this connection did not present".
pub const FORBIDDEN: i64 = -32003;

/// Why a mediasoup call failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ApiError {
    /// Wrong options or parameters (mediasoup's `TypeError`).
    #[error("{0}")]
    Type(String),
    /// The object or its worker is closed (`InvalidStateError`).
    #[error("{0}")]
    InvalidState(String),
    /// Something the worker does not support (`UnsupportedError`).
    #[error("{0}")]
    Unsupported(String),
    /// Anything else mediasoup refuses (`Error`).
    #[error("{0}")]
    Mediasoup(String),
    /// No object of this connection has this id.
    #[error("object {0} not found")]
    NotFound(String),
    /// The method does not exist on this object.
    #[error("unknown method {0}")]
    UnknownMethod(String),
    /// The connection lacks the token the node requires for this.
    #[error("{0}")]
    Forbidden(String),
    /// The connection holds the most objects of this kind it may.
    #[error("{0}")]
    LimitReached(String),
    /// What another node answered a call forwarded to it, passed on as it
    /// came (its code and class included).
    #[error("{}", .0.message)]
    Forwarded(RpcError),
}

impl ApiError {
    /// The mediasoup class a client rethrows.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Type(_) => "TypeError",
            Self::InvalidState(_) => "InvalidStateError",
            Self::Unsupported(_) => "UnsupportedError",
            Self::Mediasoup(_) | Self::NotFound(_) | Self::UnknownMethod(_) | Self::Forbidden(_) => "Error",
            Self::LimitReached(_) => "Error",
            Self::Forwarded(_) => "Error",
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::Type(_) => ErrorCode::InvalidParams,
            Self::InvalidState(_) => ErrorCode::Application(INVALID_STATE),
            Self::Unsupported(_) => ErrorCode::Application(UNSUPPORTED),
            Self::Mediasoup(_) => ErrorCode::Application(MEDIASOUP_ERROR),
            Self::NotFound(_) => ErrorCode::ObjectNotFound,
            Self::UnknownMethod(_) => ErrorCode::MethodNotFound,
            Self::Forbidden(_) => ErrorCode::Application(FORBIDDEN),
            Self::LimitReached(_) => ErrorCode::Application(LIMIT_REACHED),
            Self::Forwarded(error) => ErrorCode::from_code(error.code),
        }
    }

    /// A `TypeError` for a wrong option.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Type(message.into())
    }

    /// An `InvalidStateError` for a closed object.
    pub fn closed(what: &str) -> Self {
        Self::InvalidState(format!("{what} closed"))
    }

    /// Classifies an error the mediasoup crate answered with: a closed channel
    /// is a closed object; the worker's own refusals say in their text whether
    /// the arguments were wrong.
    pub fn from_mediasoup(error: &dyn std::error::Error) -> Self {
        let text = error.to_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("channel already closed") || lower.contains("closed") && lower.contains("channel") {
            Self::InvalidState(text)
        } else if lower.contains("typeerror") || lower.contains("invalid") || lower.contains("wrong") {
            Self::Type(text)
        } else if lower.contains("unsupported") || lower.contains("not supported") || lower.contains("no compatible") {
            Self::Unsupported(text)
        } else {
            Self::Mediasoup(text)
        }
    }
}

impl From<ApiError> for RpcError {
    fn from(error: ApiError) -> Self {
        if let ApiError::Forwarded(error) = error {
            return error;
        }
        let class = error.class();
        let mut data = std::collections::BTreeMap::new();
        data.insert("name".to_owned(), class);
        let mut rpc = RpcError::new(error.code(), error.to_string());
        rpc.data = Value::serialized(&data).ok();
        rpc
    }
}
