//! The event loop's ROPE calls by request-response: sent (again, once a
//! peer's address is found), answered, refused when busy, and failures
//! turned into [`CallError`]s. Calls over links (`crate::rope_link`) bypass it.

use std::time::Instant;

use libp2p::request_response::{self, InboundRequestId, ResponseChannel};
use libp2p::{PeerId, kad};
use mafalda_rope::{ErrorCode, Request as RopeRequest, RequestId, Response as RopeResponse, RpcError};
use tracing::debug;

use super::{EventLoop, OutboundCall};
use crate::error::CallError;
use crate::handle::InboundCall;
use crate::penalties::PeerAction;
use crate::rope_codec::Inbound;

impl EventLoop {
    /// Sends `call` by request-response, remembering it until it is answered.
    pub(super) fn send_call(&mut self, call: OutboundCall) {
        let request = Inbound::Request(call.request.clone());
        let id = self.swarm.behaviour_mut().rope.send_request(&call.peer, request);
        self.calls_out.insert(id, call);
    }

    /// Sends calls again after a DHT lookup of their peer. The lookup itself
    /// usually contacts the peer (it is the closest to its own id), which gives
    /// Kademlia its address; addresses reported for it are added too. A second
    /// dial failure is final.
    pub(super) fn retry_resolved_calls(&mut self, calls: Vec<OutboundCall>, found: Vec<kad::PeerInfo>) {
        for mut call in calls {
            if let Some(info) = found.iter().find(|info| info.peer_id == call.peer) {
                for addr in &info.addrs {
                    self.add_routable(call.peer, addr.clone());
                }
            }
            call.resolved = true;
            self.send_call(call);
        }
    }

    pub(super) fn on_rope_event(&mut self, event: request_response::Event<Inbound, RopeResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message { peer, connection_id, message: Message::Request { request_id, request, channel } } => {
                match request {
                    Inbound::Request(request) => {
                        self.connection_policy.used(peer, Instant::now());
                        let remote_ip = self.connection_ips.get(&connection_id).map(|(_, ip)| *ip);
                        self.on_inbound_call(peer, remote_ip, request_id, request, channel);
                    }
                    Inbound::Rejected { id, error } => {
                        debug!(%peer, %error, "ROPE request rejected");
                        self.penalise(peer, PeerAction::BadRequest);
                        let _ = self.swarm.behaviour_mut().rope.send_response(channel, RopeResponse::err(id, error));
                    }
                }
            }
            Event::Message { message: Message::Response { request_id, response }, .. } => {
                if let Some(call) = self.calls_out.remove(&request_id) {
                    let _ = call.reply.send(Ok(response));
                }
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                let Some(call) = self.calls_out.remove(&request_id) else { return };
                let unknown_address = matches!(error, request_response::OutboundFailure::DialFailure)
                    && !call.resolved
                    && !self.swarm.is_connected(&peer);
                if unknown_address {
                    // Look the peer up in the DHT, then try once more.
                    let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.resolving.entry(id).or_default().push(call);
                } else {
                    let _ = call.reply.send(Err(call_error(peer, error)));
                }
            }
            Event::InboundFailure { peer, request_id, error, .. } => {
                debug!(%peer, %error, "inbound ROPE call failed");
                self.inbound_done(request_id);
            }
            Event::ResponseSent { request_id, .. } => self.inbound_done(request_id),
        }
    }

    pub(super) fn on_inbound_call(
        &mut self,
        peer: PeerId,
        remote_ip: Option<std::net::IpAddr>,
        request_id: InboundRequestId,
        request: RopeRequest,
        channel: ResponseChannel<RopeResponse>,
    ) {
        let in_flight = self.calls_in_per_peer.get(&peer).copied().unwrap_or(0);
        if in_flight >= self.max_inbound_per_peer {
            self.penalise(peer, PeerAction::RequestFlood);
            let busy = busy(&request.id, "too many calls in flight from this peer");
            let _ = self.swarm.behaviour_mut().rope.send_response(channel, busy);
            return;
        }
        let Some(commands) = self.command_sender.upgrade() else { return };
        match self.calls.try_send(InboundCall::new(peer, remote_ip, request, channel, commands)) {
            Ok(()) => {
                self.calls_in.insert(request_id, peer);
                *self.calls_in_per_peer.entry(peer).or_default() += 1;
            }
            Err(error) => {
                let call = error.into_inner();
                let id = call.request.id.clone();
                if let Some(channel) = call.into_channel() {
                    let busy = busy(&id, "node busy: too many calls waiting");
                    let _ = self.swarm.behaviour_mut().rope.send_response(channel, busy);
                }
            }
        }
    }

    pub(super) fn inbound_done(&mut self, request_id: InboundRequestId) {
        if let Some(peer) = self.calls_in.remove(&request_id)
            && let Some(count) = self.calls_in_per_peer.get_mut(&peer)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.calls_in_per_peer.remove(&peer);
            }
        }
    }
}

/// The answer refusing call `id` as busy (request-response and links alike).
pub(crate) fn busy(id: &RequestId, message: &str) -> RopeResponse {
    RopeResponse::err(Some(id.clone()), RpcError::new(ErrorCode::Busy, message))
}

/// What a failed request-response call tells its caller.
fn call_error(peer: PeerId, error: request_response::OutboundFailure) -> CallError {
    use request_response::OutboundFailure;
    match error {
        OutboundFailure::Timeout => CallError::Timeout(peer),
        OutboundFailure::DialFailure | OutboundFailure::ConnectionClosed => {
            CallError::Unreachable { peer, reason: error.to_string() }
        }
        OutboundFailure::UnsupportedProtocols => CallError::UnsupportedProtocol(peer),
        OutboundFailure::Io(io) => CallError::Io { peer, reason: io.to_string() },
    }
}
