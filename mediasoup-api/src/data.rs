//! Data producers: `produceData` on a transport, their record in the session,
//! and the calls on them (messages travel as base64 with their SCTP PPID).
//! Data consumers are in `data_consumer`, re-exported here ([`consume_data`],
//! [`adopt_consumer`], [`call_consumer`]) for the transport, router and
//! session modules.

use std::borrow::Cow;

use mafalda_media::mediasoup::prelude::{
    DataProducer, DataProducerId, DataProducerOptions, SctpStreamParameters, WebRtcMessage,
};
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(crate) use crate::data_consumer::{adopt_consumer, call_consumer, consume_data};
use crate::error::ApiError;
use crate::options::check_app_data;
use crate::rtp::{drop_nulls, dump_out, produce_data_error, request_error};
use crate::session::{Object, Session};
use crate::transport::AnyTransport;
use crate::wire::{bytes, null, params, to_json, to_value};

/// mediasoup's `SctpStreamParameters` as the Node API writes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SctpStreamWire {
    stream_id: u16,
    ordered: Option<bool>,
    max_packet_life_time: Option<u16>,
    max_retransmits: Option<u16>,
}

impl SctpStreamWire {
    /// mediasoup's rules: not both limits; ordered only without them; unordered by default with one.
    fn into_parameters(self) -> Result<SctpStreamParameters, ApiError> {
        if self.stream_id > 65534 {
            return Err(ApiError::invalid("streamId must not be greater than 65534"));
        }
        Ok(match (self.max_packet_life_time, self.max_retransmits) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid("cannot provide both maxPacketLifeTime and maxRetransmits"));
            }
            (None, None) => {
                let mut parameters = SctpStreamParameters::new_ordered(self.stream_id);
                parameters.ordered = self.ordered.unwrap_or(true);
                parameters
            }
            _ if self.ordered == Some(true) => {
                return Err(ApiError::invalid("cannot be ordered with maxPacketLifeTime or maxRetransmits"));
            }
            (Some(life_time), None) => SctpStreamParameters::new_unordered_with_life_time(self.stream_id, life_time),
            (None, Some(retransmits)) => {
                SctpStreamParameters::new_unordered_with_retransmits(self.stream_id, retransmits)
            }
        })
    }
}

/// mediasoup's `DataProducerOptions` as the Node API writes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProduceDataWire {
    id: Option<String>,
    sctp_stream_parameters: Option<SctpStreamWire>,
    label: Option<String>,
    protocol: Option<String>,
    paused: Option<bool>,
    app_data: Option<serde_json::Value>,
}

/// A subchannel as mediasoup's Node API sends it to the worker: a uint16, wrapping.
pub(crate) fn subchannel(value: i64) -> u16 {
    u16::try_from(value.rem_euclid(65536)).unwrap_or_default()
}

/// A data producer's ROPE state.
#[derive(Serialize)]
struct DataProducerState {
    paused: bool,
}

/// `transport.produceData(options)`: makes the data producer, records it
/// under the transport, answers its DataProducerData.
pub(crate) async fn produce_data(
    session: &Session,
    transport_id: &str,
    transport: &AnyTransport,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let wire: ProduceDataWire = params(params_value)?;
    check_app_data(wire.app_data.as_ref())?;
    let sctp = wire.sctp_stream_parameters.map(SctpStreamWire::into_parameters).transpose()?;
    let id = wire
        .id
        .map(|id| id.parse::<DataProducerId>().map_err(|_| ApiError::invalid("id is not a mediasoup id (UUID)")))
        .transpose()?;
    let mut options = match (id, sctp, transport.is_direct()) {
        // The crate takes an id only with stream parameters (a direct transport ignores them).
        (Some(id), sctp, _) => {
            DataProducerOptions::new_pipe_transport(id, sctp.unwrap_or(SctpStreamParameters::new_ordered(0)))
        }
        (None, _, true) => DataProducerOptions::new_direct(),
        (None, Some(sctp), false) => DataProducerOptions::new_sctp(sctp),
        (None, None, false) => return Err(ApiError::invalid("missing sctpStreamParameters")),
    };
    options.label = wire.label.unwrap_or_default();
    options.protocol = wire.protocol.unwrap_or_default();
    options.paused = wire.paused.unwrap_or(false);
    session.check_cap("dataProducer")?;
    let producer = transport.as_transport().produce_data(options).await.map_err(|e| produce_data_error(&e))?;
    to_value(&adopt_producer(session, transport_id, producer)?)
}

/// The data mediasoup's Node `DataProducer` holds (`PROTOCOL.md`, DataProducerData).
fn producer_data(producer: &DataProducer) -> serde_json::Value {
    let mut data = json!({
        "id": producer.id().to_string(),
        "type": producer.r#type(),
        "sctpStreamParameters": producer.sctp_stream_parameters(),
        "label": producer.label(),
        "protocol": producer.protocol(),
        "paused": producer.paused(),
    });
    drop_nulls(&mut data);
    data
}

/// Records a data producer made under `parent`; answers its DataProducerData.
pub(crate) fn adopt_producer(
    session: &Session,
    parent: &str,
    producer: DataProducer,
) -> Result<serde_json::Value, ApiError> {
    // A pipe producer keeps its producer's id: then its ROPE id differs.
    let id = session.object_id_for(&producer.id().to_string(), parent);
    let on_close = {
        let (weak, id) = (session.weak(), id.clone());
        producer.on_close(move || weak.forget(&id))
    };
    let mut data = producer_data(&producer);
    if data["id"].as_str() != Some(id.as_str()) {
        data["objectId"] = json!(id);
    }
    let state = DataProducerState { paused: producer.paused() };
    session.insert(&id, Some(parent), Object::DataProducer(producer), &state, vec![on_close])?;
    Ok(data)
}

/// A message to send: base64 payload and mediasoup's PPID.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendWire {
    message: String,
    ppid: Option<u32>,
    subchannels: Option<Vec<i64>>,
    required_subchannel: Option<i64>,
}

impl SendWire {
    /// The message (PPID 51 string, 53 binary, 56/57 empty ones; binary when not given).
    pub(crate) fn message(&self) -> Result<WebRtcMessage<'static>, ApiError> {
        let payload = bytes(&self.message)?;
        let ppid = self.ppid.unwrap_or(if payload.is_empty() { 57 } else { 53 });
        WebRtcMessage::new(ppid, Cow::Owned(payload))
            .map_err(|ppid| ApiError::invalid(format!("invalid ppid {ppid} (51, 53, 56 or 57)")))
    }
}

/// The calls on a data producer.
pub(crate) async fn call_producer(
    session: &Session,
    id: &str,
    producer: &DataProducer,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    if producer.closed() {
        return Err(ApiError::closed("DataProducer"));
    }
    let failed = |error: mafalda_media::mediasoup::worker::RequestError| request_error(&error, "DataProducer");
    match method {
        "pause" | "resume" => {
            if method == "pause" {
                producer.pause().await.map_err(failed)?;
            } else {
                producer.resume().await.map_err(failed)?;
            }
            session.set_state(id, &DataProducerState { paused: producer.paused() });
            null()
        }
        "getStats" => {
            let stats = producer.get_stats().await.map_err(failed)?;
            let stats: Vec<serde_json::Value> =
                stats.iter().map(|stat| crate::rtp::stat_out(to_json(stat), "data-producer")).collect();
            to_value(&stats)
        }
        "dump" => to_value(&dump_out(to_json(&producer.dump().await.map_err(failed)?))),
        "send" => {
            let wire: SendWire = params(params_value)?;
            let message = wire.message()?;
            let subchannels = wire.subchannels.map(|subchannels| subchannels.into_iter().map(subchannel).collect());
            let required = wire.required_subchannel.map(subchannel);
            match producer {
                DataProducer::Direct(direct) => {
                    direct
                        .send(message, subchannels, required, None)
                        .map_err(|e| ApiError::closed(&format!("DataProducer ({e})")))?;
                    null()
                }
                _ => Err(ApiError::invalid("send() is just for data producers of a DirectTransport")),
            }
        }
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}
