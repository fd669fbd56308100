//! RTP observers (audio level, active speaker): their creation under a router
//! and the calls on them.

use mafalda_media::mediasoup::prelude::Router;
use mafalda_rope::Value;

use crate::error::ApiError;
use crate::session::{Object, Session};

/// `router.create*Observer`: makes the observer under router `router_id`; answers `{id}`.
pub(crate) async fn create(
    _session: &Session,
    _router_id: &str,
    _router: &Router,
    method: &str,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod(method.to_owned()))
}

/// The calls on an observer.
pub(crate) async fn call(
    _session: &Session,
    _id: &str,
    _observer: &Object,
    method: &str,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod(method.to_owned()))
}
