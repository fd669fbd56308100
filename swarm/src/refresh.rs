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
}

impl RefreshPolicy {
    /// A policy for a node started at `now`.
    pub(crate) fn new(min_gap: Duration, refresh_every: Duration, now: Instant) -> Self {
        Self { min_gap, refresh_every, self_lookup_running: false, last_self_lookup: None, last_refresh: now }
    }

    /// A bootstrap has started at `now`: how much of it runs.
    pub(crate) fn started(&mut self, now: Instant) -> BootstrapRun {
        let recent = self.last_self_lookup.is_some_and(|at| now.saturating_duration_since(at) < self.min_gap);
        if self.self_lookup_running || recent {
            return BootstrapRun::Nothing;
        }
        self.self_lookup_running = true;
        if now.saturating_duration_since(self.last_refresh) >= self.refresh_every {
            self.last_refresh = now;
            BootstrapRun::Whole
        } else {
            BootstrapRun::SelfLookupOnly
        }
    }

    /// The self lookup of a bootstrap that runs ended at `now`; `reached_any`
    /// tells whether any peer answered it (one that reached nobody, before the
    /// seeds answer, does not hold back the next).
    pub(crate) fn self_lookup_ended(&mut self, now: Instant, reached_any: bool) {
        self.self_lookup_running = false;
        if reached_any {
            self.last_self_lookup = Some(now);
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

    /// A bootstrap step has ended (`reached_any`: a peer answered it): ends the
    /// next step at once when the policy does not want it.
    pub(crate) fn on_step(
        &mut self,
        kad: &mut kad::Behaviour<MemoryStore>,
        id: QueryId,
        step: &ProgressStep,
        reached_any: bool,
        now: Instant,
    ) {
        let run = *self.runs.entry(id).or_insert_with(|| self.policy.started(now));
        if step.count.get() == 1 && run != BootstrapRun::Nothing {
            self.policy.self_lookup_ended(now, reached_any);
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

    #[test]
    fn the_join_looks_up_itself_and_leaves_the_buckets_to_the_periodic_refresh() {
        let start = Instant::now();
        let mut policy = RefreshPolicy::new(GAP, EVERY, start);
        assert_eq!(policy.started(start + Duration::from_millis(500)), BootstrapRun::SelfLookupOnly);
        policy.self_lookup_ended(start + Duration::from_secs(1), true);
        assert_eq!(policy.started(start + EVERY), BootstrapRun::Whole, "the periodic bootstrap refreshes");
        policy.self_lookup_ended(start + EVERY + Duration::from_secs(1), true);
        assert_eq!(
            policy.started(start + EVERY + GAP + Duration::from_secs(2)),
            BootstrapRun::SelfLookupOnly,
            "not twice in one period"
        );
    }

    #[test]
    fn a_bootstrap_while_one_runs_or_just_ran_runs_nothing() {
        let start = Instant::now();
        let mut policy = RefreshPolicy::new(GAP, EVERY, start);
        assert_eq!(policy.started(start), BootstrapRun::SelfLookupOnly);
        assert_eq!(policy.started(start + Duration::from_millis(500)), BootstrapRun::Nothing, "one is running");
        policy.self_lookup_ended(start + Duration::from_secs(1), true);
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
        let mut policy = RefreshPolicy::new(GAP, EVERY, start);
        assert_eq!(policy.started(start), BootstrapRun::SelfLookupOnly);
        policy.self_lookup_ended(start + Duration::from_secs(10), false);
        assert_eq!(policy.started(start + Duration::from_secs(11)), BootstrapRun::SelfLookupOnly);
        policy.self_lookup_ended(start + Duration::from_secs(12), true);
        assert_eq!(policy.started(start + Duration::from_secs(13)), BootstrapRun::Nothing);
    }
}
