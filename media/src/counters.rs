//! Counts of the mediasoup objects on each worker, kept by mediasoup's own
//! creation and close callbacks so that every object is counted, whoever made it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use event_listener_primitives::HandlerId;
use mediasoup::prelude::{Consumer, Producer};
use mediasoup::router::{NewTransport, Router};
use mediasoup::worker::Worker;

/// Live objects on one worker.
#[derive(Debug, Default)]
pub struct Counters {
    routers: AtomicU32,
    transports: AtomicU32,
    producers: AtomicU32,
    consumers: AtomicU32,
}

/// A copy of the counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    /// Routers.
    pub routers: u32,
    /// Transports (of every kind, pipes included).
    pub transports: u32,
    /// Producers (pipe producers included).
    pub producers: u32,
    /// Consumers (pipe consumers included).
    pub consumers: u32,
}

impl Counters {
    /// The counts now.
    pub fn snapshot(&self) -> ObjectCounts {
        ObjectCounts {
            routers: self.routers.load(Ordering::Relaxed),
            transports: self.transports.load(Ordering::Relaxed),
            producers: self.producers.load(Ordering::Relaxed),
            consumers: self.consumers.load(Ordering::Relaxed),
        }
    }
}

fn up(counter: &AtomicU32) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn down_on_close(counters: &Arc<Counters>, pick: fn(&Counters) -> &AtomicU32) -> impl FnOnce() + Send + 'static {
    let counters = Arc::clone(counters);
    move || {
        let _ = pick(&counters).fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// Starts counting what is created on `worker`; keep the returned handler.
pub(crate) fn attach(worker: &Worker, counters: Arc<Counters>) -> HandlerId {
    worker.on_new_router(move |router: &Router| {
        up(&counters.routers);
        router.on_close(down_on_close(&counters, |c| &c.routers)).detach();
        let for_transports = Arc::clone(&counters);
        router
            .on_new_transport(move |transport: NewTransport<'_>| {
                let counters = &for_transports;
                up(&counters.transports);
                transport.on_close(Box::new(down_on_close(counters, |c| &c.transports))).detach();
                let for_producers = Arc::clone(counters);
                transport
                    .on_new_producer(Arc::new(move |producer: &Producer| {
                        up(&for_producers.producers);
                        producer.on_close(down_on_close(&for_producers, |c| &c.producers)).detach();
                    }))
                    .detach();
                let for_consumers = Arc::clone(counters);
                transport
                    .on_new_consumer(Arc::new(move |consumer: &Consumer| {
                        up(&for_consumers.consumers);
                        consumer.on_close(down_on_close(&for_consumers, |c| &c.consumers)).detach();
                    }))
                    .detach();
            })
            .detach();
    })
}
