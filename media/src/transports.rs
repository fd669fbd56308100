//! App transports: plain RTP in (comedia) and out, and the listen settings they share.

use std::net::{IpAddr, SocketAddr};

use mediasoup::prelude::{
    ListenInfo, PlainTransport, PlainTransportOptions, PlainTransportRemoteParameters, Protocol, WebRtcTransport,
    WebRtcTransportOptions,
};
use mediasoup::router::Router;
use mediasoup::types::data_structures::TransportTuple;

use crate::MediaError;

/// A UDP listen info on `ip` with an ephemeral port, announcing `announced` if given.
pub fn udp_listen_info(ip: IpAddr, announced: Option<String>) -> ListenInfo {
    ListenInfo {
        protocol: Protocol::Udp,
        ip,
        announced_address: announced,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

/// The local address of a transport tuple.
pub fn tuple_local_addr(tuple: &TransportTuple) -> Result<SocketAddr, MediaError> {
    let ip = tuple
        .local_address()
        .parse()
        .map_err(|_| MediaError::Request(format!("transport address {} is not an IP", tuple.local_address())))?;
    Ok(SocketAddr::new(ip, tuple.local_port()))
}

/// A plain transport for RTP in; returns it with the address to send to.
/// Without `source` it takes RTP from whoever sends first (comedia); with it,
/// it is connected to `source` and mediasoup drops packets from any other
/// address, so nobody else can take the ingest over.
pub async fn plain_ingest(
    router: &Router,
    ip: IpAddr,
    source: Option<SocketAddr>,
) -> Result<(PlainTransport, SocketAddr), MediaError> {
    let mut options = PlainTransportOptions::new(udp_listen_info(ip, None));
    options.comedia = source.is_none();
    options.rtcp_mux = true;
    let transport = router.create_plain_transport(options).await.map_err(|e| MediaError::Request(e.to_string()))?;
    if let Some(source) = source {
        transport
            .connect(PlainTransportRemoteParameters {
                ip: Some(source.ip()),
                port: Some(source.port()),
                rtcp_port: None,
                srtp_parameters: None,
            })
            .await
            .map_err(|e| MediaError::Request(e.to_string()))?;
    }
    let addr = tuple_local_addr(&transport.tuple())?;
    Ok((transport, addr))
}

/// A plain transport that sends RTP to `destination`.
pub async fn plain_egress(router: &Router, ip: IpAddr, destination: SocketAddr) -> Result<PlainTransport, MediaError> {
    let mut options = PlainTransportOptions::new(udp_listen_info(ip, None));
    options.rtcp_mux = true;
    let transport = router.create_plain_transport(options).await.map_err(|e| MediaError::Request(e.to_string()))?;
    transport
        .connect(PlainTransportRemoteParameters {
            ip: Some(destination.ip()),
            port: Some(destination.port()),
            rtcp_port: None,
            srtp_parameters: None,
        })
        .await
        .map_err(|e| MediaError::Request(e.to_string()))?;
    Ok(transport)
}

/// A WebRTC transport on `router`, through the WebRtcServer of the router's worker.
pub async fn webrtc_transport(engine: &crate::MediaEngine, router: &Router) -> Result<WebRtcTransport, MediaError> {
    let server = engine.webrtc_server(&router.worker().id()).ok_or_else(|| {
        MediaError::InvalidConfig("WebRTC is not configured: the engine has no WebRtcServer listen address".into())
    })?;
    router
        .create_webrtc_transport(WebRtcTransportOptions::new_with_server(server))
        .await
        .map_err(|e| MediaError::Request(e.to_string()))
}
