//! Where a stream comes from, in a form no other peer can forge.
//!
//! The origin signs a [`StreamRecord`] (stream id, its own peer id, a version
//! and what each track carries) with its libp2p key. Each node that pipes the
//! stream on signs a [`Handoff`] naming the node it pipes to, so a relay holds
//! the chain origin → … → itself ([`Provenance`]). A consumer verifies the
//! chain before it pipes ([`Provenance::verify`]): the hops and path it ranks
//! providers by are then facts signed by the nodes on the path, not claims of
//! the provider, and a peer that never received the stream cannot pose as its
//! origin or as a relay of it.
//!
//! Each signed item travels as the exact bytes that were signed ([`Signed`]),
//! so nodes never re-encode what another node signed.

use mafalda_media::mediasoup::prelude::{MediaKind, RtpCodecParameters, RtpParameters};
use mafalda_swarm::{Keypair, PeerId, PublicKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Longest chain of hand-offs (hops from the origin) a node accepts.
pub const MAX_HOPS: usize = 16;
/// Most tracks a stream may have.
pub const MAX_TRACKS: usize = 8;
/// Largest signed payload accepted.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024;
/// Largest encoded public key accepted (an ed25519 key is 36 bytes).
const MAX_PUBLIC_KEY_BYTES: usize = 1024;
/// Largest signature accepted (ed25519: 64 bytes).
const MAX_SIGNATURE_BYTES: usize = 1024;
/// Longest codec MIME type accepted.
const MAX_MIME_TYPE_LEN: usize = 64;

/// What a [`StreamRecord`] signature covers before its payload (domain
/// separation: a signature over one kind of item never verifies as another).
pub const RECORD_DOMAIN: &[u8] = b"mafalda/stream-record/1:";
/// What a [`Handoff`] signature covers before its payload.
pub const HANDOFF_DOMAIN: &[u8] = b"mafalda/stream-handoff/1:";

/// Why a stream's provenance was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// An item is larger than the limits allow.
    #[error("{what} too large ({len} bytes, at most {max})")]
    TooLarge {
        /// Which item.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The signer's public key cannot be decoded.
    #[error("unreadable public key")]
    BadKey,
    /// The signature does not verify with the key given.
    #[error("bad signature on the {0}")]
    BadSignature(&'static str),
    /// The signed bytes are not a well-formed item.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which item.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A signed item was signed by another key than the one it speaks for.
    #[error("{what} signed by {signer}, not by {claimed}")]
    WrongSigner {
        /// Which item.
        what: &'static str,
        /// Who signed it.
        signer: String,
        /// Whom it names.
        claimed: String,
    },
    /// The chain does not lead from the origin to the node that presented it.
    #[error("broken chain of hand-offs: {0}")]
    BrokenChain(String),
    /// The record is of another stream.
    #[error("record of stream {found}, not {expected}")]
    OtherStream {
        /// The stream asked for.
        expected: String,
        /// The stream the record names.
        found: String,
    },
    /// The tracks offered differ from the tracks the origin signed.
    #[error("tracks differ from the origin's record: {0}")]
    TracksDiffer(String),
}

/// Signed bytes: what was signed, the signer's public key (libp2p protobuf
/// encoding) and the signature over a domain prefix and the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed {
    /// The CBOR encoding of the item.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The signer's public key.
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    /// The signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Signed {
    /// Signs the CBOR encoding of `item`, prefixed with `domain`
    /// ([`RECORD_DOMAIN`] or [`HANDOFF_DOMAIN`]).
    pub fn sign<T: Serialize>(keypair: &Keypair, domain: &[u8], item: &T) -> Self {
        let mut payload = Vec::new();
        // Serialising our own plain structs into memory cannot fail.
        ciborium::into_writer(item, &mut payload).unwrap_or_default();
        let signature = keypair.sign(&[domain, &payload].concat()).unwrap_or_default();
        Self { payload, public_key: keypair.public().encode_protobuf(), signature }
    }

    /// Checks sizes and the signature (unless `checked` holds these very
    /// bytes, verified before); returns the signer and the item.
    fn open<T: DeserializeOwned>(
        &self,
        domain: &[u8],
        what: &'static str,
        checked: Option<&CheckedSignatures>,
    ) -> Result<(PeerId, T), RecordError> {
        let bounded = |len: usize, max: usize, what: &'static str| {
            if len > max { Err(RecordError::TooLarge { what, len, max }) } else { Ok(()) }
        };
        bounded(self.payload.len(), MAX_PAYLOAD_BYTES, what)?;
        bounded(self.public_key.len(), MAX_PUBLIC_KEY_BYTES, "public key")?;
        bounded(self.signature.len(), MAX_SIGNATURE_BYTES, "signature")?;
        let key = PublicKey::try_decode_protobuf(&self.public_key).map_err(|_| RecordError::BadKey)?;
        let fingerprint = checked.map(|_| self.fingerprint(domain));
        let known = checked.zip(fingerprint.as_deref()).is_some_and(|(checked, bytes)| checked.contains(bytes));
        if !known {
            if !key.verify(&[domain, &self.payload].concat(), &self.signature) {
                return Err(RecordError::BadSignature(what));
            }
            if let (Some(checked), Some(bytes)) = (checked, fingerprint) {
                checked.insert(bytes);
            }
        }
        let item = ciborium::from_reader(self.payload.as_slice())
            .map_err(|e| RecordError::Malformed { what, reason: e.to_string() })?;
        Ok((key.to_peer_id(), item))
    }
}

impl Signed {
    /// Every byte the signature's check depends on, each part prefixed with
    /// its length: equal fingerprints are the same check.
    fn fingerprint(&self, domain: &[u8]) -> Vec<u8> {
        let parts = [domain, &self.public_key, &self.signature, &self.payload];
        let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
        for part in parts {
            bytes.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend_from_slice(part);
        }
        bytes
    }
}

/// Most signatures [`CheckedSignatures`] remembers.
pub const MAX_CHECKED_SIGNATURES: usize = 256;

/// Signatures this node verified and found good, remembered byte for byte
/// (domain, key, signature and payload) so the same one met again is not
/// verified again: a stream record checked in a find is met again in the
/// pipe's offer a moment later, on the first packet's path. Only what
/// verified is remembered; the oldest goes first past
/// [`MAX_CHECKED_SIGNATURES`].
#[derive(Debug, Default)]
pub struct CheckedSignatures {
    remembered: std::sync::Mutex<Remembered>,
}

/// The fingerprints remembered, as a set and in the order they came.
#[derive(Debug, Default)]
struct Remembered {
    set: std::collections::HashSet<Vec<u8>>,
    order: std::collections::VecDeque<Vec<u8>>,
}

impl CheckedSignatures {
    fn contains(&self, fingerprint: &[u8]) -> bool {
        self.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).set.contains(fingerprint)
    }

    fn insert(&self, fingerprint: Vec<u8>) {
        let mut remembered = self.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Remembered { set, order } = &mut *remembered;
        if !set.insert(fingerprint.clone()) {
            return;
        }
        order.push_back(fingerprint);
        while order.len() > MAX_CHECKED_SIGNATURES {
            if let Some(oldest) = order.pop_front() {
                set.remove(&oldest);
            }
        }
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).order.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one track carries, as the origin signs it: enough to check that a
/// pipe offers the same media, and stable across hops (payload types and
/// SSRCs change at each pipe; these do not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// The media codec, e.g. `video/VP8`.
    pub mime_type: String,
    /// Its clock rate.
    pub clock_rate: u32,
    /// Audio channels, if given.
    pub channels: Option<u8>,
    /// Number of encodings (simulcast layers).
    pub encodings: u8,
}

impl RecordTrack {
    /// What `rtp_parameters` carries (its first codec is the media codec).
    pub fn of(kind: MediaKind, rtp_parameters: &RtpParameters) -> Result<Self, RecordError> {
        let codec = rtp_parameters
            .codecs
            .first()
            .ok_or_else(|| RecordError::Malformed { what: "track", reason: "no codec".into() })?;
        let encodings = u8::try_from(rtp_parameters.encodings.len()).unwrap_or(u8::MAX);
        Ok(Self {
            kind,
            mime_type: codec.mime_type().as_str().to_owned(),
            clock_rate: codec.clock_rate().get(),
            channels: match codec {
                RtpCodecParameters::Audio { channels, .. } => Some(channels.get()),
                RtpCodecParameters::Video { .. } => None,
            },
            encodings,
        })
    }
}

/// A stream as its origin signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRecord {
    /// The stream id.
    pub stream: String,
    /// The origin's peer id (must be the signer).
    pub origin: String,
    /// Raised by the origin whenever the record changes (a track added).
    pub version: u64,
    /// The tracks, in order.
    pub tracks: Vec<RecordTrack>,
}

/// One hop: `from` pipes version `version` of `stream` to `to`, `hops` hops
/// from the origin. Signed by `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handoff {
    /// The stream id.
    pub stream: String,
    /// The version of the origin's record it hands on.
    pub version: u64,
    /// The node that pipes (the signer).
    pub from: String,
    /// The node piped to.
    pub to: String,
    /// `to`'s hops from the origin.
    pub hops: u32,
}

/// The origin's record and the hand-offs down to the node that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// The origin's signed [`StreamRecord`].
    pub record: Signed,
    /// Signed [`Handoff`]s, origin first.
    pub handoffs: Vec<Signed>,
}

/// A hand-off to sign ([`Provenance::hand_off_to`]).
#[derive(Debug, Clone)]
pub struct UnsignedHandOff {
    held: Provenance,
    handoff: Handoff,
}

impl UnsignedHandOff {
    /// The provenance extended by the hand-off, signed with `keypair` (the
    /// holder's: a hand-off signed by anyone else does not verify).
    pub fn sign(self, keypair: &Keypair) -> Provenance {
        let Provenance { record, mut handoffs } = self.held;
        handoffs.push(Signed::sign(keypair, HANDOFF_DOMAIN, &self.handoff));
        Provenance { record, handoffs }
    }
}

/// A provenance that verified: who the origin is and the path to the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The origin's record.
    pub record: StreamRecord,
    /// The origin.
    pub origin: PeerId,
    /// From the origin to the holder, both included.
    pub path: Vec<PeerId>,
}

impl Verified {
    /// The holder's hops from the origin.
    pub fn hops(&self) -> u32 {
        u32::try_from(self.path.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }
}

impl Provenance {
    /// A new stream's provenance, signed by its origin.
    pub fn originate(keypair: &Keypair, stream: &str, version: u64, tracks: Vec<RecordTrack>) -> Self {
        let record = StreamRecord {
            stream: stream.to_owned(),
            origin: keypair.public().to_peer_id().to_string(),
            version,
            tracks,
        };
        Self { record: Signed::sign(keypair, RECORD_DOMAIN, &record), handoffs: Vec::new() }
    }

    /// Whether it names no hand-off: the origin's own (or, unverified, one
    /// that claims so).
    pub fn is_origins(&self) -> bool {
        self.handoffs.is_empty()
    }

    /// This provenance extended by a hand-off from the holder (`keypair`) to `to`.
    pub fn hand_off(&self, keypair: &Keypair, verified: &Verified, to: PeerId) -> Self {
        self.hand_off_to(keypair.public().to_peer_id(), verified, to).sign(keypair)
    }

    /// [`Provenance::hand_off`] from `holder`, not signed yet: what to sign
    /// is taken while the stream is at hand, the signing (the CPU of it) can
    /// wait until the worker is making the pipe.
    pub fn hand_off_to(&self, holder: PeerId, verified: &Verified, to: PeerId) -> UnsignedHandOff {
        let handoff = Handoff {
            stream: verified.record.stream.clone(),
            version: verified.record.version,
            from: holder.to_string(),
            to: to.to_string(),
            hops: verified.hops().saturating_add(1),
        };
        UnsignedHandOff { held: self.clone(), handoff }
    }

    /// Checks the origin's signature, that the record is of `stream`, and that
    /// every hand-off is signed by the node that held the stream before and
    /// leads on to `holder`.
    pub fn verify(&self, stream: &str, holder: PeerId) -> Result<Verified, RecordError> {
        self.verify_with(stream, holder, None)
    }

    /// [`Provenance::verify`], skipping the signatures `checked` remembers as
    /// verified and remembering those it verifies.
    pub fn verify_with(
        &self,
        stream: &str,
        holder: PeerId,
        checked: Option<&CheckedSignatures>,
    ) -> Result<Verified, RecordError> {
        if self.handoffs.len() > MAX_HOPS {
            let max = MAX_HOPS;
            return Err(RecordError::BrokenChain(format!("{} hand-offs, at most {max}", self.handoffs.len())));
        }
        let (signer, record): (PeerId, StreamRecord) = self.record.open(RECORD_DOMAIN, "stream record", checked)?;
        if record.stream != stream {
            return Err(RecordError::OtherStream { expected: stream.to_owned(), found: record.stream });
        }
        if record.origin != signer.to_string() {
            let claimed = record.origin.chars().take(64).collect();
            return Err(RecordError::WrongSigner { what: "stream record", signer: signer.to_string(), claimed });
        }
        if record.tracks.is_empty() || record.tracks.len() > MAX_TRACKS {
            let reason = format!("{} tracks (1 to {MAX_TRACKS})", record.tracks.len());
            return Err(RecordError::Malformed { what: "stream record", reason });
        }
        if record.tracks.iter().any(|t| t.mime_type.len() > MAX_MIME_TYPE_LEN) {
            return Err(RecordError::Malformed { what: "stream record", reason: "codec name too long".into() });
        }
        let mut path = vec![signer];
        for (index, signed) in self.handoffs.iter().enumerate() {
            let (signer, handoff): (PeerId, Handoff) = signed.open(HANDOFF_DOMAIN, "hand-off", checked)?;
            let previous = path[path.len() - 1];
            if signer != previous || handoff.from != previous.to_string() {
                return Err(RecordError::BrokenChain(format!("hand-off {index} is not from {previous}")));
            }
            if handoff.stream != record.stream || handoff.version != record.version {
                return Err(RecordError::BrokenChain(format!("hand-off {index} is of another stream or version")));
            }
            if usize::try_from(handoff.hops).ok() != Some(index + 1) {
                return Err(RecordError::BrokenChain(format!("hand-off {index} claims {} hops", handoff.hops)));
            }
            let to: PeerId =
                handoff.to.parse().map_err(|_| RecordError::BrokenChain(format!("hand-off {index} names no peer")))?;
            if path.contains(&to) {
                return Err(RecordError::BrokenChain(format!("hand-off {index} loops back to {to}")));
            }
            path.push(to);
        }
        if path[path.len() - 1] != holder {
            return Err(RecordError::BrokenChain(format!(
                "the chain ends at {}, not at {holder}",
                path[path.len() - 1]
            )));
        }
        Ok(Verified { origin: path[0], record, path })
    }
}

/// Checks that the tracks a pipe offers are the tracks the origin signed.
pub fn check_tracks<'a>(
    record: &StreamRecord,
    offered: impl ExactSizeIterator<Item = (MediaKind, &'a RtpParameters)>,
) -> Result<(), RecordError> {
    if offered.len() != record.tracks.len() {
        return Err(RecordError::TracksDiffer(format!(
            "{} tracks offered, {} signed",
            offered.len(),
            record.tracks.len()
        )));
    }
    for (index, ((kind, parameters), signed)) in offered.zip(&record.tracks).enumerate() {
        let track = RecordTrack::of(kind, parameters)?;
        let same = track.kind == signed.kind
            && track.mime_type.eq_ignore_ascii_case(&signed.mime_type)
            && track.clock_rate == signed.clock_rate
            && track.channels == signed.channels
            && track.encodings == signed.encodings;
        if !same {
            return Err(RecordError::TracksDiffer(format!("track {index}: {track:?} offered, {signed:?} signed")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track() -> RecordTrack {
        RecordTrack {
            kind: MediaKind::Video,
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            channels: None,
            encodings: 1,
        }
    }

    #[test]
    fn a_chain_verifies_from_origin_to_holder() {
        let (origin, relay, consumer) =
            (Keypair::generate_ed25519(), Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let at_origin = Provenance::originate(&origin, "cam", 7, vec![track()]);
        let verified = at_origin.verify("cam", origin.public().to_peer_id()).expect("test value");
        assert_eq!(verified.hops(), 0);
        let at_relay = at_origin.hand_off(&origin, &verified, relay.public().to_peer_id());
        let verified = at_relay.verify("cam", relay.public().to_peer_id()).expect("test value");
        assert_eq!(verified.hops(), 1);
        let at_consumer = at_relay.hand_off(&relay, &verified, consumer.public().to_peer_id());
        let verified = at_consumer.verify("cam", consumer.public().to_peer_id()).expect("test value");
        assert_eq!(verified.origin, origin.public().to_peer_id());
        assert_eq!(verified.path.len(), 3);
        // Presented by anyone else than the node it leads to, it fails.
        assert!(matches!(at_consumer.verify("cam", relay.public().to_peer_id()), Err(RecordError::BrokenChain(_))));
        assert!(matches!(
            at_consumer.verify("other", consumer.public().to_peer_id()),
            Err(RecordError::OtherStream { .. })
        ));
    }

    #[test]
    fn a_signature_remembered_as_checked_covers_those_exact_bytes_only() {
        let (origin, relay) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let checked = CheckedSignatures::default();
        let at_origin = Provenance::originate(&origin, "cam", 7, vec![track()]);
        let verified = at_origin.verify_with("cam", origin.public().to_peer_id(), Some(&checked)).expect("verifies");
        assert_eq!(checked.len(), 1, "the record's signature is remembered");
        let at_relay = at_origin.hand_off(&origin, &verified, relay.public().to_peer_id());
        at_relay.verify_with("cam", relay.public().to_peer_id(), Some(&checked)).expect("verifies");
        assert_eq!(checked.len(), 2, "the record was not checked again; the hand-off was");
        // Same signature, another payload (or key): checked, and refused.
        let mut tampered = at_relay.clone();
        tampered.record.payload[3] ^= 1;
        let refused = tampered.verify_with("cam", relay.public().to_peer_id(), Some(&checked));
        assert!(matches!(refused, Err(RecordError::BadSignature(_))), "{refused:?}");
        let mut other_key = at_relay.clone();
        other_key.record.public_key = relay.public().encode_protobuf();
        let refused = other_key.verify_with("cam", relay.public().to_peer_id(), Some(&checked));
        assert!(matches!(refused, Err(RecordError::BadSignature(_))), "{refused:?}");
        assert_eq!(checked.len(), 2, "nothing that failed is remembered");
        for version in 0..MAX_CHECKED_SIGNATURES as u64 + 10 {
            let record = Provenance::originate(&origin, "cam", version, vec![track()]);
            record.verify_with("cam", origin.public().to_peer_id(), Some(&checked)).expect("verifies");
        }
        assert_eq!(checked.len(), MAX_CHECKED_SIGNATURES, "bounded");
    }

    #[test]
    fn forgeries_are_refused() {
        let (origin, rogue, me) =
            (Keypair::generate_ed25519(), Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let real = Provenance::originate(&origin, "cam", 1, vec![track()]);
        // A record naming the real origin but signed by the rogue.
        let mut record = StreamRecord {
            stream: "cam".into(),
            origin: origin.public().to_peer_id().to_string(),
            version: 2,
            tracks: vec![track()],
        };
        let forged = Provenance { record: Signed::sign(&rogue, RECORD_DOMAIN, &record), handoffs: vec![] };
        assert!(matches!(forged.verify("cam", rogue.public().to_peer_id()), Err(RecordError::WrongSigner { .. })));
        // The real record with the signature of another payload.
        record.version = 1;
        let mut tampered = real.clone();
        tampered.record.payload[3] ^= 1;
        assert!(matches!(tampered.verify("cam", origin.public().to_peer_id()), Err(RecordError::BadSignature(_))));
        // The real record replayed by the rogue, with a hand-off it signed itself.
        let verified = real.verify("cam", origin.public().to_peer_id()).expect("test value");
        let replayed = real.hand_off(&rogue, &verified, me.public().to_peer_id());
        assert!(matches!(replayed.verify("cam", me.public().to_peer_id()), Err(RecordError::BrokenChain(_))));
        // A record signed as a hand-off does not verify as a record (domains).
        let cross = Provenance {
            record: real.hand_off(&origin, &verified, me.public().to_peer_id()).handoffs[0].clone(),
            handoffs: vec![],
        };
        assert!(cross.verify("cam", origin.public().to_peer_id()).is_err());
        // Oversized and garbage items.
        let mut huge = real.clone();
        huge.record.payload = vec![0; MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(huge.verify("cam", origin.public().to_peer_id()), Err(RecordError::TooLarge { .. })));
        let mut garbage = real.clone();
        garbage.record.public_key = vec![1, 2, 3];
        assert_eq!(garbage.verify("cam", origin.public().to_peer_id()), Err(RecordError::BadKey));
    }

    #[test]
    fn long_or_looping_chains_are_refused() {
        let keys: Vec<Keypair> = (0..=MAX_HOPS + 1).map(|_| Keypair::generate_ed25519()).collect();
        let mut provenance = Provenance::originate(&keys[0], "cam", 1, vec![track()]);
        for i in 0..=MAX_HOPS {
            let holder = keys[i].public().to_peer_id();
            let verified = Verified {
                record: provenance.verify("cam", holder).map(|v| v.record).unwrap_or_else(|_| StreamRecord {
                    stream: "cam".into(),
                    origin: keys[0].public().to_peer_id().to_string(),
                    version: 1,
                    tracks: vec![track()],
                }),
                origin: keys[0].public().to_peer_id(),
                path: vec![holder; i + 1],
            };
            provenance = provenance.hand_off(&keys[i], &verified, keys[i + 1].public().to_peer_id());
        }
        let last = keys[MAX_HOPS + 1].public().to_peer_id();
        assert!(matches!(provenance.verify("cam", last), Err(RecordError::BrokenChain(_))));
        // A loop: origin → a → origin.
        let (origin, a) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let start = Provenance::originate(&origin, "cam", 1, vec![track()]);
        let v0 = start.verify("cam", origin.public().to_peer_id()).expect("test value");
        let at_a = start.hand_off(&origin, &v0, a.public().to_peer_id());
        let v1 = at_a.verify("cam", a.public().to_peer_id()).expect("test value");
        let back = at_a.hand_off(&a, &v1, origin.public().to_peer_id());
        assert!(matches!(back.verify("cam", origin.public().to_peer_id()), Err(RecordError::BrokenChain(_))));
    }
}
