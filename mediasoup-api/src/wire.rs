//! Values on the wire: params into typed options (a `TypeError` when they do
//! not fit), answers into ROPE values, binary payloads as base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mafalda_rope::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Reads `params` as `T`; `null` reads as an empty map so every field may default.
pub(crate) fn params<T: DeserializeOwned>(params: &Value) -> Result<T, ApiError> {
    let json: serde_json::Value =
        params.deserialized().map_err(|e| ApiError::invalid(format!("unreadable params: {e}")))?;
    let json = if json.is_null() { serde_json::Value::Object(serde_json::Map::new()) } else { json };
    serde_json::from_value(json).map_err(|e| ApiError::invalid(e.to_string()))
}

/// An answer as a ROPE value (through JSON, so it reads the same in CBOR and JSON).
pub(crate) fn to_value<T: Serialize + ?Sized>(answer: &T) -> Result<Value, ApiError> {
    let json = serde_json::to_value(answer).map_err(|e| ApiError::Mediasoup(e.to_string()))?;
    Value::serialized(&json).map_err(|e| ApiError::Mediasoup(e.to_string()))
}

/// An answer as JSON (for events and for reshaping mediasoup's dumps).
pub(crate) fn to_json<T: Serialize + ?Sized>(answer: &T) -> serde_json::Value {
    serde_json::to_value(answer).unwrap_or(serde_json::Value::Null)
}

/// Decodes a base64 payload.
pub(crate) fn bytes(base64: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD.decode(base64).map_err(|e| ApiError::invalid(format!("payload is not base64: {e}")))
}

/// Encodes a payload as base64.
pub(crate) fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `null` as a ROPE value.
pub(crate) fn null() -> Result<Value, ApiError> {
    Ok(Value::Null)
}
