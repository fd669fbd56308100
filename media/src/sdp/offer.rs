//! Reading a client's SDP offer (RFC 8866, the WebRTC subset of RFC 8829):
//! the session's ICE and DTLS attributes and, per media section, what a
//! mediasoup transport needs — codecs, RTCP feedback, header extensions,
//! SSRCs, RIDs and simulcast. Anything else is skipped.
//!
//! The text comes from the network: it is bounded (bytes, lines, sections and
//! per-section lists) and every number is range-checked; a line that breaks
//! the grammar is a [`SdpError::Malformed`] naming its number.

use super::SdpError;

/// Largest offer accepted, in bytes.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Most media sections in an offer.
pub const MAX_SECTIONS: usize = 16;
/// Most lines in an offer.
pub const MAX_LINES: usize = 4096;
/// Most entries of one list (codecs, feedback, extensions, SSRCs) in a section.
const MAX_PER_SECTION: usize = 128;
/// Most RIDs (simulcast layers) in a section.
pub const MAX_RIDS: usize = 8;

/// A DTLS certificate fingerprint as written (`sha-256 AB:CD:…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function, lower case (`sha-256`).
    pub algorithm: String,
    /// Colon-separated hex bytes.
    pub value: String,
}

/// The DTLS role an endpoint offers (RFC 4145 `a=setup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Will be the DTLS client.
    Active,
    /// Will be the DTLS server.
    Passive,
    /// Either; the answerer chooses.
    ActPass,
}

/// Which way media flows, from the offerer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways (the default).
    #[default]
    SendRecv,
    /// The offerer sends.
    SendOnly,
    /// The offerer receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// Whether the offerer sends media in this section.
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the offerer receives media in this section.
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }
}

/// A codec of a media section (`a=rtpmap` with its `a=fmtp` and `a=rtcp-fb`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCodec {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name as written (`VP8`, `opus`, `rtx`).
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels, when given.
    pub channels: Option<u8>,
    /// Format parameters (`a=fmtp`), in order.
    pub parameters: Vec<(String, String)>,
    /// RTCP feedback (`a=rtcp-fb`): type and parameter (may be empty).
    pub feedback: Vec<(String, String)>,
}

impl OfferedCodec {
    /// A format parameter's value.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// Whether this is a retransmission format (`rtx`).
    pub fn is_rtx(&self) -> bool {
        self.name.eq_ignore_ascii_case("rtx")
    }
}

/// A simulcast stream the offerer sends (`a=simulcast:send`): its RID and
/// whether it starts paused (`~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastStream {
    /// The RID.
    pub rid: String,
    /// Written with `~`.
    pub paused: bool,
}

/// One `m=` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaSection {
    /// `audio`, `video`, `application`, …
    pub kind: String,
    /// The port (0: the offerer rejects or bundles it away).
    pub port: u16,
    /// Transport protocol (`UDP/TLS/RTP/SAVPF`).
    pub protocol: String,
    /// Formats of the `m=` line (payload types for RTP), as written.
    pub formats: Vec<String>,
    /// `a=mid`.
    pub mid: Option<String>,
    /// Direction attribute.
    pub direction: Direction,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// `a=rtcp-rsize`.
    pub rtcp_rsize: bool,
    /// Codecs in the order of the `m=` line (formats without `a=rtpmap` skipped).
    pub codecs: Vec<OfferedCodec>,
    /// `a=extmap`: id and URI.
    pub extensions: Vec<(u16, String)>,
    /// SSRCs in order of appearance, with their `cname` if given.
    pub ssrcs: Vec<(u32, Option<String>)>,
    /// `a=ssrc-group`: semantics (`FID`, `SIM`) and SSRCs.
    pub ssrc_groups: Vec<(String, Vec<u32>)>,
    /// RIDs the offerer sends (`a=rid:X send`).
    pub send_rids: Vec<String>,
    /// RIDs the offerer receives (`a=rid:X recv`).
    pub recv_rids: Vec<String>,
    /// `a=simulcast:send`: the first alternative of each stream.
    pub simulcast_send: Vec<SimulcastStream>,
    /// Media-level `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// Media-level `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// Media-level fingerprints.
    pub fingerprints: Vec<Fingerprint>,
    /// Media-level `a=setup`.
    pub setup: Option<Setup>,
    /// `a=fmtp` and `a=rtcp-fb` lines, applied to the codecs once the whole
    /// section is read (Firefox writes them before its `a=rtpmap` lines).
    deferred: Vec<Deferred>,
}

/// A codec attribute read before the codecs it names may be known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Deferred {
    /// `a=fmtp:PT ...`.
    Parameters(u8, Vec<(String, String)>),
    /// `a=rtcp-fb:PT|* TYPE [PARAMETER]` (`None`: every codec), with its line.
    Feedback(Option<u8>, (String, String), usize),
}

impl MediaSection {
    /// The codec with payload type `pt`.
    pub fn codec(&self, pt: u8) -> Option<&OfferedCodec> {
        self.codecs.iter().find(|c| c.payload_type == pt)
    }
}

/// A parsed offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// Session-level `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// Session-level `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// Session-level fingerprints.
    pub fingerprints: Vec<Fingerprint>,
    /// Session-level `a=setup`.
    pub setup: Option<Setup>,
    /// The mids of the first `a=group:BUNDLE`.
    pub bundle: Vec<String>,
    /// Whether `a=extmap-allow-mixed` was given.
    pub extmap_allow_mixed: bool,
    /// The media sections in order.
    pub sections: Vec<MediaSection>,
}

impl Offer {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge { max: MAX_SDP_BYTES });
        }
        let mut offer = Self::default();
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).enumerate().peekable();
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(malformed(1, "an SDP starts with v=0")),
        }
        for (index, line) in lines {
            let number = index + 1;
            if line.is_empty() {
                continue;
            }
            if number > MAX_LINES {
                return Err(SdpError::TooManyLines { max: MAX_LINES });
            }
            let (kind, value) = line
                .split_at_checked(2)
                .filter(|(k, _)| k.ends_with('='))
                .ok_or_else(|| malformed(number, "a line is TYPE=VALUE with a one-letter type"))?;
            match kind {
                "m=" => {
                    if offer.sections.len() == MAX_SECTIONS {
                        return Err(SdpError::TooManySections { max: MAX_SECTIONS });
                    }
                    offer.sections.push(media_line(number, value)?);
                }
                "a=" => {
                    let (name, rest) = value.split_once(':').unwrap_or((value, ""));
                    match offer.sections.last_mut() {
                        Some(section) => section_attribute(section, number, name, rest)?,
                        None => session_attribute(&mut offer, number, name, rest)?,
                    }
                }
                _ => {}
            }
        }
        for section in &mut offer.sections {
            for deferred in std::mem::take(&mut section.deferred) {
                match deferred {
                    Deferred::Parameters(pt, parameters) => {
                        if let Some(codec) = section.codecs.iter_mut().find(|c| c.payload_type == pt) {
                            codec.parameters = parameters;
                        }
                    }
                    Deferred::Feedback(pt, feedback, number) => {
                        for codec in section.codecs.iter_mut().filter(|c| pt.is_none_or(|pt| c.payload_type == pt)) {
                            push_bounded(number, &mut codec.feedback, feedback.clone())?;
                        }
                    }
                }
            }
            // Codecs in the m= line's order, rtpmap-less (static) formats left out.
            let order: Vec<u8> = section.formats.iter().filter_map(|f| f.parse().ok()).collect();
            section.codecs.retain(|c| order.contains(&c.payload_type));
            section.codecs.sort_by_key(|c| order.iter().position(|pt| *pt == c.payload_type));
        }
        Ok(offer)
    }

    /// The ICE credentials and DTLS attributes that apply to `section`
    /// (media level first, then session level).
    pub fn transport_of<'a>(
        &'a self,
        section: &'a MediaSection,
    ) -> (Option<&'a str>, &'a [Fingerprint], Option<Setup>) {
        let fingerprints = if section.fingerprints.is_empty() { &self.fingerprints } else { &section.fingerprints };
        (section.ice_ufrag.as_deref().or(self.ice_ufrag.as_deref()), fingerprints, section.setup.or(self.setup))
    }
}

fn malformed(line: usize, reason: &str) -> SdpError {
    SdpError::Malformed { line, reason: reason.to_owned() }
}

fn media_line(number: usize, value: &str) -> Result<MediaSection, SdpError> {
    let mut parts = value.split(' ').filter(|p| !p.is_empty());
    let (Some(kind), Some(port), Some(protocol)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(number, "m= needs MEDIA PORT PROTO FORMAT..."));
    };
    let port = port.split('/').next().unwrap_or_default();
    let port = port.parse().map_err(|_| malformed(number, "the m= port is not a number 0-65535"))?;
    let formats: Vec<String> = parts.map(str::to_owned).collect();
    if formats.is_empty() || formats.len() > MAX_PER_SECTION {
        return Err(malformed(number, "m= needs between 1 and 128 formats"));
    }
    Ok(MediaSection {
        kind: kind.to_ascii_lowercase(),
        port,
        protocol: protocol.to_owned(),
        formats,
        ..MediaSection::default()
    })
}

fn session_attribute(offer: &mut Offer, number: usize, name: &str, rest: &str) -> Result<(), SdpError> {
    match name {
        "ice-ufrag" => offer.ice_ufrag = Some(ice_credential(number, rest)?),
        "ice-pwd" => offer.ice_pwd = Some(ice_password(number, rest)?),
        "fingerprint" => push_bounded(number, &mut offer.fingerprints, fingerprint(number, rest)?)?,
        "setup" => offer.setup = Some(setup(number, rest)?),
        "extmap-allow-mixed" => offer.extmap_allow_mixed = true,
        "group" => {
            let mut parts = rest.split(' ').filter(|p| !p.is_empty());
            if parts.next() == Some("BUNDLE") && offer.bundle.is_empty() {
                offer.bundle = parts.take(MAX_SECTIONS).map(str::to_owned).collect();
            }
        }
        _ => {}
    }
    Ok(())
}

fn section_attribute(section: &mut MediaSection, number: usize, name: &str, rest: &str) -> Result<(), SdpError> {
    match name {
        "mid" => {
            if rest.is_empty() || rest.len() > 32 || !rest.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(malformed(number, "a=mid must be 1-32 visible ASCII characters"));
            }
            section.mid = Some(rest.to_owned());
        }
        "sendrecv" => section.direction = Direction::SendRecv,
        "sendonly" => section.direction = Direction::SendOnly,
        "recvonly" => section.direction = Direction::RecvOnly,
        "inactive" => section.direction = Direction::Inactive,
        "rtcp-mux" => section.rtcp_mux = true,
        "rtcp-rsize" => section.rtcp_rsize = true,
        "ice-ufrag" => section.ice_ufrag = Some(ice_credential(number, rest)?),
        "ice-pwd" => section.ice_pwd = Some(ice_password(number, rest)?),
        "fingerprint" => push_bounded(number, &mut section.fingerprints, fingerprint(number, rest)?)?,
        "setup" => section.setup = Some(setup(number, rest)?),
        "rtpmap" => {
            let (pt, encoding) = rest.split_once(' ').ok_or_else(|| malformed(number, "a=rtpmap:PT NAME/RATE"))?;
            let pt = payload_type(number, pt)?;
            let mut fields = encoding.trim().split('/');
            let name = fields.next().filter(|n| !n.is_empty() && n.len() <= 32);
            let name = name.ok_or_else(|| malformed(number, "a=rtpmap needs an encoding name"))?;
            let clock_rate = fields.next().and_then(|r| r.parse().ok()).filter(|r| *r > 0);
            let clock_rate = clock_rate.ok_or_else(|| malformed(number, "a=rtpmap needs a clock rate"))?;
            let channels = match fields.next() {
                Some(c) => {
                    Some(c.parse().ok().filter(|c| *c > 0).ok_or_else(|| malformed(number, "bad channel count"))?)
                }
                None => None,
            };
            if section.codec(pt).is_some() {
                return Err(malformed(number, "payload type mapped twice"));
            }
            let codec = OfferedCodec {
                payload_type: pt,
                name: name.to_owned(),
                clock_rate,
                channels,
                parameters: Vec::new(),
                feedback: Vec::new(),
            };
            push_bounded(number, &mut section.codecs, codec)?;
        }
        "fmtp" => {
            let (pt, list) = rest.split_once(' ').ok_or_else(|| malformed(number, "a=fmtp:PT PARAMETERS"))?;
            let pt = payload_type(number, pt)?;
            let parameters: Vec<(String, String)> = list
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .take(MAX_PER_SECTION)
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
                    None => (p.to_owned(), String::new()),
                })
                .collect();
            push_bounded(number, &mut section.deferred, Deferred::Parameters(pt, parameters))?;
        }
        "rtcp-fb" => {
            let mut parts = rest.split(' ').filter(|p| !p.is_empty());
            let target = parts.next().ok_or_else(|| malformed(number, "a=rtcp-fb:PT TYPE [PARAMETER]"))?;
            let kind = parts.next().ok_or_else(|| malformed(number, "a=rtcp-fb needs a type"))?.to_owned();
            let parameter = parts.next().unwrap_or_default().to_owned();
            let pt = if target == "*" { None } else { Some(payload_type(number, target)?) };
            push_bounded(number, &mut section.deferred, Deferred::Feedback(pt, (kind, parameter), number))?;
        }
        "extmap" => {
            let mut parts = rest.split(' ').filter(|p| !p.is_empty());
            let id = parts.next().and_then(|id| id.split('/').next()).and_then(|id| id.parse::<u16>().ok());
            let id =
                id.filter(|id| (1..=255).contains(id)).ok_or_else(|| malformed(number, "a=extmap id must be 1-255"))?;
            let uri =
                parts.next().filter(|u| u.len() <= 256).ok_or_else(|| malformed(number, "a=extmap needs a URI"))?;
            push_bounded(number, &mut section.extensions, (id, uri.to_owned()))?;
        }
        "ssrc" => {
            let (ssrc, attribute) = rest.split_once(' ').unwrap_or((rest, ""));
            let ssrc = ssrc.parse::<u32>().map_err(|_| malformed(number, "a=ssrc needs a 32-bit SSRC"))?;
            let cname = attribute.strip_prefix("cname:").map(|c| c.chars().take(255).collect::<String>());
            match section.ssrcs.iter_mut().find(|(s, _)| *s == ssrc) {
                Some((_, existing)) => {
                    if existing.is_none() {
                        *existing = cname;
                    }
                }
                None => push_bounded(number, &mut section.ssrcs, (ssrc, cname))?,
            }
        }
        "ssrc-group" => {
            let mut parts = rest.split(' ').filter(|p| !p.is_empty());
            let semantics = parts.next().ok_or_else(|| malformed(number, "a=ssrc-group:SEMANTICS SSRC..."))?;
            let ssrcs = parts
                .take(MAX_RIDS * 2)
                .map(|s| s.parse::<u32>().map_err(|_| malformed(number, "a=ssrc-group lists 32-bit SSRCs")))
                .collect::<Result<Vec<_>, _>>()?;
            push_bounded(number, &mut section.ssrc_groups, (semantics.to_owned(), ssrcs))?;
        }
        "rid" => {
            let mut parts = rest.split(' ').filter(|p| !p.is_empty());
            let (Some(rid), Some(direction)) = (parts.next(), parts.next()) else {
                return Err(malformed(number, "a=rid:ID send|recv"));
            };
            if !valid_rid(rid) {
                return Err(malformed(number, "a RID is 1-16 letters, digits, '-' or '_'"));
            }
            let list = match direction {
                "send" => &mut section.send_rids,
                "recv" => &mut section.recv_rids,
                _ => return Err(malformed(number, "a=rid direction is send or recv")),
            };
            if list.len() == MAX_RIDS {
                return Err(malformed(number, "too many RIDs (at most 8)"));
            }
            if !list.iter().any(|r| r == rid) {
                list.push(rid.to_owned());
            }
        }
        "simulcast" => {
            let mut parts = rest.split(' ').filter(|p| !p.is_empty());
            while let (Some(direction), Some(list)) = (parts.next(), parts.next()) {
                if direction != "send" {
                    continue;
                }
                for stream in list.split(';').take(MAX_RIDS) {
                    let first = stream.split(',').next().unwrap_or_default();
                    let (paused, rid) = match first.strip_prefix('~') {
                        Some(rid) => (true, rid),
                        None => (false, first),
                    };
                    if !valid_rid(rid) {
                        return Err(malformed(number, "a=simulcast lists RIDs"));
                    }
                    if section.simulcast_send.iter().any(|s| s.rid == rid) {
                        continue;
                    }
                    if section.simulcast_send.len() == MAX_RIDS {
                        return Err(malformed(number, "too many simulcast streams (at most 8)"));
                    }
                    section.simulcast_send.push(SimulcastStream { rid: rid.to_owned(), paused });
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn push_bounded<T>(number: usize, list: &mut Vec<T>, item: T) -> Result<(), SdpError> {
    if list.len() >= MAX_PER_SECTION {
        return Err(malformed(number, "too many entries of this kind (at most 128)"));
    }
    list.push(item);
    Ok(())
}

fn valid_rid(rid: &str) -> bool {
    (1..=16).contains(&rid.len()) && rid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn payload_type(number: usize, text: &str) -> Result<u8, SdpError> {
    text.parse::<u8>().ok().filter(|pt| *pt <= 127).ok_or_else(|| malformed(number, "a payload type is 0-127"))
}

fn ice_credential(number: usize, text: &str) -> Result<String, SdpError> {
    // RFC 8839: ice-char is ALPHA / DIGIT / "+" / "/"; 4-256 characters.
    let valid =
        (4..=256).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if !valid {
        return Err(malformed(number, "ICE credentials are 4-256 characters of letters, digits, '+' and '/'"));
    }
    Ok(text.to_owned())
}

fn ice_password(number: usize, text: &str) -> Result<String, SdpError> {
    // RFC 8839: a password has at least 128 bits of randomness, 22 characters.
    if text.len() < 22 {
        return Err(malformed(number, "an ICE password is 22-256 characters"));
    }
    ice_credential(number, text)
}

fn fingerprint(number: usize, text: &str) -> Result<Fingerprint, SdpError> {
    let (algorithm, value) = text.split_once(' ').ok_or_else(|| malformed(number, "a=fingerprint:HASH VALUE"))?;
    if value.len() > 64 * 3 || !value.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return Err(malformed(number, "a fingerprint is colon-separated hex bytes"));
    }
    Ok(Fingerprint { algorithm: algorithm.to_ascii_lowercase(), value: value.to_ascii_uppercase() })
}

fn setup(number: usize, text: &str) -> Result<Setup, SdpError> {
    match text {
        "active" => Ok(Setup::Active),
        "passive" => Ok(Setup::Passive),
        "actpass" => Ok(Setup::ActPass),
        _ => Err(malformed(number, "a=setup is active, passive or actpass")),
    }
}
