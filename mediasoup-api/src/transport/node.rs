//! mediasoup Node's JSON shapes where the Rust crate writes its own:
//! tuples, ICE candidates, SCTP parameters, dumps and stats.

use mafalda_media::mediasoup::prelude::TransportGeneric;
use mafalda_media::mediasoup::types::data_structures::TransportTuple;
use mafalda_media::mediasoup::types::sctp_parameters::SctpParameters;
use mafalda_rope::Value;
use serde::Serialize;
use serde_json::{Map, json};

use super::meta::{Extras, NumSctpStreams};
use super::refused;
use crate::error::ApiError;
use crate::wire::{to_json, to_value};

/// A tuple in mediasoup Node's shape: `{localAddress, localIp (its old
/// name), localPort, remoteIp?, remotePort?, protocol}`.
pub(super) fn node_tuple(tuple: &TransportTuple) -> serde_json::Value {
    let mut node = json!({
        "localAddress": tuple.local_address(),
        "localIp": tuple.local_address(),
        "localPort": tuple.local_port(),
        "protocol": tuple.protocol(),
    });
    if let (Some(ip), Some(port)) = (tuple.remote_ip(), tuple.remote_port()) {
        node["remoteIp"] = json!(ip.to_string());
        node["remotePort"] = json!(port);
    }
    node
}

/// SCTP parameters in mediasoup Node's shape: `{port, OS, MIS, maxMessageSize}`.
pub(super) fn node_sctp(parameters: &SctpParameters, streams: NumSctpStreams) -> serde_json::Value {
    json!({
        "port": parameters.port,
        "OS": streams.os,
        "MIS": streams.mis,
        "maxMessageSize": parameters.max_message_size,
    })
}

/// Drops an object's `null` fields: Node's objects leave absent ones undefined.
pub(super) fn without_nulls(mut value: serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut value {
        map.retain(|_, field| !field.is_null());
    }
    value
}

/// Reshapes the tuples of a dump or stat in place.
fn reshape_tuples(map: &mut Map<String, serde_json::Value>) {
    for name in ["tuple", "rtcpTuple", "iceSelectedTuple"] {
        if let Some(field) = map.get_mut(name)
            && let Ok(tuple) = serde_json::from_value::<TransportTuple>(field.clone())
        {
            *field = node_tuple(&tuple);
        }
    }
}

/// A crate table (`[[key, value]]` or `{key: value}`) as Node's `[{key, value}]`.
fn key_values(table: &serde_json::Value) -> serde_json::Value {
    let number = |key: &str| key.parse::<u64>().map_or_else(|_| json!(key), |key| json!(key));
    let entries: Vec<serde_json::Value> = match table {
        serde_json::Value::Object(map) => {
            map.iter().map(|(key, value)| json!({ "key": number(key), "value": value })).collect()
        }
        serde_json::Value::Array(pairs) => pairs
            .iter()
            .filter_map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([key, value]) => Some(json!({ "key": key, "value": value })),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    serde_json::Value::Array(entries)
}

/// A transport dump in mediasoup Node's shape (`*TransportDump`).
pub(super) async fn node_dump<T>(transport: &T) -> Result<serde_json::Value, ApiError>
where
    T: TransportGeneric,
    T::Dump: Serialize,
{
    let dump = transport.dump().await.map_err(refused)?;
    let extras = Extras::of(transport);
    let mut dump = without_nulls(to_json(&dump));
    let Some(map) = dump.as_object_mut() else {
        return Ok(dump);
    };
    for name in ["mapSsrcConsumerId", "mapRtxSsrcConsumerId"] {
        if let Some(table) = map.get_mut(name) {
            *table = key_values(table);
        }
    }
    if let Some(serde_json::Value::Object(listener)) = map.get_mut("rtpListener") {
        for name in ["ssrcTable", "midTable", "ridTable"] {
            if let Some(table) = listener.get_mut(name) {
                *table = key_values(table);
            }
        }
    }
    if let Some(serde_json::Value::Object(listener)) = map.get_mut("sctpListener")
        && let Some(table) = listener.get_mut("streamIdTable")
    {
        *table = key_values(table);
    }
    if let Some(extensions) = map.get_mut("recvRtpHeaderExtensions") {
        *extensions = without_nulls(extensions.take());
    }
    if let Some(sctp) = map.get_mut("sctpParameters")
        && let Ok(parameters) = serde_json::from_value::<SctpParameters>(sctp.clone())
    {
        *sctp = node_sctp(&parameters, extras.streams);
    }
    if let Some(candidates) = map.get_mut("iceCandidates") {
        *candidates = node_ice_candidates(candidates);
    }
    if !map.contains_key("maxMessageSize")
        && let Some(size) = map.get("maxReceiveMessageSize").cloned()
    {
        map.insert("maxMessageSize".into(), size);
    }
    reshape_tuples(map);
    Ok(dump)
}

/// ICE candidates in mediasoup Node's shape (with `ip`, the old name of `address`).
pub(super) fn node_ice_candidates(candidates: &serde_json::Value) -> serde_json::Value {
    let mut candidates = candidates.clone();
    if let serde_json::Value::Array(list) = &mut candidates {
        for candidate in list {
            if let Some(map) = candidate.as_object_mut()
                && let Some(address) = map.get("address").cloned()
            {
                map.insert("ip".into(), address);
            }
        }
    }
    candidates
}

/// A transport's stats in mediasoup Node's shape (`*TransportStat`, with `type`).
pub(super) async fn node_stats<T>(transport: &T, kind: &str) -> Result<serde_json::Value, ApiError>
where
    T: TransportGeneric,
    T::Stat: Serialize,
{
    let stats = transport.get_stats().await.map_err(refused)?;
    let stats = stats
        .iter()
        .map(|stat| {
            let mut stat = without_nulls(to_json(stat));
            if let Some(map) = stat.as_object_mut() {
                map.insert("type".into(), json!(kind));
                reshape_tuples(map);
            }
            stat
        })
        .collect::<Vec<_>>();
    Ok(serde_json::Value::Array(stats))
}

/// Answers a creation: the data, as a ROPE value.
pub(super) fn answer(data: serde_json::Value) -> Result<Value, ApiError> {
    to_value(&without_nulls(data))
}
