//! Finds kept for a moment: what a `find` just learnt (the providers that
//! described the stream, checked, with RTT and load) serves a consume of the
//! same stream that follows within [`RECENT_FIND_TTL`].
//!
//! Apps find a stream, then consume it (the HTTP API's usual order; the
//! simulations and benchmarks do the same): without this the consume walked
//! the DHT and asked every provider to describe the stream again, a few
//! milliseconds before the first packet could leave. The figures are fresh
//! enough to rank by: a relay that appeared meanwhile is missed by one
//! consume at most. A kept find whose providers all fail to pipe is
//! forgotten, and the consume finds afresh.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::node::FoundStream;
use crate::streams::StreamRef;

/// How long a find serves later consumes.
pub(crate) const RECENT_FIND_TTL: Duration = Duration::from_secs(2);

/// Most finds kept (stream ids come from apps: the table is bounded).
pub(crate) const MAX_RECENT_FINDS: usize = 256;

/// Finds of the last [`RECENT_FIND_TTL`], by the stream reference asked for
/// (`ID` or `ID@ORIGIN`).
#[derive(Debug, Default)]
pub(crate) struct RecentFinds {
    finds: HashMap<String, (Instant, FoundStream)>,
}

impl RecentFinds {
    /// Keeps `found` for `wanted` (one origin only: an ambiguous find must
    /// be answered with its conflict, not used).
    pub(crate) fn keep(&mut self, wanted: &StreamRef, found: &FoundStream, now: Instant) {
        self.keep_as(key(wanted), found, now);
    }

    fn keep_as(&mut self, wanted: String, found: &FoundStream, now: Instant) {
        if found.origins.len() != 1 || found.providers.is_empty() {
            return;
        }
        self.finds.retain(|_, (at, _)| now.saturating_duration_since(*at) < RECENT_FIND_TTL);
        if self.finds.len() >= MAX_RECENT_FINDS && !self.finds.contains_key(&wanted) {
            return;
        }
        self.finds.insert(wanted, (now, found.clone()));
    }

    /// The find of `wanted` made less than [`RECENT_FIND_TTL`] before `now`.
    pub(crate) fn get(&self, wanted: &StreamRef, now: Instant) -> Option<FoundStream> {
        let (at, found) = self.finds.get(&key(wanted))?;
        (now.saturating_duration_since(*at) < RECENT_FIND_TTL).then(|| found.clone())
    }

    /// Drops what is kept for `wanted` (its providers failed).
    pub(crate) fn forget(&mut self, wanted: &StreamRef) {
        self.finds.remove(&key(wanted));
    }
}

/// `ID`, or `ID@ORIGIN` when the origin is pinned.
fn key(wanted: &StreamRef) -> String {
    match wanted.origin {
        Some(origin) => format!("{}@{origin}", wanted.id),
        None => wanted.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ProviderInfo;

    fn stream(id: &str) -> StreamRef {
        StreamRef { id: id.into(), origin: None }
    }

    fn found(origins: usize, providers: usize) -> FoundStream {
        FoundStream {
            stream: "s".into(),
            origins: (0..origins).map(|i| format!("origin-{i}")).collect(),
            tracks: Vec::new(),
            providers: (0..providers)
                .map(|i| ProviderInfo {
                    peer: format!("p{i}"),
                    origin: "origin-0".into(),
                    hops: 0,
                    rtt_ms: None,
                    load: None,
                    path: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_find_serves_until_its_ttl_passes() {
        let start = Instant::now();
        let mut recent = RecentFinds::default();
        recent.keep(&stream("s"), &found(1, 2), start);
        assert_eq!(recent.get(&stream("s"), start + RECENT_FIND_TTL / 2).map(|f| f.providers.len()), Some(2));
        assert!(recent.get(&stream("s"), start + RECENT_FIND_TTL).is_none(), "expired");
        assert!(recent.get(&stream("other"), start).is_none());
        let pinned = StreamRef { id: "s".into(), origin: Some(mafalda_swarm::PeerId::random()) };
        assert!(recent.get(&pinned, start).is_none(), "a pinned reference is another find");
        recent.forget(&stream("s"));
        assert!(recent.get(&stream("s"), start).is_none(), "forgotten");
    }

    #[test]
    fn ambiguous_or_empty_finds_are_not_kept() {
        let start = Instant::now();
        let mut recent = RecentFinds::default();
        recent.keep(&stream("two-origins"), &found(2, 2), start);
        recent.keep(&stream("nobody"), &found(1, 0), start);
        assert!(recent.get(&stream("two-origins"), start).is_none());
        assert!(recent.get(&stream("nobody"), start).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_expired_finds_make_room() {
        let start = Instant::now();
        let mut recent = RecentFinds::default();
        for i in 0..MAX_RECENT_FINDS {
            recent.keep(&stream(&format!("s{i}")), &found(1, 1), start);
        }
        recent.keep(&stream("one-more"), &found(1, 1), start);
        assert!(recent.get(&stream("one-more"), start).is_none(), "full");
        let later = start + RECENT_FIND_TTL;
        recent.keep(&stream("one-more"), &found(1, 1), later);
        assert!(recent.get(&stream("one-more"), later).is_some(), "the expired ones made room");
        assert_eq!(recent.finds.len(), 1);
    }
}
