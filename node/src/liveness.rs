//! Nothing fails silently: media that stops arriving is noticed and fixed.
//!
//! Every half second the node counts the packets each held stream's producers
//! received and each egress sent ([`Counters`], shown in status). A relayed
//! stream whose producers received nothing for [`SILENCE`] while its upstream
//! still receives (asked with `stream.stats`) has a broken pipe: the relay
//! moves to another provider (or a fresh pipe from the same one), make before
//! break, and apps are told ([`NodeEvent::StreamSilent`]). A stream silent at
//! its upstream too is a quiet origin, not a fault (silent audio still sends
//! DTX packets; a paused publisher sends nothing and nothing is wrong).
//!
//! A worker that dies or closes takes its objects with it: streams whose
//! producers closed are re-piped (relays) or ended (origins), egresses and
//! downstream pipes whose consumers closed are opened again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mafalda_media::MediaEvent;
use mafalda_media::mediasoup::prelude::Producer;
use mafalda_media::mediasoup::worker::WorkerId;
use mafalda_rope::Value;
use mafalda_swarm::PeerId;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::events::NodeEvent;
use crate::inner::{Inner, lock};
use crate::streams::{Role, StreamParams};

/// How long a relayed stream may receive nothing before its upstream is asked.
pub const SILENCE: Duration = Duration::from_millis(1500);
/// How often counters are read.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Packets and bytes, as counted by mediasoup (kept by the node between checks).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// When the packet count last grew.
    grew_at: std::sync::Mutex<Option<Instant>>,
}

/// How recent a packet must be for a node to say it receives a stream.
const RECEIVING_WINDOW: Duration = Duration::from_secs(1);

impl Counters {
    pub(crate) fn set(&self, (packets, bytes): (u64, u64)) {
        if self.packets.swap(packets, Ordering::Relaxed) != packets {
            *lock(&self.grew_at) = Some(Instant::now());
        }
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// Whether packets arrived within the receiving window, as last counted.
    pub(crate) fn receiving(&self, now: Instant) -> bool {
        lock(&self.grew_at).is_some_and(|at| now.saturating_duration_since(at) < RECEIVING_WINDOW)
    }

    pub(crate) fn get(&self) -> (u64, u64) {
        (self.packets.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }
}

/// Answer to `stream.stats`: what the answering node's producers of a stream receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Packets received so far, all tracks.
    pub packets: u64,
    /// Whether packets arrived within the last second (as counted every
    /// half second; mediasoup's own bitrate lingers after a stream stops).
    pub receiving: bool,
}

/// Which streams have been silent, and since when (policy, fed with `now`).
#[derive(Debug, Default)]
pub(crate) struct Silence {
    last: HashMap<String, (u64, Instant)>,
}

impl Silence {
    /// Records `packets` for `stream`; true once nothing new arrived for `SILENCE`.
    /// A stream found silent starts counting again (one alarm per silence).
    pub(crate) fn silent(&mut self, stream: &str, packets: u64, now: Instant) -> bool {
        match self.last.get_mut(stream) {
            Some((seen, since)) if *seen == packets => {
                if now.saturating_duration_since(*since) >= SILENCE {
                    *since = now;
                    return true;
                }
                false
            }
            Some(entry) => {
                *entry = (packets, now);
                false
            }
            None => {
                self.last.insert(stream.to_owned(), (packets, now));
                false
            }
        }
    }

    /// Forgets streams no longer held.
    pub(crate) fn retain(&mut self, held: &[String]) {
        self.last.retain(|stream, _| held.contains(stream));
    }
}

/// Packets and bytes sent by `consumers`.
pub(crate) async fn sent(consumers: &[mafalda_media::mediasoup::prelude::Consumer]) -> (u64, u64) {
    let mut totals = (0, 0);
    for consumer in consumers {
        if let Ok(stats) = consumer.get_stats().await {
            for stat in stats {
                if let mafalda_media::mediasoup::consumer::ConsumerRtpStreamStat::Outbound(sent) = stat {
                    totals.0 += sent.packet_count;
                    totals.1 += sent.byte_count;
                }
            }
        }
    }
    totals
}

/// Packets and bytes received by `producers`.
async fn received(producers: &[Producer]) -> (u64, u64) {
    let mut totals = (0, 0);
    for producer in producers {
        if let Ok(stats) = producer.get_stats().await {
            for stat in stats {
                totals.0 += stat.packet_count;
                totals.1 += stat.byte_count;
            }
        }
    }
    totals
}

impl Inner {
    /// Serves `stream.stats`.
    pub(crate) fn stream_stats(&self, stream: &str) -> Option<StreamStats> {
        let streams = lock(&self.streams);
        let local = streams.get(stream)?;
        let (packets, _) = local.received.get();
        Some(StreamStats { packets, receiving: local.received.receiving(Instant::now()) })
    }

    /// One round: counts, and re-pipes relayed streams that went silent.
    pub(crate) async fn check_liveness(self: &Arc<Self>, silence: &mut Silence, now: Instant) {
        let held: Vec<(String, Vec<Producer>, Option<PeerId>)> = lock(&self.streams)
            .iter()
            .map(|(stream, local)| (stream.clone(), local.producers.clone(), local.role.upstream()))
            .collect();
        silence.retain(&held.iter().map(|(s, _, _)| s.clone()).collect::<Vec<_>>());
        for (stream, producers, upstream) in held {
            let (packets, bytes) = received(&producers).await;
            if let Some(local) = lock(&self.streams).get(&stream) {
                local.received.set((packets, bytes));
            }
            let Some(upstream) = upstream else { continue };
            if !silence.silent(&stream, packets, now) {
                continue;
            }
            // Silent here: is the upstream receiving? Then the pipe between is broken.
            let Ok(params) = Value::serialized(&StreamParams { stream: stream.clone() }) else { continue };
            let upstream_receives =
                match crate::remote::call::<StreamStats>(self, upstream, "stream.stats", params).await {
                    Ok(stats) => stats.receiving,
                    Err(error) => {
                        debug!(stream, %upstream, %error, "upstream did not answer stream.stats");
                        false
                    }
                };
            if !upstream_receives {
                debug!(stream, "silent here and upstream: a quiet origin");
                continue;
            }
            warn!(stream, %upstream, "nothing arrives from the upstream while it receives: moving to another pipe");
            self.emit(NodeEvent::StreamSilent { stream: stream.clone(), upstream: upstream.to_string() });
            let inner = Arc::clone(self);
            self.spawn("repair a silent pipe", async move {
                let moved = match inner.move_stream(&stream, upstream, true).await {
                    Ok(true) => true,
                    // No other provider: a fresh pipe from the same upstream.
                    _ => inner.move_stream(&stream, upstream, false).await.unwrap_or(false),
                };
                info!(stream, moved, "silent pipe replaced");
            });
        }
    }

    /// Reads every egress's and every downstream pipe's sent counters. Only
    /// when asked ([`crate::Node::traffic`]), at most once a second: it is two worker requests per
    /// consumer, and reading them every half second cost each forwarded
    /// packet 15 % more CPU than bare mediasoup (the forwarding_capacity bench).
    pub(crate) async fn count_egresses(&self) {
        {
            let mut counted = lock(&self.egresses_counted);
            let now = Instant::now();
            if counted.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1)) {
                return;
            }
            *counted = Some(now);
        }
        let pipes: Vec<(String, PeerId, Vec<mafalda_media::mediasoup::prelude::Consumer>)> = lock(&self.streams)
            .iter()
            .flat_map(|(stream, local)| {
                local.pipes.iter().map(move |(peer, pipe)| (stream.clone(), *peer, pipe.consumers().to_vec()))
            })
            .collect();
        for (stream, peer, consumers) in pipes {
            let totals = sent(&consumers).await;
            if let Some(pipe) = lock(&self.streams).get(&stream).and_then(|local| local.pipes.get(&peer)) {
                pipe.sent.set(totals);
            }
        }
        let egresses: Vec<(String, Vec<mafalda_media::mediasoup::prelude::Consumer>)> = lock(&self.egresses)
            .iter()
            .map(|(id, record)| (id.clone(), record.consumers().cloned().collect()))
            .collect();
        for (id, consumers) in egresses {
            let totals = sent(&consumers).await;
            if let Some(record) = lock(&self.egresses).get(&id) {
                record.sent.set(totals);
            }
        }
    }

    /// A worker died or closed: what ran on it is re-made elsewhere.
    pub(crate) async fn worker_gone(self: &Arc<Self>) {
        let broken: Vec<(String, Option<PeerId>)> = lock(&self.streams)
            .iter()
            .filter(|(_, local)| local.producers.iter().any(Producer::closed))
            .map(|(stream, local)| (stream.clone(), local.role.upstream()))
            .collect();
        for (stream, upstream) in &broken {
            match upstream {
                Some(upstream) => {
                    warn!(stream, "the worker under a relayed stream is gone: piping it again");
                    if !matches!(self.move_stream(stream, *upstream, false).await, Ok(true)) {
                        self.end_stream(stream).await;
                    }
                }
                None => {
                    warn!(stream, "the worker under a publication is gone: ending it");
                    self.end_stream(stream).await;
                }
            }
        }
        // Egresses and downstream pipes of intact streams whose consumers closed.
        let streams: Vec<String> = lock(&self.streams).keys().cloned().collect();
        for stream in streams {
            let egress_broken = lock(&self.egresses)
                .values()
                .any(|record| record.stream == stream && record.consumers().any(|c| c.closed()));
            if egress_broken {
                self.reopen_egresses(&stream).await;
            }
            let pipes_broken: Vec<PeerId> = lock(&self.streams)
                .get_mut(&stream)
                .map(|local| {
                    let broken: Vec<PeerId> =
                        local.pipes.iter().filter(|(_, pipe)| pipe.is_broken()).map(|(peer, _)| *peer).collect();
                    for peer in &broken {
                        local.pipes.remove(peer);
                    }
                    broken
                })
                .unwrap_or_default();
            if !pipes_broken.is_empty() {
                self.move_downstream(&stream, pipes_broken).await;
            }
        }
    }
}

impl Inner {
    /// Moves what can move off `worker` (retired: nothing new goes there):
    /// relayed streams whose producers are on it are piped again onto another
    /// worker and their downstream moved, make-before-break; egresses whose
    /// consumers are on it are re-opened elsewhere. A publication's ingest
    /// cannot move (its publisher sends to that transport): it stays until
    /// the publication ends. Returns how many streams and egresses moved.
    pub(crate) async fn move_off_worker(self: &Arc<Self>, worker: WorkerId) -> (usize, usize) {
        let on_worker = |stream: &str, producer: &Producer| {
            self.router_of(stream).home_router(&producer.id()).is_some_and(|router| router.worker().id() == worker)
        };
        let relayed: Vec<(String, PeerId)> = lock(&self.streams)
            .iter()
            .filter_map(|(stream, local)| match local.role {
                Role::Relay { upstream } if local.producers.iter().any(|producer| on_worker(stream, producer)) => {
                    Some((stream.clone(), upstream))
                }
                _ => None,
            })
            .collect();
        let mut streams_moved = 0;
        for (stream, upstream) in relayed {
            streams_moved += usize::from(matches!(self.move_stream(&stream, upstream, false).await, Ok(true)));
        }
        let egress_streams: Vec<String> = lock(&self.egresses)
            .values()
            .filter(|record| record.routers().any(|router| router.worker().id() == worker))
            .map(|record| record.stream.clone())
            .collect();
        let mut egresses_moved = 0;
        for stream in egress_streams.iter().collect::<std::collections::BTreeSet<_>>() {
            self.reopen_egresses(stream).await;
            egresses_moved += egress_streams.iter().filter(|s| *s == stream).count();
        }
        info!(%worker, streams_moved, egresses_moved, "moved off a retired worker");
        (streams_moved, egresses_moved)
    }
}

/// Counts and repairs every [`CHECK_INTERVAL`] while the node holds a
/// stream (with none, it waits for one to be held: an idle node is not
/// woken twice a second for nothing); reacts to workers going away.
pub(crate) async fn watch_liveness(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut media_events = inner.media.events();
    let mut node_events = inner.events.subscribe();
    let mut silence = Silence::default();
    loop {
        let holds_streams = !lock(&inner.streams).is_empty();
        tokio::select! {
            _ = tick.tick(), if holds_streams => inner.check_liveness(&mut silence, Instant::now()).await,
            // Every stream held here is told (`StreamHeld`): the ticks start again.
            held = node_events.recv(), if !holds_streams => {
                if matches!(held, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                silence.retain(&[]);
                tick.reset();
            }
            event = media_events.recv() => match event {
                Ok(MediaEvent::WorkerGone { worker, died, lost_routers }) => {
                    if lost_routers > 0 || died {
                        warn!(%worker, died, lost_routers, "a worker holding routers is gone");
                    }
                    inner.worker_gone().await;
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => inner.worker_gone().await,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_silent_after_the_silence_and_alarms_once_per_silence() {
        let mut silence = Silence::default();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert!(!silence.silent("s", 10, at(0)));
        assert!(!silence.silent("s", 20, at(500)), "packets arrive");
        assert!(!silence.silent("s", 20, at(1500)));
        assert!(silence.silent("s", 20, at(2000)), "1.5 s without a packet");
        assert!(!silence.silent("s", 20, at(2500)), "one alarm, then it counts again");
        assert!(silence.silent("s", 20, at(3500)));
        assert!(!silence.silent("s", 21, at(4000)), "a packet ends the silence");
        silence.retain(&[]);
        assert!(!silence.silent("s", 21, at(9000)), "a forgotten stream starts over");
    }
}
