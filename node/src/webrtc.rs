//! WebRTC apps (mediasoup-client and the like): the node's side of publishing
//! tracks from a WebRTC transport as a stream, and consuming a stream — held
//! here or piped from the swarm — on one.
//!
//! The transports, producers and consumers belong to the app connection that
//! made them (see `api::webrtc`); this module only joins them to streams.

use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{
    Consumer, ConsumerOptions, MediaKind, Producer, ProducerId, ProducerOptions, RtpCapabilities,
    RtpCapabilitiesFinalized, RtpParameters, Transport, WebRtcTransport,
};
use mafalda_media::transports::webrtc_transport;
use tracing::info;

use crate::events::NodeEvent;
use crate::inner::{Inner, lock};
use crate::streams::{LocalStream, Role, StreamRef, validate_stream_id, version_now};
use crate::{Node, NodeError};

/// Most tracks one stream may have.
const MAX_TRACKS: usize = 8;

impl Node {
    /// The RTP capabilities of the node's routers (every router has the same
    /// codecs), which a WebRTC client loads its device with.
    pub async fn rtp_capabilities(&self) -> Result<RtpCapabilitiesFinalized, NodeError> {
        Ok(self.inner.router.ingest_router().await?.rtp_capabilities().clone())
    }

    /// A new WebRTC transport (send or receive) on the router placement picks,
    /// through that worker's WebRtcServer. Fails clearly if WebRTC is not
    /// configured on this node.
    pub async fn webrtc_transport(&self) -> Result<WebRtcTransport, NodeError> {
        let router = self.inner.router.ingest_router().await?;
        Ok(webrtc_transport(self.media(), &router).await?)
    }

    /// Produces a track on `transport` and publishes it as part of `stream`
    /// (the first track creates the stream here and provides it). The stream
    /// ends when any of its tracks closes (its transport closing included).
    pub async fn produce_webrtc(
        &self,
        transport: &WebRtcTransport,
        stream: &str,
        kind: MediaKind,
        rtp_parameters: RtpParameters,
    ) -> Result<Producer, NodeError> {
        validate_stream_id(stream)?;
        {
            let streams = lock(&self.inner.streams);
            if let Some(local) = streams.get(stream)
                && (local.role != Role::Origin || local.producers.len() >= MAX_TRACKS)
            {
                return Err(NodeError::AlreadyPublished(stream.to_owned()));
            }
        }
        let producer = transport
            .produce(ProducerOptions::new(kind, rtp_parameters))
            .await
            .map_err(|e| NodeError::InvalidInput(format!("track rejected: {e}")))?;
        self.inner.router.register_producer(&producer, transport.router());
        let first = {
            let mut streams = lock(&self.inner.streams);
            let keypair = &self.inner.config.swarm.keypair;
            let first = match streams.get_mut(stream) {
                Some(local) => {
                    // A new track: the origin signs the record again, so the
                    // pipes it offers from now on match what it says.
                    local.producers.push(producer.clone());
                    local.resign(keypair, stream)?;
                    false
                }
                None => {
                    let local = LocalStream::originate(keypair, stream, version_now(), vec![producer.clone()], None)?;
                    streams.insert(stream.to_owned(), local);
                    true
                }
            };
            if let Some(local) = streams.get(stream) {
                self.inner.emit(NodeEvent::StreamHeld { status: self.inner.status_of(stream, local) });
            }
            first
        };
        end_stream_when_closed(&self.inner, &producer, stream);
        if first {
            self.inner.announce(stream).await;
            info!(stream, "published from WebRTC");
        }
        Ok(producer)
    }

    /// Consumes every track of `stream` (an id, or `ID@PEERID`) on `transport` with the app's
    /// `capabilities`, piping the stream here first if another node has it.
    /// Consumers start paused: the app resumes them once it is ready.
    pub async fn consume_webrtc(
        &self,
        transport: &WebRtcTransport,
        stream: &str,
        capabilities: RtpCapabilities,
    ) -> Result<Vec<Consumer>, NodeError> {
        let wanted = StreamRef::parse(stream)?;
        self.inner.ensure_local(&wanted).await?.done().await;
        let producers: Vec<_> = {
            let streams = lock(&self.inner.streams);
            let local = streams.get(&wanted.id).ok_or_else(|| NodeError::NotFound(stream.to_owned()))?;
            local.producers.iter().map(Producer::id).collect()
        };
        let router = transport.router();
        let mut consumers = Vec::new();
        for producer_id in producers {
            if !router.can_consume(&producer_id, &capabilities) {
                let error = format!("the client cannot receive track {producer_id} (no common codec)");
                return Err(NodeError::InvalidInput(error));
            }
            self.inner.router_of(&wanted.id).make_available(producer_id, router).await?;
            let mut options = ConsumerOptions::new(producer_id, capabilities.clone());
            options.paused = true;
            let consumer = transport.consume(options).await.map_err(|e| NodeError::InvalidInput(e.to_string()))?;
            count_while_open(&self.inner, &consumer, &wanted.id);
            consumers.push(consumer);
        }
        Ok(consumers)
    }
}

impl Inner {
    /// Publishes `producer` (made by an app on `router`) as the one track of
    /// the new stream `stream`, originated here; the stream ends when the
    /// producer closes. Announced in the background.
    pub(crate) fn publish_producer(
        self: &Arc<Self>,
        stream: &str,
        producer: &Producer,
        router: &mafalda_media::mediasoup::router::Router,
    ) -> Result<(), NodeError> {
        validate_stream_id(stream)?;
        let keypair = &self.config.swarm.keypair;
        let local = LocalStream::originate(keypair, stream, version_now(), vec![producer.clone()], None)?;
        {
            let mut streams = lock(&self.streams);
            if streams.contains_key(stream) {
                return Err(NodeError::AlreadyPublished(stream.to_owned()));
            }
            self.emit(NodeEvent::StreamHeld { status: self.status_of(stream, &local) });
            streams.insert(stream.to_owned(), local);
        }
        self.router_of(stream).register_producer(producer, router);
        end_stream_when_closed(self, producer, stream);
        let (inner, stream) = (Arc::clone(self), stream.to_owned());
        self.spawn("announce", async move { inner.announce(&stream).await });
        Ok(())
    }
}

/// Ends `stream` here once `producer` closes (the app closed it, or its transport).
fn end_stream_when_closed(inner: &Arc<Inner>, producer: &Producer, stream: &str) {
    let weak = Arc::downgrade(inner);
    let stream = stream.to_owned();
    let producer_id = producer.id();
    // mediasoup calls back on its own thread, outside the runtime.
    let runtime = tokio::runtime::Handle::current();
    producer
        .on_close(move || {
            if let Some(inner) = weak.upgrade() {
                end_track(&runtime, inner, stream.clone(), producer_id);
            }
        })
        .detach();
}

/// Ends `stream` here (in the background) if `producer_id` is one of its tracks.
pub(crate) fn end_track(runtime: &tokio::runtime::Handle, inner: Arc<Inner>, stream: String, producer_id: ProducerId) {
    let ours = lock(&inner.streams).get(&stream).is_some_and(|l| l.producers.iter().any(|p| p.id() == producer_id));
    if ours {
        inner.clone().tasks.spawn_on(runtime, "end stream", async move {
            inner.end_stream(&stream).await;
        });
    }
}

impl Node {
    /// The app that published `producer_id` into `stream` let go of it (closed
    /// it, its transport, or its connection): the stream ends here. The node
    /// holds the producer itself, so it would not close on its own.
    pub fn release_webrtc_track(&self, stream: &str, producer_id: ProducerId) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            end_track(&runtime, Arc::clone(&self.inner), stream.to_owned(), producer_id);
        }
    }
}

/// Counts `consumer` as a local consumer of `stream` until it closes (a relay
/// with none lets the stream go after its linger).
pub(crate) fn count_while_open(inner: &Arc<Inner>, consumer: &Consumer, stream: &str) {
    *lock(&inner.webrtc_consumers).entry(stream.to_owned()).or_default() += 1;
    let weak = Arc::downgrade(inner);
    let stream = stream.to_owned();
    consumer
        .on_close(move || {
            let Some(inner) = weak.upgrade() else { return };
            let mut counts = lock(&inner.webrtc_consumers);
            if let Some(count) = counts.get_mut(&stream) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&stream);
                }
            }
        })
        .detach();
}
