//! Which of this node's listen addresses it gives out as its own, for other
//! nodes to dial: they go into the provider records it announces.
//!
//! Kademlia puts a node's confirmed external addresses in its ADD_PROVIDER
//! messages. With none, a record holds no address, and the peer holding it
//! answers a lookup with the provider's addresses from its own routing table
//! or, when the provider is not in it, leaves the provider out of the answer.
//! A node that joined after the holders' buckets filled is in few of their
//! tables: a stream it published was found from 6 of 299 nodes at 300 nodes.
//! So every address the node listens on that others can dial is confirmed as
//! external at once. Loopback addresses are given out only by a node that
//! listens on loopback alone (tests, one-machine swarms): elsewhere a peer
//! dialing one would reach itself. Behind NAT the address others dial is not
//! a listen address; `--external-address` style configuration or AutoNAT is
//! what that needs.

use std::net::IpAddr;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// Whether `address`, one the node listens on, is given out, for a node whose
/// configured listen addresses are `configured`.
pub(crate) fn gives_out(address: &Multiaddr, configured: &[Multiaddr]) -> bool {
    let Some(ip) = ip_of(address) else { return false };
    if ip.is_unspecified() {
        return false;
    }
    !ip.is_loopback() || configured.iter().all(|listen| ip_of(listen).is_some_and(|ip| ip.is_loopback()))
}

/// The IP address a multiaddr starts with, if any (IPv4-mapped IPv6 as IPv4).
pub(crate) fn ip_of(address: &Multiaddr) -> Option<IpAddr> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(ip.to_canonical()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("multiaddr")
    }

    #[test]
    fn routable_addresses_are_given_out_and_loopback_only_by_loopback_nodes() {
        let any = [addr("/ip4/0.0.0.0/tcp/4001")];
        assert!(gives_out(&addr("/ip4/10.0.0.5/tcp/4001"), &any));
        assert!(!gives_out(&addr("/ip4/127.0.0.1/tcp/4001"), &any), "a peer dialing it would reach itself");
        assert!(!gives_out(&addr("/ip4/0.0.0.0/tcp/4001"), &any));
        let loopback = [addr("/ip4/127.0.0.1/tcp/0"), addr("/ip4/127.0.0.1/udp/0/quic-v1")];
        assert!(gives_out(&addr("/ip4/127.0.0.1/tcp/41234"), &loopback));
        assert!(gives_out(&addr("/ip6/::1/tcp/41234"), &[addr("/ip6/::1/tcp/0")]));
        assert!(gives_out(&addr("/ip6/2001:db8::1/tcp/4001"), &[addr("/ip6/::/tcp/4001")]));
        assert!(!gives_out(&addr("/dns4/example.org/tcp/4001"), &any), "not an address the node listens on");
        assert!(!gives_out(&addr("/ip6/::ffff:127.0.0.1/tcp/4001"), &any), "IPv4 loopback, mapped into IPv6");
    }
}
