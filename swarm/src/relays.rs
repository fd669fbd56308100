//! Which peers a node behind NAT reserves a circuit relay slot on, so that
//! others can reach it through them (circuit relay v2).
//!
//! A relay must be one this node reached by dialing out (so its address works
//! from here, and a peer behind its own NAT is never picked) and one that
//! serves circuits (identify lists the hop protocol). The node keeps up to
//! `wanted` reservations; a relay whose reservation failed or whose connection
//! ended is not asked again until it is dialed again, and another candidate
//! takes its place. Nothing here touches the swarm: the event loop reports
//! what happened and asks which relays to listen through.

use std::collections::{BTreeMap, BTreeSet};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// Most relay candidates remembered (peers come and go; a handful is plenty).
const MAX_CANDIDATES: usize = 32;

/// The relays a private node uses, and the peers that could be one.
#[derive(Debug)]
pub(crate) struct RelayChoice {
    wanted: usize,
    /// Peers dialed by this node that serve circuits, at the address dialed.
    candidates: BTreeMap<PeerId, Multiaddr>,
    /// Relays asked for a slot, whether they granted it yet or not: both
    /// count against `wanted` (the reservation's outcome ends in [`Self::lost`]
    /// or lasts).
    slots: BTreeSet<PeerId>,
    /// Relays that refused or dropped a reservation since they were last dialed.
    failed: BTreeSet<PeerId>,
}

impl RelayChoice {
    /// A choice that keeps up to `wanted` reservations.
    pub(crate) fn new(wanted: usize) -> Self {
        Self { wanted, candidates: BTreeMap::new(), slots: BTreeSet::new(), failed: BTreeSet::new() }
    }

    /// `peer`, dialed at `address`, serves circuits. A peer dialed again after
    /// a failure is a candidate again.
    pub(crate) fn candidate(&mut self, peer: PeerId, address: Multiaddr) {
        self.failed.remove(&peer);
        if self.candidates.len() < MAX_CANDIDATES || self.candidates.contains_key(&peer) {
            self.candidates.insert(peer, address);
        }
    }

    /// `peer`'s last connection ended.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.candidates.remove(peer);
        self.slots.remove(peer);
    }

    /// The reservation on `relay` failed or ended: another relay is tried.
    pub(crate) fn lost(&mut self, relay: &PeerId) {
        if self.slots.remove(relay) {
            self.failed.insert(*relay);
        }
    }

    /// The relays to ask for a reservation now, as the addresses to listen on
    /// (`<relay address>/p2p/<relay>/p2p-circuit`); they count as asked. None
    /// unless the node is private.
    pub(crate) fn next_to_ask(&mut self, private: bool) -> Vec<(PeerId, Multiaddr)> {
        if !private {
            return Vec::new();
        }
        let free = self.wanted.saturating_sub(self.slots.len());
        let picked: Vec<(PeerId, Multiaddr)> = self
            .candidates
            .iter()
            .filter(|(peer, _)| !self.slots.contains(*peer) && !self.failed.contains(*peer))
            .take(free)
            .map(|(peer, address)| (*peer, circuit_listen_address(address, *peer)))
            .collect();
        for (peer, _) in &picked {
            self.slots.insert(*peer);
        }
        picked
    }
}

/// The address to listen on for a circuit through `relay`, dialed at `address`.
pub(crate) fn circuit_listen_address(address: &Multiaddr, relay: PeerId) -> Multiaddr {
    let mut base: Multiaddr =
        address.iter().take_while(|p| !matches!(p, Protocol::P2p(_) | Protocol::P2pCircuit)).collect();
    base.push(Protocol::P2p(relay));
    base.push(Protocol::P2pCircuit);
    base
}

/// Whether `address` goes through a relay.
pub(crate) fn is_relayed(address: &Multiaddr) -> bool {
    address.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("multiaddr")
    }

    #[test]
    fn a_private_node_asks_up_to_the_wanted_relays_and_a_public_one_none() {
        let mut choice = RelayChoice::new(2);
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for peer in &peers {
            choice.candidate(*peer, addr("/ip4/192.0.2.1/tcp/4001"));
        }
        assert!(choice.next_to_ask(false).is_empty(), "a public node needs no relay");
        let asked = choice.next_to_ask(true);
        assert_eq!(asked.len(), 2);
        for (peer, listen) in &asked {
            assert_eq!(*listen, addr(&format!("/ip4/192.0.2.1/tcp/4001/p2p/{peer}/p2p-circuit")));
        }
        assert!(choice.next_to_ask(true).is_empty(), "two asked already");
    }

    #[test]
    fn a_relay_that_fails_is_replaced_and_asked_again_only_once_dialed_again() {
        let mut choice = RelayChoice::new(1);
        let (first, second) = (PeerId::random(), PeerId::random());
        choice.candidate(first, addr("/ip4/192.0.2.1/tcp/4001"));
        choice.candidate(second, addr(&format!("/dns4/p.lab/tcp/4001/p2p/{second}")));
        let asked = choice.next_to_ask(true);
        assert_eq!(asked.len(), 1);
        let failing = asked[0].0;
        choice.lost(&failing);
        let next = choice.next_to_ask(true);
        assert_eq!(next.len(), 1);
        assert_ne!(next[0].0, failing, "the failed relay is not asked again");
        choice.lost(&next[0].0);
        assert!(choice.next_to_ask(true).is_empty(), "both failed; nothing left to ask");
        choice.candidate(failing, addr("/ip4/192.0.2.1/tcp/4001"));
        assert_eq!(choice.next_to_ask(true)[0].0, failing, "dialed again, it is a candidate again");
    }

    #[test]
    fn a_relay_that_disconnects_frees_its_slot_and_stops_being_a_candidate() {
        let mut choice = RelayChoice::new(1);
        let relay = PeerId::random();
        choice.candidate(relay, addr("/ip4/192.0.2.1/tcp/4001"));
        assert_eq!(choice.next_to_ask(true).len(), 1);
        choice.disconnected(&relay);
        assert!(choice.slots.is_empty());
        assert!(choice.next_to_ask(true).is_empty());
    }

    #[test]
    fn circuit_addresses_are_told_apart() {
        let relay = PeerId::random();
        let listen = circuit_listen_address(&addr(&format!("/dns4/p.lab/tcp/4001/p2p/{relay}")), relay);
        assert_eq!(listen, addr(&format!("/dns4/p.lab/tcp/4001/p2p/{relay}/p2p-circuit")));
        assert!(is_relayed(&listen));
        assert!(!is_relayed(&addr("/ip4/192.0.2.1/tcp/4001")));
    }
}
