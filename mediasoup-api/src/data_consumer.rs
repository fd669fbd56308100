//! Data consumers: `consumeData` on a transport, their record in the session
//! (state and events: `dataproducerclose`, `dataproducerpause`,
//! `dataproducerresume`, `message`, `sctpsendbufferfull`,
//! `bufferedamountlow`), and the calls on them.

use std::borrow::Cow;

use mafalda_media::mediasoup::prelude::{DataConsumer, DataConsumerOptions, DataProducerId, WebRtcMessage};
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data::{SendWire, subchannel};
use crate::error::ApiError;
use crate::options::check_app_data;
use crate::producer::forget_later;
use crate::rtp::{consume_data_error, drop_nulls, dump_out, request_error};
use crate::session::{Object, Session};
use crate::transport::AnyTransport;
use crate::wire::{base64, null, params, to_json, to_value};

/// mediasoup's `DataConsumerOptions` as the Node API writes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsumeDataWire {
    data_producer_id: String,
    ordered: Option<bool>,
    max_packet_life_time: Option<u16>,
    max_retransmits: Option<u16>,
    paused: Option<bool>,
    subchannels: Option<Vec<i64>>,
    app_data: Option<serde_json::Value>,
}

/// A data consumer's ROPE state.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataConsumerState {
    paused: bool,
    data_producer_paused: bool,
    subchannels: Vec<u16>,
}

/// A data consumer's state now.
fn consumer_state(consumer: &DataConsumer) -> DataConsumerState {
    DataConsumerState {
        paused: consumer.paused(),
        data_producer_paused: consumer.producer_paused(),
        subchannels: consumer.subchannels(),
    }
}

/// `transport.consumeData(options)`: makes the data consumer, records it
/// under the transport, answers its DataConsumerData.
pub(crate) async fn consume_data(
    session: &Session,
    transport_id: &str,
    transport: &AnyTransport,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let wire: ConsumeDataWire = params(params_value)?;
    check_app_data(wire.app_data.as_ref())?;
    let not_found = || ApiError::invalid(format!("DataProducer with id \"{}\" not found", wire.data_producer_id));
    let producer_id: DataProducerId = wire.data_producer_id.parse().map_err(|_| not_found())?;
    if !matches!(session.get(&wire.data_producer_id), Ok(Object::DataProducer(_))) {
        return Err(not_found());
    }
    let mut options = match (wire.ordered, wire.max_packet_life_time, wire.max_retransmits) {
        (_, Some(_), Some(_)) => {
            return Err(ApiError::invalid("cannot provide both maxPacketLifeTime and maxRetransmits"));
        }
        (Some(true), _, _) => DataConsumerOptions::new_sctp_ordered(producer_id),
        (_, Some(life_time), None) => DataConsumerOptions::new_sctp_unordered_with_life_time(producer_id, life_time),
        (_, None, Some(retransmits)) => {
            DataConsumerOptions::new_sctp_unordered_with_retransmits(producer_id, retransmits)
        }
        // `ordered: false` alone keeps the data producer's reliability (the crate cannot say
        // "unordered without limits").
        (_, None, None) => DataConsumerOptions::new_sctp(producer_id),
    };
    options.paused = wire.paused.unwrap_or(false);
    options.subchannels = wire.subchannels.map(|subchannels| subchannels.into_iter().map(subchannel).collect());
    session.check_cap("dataConsumer")?;
    let consumer = transport.as_transport().consume_data(options).await.map_err(|e| consume_data_error(&e))?;
    to_value(&adopt_consumer(session, transport_id, consumer)?)
}

/// The data mediasoup's Node `DataConsumer` holds (`PROTOCOL.md`, DataConsumerData).
fn consumer_data(consumer: &DataConsumer) -> serde_json::Value {
    let mut data = json!({
        "id": consumer.id().to_string(),
        "dataProducerId": consumer.data_producer_id().to_string(),
        "type": consumer.r#type(),
        "sctpStreamParameters": consumer.sctp_stream_parameters(),
        "label": consumer.label(),
        "protocol": consumer.protocol(),
        "paused": consumer.paused(),
        "dataProducerPaused": consumer.producer_paused(),
        "subchannels": consumer.subchannels(),
        "bufferedAmountLowThreshold": 0,
    });
    drop_nulls(&mut data);
    data
}

/// Records a data consumer made under `parent`; answers its DataConsumerData.
pub(crate) fn adopt_consumer(
    session: &Session,
    parent: &str,
    consumer: DataConsumer,
) -> Result<serde_json::Value, ApiError> {
    let id = consumer.id().to_string();
    let weak = session.weak();
    let weak_consumer = consumer.downgrade();
    // The crate calls the data producer pause and resume handlers holding the
    // lock `producer_paused()` takes: the new value is the event's.
    let changed = {
        let (weak, id) = (weak.clone(), id.clone());
        move |name: &str, data_producer_paused: bool| {
            if let Some(consumer) = weak_consumer.upgrade() {
                let state = DataConsumerState {
                    paused: consumer.paused(),
                    data_producer_paused,
                    subchannels: consumer.subchannels(),
                };
                weak.set_state(&id, &state);
            }
            weak.emit(&id, name, vec![]);
        }
    };
    let mut handlers = Vec::new();
    // As for consumers: `dataproducerclose` comes first, its `closed` says why.
    let producer_closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (weak, id, producer_closed) = (weak.clone(), id.clone(), std::sync::Arc::clone(&producer_closed));
        handlers.push(consumer.on_close(move || {
            if producer_closed.load(std::sync::atomic::Ordering::Acquire) {
                weak.forget_because(&id, "dataproducerclose");
            } else {
                weak.forget(&id);
            }
        }));
    }
    {
        let (weak, id) = (weak.clone(), id.clone());
        let runtime = tokio::runtime::Handle::try_current().ok();
        handlers.push(consumer.on_data_producer_close(move || {
            producer_closed.store(true, std::sync::atomic::Ordering::Release);
            weak.emit(&id, "dataproducerclose", vec![]);
            forget_later(runtime.as_ref(), &weak, &id, "dataproducerclose");
        }));
    }
    {
        let changed = changed.clone();
        handlers.push(consumer.on_data_producer_pause(move || changed("dataproducerpause", true)));
    }
    handlers.push(consumer.on_data_producer_resume(move || changed("dataproducerresume", false)));
    {
        let (weak, id) = (weak.clone(), id.clone());
        handlers.push(consumer.on_message(move |message| {
            let (ppid, payload) = match message {
                // What mediasoup's Node API sends for an empty string (the crate says [0]).
                WebRtcMessage::EmptyString => (56, Cow::Borrowed(&b" "[..])),
                message => message.clone().into_ppid_and_payload(),
            };
            weak.emit(&id, "message", vec![json!(base64(&payload)), json!(ppid)]);
        }));
    }
    {
        let (weak, id) = (weak.clone(), id.clone());
        handlers.push(consumer.on_sctp_send_buffer_full(move || weak.emit(&id, "sctpsendbufferfull", vec![])));
    }
    {
        let (weak, id) = (weak, id.clone());
        handlers.push(
            consumer.on_buffered_amount_low(move |amount| weak.emit(&id, "bufferedamountlow", vec![json!(amount)])),
        );
    }
    let data = consumer_data(&consumer);
    let state = consumer_state(&consumer);
    session.insert(&id, Some(parent), Object::DataConsumer(consumer), &state, handlers)?;
    Ok(data)
}

/// `setBufferedAmountLowThreshold` params.
#[derive(Deserialize)]
struct ThresholdWire {
    threshold: u32,
}

/// `setSubchannels` params.
#[derive(Deserialize)]
struct SubchannelsWire {
    subchannels: Vec<i64>,
}

/// `addSubchannel` / `removeSubchannel` params.
#[derive(Deserialize)]
struct SubchannelWire {
    subchannel: i64,
}

/// The calls on a data consumer.
pub(crate) async fn call_consumer(
    session: &Session,
    id: &str,
    consumer: &DataConsumer,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    if consumer.closed() {
        return Err(ApiError::closed("DataConsumer"));
    }
    let failed = |error: mafalda_media::mediasoup::worker::RequestError| request_error(&error, "DataConsumer");
    let answer = match method {
        "pause" => {
            consumer.pause().await.map_err(failed)?;
            json!(null)
        }
        "resume" => {
            consumer.resume().await.map_err(failed)?;
            json!(null)
        }
        "getStats" => {
            let stats = consumer.get_stats().await.map_err(failed)?;
            let stats: Vec<serde_json::Value> =
                stats.iter().map(|stat| crate::rtp::stat_out(to_json(stat), "data-consumer")).collect();
            return to_value(&stats);
        }
        "dump" => return to_value(&dump_out(to_json(&consumer.dump().await.map_err(failed)?))),
        "getBufferedAmount" => {
            let amount = consumer.get_buffered_amount().await.map_err(failed)?;
            return to_value(&json!({ "bufferedAmount": amount }));
        }
        "setBufferedAmountLowThreshold" => {
            let wire: ThresholdWire = params(params_value)?;
            consumer.set_buffered_amount_low_threshold(wire.threshold).await.map_err(failed)?;
            return null();
        }
        "setSubchannels" => {
            let wire: SubchannelsWire = params(params_value)?;
            let subchannels = wire.subchannels.into_iter().map(subchannel).collect();
            consumer.set_subchannels(subchannels).await.map_err(failed)?;
            json!({ "subchannels": consumer.subchannels() })
        }
        "addSubchannel" | "removeSubchannel" => {
            let wire: SubchannelWire = params(params_value)?;
            if method == "addSubchannel" {
                consumer.add_subchannel(subchannel(wire.subchannel)).await.map_err(failed)?;
            } else {
                consumer.remove_subchannel(subchannel(wire.subchannel)).await.map_err(failed)?;
            }
            json!({ "subchannels": consumer.subchannels() })
        }
        "send" => {
            let wire: SendWire = params(params_value)?;
            let message = wire.message()?;
            return match consumer {
                DataConsumer::Regular(regular) => {
                    regular.send(message).await.map_err(failed)?;
                    null()
                }
                _ => Err(ApiError::invalid("invalid DataConsumer type (send() is for SCTP data consumers)")),
            };
        }
        other => return Err(ApiError::UnknownMethod(other.to_owned())),
    };
    session.set_state(id, &consumer_state(consumer));
    to_value(&answer)
}
