//! Workers and WebRTC servers: `mediasoup.createWorker` and the root calls,
//! and the calls on a worker (`dump`, `getResourceUsage`, `updateSettings`,
//! `createRouter`, `createWebRtcServer`) and on a WebRTC server (`dump`).

use std::path::PathBuf;

use mafalda_media::mediasoup::prelude::{
    Protocol, RouterOptions, RtpCodecCapability, WebRtcServer, WebRtcServerListenInfos, WebRtcServerOptions,
};
use mafalda_media::mediasoup::worker::{
    Worker, WorkerDtlsFiles, WorkerLogLevel, WorkerLogTag, WorkerSettings, WorkerUpdateSettings,
};
use mafalda_rope::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use crate::error::ApiError;
use crate::options::{ListenInfoWire, check_app_data, listen_infos};
use crate::session::{Object, Session};
use crate::wire::{null, params, to_json, to_value};

/// The version of mediasoup's worker the node embeds.
pub const WORKER_VERSION: &str = "3.16.0";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorkerSettingsWire {
    log_level: Option<String>,
    log_tags: Option<Vec<String>>,
    rtc_min_port: Option<i64>,
    rtc_max_port: Option<i64>,
    dtls_certificate_file: Option<String>,
    dtls_private_key_file: Option<String>,
    /// Accepted for compatibility; the embedded worker takes no field trials.
    #[serde(rename = "libwebrtcFieldTrials")]
    _libwebrtc_field_trials: Option<String>,
    /// Accepted for compatibility; the embedded worker does not use liburing.
    #[serde(rename = "disableLiburing")]
    _disable_liburing: Option<bool>,
    app_data: Option<serde_json::Value>,
    /// Create the worker on another node of the swarm (the node's job; here
    /// it must be absent or this node).
    #[serde(rename = "node")]
    _node: Option<String>,
}

fn log_level(level: &str) -> Result<WorkerLogLevel, ApiError> {
    Ok(match level {
        "debug" => WorkerLogLevel::Debug,
        "warn" => WorkerLogLevel::Warn,
        "error" => WorkerLogLevel::Error,
        "none" => WorkerLogLevel::None,
        other => return Err(ApiError::invalid(format!("invalid logLevel: {other}"))),
    })
}

fn log_tags(tags: &[String]) -> Result<Vec<WorkerLogTag>, ApiError> {
    tags.iter()
        .map(|tag| {
            Ok(match tag.as_str() {
                "info" => WorkerLogTag::Info,
                "ice" => WorkerLogTag::Ice,
                "dtls" => WorkerLogTag::Dtls,
                "rtp" => WorkerLogTag::Rtp,
                "srtp" => WorkerLogTag::Srtp,
                "rtcp" => WorkerLogTag::Rtcp,
                "rtx" => WorkerLogTag::Rtx,
                "bwe" => WorkerLogTag::Bwe,
                "score" => WorkerLogTag::Score,
                "simulcast" => WorkerLogTag::Simulcast,
                "svc" => WorkerLogTag::Svc,
                "sctp" => WorkerLogTag::Sctp,
                "message" => WorkerLogTag::Message,
                other => return Err(ApiError::invalid(format!("invalid logTag: {other}"))),
            })
        })
        .collect()
}

fn port(value: i64, name: &str) -> Result<u16, ApiError> {
    u16::try_from(value).map_err(|_| ApiError::invalid(format!("{name} must be a port (0-65535), not {value}")))
}

fn readable_file(path: &str, name: &str) -> Result<PathBuf, ApiError> {
    let path = PathBuf::from(path);
    if !path.is_file() {
        return Err(ApiError::invalid(format!("{name} {} is not a readable file", path.display())));
    }
    Ok(path)
}

impl WorkerSettingsWire {
    fn into_settings(self, session: &Session) -> Result<WorkerSettings, ApiError> {
        check_app_data(self.app_data.as_ref())?;
        let mut settings = WorkerSettings::default();
        settings.log_level = self.log_level.as_deref().map(log_level).transpose()?.unwrap_or(WorkerLogLevel::Error);
        settings.log_tags = self.log_tags.as_deref().map(log_tags).transpose()?.unwrap_or_default();
        let defaults = session.host().rtc_ports();
        let min = self.rtc_min_port.map(|p| port(p, "rtcMinPort")).transpose()?.unwrap_or(*defaults.start());
        let max = self.rtc_max_port.map(|p| port(p, "rtcMaxPort")).transpose()?.unwrap_or(*defaults.end());
        if min > max {
            return Err(ApiError::invalid(format!("rtcMinPort ({min}) is greater than rtcMaxPort ({max})")));
        }
        settings.rtc_port_range = min.max(1)..=max.max(1);
        match (self.dtls_certificate_file, self.dtls_private_key_file) {
            (None, None) => {}
            (certificate, private_key) => {
                if !session.grants().files {
                    return Err(ApiError::Forbidden(
                        "naming files on the node (dtlsCertificateFile, dtlsPrivateKeyFile) takes the admin token"
                            .into(),
                    ));
                }
                let certificate = certificate
                    .ok_or_else(|| ApiError::invalid("dtlsCertificateFile is required with dtlsPrivateKeyFile"))?;
                let private_key = private_key
                    .ok_or_else(|| ApiError::invalid("dtlsPrivateKeyFile is required with dtlsCertificateFile"))?;
                settings.dtls_files = Some(WorkerDtlsFiles {
                    certificate: readable_file(&certificate, "dtlsCertificateFile")?,
                    private_key: readable_file(&private_key, "dtlsPrivateKeyFile")?,
                });
            }
        }
        Ok(settings)
    }
}

#[derive(Serialize)]
struct WorkerState {
    pid: u32,
}

/// The calls without a target.
pub(crate) async fn call_root(session: &Session, method: &str, params_value: &Value) -> Result<Value, ApiError> {
    match method {
        "mediasoup.createWorker" => create_worker(session, params(params_value)?).await,
        "mediasoup.getSupportedRtpCapabilities" => {
            to_value(&mafalda_media::mediasoup::supported_rtp_capabilities::get_supported_rtp_capabilities())
        }
        "mediasoup.version" => to_value(&json!({ "version": WORKER_VERSION })),
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

async fn create_worker(session: &Session, wire: WorkerSettingsWire) -> Result<Value, ApiError> {
    if !session.grants().workers {
        return Err(ApiError::Forbidden("creating workers takes the API token".into()));
    }
    let settings = wire.into_settings(session)?;
    session.check_cap("worker")?;
    let worker = session
        .host()
        .manager()
        .create_worker(settings)
        .await
        .map_err(|e| ApiError::Mediasoup(format!("cannot start a worker: {e}")))?;
    let id = worker.id().to_string();
    let pid = std::process::id();
    let weak = session.weak();
    let on_dead = {
        let (weak, id) = (weak.clone(), id.clone());
        worker.on_dead(move |outcome| {
            let message = match outcome {
                Ok(()) => "worker exited".to_owned(),
                Err(error) => format!("worker died: {error}"),
            };
            weak.emit(&id, "died", vec![json!(message)]);
            weak.forget(&id);
        })
    };
    let on_close = {
        let (weak, id) = (weak, id.clone());
        // Counted until the worker closes, whatever closes it.
        let count = session.host().count_worker();
        worker.on_close(move || {
            drop(count);
            weak.forget(&id);
        })
    };
    session.insert(&id, None, Object::Worker(worker), &WorkerState { pid }, vec![on_dead, on_close])?;
    info!(worker = %id, "app worker created");
    to_value(&json!({ "id": id, "pid": pid }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateSettingsWire {
    log_level: Option<String>,
    log_tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRouterWire {
    media_codecs: Option<Vec<serde_json::Value>>,
    app_data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateWebRtcServerWire {
    listen_infos: Option<Vec<ListenInfoWire>>,
    app_data: Option<serde_json::Value>,
}

/// The calls on a worker.
pub(crate) async fn call(
    session: &Session,
    id: &str,
    worker: &Worker,
    method: &str,
    params_value: &Value,
) -> Result<Value, ApiError> {
    if worker.closed() {
        return Err(ApiError::closed("Worker"));
    }
    match method {
        "dump" => {
            let dump = worker.dump().await.map_err(|e| ApiError::from_mediasoup(&e))?;
            let mut dump = to_json(&dump);
            dump["pid"] = json!(std::process::id());
            to_value(&dump)
        }
        "getResourceUsage" => to_value(&resource_usage()),
        "updateSettings" => {
            let wire: UpdateSettingsWire = params(params_value)?;
            let mut update = WorkerUpdateSettings::default();
            update.log_level = wire.log_level.as_deref().map(log_level).transpose()?;
            update.log_tags = wire.log_tags.as_deref().map(log_tags).transpose()?;
            worker.update_settings(update).await.map_err(|e| ApiError::from_mediasoup(&e))?;
            null()
        }
        "createRouter" => {
            let wire: CreateRouterWire = params(params_value)?;
            check_app_data(wire.app_data.as_ref())?;
            let codecs = wire
                .media_codecs
                .unwrap_or_default()
                .into_iter()
                .map(|codec| {
                    serde_json::from_value::<RtpCodecCapability>(codec)
                        .map_err(|e| ApiError::invalid(format!("invalid media codec: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            session.check_cap("router")?;
            let router =
                worker.create_router(RouterOptions::new(codecs)).await.map_err(|e| ApiError::from_mediasoup(&e))?;
            crate::router::adopt(session, id, router)
        }
        "createWebRtcServer" => {
            let wire: CreateWebRtcServerWire = params(params_value)?;
            check_app_data(wire.app_data.as_ref())?;
            let infos = listen_infos(
                wire.listen_infos.ok_or_else(|| ApiError::invalid("missing listenInfos"))?,
                Protocol::Udp,
            )?;
            let mut infos = infos.into_iter();
            let first = infos.next().ok_or_else(|| ApiError::invalid("empty listenInfos array provided"))?;
            let infos = infos.fold(WebRtcServerListenInfos::new(first), WebRtcServerListenInfos::insert);
            session.check_cap("webRtcServer")?;
            let server = worker
                .create_webrtc_server(WebRtcServerOptions::new(infos))
                .await
                .map_err(|e| ApiError::from_mediasoup(&e))?;
            adopt_webrtc_server(session, id, server)
        }
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

fn adopt_webrtc_server(session: &Session, worker_id: &str, server: WebRtcServer) -> Result<Value, ApiError> {
    let id = server.id().to_string();
    let on_close = {
        let (weak, id) = (session.weak(), id.clone());
        server.on_close(move || weak.forget(&id))
    };
    session.insert(&id, Some(worker_id), Object::WebRtcServer(server), &json!({}), vec![on_close])?;
    to_value(&json!({ "id": id }))
}

/// The calls on a WebRTC server.
pub(crate) async fn call_webrtc_server(
    session: &Session,
    id: &str,
    server: &WebRtcServer,
    method: &str,
) -> Result<Value, ApiError> {
    if server.closed() {
        return Err(ApiError::closed("WebRtcServer"));
    }
    match method {
        "dump" => {
            let mut dump = to_json(&server.dump().await.map_err(|e| ApiError::from_mediasoup(&e))?);
            // The crate does not read the worker's `tupleHashes`: a tuple
            // exists once a transport's ICE selected one, so while none of
            // the server's transports has, there are none (as Node's dump says).
            let no_tuples = session.states_under(id).iter().all(|state| state["iceSelectedTuple"].is_null());
            if no_tuples {
                dump["tupleHashes"] = json!([]);
            }
            to_value(&dump)
        }
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

/// The node process's resource usage, in the shape of mediasoup's
/// `WorkerResourceUsage` (workers are threads of the node, so this is the
/// node's whole usage), read from `/proc/self` (times in ms, sizes in KiB);
/// what Linux does not count there is 0.
fn resource_usage() -> serde_json::Value {
    // USER_HZ: the unit of /proc times, 100 on every Linux architecture we run on.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), counting from field 3.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(1).map(|field| field.parse().unwrap_or(0)).collect())
        .unwrap_or_default();
    let field = |number: usize| fields.get(number - 3).copied().unwrap_or(0);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let max_rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let millis = |ticks: u64| ticks as f64 * 1000.0 / TICKS_PER_SECOND;
    json!({
        "ru_utime": millis(field(14)),
        "ru_stime": millis(field(15)),
        "ru_maxrss": max_rss,
        "ru_ixrss": 0, "ru_idrss": 0, "ru_isrss": 0,
        "ru_minflt": field(10),
        "ru_majflt": field(12),
        "ru_nswap": 0, "ru_inblock": 0, "ru_oublock": 0, "ru_msgsnd": 0, "ru_msgrcv": 0, "ru_nsignals": 0,
        "ru_nvcsw": 0, "ru_nivcsw": 0,
    })
}
