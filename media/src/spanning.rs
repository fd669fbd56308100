//! The spanning router (what Mafalda calls its Router): one logical router backed
//! by one mediasoup router per worker it uses. Producers live on the router where
//! they were produced; a consumer goes where placement says, and when that is
//! another worker, the producer is piped there once (`pipe_producer_to_router`)
//! and the pipe is reused by every later consumer there.
//!
//! # Letting go
//!
//! mediasoup's Rust handles are reference counted: a router closes when its last
//! handle is dropped, and it holds its worker, which closes when the pool and
//! every router have let go of it. A spanning router that kept every router (and
//! every pipe) it ever made would keep every worker it ever used busy for ever,
//! so the pool could never close one. Instead, on every pass of
//! [`SpanningRouter::release_idle`] (which [`MediaEngine::reap_idle`] runs for
//! every live spanning router, so the node's periodic reap is all it takes):
//! - a pipe whose target router has no consumer of its producer left is closed
//!   (both halves: the pipe consumer at home and the pipe producer there);
//! - then a router with no transport left (no producer, no consumer, no pipe
//!   end) is dropped, so its worker holds no router and the pool's idle grace
//!   starts.
//!
//! Consumers are counted per router and producer by mediasoup's own creation and
//! close callbacks, so WebRTC consumers made by the node's apps count as well as
//! [`SpanningRouter::consume_plain`]'s. A pipe or router handed out (by
//! [`SpanningRouter::consumer_router`], [`SpanningRouter::make_available`],
//! [`SpanningRouter::ingest_router`]) is kept through at least one whole pass,
//! so the caller has a pass interval (2 s in the node) to put its transport or
//! consumer on it. A router that is needed again later is simply created again
//! where placement says; a pipe likewise (a few worker requests). Only the
//! worker, the costly part, waits out a grace period, in the pool.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mediasoup::prelude::{
    Consumer, ConsumerOptions, PipeToRouterOptions, PlainTransport, Producer, ProducerId, RouterOptions,
    RtpCodecCapability, Transport,
};
use mediasoup::router::{NewTransport, Router, RouterId};
use mediasoup::worker::Worker;
use tracing::debug;

use crate::engine::IdleRelease;
use crate::transports::plain_egress;
use crate::{MediaEngine, MediaError, consumer_capabilities};

/// What is on one of the routers, kept by mediasoup's callbacks.
#[derive(Default)]
struct Usage {
    /// Transports of every kind (pipe ends included).
    transports: AtomicU32,
    /// Open consumers per producer consumed.
    consumers: Mutex<HashMap<ProducerId, u32>>,
}

impl Usage {
    fn consumers_of(&self, producer: &ProducerId) -> u32 {
        lock(&self.consumers).get(producer).copied().unwrap_or(0)
    }
}

/// One router of the spanning router.
struct Member {
    router: Router,
    usage: Arc<Usage>,
    /// The release pass during which it was last handed out.
    wanted: u64,
}

/// Both halves of a producer piped to another router; dropping it closes them.
struct Pipe {
    /// On the target router. A plain `Producer` (not mediasoup's `PipedProducer`,
    /// which never closes on drop) so that dropping it closes it.
    producer: Producer,
    /// On the home router; closes with the producer above.
    _consumer: Consumer,
    /// The release pass during which it was last asked for.
    wanted: u64,
}

struct Inner {
    id: String,
    engine: MediaEngine,
    media_codecs: Vec<RtpCodecCapability>,
    routers: tokio::sync::Mutex<Vec<Member>>,
    homes: Mutex<HashMap<ProducerId, Router>>,
    pipes: tokio::sync::Mutex<HashMap<(ProducerId, RouterId), Pipe>>,
    /// Release passes begun so far.
    passes: AtomicU64,
}

/// What one [`SpanningRouter::release_idle`] pass let go of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Pipes closed (producer→router pairs nobody consumed any more).
    pub pipes: usize,
    /// Routers dropped (they held nothing).
    pub routers: usize,
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

/// A plain transport opened and connected to its destination, nothing
/// consumed into it yet ([`SpanningRouter::open_plain`]).
#[derive(Debug)]
pub struct PlainEnd {
    transport: PlainTransport,
    router: Router,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts `router`'s transports and its consumers per producer as mediasoup
/// creates and closes them, whoever makes them (the node's WebRTC apps too).
fn watch(router: &Router) -> Arc<Usage> {
    let usage = Arc::new(Usage::default());
    let counting = Arc::clone(&usage);
    router
        .on_new_transport(move |transport: NewTransport<'_>| {
            counting.transports.fetch_add(1, Ordering::Relaxed);
            let closing = Arc::clone(&counting);
            transport
                .on_close(Box::new(move || {
                    let _ = closing.transports.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                }))
                .detach();
            let consumers = Arc::clone(&counting);
            transport
                .on_new_consumer(Arc::new(move |consumer: &Consumer| {
                    let producer = consumer.producer_id();
                    *lock(&consumers.consumers).entry(producer).or_default() += 1;
                    let closing = Arc::clone(&consumers);
                    consumer
                        .on_close(move || {
                            let mut counts = lock(&closing.consumers);
                            if let Some(count) = counts.get_mut(&producer) {
                                *count = count.saturating_sub(1);
                                if *count == 0 {
                                    counts.remove(&producer);
                                }
                            }
                        })
                        .detach();
                }))
                .detach();
        })
        .detach();
    usage
}

impl SpanningRouter {
    /// A spanning router with these codecs, starting with one router where
    /// placement says. The engine's [`MediaEngine::reap_idle`] lets go of its
    /// idle pipes and routers from now on (see the module docs).
    pub async fn new(
        engine: MediaEngine,
        id: impl Into<String>,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<Self, MediaError> {
        let spanning = Self::new_lazy(engine, id, media_codecs);
        // The first router, so that a bad codec list fails here rather than later.
        let _kept_by_the_spanning_router = spanning.ingest_router().await?;
        Ok(spanning)
    }

    /// Like [`SpanningRouter::new`], making no router until one is asked for
    /// (codecs already known to be good: another spanning router uses them).
    pub fn new_lazy(engine: MediaEngine, id: impl Into<String>, media_codecs: Vec<RtpCodecCapability>) -> Self {
        let spanning = Self {
            inner: Arc::new(Inner {
                id: id.into(),
                engine: engine.clone(),
                media_codecs,
                routers: tokio::sync::Mutex::default(),
                homes: Mutex::default(),
                pipes: tokio::sync::Mutex::default(),
                passes: AtomicU64::new(0),
            }),
        };
        let weak: std::sync::Weak<dyn IdleRelease> = Arc::downgrade(&spanning.inner) as _;
        engine.register_idle_release(weak);
        spanning
    }

    /// The logical router id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The mediasoup routers backing it, one per worker used now.
    pub async fn routers(&self) -> Vec<Router> {
        self.inner.routers.lock().await.iter().map(|member| member.router.clone()).collect()
    }

    /// How many producer→router pipes exist.
    pub async fn pipe_count(&self) -> usize {
        self.inner.pipes.lock().await.len()
    }

    /// The router of this spanning router on `worker`, created if missing.
    async fn router_on(&self, worker: &Worker) -> Result<Router, MediaError> {
        let mut routers = self.inner.routers.lock().await;
        let pass = self.inner.passes.load(Ordering::SeqCst);
        if let Some(member) = routers.iter_mut().find(|m| m.router.worker().id() == worker.id()) {
            member.wanted = pass;
            return Ok(member.router.clone());
        }
        let options = RouterOptions::new(self.inner.media_codecs.clone());
        let router = self.inner.engine.create_router_on(worker, options).await?;
        let usage = watch(&router);
        routers.push(Member { router: router.clone(), usage, wanted: pass });
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
                    // drop our handles so nothing keeps them around (the next
                    // release pass does it if the map is busy now).
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
    /// Consume on it within a release pass: a pipe nobody consumes is closed.
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
        // Read under the lock: a pass that began before it cannot release this pipe
        // (it stamps `passes` first and only then takes the lock).
        let pass = self.inner.passes.load(Ordering::SeqCst);
        match pipes.entry((producer_id, router.id())) {
            std::collections::hash_map::Entry::Occupied(mut slot) => slot.get_mut().wanted = pass,
            std::collections::hash_map::Entry::Vacant(slot) => {
                let pair = home
                    .pipe_producer_to_router(producer_id, PipeToRouterOptions::new(router.clone()))
                    .await
                    .map_err(|e| MediaError::Request(e.to_string()))?;
                slot.insert(Pipe {
                    producer: pair.pipe_producer.into_inner(),
                    _consumer: pair.pipe_consumer,
                    wanted: pass,
                });
            }
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
        let end = self.open_plain(ip, destination).await?;
        self.consume_plain_on(producer_id, end).await
    }

    /// A plain transport on `ip` sending to `destination`, on the router a
    /// consumer would be placed on now, opened before its producer is known
    /// (while the stream is fetched from another node, say); consume into it
    /// with [`SpanningRouter::consume_plain_on`]. Dropping it closes it.
    pub async fn open_plain(&self, ip: IpAddr, destination: SocketAddr) -> Result<PlainEnd, MediaError> {
        let worker = self.inner.engine.place().await?;
        let router = self.router_on(&worker).await?;
        let transport = plain_egress(&router, ip, destination).await?;
        Ok(PlainEnd { transport, router })
    }

    /// Consumes `producer_id` into `end` (piping it to `end`'s router first if
    /// it lives on another).
    pub async fn consume_plain_on(&self, producer_id: ProducerId, end: PlainEnd) -> Result<PlainEgress, MediaError> {
        let PlainEnd { transport, router } = end;
        self.make_available(producer_id, &router).await?;
        let options = ConsumerOptions::new(producer_id, consumer_capabilities(&router.rtp_capabilities()));
        let consumer = transport.consume(options).await.map_err(|e| MediaError::Request(e.to_string()))?;
        Ok(PlainEgress { transport, consumer, router })
    }

    /// One release pass: closes the pipes whose target router has no consumer of
    /// their producer left, then drops the routers that hold no transport, so
    /// that their workers can go idle. What was handed out since the previous
    /// pass is kept. [`MediaEngine::reap_idle`] runs this for every live
    /// spanning router; call it yourself only without a reaping engine.
    ///
    /// Never waits: if a router or pipe is being made right now, this pass skips
    /// (the next one catches up).
    pub fn release_idle(&self) -> Released {
        self.inner.release_idle()
    }
}

impl Inner {
    fn release_idle(&self) -> Released {
        // Everything stamped with a pass before this one was handed out before the
        // previous pass began, so its caller had a whole interval to use it.
        let current = self.passes.fetch_add(1, Ordering::SeqCst);
        let (Ok(mut routers), Ok(mut pipes)) = (self.routers.try_lock(), self.pipes.try_lock()) else {
            return Released::default();
        };
        let usage_of = |router: &RouterId| routers.iter().find(|m| m.router.id() == *router).map(|m| &m.usage);
        let idle_pipes: Vec<(ProducerId, RouterId)> = pipes
            .iter()
            .filter(|((producer, target), pipe)| {
                // A producer that closed leaves a dead pipe behind; an unknown target
                // is not ours to judge, so it is kept until its producer closes.
                pipe.producer.closed()
                    || (pipe.wanted < current
                        && usage_of(target).is_some_and(|usage| usage.consumers_of(producer) == 0))
            })
            .map(|(key, _)| *key)
            .collect();
        let closed_pipes: Vec<Pipe> = idle_pipes.iter().filter_map(|key| pipes.remove(key)).collect();
        let released_pipes = closed_pipes.len();
        // Closing them now (mediasoup closes on drop, synchronously for its own
        // callbacks) brings the pipe ends' transports off the routers' counts.
        drop(closed_pipes);
        let homes: Vec<RouterId> = lock(&self.homes).values().map(Router::id).collect();
        let mut dropped = Vec::new();
        routers.retain(|member| {
            let id = member.router.id();
            let empty = member.usage.transports.load(Ordering::Relaxed) == 0
                && member.wanted < current
                && !homes.contains(&id)
                && !pipes.keys().any(|(_, target)| *target == id);
            if empty {
                dropped.push(member.router.clone());
            }
            !empty
        });
        drop((routers, pipes));
        let released = Released { pipes: released_pipes, routers: dropped.len() };
        for router in &dropped {
            debug!(spanning = %self.id, router = %router.id(), worker = %router.worker().id(), "dropping an empty router");
        }
        // Our handles are the last (nothing else holds an empty router): the
        // routers close here and their workers hold one router fewer.
        drop(dropped);
        if released != Released::default() {
            debug!(spanning = %self.id, pipes = released.pipes, routers = released.routers, "released idle media");
        }
        released
    }
}

impl IdleRelease for Inner {
    fn release_idle(&self) {
        Inner::release_idle(self);
    }

    fn release_all(&self) {
        // The engine closes after the node's tasks have stopped: nobody holds
        // these locks any more, and one still held is skipped, not waited for.
        let pipes = self.pipes.try_lock().map(|mut pipes| std::mem::take(&mut *pipes)).unwrap_or_default();
        let routers = self.routers.try_lock().map(|mut routers| std::mem::take(&mut *routers)).unwrap_or_default();
        let homes = std::mem::take(&mut *lock(&self.homes));
        debug!(spanning = %self.id, pipes = pipes.len(), routers = routers.len(), "releasing all media");
        drop((pipes, homes, routers));
    }
}
