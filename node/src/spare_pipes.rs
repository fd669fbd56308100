//! Pipe transports a node opens ahead of need, one per router it pipes
//! from or to, so that a provider's answer to `stream.pipe` does not wait
//! for mediasoup to open one (a worker call, about a tenth of a remote
//! consume's first packet), nor does a consume's end of the pipe (the
//! describes that ask the origin to pipe at once wait for it).
//!
//! Policy ([`Spares`], no mediasoup in it): at most one spare per router, one
//! being opened at a time per router, [`MAX_SPARE_PIPES`] in all; a spare is
//! handed out once. Mechanism (`Inner::pipe_end_on`, `Inner::replenish_spare`):
//! a spare is opened after a pipe is served from its router, and after a
//! relay pulled onto it has its first packet (not during: the worker
//! answers in order, and the first packet would wait for the spare too). A
//! spare is an unconnected transport holding one UDP port; it closes with
//! the node, and within a second of its router holding no stream here
//! (`Inner::let_go_of_unneeded_spares`), so that it never keeps an emptied
//! router or worker alive. No peer can make more of them than the cap:
//! whatever it asks, one per router.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use mafalda_media::mediasoup::prelude::{PipeTransport, Router, Transport};
use mafalda_media::mediasoup::router::RouterId;
use mafalda_media::pipe::PipeEndpoint;
use tracing::debug;

use crate::NodeError;
use crate::inner::{Inner, lock};
use crate::pipes::open_pipe_on;

/// Most spare pipe transports a node keeps, over all its routers.
pub const MAX_SPARE_PIPES: usize = 8;

/// A spare: the transport and the endpoint an asker is told.
pub(crate) type SparePipe = (PipeTransport, PipeEndpoint);

enum Slot<T> {
    Opening,
    Ready(T),
}

/// Which router has a spare, or one being opened.
pub(crate) struct Spares<K = RouterId, T = SparePipe> {
    slots: HashMap<K, Slot<T>>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, T> Spares<K, T> {
    /// Empty, keeping at most `cap`.
    pub(crate) fn new(cap: usize) -> Self {
        Self { slots: HashMap::new(), cap }
    }

    /// Takes the spare ready for `key`, if there is one.
    pub(crate) fn take(&mut self, key: &K) -> Option<T> {
        if !matches!(self.slots.get(key), Some(Slot::Ready(_))) {
            return None;
        }
        match self.slots.remove(key) {
            Some(Slot::Ready(spare)) => Some(spare),
            _ => None,
        }
    }

    /// Whether one should be opened for `key` now (marked as being opened
    /// if so): none is ready or opening there, and the cap leaves room once
    /// the spares `dead` names (their router closed) are let go. Also returns
    /// the dead ones, to be dropped outside the caller's lock.
    pub(crate) fn begin(&mut self, key: K, dead: impl Fn(&T) -> bool) -> (bool, Vec<T>) {
        let gone: Vec<K> = self
            .slots
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Ready(spare) if dead(spare)))
            .map(|(key, _)| key.clone())
            .collect();
        let dropped = gone
            .iter()
            .filter_map(|key| match self.slots.remove(key) {
                Some(Slot::Ready(spare)) => Some(spare),
                _ => None,
            })
            .collect();
        if self.slots.contains_key(&key) || self.slots.len() >= self.cap {
            return (false, dropped);
        }
        self.slots.insert(key, Slot::Opening);
        (true, dropped)
    }

    /// What the opening [`Spares::begin`] allowed gave (`None`: it failed).
    /// Kept if its slot still waits for it; otherwise handed back to drop.
    pub(crate) fn finish(&mut self, key: K, opened: Option<T>) -> Option<T> {
        match (self.slots.get(&key), opened) {
            (Some(Slot::Opening), Some(spare)) => {
                self.slots.insert(key, Slot::Ready(spare));
                None
            }
            (Some(Slot::Opening), None) => {
                self.slots.remove(&key);
                None
            }
            (_, opened) => opened,
        }
    }

    /// Takes back a spare handed out and not used, if `key` has no spare
    /// (nor one being opened) and the cap leaves room; otherwise hands it
    /// back to drop.
    pub(crate) fn put_back(&mut self, key: K, spare: T) -> Option<T> {
        if self.slots.contains_key(&key) || self.slots.len() >= self.cap {
            return Some(spare);
        }
        self.slots.insert(key, Slot::Ready(spare));
        None
    }

    /// Lets go of the spares (and the openings) of every key `wanted` refuses;
    /// returns the spares, to be dropped outside the caller's lock.
    pub(crate) fn retain(&mut self, wanted: impl Fn(&K) -> bool) -> Vec<T> {
        let unwanted: Vec<K> = self.slots.keys().filter(|key| !wanted(key)).cloned().collect();
        unwanted
            .iter()
            .filter_map(|key| match self.slots.remove(key) {
                Some(Slot::Ready(spare)) => Some(spare),
                _ => None,
            })
            .collect()
    }

    /// Whether none is ready or being opened.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many are ready.
    pub(crate) fn ready(&self) -> usize {
        self.slots.values().filter(|slot| matches!(slot, Slot::Ready(_))).count()
    }

    /// Lets every spare go (the node is stopping), to be dropped outside the lock.
    pub(crate) fn clear(&mut self) -> Vec<T> {
        self.slots
            .drain()
            .filter_map(|(_, slot)| match slot {
                Slot::Ready(spare) => Some(spare),
                Slot::Opening => None,
            })
            .collect()
    }
}

impl Inner {
    /// A pipe transport on `router` for a pipe being served to a peer
    /// whose end is at `peer_ip`: the spare opened ahead (spares are in the
    /// first media IP's family), or a new one when there is none.
    pub(crate) async fn pipe_end_on(&self, router: &Router, peer_ip: Option<IpAddr>) -> Result<SparePipe, NodeError> {
        let (media_ip, _) = self.config.media_ip_for(peer_ip);
        if media_ip == self.config.media_ip
            && let Some(spare) = lock(&self.spare_pipes).take(&router.id())
        {
            return Ok(spare);
        }
        Ok(open_pipe_on(self, router, peer_ip).await?)
    }

    /// Opens a spare on `router` in the background, unless it has one, one
    /// is being opened or the cap is reached.
    pub(crate) fn replenish_spare(self: &Arc<Self>, router: &Router) {
        let (wanted, dead) = lock(&self.spare_pipes).begin(router.id(), |(transport, _)| transport.closed());
        drop(dead);
        if !wanted || self.tasks.is_stopping() {
            return;
        }
        let inner = Arc::clone(self);
        let router = router.clone();
        self.spawn("spare pipe", async move {
            let opened = match open_pipe_on(&inner, &router, None).await {
                Ok(spare) => Some(spare),
                Err(error) => {
                    debug!(router = %router.id(), %error, "could not open a spare pipe transport");
                    None
                }
            };
            let unwanted = lock(&inner.spare_pipes).finish(router.id(), opened);
            drop(unwanted);
        });
    }

    /// Takes back `spare`, opened on `router` for a pipe that rode a kept
    /// pair instead (`pipe_pairs`), as the router's spare if it has none;
    /// otherwise closes it.
    pub(crate) fn put_back_spare(&self, router: &Router, spare: SparePipe) {
        if spare.1.ip.is_ipv4() != self.config.media_ip.is_ipv4() {
            return; // an end in the second family: spares are in the first
        }
        let unwanted = lock(&self.spare_pipes).put_back(router.id(), spare);
        drop(unwanted);
    }

    /// Lets go of the spares on routers no stream held here lives on: a
    /// spare is there for the next pipe of a stream, and would otherwise keep
    /// an emptied router (and its worker) from being released.
    pub(crate) fn let_go_of_unneeded_spares(&self) {
        // Most nodes hold none: no need to walk the streams every second.
        if lock(&self.spare_pipes).is_empty() {
            return;
        }
        let homes: HashSet<RouterId> = lock(&self.streams)
            .iter()
            .filter_map(|(stream, local)| self.router_of(stream).home_router(&local.producers.first()?.id()))
            .map(|router| router.id())
            .collect();
        let unneeded = lock(&self.spare_pipes).retain(|router| homes.contains(router));
        if !unneeded.is_empty() {
            debug!(spares = unneeded.len(), "closed spare pipe transports no stream here needs");
        }
        drop(unneeded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spare_per_router_handed_out_once_and_capped() {
        let mut spares: Spares<&str, u32> = Spares::new(2);
        assert!(spares.begin("a", |_| false).0);
        assert!(!spares.begin("a", |_| false).0, "one being opened is enough");
        assert_eq!(spares.take(&"a"), None, "nothing is ready while it opens");
        assert_eq!(spares.finish("a", Some(1)), None);
        assert!(!spares.begin("a", |_| false).0, "one ready is enough");
        assert!(spares.begin("b", |_| false).0);
        assert!(!spares.begin("c", |_| false).0, "the cap counts spares being opened");
        assert_eq!(spares.take(&"a"), Some(1));
        assert_eq!(spares.take(&"a"), None, "a spare is handed out once");
        assert!(spares.begin("c", |_| false).0, "room again once taken");
    }

    #[test]
    fn an_unused_spare_goes_back_only_into_an_empty_slot_within_the_cap() {
        let mut spares: Spares<&str, u32> = Spares::new(2);
        assert_eq!(spares.put_back("a", 1), None);
        assert_eq!(spares.put_back("a", 2), Some(2), "a has one already");
        assert!(spares.begin("b", |_| false).0);
        assert_eq!(spares.put_back("b", 3), Some(3), "b is being opened");
        assert_eq!(spares.put_back("c", 4), Some(4), "the cap is reached");
        assert_eq!(spares.take(&"a"), Some(1));
    }

    #[test]
    fn a_failed_or_unwanted_opening_leaves_no_slot_behind() {
        let mut spares: Spares<&str, u32> = Spares::new(4);
        assert!(spares.begin("a", |_| false).0);
        assert_eq!(spares.finish("a", None), None);
        assert!(spares.begin("a", |_| false).0, "a failed opening may be tried again");
        assert_eq!(spares.clear(), Vec::<u32>::new());
        assert_eq!(spares.finish("a", Some(7)), Some(7), "opened after the node let go: handed back to close");
        assert_eq!(spares.ready(), 0);
    }

    #[test]
    fn spares_of_closed_routers_are_let_go_and_free_the_cap() {
        let mut spares: Spares<&str, u32> = Spares::new(1);
        assert!(spares.begin("a", |_| false).0);
        assert_eq!(spares.finish("a", Some(1)), None);
        assert!(!spares.begin("b", |_| false).0);
        let (wanted, dead) = spares.begin("b", |spare| *spare == 1);
        assert!(wanted);
        assert_eq!(dead, vec![1]);
    }

    #[test]
    fn spares_of_routers_no_longer_needed_are_let_go() {
        let mut spares: Spares<&str, u32> = Spares::new(4);
        for (router, spare) in [("a", 1), ("b", 2)] {
            assert!(spares.begin(router, |_| false).0);
            assert_eq!(spares.finish(router, Some(spare)), None);
        }
        assert!(spares.begin("c", |_| false).0);
        assert_eq!(spares.retain(|router| *router == "a"), vec![2]);
        assert_eq!(spares.ready(), 1);
        assert_eq!(spares.finish("c", Some(3)), Some(3), "an opening let go of is closed when it lands");
    }
}
