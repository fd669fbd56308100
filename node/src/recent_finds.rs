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
//!
//! A find also opens this node's end of the pipe while it walks the DHT (a
//! mediasoup transport: about a third of a millisecond of the consume's
//! first packet otherwise) and keeps it with the find for the consume. The
//! find does not wait for it: on a loaded machine the worker may answer
//! after the DHT did, and the end joins the kept find when it lands
//! ([`RecentFinds::attach`]). Kept ends, and ends being opened, are bounded
//! ([`MAX_KEPT_ENDS`]) and closed when their find expires
//! ([`RecentFinds::expire`]), is replaced or forgotten, or was served.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::node::FoundStream;
use crate::streams::StreamRef;

/// How long a find serves later consumes.
pub(crate) const RECENT_FIND_TTL: Duration = Duration::from_secs(2);

/// Most finds kept (stream ids come from apps: the table is bounded).
pub(crate) const MAX_RECENT_FINDS: usize = 256;

/// Most pipe ends kept with finds (each holds a mediasoup transport and a port).
pub(crate) const MAX_KEPT_ENDS: usize = 16;

/// One kept find and the pipe end opened with it, if any.
#[derive(Debug)]
struct Kept<E> {
    at: Instant,
    found: FoundStream,
    end: Option<E>,
    /// A consume took what was kept: an end landing later is not for it.
    served: bool,
}

/// Finds of the last [`RECENT_FIND_TTL`], by the stream reference asked for
/// (`ID` or `ID@ORIGIN`), with the pipe ends (`E`) opened for them.
#[derive(Debug)]
pub(crate) struct RecentFinds<E = crate::pipes::LocalEnd> {
    finds: HashMap<String, Kept<E>>,
    /// Ends being opened for finds ([`RecentFinds::reserve_end`]), counted
    /// against [`MAX_KEPT_ENDS`] until they land.
    opening: usize,
    /// Ends that landed before their find was kept, waiting for it.
    landed: HashMap<String, (Instant, E)>,
    /// Whether each of the last [`OUTCOMES_KEPT`] kept finds was consumed
    /// (`true`) or expired unused, newest last.
    outcomes: std::collections::VecDeque<bool>,
}

/// How many finds' outcomes decide whether ends are worth opening.
const OUTCOMES_KEPT: usize = 32;

impl<E> Default for RecentFinds<E> {
    fn default() -> Self {
        Self { finds: HashMap::new(), opening: 0, landed: HashMap::new(), outcomes: Default::default() }
    }
}

impl<E> RecentFinds<E> {
    /// Keeps `found` for `wanted` with `end` (an ambiguous find, naming two
    /// origins, without it: the consume that follows answers with the
    /// conflict the find reported, and pipes nothing). Returns what it
    /// lets go of, to be dropped outside the lock: expired finds' ends, the
    /// end of the find it replaces, and `end` itself when it is not kept.
    #[must_use = "the ends returned are closed by dropping them"]
    pub(crate) fn keep(&mut self, wanted: &StreamRef, found: &FoundStream, end: Option<E>, now: Instant) -> Vec<E> {
        let mut dropped = self.expire(now);
        if found.providers.is_empty() {
            dropped.extend(end);
            return dropped;
        }
        // Two origins: kept so that the consume refuses at once what the find
        // reported, without an end (no pipe follows).
        let end = if found.origins.len() == 1 {
            end
        } else {
            dropped.extend(end);
            None
        };
        let wanted = key(wanted);
        if self.finds.len() >= MAX_RECENT_FINDS && !self.finds.contains_key(&wanted) {
            dropped.extend(end);
            return dropped;
        }
        if let Some(old) = self.finds.remove(&wanted) {
            if !old.served {
                self.record(false);
            }
            dropped.extend(old.end);
        }
        let end = match (end, self.landed.remove(&wanted)) {
            (Some(end), landed) => {
                dropped.extend(landed.map(|(_, end)| end));
                Some(end)
            }
            (None, landed) => landed.map(|(_, end)| end),
        };
        let end = match end {
            Some(end) if self.kept_ends() >= MAX_KEPT_ENDS => {
                dropped.push(end);
                None
            }
            end => end,
        };
        self.finds.insert(wanted, Kept { at: now, found: found.clone(), end, served: false });
        dropped
    }

    /// Whether another pipe end would be kept now.
    pub(crate) fn has_room_for_an_end(&self) -> bool {
        self.kept_ends() + self.opening < MAX_KEPT_ENDS
    }

    /// Whether ends pay here: at least a quarter of the last finds kept were
    /// consumed (none known yet: no). An app that finds without consuming
    /// (a directory, a health check, a discovery run) then costs the workers
    /// nothing; one that consumes what it finds gets its ends from its
    /// first consume on. Finds are kept, and outcomes counted, either way.
    pub(crate) fn ends_pay(&self) -> bool {
        let consumed = self.outcomes.iter().filter(|consumed| **consumed).count();
        consumed > 0 && consumed * 4 >= self.outcomes.len()
    }

    fn record(&mut self, consumed: bool) {
        self.outcomes.push_back(consumed);
        while self.outcomes.len() > OUTCOMES_KEPT {
            self.outcomes.pop_front();
        }
    }

    /// Counts an end about to be opened for a find, if ends pay and there is
    /// room for one; whoever got `true` hands the outcome to
    /// [`RecentFinds::attach`].
    pub(crate) fn reserve_end(&mut self) -> bool {
        let room = self.ends_pay() && self.has_room_for_an_end();
        self.opening += usize::from(room);
        room
    }

    /// An end reserved with [`RecentFinds::reserve_end`] has opened (or
    /// failed: `None`): kept with the find of `wanted` if that is still kept,
    /// has none and no consume took it yet. Otherwise the end is returned,
    /// to be dropped outside the lock.
    #[must_use = "the end returned is closed by dropping it"]
    pub(crate) fn attach(&mut self, wanted: &StreamRef, end: Option<E>, now: Instant) -> Option<E> {
        self.opening = self.opening.saturating_sub(1);
        let end = end?;
        let wanted = key(wanted);
        match self.finds.get_mut(&wanted) {
            Some(kept)
                if !kept.served && kept.end.is_none() && now.saturating_duration_since(kept.at) < RECENT_FIND_TTL =>
            {
                kept.end = Some(end);
                None
            }
            Some(_) => Some(end),
            // The find is still walking: the end waits for it (until it expires).
            None => self.landed.insert(wanted, (now, end)).map(|(_, older)| older),
        }
    }

    fn kept_ends(&self) -> usize {
        self.finds.values().filter(|kept| kept.end.is_some()).count() + self.landed.len()
    }

    /// The find of `wanted` made less than [`RECENT_FIND_TTL`] before `now`,
    /// and the pipe end opened with it (taken: it serves one consume).
    pub(crate) fn take(&mut self, wanted: &StreamRef, now: Instant) -> Option<(FoundStream, Option<E>)> {
        let kept = self.finds.get_mut(&key(wanted))?;
        if now.saturating_duration_since(kept.at) >= RECENT_FIND_TTL {
            return None;
        }
        let first = !kept.served;
        kept.served = true;
        let taken = (kept.found.clone(), kept.end.take());
        if first {
            self.record(true);
        }
        Some(taken)
    }

    /// Drops what is kept for `wanted` (its providers failed); returns its end.
    #[must_use = "the end returned is closed by dropping it"]
    pub(crate) fn forget(&mut self, wanted: &StreamRef) -> Option<E> {
        self.finds.remove(&key(wanted)).and_then(|kept| kept.end)
    }

    /// Drops the finds older than [`RECENT_FIND_TTL`]; returns their ends.
    #[must_use = "the ends returned are closed by dropping them"]
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<E> {
        let expired: Vec<String> = self
            .finds
            .iter()
            .filter(|(_, kept)| now.saturating_duration_since(kept.at) >= RECENT_FIND_TTL)
            .map(|(wanted, _)| wanted.clone())
            .collect();
        let mut ends = Vec::new();
        for wanted in expired {
            if let Some(kept) = self.finds.remove(&wanted) {
                if !kept.served {
                    self.record(false);
                }
                ends.extend(kept.end);
            }
        }
        let stale: Vec<String> = self
            .landed
            .iter()
            .filter(|(_, (at, _))| now.saturating_duration_since(*at) >= RECENT_FIND_TTL)
            .map(|(wanted, _)| wanted.clone())
            .collect();
        ends.extend(stale.into_iter().filter_map(|wanted| self.landed.remove(&wanted)).map(|(_, end)| end));
        ends
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

    /// A pipe end stands for itself by a number.
    type Finds = RecentFinds<u32>;

    #[test]
    fn a_find_serves_until_its_ttl_passes() {
        let start = Instant::now();
        let mut recent = Finds::default();
        assert!(recent.keep(&stream("s"), &found(1, 2), Some(1), start).is_empty());
        let (found, end) = recent.take(&stream("s"), start + RECENT_FIND_TTL / 2).expect("kept");
        assert_eq!((found.providers.len(), end), (2, Some(1)));
        assert_eq!(recent.take(&stream("s"), start).expect("kept").1, None, "the end serves one consume");
        assert!(recent.take(&stream("s"), start + RECENT_FIND_TTL).is_none(), "expired");
        assert!(recent.take(&stream("other"), start).is_none());
        let pinned = StreamRef { id: "s".into(), origin: Some(mafalda_swarm::PeerId::random()) };
        assert!(recent.take(&pinned, start).is_none(), "a pinned reference is another find");
        assert_eq!(recent.forget(&stream("s")), None);
        assert!(recent.take(&stream("s"), start).is_none(), "forgotten");
    }

    #[test]
    fn empty_finds_are_not_kept_and_ambiguous_ones_are_kept_without_their_ends() {
        let start = Instant::now();
        let mut recent = Finds::default();
        assert_eq!(recent.keep(&stream("two-origins"), &found(2, 2), Some(1), start), vec![1]);
        assert_eq!(recent.keep(&stream("nobody"), &found(1, 0), Some(2), start), vec![2]);
        let (ambiguous, end) = recent.take(&stream("two-origins"), start).expect("kept: the consume refuses it");
        assert_eq!((ambiguous.origins.len(), end), (2, None));
        assert!(recent.take(&stream("nobody"), start).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_expired_finds_make_room() {
        let start = Instant::now();
        let mut recent = Finds::default();
        for i in 0..MAX_RECENT_FINDS {
            let _ = recent.keep(&stream(&format!("s{i}")), &found(1, 1), None, start);
        }
        assert_eq!(recent.keep(&stream("one-more"), &found(1, 1), Some(7), start), vec![7], "full");
        assert!(recent.take(&stream("one-more"), start).is_none());
        let later = start + RECENT_FIND_TTL;
        assert!(recent.keep(&stream("one-more"), &found(1, 1), None, later).is_empty());
        assert!(recent.take(&stream("one-more"), later).is_some(), "the expired ones made room");
        assert_eq!(recent.finds.len(), 1);
    }

    #[test]
    fn kept_ends_are_bounded_and_closed_when_their_find_goes() {
        let start = Instant::now();
        let mut recent = Finds::default();
        for i in 0..MAX_KEPT_ENDS as u32 {
            assert!(recent.keep(&stream(&format!("s{i}")), &found(1, 1), Some(i), start).is_empty());
        }
        assert!(!recent.has_room_for_an_end());
        assert_eq!(recent.keep(&stream("more"), &found(1, 1), Some(99), start), vec![99], "no room for its end");
        assert!(recent.take(&stream("more"), start).is_some(), "the find itself is kept");
        assert_eq!(recent.keep(&stream("s0"), &found(1, 1), None, start), vec![0], "a new find replaces the old end");
        assert_eq!(recent.forget(&stream("s1")), Some(1));
        let mut expired = recent.expire(start + RECENT_FIND_TTL);
        expired.sort_unstable();
        assert_eq!(expired, (2..MAX_KEPT_ENDS as u32).collect::<Vec<_>>(), "every other end closes with its find");
        assert!(recent.has_room_for_an_end());
    }

    #[test]
    fn ends_are_opened_while_at_least_a_quarter_of_finds_are_consumed() {
        let start = Instant::now();
        let mut recent = Finds::default();
        assert!(!recent.reserve_end(), "no find consumed yet");
        assert!(recent.keep(&stream("s"), &found(1, 1), None, start).is_empty());
        recent.take(&stream("s"), start).expect("kept");
        recent.take(&stream("s"), start).expect("kept");
        assert_eq!(recent.outcomes.len(), 1, "a find counts once");
        assert!(recent.ends_pay());
        for i in 0..4 {
            assert!(recent.keep(&stream(&format!("u{i}")), &found(1, 1), None, start).is_empty());
        }
        assert_eq!(recent.expire(start + RECENT_FIND_TTL), Vec::<u32>::new());
        assert!(!recent.ends_pay(), "one of five consumed");
        // A find replaced before it was consumed counts as unused too.
        assert!(recent.keep(&stream("v"), &found(1, 1), None, start).is_empty());
        assert!(recent.keep(&stream("v"), &found(1, 1), None, start).is_empty());
        assert_eq!(recent.outcomes.len(), 6);
        recent.take(&stream("v"), start).expect("kept");
        assert!(recent.ends_pay(), "two of seven consumed");
        // Replacing a consumed find adds nothing.
        assert!(recent.keep(&stream("v"), &found(1, 1), None, start).is_empty());
        assert_eq!(recent.outcomes.len(), 7);
        for i in 0..OUTCOMES_KEPT {
            assert!(recent.keep(&stream(&format!("x{i}")), &found(1, 1), None, start).is_empty());
            recent.take(&stream(&format!("x{i}")), start).expect("kept");
        }
        assert_eq!(recent.outcomes.len(), OUTCOMES_KEPT, "bounded");
    }

    /// Marks `n` finds as consumed, so that ends pay.
    fn consumed(recent: &mut Finds, n: usize) {
        for i in 0..n {
            let wanted = stream(&format!("consumed-{i}"));
            assert!(recent.keep(&wanted, &found(1, 1), None, Instant::now()).is_empty());
            recent.take(&wanted, Instant::now()).expect("kept");
        }
    }

    #[test]
    fn an_end_that_lands_after_its_find_joins_it_unless_a_consume_came_first() {
        let start = Instant::now();
        let mut recent = Finds::default();
        consumed(&mut recent, 1);
        for _ in 0..MAX_KEPT_ENDS {
            assert!(recent.reserve_end());
        }
        assert!(!recent.reserve_end(), "ends being opened count against the cap");
        assert!(recent.keep(&stream("a"), &found(1, 1), None, start).is_empty());
        assert!(recent.keep(&stream("b"), &found(1, 1), None, start).is_empty());
        assert_eq!(recent.attach(&stream("a"), Some(1), start), None, "kept with its find");
        assert_eq!(recent.take(&stream("b"), start).expect("kept").1, None, "b's consume came first");
        assert_eq!(recent.attach(&stream("b"), Some(2), start), Some(2), "too late for b: closed");
        assert_eq!(recent.attach(&stream("a"), None, start), None, "a failed opening frees its place");
        assert_eq!(recent.take(&stream("a"), start).expect("kept").1, Some(1));

        // An end that lands while its find still walks waits for the find.
        assert_eq!(recent.attach(&stream("c"), Some(3), start), None);
        assert_eq!(recent.expire(start + RECENT_FIND_TTL / 2), Vec::<u32>::new());
        assert!(recent.keep(&stream("c"), &found(1, 1), None, start + RECENT_FIND_TTL / 2).is_empty());
        assert_eq!(recent.take(&stream("c"), start).expect("kept").1, Some(3), "c's find took the end that waited");
        assert_eq!(recent.attach(&stream("d"), Some(4), start), None);
        assert_eq!(recent.expire(start + RECENT_FIND_TTL), vec![4], "an end whose find never came is closed");
        assert!(recent.reserve_end(), "landed or failed, and taken or closed: room again");
    }
}
