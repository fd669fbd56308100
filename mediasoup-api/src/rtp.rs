//! mediasoup's Node shapes of RTP parameters, capabilities, dumps and stats
//! against the Rust crate's, and the crate's errors as mediasoup's Node
//! error classes.
//!
//! The Node API is looser than the crate's types: optional lists and
//! defaults (`encodings`, `headerExtensions`, `rtcp`, `channels`, …), header
//! extensions and codecs the crate does not know, codec parameter values
//! that are neither strings nor 32-bit unsigned integers (`foo: 222.222`).
//! Incoming values are normalised before the crate reads them; codec
//! parameter values the crate cannot hold travel through it as strings
//! tagged with [`KEPT`] and are turned back into their JSON value in every
//! answer ([`restore`]).

use mafalda_media::mediasoup::ortc::{ConsumerRtpParametersError, RtpCapabilitiesError, RtpParametersMappingError};
use mafalda_media::mediasoup::prelude::{ConsumeDataError, ConsumeError, ProduceDataError, ProduceError};
use mafalda_media::mediasoup::prelude::{RtpCapabilities, RtpParameters};
use mafalda_media::mediasoup::types::rtp_parameters::{MimeType, RtpHeaderExtensionUri};
use mafalda_media::mediasoup::worker::RequestError;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Prefix of a codec parameter value the crate cannot hold, kept as its JSON text.
const KEPT: &str = "\u{1e}json:";

/// Reads mediasoup Node `RtpParameters` (a `TypeError` when malformed, an
/// `UnsupportedError` for a codec mediasoup does not know).
pub(crate) fn rtp_parameters(value: &Value) -> Result<RtpParameters, ApiError> {
    let Value::Object(object) = value else {
        return Err(ApiError::invalid("rtpParameters must be an object"));
    };
    let mut object = object.clone();
    let Some(Value::Array(codecs)) = object.get_mut("codecs") else {
        return Err(ApiError::invalid("missing rtpParameters.codecs"));
    };
    for codec in codecs.iter_mut() {
        codec_in(codec, None)?;
    }
    let extensions = match object.remove("headerExtensions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(extensions)) => extensions,
        Some(_) => return Err(ApiError::invalid("rtpParameters.headerExtensions must be an array")),
    };
    let extensions: Vec<Value> = extensions
        .into_iter()
        .filter(known_uri)
        .map(|mut extension| {
            if let Value::Object(fields) = &mut extension {
                fields.entry("encrypt").or_insert(json!(false));
                fields.remove("parameters");
            }
            extension
        })
        .collect();
    object.insert("headerExtensions".into(), Value::Array(extensions));
    match object.get("encodings") {
        None | Some(Value::Null) => {
            object.insert("encodings".into(), json!([]));
        }
        Some(_) => {}
    }
    let mut rtcp = match object.remove("rtcp") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(rtcp)) => rtcp,
        Some(_) => return Err(ApiError::invalid("rtpParameters.rtcp must be an object")),
    };
    rtcp.entry("reducedSize").or_insert(json!(true));
    object.insert("rtcp".into(), Value::Object(rtcp));
    if object.get("mid").is_some_and(Value::is_null) {
        object.remove("mid");
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| ApiError::invalid(format!("invalid rtpParameters: {e}")))
}

/// Reads mediasoup Node `RtpCapabilities` (codecs and header extensions the
/// crate does not know are left out, as mediasoup would never match them).
pub(crate) fn rtp_capabilities(value: &Value) -> Result<RtpCapabilities, ApiError> {
    let Value::Object(object) = value else {
        return Err(ApiError::invalid("rtpCapabilities must be an object"));
    };
    let codecs = match object.get("codecs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(codecs)) => codecs.clone(),
        Some(_) => return Err(ApiError::invalid("rtpCapabilities.codecs must be an array")),
    };
    let mut kept = Vec::new();
    for mut codec in codecs {
        let kind = codec.get("kind").and_then(Value::as_str).map(str::to_owned);
        match kind.as_deref() {
            Some("audio" | "video") => {}
            _ => return Err(ApiError::invalid("invalid codec.kind in rtpCapabilities")),
        }
        match codec_in(&mut codec, kind.as_deref()) {
            Ok(()) => kept.push(codec),
            Err(ApiError::Unsupported(_)) => {}
            Err(error) => return Err(error),
        }
    }
    let extensions = match object.get("headerExtensions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(extensions)) => extensions.clone(),
        Some(_) => return Err(ApiError::invalid("rtpCapabilities.headerExtensions must be an array")),
    };
    let extensions: Vec<Value> = extensions
        .into_iter()
        .filter(|extension| {
            known_uri(extension) && matches!(extension.get("kind").and_then(Value::as_str), Some("audio" | "video"))
        })
        .map(|mut extension| {
            if let Value::Object(fields) = &mut extension {
                fields.entry("preferredEncrypt").or_insert(json!(false));
                fields.insert("direction".into(), json!("sendrecv"));
            }
            extension
        })
        .collect();
    serde_json::from_value(json!({ "codecs": kept, "headerExtensions": extensions }))
        .map_err(|e| ApiError::invalid(format!("invalid rtpCapabilities: {e}")))
}

/// Whether a header extension's URI is one mediasoup knows.
fn known_uri(extension: &Value) -> bool {
    extension.get("uri").and_then(Value::as_str).is_some_and(|uri| uri.parse::<RtpHeaderExtensionUri>().is_ok())
}

/// Normalises one codec (of parameters, or of capabilities when `kind` is given).
fn codec_in(codec: &mut Value, kind: Option<&str>) -> Result<(), ApiError> {
    let Value::Object(fields) = codec else {
        return Err(ApiError::invalid("a codec must be an object"));
    };
    let mime_type = fields
        .get("mimeType")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("missing codec.mimeType"))?
        .to_owned();
    let Some((family, _)) = mime_type.split_once('/') else {
        return Err(ApiError::invalid(format!("invalid codec.mimeType {mime_type:?}")));
    };
    if !matches!(family.to_ascii_lowercase().as_str(), "audio" | "video") {
        return Err(ApiError::invalid(format!("invalid codec.mimeType {mime_type:?}")));
    }
    if mime_type.parse::<MimeType>().is_err() {
        return Err(ApiError::Unsupported(format!("media codec not supported [mimeType:{mime_type}]")));
    }
    if kind.is_some_and(|kind| !family.eq_ignore_ascii_case(kind)) {
        return Err(ApiError::invalid(format!("codec.kind does not match its mimeType {mime_type:?}")));
    }
    if family.eq_ignore_ascii_case("audio") {
        if fields.get("channels").is_none_or(Value::is_null) {
            fields.insert("channels".into(), json!(1));
        }
    } else {
        fields.remove("channels");
    }
    match fields.get_mut("parameters") {
        None => {}
        Some(Value::Null) => {
            fields.remove("parameters");
        }
        Some(Value::Object(parameters)) => {
            for value in parameters.values_mut() {
                let fits = value.is_string() || value.as_u64().is_some_and(|n| u32::try_from(n).is_ok());
                if !fits {
                    *value = Value::String(format!("{KEPT}{value}"));
                }
            }
        }
        Some(_) => return Err(ApiError::invalid("codec.parameters must be an object")),
    }
    if fields.get("rtcpFeedback").is_some_and(Value::is_null) {
        fields.remove("rtcpFeedback");
    }
    Ok(())
}

/// Turns the codec parameter values kept as text back into their JSON values, everywhere in `value`.
pub(crate) fn restore(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Some(json) = text.strip_prefix(KEPT)
                && let Ok(original) = serde_json::from_str::<Value>(json)
            {
                *value = original;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(restore),
        Value::Object(fields) => fields.values_mut().for_each(restore),
        _ => {}
    }
}

/// Drops the fields whose value is `null`, everywhere in `value` (Node leaves them undefined).
pub(crate) fn drop_nulls(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        Value::Object(fields) => {
            fields.retain(|_, field| !field.is_null());
            fields.values_mut().for_each(drop_nulls);
        }
        _ => {}
    }
}

/// Node's shape of RTP parameters in an answer: header extensions carry
/// `parameters: {}`; in a dump (`dump` true) an RTCP feedback without
/// parameter has none (as the worker's dump reads in Node).
pub(crate) fn rtp_parameters_out(parameters: &mut Value, dump: bool) {
    if let Some(Value::Array(extensions)) = parameters.get_mut("headerExtensions") {
        for extension in extensions {
            if let Value::Object(fields) = extension {
                fields.entry("parameters").or_insert(json!({}));
            }
        }
    }
    if dump && let Some(Value::Array(codecs)) = parameters.get_mut("codecs") {
        for codec in codecs {
            if let Some(Value::Array(feedback)) = codec.get_mut("rtcpFeedback") {
                for entry in feedback {
                    if let Value::Object(fields) = entry
                        && fields.get("parameter").and_then(Value::as_str) == Some("")
                    {
                        fields.remove("parameter");
                    }
                }
            }
        }
    }
    restore(parameters);
}

/// A dump in Node's shape: no `null` fields, RTP parameters as Node writes them.
pub(crate) fn dump_out(mut dump: Value) -> Value {
    drop_nulls(&mut dump);
    for key in ["rtpParameters", "consumableRtpParameters"] {
        if let Some(parameters) = dump.get_mut(key) {
            rtp_parameters_out(parameters, true);
        }
    }
    restore(&mut dump);
    dump
}

/// A stats entry in Node's shape: its `type`, no `null` fields, and
/// `bitrateByLayer` as an object (layer → bitrate).
pub(crate) fn stat_out(mut stat: Value, kind: &str) -> Value {
    drop_nulls(&mut stat);
    if let Value::Object(fields) = &mut stat {
        fields.insert("type".into(), json!(kind));
        if let Some(Value::Array(layers)) = fields.get("bitrateByLayer") {
            let by_layer: Map<String, Value> = layers
                .iter()
                .filter_map(|entry| Some((entry.get("layer")?.as_str()?.to_owned(), entry.get("bitrate")?.clone())))
                .collect();
            fields.insert("bitrateByLayer".into(), Value::Object(by_layer));
        }
    }
    stat
}

/// Reads `types` of `enableTraceEvent`: absent is none; it must be an array
/// of strings (a `TypeError` otherwise); names mediasoup does not know are
/// ignored, as mediasoup does.
pub(crate) fn trace_types<T: serde::de::DeserializeOwned>(types: Option<&Value>) -> Result<Vec<T>, ApiError> {
    let types = match types {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(types)) => types,
        Some(_) => return Err(ApiError::invalid("types must be an array")),
    };
    let mut known = Vec::new();
    for name in types {
        if !name.is_string() {
            return Err(ApiError::invalid("every type must be a string"));
        }
        if let Ok(kind) = serde_json::from_value::<T>(name.clone()) {
            known.push(kind);
        }
    }
    Ok(known)
}

/// The worker's refusals the crate reports by their text only: those the
/// worker throws as `TypeError` (the rest are mediasoup's plain `Error`).
const WORKER_TYPE_ERRORS: &[&str] = &[
    "invalid RTP parameters",
    "rtpParameters.",
    "wrong entry in rtpMapping",
    "RTP extension id cannot be 0",
    "empty codecs",
    "empty encodings",
    "duplicated payloadType",
    "apt in RTX codec",
    "cannot use both simulcast",
    "invalid codecPayloadType",
    "no media codecs found",
    "unknown codecPayloadType",
    "cname too long",
    "empty cname",
    "missing cname",
    "unknown codec MIME",
    "wrong codec MIME",
    "missing apt parameter",
    "invalid scalabilityMode",
    "invalid id 0",
    "empty consumableRtpEncodings",
    "empty rtpParameters.encodings",
    "encoding.spatialLayers",
    "invalid consumableRtpEncodings",
    "invalid consumer type",
    "invalid encoding in rtpParameters",
    "invalid number of layers",
    "number of rtpParameters.encodings",
    "wrong encoding in consumableRtpEncodings",
    "wrong priority",
    "given message exceeds maxMessageSize",
    "invalid DataConsumer type",
    "missing sctpStreamParameters",
    "cannot create a DataProducer",
    "cannot create a DataConsumer",
    "streamId must not be greater",
    "cannot provide both maxPacketLifeTime",
    "cannot be ordered with",
    "not an audio Producer",
    "invalid threshold value",
];

/// A failed request to the worker as mediasoup's Node class: a closed
/// channel is a closed object, the worker's own refusals keep their class.
pub(crate) fn request_error(error: &RequestError, what: &str) -> ApiError {
    match error {
        RequestError::ChannelClosed => ApiError::closed(what),
        RequestError::Response { reason } => {
            if WORKER_TYPE_ERRORS.iter().any(|prefix| reason.starts_with(prefix))
                || reason.contains(" codec not supported for ")
            {
                ApiError::Type(reason.clone())
            } else {
                ApiError::Mediasoup(reason.clone())
            }
        }
        other => ApiError::Mediasoup(other.to_string()),
    }
}

/// Invalid capabilities, as mediasoup's Node class.
fn capabilities_error(error: &RtpCapabilitiesError) -> ApiError {
    match error {
        RtpCapabilitiesError::UnsupportedCodec { .. } => ApiError::Unsupported(error.to_string()),
        _ => ApiError::Type(error.to_string()),
    }
}

/// `produce` refused, as mediasoup's Node class.
pub(crate) fn produce_error(error: &ProduceError) -> ApiError {
    match error {
        ProduceError::AlreadyExists(_) | ProduceError::IncorrectRtpParameters(_) => ApiError::Type(error.to_string()),
        ProduceError::FailedRtpParametersMapping(mapping) => match mapping {
            RtpParametersMappingError::MissingMediaCodecForRtx { .. } => ApiError::Type(error.to_string()),
            _ => ApiError::Unsupported(error.to_string()),
        },
        ProduceError::Request(request) => request_error(request, "Transport"),
    }
}

/// `consume` refused, as mediasoup's Node class.
pub(crate) fn consume_error(error: &ConsumeError) -> ApiError {
    match error {
        ConsumeError::ProducerNotFound(_) => ApiError::Type(error.to_string()),
        ConsumeError::FailedRtpCapabilitiesValidation(capabilities) => capabilities_error(capabilities),
        ConsumeError::BadConsumerRtpParameters(parameters) => match parameters {
            ConsumerRtpParametersError::NoCompatibleMediaCodecs => ApiError::Unsupported(error.to_string()),
            ConsumerRtpParametersError::InvalidCapabilities(capabilities) => capabilities_error(capabilities),
        },
        ConsumeError::Request(request) => request_error(request, "Transport"),
    }
}

/// `produceData` refused, as mediasoup's Node class.
pub(crate) fn produce_data_error(error: &ProduceDataError) -> ApiError {
    match error {
        ProduceDataError::AlreadyExists(_) | ProduceDataError::SctpStreamParametersRequired => {
            ApiError::Type(error.to_string())
        }
        ProduceDataError::Request(request) => request_error(request, "Transport"),
    }
}

/// `consumeData` refused, as mediasoup's Node class.
pub(crate) fn consume_data_error(error: &ConsumeDataError) -> ApiError {
    match error {
        ConsumeDataError::DataProducerNotFound(_) => ApiError::Type(error.to_string()),
        ConsumeDataError::NoSctpStreamId => ApiError::Mediasoup(error.to_string()),
        ConsumeDataError::Request(request) => request_error(request, "Transport"),
    }
}
