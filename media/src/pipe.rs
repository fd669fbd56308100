//! Cross-node pipe blocks: the pieces two nodes assemble, through ROPE calls, to
//! carry a producer from one to the other over a PipeTransport pair (RTX and SRTP
//! on). The data structs are what travels between the nodes.
//!
//! Sender: [`open_pipe`] → send the [`PipeEndpoint`] → [`connect_pipe`] with the
//! peer's endpoint → [`send_track`] for each producer → send the [`PipedTrack`].
//! Receiver: [`open_pipe`] → [`connect_pipe`] → [`receive_track`] per track (same
//! kind and RTP parameters; a producer id of its own, so a peer can never make
//! ids collide with producers the receiver already has).

use std::net::IpAddr;

use mediasoup::prelude::{
    Consumer, ConsumerOptions, MediaKind, PipeTransport, PipeTransportOptions, PipeTransportRemoteParameters, Producer,
    ProducerId, ProducerOptions, RtpCapabilities, RtpParameters, Transport,
};
use mediasoup::router::Router;
use mediasoup::types::srtp_parameters::SrtpParameters;
use serde::{Deserialize, Serialize};

use crate::MediaError;
use crate::transports::{tuple_local_addr, udp_listen_info};

/// Where one end of a pipe listens, and the SRTP key it sends with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipeEndpoint {
    /// IP address the peer should send to (as text on every encoding, so
    /// other implementations read `"127.0.0.1"`, not serde's enum form).
    #[serde(with = "ip_as_text")]
    pub ip: IpAddr,
    /// UDP port.
    pub port: u16,
    /// SRTP parameters of this end (the peer decrypts with them).
    pub srtp: Option<SrtpParameters>,
}

/// The transport of one end of a pipe: a PipeTransport between reachable
/// nodes, a PlainTransport on a leg that crosses a NAT (`nat_pipe`).
#[derive(Debug, Clone)]
pub enum PipeLeg {
    /// Both ends reachable.
    Pipe(PipeTransport),
    /// One end behind NAT.
    Plain(crate::nat_pipe::NatEnd),
}

impl PipeLeg {
    /// The transport's id.
    pub fn id(&self) -> mediasoup::prelude::TransportId {
        match self {
            Self::Pipe(transport) => transport.id(),
            Self::Plain(end) => end.transport.id(),
        }
    }
}

/// A producer as a pipe carries it: the receiver recreates it with these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipedTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// RTP parameters as the pipe consumer sends them.
    pub rtp_parameters: RtpParameters,
    /// Whether the source producer is paused.
    pub paused: bool,
}

impl PipedTrack {
    /// The track `consumer`, consuming a producer into a pipe, sends.
    pub(crate) fn sent_by(consumer: &Consumer) -> Self {
        Self {
            kind: consumer.kind(),
            rtp_parameters: consumer.rtp_parameters().clone(),
            paused: consumer.producer_paused(),
        }
    }
}

pub(crate) fn request_error(error: impl std::fmt::Display) -> MediaError {
    MediaError::Request(error.to_string())
}

/// Opens this node's end of a pipe on `router`, listening on `ip` (announcing
/// `announced` if behind NAT); RTX and SRTP are on.
pub async fn open_pipe(
    router: &Router,
    ip: IpAddr,
    announced: Option<String>,
) -> Result<(PipeTransport, PipeEndpoint), MediaError> {
    let mut options = PipeTransportOptions::new(udp_listen_info(ip, announced.clone()));
    options.enable_rtx = true;
    options.enable_srtp = true;
    let transport = router.create_pipe_transport(options).await.map_err(request_error)?;
    let local = tuple_local_addr(&transport.tuple())?;
    let ip = match announced.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(announced)) => announced,
        _ => local.ip(),
    };
    let endpoint = PipeEndpoint { ip, port: local.port(), srtp: transport.srtp_parameters() };
    Ok((transport, endpoint))
}

/// Points this end at the peer's endpoint.
pub async fn connect_pipe(transport: &PipeTransport, remote: &PipeEndpoint) -> Result<(), MediaError> {
    transport
        .connect(PipeTransportRemoteParameters {
            ip: remote.ip,
            port: remote.port,
            srtp_parameters: remote.srtp.clone(),
        })
        .await
        .map_err(request_error)
}

/// Sender side: consumes `producer_id` into the pipe; returns the pipe consumer
/// (keep it: dropping it stops the flow) and the track for the receiver.
pub async fn send_track(
    transport: &PipeTransport,
    producer_id: ProducerId,
) -> Result<(Consumer, PipedTrack), MediaError> {
    // Pipe consumers take the producer's parameters as they are; capabilities are unused.
    let options = ConsumerOptions::new(producer_id, RtpCapabilities::default());
    let consumer = transport.consume(options).await.map_err(request_error)?;
    let track = PipedTrack::sent_by(&consumer);
    Ok((consumer, track))
}

/// Receiver side: recreates the producer from `track` on this end of the pipe,
/// under a fresh producer id. The caller checks `track` first: its RTP
/// parameters come from another node.
pub async fn receive_track(transport: &PipeTransport, track: &PipedTrack) -> Result<Producer, MediaError> {
    let mut options =
        ProducerOptions::new_pipe_transport(fresh_producer_id()?, track.kind, track.rtp_parameters.clone());
    options.paused = track.paused;
    transport.produce(options).await.map_err(request_error)
}

/// A new random producer id (mediasoup's own constructor is private).
fn fresh_producer_id() -> Result<ProducerId, MediaError> {
    uuid::Uuid::new_v4().to_string().parse().map_err(|_| MediaError::Request("cannot make a producer id".into()))
}

/// `IpAddr` as its text form in every encoding (serde's derive writes CBOR as
/// an enum of octet arrays).
mod ip_as_text {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(ip: &IpAddr, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(ip)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IpAddr, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
