//! When a key this node provides is announced again because a peer joined
//! near it.
//!
//! Kademlia stores a provider record at the peers the provider knows to be
//! closest to the key when it announces, and at no other peer until its next
//! republish (minutes away). A node that announced while its routing table
//! was young (a stream published right after the node started, a relay
//! announced in a forming swarm) missed the peers it learns of later even
//! when they are among the closest, and a finder among the closest answers a
//! quick lookup from its own store (`find`): without the origin's record it
//! names only the relays whose announcements did reach it. So when a peer
//! enters the routing table among the [`ANNOUNCED_TO`] peers closest to a key
//! this node provides, the key is announced again.
//!
//! The cost stays bounded while a swarm forms and peers join by the dozen:
//! joins within [`SETTLE`] cost one walk, one walk per key runs at a time,
//! and after each walk the next waits longer (from [`FIRST_GAP`], doubling,
//! up to [`MAX_GAP`]). A settled swarm gains peers near a key rarely, so
//! this costs nothing there.
//!
//! [`ANNOUNCED_TO`]: crate::find::ANNOUNCED_TO

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::kad::{QueryId, RecordKey};

/// How long after a join the walk starts, so that a burst of joins costs one.
pub(crate) const SETTLE: Duration = Duration::from_millis(50);
/// The least time between the starts of a key's first and second walks.
pub(crate) const FIRST_GAP: Duration = Duration::from_secs(1);
/// The most time between the starts of two walks of a key.
pub(crate) const MAX_GAP: Duration = Duration::from_secs(60);

/// One provided key's walks.
#[derive(Debug, Default)]
struct KeyState {
    /// When the next walk is due, if a peer joined near the key since the last.
    due: Option<Instant>,
    /// The walk under way.
    in_flight: Option<QueryId>,
    /// When the last walk started.
    last_start: Option<Instant>,
    /// The least time from the last walk's start to the next one.
    gap: Duration,
}

/// The keys this node provides, and when each is announced again (see the
/// module docs): the event loop's one record of what it provides.
#[derive(Debug, Default)]
pub(crate) struct ProvidedKeys {
    keys: HashMap<RecordKey, KeyState>,
}

impl ProvidedKeys {
    /// `key` is provided from now on (announced by its provide), with no walk
    /// again yet.
    pub(crate) fn insert(&mut self, key: RecordKey) {
        self.keys.entry(key).or_default();
    }

    /// `key` is no longer provided.
    pub(crate) fn remove(&mut self, key: &RecordKey) {
        self.keys.remove(key);
    }

    /// A peer joined the routing table among those closest to `key`.
    pub(crate) fn joined_near(&mut self, key: &RecordKey, now: Instant) {
        let Some(state) = self.keys.get_mut(key) else { return };
        if state.due.is_none() {
            let earliest = state.last_start.map_or(now, |at| at + state.gap);
            state.due = Some(earliest.max(now + SETTLE));
        }
    }

    /// The keys whose walk is due at `now` and none is under way; each is
    /// to be walked and [`ProvidedKeys::started`] told.
    pub(crate) fn due(&self, now: Instant) -> Vec<RecordKey> {
        self.keys
            .iter()
            .filter(|(_, s)| s.in_flight.is_none() && s.due.is_some_and(|due| due <= now))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Whether a walk is waiting for its time (the event loop ticks often then).
    pub(crate) fn waiting(&self) -> bool {
        self.keys.values().any(|s| s.due.is_some())
    }

    /// The walk of `key` started as query `id`.
    pub(crate) fn started(&mut self, key: &RecordKey, id: QueryId, now: Instant) {
        let Some(state) = self.keys.get_mut(key) else { return };
        state.due = None;
        state.in_flight = Some(id);
        state.last_start = Some(now);
        state.gap = if state.gap.is_zero() { FIRST_GAP } else { (state.gap * 2).min(MAX_GAP) };
    }

    /// The walk of `key` could not start: it is not tried again until the
    /// next join near it.
    pub(crate) fn not_started(&mut self, key: &RecordKey) {
        if let Some(state) = self.keys.get_mut(key) {
            state.due = None;
        }
    }

    /// Query `id` ended; returns whether it was one of these walks.
    pub(crate) fn finished(&mut self, id: QueryId) -> bool {
        let Some(state) = self.keys.values_mut().find(|s| s.in_flight == Some(id)) else { return false };
        state.in_flight = None;
        true
    }

    /// Whether this node provides `key`.
    pub(crate) fn contains(&self, key: &RecordKey) -> bool {
        self.keys.contains_key(key)
    }

    /// Whether this node provides no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The provided keys.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &RecordKey> {
        self.keys.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> RecordKey {
        RecordKey::new(&name)
    }

    /// Query ids cannot be made outside libp2p; a real behaviour hands them out.
    fn query_ids(n: usize) -> Vec<QueryId> {
        let peer = libp2p::PeerId::random();
        let store = libp2p::kad::store::MemoryStore::new(peer);
        let mut kad = libp2p::kad::Behaviour::new(peer, store);
        (0..n).map(|i| kad.get_providers(key(&format!("k{i}")))).collect()
    }

    #[test]
    fn a_join_near_a_provided_key_walks_after_the_settle_time() {
        let mut again = ProvidedKeys::default();
        let t0 = Instant::now();
        again.insert(key("cam"));
        assert!(again.due(t0).is_empty() && !again.waiting(), "nothing until a peer joins");
        again.joined_near(&key("cam"), t0);
        again.joined_near(&key("cam"), t0 + Duration::from_millis(30));
        assert!(again.waiting());
        assert!(again.due(t0 + Duration::from_millis(49)).is_empty(), "settling");
        assert_eq!(again.due(t0 + SETTLE), vec![key("cam")], "one walk for the burst");
    }

    #[test]
    fn joins_for_keys_not_provided_do_nothing() {
        let mut again = ProvidedKeys::default();
        let t0 = Instant::now();
        again.joined_near(&key("other"), t0);
        again.insert(key("cam"));
        again.remove(&key("cam"));
        again.joined_near(&key("cam"), t0);
        assert!(again.due(t0 + MAX_GAP).is_empty() && !again.waiting());
    }

    #[test]
    fn one_walk_at_a_time_and_the_gaps_double_up_to_the_maximum() {
        let ids = query_ids(12);
        let mut again = ProvidedKeys::default();
        let cam = key("cam");
        again.insert(cam.clone());
        let mut now = Instant::now();
        let mut gaps = Vec::new();
        let mut last_start: Option<Instant> = None;
        for id in ids {
            again.joined_near(&cam, now);
            // Ask every 10 ms until the walk is due.
            while again.due(now).is_empty() {
                now += Duration::from_millis(10);
            }
            if let Some(last) = last_start {
                gaps.push(now - last);
            }
            again.started(&cam, id, now);
            last_start = Some(now);
            // A join while the walk runs waits for it to end.
            again.joined_near(&cam, now);
            assert!(again.due(now + MAX_GAP).is_empty(), "a walk is under way");
            assert!(again.finished(id));
            assert!(!again.finished(id), "told once");
        }
        let secs: Vec<u64> = gaps.iter().map(|gap| gap.as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]);
    }

    #[test]
    fn a_walk_that_did_not_start_waits_for_the_next_join() {
        let mut again = ProvidedKeys::default();
        let t0 = Instant::now();
        again.insert(key("cam"));
        again.joined_near(&key("cam"), t0);
        again.not_started(&key("cam"));
        assert!(again.due(t0 + MAX_GAP).is_empty() && !again.waiting());
        again.joined_near(&key("cam"), t0 + SETTLE);
        assert_eq!(again.due(t0 + SETTLE * 2), vec![key("cam")]);
    }
}
