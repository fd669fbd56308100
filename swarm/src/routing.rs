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

/// Entries per bucket (Kademlia's k, the rust-libp2p default the node keeps).
pub(crate) const BUCKET_SIZE: usize = libp2p::kad::K_VALUE.get();

/// Whether a peer's address goes into its bucket: always when the peer is in
/// it already (the address is updated), otherwise only while the bucket,
/// holding `entries`, has room.
pub(crate) fn admits(already_in_bucket: bool, entries: usize) -> bool {
    already_in_bucket || entries < BUCKET_SIZE
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
}
