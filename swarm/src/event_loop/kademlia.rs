//! The event loop's DHT side: provider lookups (walks, the own store's
//! answer, dials to the providers named), provider records announced again
//! when due or when a peer joins near them, which peers enter the routing
//! table, and what Kademlia reports (queries, inbound records refused).

use std::collections::HashSet;
use std::time::Instant;

use libp2p::kad::store::RecordStore;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::swarm::DialError;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::{EventLoop, MAX_PENDING_FINDS};
use crate::SwarmError;
use crate::find::PendingFind;
use crate::handle::is_provider_key;

/// Counters of inbound Kademlia records the node refused to store.
#[derive(Debug, Clone, Default)]
pub(super) struct KadRefused {
    /// PUT_VALUE records (the swarm keeps provider records only).
    records: Counter,
    /// Provider records under a key that is not a stream key, or that the store refused.
    providers: Counter,
}

impl KadRefused {
    pub(super) fn new(registry: &mut prometheus_client::registry::Registry) -> Self {
        let refused = Self::default();
        registry.register(
            "mafalda_swarm_kad_records_refused",
            "PUT_VALUE records received and not stored (the swarm keeps provider records only)",
            refused.records.clone(),
        );
        registry.register(
            "mafalda_swarm_kad_provider_records_refused",
            "Provider records received and not stored (not a stream key, or the store is full)",
            refused.providers.clone(),
        );
        refused
    }
}

impl EventLoop {
    /// Gives Kademlia `peer`'s address when [`routing::admits`] lets it in:
    /// the peer is in its bucket already, or the bucket has room.
    pub(super) fn add_routable(&mut self, peer: PeerId, address: Multiaddr) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        let Some(bucket) = kad.kbucket(peer) else { return };
        let known = bucket.iter().any(|entry| *entry.node.key.preimage() == peer);
        if crate::routing::admits(known, bucket.num_entries()) {
            kad.add_address(&peer, address);
        }
    }

    pub(super) fn start_find(
        &mut self,
        key: RecordKey,
        deadline: Instant,
        thorough: bool,
        named: Option<mpsc::Sender<PeerId>>,
        reply: oneshot::Sender<crate::find::ProviderLookup>,
    ) {
        let local = self.provided.contains(&key).then(|| *self.swarm.local_peer_id());
        let mut find = PendingFind::new(reply, local, deadline);
        let stored = if thorough { None } else { self.own_store_answer(&key) };
        if thorough {
            find.walk_to_the_end();
        } else {
            find.stop_after(if stored.is_some() { 1 } else { crate::find::ENOUGH_PROVIDER_ANSWERS });
        }
        if let Some(named) = named {
            find.name_providers_to(named);
        }
        // The store is the one answer needed and names only connected peers:
        // answered here, without a Kademlia query (which would only hand the
        // same store back, a few polls of the swarm later).
        if let Some(stored) = stored.filter(|stored| stored.iter().all(|peer| self.swarm.is_connected(peer))) {
            self.refresh_store_answer(&key);
            find.answered(stored.len());
            for peer in stored {
                find.add_reachable(peer);
            }
            find.query_finished();
            find.answer();
            return;
        }
        if self.finds.len() >= MAX_PENDING_FINDS {
            warn!("too many provider lookups in flight; answering with local knowledge only");
            find.answer();
            return;
        }
        let name = String::from_utf8_lossy(key.as_ref()).into_owned();
        let id = self.swarm.behaviour_mut().kad.get_providers(key);
        debug!(query = ?id, key = %name, "provider walk started");
        self.finds.insert(id, find);
    }

    /// The providers (other than this node) this node's own store names for
    /// `key`, when that store is the one answer a quick lookup needs
    /// (`find::answers_needed`): this node is among the peers closest to it
    /// that it knows of, and has been in the swarm for `own_store_after`.
    /// `None` otherwise: the lookup then asks peers.
    pub(super) fn own_store_answer(&mut self, key: &RecordKey) -> Option<Vec<PeerId>> {
        let me = *self.swarm.local_peer_id();
        let now = std::time::Instant::now();
        let settled =
            self.in_swarm_since.is_some_and(|since| now.saturating_duration_since(since) >= self.own_store_after);
        if !settled {
            return None;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        let stored: Vec<PeerId> = kad
            .store_mut()
            .providers(key)
            .iter()
            .filter(|p| p.provider != me && !p.is_expired(now))
            .map(|p| p.provider)
            .collect();
        if stored.is_empty() {
            return None;
        }
        let target = kad::KBucketKey::new(key.clone());
        let mine = kad::KBucketKey::from(me).distance(&target);
        let known = crate::routing::known_peers(kad);
        let closer = crate::routing::closer_than(&known, &target, mine, crate::find::ANNOUNCED_TO);
        (crate::find::answers_needed(stored.len(), closer) == 1).then_some(stored)
    }

    /// Makes again (or drops) the answer the handle reads for `key`
    /// (`store_answers`): what a quick lookup of it gets from this node's
    /// own store, when that is the one answer needed and names only
    /// connected peers, this node first if it provides the key.
    pub(super) fn refresh_store_answer(&mut self, key: &RecordKey) {
        let stored = self.own_store_answer(key).filter(|stored| stored.iter().all(|p| self.swarm.is_connected(p)));
        let Some(stored) = stored else {
            self.store_answers.forget(key);
            return;
        };
        let me = *self.swarm.local_peer_id();
        let until = self
            .swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .providers(key)
            .iter()
            .filter(|record| stored.contains(&record.provider))
            .filter_map(|record| record.expires)
            .min();
        let providers = self.provided.contains(key).then_some(me).into_iter().chain(stored).collect();
        self.store_answers.put(key.clone(), providers, until);
    }

    /// A peer entered the routing table: the provided keys it is among the
    /// closest to are announced again (`reannounce`). It may be closer to a
    /// key than this node: no store answer holds any more.
    pub(super) fn joined_routing(&mut self, peer: PeerId) {
        self.store_answers.clear();
        let now = Instant::now();
        self.in_swarm_since.get_or_insert(now);
        if self.provided.is_empty() {
            return; // most nodes of a large swarm: no need to read the table
        }
        let known = crate::routing::known_peers(&mut self.swarm.behaviour_mut().kad);
        let Some(joined) = known.iter().find(|key| *key.preimage() == peer) else { return };
        let near: Vec<RecordKey> = self
            .provided
            .keys()
            .filter(|key| {
                let target = kad::KBucketKey::new((*key).clone());
                let among =
                    crate::routing::closer_than(&known, &target, joined.distance(&target), crate::find::ANNOUNCED_TO);
                among < crate::find::ANNOUNCED_TO
            })
            .cloned()
            .collect();
        for key in near {
            debug!(%peer, key = %String::from_utf8_lossy(key.as_ref()), "peer joined near a provided key");
            self.provided.joined_near(&key, now);
        }
    }

    /// Starts the walks of provided keys that are due (`reannounce`).
    pub(super) fn announce_again_if_due(&mut self, now: Instant) {
        for key in self.provided.due(now) {
            match self.swarm.behaviour_mut().kad.start_providing(key.clone()) {
                Ok(id) => self.provided.started(&key, id, now),
                Err(error) => {
                    debug!(%error, "provider record not announced again");
                    self.provided.not_started(&key);
                }
            }
        }
    }

    pub(super) fn on_providers_found(&mut self, id: QueryId, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        let enough = self.finds.get_mut(&id).is_some_and(|find| find.answered(providers.len()));
        if enough && let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            // Ends the walk; Kademlia reports the query's last step next.
            query.finish();
        }
        for peer in providers {
            if peer == local || self.swarm.is_connected(&peer) {
                if let Some(find) = self.finds.get_mut(&id) {
                    find.add_reachable(peer);
                }
                continue;
            }
            // Dial while the query still holds the provider's addresses.
            let dial = DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing).build();
            match self.swarm.dial(dial) {
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {
                    if let Some(find) = self.finds.get_mut(&id) {
                        find.add_dialing(peer);
                    }
                }
                Err(error) => debug!(%peer, %error, "provider not dialable; left out"),
            }
        }
    }

    /// Updates lookups waiting on a dial to `peer`, and answers the complete ones.
    pub(super) fn on_dial_outcome(&mut self, peer: PeerId, reachable: bool) {
        for find in self.finds.values_mut().filter(|f| f.is_dialing(&peer)) {
            if reachable {
                find.add_reachable(peer);
            } else {
                find.unreachable(&peer);
            }
        }
        self.answer_complete_finds();
    }

    pub(super) fn answer_complete_finds(&mut self) {
        self.finds.retain(|_, find| {
            if find.is_complete() {
                find.answer();
                false
            } else {
                true
            }
        });
    }

    pub(super) fn on_kad_event(&mut self, event: kad::Event) {
        let event = match event {
            kad::Event::InboundRequest { request } => return self.on_kad_inbound(request),
            kad::Event::RoutablePeer { peer, address } => return self.add_routable(peer, address),
            kad::Event::RoutingUpdated { peer, is_new_peer: true, .. } => return self.joined_routing(peer),
            other => other,
        };
        let kad::Event::OutboundQueryProgressed { id, result, step, stats } = event else { return };
        match result {
            QueryResult::GetClosestPeers(result) => {
                let found = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                if let Some(calls) = self.resolving.remove(&id) {
                    self.retry_resolved_calls(calls, found);
                }
                return;
            }
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                self.on_providers_found(id, providers);
            }
            QueryResult::GetProviders(Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { closest_peers })) => {
                // The peers the walk ended at: set against the record holders
                // ("provider record stored") they show where a walk went astray.
                debug!(query = ?id, closest = ?closest_peers, "provider walk closest peers");
            }
            QueryResult::GetProviders(Err(error)) => debug!(%error, "provider lookup ended"),
            QueryResult::StartProviding(result) => {
                self.announced_at = Some(Instant::now());
                debug!(
                    query = ?id,
                    requests = stats.num_requests(),
                    successes = stats.num_successes(),
                    took = ?stats.duration(),
                    ok = result.is_ok(),
                    "provider announced"
                );
                if self.provided.finished(id) {
                    return;
                }
                if let Some(reply) = self.provides.remove(&id) {
                    let stored_at = match &result {
                        Ok(_) => Ok(stats.num_successes()),
                        Err(error) => Err(SwarmError::Provide(format!("announcement incomplete: {error}"))),
                    };
                    let _ = reply.send(stored_at.map(|n| n as usize));
                }
                return;
            }
            QueryResult::RepublishProvider(_) => {
                self.announced_at = Some(Instant::now());
                return;
            }
            QueryResult::Bootstrap(result) => {
                match result {
                    Err(error) => debug!(%error, "kademlia bootstrap incomplete"),
                    // Every step: a bootstrap is a self lookup and then one lookup
                    // per bucket, and the steps before the last cost most.
                    Ok(ok) => debug!(
                        step = step.count.get(),
                        remaining = ok.num_remaining,
                        requests = stats.num_requests(),
                        took = ?stats.duration(),
                        "kademlia bootstrap step done"
                    ),
                }
                let kad = &mut self.swarm.behaviour_mut().kad;
                self.bootstraps.on_step(kad, id, &step, stats.num_successes() as usize, Instant::now());
                return;
            }
            _ => return,
        }
        if step.last
            && let Some(find) = self.finds.get_mut(&id)
        {
            debug!(
                query = ?id,
                steps = step.count.get(),
                requests = stats.num_requests(),
                failures = stats.num_failures(),
                took = ?stats.duration(),
                "provider walk ended"
            );
            find.query_finished();
            self.answer_complete_finds();
        }
    }

    /// Stores what Kademlia passed on for filtering: well-formed provider records
    /// only. Kademlia itself drops a provider record whose provider is not the
    /// peer that sent it, before this sees it (the event does not name the sender).
    pub(super) fn on_kad_inbound(&mut self, request: kad::InboundRequest) {
        match request {
            kad::InboundRequest::PutRecord { source, record, .. } => {
                self.kad_refused.records.inc();
                let key_bytes = record.map_or(0, |r| r.key.as_ref().len());
                debug!(peer = %source, key_bytes, "PUT_VALUE record not stored: the swarm keeps provider records only");
            }
            kad::InboundRequest::AddProvider { record: Some(record) } => {
                if !is_provider_key(&record.key) {
                    self.kad_refused.providers.inc();
                    debug!(provider = %record.provider, key_bytes = record.key.as_ref().len(),
                           "provider record for a key that is not a stream or room key not stored");
                    return;
                }
                let (provider, key) = (record.provider, String::from_utf8_lossy(record.key.as_ref()).into_owned());
                let record_key = record.key.clone();
                match self.swarm.behaviour_mut().kad.store_mut().add_provider(record) {
                    Ok(()) => {
                        debug!(%provider, %key, "provider record stored");
                        self.refresh_store_answer(&record_key);
                    }
                    Err(error) => {
                        self.kad_refused.providers.inc();
                        debug!(%provider, %error, "provider record not stored");
                    }
                }
            }
            _ => {}
        }
    }
}
