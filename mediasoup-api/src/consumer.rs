//! Consumers: `consume` on a transport, their record in the session (state
//! and events: `producerclose`, `producerpause`, `producerresume`, `score`,
//! `layerschange`, `trace`, `rtp`), and the calls on them.

use mafalda_media::mediasoup::consumer::ConsumerTraceEventType;
use mafalda_media::mediasoup::prelude::{Consumer, ConsumerLayers, ConsumerOptions, ProducerId, RtpCapabilities};
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::options::check_app_data;
use crate::producer::forget_later;
use crate::rtp::{consume_error, dump_out, request_error, rtp_capabilities, rtp_parameters_out, stat_out, trace_types};
use crate::session::{Object, Session};
use crate::transport::AnyTransport;
use crate::wire::{base64, null, params, to_json, to_value};

/// mediasoup's `ConsumerOptions` as the Node API writes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsumeWire {
    producer_id: String,
    rtp_capabilities: Option<serde_json::Value>,
    paused: Option<bool>,
    mid: Option<String>,
    preferred_layers: Option<ConsumerLayers>,
    ignore_dtx: Option<bool>,
    enable_rtx: Option<bool>,
    pipe: Option<bool>,
    app_data: Option<serde_json::Value>,
}

/// A consumer's ROPE state.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerState {
    paused: bool,
    producer_paused: bool,
    score: serde_json::Value,
    current_layers: Option<ConsumerLayers>,
    priority: u8,
}

/// A consumer's state now.
fn state(consumer: &Consumer) -> ConsumerState {
    ConsumerState {
        paused: consumer.paused(),
        producer_paused: consumer.producer_paused(),
        score: to_json(&consumer.score()),
        current_layers: consumer.current_layers(),
        priority: consumer.priority(),
    }
}

/// `transport.consume(options)`: makes the consumer, records it under the
/// transport, answers its ConsumerData.
pub(crate) async fn consume(
    session: &Session,
    transport_id: &str,
    transport: &AnyTransport,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let wire: ConsumeWire = params(params_value)?;
    check_app_data(wire.app_data.as_ref())?;
    if wire.mid.as_deref() == Some("") {
        return Err(ApiError::invalid("if given, mid must be non empty string"));
    }
    let rtp_capabilities = match &wire.rtp_capabilities {
        Some(capabilities) => rtp_capabilities(capabilities)?,
        None if transport.is_pipe() => RtpCapabilities::default(),
        None => return Err(ApiError::invalid("missing rtpCapabilities")),
    };
    let not_found = || ApiError::invalid(format!("Producer with id \"{}\" not found", wire.producer_id));
    let room = session.room_of(transport_id);
    let producer_id: ProducerId = match &room {
        // A room's producer may be anywhere: the node brings it here first.
        Some(room) => {
            if !room.membership.can_consume(&wire.producer_id, &rtp_capabilities) {
                return Err(room_refusal(room, &wire.producer_id));
            }
            session.check_cap("consumer")?;
            room.membership.consumable(&wire.producer_id, transport.as_transport().router()).await?
        }
        None => {
            let id = wire.producer_id.parse().map_err(|_| not_found())?;
            if !matches!(session.get(&wire.producer_id), Ok(Object::Producer(_))) {
                return Err(not_found());
            }
            id
        }
    };
    let mut options = ConsumerOptions::new(producer_id, rtp_capabilities);
    options.paused = wire.paused.unwrap_or(false);
    options.mid = wire.mid;
    options.preferred_layers = wire.preferred_layers;
    options.ignore_dtx = wire.ignore_dtx.unwrap_or(false);
    options.enable_rtx = wire.enable_rtx;
    options.pipe = wire.pipe.unwrap_or(false);
    session.check_cap("consumer")?;
    let consumer = transport.as_transport().consume(options).await.map_err(|e| consume_error(&e))?;
    if let Some(room) = &room {
        room.membership.consumed(&wire.producer_id, &consumer);
    }
    let mut data = record(session, transport_id, consumer, transport.is_direct())?;
    if room.is_some() {
        // The room's id for it, the same at every node (not the local copy's).
        data["producerId"] = json!(wire.producer_id);
    }
    to_value(&data)
}

/// Why a room's producer cannot be consumed: unknown, or no common codec.
fn room_refusal(room: &crate::room::RoomObject, producer_id: &str) -> ApiError {
    let known = room.membership.view().borrow().producers.iter().any(|producer| producer.id == producer_id);
    if known {
        ApiError::Unsupported(format!(
            "cannot consume producer {producer_id} with these rtpCapabilities (no common codec)"
        ))
    } else {
        ApiError::invalid(format!("Producer with id \"{producer_id}\" not found in the room"))
    }
}

/// The data mediasoup's Node `Consumer` holds (`PROTOCOL.md`, ConsumerData).
fn consumer_data(consumer: &Consumer) -> serde_json::Value {
    let mut rtp_parameters = to_json(consumer.rtp_parameters());
    rtp_parameters_out(&mut rtp_parameters, false);
    let mut data = json!({
        "id": consumer.id().to_string(),
        "producerId": consumer.producer_id().to_string(),
        "kind": consumer.kind(),
        "rtpParameters": rtp_parameters,
        "type": consumer.r#type(),
        "paused": consumer.paused(),
        "producerPaused": consumer.producer_paused(),
        "score": consumer.score(),
        "priority": consumer.priority(),
    });
    if let Some(layers) = consumer.preferred_layers() {
        data["preferredLayers"] = to_json(&layers);
    }
    if let Some(layers) = consumer.current_layers() {
        data["currentLayers"] = to_json(&layers);
    }
    data
}

/// Records a consumer made under `parent` (a transport, or a router for
/// `pipeToRouter`); answers its ConsumerData.
pub(crate) fn adopt_consumer(
    session: &Session,
    parent: &str,
    consumer: Consumer,
) -> Result<serde_json::Value, ApiError> {
    record(session, parent, consumer, false)
}

/// Records a consumer (with its `rtp` events when on a direct transport).
fn record(session: &Session, parent: &str, consumer: Consumer, direct: bool) -> Result<serde_json::Value, ApiError> {
    let id = consumer.id().to_string();
    let weak = session.weak();
    let weak_consumer = consumer.downgrade();
    // Sends the consumer's state (then event `name` with `args`).
    let changed = {
        let (weak, id) = (weak.clone(), id.clone());
        move |name: &str, args: Vec<serde_json::Value>| {
            if let Some(consumer) = weak_consumer.upgrade() {
                weak.set_state(&id, &state(&consumer));
            }
            weak.emit(&id, name, args);
        }
    };
    let mut handlers = Vec::new();
    // The crate tells `producerclose` first, then closes the consumer: its
    // `closed` event then says why.
    let producer_closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (weak, id, producer_closed) = (weak.clone(), id.clone(), std::sync::Arc::clone(&producer_closed));
        handlers.push(consumer.on_close(move || {
            if producer_closed.load(std::sync::atomic::Ordering::Acquire) {
                weak.forget_because(&id, "producerclose");
            } else {
                weak.forget(&id);
            }
        }));
    }
    {
        let (weak, id) = (weak.clone(), id.clone());
        let runtime = tokio::runtime::Handle::try_current().ok();
        handlers.push(consumer.on_producer_close(move || {
            producer_closed.store(true, std::sync::atomic::Ordering::Release);
            weak.emit(&id, "producerclose", vec![]);
            forget_later(runtime.as_ref(), &weak, &id, "producerclose");
        }));
    }
    {
        let changed = changed.clone();
        handlers.push(consumer.on_producer_pause(move || changed("producerpause", vec![])));
    }
    {
        let changed = changed.clone();
        handlers.push(consumer.on_producer_resume(move || changed("producerresume", vec![])));
    }
    {
        let changed = changed.clone();
        handlers.push(consumer.on_score(move |score| changed("score", vec![to_json(score)])));
    }
    handlers.push(consumer.on_layers_change(move |layers| changed("layerschange", vec![to_json(layers)])));
    {
        let (weak, id) = (weak.clone(), id.clone());
        handlers.push(consumer.on_trace(move |trace| weak.emit(&id, "trace", vec![to_json(trace)])));
    }
    if direct {
        let (weak, id) = (weak, id.clone());
        handlers.push(consumer.on_rtp(move |packet| weak.emit(&id, "rtp", vec![json!(base64(packet))])));
    }
    let data = consumer_data(&consumer);
    let state = state(&consumer);
    session.insert(&id, Some(parent), Object::Consumer(consumer), &state, handlers)?;
    Ok(data)
}

/// `enableTraceEvent` params.
#[derive(Deserialize)]
struct TraceWire {
    types: Option<serde_json::Value>,
}

/// `setPreferredLayers` params.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayersWire {
    spatial_layer: u8,
    temporal_layer: Option<u8>,
}

/// `setPriority` params (checked by hand: 1 to 255).
#[derive(Deserialize)]
struct PriorityWire {
    priority: serde_json::Value,
}

/// The calls on a consumer.
pub(crate) async fn call_consumer(
    session: &Session,
    id: &str,
    consumer: &Consumer,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    if consumer.closed() {
        return Err(ApiError::closed("Consumer"));
    }
    let failed = |error: mafalda_media::mediasoup::worker::RequestError| request_error(&error, "Consumer");
    let answer = match method {
        "pause" => {
            consumer.pause().await.map_err(failed)?;
            json!(null)
        }
        "resume" => {
            consumer.resume().await.map_err(failed)?;
            json!(null)
        }
        "setPreferredLayers" => {
            let wire: LayersWire = params(params_value)?;
            let layers = ConsumerLayers { spatial_layer: wire.spatial_layer, temporal_layer: wire.temporal_layer };
            consumer.set_preferred_layers(layers).await.map_err(failed)?;
            json!({ "preferredLayers": consumer.preferred_layers() })
        }
        "setPriority" => {
            let wire: PriorityWire = params(params_value)?;
            let priority = wire
                .priority
                .as_u64()
                .and_then(|priority| u8::try_from(priority).ok())
                .filter(|priority| *priority > 0)
                .ok_or_else(|| ApiError::invalid("priority must be a positive integer (1 to 255)"))?;
            consumer.set_priority(priority).await.map_err(failed)?;
            json!({ "priority": consumer.priority() })
        }
        "unsetPriority" => {
            consumer.unset_priority().await.map_err(failed)?;
            json!({ "priority": consumer.priority() })
        }
        "requestKeyFrame" => {
            consumer.request_key_frame().await.map_err(failed)?;
            return null();
        }
        "getStats" => {
            use mafalda_media::mediasoup::consumer::ConsumerRtpStreamStat;
            let stats = consumer.get_stats().await.map_err(failed)?;
            let stats: Vec<serde_json::Value> = stats
                .iter()
                .map(|stat| match stat {
                    ConsumerRtpStreamStat::Inbound(stat) => stat_out(to_json(stat), "inbound-rtp"),
                    ConsumerRtpStreamStat::Outbound(stat) => stat_out(to_json(stat), "outbound-rtp"),
                })
                .collect();
            return to_value(&stats);
        }
        "dump" => return to_value(&dump_out(to_json(&consumer.dump().await.map_err(failed)?))),
        "enableTraceEvent" => {
            let wire: TraceWire = params(params_value)?;
            let types: Vec<ConsumerTraceEventType> = trace_types(wire.types.as_ref())?;
            consumer.enable_trace_event(types).await.map_err(failed)?;
            return null();
        }
        other => return Err(ApiError::UnknownMethod(other.to_owned())),
    };
    session.set_state(id, &state(consumer));
    to_value(&answer)
}
