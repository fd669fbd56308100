//! Pipe legs that cross a NAT: one end behind it, one reachable.
//!
//! A PipeTransport takes packets only from the address it was told, and the
//! address a NAT gives a node's media socket is known to nobody until that
//! socket sends. So across a NAT the pipe is a pair of PlainTransports (RTCP
//! multiplexed, SRTP on, all of a producer's streams as a pipe consumer sends
//! them):
//!
//! - the reachable end listens in comedia mode: it takes the address of the
//!   first packet it gets as the other end's ([`open_listening_end`]);
//! - the end behind the NAT sends first ([`open_sending_first_end`]): its
//!   transport has SCTP on and a data producer (mediasoup starts an SCTP
//!   association only for a transport with one), so connecting it sends an
//!   SCTP INIT at once, whether or not it has media to send; that packet
//!   opens the NAT's mapping and teaches the listening end where the other
//!   end is. The listening end has no SCTP (it would answer anyone who sends
//!   it SCTP): the INIT goes unanswered and is sent again with backoff, and
//!   media and RTCP keep the mapping open after it.
//!
//! An SCTP packet carries no SRTP authentication: anyone who sends to the
//! listening end's port first is taken as the other end. The caller therefore
//! creates its consumers paused and resumes them only once
//! [`learned_source`] names the address the peer's connection comes from.

use std::net::IpAddr;
use std::time::Duration;

use mediasoup::prelude::{
    Consumer, ConsumerOptions, DataProducer, DataProducerOptions, PlainTransport, PlainTransportOptions,
    PlainTransportRemoteParameters, Producer, ProducerId, ProducerOptions, SctpStreamParameters, Transport,
};
use mediasoup::router::Router;
use mediasoup::types::srtp_parameters::SrtpParameters;

use crate::MediaError;
use crate::pipe::{PipeEndpoint, PipedTrack, request_error};
use crate::transports::{tuple_local_addr, udp_listen_info};

fn plain_options(ip: IpAddr, announced: Option<String>, comedia: bool) -> PlainTransportOptions {
    let mut options = PlainTransportOptions::new(udp_listen_info(ip, announced));
    options.rtcp_mux = true;
    options.comedia = comedia;
    options.enable_srtp = true;
    // A node-to-node leg: every stream of the producer goes, as on a pipe.
    options.enable_bwe = false;
    // SCTP only makes the end behind NAT send first (module doc). The
    // listening end has none: it would answer SCTP from whoever sends it
    // some, before the caller's check of that address.
    options.enable_sctp = !comedia;
    options
}

/// One end of a leg across NAT: the transport, and on the end that sends
/// first, the data producer that makes mediasoup start SCTP.
#[derive(Debug, Clone)]
pub struct NatEnd {
    /// The PlainTransport.
    pub transport: PlainTransport,
    _punch: Option<DataProducer>,
}

async fn open(
    router: &Router,
    ip: IpAddr,
    announced: Option<String>,
    comedia: bool,
) -> Result<(PlainTransport, PipeEndpoint), MediaError> {
    let transport =
        router.create_plain_transport(plain_options(ip, announced.clone(), comedia)).await.map_err(request_error)?;
    let local = tuple_local_addr(&transport.tuple())?;
    let ip = match announced.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(announced)) => announced,
        _ => local.ip(),
    };
    let endpoint = PipeEndpoint { ip, port: local.port(), srtp: transport.srtp_parameters() };
    Ok((transport, endpoint))
}

impl NatEnd {
    /// Whether this end sends first (it is the one behind NAT).
    pub fn sends_first(&self) -> bool {
        self._punch.is_some()
    }
}

/// The reachable end: listens on `ip` (announcing `announced`) and takes the
/// other end's address from the first packet it gets.
pub async fn open_listening_end(
    router: &Router,
    ip: IpAddr,
    announced: Option<String>,
) -> Result<(NatEnd, PipeEndpoint), MediaError> {
    let (transport, endpoint) = open(router, ip, announced, true).await?;
    Ok((NatEnd { transport, _punch: None }, endpoint))
}

/// The end behind a NAT: sends to the listening end first. Its endpoint's
/// address means nothing to the other side; its SRTP key does.
pub async fn open_sending_first_end(router: &Router, ip: IpAddr) -> Result<(NatEnd, PipeEndpoint), MediaError> {
    let (transport, endpoint) = open(router, ip, None, false).await?;
    let punch = transport
        .produce_data(DataProducerOptions::new_sctp(SctpStreamParameters::new_ordered(0)))
        .await
        .map_err(request_error)?;
    Ok((NatEnd { transport, _punch: Some(punch) }, endpoint))
}

/// Gives the listening end the SRTP key of the other end (its address comes
/// from the first packet).
pub async fn connect_listening_end(transport: &PlainTransport, remote_srtp: SrtpParameters) -> Result<(), MediaError> {
    transport
        .connect(PlainTransportRemoteParameters {
            ip: None,
            port: None,
            rtcp_port: None,
            srtp_parameters: Some(remote_srtp),
        })
        .await
        .map_err(request_error)
}

/// Points the sending-first end at the listening end; its SCTP INIT leaves now.
pub async fn connect_sending_first_end(transport: &PlainTransport, remote: &PipeEndpoint) -> Result<(), MediaError> {
    transport
        .connect(PlainTransportRemoteParameters {
            ip: Some(remote.ip),
            port: Some(remote.port),
            rtcp_port: None,
            srtp_parameters: remote.srtp.clone(),
        })
        .await
        .map_err(request_error)
}

/// Waits until the listening end has taken an address (up to `within`) and
/// returns its IP; `None` if nothing came.
pub async fn learned_source(transport: &PlainTransport, within: Duration) -> Option<IpAddr> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let sender = std::sync::Mutex::new(Some(sender));
    let _handler = transport.on_tuple(move |tuple| {
        if let Some(sender) = sender.lock().ok().and_then(|mut s| s.take()) {
            let _ = sender.send(tuple.remote_ip());
        }
    });
    // Learned before the handler was in place.
    if let Some(ip) = transport.tuple().remote_ip() {
        return Some(ip);
    }
    tokio::time::timeout(within, receiver).await.ok()?.ok()?
}

/// Sender side: consumes every stream of `producer_id` into the leg (paused
/// until the caller resumes it, with `paused`); returns the consumer and the
/// track for the receiver.
pub async fn send_track(
    transport: &PlainTransport,
    router: &Router,
    producer_id: ProducerId,
    paused: bool,
) -> Result<(Consumer, PipedTrack), MediaError> {
    let mut options = ConsumerOptions::new(producer_id, crate::consumer_capabilities(&router.rtp_capabilities()));
    options.pipe = true;
    options.paused = paused;
    let consumer = transport.consume(options).await.map_err(request_error)?;
    let track = PipedTrack::sent_by(&consumer);
    Ok((consumer, track))
}

/// Receiver side: recreates the producer from `track` (checked by the caller)
/// on this end; mediasoup gives it a fresh id.
pub async fn receive_track(transport: &PlainTransport, track: &PipedTrack) -> Result<Producer, MediaError> {
    let mut options = ProducerOptions::new(track.kind, track.rtp_parameters.clone());
    options.paused = track.paused;
    transport.produce(options).await.map_err(request_error)
}
