//! mediasoup's Node option shapes that differ from the Rust crate's, read
//! from the wire and turned into the crate's types (a `TypeError` when wrong).

use std::net::IpAddr;

use mafalda_media::mediasoup::prelude::{ListenInfo, Protocol};
use mafalda_media::mediasoup::types::data_structures::SocketFlags;
use serde::Deserialize;

use crate::error::ApiError;

/// A port range as mediasoup's Node API writes it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortRange {
    pub(crate) min: u16,
    pub(crate) max: u16,
}

/// Socket flags as mediasoup's Node API writes them.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Flags {
    #[serde(default)]
    ipv6_only: bool,
    #[serde(default)]
    udp_reuse_port: bool,
}

/// mediasoup's `TransportListenInfo`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListenInfoWire {
    protocol: Option<String>,
    ip: String,
    announced_address: Option<String>,
    /// The name mediasoup used before `announcedAddress`.
    announced_ip: Option<String>,
    #[serde(default)]
    expose_internal_ip: bool,
    port: Option<u16>,
    port_range: Option<PortRange>,
    flags: Option<Flags>,
    send_buffer_size: Option<u32>,
    recv_buffer_size: Option<u32>,
}

impl ListenInfoWire {
    /// The crate's listen info; `protocol` is used when the wire names none.
    pub(crate) fn into_listen_info(self, default_protocol: Protocol) -> Result<ListenInfo, ApiError> {
        let protocol = match self.protocol.as_deref() {
            None => default_protocol,
            Some("udp") => Protocol::Udp,
            Some("tcp") => Protocol::Tcp,
            Some(other) => return Err(ApiError::invalid(format!("invalid listenInfo.protocol {other:?}"))),
        };
        let ip: IpAddr =
            self.ip.parse().map_err(|_| ApiError::invalid(format!("invalid listenInfo.ip {:?}", self.ip)))?;
        if let Some(range) = self.port_range
            && range.min > range.max
        {
            return Err(ApiError::invalid("listenInfo.portRange.min is greater than its max"));
        }
        let flags =
            self.flags.map(|flags| SocketFlags { ipv6_only: flags.ipv6_only, udp_reuse_port: flags.udp_reuse_port });
        Ok(ListenInfo {
            protocol,
            ip,
            announced_address: self.announced_address.or(self.announced_ip),
            expose_internal_ip: self.expose_internal_ip,
            port: self.port,
            port_range: self.port_range.map(|range| range.min..=range.max),
            flags,
            send_buffer_size: self.send_buffer_size,
            recv_buffer_size: self.recv_buffer_size,
        })
    }
}

/// A list of listen infos, at least one.
pub(crate) fn listen_infos(infos: Vec<ListenInfoWire>, default: Protocol) -> Result<Vec<ListenInfo>, ApiError> {
    if infos.is_empty() {
        return Err(ApiError::invalid("empty listenInfos array provided"));
    }
    infos.into_iter().map(|info| info.into_listen_info(default)).collect()
}

/// Checks that `appData`, when given, is an object (as mediasoup does).
pub(crate) fn check_app_data(app_data: Option<&serde_json::Value>) -> Result<(), ApiError> {
    match app_data {
        None | Some(serde_json::Value::Object(_)) => Ok(()),
        Some(_) => Err(ApiError::invalid("if given, appData must be an object")),
    }
}
