//! Pipe transport pairs kept between this node and a peer, one per peer and
//! router, so that every stream piped between the two after the first rides
//! a transport already connected: no transport to open and no SRTP connect at
//! either end (the connect is the longest worker step of a remote consume:
//! NSS makes its SRTP contexts), only a consume at the provider and a produce
//! at the asker. Mediasoup's own `pipeToRouter` keeps its pairs the same way.
//!
//! Policy ([`Pairs`], no mediasoup in it): a pair is found by the peer and
//! the local router, and only if its far end is the one expected (the
//! provider's: the endpoint the asker quotes; the asker's: the endpoint the
//! offer names), so a peer that restarted, or a rogue quoting another node's
//! endpoint, never lands on a pair that is not its own. Mechanism (`pipes`):
//! the pair's transport is held by the streams that use it (the asker's
//! `LocalStream`, the provider's `DownstreamPipe`); the registry keeps only a
//! weak handle, so a pair closes with the last stream on it, and an entry
//! whose transport closed is dropped when next looked at.

use std::collections::HashMap;
use std::hash::Hash;

use mafalda_media::pipe::PipeEndpoint;

/// One kept pair, as one side sees it.
#[derive(Debug, Clone)]
pub(crate) struct KeptPair<H> {
    /// This side's transport (a weak handle in the node).
    pub(crate) handle: H,
    /// This side's endpoint.
    pub(crate) local: PipeEndpoint,
    /// The far side's endpoint, this transport's connected to.
    pub(crate) remote: PipeEndpoint,
}

/// The pairs of one side (asking or providing), by peer and local router.
#[derive(Debug)]
pub(crate) struct Pairs<P, R, H> {
    pairs: HashMap<(P, R), KeptPair<H>>,
}

impl<P, R, H> Default for Pairs<P, R, H> {
    fn default() -> Self {
        Self { pairs: HashMap::new() }
    }
}

impl<P: Hash + Eq + Copy, R: Hash + Eq + Clone, H: Clone> Pairs<P, R, H> {
    /// The pair kept with `peer` on `router`, if its transport is still
    /// `alive` and, when `remote` is given, its far end is that one. A pair
    /// whose transport closed is forgotten; one with another far end is
    /// kept (the streams on it still run) but not handed out.
    pub(crate) fn find(
        &mut self,
        peer: P,
        router: &R,
        remote: Option<&PipeEndpoint>,
        alive: impl Fn(&H) -> bool,
    ) -> Option<KeptPair<H>> {
        let key = (peer, router.clone());
        let pair = self.pairs.get(&key)?;
        if !alive(&pair.handle) {
            self.pairs.remove(&key);
            return None;
        }
        remote.is_none_or(|remote| pair.remote == *remote).then(|| pair.clone())
    }

    /// Keeps `pair` as the one with `peer` on `router`, in place of any
    /// other (whose streams keep their transport until they end).
    pub(crate) fn keep(&mut self, peer: P, router: R, pair: KeptPair<H>) {
        self.pairs.insert((peer, router), pair);
    }

    /// Forgets the pair with `peer` on `router` (its far end turned out
    /// stale).
    pub(crate) fn forget(&mut self, peer: P, router: &R) {
        self.pairs.remove(&(peer, router.clone()));
    }

    /// Forgets every pair with `peer` (it left).
    pub(crate) fn forget_peer(&mut self, peer: P) {
        self.pairs.retain(|(p, _), _| *p != peer);
    }

    /// How many pairs are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pairs.len()
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

    #[test]
    fn a_pair_is_found_only_for_its_peer_router_and_far_end() {
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000));
        let alive = |_: &u32| true;
        assert_eq!(pairs.find(1, &"r", Some(&endpoint(5000)), alive).map(|p| p.handle), Some(7));
        assert_eq!(pairs.find(1, &"r", None, alive).map(|p| p.handle), Some(7), "any far end");
        assert!(pairs.find(2, &"r", Some(&endpoint(5000)), alive).is_none(), "another peer quoting it");
        assert!(pairs.find(1, &"other", None, alive).is_none(), "another router");
        assert!(pairs.find(1, &"r", Some(&endpoint(5001)), alive).is_none(), "another far end (a restart)");
        assert_eq!(pairs.len(), 1, "a far end that differs does not drop the pair its streams use");
    }

    #[test]
    fn a_closed_pair_is_forgotten_when_looked_at_and_a_new_one_replaces_the_old() {
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000));
        assert!(pairs.find(1, &"r", None, |_| false).is_none());
        assert_eq!(pairs.len(), 0, "closed: forgotten");
        pairs.keep(1, "r", pair(7, 4000, 5000));
        pairs.keep(1, "r", pair(8, 4001, 5001));
        assert_eq!(pairs.find(1, &"r", None, |_| true).map(|p| p.handle), Some(8));
        pairs.forget(1, &"r");
        assert_eq!(pairs.len(), 0);
    }

    #[test]
    fn a_peer_that_leaves_takes_its_pairs_on_every_router() {
        let mut pairs: Pairs<u8, &str, u32> = Pairs::default();
        pairs.keep(1, "r", pair(7, 4000, 5000));
        pairs.keep(1, "s", pair(8, 4001, 5001));
        pairs.keep(2, "r", pair(9, 4002, 5002));
        pairs.forget_peer(1);
        assert_eq!(pairs.len(), 1);
        assert!(pairs.find(2, &"r", None, |_| true).is_some());
    }
}
