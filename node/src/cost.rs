//! Path cost: which provider a node should pull a stream from.
//!
//! cost = RTT + load penalty + hop penalty, all in milliseconds-equivalent so the
//! terms add up. Below the watermark, load costs little and grows linearly (it
//! only breaks ties between similar RTTs); above it, cost climbs steeply so a
//! busy provider is chosen only when nothing else is near. Each hop adds a fixed
//! penalty: relays add latency and are one more thing that can fail.

use std::cmp::Ordering;
use std::time::Duration;

use mafalda_swarm::PeerId;

/// Weights of the cost terms.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CostWeights {
    /// Load fraction (0–1) above which a provider counts as busy.
    pub watermark: f64,
    /// Cost of a provider exactly at the watermark, in ms-equivalent.
    pub load_penalty_ms: f64,
    /// Extra cost of a fully loaded provider beyond the watermark penalty.
    pub overload_penalty_ms: f64,
    /// Cost of each hop between the origin and the provider.
    pub hop_penalty_ms: f64,
    /// RTT assumed for a provider never pinged.
    pub unknown_rtt_ms: f64,
}

impl Default for CostWeights {
    fn default() -> Self {
        Self {
            watermark: 0.6,
            load_penalty_ms: 30.0,
            overload_penalty_ms: 1000.0,
            hop_penalty_ms: 15.0,
            unknown_rtt_ms: 250.0,
        }
    }
}

/// A provider that could serve the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The provider.
    pub peer: PeerId,
    /// Hops from the origin (0 = the origin itself).
    pub hops: u32,
    /// Latest ping RTT, if any.
    pub rtt: Option<Duration>,
    /// Latest gossiped load as a fraction of capacity (0–1), if any.
    pub load: Option<f64>,
}

impl CostWeights {
    /// The cost of pulling from `candidate`.
    pub fn cost(&self, candidate: &Candidate) -> f64 {
        let rtt = candidate.rtt.map_or(self.unknown_rtt_ms, |rtt| rtt.as_secs_f64() * 1000.0);
        rtt + self.load_cost(candidate.load.unwrap_or(0.0)) + f64::from(candidate.hops) * self.hop_penalty_ms
    }

    fn load_cost(&self, load: f64) -> f64 {
        let load = if load.is_finite() { load.clamp(0.0, 1.0) } else { 1.0 };
        let watermark = self.watermark.clamp(0.01, 1.0);
        if load <= watermark {
            load / watermark * self.load_penalty_ms
        } else {
            let over = (load - watermark) / (1.0 - watermark).max(f64::EPSILON);
            self.load_penalty_ms + over * self.overload_penalty_ms
        }
    }

    /// Whether `candidate` is over the watermark.
    pub fn is_busy(&self, candidate: &Candidate) -> bool {
        candidate.load.is_some_and(|load| load > self.watermark)
    }

    /// Whether `best` is cheaper than any of `unknown` can turn out to be:
    /// providers not described yet, each given with what is known of it
    /// beforehand (its RTT) and the fewest hops it can be from the origin.
    /// Their load is taken as none, since a description may report less
    /// than the last gossip did. A consume pipes from `best` once this holds
    /// rather than waiting for every description.
    pub fn cheaper_than_any(&self, best: &Candidate, unknown: &[Candidate]) -> bool {
        let cost = self.cost(best);
        unknown.iter().all(|other| cost < self.cost(&Candidate { load: None, ..other.clone() }))
    }

    /// How much longer `other`'s RTT would have to be for it to cost more
    /// than `best` (zero if it does already); its load taken as none, as in
    /// [`CostWeights::cheaper_than_any`].
    pub fn rtt_short_of(&self, best: &Candidate, other: &Candidate) -> Duration {
        let short_ms = self.cost(best) - self.cost(&Candidate { load: None, ..other.clone() });
        if short_ms.is_finite() && short_ms > 0.0 { Duration::from_secs_f64(short_ms / 1000.0) } else { Duration::ZERO }
    }

    /// Candidates from cheapest to dearest; ties go to fewer hops, then peer id
    /// (so every node ranks the same way).
    pub fn rank(&self, mut candidates: Vec<Candidate>) -> Vec<Candidate> {
        candidates.sort_by(|a, b| {
            self.cost(a)
                .partial_cmp(&self.cost(b))
                .unwrap_or(Ordering::Equal)
                .then(a.hops.cmp(&b.hops))
                .then(a.peer.cmp(&b.peer))
        });
        candidates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(hops: u32, rtt_ms: u64, load: f64) -> Candidate {
        Candidate { peer: PeerId::random(), hops, rtt: Some(Duration::from_millis(rtt_ms)), load: Some(load) }
    }

    #[test]
    fn nearer_relay_beats_a_far_origin() {
        let weights = CostWeights::default();
        let origin = candidate(0, 80, 0.2);
        let relay = candidate(1, 5, 0.2);
        assert_eq!(weights.rank(vec![origin.clone(), relay.clone()])[0], relay);
    }

    #[test]
    fn a_busy_provider_loses_to_an_idle_one_a_bit_further() {
        let weights = CostWeights::default();
        let busy = candidate(0, 5, 0.95);
        let idle = candidate(1, 40, 0.1);
        assert!(weights.is_busy(&busy) && !weights.is_busy(&idle));
        assert_eq!(weights.rank(vec![busy, idle.clone()])[0], idle);
    }

    #[test]
    fn hops_break_equal_rtt_and_load() {
        let weights = CostWeights::default();
        let origin = candidate(0, 10, 0.3);
        let relay = candidate(2, 10, 0.3);
        assert_eq!(weights.rank(vec![relay, origin.clone()])[0], origin);
    }

    #[test]
    fn a_described_origin_beats_relays_not_described_yet_at_the_same_rtt() {
        let weights = CostWeights::default();
        let origin = candidate(0, 1, 0.1);
        // A relay is at least one hop from the origin, its load unknown.
        let relay = Candidate { peer: PeerId::random(), hops: 1, rtt: Some(Duration::from_millis(1)), load: None };
        assert!(weights.cheaper_than_any(&origin, &[relay.clone(), relay]));
    }

    #[test]
    fn a_described_relay_waits_for_a_provider_that_may_be_the_origin() {
        let weights = CostWeights::default();
        let relay = candidate(1, 1, 0.0);
        let maybe_origin =
            Candidate { peer: PeerId::random(), hops: 0, rtt: Some(Duration::from_millis(1)), load: None };
        assert!(!weights.cheaper_than_any(&relay, std::slice::from_ref(&maybe_origin)));
        // Unless that one is far: its RTT alone costs more.
        let far = Candidate { rtt: Some(Duration::from_millis(40)), ..maybe_origin };
        assert!(weights.cheaper_than_any(&relay, &[far]));
    }

    #[test]
    fn gossiped_load_does_not_bound_a_provider_not_described_yet() {
        let weights = CostWeights::default();
        let best = candidate(0, 5, 0.3);
        // Gossip said this one was busy; its description may say otherwise.
        let gossiped_busy = candidate(0, 4, 0.95);
        assert!(!weights.cheaper_than_any(&best, &[gossiped_busy]));
        // A provider never pinged costs the unknown RTT at least.
        let never_pinged = Candidate { peer: PeerId::random(), hops: 0, rtt: None, load: None };
        assert!(weights.cheaper_than_any(&best, &[never_pinged]));
        assert!(weights.cheaper_than_any(&best, &[]));
    }

    #[test]
    fn a_provider_not_answered_yet_is_beaten_once_it_is_short_of_nothing() {
        let weights = CostWeights::default();
        let relay = candidate(1, 1, 0.0); // 1 + 15 for its hop
        let waited =
            |ms: u64| Candidate { peer: PeerId::random(), hops: 0, rtt: Some(Duration::from_millis(ms)), load: None };
        assert_eq!(weights.rtt_short_of(&relay, &waited(4)), Duration::from_millis(12));
        assert!(!weights.cheaper_than_any(&relay, &[waited(4)]));
        assert_eq!(weights.rtt_short_of(&relay, &waited(17)), Duration::ZERO);
        assert!(weights.cheaper_than_any(&relay, &[waited(17)]));
        let overloaded = Candidate { load: Some(f64::NAN), ..relay };
        assert!(weights.rtt_short_of(&overloaded, &waited(0)) > Duration::from_secs(1));
    }

    #[test]
    fn unknown_rtt_and_bad_load_values_are_pessimistic_not_panics() {
        let weights = CostWeights::default();
        let unknown = Candidate { peer: PeerId::random(), hops: 0, rtt: None, load: Some(f64::NAN) };
        let known = candidate(0, 20, 0.5);
        assert!(weights.cost(&unknown) > weights.cost(&known));
        assert!(weights.cost(&unknown).is_finite());
    }
}
