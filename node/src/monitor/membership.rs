//! Which nodes a monitor shows, and how fresh each is: a state machine over
//! the outcomes of `node.snapshot` calls and `now`, tested without sleeping.
//!
//! A node answered lately is *live*; one not heard from for [`STALE_AFTER`]
//! is *stale*; one that failed [`LOST_AFTER_FAILURES`] calls in a row is
//! *lost* (killed, cut off); a lost node is forgotten after [`FORGET_AFTER`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::snapshot::NodeSnapshot;

/// A node whose last snapshot is older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(6);
/// Failed calls in a row that make a node lost.
pub const LOST_AFTER_FAILURES: u32 = 2;
/// How long a lost node is still shown (as lost).
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Most nodes a monitor keeps.
pub const MAX_NODES: usize = 512;

/// How fresh what a monitor knows of a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Answered lately.
    Live,
    /// Not heard from for a while, not known to be gone.
    Stale,
    /// Calls to it fail.
    Lost,
}

#[derive(Debug, Clone)]
struct Member {
    snapshot: Option<NodeSnapshot>,
    answered_at: Option<Instant>,
    failures: u32,
    failing_since: Option<Instant>,
}

/// The nodes known, with their last snapshot and health.
#[derive(Debug, Default)]
pub struct Membership {
    members: HashMap<String, Member>,
}

impl Membership {
    /// `peer` answered with `snapshot` at `now`.
    pub fn answered(&mut self, peer: &str, snapshot: NodeSnapshot, now: Instant) {
        if let Some(member) = self.member(peer) {
            *member = Member { snapshot: Some(snapshot), answered_at: Some(now), failures: 0, failing_since: None };
        }
    }

    /// `peer` answered at `now` that the snapshot this monitor has is current.
    pub fn unchanged(&mut self, peer: &str, now: Instant) {
        if let Some(member) = self.members.get_mut(peer)
            && member.snapshot.is_some()
        {
            member.answered_at = Some(now);
            member.failures = 0;
            member.failing_since = None;
        }
    }

    /// The version of `peer`'s snapshot this monitor has.
    pub fn version(&self, peer: &str) -> Option<u64> {
        self.members.get(peer)?.snapshot.as_ref().map(|s| s.version)
    }

    /// The peers `peer` named in its last snapshot.
    pub fn peers_named_by(&self, peer: &str) -> Vec<String> {
        self.members.get(peer).and_then(|m| m.snapshot.as_ref()).map(|s| s.peers.clone()).unwrap_or_default()
    }

    /// A call to `peer` failed at `now`.
    pub fn failed(&mut self, peer: &str, now: Instant) {
        if let Some(member) = self.member(peer) {
            member.failures = member.failures.saturating_add(1);
            member.failing_since.get_or_insert(now);
        }
    }

    /// `peer` was named by a node that answered (it is worth asking).
    pub fn named(&mut self, peer: &str) {
        let _ = self.member(peer);
    }

    fn member(&mut self, peer: &str) -> Option<&mut Member> {
        if !self.members.contains_key(peer) && self.members.len() >= MAX_NODES {
            return None;
        }
        Some(self.members.entry(peer.to_owned()).or_insert(Member {
            snapshot: None,
            answered_at: None,
            failures: 0,
            failing_since: None,
        }))
    }

    /// `peer`'s health at `now`, if known.
    pub fn health(&self, peer: &str, now: Instant) -> Option<Health> {
        self.members.get(peer).map(|m| health(m, now))
    }

    /// Forgets nodes lost for longer than [`FORGET_AFTER`] at `now`.
    pub fn forget_lost(&mut self, now: Instant) {
        self.members.retain(|_, m| {
            let lost_long = health(m, now) == Health::Lost
                && m.failing_since.is_some_and(|since| now.saturating_duration_since(since) >= FORGET_AFTER);
            !lost_long
        });
    }

    /// The peers to ask in a refresh: every node known.
    pub fn peers(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// Every node with a snapshot: its snapshot, health and the snapshot's age.
    pub fn nodes(&self, now: Instant) -> Vec<(&NodeSnapshot, Health, Duration)> {
        let mut nodes: Vec<_> = self
            .members
            .values()
            .filter_map(|m| {
                let snapshot = m.snapshot.as_ref()?;
                let age = m.answered_at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
                Some((snapshot, health(m, now), age))
            })
            .collect();
        nodes.sort_by(|a, b| a.0.peer.cmp(&b.0.peer));
        nodes
    }
}

fn health(member: &Member, now: Instant) -> Health {
    if member.failures >= LOST_AFTER_FAILURES {
        return Health::Lost;
    }
    match member.answered_at {
        Some(at) if now.saturating_duration_since(at) < STALE_AFTER => Health::Live,
        _ => Health::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(peer: &str) -> NodeSnapshot {
        NodeSnapshot {
            peer: peer.into(),
            addrs: vec![],
            reachability: "public".into(),
            draining: false,
            workers: vec![],
            streams: vec![],
            rooms: 0,
            clients: 0,
            peers: vec![],
            version: 0,
        }
    }

    #[test]
    fn a_node_is_live_while_it_answers_and_stale_when_it_has_not_lately() {
        let start = Instant::now();
        let mut membership = Membership::default();
        membership.named("a");
        assert_eq!(membership.health("a", start), Some(Health::Stale), "named, never asked yet");
        assert!(membership.nodes(start).is_empty(), "nothing to show without a snapshot");
        membership.answered("a", snapshot("a"), start);
        assert_eq!(membership.health("a", start + STALE_AFTER - Duration::from_millis(1)), Some(Health::Live));
        assert_eq!(membership.health("a", start + STALE_AFTER), Some(Health::Stale));
        let nodes = membership.nodes(start + Duration::from_secs(2));
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].2, Duration::from_secs(2), "the snapshot's age");
    }

    #[test]
    fn failures_in_a_row_make_a_node_lost_and_later_forgotten() {
        let start = Instant::now();
        let mut membership = Membership::default();
        membership.answered("a", snapshot("a"), start);
        membership.failed("a", start + Duration::from_secs(2));
        assert_eq!(
            membership.health("a", start + Duration::from_secs(2)),
            Some(Health::Live),
            "one failure is not enough"
        );
        membership.answered("a", snapshot("a"), start + Duration::from_secs(3));
        membership.failed("a", start + Duration::from_secs(4));
        assert_eq!(
            membership.health("a", start + Duration::from_secs(4)),
            Some(Health::Live),
            "the count starts again"
        );
        membership.failed("a", start + Duration::from_secs(6));
        assert_eq!(membership.health("a", start + Duration::from_secs(6)), Some(Health::Lost));
        assert_eq!(membership.nodes(start + Duration::from_secs(6))[0].1, Health::Lost, "shown as lost");
        membership.forget_lost(start + Duration::from_secs(4) + FORGET_AFTER - Duration::from_millis(1));
        assert!(membership.health("a", start).is_some(), "still shown within the grace");
        membership.forget_lost(start + Duration::from_secs(4) + FORGET_AFTER);
        assert_eq!(membership.health("a", start), None, "forgotten");
    }

    #[test]
    fn an_unchanged_answer_keeps_the_snapshot_fresh() {
        let start = Instant::now();
        let mut membership = Membership::default();
        membership.unchanged("a", start);
        assert_eq!(membership.health("a", start), None, "nothing to keep without a snapshot");
        membership.answered("a", snapshot("a").versioned(), start);
        let version = membership.version("a").expect("a version");
        assert_eq!(version, snapshot("a").digest());
        membership.failed("a", start + Duration::from_secs(1));
        membership.unchanged("a", start + STALE_AFTER);
        assert_eq!(membership.health("a", start + STALE_AFTER), Some(Health::Live), "fresh again, failures reset");
        membership.failed("a", start + STALE_AFTER);
        assert_eq!(membership.health("a", start + STALE_AFTER), Some(Health::Live));
    }

    #[test]
    fn cpu_noise_is_no_change_but_a_new_stream_is() {
        let mut a = snapshot("a");
        a.workers.push(super::super::snapshot::WorkerSnapshot {
            id: "w".into(),
            cpu_percent: 1.0,
            routers: 0,
            transports: 0,
            producers: 0,
            consumers: 0,
        });
        let mut noisy = a.clone();
        noisy.workers[0].cpu_percent = 2.4;
        assert_eq!(a.digest(), noisy.digest());
        noisy.workers[0].cpu_percent = 40.0;
        assert_ne!(a.digest(), noisy.digest(), "load is a change");
        let mut more = a.clone();
        more.peers.push("b".into());
        assert_ne!(a.digest(), more.digest());
    }

    #[test]
    fn the_membership_is_bounded() {
        let mut membership = Membership::default();
        for index in 0..MAX_NODES + 10 {
            membership.named(&format!("peer-{index}"));
        }
        assert_eq!(membership.peers().len(), MAX_NODES);
    }
}
