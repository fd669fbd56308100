//! Transports: WebRTC, plain, pipe and direct; their creation under a router
//! and the calls on them (`produce`, `consume`, `produceData` and
//! `consumeData` go to the producer and data modules).

use mafalda_media::mediasoup::prelude::Router;
use mafalda_rope::Value;

use crate::error::ApiError;
use crate::session::{Object, Session};

/// `router.create*Transport`: makes the transport, records it under router
/// `router_id`, answers its data (`PROTOCOL.md`).
pub(crate) async fn create(
    _session: &Session,
    _router_id: &str,
    _router: &Router,
    method: &str,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod(method.to_owned()))
}

/// The calls on a transport.
pub(crate) async fn call(
    _session: &Session,
    _id: &str,
    _transport: &Object,
    method: &str,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod(method.to_owned()))
}
