//! Whether other nodes can dial this one, as AutoNAT (v2) found: each
//! address peers saw this node's connections come from (identify's observed
//! addresses, with the listen port put back) is tested once by a peer that
//! dials it back. A dial-back that arrives confirms the address as external;
//! one that cannot reach it (a NAT without a port forward, a firewall) marks
//! it unreachable.
//!
//! A peer from another host that connected to an address this node gives out
//! confirms it too: AutoNAT's client asks only over connections it dialed, so
//! a seed that never dials out (peers come to it) would otherwise stay
//! `unknown`. Connections from the node's own IP (loopback, one machine) do
//! not count; AutoNAT tests those.
//!
//! The node is `public` once any address is confirmed, `private` when every
//! address tested so far failed, `unknown` before any test ended. "Public"
//! means other nodes of the swarm could dial it: a node on a LAN whose LAN
//! peers reach it is public to them.

use std::collections::BTreeSet;

use libp2p::Multiaddr;
use serde::Serialize;

/// Most addresses remembered per kind (AutoNAT tests at most ten).
const MAX_REMEMBERED: usize = 16;

/// Whether other nodes can dial this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// A peer dialed one of its addresses back.
    Public,
    /// Every address tested was unreachable from a peer.
    Private,
    /// No test has ended yet.
    Unknown,
}

/// What the node knows of its reachability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachabilityStatus {
    /// The verdict (see the module doc).
    pub reachability: Reachability,
    /// Addresses a peer dialed back: the ones other nodes can use.
    pub external_addresses: Vec<Multiaddr>,
    /// Addresses a peer could not dial back.
    pub unreachable_addresses: Vec<Multiaddr>,
    /// Addresses through a relay that holds a slot for this node (`/p2p-circuit`):
    /// how peers reach a private node.
    pub relayed_addresses: Vec<Multiaddr>,
}

impl ReachabilityStatus {
    /// The relays holding a slot for this node (from its relayed addresses).
    pub fn relays(&self) -> Vec<libp2p::PeerId> {
        let mut relays: Vec<libp2p::PeerId> = self
            .relayed_addresses
            .iter()
            .filter_map(|address| {
                let parts: Vec<_> = address.iter().collect();
                let circuit = parts.iter().position(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit))?;
                match parts.get(circuit.checked_sub(1)?)? {
                    libp2p::multiaddr::Protocol::P2p(relay) => Some(*relay),
                    _ => None,
                }
            })
            .collect();
        relays.dedup();
        relays
    }
}

/// What a node's handle reads of its reachability without a round trip to
/// the swarm task; the task keeps it up to date.
#[derive(Debug, Default)]
pub(crate) struct NatView {
    behind_nat: std::sync::atomic::AtomicBool,
    /// At most one per IP family.
    mapped_ips: std::sync::Mutex<Vec<std::net::IpAddr>>,
}

impl NatView {
    /// Whether the node is private.
    pub(crate) fn is_behind_nat(&self) -> bool {
        self.behind_nat.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The IP in the family of `like` that peers reach this node at and it
    /// does not listen on (see [`ReachabilityState::mapped_ips`]).
    pub(crate) fn mapped_ip(&self, like: std::net::IpAddr) -> Option<std::net::IpAddr> {
        let mapped = self.mapped_ips.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        mapped.iter().copied().find(|ip| ip.is_ipv4() == like.is_ipv4())
    }

    pub(crate) fn update(&self, state: &ReachabilityState, own: &[std::net::IpAddr]) {
        let private = state.status().reachability == Reachability::Private;
        self.behind_nat.store(private, std::sync::atomic::Ordering::Relaxed);
        *self.mapped_ips.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = state.mapped_ips(own);
    }
}

/// The addresses confirmed and refuted so far.
#[derive(Debug, Default)]
pub(crate) struct ReachabilityState {
    confirmed: BTreeSet<Multiaddr>,
    unreachable: BTreeSet<Multiaddr>,
    relayed: BTreeSet<Multiaddr>,
}

impl ReachabilityState {
    /// A dial-back reached `addr` (libp2p then confirms it as external), or,
    /// for a `/p2p-circuit` address, a relay holds a slot for this node: that
    /// one makes the node reachable through the relay, not public.
    pub(crate) fn confirmed(&mut self, addr: Multiaddr) {
        if crate::relays::is_relayed(&addr) {
            if self.relayed.len() < MAX_REMEMBERED {
                self.relayed.insert(addr);
            }
            return;
        }
        self.unreachable.remove(&addr);
        if self.confirmed.len() < MAX_REMEMBERED {
            self.confirmed.insert(addr);
        }
    }

    /// A peer connected to `addr`, an address this node gives out, from
    /// `remote`: confirms it when the peer is on another host.
    pub(crate) fn dialed_in(&mut self, addr: Multiaddr, remote: &Multiaddr) {
        let (ours, theirs) = (crate::addresses::ip_of(&addr), crate::addresses::ip_of(remote));
        if ours.is_some() && theirs.is_some() && ours != theirs {
            self.confirmed(addr);
        }
    }

    /// `addr` is no longer an external address (libp2p expired it).
    pub(crate) fn expired(&mut self, addr: &Multiaddr) {
        self.confirmed.remove(addr);
        self.relayed.remove(addr);
    }

    /// A peer could not dial `addr` back.
    pub(crate) fn unreachable(&mut self, addr: Multiaddr) {
        if !self.confirmed.contains(&addr) && self.unreachable.len() < MAX_REMEMBERED {
            self.unreachable.insert(addr);
        }
    }

    /// The IPs of confirmed addresses that are none of `own` (the IPs the
    /// node listens on), the first of each family: the public side of a 1:1
    /// NAT or a forwarded port, where peers reach the node at an address it
    /// cannot see on its interfaces.
    pub(crate) fn mapped_ips(&self, own: &[std::net::IpAddr]) -> Vec<std::net::IpAddr> {
        let mut mapped: Vec<std::net::IpAddr> = Vec::with_capacity(2);
        for ip in self.confirmed.iter().filter_map(crate::addresses::ip_of) {
            if !own.contains(&ip) && !mapped.iter().any(|m| m.is_ipv4() == ip.is_ipv4()) {
                mapped.push(ip);
            }
        }
        mapped
    }

    /// The verdict and the addresses behind it.
    pub(crate) fn status(&self) -> ReachabilityStatus {
        let reachability = if !self.confirmed.is_empty() {
            Reachability::Public
        } else if !self.unreachable.is_empty() {
            Reachability::Private
        } else {
            Reachability::Unknown
        };
        ReachabilityStatus {
            reachability,
            external_addresses: self.confirmed.iter().cloned().collect(),
            unreachable_addresses: self.unreachable.iter().cloned().collect(),
            relayed_addresses: self.relayed.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapped_ip_is_a_confirmed_one_the_node_does_not_listen_on_one_per_family() {
        let own: Vec<std::net::IpAddr> = vec!["10.0.0.5".parse().expect("ip"), "fd00::5".parse().expect("ip")];
        let mut state = ReachabilityState::default();
        assert_eq!(state.mapped_ips(&own), Vec::<std::net::IpAddr>::new());
        state.confirmed(addr("/ip4/10.0.0.5/tcp/4001"));
        state.confirmed(addr("/ip6/fd00::5/tcp/4001"));
        assert_eq!(state.mapped_ips(&own), Vec::<std::net::IpAddr>::new(), "its own addresses need no announcing");
        state.confirmed(addr(
            "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7/p2p-circuit",
        ));
        assert_eq!(state.mapped_ips(&own), Vec::<std::net::IpAddr>::new(), "a relay's address is not this node's");
        state.confirmed(addr("/ip4/203.0.113.7/tcp/4001"));
        state.confirmed(addr("/ip4/203.0.113.8/tcp/4001"));
        let v4: std::net::IpAddr = "203.0.113.7".parse().expect("ip");
        assert_eq!(state.mapped_ips(&own), [v4], "the first of a family");
        state.confirmed(addr("/ip6/2001:db8::7/tcp/4001"));
        let v6: std::net::IpAddr = "2001:db8::7".parse().expect("ip");
        assert_eq!(state.mapped_ips(&own), [v4, v6]);
        let view = NatView::default();
        view.update(&state, &own);
        assert_eq!(view.mapped_ip(own[0]), Some(v4));
        assert_eq!(view.mapped_ip(own[1]), Some(v6));
    }

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("multiaddr")
    }

    #[test]
    fn unknown_until_a_test_ends_then_private_then_public_once_one_address_is_dialed_back() {
        let mut state = ReachabilityState::default();
        assert_eq!(state.status().reachability, Reachability::Unknown);
        state.unreachable(addr("/ip4/192.0.2.1/tcp/4001"));
        let status = state.status();
        assert_eq!(status.reachability, Reachability::Private);
        assert!(status.external_addresses.is_empty());
        state.confirmed(addr("/ip4/192.0.2.7/tcp/4001"));
        let status = state.status();
        assert_eq!(status.reachability, Reachability::Public);
        assert_eq!(status.external_addresses, [addr("/ip4/192.0.2.7/tcp/4001")]);
        assert_eq!(status.unreachable_addresses, [addr("/ip4/192.0.2.1/tcp/4001")]);
    }

    #[test]
    fn an_expired_address_takes_the_verdict_back_and_a_confirmed_one_is_not_unreachable() {
        let mut state = ReachabilityState::default();
        let a = addr("/ip4/192.0.2.7/tcp/4001");
        state.unreachable(a.clone());
        state.confirmed(a.clone());
        assert!(state.status().unreachable_addresses.is_empty(), "confirmed wins");
        state.unreachable(a.clone());
        assert_eq!(state.status().reachability, Reachability::Public, "a later failure does not undo a dial-back");
        state.expired(&a);
        assert_eq!(state.status().reachability, Reachability::Unknown);
    }

    #[test]
    fn a_peer_from_another_host_dialing_in_confirms_and_one_from_this_host_does_not() {
        let mut state = ReachabilityState::default();
        let listen = addr("/ip4/127.0.0.1/tcp/4001");
        state.dialed_in(listen.clone(), &addr("/ip4/127.0.0.1/tcp/50000"));
        assert_eq!(state.status().reachability, Reachability::Unknown, "this host's own connections prove nothing");
        let public = addr("/ip4/198.51.100.7/tcp/4001");
        state.dialed_in(public.clone(), &addr("/ip4/203.0.113.9/tcp/61000"));
        assert_eq!(state.status().reachability, Reachability::Public);
        assert_eq!(state.status().external_addresses, [public]);
    }

    #[test]
    fn what_is_remembered_is_bounded() {
        let mut state = ReachabilityState::default();
        for port in 0..1000u16 {
            state.unreachable(addr(&format!("/ip4/192.0.2.1/tcp/{port}")));
            state.confirmed(addr(&format!("/ip4/192.0.2.2/tcp/{port}")));
        }
        let status = state.status();
        assert_eq!((status.external_addresses.len(), status.unreachable_addresses.len()), (16, 16));
    }
}
