//! Producers and consumers: `produce` and `consume` on a transport, and the
//! calls on them.

use mafalda_media::mediasoup::prelude::{Consumer, Producer};
use mafalda_rope::Value;

use crate::error::ApiError;
use crate::session::Session;

/// Records a producer made under `parent` (a transport, or a router for
/// `pipeToRouter`); answers its ProducerData.
pub(crate) fn adopt_producer(
    _session: &Session,
    _parent: &str,
    _producer: Producer,
) -> Result<serde_json::Value, ApiError> {
    Err(ApiError::Unsupported("producers are not served yet".into()))
}

/// Records a consumer made under `parent`; answers its ConsumerData.
pub(crate) fn adopt_consumer(
    _session: &Session,
    _parent: &str,
    _consumer: Consumer,
) -> Result<serde_json::Value, ApiError> {
    Err(ApiError::Unsupported("consumers are not served yet".into()))
}

/// The calls on a producer.
pub(crate) async fn call_producer(_producer: &Producer, method: &str, _params: &Value) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod(method.to_owned()))
}

/// The calls on a consumer.
pub(crate) async fn call_consumer(_consumer: &Consumer, method: &str, _params: &Value) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod(method.to_owned()))
}

/// `transport.produce`: makes a producer on `transport` (id `transport_id`);
/// answers its ProducerData.
pub(crate) async fn produce(
    _session: &Session,
    _transport_id: &str,
    _transport: &crate::transport::AnyTransport,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod("produce".into()))
}

/// `transport.consume`: makes a consumer on `transport` (id `transport_id`);
/// answers its ConsumerData.
pub(crate) async fn consume(
    _session: &Session,
    _transport_id: &str,
    _transport: &crate::transport::AnyTransport,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod("consume".into()))
}
