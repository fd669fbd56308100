//! When a relay lets go of a stream: once nothing here consumes it (no
//! egress, no WebRTC consumer, no downstream pipe) for the linger time, the
//! relay ends it: it closes its upstream pipe, tells its upstream it is done
//! (`stream.unpipe`) and stops providing it. A consumer that comes back within
//! the linger reuses the pipe that is still there.
//!
//! [`Linger`] is the policy, a state machine fed with `now`; the node's
//! release task ([`Inner::release_idle_relays`]) is the mechanism.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use crate::inner::{Inner, lock};
use crate::streams::Role;

/// Default time a relay keeps a stream nobody here consumes.
pub const DEFAULT_RELAY_LINGER: Duration = Duration::from_secs(10);

/// Which relayed streams have had no local consumer, and since when.
#[derive(Debug, Default)]
pub(crate) struct Linger {
    idle_since: HashMap<String, Instant>,
}

impl Linger {
    /// Updates what is idle from `consumers` (each relayed stream with its
    /// local consumer count) and returns the streams idle for `linger` or more.
    pub(crate) fn due(&mut self, now: Instant, linger: Duration, consumers: &[(String, usize)]) -> Vec<String> {
        self.idle_since.retain(|stream, _| consumers.iter().any(|(s, n)| s == stream && *n == 0));
        let mut due = Vec::new();
        for (stream, _) in consumers.iter().filter(|(_, n)| *n == 0) {
            let since = *self.idle_since.entry(stream.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= linger {
                due.push(stream.clone());
            }
        }
        for stream in &due {
            self.idle_since.remove(stream);
        }
        due
    }
}

impl Inner {
    /// How many things here consume `stream`: egresses, WebRTC consumers and
    /// pipes to downstream peers.
    pub(crate) fn local_consumers(&self, stream: &str) -> usize {
        let pipes = lock(&self.streams).get(stream).map_or(0, |local| local.pipes.len());
        self.consumers_besides_pipes(stream) + pipes
    }

    /// Egresses and WebRTC consumers of `stream` (the pipes are counted by
    /// whoever holds the streams lock).
    pub(crate) fn consumers_besides_pipes(&self, stream: &str) -> usize {
        self.egress_count_of(stream) + lock(&self.webrtc_consumers).get(stream).copied().unwrap_or(0)
    }

    /// Ends the relayed streams nobody here has consumed for the linger time.
    pub(crate) async fn release_idle_relays(self: &Arc<Self>, linger: &mut Linger, now: Instant) {
        let relayed: Vec<String> = lock(&self.streams)
            .iter()
            .filter(|(_, local)| matches!(local.role, Role::Relay { .. }))
            .map(|(stream, _)| stream.clone())
            .collect();
        let consumers: Vec<(String, usize)> =
            relayed.into_iter().map(|stream| (stream.clone(), self.local_consumers(&stream))).collect();
        for stream in linger.due(now, self.config.relay_linger, &consumers) {
            // Checked again: a consumer may have arrived since the count.
            if self.local_consumers(&stream) == 0 {
                info!(stream, linger = ?self.config.relay_linger, "no consumer left here; letting the relayed stream go");
                self.end_stream(&stream).await;
            }
        }
    }
}

/// How often relays with no local consumer are checked.
const RELEASE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Lets go of relayed streams nobody here consumes (see `release`), of
/// idle rooms' routers, of spare pipe transports no stream needs and of
/// closed pipe pairs.
pub(crate) async fn release_idle_relays(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(RELEASE_CHECK_INTERVAL);
    let mut linger = Linger::default();
    loop {
        tick.tick().await;
        inner.release_idle_relays(&mut linger, std::time::Instant::now()).await;
        inner.forget_idle_room_routers();
        inner.let_go_of_unneeded_spares();
        inner.forget_closed_pairs();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_goes_after_the_linger_unless_a_consumer_comes_back() {
        let mut linger = Linger::default();
        let start = Instant::now();
        let wait = Duration::from_secs(10);
        let idle = |n: usize| vec![("s".to_owned(), n)];
        assert!(linger.due(start, wait, &idle(1)).is_empty(), "consumed");
        assert!(linger.due(start, wait, &idle(0)).is_empty(), "idle from now");
        assert!(linger.due(start + Duration::from_secs(9), wait, &idle(0)).is_empty());
        // A consumer comes back, then leaves again: the linger starts over.
        assert!(linger.due(start + Duration::from_secs(9), wait, &idle(1)).is_empty());
        assert!(linger.due(start + Duration::from_secs(12), wait, &idle(0)).is_empty());
        assert_eq!(linger.due(start + Duration::from_secs(22), wait, &idle(0)), vec!["s".to_owned()]);
        // A stream no longer relayed is forgotten.
        assert!(linger.due(start + Duration::from_secs(23), wait, &idle(0)).is_empty());
        assert!(linger.due(start + Duration::from_secs(40), wait, &[]).is_empty());
        assert!(linger.idle_since.is_empty());
    }
}
