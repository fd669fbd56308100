//! Routers: their creation under a worker, and the calls on a router
//! (transports and observers are made by their own modules; `pipeToRouter`,
//! `canConsume` and `dump` are here).

use mafalda_media::mediasoup::prelude::DataProducerId;
use mafalda_media::mediasoup::prelude::{PipeToRouterOptions, ProducerId, Router, RtpCapabilities};
use mafalda_rope::Value;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::options::ListenInfoWire;
use crate::session::{Object, Session};
use crate::wire::{params, to_json, to_value};

/// Records a router made under worker `worker_id`; answers `{id, rtpCapabilities}`.
pub(crate) fn adopt(session: &Session, worker_id: &str, router: Router) -> Result<Value, ApiError> {
    let id = router.id().to_string();
    let rtp_capabilities = router.rtp_capabilities();
    let on_close = {
        let (weak, id) = (session.weak(), id.clone());
        router.on_close(move || weak.forget(&id))
    };
    session.insert(&id, Some(worker_id), Object::Router(router), &json!({}), vec![on_close])?;
    to_value(&json!({ "id": id, "rtpCapabilities": rtp_capabilities }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PipeToRouterWire {
    producer_id: Option<String>,
    data_producer_id: Option<String>,
    /// The other router's id.
    router: String,
    /// Where the pipe transports listen; only the IP is used (the crate
    /// listens on the loopback-free address of the routers' node).
    #[serde(rename = "listenInfo")]
    _listen_info: Option<ListenInfoWire>,
    #[serde(rename = "listenIp")]
    _listen_ip: Option<serde_json::Value>,
    enable_sctp: Option<bool>,
    #[serde(rename = "numSctpStreams")]
    _num_sctp_streams: Option<serde_json::Value>,
    #[serde(rename = "enableRtx")]
    _enable_rtx: Option<bool>,
    #[serde(rename = "enableSrtp")]
    _enable_srtp: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CanConsumeWire {
    producer_id: String,
    rtp_capabilities: RtpCapabilities,
}

/// The calls on a router.
pub(crate) async fn call(
    session: &Session,
    id: &str,
    router: &Router,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    if router.closed() {
        return Err(ApiError::closed("Router"));
    }
    match method {
        "createWebRtcTransport" | "createPlainTransport" | "createPipeTransport" | "createDirectTransport" => {
            crate::transport::create(session, id, router, method, params_value).await
        }
        "createActiveSpeakerObserver" | "createAudioLevelObserver" => {
            crate::observer::create(session, id, router, method, params_value).await
        }
        "pipeToRouter" => pipe_to_router(session, id, router, params(params_value)?).await,
        "canConsume" => {
            let wire: CanConsumeWire = params(params_value)?;
            let producer: ProducerId =
                wire.producer_id.parse().map_err(|_| ApiError::invalid("producerId is not a mediasoup id"))?;
            to_value(&router.can_consume(&producer, &wire.rtp_capabilities))
        }
        "dump" => {
            let dump = router.dump().await.map_err(|e| ApiError::from_mediasoup(&e))?;
            to_value(&node_router_dump(to_json(&dump)))
        }
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

async fn pipe_to_router(
    session: &Session,
    id: &str,
    router: &Router,
    wire: PipeToRouterWire,
) -> Result<Value, ApiError> {
    let Object::Router(target) = session.get(&wire.router).map_err(|_| ApiError::invalid("router not found"))? else {
        return Err(ApiError::invalid("router is not a Router"));
    };
    let target_id = wire.router.clone();
    let mut options = PipeToRouterOptions::new(target);
    if let Some(enable_sctp) = wire.enable_sctp {
        options.enable_sctp = enable_sctp;
    }
    match (wire.producer_id, wire.data_producer_id) {
        (Some(producer), None) => {
            let producer: ProducerId =
                producer.parse().map_err(|_| ApiError::invalid("producerId is not a mediasoup id"))?;
            session.check_cap("consumer")?;
            let pair =
                router.pipe_producer_to_router(producer, options).await.map_err(|e| ApiError::from_mediasoup(&e))?;
            let consumer = crate::producer::adopt_consumer(session, id, pair.pipe_consumer)?;
            let producer = crate::producer::adopt_producer(session, &target_id, pair.pipe_producer.into_inner())?;
            to_value(&json!({ "pipeConsumer": consumer, "pipeProducer": producer }))
        }
        (None, Some(data_producer)) => {
            let data_producer: DataProducerId =
                data_producer.parse().map_err(|_| ApiError::invalid("dataProducerId is not a mediasoup id"))?;
            session.check_cap("dataConsumer")?;
            let pair = router
                .pipe_data_producer_to_router(data_producer, options)
                .await
                .map_err(|e| ApiError::from_mediasoup(&e))?;
            let consumer = crate::data::adopt_consumer(session, id, pair.pipe_data_consumer)?;
            let producer = crate::data::adopt_producer(session, &target_id, pair.pipe_data_producer.into_inner())?;
            to_value(&json!({ "pipeDataConsumer": consumer, "pipeDataProducer": producer }))
        }
        _ => Err(ApiError::invalid("just one of producerId and dataProducerId must be given")),
    }
}

/// mediasoup's Node API writes the router dump's maps as `[{key, values}]`
/// (sets) and `[{key, value}]`; the crate writes them as JSON objects.
fn node_router_dump(mut dump: serde_json::Value) -> serde_json::Value {
    for (name, plural) in [
        ("mapProducerIdConsumerIds", true),
        ("mapConsumerIdProducerId", false),
        ("mapProducerIdObserverIds", true),
        ("mapDataProducerIdDataConsumerIds", true),
        ("mapDataConsumerIdDataProducerId", false),
    ] {
        if let Some(serde_json::Value::Object(map)) = dump.get(name).cloned() {
            let entries: Vec<serde_json::Value> = map
                .into_iter()
                .map(|(key, value)| {
                    if plural { json!({ "key": key, "values": value }) } else { json!({ "key": key, "value": value }) }
                })
                .collect();
            dump[name] = serde_json::Value::Array(entries);
        }
    }
    dump
}
