//! Provider lookups in progress: which providers Kademlia named, which of them
//! are reachable, and when the answer is ready.
//!
//! A lookup stops walking the DHT once [`ENOUGH_PROVIDER_ANSWERS`] peers have
//! answered with providers. Kademlia would otherwise go on until the 20
//! peers closest to the key all answered (about 38 requests per find in a
//! 100-node swarm, each answer listing 20 peers): every provider announces
//! itself to those same closest peers, so the first few that hold records
//! name (nearly) all providers, and the rest of the walk costs time and bytes
//! for nothing. Asking only the first one was not enough: a relay announced a
//! moment ago may not have reached it yet. Two, not three: rust-libp2p's
//! walk, once `parallelism` (3) answers in a row brought no peer closer to
//! the key, is "stalled" and asks up to k (20) peers at once, each a dial
//! (TCP, Noise, identify), none of which stopping the walk can call back.
//! Near the key, where the records are, answers bring no closer peers: a
//! walk that waited for a third answer there often stalled first. At 300
//! nodes (`discovery-300`, 897 finds, counted from the walks' own stats) a
//! walk made 8.2 requests on average with three answers, 114 walks of them
//! 24-27; with two, 5.4, and 10 such walks.
//!
//! A node that is itself among the peers closest to the key (as far as its
//! routing table knows: fewer than [`ANNOUNCED_TO`] peers it knows are
//! closer) is one of those every provider announces itself to, so its own
//! store names what a walk would: when that store names providers, it is
//! the one answer needed ([`answers_needed`]), and the lookup costs no
//! request at all: when every provider it names is connected, the swarm
//! task answers from the store at once, without starting a Kademlia query
//! (which would hand the same store back a few polls of the swarm later).
//! In a swarm of up to [`ANNOUNCED_TO`] nodes that is every node; in a
//! large one, the nodes near the key. Only once the node has
//! been in the swarm for `own_store_after` (the republish interval): a
//! newcomer's store lacks the providers that announced before it joined
//! and have not learnt of it since. A provider that announced
//! before it knew this node announces again once it does (`reannounce`), so
//! the store misses only an announcement still in flight (a remote answer
//! can miss it the same way), and when none of its providers serves, the
//! caller walks to the end as after any quick walk.

use std::collections::HashSet;
use std::time::Instant;

use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

/// Answers naming at least one provider after which a lookup stops (see the
/// module docs).
pub(crate) const ENOUGH_PROVIDER_ANSWERS: usize = 2;

/// How many peers every provider announces itself to: the ones closest to
/// the key (Kademlia's k, the rust-libp2p default the node keeps).
pub(crate) const ANNOUNCED_TO: usize = libp2p::kad::K_VALUE.get();

/// Answers naming providers that end a quick lookup of a key, given how many
/// providers (other than this node) this node's own store names and how many
/// peers closer to the key than this node its routing table knows (counted
/// up to [`ANNOUNCED_TO`]): one, the store's own, when this node is among
/// the closest and its store names a provider; [`ENOUGH_PROVIDER_ANSWERS`]
/// otherwise.
pub(crate) fn answers_needed(stored_here: usize, closer_peers_known: usize) -> usize {
    if stored_here > 0 && closer_peers_known < ANNOUNCED_TO { 1 } else { ENOUGH_PROVIDER_ANSWERS }
}

/// What a provider lookup found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderLookup {
    /// The reachable providers (this node first if it provides the key).
    pub providers: Vec<PeerId>,
    /// Whether the walk went on until the peers closest to the key answered
    /// (or its deadline passed), rather than stopping after enough answers
    /// named providers: when it stopped early and none of `providers` serves,
    /// a walk to the end may name others.
    pub walked_to_the_end: bool,
}

/// One `find_providers` call waiting for Kademlia and for dials to its providers.
#[derive(Debug)]
pub(crate) struct PendingFind {
    reply: Option<oneshot::Sender<ProviderLookup>>,
    /// Where each provider is sent as soon as it is known reachable, while
    /// the walk goes on; closed with the answer. Full, it drops the name
    /// (the answer still has it).
    named: Option<mpsc::Sender<PeerId>>,
    /// This node, when it provides the key itself.
    local: Option<PeerId>,
    /// Providers known reachable, in discovery order.
    reachable: Vec<PeerId>,
    /// Providers being dialed.
    dialing: HashSet<PeerId>,
    query_done: bool,
    /// Answers (the local store's included) that named at least one provider.
    answers_with_providers: usize,
    /// How many such answers end the walk ([`answers_needed`]).
    answers_needed: usize,
    /// Never stopped early ([`PendingFind::walk_to_the_end`]).
    thorough: bool,
    /// Stopped early, after enough answers.
    stopped_early: bool,
    started: Instant,
    pub(crate) deadline: Instant,
}

impl PendingFind {
    pub(crate) fn new(reply: oneshot::Sender<ProviderLookup>, local: Option<PeerId>, deadline: Instant) -> Self {
        Self {
            reply: Some(reply),
            named: None,
            local,
            reachable: Vec::new(),
            dialing: HashSet::new(),
            query_done: false,
            answers_with_providers: 0,
            answers_needed: ENOUGH_PROVIDER_ANSWERS,
            thorough: false,
            stopped_early: false,
            started: Instant::now(),
            deadline,
        }
    }

    /// Names this node (if it provides the key) and then each provider found
    /// reachable to `named`, as they come.
    pub(crate) fn name_providers_to(&mut self, named: mpsc::Sender<PeerId>) {
        for peer in self.local.iter().chain(&self.reachable) {
            let _ = named.try_send(*peer);
        }
        self.named = Some(named);
    }

    /// The walk stops after `answers` answers naming providers
    /// ([`answers_needed`]) rather than [`ENOUGH_PROVIDER_ANSWERS`].
    pub(crate) fn stop_after(&mut self, answers: usize) {
        self.answers_needed = answers.max(1);
    }

    /// The walk goes on to the closest peers whatever the answers.
    pub(crate) fn walk_to_the_end(&mut self) {
        self.thorough = true;
    }

    /// One peer's answer came, naming `providers` providers. Returns whether
    /// the lookup has heard enough and its walk should stop.
    pub(crate) fn answered(&mut self, providers: usize) -> bool {
        if providers > 0 {
            self.answers_with_providers += 1;
        }
        let enough = !self.thorough && !self.query_done && self.answers_with_providers >= self.answers_needed;
        self.stopped_early |= enough;
        enough
    }

    pub(crate) fn add_reachable(&mut self, peer: PeerId) {
        self.dialing.remove(&peer);
        if Some(peer) != self.local && !self.reachable.contains(&peer) {
            self.reachable.push(peer);
            if let Some(named) = &self.named {
                let _ = named.try_send(peer);
            }
        }
    }

    pub(crate) fn add_dialing(&mut self, peer: PeerId) {
        if !self.reachable.contains(&peer) {
            self.dialing.insert(peer);
        }
    }

    pub(crate) fn is_dialing(&self, peer: &PeerId) -> bool {
        self.dialing.contains(peer)
    }

    /// The dial to `peer` failed: it is left out of the answer.
    pub(crate) fn unreachable(&mut self, peer: &PeerId) {
        self.dialing.remove(peer);
    }

    pub(crate) fn query_finished(&mut self) {
        self.query_done = true;
    }

    /// Whether everything asked for has come back.
    pub(crate) fn is_complete(&self) -> bool {
        self.query_done && self.dialing.is_empty()
    }

    /// Sends the answer (the local node first); later calls do nothing.
    pub(crate) fn answer(&mut self) {
        self.named = None;
        if let Some(reply) = self.reply.take() {
            let providers: Vec<PeerId> = self.local.into_iter().chain(self.reachable.iter().copied()).collect();
            tracing::debug!(
                providers = providers.len(),
                still_dialing = self.dialing.len(),
                stopped_early = self.stopped_early,
                took = ?self.started.elapsed(),
                "provider lookup answered"
            );
            let _ = reply.send(ProviderLookup { providers, walked_to_the_end: !self.stopped_early });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_local_first_then_reachable_without_unreachable() {
        let (reply, mut answer) = oneshot::channel();
        let (me, a, b) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut find = PendingFind::new(reply, Some(me), Instant::now());
        find.add_reachable(me);
        find.add_dialing(a);
        find.add_dialing(b);
        find.query_finished();
        assert!(!find.is_complete(), "dials still pending");
        find.add_reachable(a);
        find.unreachable(&b);
        assert!(find.is_complete());
        find.answer();
        let lookup = answer.try_recv().expect("answered");
        assert_eq!(lookup.providers, vec![me, a]);
        assert!(lookup.walked_to_the_end);
    }

    #[test]
    fn providers_are_named_as_they_become_reachable_and_the_names_end_with_the_answer() {
        let (reply, _answer) = oneshot::channel();
        let (me, a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random(), PeerId::random());
        let mut find = PendingFind::new(reply, Some(me), Instant::now());
        find.add_reachable(a);
        let (named, mut names) = mpsc::channel(2);
        find.name_providers_to(named);
        assert_eq!(names.try_recv().ok(), Some(me), "this node first");
        assert_eq!(names.try_recv().ok(), Some(a), "those reachable before the names were asked for");
        find.add_dialing(b);
        assert!(names.try_recv().is_err(), "a provider being dialed is not named yet");
        find.add_reachable(b);
        find.add_reachable(b);
        assert_eq!(names.try_recv().ok(), Some(b), "named once, when reachable");
        assert!(names.try_recv().is_err());
        find.add_reachable(c);
        find.add_reachable(PeerId::random());
        find.add_reachable(PeerId::random());
        assert_eq!(names.try_recv().ok(), Some(c));
        find.answer();
        let mut rest = 0;
        while names.try_recv().is_ok() {
            rest += 1;
        }
        assert_eq!(rest, 1, "a full channel drops names (the answer has them)");
        assert!(matches!(names.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)), "closed with the answer");
    }

    #[test]
    fn the_walk_stops_after_enough_answers_naming_providers() {
        let (reply, mut _answer) = oneshot::channel();
        let mut find = PendingFind::new(reply, None, Instant::now());
        assert!(!find.answered(0), "an answer with closer peers only");
        for _ in 1..ENOUGH_PROVIDER_ANSWERS {
            assert!(!find.answered(2));
        }
        assert!(find.answered(1), "enough answers named providers");
        find.query_finished();
        find.answer();
        assert!(!_answer.try_recv().expect("answered").walked_to_the_end, "stopped early, even with no provider left");
        assert!(!find.answered(1), "a finished walk is not stopped again");
        let (reply, _answer) = oneshot::channel();
        let mut thorough = PendingFind::new(reply, None, Instant::now());
        thorough.walk_to_the_end();
        assert!((0..10).all(|_| !thorough.answered(3)), "a thorough walk is never stopped");
    }

    #[test]
    fn a_node_among_the_closest_stops_at_its_own_stores_answer() {
        assert_eq!(answers_needed(2, 0), 1, "alone near the key, with records");
        assert_eq!(answers_needed(1, ANNOUNCED_TO - 1), 1, "the k-th closest still is announced to");
        assert_eq!(answers_needed(1, ANNOUNCED_TO), ENOUGH_PROVIDER_ANSWERS, "k peers closer: not announced to");
        assert_eq!(answers_needed(0, 0), ENOUGH_PROVIDER_ANSWERS, "an empty store says nothing");
        let (reply, mut answer) = oneshot::channel();
        let mut find = PendingFind::new(reply, None, Instant::now());
        find.stop_after(answers_needed(1, 3));
        assert!(find.answered(1), "the store's answer is enough");
        find.query_finished();
        find.answer();
        assert!(!answer.try_recv().expect("answered").walked_to_the_end, "a caller may still walk to the end");
        let (reply, _answer) = oneshot::channel();
        let mut thorough = PendingFind::new(reply, None, Instant::now());
        thorough.stop_after(1);
        thorough.walk_to_the_end();
        assert!(!thorough.answered(1), "a thorough walk ignores the store's answer");
    }
}
