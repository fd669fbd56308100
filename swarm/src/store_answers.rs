//! The answers this node's own provider store gives to quick lookups, kept
//! where a [`SwarmHandle`](crate::SwarmHandle) reads them without a round
//! trip to the swarm task.
//!
//! A node among the peers closest to a key answers a quick lookup of it from
//! its own store, without asking any peer (`find`). That answer still cost a
//! round trip to the swarm task: 0.1–0.3 ms of a cold consume's first packet
//! on a two-core machine, where each crossing wakes a thread. The swarm task
//! keeps here the answer it would give, and drops it as soon as it could
//! differ:
//! - a provider record stored for the key, or this node starting or stopping
//!   to provide it: the answer is made again;
//! - a peer joining the routing table (it may be closer to the key than this
//!   node): every answer is dropped;
//! - a provider named disconnecting: the answers naming it are dropped;
//! - a record expiring: an answer holds until the earliest expiry of the
//!   records it names.
//!
//! What is not here is asked of the swarm task as before. At most
//! [`MAX_STORE_ANSWERS`] keys are kept (a new one past that drops an old one).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::RecordKey;

/// Most keys whose store answer is kept.
pub(crate) const MAX_STORE_ANSWERS: usize = 1024;

/// One key's answer: the providers (this node first if it provides the key)
/// and until when it holds.
#[derive(Debug, Clone)]
struct Answer {
    providers: Vec<PeerId>,
    until: Option<Instant>,
}

/// The store answers by key (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct StoreAnswers {
    answers: Mutex<HashMap<RecordKey, Answer>>,
}

impl StoreAnswers {
    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<RecordKey, Answer>> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The providers the store names for `key`, if its answer holds at `now`.
    pub(crate) fn get(&self, key: &RecordKey, now: Instant) -> Option<Vec<PeerId>> {
        let answers = self.answers();
        let answer = answers.get(key)?;
        answer.until.is_none_or(|until| now < until).then(|| answer.providers.clone())
    }

    /// Keeps `providers` as the answer for `key` until `until` (`None`: no
    /// record of it expires).
    pub(crate) fn put(&self, key: RecordKey, providers: Vec<PeerId>, until: Option<Instant>) {
        let mut answers = self.answers();
        if !answers.contains_key(&key) && answers.len() >= MAX_STORE_ANSWERS {
            // Any one: dropping an answer only sends that key's next lookup
            // to the swarm task.
            if let Some(old) = answers.keys().next().cloned() {
                answers.remove(&old);
            }
        }
        answers.insert(key, Answer { providers, until });
    }

    /// Drops the answer for `key`.
    pub(crate) fn forget(&self, key: &RecordKey) {
        self.answers().remove(key);
    }

    /// Drops every answer that names `peer`.
    pub(crate) fn forget_naming(&self, peer: &PeerId) {
        self.answers().retain(|_, answer| !answer.providers.contains(peer));
    }

    /// Drops every answer.
    pub(crate) fn clear(&self) {
        self.answers().clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(name: &str) -> RecordKey {
        RecordKey::new(&name)
    }

    #[test]
    fn an_answer_holds_until_its_earliest_record_expires() {
        let answers = StoreAnswers::default();
        let (now, a) = (Instant::now(), PeerId::random());
        answers.put(key("cam"), vec![a], Some(now + Duration::from_secs(1)));
        assert_eq!(answers.get(&key("cam"), now), Some(vec![a]));
        assert_eq!(answers.get(&key("cam"), now + Duration::from_secs(1)), None, "expired");
        assert_eq!(answers.get(&key("other"), now), None, "never answered");
        answers.put(key("forever"), vec![a], None);
        assert_eq!(answers.get(&key("forever"), now + Duration::from_secs(3600)), Some(vec![a]));
    }

    #[test]
    fn answers_are_dropped_by_key_by_provider_and_all_at_once() {
        let answers = StoreAnswers::default();
        let (now, a, b) = (Instant::now(), PeerId::random(), PeerId::random());
        answers.put(key("one"), vec![a], None);
        answers.put(key("two"), vec![a, b], None);
        answers.put(key("three"), vec![b], None);
        answers.forget_naming(&a);
        assert_eq!((answers.get(&key("one"), now), answers.get(&key("two"), now)), (None, None));
        assert_eq!(answers.get(&key("three"), now), Some(vec![b]));
        answers.forget(&key("three"));
        assert_eq!(answers.get(&key("three"), now), None);
        answers.put(key("four"), vec![b], None);
        answers.clear();
        assert_eq!(answers.get(&key("four"), now), None);
    }

    #[test]
    fn at_most_the_cap_is_kept() {
        let answers = StoreAnswers::default();
        let a = PeerId::random();
        for i in 0..MAX_STORE_ANSWERS + 10 {
            answers.put(key(&format!("k{i}")), vec![a], None);
        }
        assert_eq!(answers.answers().len(), MAX_STORE_ANSWERS);
        let last = format!("k{}", MAX_STORE_ANSWERS + 9);
        assert!(answers.get(&key(&last), Instant::now()).is_some(), "the newest is kept");
    }
}
