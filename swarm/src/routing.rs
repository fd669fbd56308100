//! Which peers enter Kademlia's routing table.
//!
//! Kademlia keeps the oldest peers of a full bucket, and when a new peer
//! would go into a bucket whose oldest entry is disconnected, rust-libp2p
//! dials that entry to see whether it is still alive. With connections
//! bounded (`connections`), most entries are disconnected yet alive, so every
//! new connection would start a dial, whose connection would start another:
//! in a 100-node swarm about 14 connections were opened per find, 275 a
//! second during the discovery phase, and the noise handshakes alone took a
//! seventh of the machine. Here a full bucket is left as it is: a new peer
//! enters a bucket only while it has room, and entries that died are dropped
//! when a lookup fails to reach them (Kademlia removes an address whose dial
//! fails), which makes room again.
//!
//! Also how near the table's peers are to a key ([`known_peers`],
//! [`closer_than`]). rust-libp2p's `get_closest_local_peers` (libp2p-kad
//! 0.49) visits all 256 buckets until it has k peers, moving a k-entry inline
//! buffer at each: in a table of fewer than k peers (every swarm of up to 20
//! nodes) it took 65–75 µs per call on the CI machine, in the swarm task, and
//! the event loop asked it once per lookup and once per provided key each
//! time a peer joined the table. Scanning the table's few entries costs
//! microseconds.

use libp2p::PeerId;
use libp2p::kad::{self, KBucketDistance, KBucketKey, store::MemoryStore};

/// Entries per bucket (Kademlia's k, the rust-libp2p default the node keeps).
pub(crate) const BUCKET_SIZE: usize = libp2p::kad::K_VALUE.get();

/// Whether a peer's address goes into its bucket: always when the peer is in
/// it already (the address is updated), otherwise only while the bucket,
/// holding `entries`, has room.
pub(crate) fn admits(already_in_bucket: bool, entries: usize) -> bool {
    already_in_bucket || entries < BUCKET_SIZE
}

/// The keys of the peers in `kad`'s routing table, gathered once so that
/// several targets can be measured against them.
pub(crate) fn known_peers(kad: &mut kad::Behaviour<MemoryStore>) -> Vec<KBucketKey<PeerId>> {
    let mut keys = Vec::new();
    for bucket in kad.kbuckets() {
        keys.extend(bucket.iter().map(|entry| *entry.node.key));
    }
    keys
}

/// How many of the `known` peers are closer to `target` than `distance`,
/// counted up to `cap`: with `cap` k, whether a peer at `distance` is among
/// the k closest the table knows (fewer than k are closer).
pub(crate) fn closer_than<T>(
    known: &[KBucketKey<PeerId>],
    target: &KBucketKey<T>,
    distance: KBucketDistance,
    cap: usize,
) -> usize {
    known.iter().filter(|key| key.distance(target) < distance).take(cap).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_takes_no_new_peer_but_updates_its_own() {
        assert!(admits(false, 0));
        assert!(admits(false, BUCKET_SIZE - 1));
        assert!(!admits(false, BUCKET_SIZE), "a full bucket is not disturbed");
        assert!(admits(true, BUCKET_SIZE), "a peer already in it gets its address updated");
    }

    /// The scan answers what libp2p's closest-peers iterator does, for
    /// tables smaller and larger than k and targets of both kinds.
    #[test]
    fn counting_closer_peers_agrees_with_kademlias_own_ordering() {
        for size in [0usize, 1, 5, 19, 20, 21, 60, 200] {
            let me = PeerId::random();
            let mut kad = kad::Behaviour::new(me, MemoryStore::new(me));
            for _ in 0..size {
                kad.add_address(&PeerId::random(), "/ip4/127.0.0.1/tcp/4001".parse().expect("address"));
            }
            let known = known_peers(&mut kad);
            assert_eq!(known.len(), kad.kbuckets().map(|bucket| bucket.num_entries()).sum::<usize>());
            for round in 0u32..20 {
                let target = KBucketKey::new(kad::RecordKey::new(&round.to_be_bytes()));
                let ordered: Vec<KBucketKey<PeerId>> = kad.get_closest_local_peers(&target).take(BUCKET_SIZE).collect();
                // This node's own distance, as a lookup measures it.
                let mine = KBucketKey::from(me).distance(&target);
                let expected = ordered.iter().take_while(|peer| peer.distance(&target) < mine).count();
                assert_eq!(closer_than(&known, &target, mine, BUCKET_SIZE), expected, "size {size}");
                // Each known peer's membership of the k closest.
                for peer in &known {
                    let among = ordered.contains(peer);
                    let rank = closer_than(&known, &target, peer.distance(&target), BUCKET_SIZE);
                    assert_eq!(rank < BUCKET_SIZE, among, "size {size}");
                }
            }
        }
    }
}
