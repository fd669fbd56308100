//! The spanning router (what Mafalda calls its Router): one logical router backed
//! by one mediasoup router per worker it uses. Producers live on the router where
//! they were produced; a consumer goes where placement says, and when that is
//! another worker, the producer is piped there once (`pipe_producer_to_router`)
//! and the pipe is reused by every later consumer there.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mediasoup::prelude::{
    Consumer, ConsumerOptions, PipeProducerToRouterPair, PipeToRouterOptions, PlainTransport, Producer, ProducerId,
    RouterOptions, RtpCodecCapability, Transport,
};
use mediasoup::router::{Router, RouterId};
use mediasoup::worker::Worker;

use crate::transports::plain_egress;
use crate::{MediaEngine, MediaError, consumer_capabilities};

struct Inner {
    id: String,
    engine: MediaEngine,
    media_codecs: Vec<RtpCodecCapability>,
    routers: tokio::sync::Mutex<Vec<Router>>,
    homes: Mutex<HashMap<ProducerId, Router>>,
    pipes: tokio::sync::Mutex<HashMap<(ProducerId, RouterId), PipeProducerToRouterPair>>,
}

/// One logical router spanning the workers it needs. Cheap to clone.
#[derive(Clone)]
pub struct SpanningRouter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SpanningRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanningRouter").field("id", &self.inner.id).finish_non_exhaustive()
    }
}

/// A consumer sending a producer's RTP out of a plain transport.
#[derive(Debug)]
pub struct PlainEgress {
    /// The transport (keep it: dropping it stops the output).
    pub transport: PlainTransport,
    /// The consumer on it.
    pub consumer: Consumer,
    /// The router (and so the worker) it landed on.
    pub router: Router,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SpanningRouter {
    /// A spanning router with these codecs, starting with one router where placement says.
    pub async fn new(
        engine: MediaEngine,
        id: impl Into<String>,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<Self, MediaError> {
        let first = engine.create_router(RouterOptions::new(media_codecs.clone())).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                id: id.into(),
                engine,
                media_codecs,
                routers: tokio::sync::Mutex::new(vec![first]),
                homes: Mutex::default(),
                pipes: tokio::sync::Mutex::default(),
            }),
        })
    }

    /// The logical router id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The mediasoup routers backing it, one per worker used.
    pub async fn routers(&self) -> Vec<Router> {
        self.inner.routers.lock().await.clone()
    }

    /// How many producer→router pipes exist.
    pub async fn pipe_count(&self) -> usize {
        self.inner.pipes.lock().await.len()
    }

    /// The router of this spanning router on `worker`, created if missing.
    async fn router_on(&self, worker: &Worker) -> Result<Router, MediaError> {
        let mut routers = self.inner.routers.lock().await;
        if let Some(router) = routers.iter().find(|r| r.worker().id() == worker.id()) {
            return Ok(router.clone());
        }
        let options = RouterOptions::new(self.inner.media_codecs.clone());
        let router = self.inner.engine.create_router_on(worker, options).await?;
        routers.push(router.clone());
        Ok(router)
    }

    /// The router new producers should go on (placement picks the worker).
    pub async fn ingest_router(&self) -> Result<Router, MediaError> {
        let worker = self.inner.engine.place().await?;
        self.router_on(&worker).await
    }

    /// The router a registered producer lives on.
    pub fn home_router(&self, producer_id: &ProducerId) -> Option<Router> {
        lock(&self.inner.homes).get(producer_id).cloned()
    }

    /// Remembers where `producer` lives; forgets it and its pipes when it closes.
    pub fn register_producer(&self, producer: &Producer, router: &Router) {
        lock(&self.inner.homes).insert(producer.id(), router.clone());
        let weak = Arc::downgrade(&self.inner);
        let id = producer.id();
        producer
            .on_close(move || {
                if let Some(inner) = weak.upgrade() {
                    lock(&inner.homes).remove(&id);
                    // mediasoup closes the pipe consumers and producers itself;
                    // drop our handles so nothing keeps them around.
                    if let Ok(mut pipes) = inner.pipes.try_lock() {
                        pipes.retain(|(producer, _), _| *producer != id);
                    }
                }
            })
            .detach();
    }

    /// The router a new consumer of `producer_id` should use: placement picks the
    /// worker; the producer is piped there first if it lives elsewhere.
    pub async fn consumer_router(&self, producer_id: ProducerId) -> Result<Router, MediaError> {
        let home = lock(&self.inner.homes)
            .get(&producer_id)
            .cloned()
            .ok_or_else(|| MediaError::UnknownProducer(producer_id.to_string()))?;
        let worker = self.inner.engine.place().await?;
        let router = self.router_on(&worker).await?;
        self.pipe_from_home(producer_id, &home, &router).await?;
        Ok(router)
    }

    /// Makes `producer_id` consumable on `router` (one of this spanning router's,
    /// e.g. the one a WebRTC transport lives on), piping it there once if needed.
    pub async fn make_available(&self, producer_id: ProducerId, router: &Router) -> Result<(), MediaError> {
        let home = lock(&self.inner.homes)
            .get(&producer_id)
            .cloned()
            .ok_or_else(|| MediaError::UnknownProducer(producer_id.to_string()))?;
        self.pipe_from_home(producer_id, &home, router).await
    }

    async fn pipe_from_home(&self, producer_id: ProducerId, home: &Router, router: &Router) -> Result<(), MediaError> {
        if router.id() == home.id() {
            return Ok(());
        }
        let mut pipes = self.inner.pipes.lock().await;
        if let std::collections::hash_map::Entry::Vacant(slot) = pipes.entry((producer_id, router.id())) {
            let pair = home
                .pipe_producer_to_router(producer_id, PipeToRouterOptions::new(router.clone()))
                .await
                .map_err(|e| MediaError::Request(e.to_string()))?;
            slot.insert(pair);
        }
        Ok(())
    }

    /// Consumes `producer_id` into a plain transport sending to `destination`.
    pub async fn consume_plain(
        &self,
        producer_id: ProducerId,
        ip: IpAddr,
        destination: SocketAddr,
    ) -> Result<PlainEgress, MediaError> {
        let router = self.consumer_router(producer_id).await?;
        let transport = plain_egress(&router, ip, destination).await?;
        let options = ConsumerOptions::new(producer_id, consumer_capabilities(&router.rtp_capabilities()));
        let consumer = transport.consume(options).await.map_err(|e| MediaError::Request(e.to_string()))?;
        Ok(PlainEgress { transport, consumer, router })
    }
}
