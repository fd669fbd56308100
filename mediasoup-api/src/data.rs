//! Data producers and data consumers: `produceData` and `consumeData` on a
//! transport, and the calls on them.

use mafalda_media::mediasoup::prelude::{DataConsumer, DataProducer};
use mafalda_rope::Value;

use crate::error::ApiError;
use crate::session::Session;

/// Records a data producer made under `parent`; answers its DataProducerData.
pub(crate) fn adopt_producer(
    _session: &Session,
    _parent: &str,
    _producer: DataProducer,
) -> Result<serde_json::Value, ApiError> {
    Err(ApiError::Unsupported("data producers are not served yet".into()))
}

/// Records a data consumer made under `parent`; answers its DataConsumerData.
pub(crate) fn adopt_consumer(
    _session: &Session,
    _parent: &str,
    _consumer: DataConsumer,
) -> Result<serde_json::Value, ApiError> {
    Err(ApiError::Unsupported("data consumers are not served yet".into()))
}

/// The calls on a data producer.
pub(crate) async fn call_producer(_producer: &DataProducer, method: &str, _params: &Value) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod(method.to_owned()))
}

/// The calls on a data consumer.
pub(crate) async fn call_consumer(
    _session: &Session,
    _id: &str,
    _consumer: &DataConsumer,
    method: &str,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod(method.to_owned()))
}

/// `transport.produceData`: makes a data producer on `transport` (id
/// `transport_id`); answers its DataProducerData.
pub(crate) async fn produce_data(
    _session: &Session,
    _transport_id: &str,
    _transport: &crate::transport::AnyTransport,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod("produceData".into()))
}

/// `transport.consumeData`: makes a data consumer on `transport` (id
/// `transport_id`); answers its DataConsumerData.
pub(crate) async fn consume_data(
    _session: &Session,
    _transport_id: &str,
    _transport: &crate::transport::AnyTransport,
    _params: &Value,
) -> Result<Value, ApiError> {
    Err(ApiError::UnknownMethod("consumeData".into()))
}
