//! How much of each Kademlia bootstrap runs.
//!
//! rust-libp2p starts a bootstrap on its own (a lookup of the node's own id,
//! then one lookup of a random id in every bucket farther than the nearest
//! neighbour's): every `periodic_bootstrap`, and half a second after any peer
//! enters a routing table that holds fewer than 20 peers. At join that is
//! every peer, so each node ran its join bootstrap and then a second one, and
//! the swarm's first nodes one for nearly every newcomer: in the 100-node
//! scenario, 16 lookups and about 480 Kademlia requests per node, 96 % of the
//! swarm's Kademlia requests, most of them while media flowed. rust-libp2p
//! 0.49 has no switch for either trigger, so the event loop ends a bootstrap's
//! lookups early as this policy says:
//!
//! - **The self lookup** (what makes a node known to the peers that will hold
//!   records near its id, and them known to it) runs unless another is running
//!   or finished less than `min_gap` ago.
//! - **The bucket refreshes** run at most every `refresh_every`, counted from
//!   the node's start: at join a node's far buckets fill from the peers that
//!   connect to it (half of all lookups reach a bucket-255 peer), so the first
//!   refresh waits for the periodic bootstrap.
//! - **One more self lookup after joining a small swarm.** A join lookup asks
//!   the seed, which learns a newcomer's address from identify just after its
//!   connection: nodes that join together may each miss the others, and
//!   without rust-libp2p's repeats they would meet only at the periodic
//!   bootstrap. A join lookup that reached fewer peers than a bucket holds
//!   (so the swarm is small and a lookup cheap) is repeated once, `relook_after`
//!   later, whatever `min_gap` says.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::kad::store::MemoryStore;
use libp2p::kad::{self, ProgressStep, QueryId, QueryInfo};

/// How much of a bootstrap that has just started runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BootstrapRun {
    /// The self lookup and the bucket refreshes.
    Whole,
    /// The self lookup; the bucket refreshes are ended as they start.
    SelfLookupOnly,
    /// Nothing: it repeats a self lookup that is running or just ran.
    Nothing,
}

/// The bootstrap policy's state (see the module doc).
#[derive(Debug)]
pub(crate) struct RefreshPolicy {
    min_gap: Duration,
    refresh_every: Duration,
    self_lookup_running: bool,
    last_self_lookup: Option<Instant>,
    last_refresh: Instant,
    relook_after: Duration,
    /// When the join lookup is to be repeated (see the module doc).
    relook_at: Option<Instant>,
}

/// A join lookup that reached fewer peers than this (a bucket, Kademlia's K)
/// is repeated once.
pub(crate) const SMALL_SWARM: usize = kad::K_VALUE.get();

impl RefreshPolicy {
    /// A policy for a node started at `now`; a join lookup into a small swarm
    /// is repeated `relook_after` after it ends.
    pub(crate) fn new(min_gap: Duration, refresh_every: Duration, relook_after: Duration, now: Instant) -> Self {
        Self {
            min_gap,
            refresh_every,
            self_lookup_running: false,
            last_self_lookup: None,
            last_refresh: now,
            relook_after,
            relook_at: None,
        }
    }

    /// Whether the join lookup's repeat is due at `now` (a bootstrap started
    /// then runs its self lookup despite `min_gap`).
    pub(crate) fn relook_due(&self, now: Instant) -> bool {
        self.relook_at.is_some_and(|at| now >= at)
    }

    /// A bootstrap has started at `now`: how much of it runs.
    pub(crate) fn started(&mut self, now: Instant) -> BootstrapRun {
        let recent = self.last_self_lookup.is_some_and(|at| now.saturating_duration_since(at) < self.min_gap);
        if self.self_lookup_running || (recent && !self.relook_due(now)) {
            return BootstrapRun::Nothing;
        }
        self.relook_at = None;
        self.self_lookup_running = true;
        if now.saturating_duration_since(self.last_refresh) >= self.refresh_every {
            self.last_refresh = now;
            BootstrapRun::Whole
        } else {
            BootstrapRun::SelfLookupOnly
        }
    }

    /// The self lookup of a bootstrap that runs ended at `now`, answered by
    /// `reached` peers (one that reached nobody, before the seeds answer, does
    /// not hold back the next).
    pub(crate) fn self_lookup_ended(&mut self, now: Instant, reached: usize) {
        self.self_lookup_running = false;
        if reached == 0 {
            return;
        }
        let joined_now = self.last_self_lookup.is_none();
        self.last_self_lookup = Some(now);
        if joined_now && reached < SMALL_SWARM {
            self.relook_at = Some(now + self.relook_after);
        }
    }
}

/// The node's bootstraps and how much of each runs: the mechanism that
/// applies [`RefreshPolicy`] to Kademlia's queries.
#[derive(Debug)]
pub(crate) struct Bootstraps {
    policy: RefreshPolicy,
    runs: HashMap<QueryId, BootstrapRun>,
}

impl Bootstraps {
    /// No bootstrap yet; `policy` decides how much of each runs.
    pub(crate) fn new(policy: RefreshPolicy) -> Self {
        Self { policy, runs: HashMap::new() }
    }

    /// Finds bootstraps Kademlia has started since the last look and ends at
    /// once those that run nothing. Called after every swarm event, as
    /// Kademlia starts them without telling.
    pub(crate) fn watch(&mut self, kad: &mut kad::Behaviour<MemoryStore>, now: Instant) {
        for mut query in kad.iter_queries_mut() {
            let QueryInfo::Bootstrap { remaining: None, .. } = query.info() else { continue };
            let run = *self.runs.entry(query.id()).or_insert_with(|| self.policy.started(now));
            if run == BootstrapRun::Nothing {
                query.finish();
            }
        }
    }

    /// Starts a bootstrap when the join lookup's repeat is due (see the
    /// module doc); `watch` then lets its self lookup run.
    pub(crate) fn relook_if_due(&mut self, kad: &mut kad::Behaviour<MemoryStore>, now: Instant) {
        if !self.policy.relook_due(now) || self.policy.self_lookup_running {
            return;
        }
        if let Err(error) = kad.bootstrap() {
            // No peer left to ask: the next join lookup starts with the next connection.
            tracing::debug!(%error, "repeat of the join lookup not started");
            self.policy.relook_at = None;
        }
    }

    /// A bootstrap step has ended, answered by `reached` peers: ends the next
    /// step at once when the policy does not want it.
    pub(crate) fn on_step(
        &mut self,
        kad: &mut kad::Behaviour<MemoryStore>,
        id: QueryId,
        step: &ProgressStep,
        reached: usize,
        now: Instant,
    ) {
        let run = *self.runs.entry(id).or_insert_with(|| self.policy.started(now));
        if step.count.get() == 1 && run != BootstrapRun::Nothing {
            self.policy.self_lookup_ended(now, reached);
        }
        if step.last {
            self.runs.remove(&id);
        } else if run != BootstrapRun::Whole
            && let Some(mut query) = kad.query_mut(&id)
        {
            query.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_secs(60);
    const EVERY: Duration = Duration::from_secs(600);
    const RELOOK: Duration = Duration::from_secs(2);
    /// What a join lookup into a swarm of a bucket or more reaches.
    const MANY: usize = SMALL_SWARM;

    #[test]
    fn the_join_looks_up_itself_and_leaves_the_buckets_to_the_periodic_refresh() {
        let start = Instant::now();
        let mut policy = RefreshPolicy::new(GAP, EVERY, RELOOK, start);
        assert_eq!(policy.started(start + Duration::from_millis(500)), BootstrapRun::SelfLookupOnly);
        policy.self_lookup_ended(start + Duration::from_secs(1), MANY);
        assert_eq!(policy.started(start + EVERY), BootstrapRun::Whole, "the periodic bootstrap refreshes");
        policy.self_lookup_ended(start + EVERY + Duration::from_secs(1), MANY);
        assert_eq!(
            policy.started(start + EVERY + GAP + Duration::from_secs(2)),
            BootstrapRun::SelfLookupOnly,
            "not twice in one period"
        );
    }

    #[test]
    fn a_bootstrap_while_one_runs_or_just_ran_runs_nothing() {
        let start = Instant::now();
        let mut policy = RefreshPolicy::new(GAP, EVERY, RELOOK, start);
        assert_eq!(policy.started(start), BootstrapRun::SelfLookupOnly);
        assert_eq!(policy.started(start + Duration::from_millis(500)), BootstrapRun::Nothing, "one is running");
        policy.self_lookup_ended(start + Duration::from_secs(1), MANY);
        assert_eq!(policy.started(start + Duration::from_secs(2)), BootstrapRun::Nothing, "one just ran");
        assert_eq!(
            policy.started(start + Duration::from_secs(1) + GAP),
            BootstrapRun::SelfLookupOnly,
            "after the gap a newcomer starts a self lookup again"
        );
    }

    #[test]
    fn a_self_lookup_that_reached_nobody_does_not_hold_back_the_next() {
        let start = Instant::now();
        let mut policy = RefreshPolicy::new(GAP, EVERY, RELOOK, start);
        assert_eq!(policy.started(start), BootstrapRun::SelfLookupOnly);
        policy.self_lookup_ended(start + Duration::from_secs(10), 0);
        assert_eq!(policy.started(start + Duration::from_secs(11)), BootstrapRun::SelfLookupOnly);
        policy.self_lookup_ended(start + Duration::from_secs(12), MANY);
        assert_eq!(policy.started(start + Duration::from_secs(13)), BootstrapRun::Nothing);
    }

    #[test]
    fn a_join_into_a_small_swarm_looks_itself_up_once_more() {
        let start = Instant::now();
        let mut policy = RefreshPolicy::new(GAP, EVERY, RELOOK, start);
        assert_eq!(policy.started(start), BootstrapRun::SelfLookupOnly);
        let joined = start + Duration::from_millis(10);
        policy.self_lookup_ended(joined, 2);
        assert!(!policy.relook_due(joined + RELOOK - Duration::from_millis(1)), "not before its time");
        assert_eq!(policy.started(joined + Duration::from_secs(1)), BootstrapRun::Nothing, "the gap holds until then");
        assert!(policy.relook_due(joined + RELOOK));
        assert_eq!(policy.started(joined + RELOOK), BootstrapRun::SelfLookupOnly, "the repeat runs");
        assert!(!policy.relook_due(joined + RELOOK), "once");
        policy.self_lookup_ended(joined + RELOOK + Duration::from_millis(10), 2);
        assert!(!policy.relook_due(joined + RELOOK * 10), "a repeat is not repeated");
        assert_eq!(policy.started(joined + RELOOK * 10), BootstrapRun::Nothing, "the gap holds again");
    }

    #[test]
    fn a_join_into_a_swarm_of_a_bucket_or_more_is_not_repeated() {
        let start = Instant::now();
        let mut policy = RefreshPolicy::new(GAP, EVERY, RELOOK, start);
        assert_eq!(policy.started(start), BootstrapRun::SelfLookupOnly);
        policy.self_lookup_ended(start, MANY);
        assert!(!policy.relook_due(start + RELOOK * 10));
        // A join lookup that reached nobody is no join: the one that does, counts.
        let mut lonely = RefreshPolicy::new(GAP, EVERY, RELOOK, start);
        assert_eq!(lonely.started(start), BootstrapRun::SelfLookupOnly);
        lonely.self_lookup_ended(start, 0);
        assert!(!lonely.relook_due(start + RELOOK));
        assert_eq!(lonely.started(start + RELOOK), BootstrapRun::SelfLookupOnly);
        lonely.self_lookup_ended(start + RELOOK, 1);
        assert!(lonely.relook_due(start + RELOOK * 2));
    }
}
