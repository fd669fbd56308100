//! Providing a stream in the DHT, retried in the background when no peer
//! stored the record yet; a relay provides once its first packet is here.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mafalda_media::mediasoup::prelude::Producer;
use mafalda_media::mediasoup::producer::{ProducerTraceEventData, ProducerTraceEventType};
use mafalda_swarm::stream_key;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::inner::{Inner, lock};

/// Longest a new relay waits for its first packet before it provides the
/// stream anyway (a paused or silent publisher sends nothing).
pub(crate) const FIRST_PACKET_WITHIN: Duration = Duration::from_millis(100);

impl Inner {
    /// Provides `stream`, which this node just started to relay, once its
    /// first packet has arrived here (at most [`FIRST_PACKET_WITHIN`]).
    ///
    /// Providing is a DHT walk to the closest peers and a message to each:
    /// about a millisecond of CPU at this node and at each of them. Run while
    /// the first packet crossed the new pipe, on a node of two cores, it held
    /// that packet back by about as long (`node_paths`: 0.8 ms of a 2.2 ms
    /// first packet). The packet goes first, the bookkeeping after.
    pub(crate) async fn announce_relay(self: &Arc<Self>, stream: &str) {
        let producers: Vec<Producer> =
            lock(&self.streams).get(stream).map(|local| local.producers.clone()).unwrap_or_default();
        let arrived = first_packet_at(&producers, FIRST_PACKET_WITHIN).await;
        // The next consume here may take a spare end, opened now that the
        // worker is done setting this one up (`spare_pipes`).
        if let Some(router) = producers.first().and_then(|p| self.router_of(stream).home_router(&p.id())) {
            self.replenish_spare(&router);
        }
        debug!(stream, arrived, "providing a relayed stream");
        self.announce(stream).await;
    }

    /// Provides `stream` in the DHT. When no peer stored the record (a busy or
    /// still-forming swarm), tries again in the background after 1, 2, 4, 8
    /// and 16 s while the stream is held, rather than waiting minutes for
    /// Kademlia's next republication.
    pub(crate) async fn announce(self: &Arc<Self>, stream: &str) {
        if matches!(self.swarm.provide(stream_key(stream)).await, Ok(stored) if stored > 0) {
            return;
        }
        // Weak: the retries must not keep a stopped node's state alive.
        let weak = Arc::downgrade(self);
        let stream = stream.to_owned();
        self.spawn("announce retries", async move {
            for delay in [1, 2, 4, 8, 16] {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                let Some(inner) = weak.upgrade() else { return };
                if !lock(&inner.streams).contains_key(&stream) {
                    return;
                }
                match inner.swarm.provide(stream_key(&stream)).await {
                    Ok(stored) if stored > 0 => return debug!(stream, stored, "provider record stored on retry"),
                    Ok(_) => debug!(stream, "no peer stored the provider record yet"),
                    Err(error) => debug!(stream, %error, "provider announcement failed"),
                }
            }
            warn!(stream, "no peer stored the provider record; Kademlia republishes it later");
        });
    }
}

/// Whether one of `producers` receives an RTP packet within `within` (a
/// packet that arrived before the call does not count: the next one does).
/// The worker reports each packet only while this waits.
async fn first_packet_at(producers: &[Producer], within: Duration) -> bool {
    if producers.is_empty() {
        return false;
    }
    let (arrived, first) = oneshot::channel::<()>();
    let arrived = Arc::new(Mutex::new(Some(arrived)));
    let _handlers: Vec<_> = producers
        .iter()
        .map(|producer| {
            let arrived = Arc::clone(&arrived);
            producer.on_trace(move |event| {
                if matches!(event, ProducerTraceEventData::Rtp { .. })
                    && let Some(arrived) = arrived.lock().unwrap_or_else(PoisonError::into_inner).take()
                {
                    let _ = arrived.send(());
                }
            })
        })
        .collect();
    let traced = |types: Vec<ProducerTraceEventType>| {
        futures::future::join_all(producers.iter().map(move |producer| {
            let types = types.clone();
            async move { producer.enable_trace_event(types).await.is_ok() }
        }))
    };
    if !traced(vec![ProducerTraceEventType::Rtp]).await.into_iter().any(|enabled| enabled) {
        return false;
    }
    let came = tokio::time::timeout(within, first).await.is_ok_and(|sent| sent.is_ok());
    traced(Vec::new()).await;
    came
}
