//! Pipe transport pairs kept between this node and its peers, so that every
//! stream piped between two nodes after the first rides a transport pair
//! already connected: no transport to open and no SRTP connect at either end
//! (the connect is the longest worker step of a remote consume: NSS makes its
//! SRTP contexts), only a consume at the provider and a produce at the asker.
//! Mediasoup's own `pipeToRouter` keeps its pairs the same way.
//!
//! The asker quotes, beside a fresh end, its ends of the pairs it keeps with
//! the provider (`pairedEnds` in `stream.pipe` and in a describe's
//! `pipeIfOrigin`); the provider pipes on the transport it connected to one
//! of them for that very peer, on the stream's router, if it has one (else to
//! the fresh end, as without pairs), and its offer names the end it piped
//! from; the asker rides the pair whose far end that is, else connects the
//! fresh end and keeps it as a pair too. So a provider with streams on several
//! routers keeps a pair on each, a provider that restarted costs no extra
//! round trip, and a peer quoting another node's end never lands on a pair
//! that is not its own (pairs are looked up by the peer that asks).
//!
//! Policy ([`Pairs`], no mediasoup in it): pairs by peer and local router,
//! each known by its two endpoints. Mechanism (`Inner::pair_to_serve_on`,
//! `Inner::paired_ends_with`, `Inner::keep_pair`): a pair's transport is
//! held by the streams that ride it (the asker's `LocalStream`, the
//! provider's `DownstreamPipe`) and the registry keeps a weak handle, so a
//! pair closes with the last stream on it; closed pairs are forgotten when
//! next looked at and within a second anyway (`Inner::forget_closed_pairs`),
//! and every pair with a peer when it leaves. Pairs need no cap of their
//! own: each one open carries at least one stream, and streams per peer are
//! capped (`max_pipes_per_peer`).

use std::collections::HashMap;
use std::hash::Hash;

use mafalda_media::mediasoup::prelude::{PipeTransport, Router, Transport, WeakPipeTransport};
use mafalda_media::mediasoup::router::RouterId;
use mafalda_media::pipe::PipeEndpoint;
use mafalda_swarm::PeerId;

use crate::inner::{Inner, lock};
use crate::streams::MAX_PAIRED_ENDS;

/// One kept pair, as one side sees it.
#[derive(Debug, Clone)]
pub(crate) struct KeptPair<H> {
    /// This side's transport (a weak handle in the node).
    pub(crate) handle: H,
    /// This side's endpoint.
    pub(crate) local: PipeEndpoint,
    /// The far side's endpoint, this transport is connected to.
    pub(crate) remote: PipeEndpoint,
}

/// The pairs of one side (asking or serving), by peer and local router.
#[derive(Debug)]
pub(crate) struct Pairs<P, R, H> {
    pairs: HashMap<(P, R), Vec<KeptPair<H>>>,
}

impl<P, R, H> Default for Pairs<P, R, H> {
    fn default() -> Self {
        Self { pairs: HashMap::new() }
    }
}

impl<P: Hash + Eq + Copy, R: Hash + Eq + Clone, H: Clone> Pairs<P, R, H> {
    /// The pairs with `peer` on `router`, oldest first, those whose transport
    /// is no longer `alive` forgotten (an emptied entry goes with the next
    /// [`Pairs::forget_closed`]).
    fn live(&mut self, peer: P, router: &R, alive: impl Fn(&H) -> bool) -> &[KeptPair<H>] {
        match self.pairs.get_mut(&(peer, router.clone())) {
            Some(kept) => {
                kept.retain(|pair| alive(&pair.handle));
                kept
            }
            None => &[],
        }
    }

    /// The newest pair with `peer` on `router` whose transport is still
    /// `alive` and whose far end is `remote`.
    pub(crate) fn find(
        &mut self,
        peer: P,
        router: &R,
        remote: &PipeEndpoint,
        alive: impl Fn(&H) -> bool,
    ) -> Option<KeptPair<H>> {
        self.live(peer, router, alive).iter().rev().find(|pair| pair.remote == *remote).cloned()
    }

    /// The pairs with `peer` on `router` whose transport is still `alive`,
    /// newest first, at most `most`.
    pub(crate) fn newest(&mut self, peer: P, router: &R, most: usize, alive: impl Fn(&H) -> bool) -> Vec<KeptPair<H>> {
        self.live(peer, router, alive).iter().rev().take(most).cloned().collect()
    }

    /// Keeps `pair` with `peer` on `router`, the newest (quoted first), in
    /// place of one with the same ends; the pairs whose transport is no
    /// longer `alive` are forgotten.
    pub(crate) fn keep(&mut self, peer: P, router: R, pair: KeptPair<H>, alive: impl Fn(&H) -> bool) {
        let kept = self.pairs.entry((peer, router)).or_default();
        kept.retain(|old| alive(&old.handle) && (old.local != pair.local || old.remote != pair.remote));
        kept.push(pair);
    }

    /// Forgets the pair with `peer` on `router` whose own end is `local` (it
    /// could not be connected).
    pub(crate) fn forget(&mut self, peer: P, router: &R, local: &PipeEndpoint) {
        let key = (peer, router.clone());
        if let Some(kept) = self.pairs.get_mut(&key) {
            kept.retain(|pair| pair.local != *local);
            if kept.is_empty() {
                self.pairs.remove(&key);
            }
        }
    }

    /// Forgets the pairs whose transport is no longer `alive`.
    pub(crate) fn forget_closed(&mut self, alive: impl Fn(&H) -> bool) {
        self.pairs.retain(|_, kept| {
            kept.retain(|pair| alive(&pair.handle));
            !kept.is_empty()
        });
    }

    /// Forgets every pair with `peer` (it left).
    pub(crate) fn forget_peer(&mut self, peer: P) {
        self.pairs.retain(|(p, _), _| *p != peer);
    }

    /// How many pairs are kept (closed ones included until looked at).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pairs.values().map(Vec::len).sum()
    }

    /// How many pairs kept are still `alive`.
    pub(crate) fn count(&self, alive: impl Fn(&H) -> bool) -> usize {
        self.pairs.values().flatten().filter(|pair| alive(&pair.handle)).count()
    }
}

/// How many pipe transport pairs a node keeps open with its peers
/// ([`crate::Node::pipe_pairs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PipePairs {
    /// Pairs this node pipes streams in through (it asked).
    pub asking: usize,
    /// Pairs this node pipes streams out through (it serves).
    pub serving: usize,
}

/// Pipe pairs kept with peers, by peer and this node's router.
pub(crate) type KeptPairs = Pairs<PeerId, RouterId, WeakPipeTransport>;

/// A pair's transport, if it is still open.
fn open_transport(weak: &WeakPipeTransport) -> Option<PipeTransport> {
    weak.upgrade().filter(|transport| !transport.closed())
}

/// Which side of the pairs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// Pairs this node pipes streams in through.
    Asking,
    /// Pairs this node pipes streams out through.
    Serving,
}

impl Inner {
    fn pairs(&self, side: Side) -> &std::sync::Mutex<KeptPairs> {
        match side {
            Side::Asking => &self.asking_pairs,
            Side::Serving => &self.serving_pairs,
        }
    }

    /// The open transport of the pair kept with `peer` on `router` that is
    /// connected to `remote`, and the pair.
    pub(crate) fn kept_pair(
        &self,
        side: Side,
        peer: PeerId,
        router: &Router,
        remote: &PipeEndpoint,
    ) -> Option<(PipeTransport, KeptPair<WeakPipeTransport>)> {
        let pair = lock(self.pairs(side)).find(peer, &router.id(), remote, |weak| open_transport(weak).is_some())?;
        Some((open_transport(&pair.handle)?, pair))
    }

    /// The open transport of a pair kept with `peer` on `router` whose far
    /// end is one of the asker's `paired_ends`, and the pair, to pipe
    /// `stream` to `peer` on; none on which `peer` has that stream piped
    /// already (asked again, a stream gets a transport of its own: the new
    /// pipe's consumers would send under the same SSRCs as the old ones, on
    /// the transport the asker still receives the old pipe on).
    pub(crate) fn pair_to_serve_on(
        &self,
        peer: PeerId,
        stream: &str,
        router: &Router,
        paired_ends: &[PipeEndpoint],
    ) -> Option<(PipeTransport, KeptPair<WeakPipeTransport>)> {
        if paired_ends.is_empty() {
            return None;
        }
        let piped_on = lock(&self.streams).get(stream).and_then(|local| Some(local.pipes.get(&peer)?._transport.id()));
        paired_ends
            .iter()
            .filter_map(|end| self.kept_pair(Side::Serving, peer, router, end))
            .find(|(transport, _)| Some(transport.id()) != piped_on)
    }

    /// This node's ends of the pairs kept with `peer` on `router`, newest
    /// first, in the family of `ip` (at most [`MAX_PAIRED_ENDS`]).
    pub(crate) fn paired_ends_with(&self, peer: PeerId, router: &Router, ip: std::net::IpAddr) -> Vec<PipeEndpoint> {
        let pairs =
            lock(&self.asking_pairs).newest(peer, &router.id(), MAX_PAIRED_ENDS, |weak| open_transport(weak).is_some());
        pairs.into_iter().map(|pair| pair.local).filter(|end| end.ip.is_ipv4() == ip.is_ipv4()).collect()
    }

    /// Keeps `transport` (at `local`, connected to `remote`) as a pair with
    /// `peer`.
    pub(crate) fn keep_pair(
        &self,
        side: Side,
        peer: PeerId,
        transport: &PipeTransport,
        local: PipeEndpoint,
        remote: PipeEndpoint,
    ) {
        let pair = KeptPair { handle: transport.downgrade(), local, remote };
        lock(self.pairs(side)).keep(peer, transport.router().id(), pair, |weak| open_transport(weak).is_some());
    }

    /// Forgets the pair with `peer` whose own end is `transport` at `local`.
    pub(crate) fn forget_pair(&self, side: Side, peer: PeerId, router: RouterId, local: &PipeEndpoint) {
        lock(self.pairs(side)).forget(peer, &router, local);
    }

    /// Forgets the pairs whose transports closed (their last stream ended).
    pub(crate) fn forget_closed_pairs(&self) {
        for side in [Side::Asking, Side::Serving] {
            lock(self.pairs(side)).forget_closed(|weak| open_transport(weak).is_some());
        }
    }

    /// How many pipe pairs this node keeps open with its peers.
    pub(crate) fn open_pairs(&self, side: Side) -> usize {
        lock(self.pairs(side)).count(|weak| open_transport(weak).is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn endpoint(port: u16) -> PipeEndpoint {
        PipeEndpoint { ip: IpAddr::V4(Ipv4Addr::LOCALHOST), port, srtp: None }
    }

    fn pair(handle: u32, local: u16, remote: u16) -> KeptPair<u32> {
        KeptPair { handle, local: endpoint(local), remote: endpoint(remote) }
    }

    const ALIVE: fn(&u32) -> bool = |_| true;

    #[test]
    fn a_pair_is_found_only_for_its_peer_router_and_far_end() {
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000), ALIVE);
        assert_eq!(pairs.find(1, &"r", &endpoint(5000), ALIVE).map(|p| p.handle), Some(7));
        assert!(pairs.find(2, &"r", &endpoint(5000), ALIVE).is_none(), "another peer quoting it");
        assert!(pairs.find(1, &"other", &endpoint(5000), ALIVE).is_none(), "another router");
        assert!(pairs.find(1, &"r", &endpoint(5001), ALIVE).is_none(), "another far end (a restart)");
        assert_eq!(pairs.len(), 1, "a far end that differs does not drop the pair its streams use");
    }

    #[test]
    fn each_far_end_finds_its_own_pair() {
        // Two pipes landed at once, each through a fresh end: the provider
        // keeps both, and whichever the asker quotes next is found.
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000), ALIVE);
        pairs.keep(1, "r", pair(8, 4001, 5001), ALIVE);
        assert_eq!(pairs.find(1, &"r", &endpoint(5000), ALIVE).map(|p| p.handle), Some(7));
        assert_eq!(pairs.find(1, &"r", &endpoint(5001), ALIVE).map(|p| p.handle), Some(8));
        let newest: Vec<u32> = pairs.newest(1, &"r", 5, ALIVE).iter().map(|p| p.handle).collect();
        assert_eq!(newest, vec![8, 7], "newest first");
        assert_eq!(pairs.newest(1, &"r", 1, ALIVE).len(), 1, "at most as many as asked");
        assert!(pairs.newest(2, &"r", 5, ALIVE).is_empty());
        pairs.keep(1, "r", pair(9, 4000, 5000), ALIVE);
        assert_eq!(pairs.len(), 2, "the same ends kept again replace the old entry");
    }

    #[test]
    fn closed_pairs_are_forgotten_when_looked_at_or_when_another_is_kept() {
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000), ALIVE);
        assert!(pairs.find(1, &"r", &endpoint(5000), |_| false).is_none());
        assert_eq!(pairs.len(), 0, "closed: forgotten");
        pairs.keep(1, "r", pair(7, 4000, 5000), ALIVE);
        pairs.keep(1, "r", pair(8, 4001, 5001), |handle| *handle != 7);
        assert_eq!(pairs.len(), 1);
        pairs.forget(1, &"r", &endpoint(4001));
        assert_eq!(pairs.len(), 0);
    }

    #[test]
    fn closed_pairs_are_forgotten_on_every_key() {
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000), ALIVE);
        pairs.keep(2, "s", pair(8, 4001, 5001), ALIVE);
        pairs.keep(2, "s", pair(9, 4002, 5002), ALIVE);
        pairs.forget_closed(|handle| *handle == 9);
        assert_eq!(pairs.len(), 1);
        assert!(pairs.find(2, &"s", &endpoint(5002), ALIVE).is_some());
    }

    #[test]
    fn forgetting_one_end_keeps_the_others() {
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000), ALIVE);
        pairs.keep(1, "r", pair(8, 4001, 5001), ALIVE);
        pairs.forget(1, &"r", &endpoint(4001));
        assert_eq!(pairs.newest(1, &"r", 5, ALIVE).len(), 1);
    }

    #[test]
    fn a_peer_that_leaves_takes_its_pairs_on_every_router() {
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000), ALIVE);
        pairs.keep(1, "s", pair(8, 4001, 5001), ALIVE);
        pairs.keep(2, "r", pair(9, 4002, 5002), ALIVE);
        pairs.forget_peer(1);
        assert_eq!(pairs.len(), 1);
        assert!(pairs.find(2, &"r", &endpoint(5002), ALIVE).is_some());
    }
}
