//! Egresses: a stream's tracks sent as plain RTP to an address, restarted
//! with new SSRCs after a re-pipe.

use std::net::SocketAddr;

use mafalda_media::{PlainEgress, PlainEnd};

use crate::NodeError;
use crate::codecs::TrackSummary;
use crate::events::{EgressStatus, NodeEvent};
use crate::inner::{Inner, lock};
use crate::node::Egress;

/// Longest an egress's old consumers keep sending after a re-pipe while some
/// of its new ones have sent nothing (a track with no packets flowing, a key
/// frame slow to come).
const HANDOVER_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

/// How often the new consumers are asked whether they have sent.
const HANDOVER_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// An egress: where a stream's RTP goes, and the consumers sending it.
pub(crate) struct EgressRecord {
    pub(crate) stream: String,
    pub(crate) destination: SocketAddr,
    /// Per-track destination ports, when the app asked for them.
    pub(crate) track_ports: Option<Vec<u16>>,
    tracks: Vec<TrackSummary>,
    path: Vec<String>,
    /// Held so they keep sending; dropping the record closes them.
    consumers: Vec<PlainEgress>,
    /// What it sent, as last counted.
    pub(crate) sent: crate::liveness::Counters,
}

impl EgressRecord {
    /// The routers (so the workers) its consumers are on.
    pub(crate) fn routers(&self) -> impl Iterator<Item = &mafalda_media::mediasoup::router::Router> {
        self.consumers.iter().map(|egress| &egress.router)
    }

    /// The consumers sending it.
    pub(crate) fn consumers(&self) -> impl Iterator<Item = &mafalda_media::mediasoup::prelude::Consumer> {
        self.consumers.iter().map(|egress| &egress.consumer)
    }
}

impl Inner {
    /// How many egresses are running.
    pub(crate) fn egress_count(&self) -> usize {
        lock(&self.egresses).len()
    }

    /// Opens every egress of `stream` again on the producers it has now (new
    /// SSRCs, announced as re-opened); an egress that cannot be is closed.
    /// The old consumers keep sending until each new one has sent a packet
    /// (a video one waits for a key frame; at most [`HANDOVER_WITHIN`]): a
    /// packet that reached the new producers before their consumers existed,
    /// and the old ones after theirs closed (the old path is longer), would
    /// otherwise be lost.
    pub(crate) async fn reopen_egresses(&self, stream: &str) {
        let egresses: Vec<(String, SocketAddr, Option<Vec<u16>>)> = lock(&self.egresses)
            .iter()
            .filter(|(_, record)| record.stream == stream)
            .map(|(id, record)| (id.clone(), record.destination, record.track_ports.clone()))
            .collect();
        let mut retiring = Vec::new();
        let mut new_consumers = Vec::new();
        for (id, destination, track_ports) in egresses {
            match self.open_egress_replacing(&id, stream, destination, track_ports, None).await {
                Ok((_, replaced)) => {
                    retiring.extend(replaced);
                    if let Some(record) = lock(&self.egresses).get(&id) {
                        new_consumers.extend(record.consumers().cloned());
                    }
                }
                Err(error) => {
                    tracing::warn!(stream, egress = %id, %error, "could not restart an egress");
                    lock(&self.egresses).remove(&id);
                    let reason = format!("could not restart after a re-pipe: {error}");
                    self.emit(NodeEvent::EgressClosed { id, stream: stream.to_owned(), reason });
                }
            }
        }
        if retiring.is_empty() {
            return;
        }
        let started = tokio::time::Instant::now();
        let mut waiting = new_consumers;
        while !waiting.is_empty() && started.elapsed() < HANDOVER_WITHIN {
            let mut still = Vec::with_capacity(waiting.len());
            for consumer in waiting {
                if crate::liveness::sent(std::slice::from_ref(&consumer)).await.0 == 0 {
                    still.push(consumer);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(HANDOVER_POLL).await;
            }
        }
        tracing::debug!(stream, took = ?started.elapsed(), "egresses handed over to the new consumers");
        drop(retiring);
    }

    /// Sends `stream`'s tracks to `destination` under egress `id`; the first
    /// track goes through `first_end` when one was opened ahead (see
    /// [`Inner::open_first_egress_end`]).
    pub(crate) async fn open_egress(
        &self,
        id: &str,
        stream: &str,
        destination: SocketAddr,
        track_ports: Option<Vec<u16>>,
        first_end: Option<PlainEnd>,
    ) -> Result<Egress, NodeError> {
        let (egress, replaced) = self.open_egress_replacing(id, stream, destination, track_ports, first_end).await?;
        drop(replaced);
        Ok(egress)
    }

    /// [`Inner::open_egress`], handing back the record of the egress `id`
    /// it replaced, if any, still sending until the caller drops it.
    async fn open_egress_replacing(
        &self,
        id: &str,
        stream: &str,
        destination: SocketAddr,
        track_ports: Option<Vec<u16>>,
        mut first_end: Option<PlainEnd>,
    ) -> Result<(Egress, Option<EgressRecord>), NodeError> {
        let (producer_ids, path) = {
            let streams = lock(&self.streams);
            let local = streams.get(stream).ok_or_else(|| NodeError::NotFound(stream.to_owned()))?;
            (local.producers.iter().map(|p| p.id()).collect::<Vec<_>>(), local.path())
        };
        let mut consumers = Vec::new();
        let mut tracks = Vec::new();
        for producer_id in producer_ids {
            let port = match &track_ports {
                Some(ports) => *ports.get(consumers.len()).ok_or_else(|| {
                    NodeError::InvalidInput(format!(
                        "stream {stream} has more tracks than the {} ports given",
                        ports.len()
                    ))
                })?,
                None => destination.port(),
            };
            let target = SocketAddr::new(destination.ip(), port);
            let spanning = self.router_of(stream);
            let egress = match first_end.take() {
                Some(end) => spanning.consume_plain_on(producer_id, end).await?,
                None => spanning.consume_plain(producer_id, self.config.media_ip, target).await?,
            };
            tracks.push(TrackSummary::of(egress.consumer.kind(), egress.consumer.rtp_parameters()));
            consumers.push(egress);
        }
        let record = EgressRecord {
            stream: stream.to_owned(),
            destination,
            track_ports: track_ports.clone(),
            tracks: tracks.clone(),
            path: path.clone(),
            consumers,
            sent: crate::liveness::Counters::default(),
        };
        let ports: Vec<u16> = (0..tracks.len())
            .map(|i| track_ports.as_ref().and_then(|p| p.get(i).copied()).unwrap_or(destination.port()))
            .collect();
        let sdp = crate::codecs::receiver_sdp(stream, destination.ip(), &tracks, &ports);
        let opened = NodeEvent::EgressOpened { egress: record.status(id) };
        // Held first, then told: an app's mirror syncs from the held egresses
        // when it hears the event, and would miss one told too early.
        let replaced = lock(&self.egresses).insert(id.to_owned(), record);
        self.emit(opened);
        Ok((Egress { id: id.to_owned(), tracks, path, sdp }, replaced))
    }

    /// The plain transport an egress of `stream` to `destination` sends its
    /// first track through, opened while the stream is being fetched: the
    /// first packet then waits for one worker call after the stream is here
    /// (the consume), not three. `None` when it cannot be opened (the egress
    /// opens its own then, and says why).
    pub(crate) async fn open_first_egress_end(
        &self,
        stream: &str,
        destination: SocketAddr,
        track_ports: Option<&[u16]>,
    ) -> Option<PlainEnd> {
        let port = track_ports.and_then(|ports| ports.first().copied()).unwrap_or(destination.port());
        let target = SocketAddr::new(destination.ip(), port);
        self.router_of(stream).open_plain(self.config.media_ip, target).await.ok()
    }

    /// How many egresses send `stream`.
    pub(crate) fn egress_count_of(&self, stream: &str) -> usize {
        lock(&self.egresses).values().filter(|record| record.stream == stream).count()
    }
}

impl EgressRecord {
    pub(crate) fn status(&self, id: &str) -> EgressStatus {
        EgressStatus {
            id: id.to_owned(),
            stream: self.stream.clone(),
            destination: self.destination,
            tracks: self.tracks.clone(),
            path: self.path.clone(),
        }
    }
}
