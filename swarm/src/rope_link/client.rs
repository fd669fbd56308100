//! The caller's side of links: one per peer, opened (in the background) by
//! the first call to a connected peer and shared by the calls after it, each
//! waiting for the answer that carries its tag. A call that finds no open link
//! (the peer is not connected, does not take links, or its link is being
//! opened or just closed) sends nothing on one: it goes by request-response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream};
use mafalda_rope::codec::cbor;
use mafalda_rope::{Message, Request as RopeRequest, Response as RopeResponse};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::behaviour::{OpenError, SharedConnections, lock};
use super::{LINK_OPEN_TIMEOUT, ends_link, read_frame, write_frame_within};
use crate::error::CallError;
use crate::traffic::Traffic;

/// Calls waiting for their answer on one link; more go by request-response.
const MAX_PENDING_PER_LINK: usize = 256;
/// Requests waiting to be written to one link.
const FRAME_QUEUE: usize = 64;
/// Most peers with a link open or opening; past this, calls to others go by
/// request-response.
const MAX_SLOTS: usize = 1024;

/// A peer's link: being opened, or open (until it closes).
enum Slot {
    Opening,
    Open(Arc<Link>),
}

/// Every link this node opened, by peer.
pub(crate) struct Links {
    connections: SharedConnections,
    slots: Mutex<HashMap<PeerId, Slot>>,
    max_bytes: usize,
    timeout: Duration,
    idle: Duration,
    traffic: Traffic,
    in_flight: super::CallsInFlight,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}

/// One open link: requests go to its writer task, answers come from its
/// reader task.
struct Link {
    peer: PeerId,
    frames: mpsc::Sender<(u64, Vec<u8>)>,
    pending: Mutex<Pending>,
}

/// The calls waiting on a link by tag, and whether it still takes new ones.
#[derive(Default)]
struct Pending {
    closed: bool,
    next_tag: u64,
    calls: HashMap<u64, oneshot::Sender<RopeResponse>>,
}

impl Link {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        self.pending().closed
    }

    /// Takes no more calls, and fails those waiting (their callers hear the
    /// link closed mid-call).
    fn close(&self) {
        let mut pending = self.pending();
        pending.closed = true;
        pending.calls.clear();
    }
}

impl Links {
    /// Links over the connections in `connections`, with the ROPE limits.
    pub(crate) fn new(
        connections: SharedConnections,
        settings: &crate::RopeSettings,
        traffic: Traffic,
        in_flight: super::CallsInFlight,
    ) -> Self {
        Self {
            connections,
            slots: Mutex::default(),
            max_bytes: settings.max_message_bytes,
            timeout: settings.request_timeout,
            idle: settings.link_idle,
            traffic,
            in_flight,
        }
    }

    /// Sends `request` to `peer` over its link and waits for the answer.
    /// `Err` hands the request back when nothing was sent (no link to be
    /// had): the caller sends it by request-response.
    pub(crate) async fn call(
        self: &Arc<Self>,
        peer: PeerId,
        request: RopeRequest,
    ) -> Result<Result<RopeResponse, CallError>, RopeRequest> {
        let Some(link) = self.link(peer) else { return Err(request) };
        let message = Message::Request(request);
        let encoded = cbor::encode_with_limit(&message, self.max_bytes);
        let Message::Request(request) = message else {
            return Ok(Err(CallError::Io { peer, reason: "not a request".into() }));
        };
        let frame = match encoded {
            Ok(frame) => frame,
            Err(error) => return Ok(Err(CallError::Io { peer, reason: error.to_string() })),
        };
        let _in_flight = self.in_flight.start(peer);
        let (reply, answer) = oneshot::channel();
        let tag = {
            let mut pending = link.pending();
            if pending.closed || pending.calls.len() >= MAX_PENDING_PER_LINK {
                return Err(request);
            }
            let tag = pending.next_tag;
            pending.next_tag = pending.next_tag.wrapping_add(1);
            pending.calls.insert(tag, reply);
            tag
        };
        self.traffic.used(peer);
        // The request timeout covers the wait for room on the link too.
        let exchange = async {
            if link.frames.send((tag, frame)).await.is_err() {
                return None; // the writer stopped before taking it: never sent
            }
            Some(answer.await)
        };
        let answered = tokio::time::timeout(self.timeout, exchange).await;
        self.traffic.used(peer);
        Ok(match answered {
            Ok(Some(Ok(response))) => Ok(response),
            Ok(Some(Err(_))) => Err(CallError::Unreachable { peer, reason: "the link closed mid-call".into() }),
            Ok(None) => {
                link.pending().calls.remove(&tag);
                return Err(request);
            }
            Err(_) => {
                link.pending().calls.remove(&tag);
                Err(CallError::Timeout(peer))
            }
        })
    }

    /// The open link to `peer`. Without one, a connected peer gets a link
    /// opened in the background and `None` comes back at once: opening costs
    /// a round trip (the greeting), which the call does not wait for; it goes
    /// by request-response, and the calls after it take the link.
    fn link(self: &Arc<Self>, peer: PeerId) -> Option<Arc<Link>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.get(&peer) {
            Some(Slot::Open(link)) if !link.is_closed() => return Some(Arc::clone(link)),
            Some(Slot::Opening) => return None,
            Some(Slot::Open(_)) => {
                slots.remove(&peer);
            }
            None => {}
        }
        let (connection, opener) = lock(&self.connections).opener(&peer)?;
        if slots.len() >= MAX_SLOTS {
            slots.retain(|_, slot| match slot {
                Slot::Opening => true,
                Slot::Open(link) => !link.is_closed(),
            });
            if slots.len() >= MAX_SLOTS {
                return None;
            }
        }
        slots.insert(peer, Slot::Opening);
        let links = Arc::clone(self);
        tokio::spawn(async move {
            let opened = links.open(peer, connection, opener).await;
            let mut slots = links.slots.lock().unwrap_or_else(PoisonError::into_inner);
            match opened {
                Some(stream) => slots.insert(peer, Slot::Open(links.start(peer, stream))),
                None => slots.remove(&peer),
            };
        });
        None
    }

    /// Opens a link on `connection` and waits for the greeting (at most
    /// [`LINK_OPEN_TIMEOUT`]).
    async fn open(
        &self,
        peer: PeerId,
        connection: libp2p::swarm::ConnectionId,
        opener: mpsc::Sender<super::behaviour::OpenReply>,
    ) -> Option<Stream> {
        let (reply, opened) = oneshot::channel();
        opener.try_send(reply).ok()?;
        let greeted = async {
            let mut stream = opened.await.map_err(|_| OpenError::Failed("the connection closed".into()))??;
            let mut greeting = [0u8; 1];
            match futures::AsyncReadExt::read_exact(&mut stream, &mut greeting).await {
                Ok(()) if greeting[0] == super::LINK_GREETING => Ok(stream),
                // Dropped, not closed: a refused lazy proposal must not be
                // written to again.
                Ok(()) => Err(OpenError::Failed(format!("unknown link version {}", greeting[0]))),
                Err(_) => Err(OpenError::Unsupported),
            }
        };
        match tokio::time::timeout(LINK_OPEN_TIMEOUT, greeted).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(OpenError::Unsupported)) => {
                debug!(%peer, "peer takes no ROPE links on this connection; calls go by request-response");
                lock(&self.connections).forget(&peer, connection);
                None
            }
            Ok(Err(error)) => {
                debug!(%peer, %error, "no ROPE link");
                None
            }
            Err(_) => None,
        }
    }

    /// Starts the link's reader and writer tasks. They end together: the
    /// reader when the stream ends or breaks the framing, the writer once the
    /// reader has ended or the link has been idle for `RopeSettings::link_idle`.
    fn start(&self, peer: PeerId, stream: Stream) -> Arc<Link> {
        use futures::AsyncReadExt;
        let (frames, queued) = mpsc::channel(FRAME_QUEUE);
        let link = Arc::new(Link { peer, frames, pending: Mutex::default() });
        let (mut read, write) = stream.split();
        let (reader_done, stop_writer) = oneshot::channel::<()>();
        let (closing, closed_here) = oneshot::channel::<()>();
        let reading = Arc::clone(&link);
        let (max_bytes, grace) = (self.max_bytes, self.timeout);
        tokio::spawn(async move {
            // Once this side closed the link (idle, or a write that failed),
            // the peer has a call's timeout to close its own half; the stream
            // is dropped then either way.
            let peer_closes = async move {
                if closed_here.await.is_err() {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(grace).await;
            };
            let mut peer_closes = std::pin::pin!(peer_closes);
            loop {
                let read = tokio::select! {
                    read = read_frame(&mut read, max_bytes) => read,
                    () = &mut peer_closes => break,
                };
                let frame = match read {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => {
                        debug!(peer = %reading.peer, %error, "ROPE link ended");
                        break;
                    }
                };
                match cbor::decode_with_limit(&frame.body, max_bytes) {
                    Ok(Message::Response(response)) => {
                        let waiting = {
                            let mut pending = reading.pending();
                            // Marked before the caller hears the refusal, so
                            // no call it makes next goes on this link.
                            if ends_link(&response) {
                                pending.closed = true;
                            }
                            pending.calls.remove(&frame.tag)
                        };
                        if let Some(waiting) = waiting {
                            let _ = waiting.send(response);
                        }
                    }
                    // A peer that answers with anything else breaks the link.
                    Ok(_) | Err(_) => {
                        debug!(peer = %reading.peer, "a ROPE link's answer was not a response; link closed");
                        break;
                    }
                }
            }
            reading.close();
            let _ = reader_done.send(());
        });
        let limits = (self.idle, self.timeout);
        tokio::spawn(write_requests(Arc::clone(&link), write, queued, stop_writer, closing, limits));
        link
    }
}

/// Writes the link's requests as they come; closes its half of the stream
/// once the reader has ended, a write failed, or the link sat idle with no
/// call waiting.
async fn write_requests(
    link: Arc<Link>,
    mut write: futures::io::WriteHalf<Stream>,
    mut queued: mpsc::Receiver<(u64, Vec<u8>)>,
    mut reader_done: oneshot::Receiver<()>,
    closing: oneshot::Sender<()>,
    (idle, timeout): (Duration, Duration),
) {
    loop {
        tokio::select! {
            frame = queued.recv() => {
                let Some((tag, frame)) = frame else { break };
                // A peer that stops reading clogs the link: given up after a
                // call's timeout, and the next call opens another.
                if let Err(error) = write_frame_within(&mut write, tag, &frame, timeout).await {
                    debug!(peer = %link.peer, %error, "could not write to a ROPE link; link closed");
                    break;
                }
            }
            _ = &mut reader_done => break,
            () = tokio::time::sleep(idle) => {
                {
                    let mut pending = link.pending();
                    if !pending.calls.is_empty() {
                        continue;
                    }
                    // No call waits, so no request is queued: none is lost.
                    pending.closed = true;
                }
                break;
            }
        }
    }
    link.close();
    let _ = tokio::time::timeout(timeout, write.close()).await;
    // However this half ended, the reader gives the peer a call's timeout to
    // close its own, then drops the stream.
    let _ = closing.send(());
}
