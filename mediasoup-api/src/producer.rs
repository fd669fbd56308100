//! Producers: `produce` on a transport, their record in the session (state
//! and events), and the calls on them. Consumers are in `consumer`, re-exported
//! here ([`consume`], [`adopt_consumer`]) for the transport and router modules.

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{MediaKind, Producer, ProducerId, ProducerOptions};
use mafalda_media::mediasoup::producer::ProducerTraceEventType;
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(crate) use crate::consumer::{adopt_consumer, consume};
use crate::error::ApiError;
use crate::options::check_app_data;
use crate::rtp::{dump_out, produce_error, request_error, rtp_parameters, rtp_parameters_out, stat_out, trace_types};
use crate::session::{Object, Session, WeakSession};
use crate::transport::AnyTransport;
use crate::wire::{bytes, null, params, to_json, to_value};

/// mediasoup's `ProducerOptions` as the Node API writes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProduceWire {
    id: Option<String>,
    kind: MediaKind,
    rtp_parameters: serde_json::Value,
    paused: Option<bool>,
    key_frame_request_delay: Option<u32>,
    enable_mediasoup_packet_id_header_extension: Option<bool>,
    app_data: Option<serde_json::Value>,
}

/// A producer's ROPE state.
#[derive(Serialize)]
struct ProducerState {
    paused: bool,
    score: serde_json::Value,
}

/// A producer's state now.
fn state(producer: &Producer) -> ProducerState {
    ProducerState { paused: producer.paused(), score: score(producer) }
}

/// A producer's scores, as Node writes them (no `rid` when there is none).
fn score(producer: &Producer) -> serde_json::Value {
    let mut score = to_json(&producer.score());
    crate::rtp::drop_nulls(&mut score);
    score
}

/// Closes object `id` of the session from a task of its own (on `runtime`,
/// the one that made the object, when there is one): the crate's
/// notification callbacks run on the worker's thread and must not drop the
/// object they notify about.
/// Its `closed` event says `reason`.
pub(crate) fn forget_later(
    runtime: Option<&tokio::runtime::Handle>,
    weak: &WeakSession,
    id: &str,
    reason: &'static str,
) {
    let (weak, id) = (weak.clone(), id.to_owned());
    match runtime {
        Some(runtime) => {
            runtime.spawn(async move { weak.forget_because(&id, reason) });
        }
        None => {
            std::thread::spawn(move || weak.forget_because(&id, reason));
        }
    }
}

/// `transport.produce(options)`: makes the producer, records it under the
/// transport, answers its ProducerData.
pub(crate) async fn produce(
    session: &Session,
    transport_id: &str,
    transport: &AnyTransport,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let wire: ProduceWire = params(params_value)?;
    check_app_data(wire.app_data.as_ref())?;
    let rtp_parameters = rtp_parameters(&wire.rtp_parameters)?;
    let mut options = match wire.id {
        Some(id) => {
            let id: ProducerId = id.parse().map_err(|_| ApiError::invalid("id is not a mediasoup id (UUID)"))?;
            ProducerOptions::new_pipe_transport(id, wire.kind, rtp_parameters)
        }
        None => ProducerOptions::new(wire.kind, rtp_parameters),
    };
    options.paused = wire.paused.unwrap_or(false);
    options.key_frame_request_delay = wire.key_frame_request_delay.unwrap_or(0);
    options.enable_mediasoup_packet_id_header_extension =
        wire.enable_mediasoup_packet_id_header_extension.unwrap_or(false);
    session.check_cap("producer")?;
    let producer = transport.as_transport().produce(options).await.map_err(|e| produce_error(&e))?;
    let Some(room) = session.room_of(transport_id) else {
        return to_value(&adopt_producer(session, transport_id, producer)?);
    };
    // The room's before the app hears of it (refused: dropped, so closed).
    let app_data = wire.app_data.clone().unwrap_or_else(|| json!({}));
    let id = producer.id();
    room.membership.produced(&producer, transport.as_transport().router(), app_data)?;
    // The room holds the producer too: the app letting go of it must say so.
    let released = Released { room: Arc::clone(&room), producer: id };
    let data = adopt_producer(session, transport_id, producer)?;
    session.guard(&id.to_string(), Box::new(released));
    to_value(&data)
}

/// Tells a room that the app let go of one of its producers (dropped with
/// the producer's object, however it goes).
struct Released {
    room: Arc<crate::room::RoomObject>,
    producer: ProducerId,
}

impl Drop for Released {
    fn drop(&mut self) {
        self.room.membership.released(self.producer);
    }
}

/// The data mediasoup's Node `Producer` holds (`PROTOCOL.md`, ProducerData).
fn producer_data(producer: &Producer) -> serde_json::Value {
    let mut rtp_parameters = to_json(producer.rtp_parameters());
    rtp_parameters_out(&mut rtp_parameters, false);
    let mut consumable = to_json(producer.consumable_rtp_parameters());
    rtp_parameters_out(&mut consumable, false);
    json!({
        "id": producer.id().to_string(),
        "kind": producer.kind(),
        "rtpParameters": rtp_parameters,
        "type": producer.r#type(),
        "consumableRtpParameters": consumable,
        "paused": producer.paused(),
        "score": score(producer),
    })
}

/// Records a producer made under `parent` (a transport, or a router for
/// `pipeToRouter`); answers its ProducerData.
pub(crate) fn adopt_producer(
    session: &Session,
    parent: &str,
    producer: Producer,
) -> Result<serde_json::Value, ApiError> {
    // A pipe producer keeps its producer's id: then its ROPE id differs.
    let id = session.object_id_for(&producer.id().to_string(), parent);
    let weak = session.weak();
    let weak_producer = producer.downgrade();
    let on_close = {
        let (weak, id) = (weak.clone(), id.clone());
        producer.on_close(move || weak.forget(&id))
    };
    let on_score = {
        let (weak, id, weak_producer) = (weak.clone(), id.clone(), weak_producer.clone());
        producer.on_score(move |scores| {
            let mut scores = to_json(scores);
            crate::rtp::drop_nulls(&mut scores);
            if let Some(producer) = weak_producer.upgrade() {
                weak.set_state(&id, &state(&producer));
            }
            weak.emit(&id, "score", vec![scores]);
        })
    };
    let on_orientation = {
        let (weak, id) = (weak.clone(), id.clone());
        producer.on_video_orientation_change(move |orientation| {
            weak.emit(&id, "videoorientationchange", vec![to_json(&orientation)]);
        })
    };
    let on_trace = {
        let (weak, id) = (weak, id.clone());
        producer.on_trace(move |trace| weak.emit(&id, "trace", vec![to_json(trace)]))
    };
    let mut data = producer_data(&producer);
    if data["id"].as_str() != Some(id.as_str()) {
        data["objectId"] = json!(id);
    }
    let state = state(&producer);
    session.insert(
        &id,
        Some(parent),
        Object::Producer(producer),
        &state,
        vec![on_close, on_score, on_orientation, on_trace],
    )?;
    Ok(data)
}

/// `enableTraceEvent` params.
#[derive(Deserialize)]
struct TraceWire {
    types: Option<serde_json::Value>,
}

/// `send` params: an RTP packet in base64.
#[derive(Deserialize)]
struct PacketWire {
    packet: String,
}

/// The calls on a producer.
pub(crate) async fn call_producer(
    session: &Session,
    id: &str,
    producer: &Producer,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    if producer.closed() {
        return Err(ApiError::closed("Producer"));
    }
    let failed = |error: mafalda_media::mediasoup::worker::RequestError| request_error(&error, "Producer");
    match method {
        "pause" | "resume" => {
            if method == "pause" {
                producer.pause().await.map_err(failed)?;
            } else {
                producer.resume().await.map_err(failed)?;
            }
            session.set_state(id, &state(producer));
            null()
        }
        "getStats" => {
            let stats = producer.get_stats().await.map_err(failed)?;
            let stats: Vec<serde_json::Value> =
                stats.iter().map(|stat| stat_out(to_json(stat), "inbound-rtp")).collect();
            to_value(&stats)
        }
        "dump" => to_value(&dump_out(to_json(&producer.dump().await.map_err(failed)?))),
        "enableTraceEvent" => {
            let wire: TraceWire = params(params_value)?;
            let types: Vec<ProducerTraceEventType> = trace_types(wire.types.as_ref())?;
            producer.enable_trace_event(types).await.map_err(failed)?;
            null()
        }
        "send" => {
            let wire: PacketWire = params(params_value)?;
            let packet = bytes(&wire.packet)?;
            match producer {
                Producer::Direct(direct) => {
                    direct.send(packet).map_err(|e| ApiError::closed(&format!("Producer ({e})")))?;
                    null()
                }
                _ => Err(ApiError::invalid("send() is just for producers of a DirectTransport")),
            }
        }
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}
