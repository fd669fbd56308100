//! Which connections a node keeps: the policy that keeps the number of
//! connected peers bounded while the swarm grows.
//!
//! Kademlia dials the peers it asks during lookups, and gossipsub then holds a
//! stream on every connection, so without a policy a node ends up connected
//! to every other node and its control-plane cost grows with the swarm. The
//! DHT needs O(log N) contacts in its routing table, not connections; a
//! connection is needed only while a protocol uses it. So once more than
//! `max_peers` peers are connected, the peers no one uses (no ROPE call for
//! `idle_after`, not kept by the node for its pipes and sessions) are
//! disconnected, least recently used first, down to `target_peers`. Gossip
//! mesh peers go last, as go-libp2p's connection manager does with the peers
//! gossipsub tags: the mesh heals by grafting other peers, but churn in it
//! costs messages.
//!
//! A crowd needs a shorter memory. When a stream is new, every node that finds
//! it dials its origin for one `stream.describe` call; at 300 nodes the origin
//! reached its cap on incoming connections within 12 s and refused the last
//! finders (they answered 404). So above `crowd_peers`, peers outside the
//! gossip mesh with no call for `crowd_idle_after` are disconnected down to
//! `crowd_peers`, and the event loop trims on every tick rather than every
//! few seconds. Only the excess goes: a node trimmed to its target would
//! break the Kademlia requests of the crowd it keeps serving.
//!
//! Each side trims on its own, so a node can be let go by every peer at
//! once: in a 10-node lab with a target of 4, all nodes trimmed within the
//! same second, each by its own least-recently-used order, and the seed,
//! which nobody called, was dropped by all nine and left with no connection
//! (finds still worked, as lookups dial on demand, but gossip and load
//! reports did not reach it). So a node left with fewer than half its
//! `target_peers` dials peers from its routing table back up to the target,
//! as Lighthouse's peer manager does below its target. Not below the target
//! itself: the finds of a 300-node swarm move many nodes one or two peers
//! under it at once (a crowded origin lets its describers go), and dialing
//! each time back cost Noise handshakes on a saturated machine; 23 to 32 of
//! 900 describes then failed against 2, and the find p99 went from 0.5 to
//! 1.2 s. The gap between `target_peers` and `max_peers` keeps the dials
//! from undoing the trims: a peer at its target takes a few dialers before
//! it trims again. A peer dialed to make up the number is not dialed for
//! that again within [`REDIAL_AFTER`], so a peer with tighter bounds that
//! lets this node go is not asked again on every trim.
//!
//! Pure: it takes `now` and the facts, and answers which peers to disconnect
//! and which to dial; the event loop does the disconnecting and dialing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// How long a peer dialed to make up `target_peers` is not dialed for that
/// again (see the module doc).
pub(crate) const REDIAL_AFTER: Duration = Duration::from_secs(60);

/// Connection bounds (see [`ConnectionSettings`](crate::ConnectionSettings)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerBounds {
    /// Above this many connected peers, unused ones are disconnected.
    pub(crate) max_peers: usize,
    /// Disconnecting stops at this many.
    pub(crate) target_peers: usize,
    /// A peer is unused after this long without a call or a Kademlia request either way.
    pub(crate) idle_after: Duration,
    /// Above this many connected peers, the node is crowded: peers outside the
    /// gossip mesh are unused after `crowd_idle_after` already.
    pub(crate) crowd_peers: usize,
    /// How long a crowded node keeps a peer it has no call with.
    pub(crate) crowd_idle_after: Duration,
}

/// Last use of each connected peer, and when peers were last dialed to make
/// up the target.
#[derive(Debug)]
pub(crate) struct ConnectionPolicy {
    bounds: PeerBounds,
    last_used: HashMap<PeerId, Instant>,
    /// Only peers dialed within [`REDIAL_AFTER`]: older entries are dropped
    /// at each [`ConnectionPolicy::peers_to_dial`], so it holds at most the peers
    /// dialed in that while.
    filled_with: HashMap<PeerId, Instant>,
    /// Whether the node fell below [`ConnectionPolicy::fewest_peers`] and has
    /// not been back at its target since: dials whose peer turned out gone
    /// are then made up by others.
    filling: bool,
}

impl ConnectionPolicy {
    pub(crate) fn new(bounds: PeerBounds) -> Self {
        Self { bounds, last_used: HashMap::new(), filled_with: HashMap::new(), filling: false }
    }

    /// Below this many connected peers (half the target, at least one) the
    /// node dials known peers back up to the target.
    pub(crate) fn fewest_peers(&self) -> usize {
        (self.bounds.target_peers / 2).max(1)
    }

    /// Whether the node, with `connected` peers, dials known peers: from
    /// when fewer than [`fewest_peers`](Self::fewest_peers) are connected
    /// until the target is met again.
    pub(crate) fn dials_back(&mut self, connected: usize) -> bool {
        if connected >= self.bounds.target_peers {
            self.filling = false;
        } else if connected < self.fewest_peers() {
            self.filling = true;
        }
        self.filling
    }

    /// The peers to dial now, and recorded as dialed: while the node
    /// [`dials_back`](Self::dials_back), as many of the `unconnected` peers
    /// the routing table knows as make up the target, in the order given,
    /// skipping those dialed for this within [`REDIAL_AFTER`]; otherwise none.
    pub(crate) fn peers_to_dial(
        &mut self,
        connected: usize,
        unconnected: impl IntoIterator<Item = PeerId>,
        now: Instant,
    ) -> Vec<PeerId> {
        self.filled_with.retain(|_, at| now.saturating_duration_since(*at) < REDIAL_AFTER);
        if !self.dials_back(connected) {
            return Vec::new();
        }
        let missing = self.bounds.target_peers.saturating_sub(connected);
        let dialing: Vec<PeerId> =
            unconnected.into_iter().filter(|peer| !self.filled_with.contains_key(peer)).take(missing).collect();
        for peer in &dialing {
            self.filled_with.insert(*peer, now);
        }
        dialing
    }

    /// `peer` connected or a call went either way with it.
    pub(crate) fn used(&mut self, peer: PeerId, now: Instant) {
        self.last_used.insert(peer, now);
    }

    /// `peer` has no connection left.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.last_used.remove(peer);
    }

    /// Whether `connected` peers crowd the node (see [`PeerBounds::crowd_peers`]).
    pub(crate) fn crowded(&self, connected: usize) -> bool {
        connected > self.bounds.crowd_peers
    }

    /// The peers to disconnect now: none while at most `max_peers` are
    /// connected; otherwise unused, unkept peers until `target_peers` remain,
    /// those not `last_resort` first, each group least recently used first.
    /// While crowded, also peers not `last_resort` unused for the crowd's
    /// shorter while, least recently used first, until `crowd_peers` remain.
    pub(crate) fn to_disconnect(
        &self,
        connected: &[PeerId],
        kept: impl Fn(&PeerId) -> bool,
        last_resort: impl Fn(&PeerId) -> bool,
        now: Instant,
    ) -> Vec<PeerId> {
        if connected.len() <= self.bounds.max_peers {
            return Vec::new();
        }
        let mut candidates: Vec<(bool, Instant, PeerId)> = connected
            .iter()
            .filter(|peer| !kept(peer))
            // A peer seen connected but never recorded counts as used now:
            // the first tick after it connected is not the time to judge it.
            .map(|peer| (last_resort(peer), self.last_used.get(peer).copied().unwrap_or(now), *peer))
            .collect();
        candidates.sort();
        let unused_for = |last: Instant| now.saturating_duration_since(last);
        let excess = connected.len() - self.bounds.target_peers.min(self.bounds.max_peers);
        let mut closing: Vec<PeerId> = candidates
            .iter()
            .filter(|(_, last, _)| unused_for(*last) >= self.bounds.idle_after)
            .take(excess)
            .map(|(_, _, peer)| *peer)
            .collect();
        let left = connected.len() - closing.len();
        if self.crowded(left) {
            // A crowd is hundreds of peers, checked every tick: no scan per candidate.
            let idle_closing: std::collections::HashSet<PeerId> = closing.iter().copied().collect();
            let crowd: Vec<PeerId> = candidates
                .iter()
                .filter(|(last_resort, last, peer)| {
                    !last_resort && unused_for(*last) >= self.bounds.crowd_idle_after && !idle_closing.contains(peer)
                })
                .take(left - self.bounds.crowd_peers)
                .map(|(_, _, peer)| *peer)
                .collect();
            closing.extend(crowd);
        }
        closing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);
    const CROWD_IDLE: Duration = Duration::from_secs(2);

    fn policy(max_peers: usize, target_peers: usize) -> ConnectionPolicy {
        crowd_policy(max_peers, target_peers, usize::MAX)
    }

    fn crowd_policy(max_peers: usize, target_peers: usize, crowd_peers: usize) -> ConnectionPolicy {
        ConnectionPolicy::new(PeerBounds {
            max_peers,
            target_peers,
            idle_after: IDLE,
            crowd_peers,
            crowd_idle_after: CROWD_IDLE,
        })
    }

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn nothing_closes_up_to_the_maximum() {
        let start = Instant::now();
        let mut policy = policy(4, 2);
        let connected = peers(4);
        for peer in &connected {
            policy.used(*peer, start);
        }
        assert!(policy.to_disconnect(&connected, |_| false, |_| false, start + IDLE * 10).is_empty());
    }

    #[test]
    fn above_the_maximum_the_least_recently_used_close_down_to_the_target() {
        let start = Instant::now();
        let mut policy = policy(4, 2);
        let connected = peers(6);
        for (i, peer) in connected.iter().enumerate() {
            policy.used(*peer, start + Duration::from_secs(i as u64));
        }
        let now = start + IDLE * 2;
        assert_eq!(policy.to_disconnect(&connected, |_| false, |_| false, now), connected[..4].to_vec());
    }

    #[test]
    fn peers_in_use_or_kept_stay_even_above_the_maximum() {
        let start = Instant::now();
        let mut policy = policy(2, 1);
        let connected = peers(5);
        for peer in &connected {
            policy.used(*peer, start);
        }
        let now = start + IDLE;
        // Peer 0 was used recently; peers 1 and 2 are kept by the node.
        policy.used(connected[0], now - Duration::from_secs(1));
        let kept = |peer: &PeerId| *peer == connected[1] || *peer == connected[2];
        let mut closing = policy.to_disconnect(&connected, kept, |_| false, now);
        closing.sort();
        let mut expected = vec![connected[3], connected[4]];
        expected.sort();
        assert_eq!(closing, expected, "only idle, unkept peers close, even if the maximum stays exceeded");
    }

    #[test]
    fn last_resort_peers_close_after_the_others() {
        let start = Instant::now();
        let mut policy = policy(2, 2);
        let connected = peers(4);
        for (i, peer) in connected.iter().enumerate() {
            policy.used(*peer, start + Duration::from_secs(i as u64));
        }
        // The two least recently used are in the mesh: the other two go first.
        let mesh = |peer: &PeerId| *peer == connected[0] || *peer == connected[1];
        let closing = policy.to_disconnect(&connected, |_| false, mesh, start + IDLE * 2);
        assert_eq!(closing, vec![connected[2], connected[3]]);
    }

    #[test]
    fn a_peer_never_recorded_is_not_judged_idle() {
        let start = Instant::now();
        let policy = policy(1, 1);
        let connected = peers(3);
        assert!(policy.to_disconnect(&connected, |_| false, |_| false, start + IDLE * 5).is_empty());
    }

    #[test]
    fn forgotten_peers_are_fresh_again() {
        let start = Instant::now();
        let mut policy = policy(1, 1);
        let connected = peers(2);
        for peer in &connected {
            policy.used(*peer, start);
        }
        policy.disconnected(&connected[0]);
        let closing = policy.to_disconnect(&connected, |_| false, |_| false, start + IDLE);
        assert_eq!(closing, vec![connected[1]], "a forgotten peer counts as just used");
    }

    #[test]
    fn a_node_below_half_its_target_dials_known_peers_up_to_it() {
        let start = Instant::now();
        let mut policy = policy(6, 4);
        let known = peers(9);
        assert_eq!(policy.fewest_peers(), 2);
        for connected in [2, 3, 4, 5] {
            assert!(policy.peers_to_dial(connected, known.clone(), start).is_empty(), "{connected} connected: no dial");
        }
        // Let go by every peer at once: four dials, in the table's order.
        assert_eq!(policy.peers_to_dial(0, known.clone(), start), known[..4].to_vec());
        // One came through; the next trim dials others than the three that failed.
        let later = start + Duration::from_secs(5);
        assert_eq!(policy.peers_to_dial(1, known[1..].to_vec(), later), known[4..7].to_vec());
        // Two of those came through: above half the target, but still short of it.
        assert_eq!(policy.peers_to_dial(3, known[7..].to_vec(), later), vec![known[7]]);
        // At the target the filling ends: falling one short again dials nobody.
        assert!(policy.peers_to_dial(4, known[8..].to_vec(), later).is_empty());
        assert!(policy.peers_to_dial(3, known[8..].to_vec(), later).is_empty(), "3 of 4: no dial");
        assert_eq!(self::policy(1, 1).fewest_peers(), 1, "a target of one still dials with none");
    }

    #[test]
    fn a_peer_dialed_to_fill_up_is_not_redialed_within_the_grace() {
        let start = Instant::now();
        let mut policy = policy(1, 1);
        let known = peers(3);
        assert_eq!(policy.peers_to_dial(0, known.clone(), start), vec![known[0]]);
        // Known[0] let this node go at once: the others are asked, not it.
        let soon = start + Duration::from_secs(5);
        assert_eq!(policy.peers_to_dial(0, known.clone(), soon), vec![known[1]]);
        assert_eq!(policy.peers_to_dial(0, known.clone(), soon), vec![known[2]]);
        assert!(policy.peers_to_dial(0, known.clone(), soon).is_empty(), "every known peer was asked within the grace");
        // After it, the first may be asked again.
        assert_eq!(policy.peers_to_dial(0, known.clone(), start + REDIAL_AFTER), vec![known[0]]);
    }

    #[test]
    fn a_crowded_node_lets_go_of_peers_sooner_but_not_of_its_mesh() {
        let start = Instant::now();
        // Crowded above 4 connected peers; a crowd of 6 each called once.
        let mut policy = crowd_policy(2, 2, 4);
        let connected = peers(6);
        for (i, peer) in connected.iter().enumerate() {
            policy.used(*peer, start + Duration::from_millis(100 * i as u64));
        }
        let mesh = |peer: &PeerId| *peer == connected[0];
        // Within the crowd grace nobody goes, however many are connected.
        let early = start + CROWD_IDLE - Duration::from_millis(1);
        assert!(policy.to_disconnect(&connected, |_| false, mesh, early).is_empty());
        // After it, the least recently used go until the crowd mark is met; the
        // mesh peer stays.
        let later = start + CROWD_IDLE * 2;
        assert_eq!(policy.to_disconnect(&connected, |_| false, mesh, later), connected[1..3].to_vec());
        // Not crowded (4 connected): the normal grace applies again.
        assert!(policy.to_disconnect(&connected[..4], |_| false, mesh, later).is_empty());
        assert!(!policy.crowded(4) && policy.crowded(5));
    }
}
