//! Which peers the node works with: the upstream and downstream peers of its
//! pipes, the hosts of its apps' workers, the entries whose apps it hosts,
//! and the members of its rooms. The swarm never disconnects them as unused
//! (`ConnectionSettings::max_peers`): a lost connection is how the node learns
//! that such a peer left, and it then closes what they shared.

use std::sync::{Arc, Weak};

use mafalda_swarm::PeerId;

use crate::inner::{Inner, lock};
use crate::streams::Role;

/// Whether the node shares anything with `peer`.
pub(crate) fn uses(inner: &Inner, peer: &PeerId) -> bool {
    let piped = lock(&inner.streams)
        .values()
        .any(|local| local.role == Role::Relay { upstream: *peer } || local.pipes.contains_key(peer));
    piped
        || crate::app_media::entry::uses_host(inner, peer)
        || inner.app_media.hosting.hosts_for(peer)
        || !inner.rooms_of(peer).is_empty()
}

/// Tells the swarm to keep the peers the node uses connected. The swarm
/// holds only a weak reference, so it never keeps the node alive.
pub(crate) async fn register(inner: &Arc<Inner>) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let keep = move |peer: &PeerId| weak.upgrade().is_some_and(|inner| uses(&inner, peer));
    if let Err(error) = inner.swarm.keep_connected(keep).await {
        tracing::warn!(%error, "the swarm did not take the peers in use");
    }
}
