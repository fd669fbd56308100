//! What it costs to find the peers of a Kademlia routing table closest to a
//! key, by rust-libp2p's iterators and by a scan of the table.
//!
//! `cargo bench -p mafalda-tests --bench kad_closest` adds 4 to 300 random
//! peers to a routing table and times, per call over 2,000 random keys:
//! `get_closest_local_peers` (what a query starts from, and what the swarm
//! used to ask once per lookup and per provided key whenever a peer joined),
//! `find_closest_local_peers` (what Kademlia computes for every FIND_NODE and
//! GET_PROVIDERS request it answers), and the scan `mafalda_swarm` counts
//! closer peers with (`swarm/src/routing.rs`). libp2p-kad 0.49 visits all 256
//! buckets until it has k (20) peers, moving a k-entry inline buffer at each:
//! a table of fewer than k peers, as in every swarm of up to 20 nodes, costs
//! the most.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::{self, KBucketKey, RecordKey, store::MemoryStore};

const CALLS: u32 = 2_000;

fn per_call(mut call: impl FnMut(u32) -> usize) -> (Duration, usize) {
    let started = Instant::now();
    let found = (0..CALLS).map(&mut call).sum();
    (started.elapsed() / CALLS, found)
}

fn main() {
    println!("closest peers to a key, per call ({CALLS} keys), by routing-table size:");
    for size in [4usize, 10, 19, 30, 100, 300] {
        let me = PeerId::random();
        let mut kad = kad::Behaviour::new(me, MemoryStore::new(me));
        for _ in 0..size {
            kad.add_address(&PeerId::random(), "/ip4/127.0.0.1/tcp/4001".parse().expect("address"));
        }
        // Kademlia keeps at most k peers per bucket: a large swarm's table holds fewer.
        let held: usize = kad.kbuckets().map(|bucket| bucket.num_entries()).sum();
        let target = |i: u32| KBucketKey::new(RecordKey::new(&i.to_be_bytes()));
        let (libp2p_keys, _) = per_call(|i| kad.get_closest_local_peers(&target(i)).take(20).count());
        let asker = PeerId::random();
        let (libp2p_answer, _) = per_call(|i| kad.find_closest_local_peers(&target(i), &asker).count());
        // The scan: the table's keys once, then each key's closer peers counted.
        let mine = KBucketKey::from(me);
        let (scan, _) = per_call(|i| {
            let mut known = Vec::new();
            for bucket in kad.kbuckets() {
                known.extend(bucket.iter().map(|entry| *entry.node.key));
            }
            let key = target(i);
            let distance = mine.distance(&key);
            known.iter().filter(|peer| peer.distance(&key) < distance).take(20).count()
        });
        println!(
            "{size:>4} peers added ({held:>3} held): get_closest_local_peers {libp2p_keys:>9.1?}, find_closest_local_peers (each request answered) {libp2p_answer:>9.1?}, scan {scan:>9.1?}"
        );
    }
}
