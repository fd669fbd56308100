//! `GET /metrics`: the node's state in Prometheus text format, encoded with the
//! Prometheus project's own Rust client, followed by libp2p's own metrics
//! (`libp2p_*`: bandwidth, connections, Kademlia, gossipsub, identify, ping).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ApiState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabel {
    side: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

pub(super) async fn render(State(state): State<ApiState>) -> Response {
    let node = &state.node;
    node.media().sample_cpu();
    let mut registry = Registry::with_prefix("mafalda");
    let peers = Gauge::<i64>::default();
    peers.set(node.swarm().connected_peers().await.map_or(0, |p| p.len() as i64));
    registry.register("connected_peers", "Peers with an open connection", peers);
    let streams = Gauge::<i64>::default();
    streams.set(node.streams().len() as i64);
    registry.register("streams", "Streams held (origin or relay)", streams);
    let egresses = Gauge::<i64>::default();
    egresses.set(node.egress_count() as i64);
    registry.register("egresses", "RTP egresses running", egresses);
    let pipes = Gauge::<i64>::default();
    pipes.set(node.pipe_count() as i64);
    registry.register("pipes", "Pipes this node feeds other nodes through", pipes);
    let pairs = Family::<SideLabel, Gauge<i64>>::default();
    let kept = node.pipe_pairs();
    pairs.get_or_create(&SideLabel { side: "asking" }).set(i64::try_from(kept.asking).unwrap_or(i64::MAX));
    pairs.get_or_create(&SideLabel { side: "serving" }).set(i64::try_from(kept.serving).unwrap_or(i64::MAX));
    registry.register(
        "pipe_pairs",
        "Pipe transport pairs kept with peers, each carrying every stream piped between the two (asking: in, serving: out)",
        pairs,
    );
    let local_consumers = Gauge::<i64>::default();
    local_consumers.set(node.streams().iter().map(|s| s.local_consumers as i64).sum());
    registry.register(
        "local_consumers",
        "Egresses, WebRTC consumers and pipes consuming held streams",
        local_consumers,
    );
    let app_workers = Gauge::<i64>::default();
    app_workers.set(i64::try_from(node.inner.app_media.host().workers()).unwrap_or(i64::MAX));
    registry.register("app_workers", "mediasoup workers run for apps (Remote Mediasoup), here", app_workers);
    let hosted = Gauge::<i64>::default();
    hosted.set(i64::try_from(node.hosted_app_sessions()).unwrap_or(i64::MAX));
    registry.register("hosted_app_sessions", "App sessions this node hosts for other nodes' apps", hosted);
    let rooms = Gauge::<i64>::default();
    rooms.set(i64::try_from(node.inner.rooms.count()).unwrap_or(i64::MAX));
    registry.register("rooms", "Rooms this node's apps are in", rooms);
    let sessions = Family::<RoleLabel, Gauge<i64>>::default();
    let (publishing, playing) = state.sdp_sessions.counts();
    sessions.get_or_create(&RoleLabel { role: "whip" }).set(i64::try_from(publishing).unwrap_or(i64::MAX));
    sessions.get_or_create(&RoleLabel { role: "whep" }).set(i64::try_from(playing).unwrap_or(i64::MAX));
    registry.register("sdp_sessions", "WHIP (publish) and WHEP (play) sessions open here", sessions);
    let draining = Gauge::<i64>::default();
    draining.set(i64::from(node.is_draining()));
    registry.register("draining", "1 while the node drains", draining);
    let cpu = Family::<WorkerLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let consumers = Family::<WorkerLabel, Gauge<i64>>::default();
    let transports = Family::<WorkerLabel, Gauge<i64>>::default();
    for worker in node.media().status() {
        let label = WorkerLabel { worker: worker.id.to_string() };
        cpu.get_or_create(&label).set(f64::from(worker.cpu_percent));
        consumers.get_or_create(&label).set(i64::from(worker.objects.consumers));
        transports.get_or_create(&label).set(i64::from(worker.objects.transports));
    }
    registry.register("worker_cpu_percent", "CPU use of each mediasoup worker thread", cpu);
    registry.register("worker_consumers", "Consumers on each worker (pipes included)", consumers);
    registry.register("worker_transports", "Transports on each worker (pipes included)", transports);
    node.register_metrics(&mut registry);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode_registry(&mut text, &registry).is_err()
        || node.swarm().encode_metrics(&mut text).is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    prometheus_client::encoding::text::encode_eof(&mut text).ok();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}
