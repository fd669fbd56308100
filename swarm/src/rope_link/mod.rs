//! ROPE calls over one long-lived stream per peer (`/mafalda/rope/link/1`),
//! the path every call to a connected peer takes.
//!
//! A request-response call opens a substream, negotiates it and goes through
//! the swarm task at both ends: measured on loopback, 280 µs per call against
//! 60 µs over a stream kept open, and several times more when the swarm task
//! is busy. Here the caller writes its request straight into a stream it keeps
//! to the peer ([`client`]), and the peer reads it in a task of its own
//! ([`server`]) that hands it to the node like any other inbound call; the
//! swarm task sees neither.
//!
//! The peer that takes a link first writes one byte, [`LINK_GREETING`]; the
//! opener reads it before it sends a call. Protocols are proposed together
//! with their first bytes here (multistream-select's lazy mode), so a link
//! opens at once even to a peer that does not speak it, and only a read
//! tells: a call is never lost to a link that was refused, it goes by
//! request-response instead. (The read is also what keeps the opener's
//! stream usable: libp2p panics on a write after a refused lazy proposal.)
//!
//! A link carries calls one way: requests from the peer that opened it,
//! responses back, each a frame: the body's length (4 bytes, big-endian), a
//! tag the opener chose for the call (8 bytes, big-endian; the answer carries
//! it back), then the body, one ROPE message in CBOR of at most
//! `RopeSettings::max_message_bytes`. A length over the limit is refused
//! before the body is read: the call is answered with the size error, by its
//! tag, and the link closes. A link also closes after `RopeSettings::link_idle` without a
//! call (so it never keeps an unused connection open), when its connection
//! closes, and on any other breach of the framing.
//!
//! Request-response stays: for a peer not connected yet (it dials, and finds
//! unknown peers in the DHT), for one that does not speak this protocol, and
//! when a link cannot be opened.

pub(crate) mod behaviour;
pub(crate) mod client;
pub(crate) mod server;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};
use mafalda_rope::codec::CodecError;
use mafalda_rope::{ErrorCode, Response as RopeResponse};

/// The byte a peer taking a link writes first (the framing's version).
pub const LINK_GREETING: u8 = 1;

/// Protocol name of a ROPE link.
pub const ROPE_LINK_PROTOCOL: StreamProtocol = StreamProtocol::new("/mafalda/rope/link/1");

/// By default, a link with no call for this long closes (its connection may
/// then idle out); `RopeSettings::link_idle`.
pub(crate) const LINK_IDLE: Duration = Duration::from_secs(30);

/// Longest a link takes to open before the call goes by request-response.
pub(crate) const LINK_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Most links a peer may have open to this node at once (one, and its
/// successor while the old one winds down).
pub(crate) const MAX_LINKS_PER_PEER: usize = 2;

/// Inbound links waiting for the serving task; more are refused.
pub(crate) const INBOUND_LINK_QUEUE: usize = 64;

/// The peers with link calls in flight, either way, and how many: the
/// connection policy never cuts a call short (as with request-response, whose
/// calls the swarm task sees).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallsInFlight(Arc<Mutex<HashMap<PeerId, usize>>>);

impl CallsInFlight {
    /// Counts a call with `peer` until the guard drops.
    pub(crate) fn start(&self, peer: PeerId) -> InFlight {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(peer).or_default() += 1;
        InFlight { calls: self.clone(), peer }
    }

    /// Whether `peer` has a link call in flight.
    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains_key(peer)
    }
}

/// One link call in flight (see [`CallsInFlight`]).
#[derive(Debug)]
pub(crate) struct InFlight {
    calls: CallsInFlight,
    peer: PeerId,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut calls = self.calls.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = calls.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                calls.remove(&self.peer);
            }
        }
    }
}

/// Bytes before a frame's body: its length and its call's tag.
const HEADER_BYTES: usize = 12;

/// One frame: a call's tag and a ROPE message in CBOR.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The call it belongs to, chosen by the link's opener.
    pub(crate) tag: u64,
    /// The message.
    pub(crate) body: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The stream failed or ended.
    #[error("link closed: {0}")]
    Io(#[from] io::Error),
    /// The length was over the limit (the body was not read).
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The call's tag.
        tag: u64,
        /// The announced length.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The answer to a frame over the size limit: the size error by the call's
/// tag, with no request id (the body was not read). The taker closes the link
/// after it.
pub(crate) fn too_large_refusal(size: usize, limit: usize) -> RopeResponse {
    RopeResponse::err(None, CodecError::TooLarge { size, limit }.to_rpc_error())
}

/// Whether `response` is a [`too_large_refusal`], after which the link is
/// closing: its opener must send nothing more on it (a call sent then would
/// be lost with the link, unread).
pub(crate) fn ends_link(response: &RopeResponse) -> bool {
    response.id.is_none() && matches!(&response.outcome, Err(error) if error.kind() == ErrorCode::MessageTooLarge)
}

/// Reads one frame whose body is at most `limit` bytes; `Ok(None)` at a clean
/// end of the stream (between frames). The length is checked before the body
/// is read.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(io: &mut R, limit: usize) -> Result<Option<Frame>, FrameError> {
    let mut header = [0u8; HEADER_BYTES];
    let mut filled = 0;
    while filled < header.len() {
        let n = io.read(&mut header[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        filled += n;
    }
    let (length, tag) = header.split_at(4);
    let size = length.iter().fold(0usize, |size, byte| (size << 8) | usize::from(*byte));
    let tag = tag.iter().fold(0u64, |tag, byte| (tag << 8) | u64::from(*byte));
    if size > limit {
        return Err(FrameError::TooLarge { tag, size, limit });
    }
    let mut body = vec![0u8; size];
    io.read_exact(&mut body).await?;
    Ok(Some(Frame { tag, body }))
}

/// Writes `body` as one frame of call `tag`, and flushes it.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(io: &mut W, tag: u64, body: &[u8]) -> io::Result<()> {
    let size = u32::try_from(body.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(HEADER_BYTES + body.len());
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&tag.to_be_bytes());
    frame.extend_from_slice(body);
    io.write_all(&frame).await?;
    io.flush().await
}

/// [`write_frame`] within `limit`: a peer that stops reading clogs its link,
/// and the writer gives up on it (`TimedOut`) rather than wait for it.
pub(crate) async fn write_frame_within<W: AsyncWrite + Unpin>(
    io: &mut W,
    tag: u64,
    body: &[u8],
    limit: std::time::Duration,
) -> io::Result<()> {
    tokio::time::timeout(limit, write_frame(io, tag, body))
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn a_frame_reads_back_as_written() {
        let mut wire = Cursor::new(Vec::new());
        block_on(write_frame(&mut wire, 7, b"hello")).expect("write");
        block_on(write_frame(&mut wire, u64::MAX, b"")).expect("write");
        assert_eq!(wire.get_ref()[..12], [0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7]);
        wire.set_position(0);
        let read = |wire: &mut Cursor<Vec<u8>>| block_on(read_frame(wire, 16)).expect("read");
        assert_eq!(read(&mut wire), Some(Frame { tag: 7, body: b"hello".to_vec() }));
        assert_eq!(read(&mut wire), Some(Frame { tag: u64::MAX, body: Vec::new() }));
        assert_eq!(read(&mut wire), None, "a clean end");
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_the_body_is_read() {
        // Announces 4 GiB and sends nothing more: refused from the header alone.
        let mut wire = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3]);
        match block_on(read_frame(&mut wire, 1024)) {
            Err(FrameError::TooLarge { tag: 3, size, limit: 1024 }) => assert_eq!(size, u32::MAX as usize),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_an_error_not_an_end() {
        for cut in [vec![0, 0], vec![0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2]] {
            let mut wire = Cursor::new(cut);
            assert!(matches!(block_on(read_frame(&mut wire, 16)), Err(FrameError::Io(_))));
        }
    }
}
