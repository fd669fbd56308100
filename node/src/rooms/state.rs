//! One room's membership as one node knows it: its own entry (what its apps
//! produce in the room) and every other member node's, merged by version.
//!
//! Each node is the only source of its own entry: it raises `seq` on every
//! change and carries its `incarnation` (its start time), so an entry from a
//! restarted node beats any older one. A member found dead (or that left)
//! leaves a tombstone at the version it had, so a stale copy arriving late
//! does not bring it back; a newer one does (it was not dead after all, or
//! it restarted). A state machine: callers pass `now`, nothing here sleeps.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::MediaKind;
use mafalda_swarm::PeerId;
use serde::{Deserialize, Serialize};

/// Most member nodes one room may have (what a node keeps of others).
pub const MAX_ROOM_NODES: usize = 64;
/// Most producers one node's entry may have in one room.
pub const MAX_PRODUCERS_PER_NODE: usize = 128;
/// Most codecs one producer lists.
const MAX_CODECS: usize = 8;
/// Largest `appData` of one producer (serialized JSON bytes).
pub const MAX_APP_DATA_BYTES: usize = 2048;
/// How long a tombstone keeps a stale copy of a gone member out.
const TOMBSTONE_TTL: Duration = Duration::from_secs(120);
/// Re-checks in a row a member still connected may answer too slowly
/// before it counts as gone (a loaded node is slow, not dead).
pub const MAX_SLOW_ANSWERS: u32 = 3;

/// A codec a producer's consumers can receive (what `canConsume` compares).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodecEntry {
    /// `audio/opus`, `video/VP8`, ...
    pub mime_type: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
}

/// One producer of a node's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProducerEntry {
    /// Its id at its own node (a UUID): the room's id for it everywhere.
    pub id: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Paused by its producer.
    pub paused: bool,
    /// The producing app's `appData` (an object).
    pub app_data: serde_json::Value,
    /// What its consumers can receive.
    pub codecs: Vec<CodecEntry>,
}

/// What one node says of itself in a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeEntry {
    /// Raised when the node restarts (its start time in ms).
    pub incarnation: u64,
    /// Raised on every change of the entry.
    pub seq: u64,
    /// The producers its apps made in the room.
    pub producers: Vec<ProducerEntry>,
    /// The node left the room (its last app did).
    #[serde(default)]
    pub left: bool,
}

/// Why a peer's entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// More producers than a node may have in a room.
    #[error("{0} producers in one entry (at most {MAX_PRODUCERS_PER_NODE})")]
    TooManyProducers(usize),
    /// A producer's fields are not what a node makes.
    #[error("producer {id:?}: {reason}")]
    BadProducer {
        /// The id as sent (shortened).
        id: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl NodeEntry {
    /// The version entries are ordered by.
    pub fn version(&self) -> (u64, u64) {
        (self.incarnation, self.seq)
    }

    /// Checks what a peer sent: counts, ids, sizes.
    pub fn check(&self) -> Result<(), EntryError> {
        if self.producers.len() > MAX_PRODUCERS_PER_NODE {
            return Err(EntryError::TooManyProducers(self.producers.len()));
        }
        for producer in &self.producers {
            let bad = |reason| EntryError::BadProducer { id: producer.id.chars().take(40).collect(), reason };
            if uuid::Uuid::parse_str(&producer.id).is_err() || producer.id.len() != 36 {
                return Err(bad("the id is not a UUID"));
            }
            if !producer.app_data.is_object() {
                return Err(bad("appData is not an object"));
            }
            if serde_json::to_vec(&producer.app_data).map_or(usize::MAX, |bytes| bytes.len()) > MAX_APP_DATA_BYTES {
                return Err(bad("appData is too large"));
            }
            if producer.codecs.is_empty() || producer.codecs.len() > MAX_CODECS {
                return Err(bad("1 to 8 codecs"));
            }
            if producer.codecs.iter().any(|codec| codec.mime_type.len() > 64) {
                return Err(bad("a mime type is too long"));
            }
        }
        let mut ids: Vec<&str> = self.producers.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(EntryError::BadProducer { id: String::new(), reason: "an id is listed twice" });
        }
        Ok(())
    }
}

/// What merging a peer's entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// The entry is newer: the room changed.
    Applied,
    /// Already known, or older than what is known (or than its tombstone).
    Stale,
    /// A new member, but the room has [`MAX_ROOM_NODES`] already.
    Full,
}

/// One room at one node.
#[derive(Debug)]
pub struct RoomState {
    own: NodeEntry,
    others: HashMap<PeerId, NodeEntry>,
    gone: HashMap<PeerId, ((u64, u64), Instant)>,
    /// Re-checks in a row each member answered too slowly.
    slow: HashMap<PeerId, u32>,
}

impl RoomState {
    /// A room this node just joined, with no producers yet.
    pub fn new(incarnation: u64) -> Self {
        Self {
            own: NodeEntry { incarnation, seq: 1, producers: Vec::new(), left: false },
            others: HashMap::new(),
            gone: HashMap::new(),
            slow: HashMap::new(),
        }
    }

    /// `peer` answered a sync: its slow answers are forgotten.
    pub fn answered(&mut self, peer: PeerId) {
        self.slow.remove(&peer);
    }

    /// `peer` (still connected) did not answer a re-check in time: true
    /// once that happened [`MAX_SLOW_ANSWERS`] times in a row (then it is
    /// removed as gone), false while it may still be just slow.
    pub fn slow_answer(&mut self, peer: PeerId, now: Instant) -> bool {
        if !self.others.contains_key(&peer) {
            return false;
        }
        let count = self.slow.entry(peer).or_default();
        *count += 1;
        if *count >= MAX_SLOW_ANSWERS {
            self.remove(peer, now);
            return true;
        }
        false
    }

    /// This node's entry.
    pub fn own(&self) -> &NodeEntry {
        &self.own
    }

    /// Changes this node's producers (and raises its version).
    pub fn change_own(&mut self, change: impl FnOnce(&mut Vec<ProducerEntry>)) {
        change(&mut self.own.producers);
        self.own.seq += 1;
    }

    /// This node's entry on leaving: no producers, `left` set.
    pub fn leaving(&mut self) -> NodeEntry {
        self.own.seq += 1;
        NodeEntry { incarnation: self.own.incarnation, seq: self.own.seq, producers: Vec::new(), left: true }
    }

    /// Merges what `peer` says of itself (checked by the caller).
    pub fn merge(&mut self, peer: PeerId, entry: NodeEntry, now: Instant) -> Merge {
        self.expire(now);
        let version = entry.version();
        if self.gone.get(&peer).is_some_and(|(dead, _)| *dead >= version)
            || self.others.get(&peer).is_some_and(|known| known.version() >= version)
        {
            return Merge::Stale;
        }
        if entry.left {
            self.others.remove(&peer);
            self.gone.insert(peer, (version, now));
            return Merge::Applied;
        }
        if !self.others.contains_key(&peer) && self.others.len() + 1 >= MAX_ROOM_NODES {
            return Merge::Full;
        }
        self.gone.remove(&peer);
        self.others.insert(peer, entry);
        Merge::Applied
    }

    /// `peer` is gone (dead, or unreachable twice): forgets its entry,
    /// keeping a tombstone at its version. False if it was not a member.
    pub fn remove(&mut self, peer: PeerId, now: Instant) -> bool {
        self.expire(now);
        self.slow.remove(&peer);
        let Some(entry) = self.others.remove(&peer) else { return false };
        self.gone.insert(peer, (entry.version(), now));
        true
    }

    /// The other member nodes.
    pub fn members(&self) -> Vec<PeerId> {
        let mut members: Vec<PeerId> = self.others.keys().copied().collect();
        members.sort();
        members
    }

    /// Whether `peer` is a member.
    pub fn is_member(&self, peer: &PeerId) -> bool {
        self.others.contains_key(peer)
    }

    /// Every producer of the room with its node (`None`: this one).
    pub fn producers(&self) -> impl Iterator<Item = (Option<PeerId>, &ProducerEntry)> {
        let own = self.own.producers.iter().map(|producer| (None, producer));
        let others = self
            .others
            .iter()
            .flat_map(|(peer, entry)| entry.producers.iter().map(move |producer| (Some(*peer), producer)));
        own.chain(others)
    }

    /// Room producer `id` and its node (`None`: this one).
    pub fn producer(&self, id: &str) -> Option<(Option<PeerId>, &ProducerEntry)> {
        self.producers().find(|(_, producer)| producer.id == id)
    }

    fn expire(&mut self, now: Instant) {
        self.gone.retain(|_, (_, since)| now.saturating_duration_since(*since) < TOMBSTONE_TTL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(id: &str) -> ProducerEntry {
        ProducerEntry {
            id: id.to_owned(),
            kind: MediaKind::Audio,
            paused: false,
            app_data: serde_json::json!({}),
            codecs: vec![CodecEntry { mime_type: "audio/opus".into(), clock_rate: 48000, channels: Some(2) }],
        }
    }

    fn entry(incarnation: u64, seq: u64, producers: &[&str]) -> NodeEntry {
        NodeEntry { incarnation, seq, producers: producers.iter().map(|id| producer(id)).collect(), left: false }
    }

    const P1: &str = "0b0c8a4e-8f33-4a5e-9d7e-2f6d1b1f0a01";
    const P2: &str = "0b0c8a4e-8f33-4a5e-9d7e-2f6d1b1f0a02";

    #[test]
    fn newer_entries_win_and_older_ones_change_nothing() {
        let (now, peer) = (Instant::now(), PeerId::random());
        let mut room = RoomState::new(1);
        assert_eq!(room.merge(peer, entry(5, 2, &[P1]), now), Merge::Applied);
        assert_eq!(room.merge(peer, entry(5, 1, &[]), now), Merge::Stale);
        assert_eq!(room.merge(peer, entry(5, 2, &[]), now), Merge::Stale, "same version: already known");
        assert_eq!(room.producer(P1).map(|(node, _)| node), Some(Some(peer)));
        assert_eq!(room.merge(peer, entry(5, 3, &[P2]), now), Merge::Applied);
        assert!(room.producer(P1).is_none());
        assert!(room.producer(P2).is_some());
    }

    #[test]
    fn a_dead_member_stays_out_until_it_says_something_newer_or_restarts() {
        let (now, peer) = (Instant::now(), PeerId::random());
        let mut room = RoomState::new(1);
        room.merge(peer, entry(5, 4, &[P1]), now);
        assert!(room.remove(peer, now));
        assert!(!room.remove(peer, now), "already gone");
        assert!(room.producer(P1).is_none());
        assert_eq!(room.merge(peer, entry(5, 4, &[P1]), now), Merge::Stale, "a late copy does not bring it back");
        assert_eq!(room.merge(peer, entry(6, 1, &[]), now), Merge::Applied, "restarted: a higher incarnation");
        assert!(room.is_member(&peer));
        // After the tombstone's time, even an old copy is taken (nothing remembers it).
        room.remove(peer, now);
        let later = now + TOMBSTONE_TTL + Duration::from_secs(1);
        assert_eq!(room.merge(peer, entry(6, 1, &[]), later), Merge::Applied);
    }

    #[test]
    fn leaving_is_an_entry_like_any_other() {
        let (now, peer) = (Instant::now(), PeerId::random());
        let mut room = RoomState::new(1);
        room.merge(peer, entry(5, 1, &[P1]), now);
        let mut other = RoomState::new(5);
        other.own.seq = 1;
        let left = other.leaving();
        assert!(left.left && left.producers.is_empty() && left.seq == 2);
        assert_eq!(room.merge(peer, left.clone(), now), Merge::Applied);
        assert!(room.members().is_empty());
        assert_eq!(room.merge(peer, entry(5, 1, &[P1]), now), Merge::Stale);
        assert_eq!(room.merge(peer, left, now), Merge::Stale);
    }

    #[test]
    fn own_changes_raise_the_version() {
        let mut room = RoomState::new(9);
        let before = room.own().version();
        room.change_own(|producers| producers.push(producer(P1)));
        assert!(room.own().version() > before);
        assert_eq!(room.producer(P1).map(|(node, _)| node), Some(None));
    }

    #[test]
    fn a_slow_member_is_gone_only_after_several_slow_answers_in_a_row() {
        let (now, peer) = (Instant::now(), PeerId::random());
        let mut room = RoomState::new(1);
        room.merge(peer, entry(5, 1, &[P1]), now);
        for _ in 1..MAX_SLOW_ANSWERS {
            assert!(!room.slow_answer(peer, now));
        }
        room.answered(peer);
        for _ in 1..MAX_SLOW_ANSWERS {
            assert!(!room.slow_answer(peer, now), "an answer in between starts the count again");
        }
        assert!(room.is_member(&peer) && room.producer(P1).is_some());
        assert!(room.slow_answer(peer, now), "slow too often in a row: gone");
        assert!(!room.is_member(&peer) && room.producer(P1).is_none());
        assert!(!room.slow_answer(peer, now), "not a member any more");
    }

    #[test]
    fn a_full_room_takes_no_new_member() {
        let now = Instant::now();
        let mut room = RoomState::new(1);
        for _ in 0..MAX_ROOM_NODES - 1 {
            assert_eq!(room.merge(PeerId::random(), entry(1, 1, &[]), now), Merge::Applied);
        }
        assert_eq!(room.merge(PeerId::random(), entry(1, 1, &[]), now), Merge::Full);
    }

    #[test]
    fn entries_from_peers_are_checked() {
        assert!(entry(1, 1, &[P1, P2]).check().is_ok());
        assert!(matches!(entry(1, 1, &[P1, P1]).check(), Err(EntryError::BadProducer { .. })));
        assert!(matches!(entry(1, 1, &["not-a-uuid"]).check(), Err(EntryError::BadProducer { .. })));
        let mut big = entry(1, 1, &[P1]);
        big.producers[0].app_data = serde_json::json!({ "x": "y".repeat(MAX_APP_DATA_BYTES) });
        assert!(big.check().is_err());
        let mut many = entry(1, 1, &[]);
        many.producers = (0..=MAX_PRODUCERS_PER_NODE).map(|_| producer(&uuid::Uuid::new_v4().to_string())).collect();
        assert_eq!(many.check(), Err(EntryError::TooManyProducers(MAX_PRODUCERS_PER_NODE + 1)));
        let mut no_codec = entry(1, 1, &[P1]);
        no_codec.producers[0].codecs.clear();
        assert!(no_codec.check().is_err());
    }
}
