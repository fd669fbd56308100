//! RTP observers (audio level, active speaker): their creation under a router
//! (`createAudioLevelObserver {maxEntries?, threshold?, interval?}`,
//! `createActiveSpeakerObserver {interval?}`), their events (`volumes`,
//! `silence`, `dominantspeaker`) and the calls on them (`pause`, `resume`,
//! `addProducer`, `removeProducer`).

use std::num::NonZeroU16;

use event_listener_primitives::HandlerId;
use mafalda_media::mediasoup::prelude::{
    ActiveSpeakerObserverOptions, AudioLevelObserverOptions, Producer, ProducerId, Router, RtpObserver,
    RtpObserverAddProducerOptions,
};
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::options::check_app_data;
use crate::rtp::request_error;
use crate::session::{Object, Session, WeakSession};
use crate::wire::{null, params, to_value};

/// mediasoup's `AudioLevelObserverOptions` as the Node API writes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AudioLevelWire {
    max_entries: Option<NonZeroU16>,
    threshold: Option<i8>,
    interval: Option<u16>,
    app_data: Option<serde_json::Value>,
}

/// mediasoup's `ActiveSpeakerObserverOptions` as the Node API writes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActiveSpeakerWire {
    interval: Option<u16>,
    app_data: Option<serde_json::Value>,
}

/// `addProducer` / `removeProducer` params.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProducerWire {
    producer_id: String,
}

/// An observer's ROPE state.
#[derive(Serialize)]
struct ObserverState {
    paused: bool,
}

/// `router.create*Observer`: makes the observer under router `router_id`; answers `{id, paused}`.
pub(crate) async fn create(
    session: &Session,
    router_id: &str,
    router: &Router,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let weak = session.weak();
    let (id, object, handlers) = match method {
        "createAudioLevelObserver" => {
            let wire: AudioLevelWire = params(params_value)?;
            check_app_data(wire.app_data.as_ref())?;
            let mut options = AudioLevelObserverOptions::default();
            if let Some(max_entries) = wire.max_entries {
                options.max_entries = max_entries;
            }
            if let Some(threshold) = wire.threshold {
                if !(-127..=0).contains(&threshold) {
                    return Err(ApiError::invalid("if given, threshold must be a negative number greater than -127"));
                }
                options.threshold = threshold;
            }
            if let Some(interval) = wire.interval {
                options.interval = interval;
            }
            session.check_cap("audioLevelObserver")?;
            let observer =
                router.create_audio_level_observer(options).await.map_err(|e| request_error(&e, "Router"))?;
            let id = observer.id().to_string();
            let on_volumes = {
                let (weak, id) = (weak.clone(), id.clone());
                observer.on_volumes(move |volumes| {
                    let volumes: Vec<serde_json::Value> = volumes
                        .iter()
                        .map(
                            |volume| json!({ "producerId": volume.producer.id().to_string(), "volume": volume.volume }),
                        )
                        .collect();
                    weak.emit(&id, "volumes", vec![json!(volumes)]);
                })
            };
            let on_silence = {
                let (weak, id) = (weak.clone(), id.clone());
                observer.on_silence(move || weak.emit(&id, "silence", vec![]))
            };
            let on_close = on_close(&observer, &weak, &id);
            (id, Object::AudioLevelObserver(observer), vec![on_volumes, on_silence, on_close])
        }
        "createActiveSpeakerObserver" => {
            let wire: ActiveSpeakerWire = params(params_value)?;
            check_app_data(wire.app_data.as_ref())?;
            let mut options = ActiveSpeakerObserverOptions::default();
            if let Some(interval) = wire.interval {
                options.interval = interval;
            }
            session.check_cap("activeSpeakerObserver")?;
            let observer =
                router.create_active_speaker_observer(options).await.map_err(|e| request_error(&e, "Router"))?;
            let id = observer.id().to_string();
            let on_dominant = {
                let (weak, id) = (weak.clone(), id.clone());
                observer.on_dominant_speaker(move |speaker| {
                    weak.emit(&id, "dominantspeaker", vec![json!({ "producerId": speaker.producer.id().to_string() })]);
                })
            };
            let on_close = on_close(&observer, &weak, &id);
            (id, Object::ActiveSpeakerObserver(observer), vec![on_dominant, on_close])
        }
        other => return Err(ApiError::UnknownMethod(other.to_owned())),
    };
    session.insert(&id, Some(router_id), object, &ObserverState { paused: false }, handlers)?;
    to_value(&json!({ "id": id, "paused": false }))
}

/// Forgets the observer when it closes.
fn on_close(observer: &dyn RtpObserver, weak: &WeakSession, id: &str) -> HandlerId {
    let (weak, id) = (weak.clone(), id.to_owned());
    observer.on_close(Box::new(move || weak.forget(&id)))
}

/// The calls on an observer.
pub(crate) async fn call(
    session: &Session,
    id: &str,
    observer: &Object,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    let observer: &(dyn RtpObserver + Send + Sync) = match observer {
        Object::AudioLevelObserver(observer) => observer,
        Object::ActiveSpeakerObserver(observer) => observer,
        _ => return Err(ApiError::closed("RtpObserver")),
    };
    if observer.closed() {
        return Err(ApiError::closed("RtpObserver"));
    }
    let failed = |error: mafalda_media::mediasoup::worker::RequestError| request_error(&error, "RtpObserver");
    match method {
        "pause" | "resume" => {
            if method == "pause" {
                observer.pause().await.map_err(failed)?;
            } else {
                observer.resume().await.map_err(failed)?;
            }
            session.set_state(id, &ObserverState { paused: observer.paused() });
            null()
        }
        "addProducer" | "removeProducer" => {
            let wire: ProducerWire = params(params_value)?;
            let producer = router_producer(session, observer.router(), &wire.producer_id)?;
            if method == "addProducer" {
                observer.add_producer(RtpObserverAddProducerOptions::new(producer.id())).await.map_err(failed)?;
            } else {
                observer.remove_producer(producer.id()).await.map_err(failed)?;
            }
            null()
        }
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

/// Producer `id` of this session on `router` (a `TypeError` when there is none).
fn router_producer(session: &Session, router: &Router, id: &str) -> Result<Producer, ApiError> {
    let not_found = || ApiError::invalid(format!("Producer with id \"{id}\" not found"));
    let _: ProducerId = id.parse().map_err(|_| not_found())?;
    match session.get(id) {
        Ok(Object::Producer(producer)) if producer.transport().router().id() == router.id() => Ok(producer),
        _ => Err(not_found()),
    }
}
