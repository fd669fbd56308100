//! Provider lookups in progress: which providers Kademlia named, which of them
//! are reachable, and when the answer is ready.
//!
//! The answer is ready once the providers named by the first peer that knew
//! any are dialed (or the query ends): every provider of a key stores its
//! record at the same closest peers, so the first of them to answer names
//! them all, and the rest of the query (more hops, more peers) mostly repeats
//! it. Waiting for it made a find cost several round trips more than it needs.

use std::collections::HashSet;
use std::time::Instant;

use libp2p::PeerId;
use tokio::sync::oneshot;

/// One `find_providers` call waiting for Kademlia and for dials to its providers.
#[derive(Debug)]
pub(crate) struct PendingFind {
    reply: Option<oneshot::Sender<Vec<PeerId>>>,
    /// This node, when it provides the key itself.
    local: Option<PeerId>,
    /// Providers known reachable, in discovery order.
    reachable: Vec<PeerId>,
    /// Providers being dialed.
    dialing: HashSet<PeerId>,
    query_done: bool,
    /// A peer answered with providers.
    named: bool,
    pub(crate) deadline: Instant,
}

impl PendingFind {
    pub(crate) fn new(reply: oneshot::Sender<Vec<PeerId>>, local: Option<PeerId>, deadline: Instant) -> Self {
        Self {
            reply: Some(reply),
            local,
            reachable: Vec::new(),
            dialing: HashSet::new(),
            query_done: false,
            named: false,
            deadline,
        }
    }

    pub(crate) fn add_reachable(&mut self, peer: PeerId) {
        self.dialing.remove(&peer);
        if Some(peer) != self.local && !self.reachable.contains(&peer) {
            self.reachable.push(peer);
        }
    }

    pub(crate) fn add_dialing(&mut self, peer: PeerId) {
        if !self.reachable.contains(&peer) {
            self.dialing.insert(peer);
        }
    }

    pub(crate) fn is_dialing(&self, peer: &PeerId) -> bool {
        self.dialing.contains(peer)
    }

    /// The dial to `peer` failed: it is left out of the answer.
    pub(crate) fn unreachable(&mut self, peer: &PeerId) {
        self.dialing.remove(peer);
    }

    pub(crate) fn query_finished(&mut self) {
        self.query_done = true;
    }

    /// A peer named providers (after they are added, reachable or dialing).
    pub(crate) fn providers_named(&mut self) {
        self.named = true;
    }

    /// Whether the Kademlia query is still running.
    pub(crate) fn is_querying(&self) -> bool {
        !self.query_done
    }

    /// Whether the answer is ready: the query ended, or a peer named providers
    /// and one of them is reachable; either way, with no dial pending.
    pub(crate) fn is_complete(&self) -> bool {
        let enough = self.query_done || (self.named && !self.reachable.is_empty());
        enough && self.dialing.is_empty()
    }

    /// Sends the answer (the local node first); later calls do nothing.
    pub(crate) fn answer(&mut self) {
        if let Some(reply) = self.reply.take() {
            let providers = self.local.into_iter().chain(self.reachable.iter().copied()).collect();
            let _ = reply.send(providers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_local_first_then_reachable_without_unreachable() {
        let (reply, mut answer) = oneshot::channel();
        let (me, a, b) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut find = PendingFind::new(reply, Some(me), Instant::now());
        find.add_reachable(me);
        find.add_dialing(a);
        find.add_dialing(b);
        find.query_finished();
        assert!(!find.is_complete(), "dials still pending");
        find.add_reachable(a);
        find.unreachable(&b);
        assert!(find.is_complete());
        find.answer();
        assert_eq!(answer.try_recv().expect("answered"), vec![me, a]);
    }

    #[test]
    fn answers_once_named_providers_are_dialed_without_waiting_for_the_query() {
        let (reply, mut answer) = oneshot::channel();
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut find = PendingFind::new(reply, None, Instant::now());
        assert!(!find.is_complete(), "nothing named yet");
        find.add_reachable(a);
        find.add_dialing(b);
        find.providers_named();
        assert!(!find.is_complete(), "a dial is pending");
        find.add_reachable(b);
        assert!(find.is_complete() && find.is_querying(), "complete while the query still runs");
        find.answer();
        assert_eq!(answer.try_recv().expect("answered"), vec![a, b]);
    }

    #[test]
    fn named_but_unreachable_providers_wait_for_the_query() {
        let (reply, _answer) = oneshot::channel();
        let a = PeerId::random();
        let mut find = PendingFind::new(reply, None, Instant::now());
        find.add_dialing(a);
        find.providers_named();
        find.unreachable(&a);
        assert!(!find.is_complete(), "no reachable provider: other peers may name more");
        find.query_finished();
        assert!(find.is_complete());
    }
}
