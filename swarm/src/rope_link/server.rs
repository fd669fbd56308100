//! The answering side of links: each link a peer opens is read in a task of
//! its own, whose requests reach the node as [`InboundCall`]s like those that
//! come by request-response, under the same limits: at most
//! `RopeSettings::max_inbound_per_peer` calls in flight per link (more are
//! answered busy and count against the peer), [`MAX_LINKS_PER_PEER`] links
//! per peer, a full inbound queue answered busy, a malformed request answered
//! with an error and counted. A link that brings no request for twice
//! `RopeSettings::link_idle` is closed. The tasks end with their link, and all
//! of them with the swarm.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use mafalda_rope::codec::cbor;
use mafalda_rope::{ErrorCode, Message, Response as RopeResponse, RpcError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::debug;

use super::behaviour::InboundLink;
use super::{FrameError, MAX_LINKS_PER_PEER, read_frame, too_large_refusal, write_frame_within};
use crate::SwarmError;
use crate::event_loop::{Command, busy};
use crate::handle::InboundCall;
use crate::penalties::PeerAction;
use crate::traffic::Traffic;

/// What every link served shares.
#[derive(Clone)]
pub(crate) struct Serving {
    /// Where calls go to be answered.
    pub(crate) calls: mpsc::Sender<InboundCall>,
    /// The swarm task, told of peers that misbehave (weak: serving links
    /// does not keep the swarm running).
    pub(crate) commands: mpsc::WeakSender<Command>,
    /// Largest request or response.
    pub(crate) max_bytes: usize,
    /// Most calls in flight per link.
    pub(crate) max_in_flight: usize,
    /// How long answers still in flight are waited for once the peer closed
    /// its half.
    pub(crate) answer_timeout: Duration,
    /// Where use of a peer is recorded (it keeps the connection).
    pub(crate) traffic: Traffic,
    /// The calls being answered, which the connection policy does not cut.
    pub(crate) in_flight: super::CallsInFlight,
    /// A link that brings no request for twice this long is closed here (its
    /// opener closes it after this long; one that does not is let go).
    pub(crate) idle: Duration,
}

/// Where one inbound call's answer goes: its link's writer, under its tag.
/// It holds one of the link's in-flight slots until dropped.
#[derive(Debug)]
pub(crate) struct LinkAnswer {
    answers: mpsc::Sender<(u64, RopeResponse)>,
    tag: u64,
    _slot: OwnedSemaphorePermit,
    _in_flight: super::InFlight,
}

impl LinkAnswer {
    /// Sends the answer; fails if the link has closed.
    pub(crate) async fn send(self, response: RopeResponse) -> Result<(), SwarmError> {
        self.answers.send((self.tag, response)).await.map_err(|_| SwarmError::LinkClosed)
    }

    /// Sends the answer if there is room (a dropped call's error).
    pub(crate) fn try_send(self, response: RopeResponse) {
        let _ = self.answers.try_send((self.tag, response));
    }
}

/// Serves the links in `links` until the swarm stops (its behaviour drops the
/// sender); the links' tasks are aborted then.
pub(crate) async fn serve(mut links: mpsc::Receiver<InboundLink>, serving: Serving) {
    let mut tasks: JoinSet<PeerId> = JoinSet::new();
    let mut per_peer: HashMap<PeerId, usize> = HashMap::new();
    loop {
        tokio::select! {
            link = links.recv() => {
                let Some(link) = link else { break };
                let open = per_peer.entry(link.peer).or_default();
                if *open >= MAX_LINKS_PER_PEER {
                    debug!(peer = %link.peer, "too many ROPE links from this peer; one refused");
                    continue;
                }
                *open += 1;
                tasks.spawn(serve_link(link, serving.clone()));
            }
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                // A link task that panicked is not counted back: its peer
                // keeps one slot fewer.
                if let Ok(peer) = ended
                    && let Some(open) = per_peer.get_mut(&peer)
                {
                    *open = open.saturating_sub(1);
                    if *open == 0 {
                        per_peer.remove(&peer);
                    }
                }
            }
        }
    }
}

/// Reads one link's requests and writes their answers until it ends.
async fn serve_link(link: InboundLink, serving: Serving) -> PeerId {
    let InboundLink { peer, remote_ip, mut stream } = link;
    let greeted = async {
        stream.write_all(&[super::LINK_GREETING]).await?;
        stream.flush().await
    };
    if let Err(error) = greeted.await {
        debug!(%peer, %error, "could not greet a ROPE link");
        return peer;
    }
    let (read, write) = stream.split();
    let (answers, queued) = mpsc::channel(serving.max_in_flight.saturating_add(1));
    let (reader_done, wait_answers) = oneshot::channel();
    let reading = read_requests(peer, remote_ip, read, answers, &serving);
    let writing = write_answers(peer, write, queued, wait_answers, &serving);
    // The link ends with its writer: once the reader has ended, when the
    // answers still due are written; or earlier, when a write fails (and the
    // reader stops taking requests whose answers could not go).
    let reading = async {
        reading.await;
        let _ = reader_done.send(());
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
    peer
}

async fn read_requests(
    peer: PeerId,
    remote_ip: Option<IpAddr>,
    mut read: futures::io::ReadHalf<Stream>,
    answers: mpsc::Sender<(u64, RopeResponse)>,
    serving: &Serving,
) {
    let in_flight = Arc::new(Semaphore::new(serving.max_in_flight));
    let penalise = |action| {
        if let Some(commands) = serving.commands.upgrade() {
            let _ = commands.try_send(Command::Penalise { peer, action });
        }
    };
    loop {
        let Ok(read) = tokio::time::timeout(serving.idle * 2, read_frame(&mut read, serving.max_bytes)).await else {
            debug!(%peer, "a ROPE link brought no request for twice the idle time; closed");
            return;
        };
        let frame = match read {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(FrameError::TooLarge { tag, size, limit }) => {
                // Answered by its tag (the caller hears why), then the link
                // closes: the body is not read, so nothing after it can be.
                debug!(%peer, size, limit, "oversized ROPE request on a link; link closed");
                penalise(PeerAction::BadRequest);
                let _ = answers.send((tag, too_large_refusal(size, limit))).await;
                return;
            }
            Err(FrameError::Io(error)) => {
                debug!(%peer, %error, "ROPE link ended");
                return;
            }
        };
        let tag = frame.tag;
        let request = match cbor::decode_with_limit(&frame.body, serving.max_bytes) {
            Ok(Message::Request(request)) => request,
            Ok(_) => {
                debug!(%peer, "a ROPE link carried something other than a request; link closed");
                penalise(PeerAction::BadRequest);
                return;
            }
            Err(error) => {
                penalise(PeerAction::BadRequest);
                let _ = answers.send((tag, RopeResponse::err(error.request_id(), error.to_rpc_error()))).await;
                continue;
            }
        };
        serving.traffic.used(peer);
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            penalise(PeerAction::RequestFlood);
            // Waits for room: a peer that floods and does not read its
            // refusals stalls its own link, nothing else.
            let _ = answers.send((tag, busy(&request.id, "too many calls in flight from this peer"))).await;
            continue;
        };
        let id = request.id.clone();
        let answer =
            LinkAnswer { answers: answers.clone(), tag, _slot: permit, _in_flight: serving.in_flight.start(peer) };
        match serving.calls.try_send(InboundCall::over_link(peer, remote_ip, request, answer)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(call)) => {
                call.forget();
                let _ = answers.send((tag, busy(&id, "node busy: too many calls waiting"))).await;
            }
            Err(mpsc::error::TrySendError::Closed(call)) => {
                call.forget();
                return;
            }
        }
    }
}

/// Writes answers as the node gives them; once the peer has closed its half,
/// those still in flight are waited for up to the call timeout each, then
/// this half closes.
async fn write_answers(
    peer: PeerId,
    mut write: futures::io::WriteHalf<Stream>,
    mut queued: mpsc::Receiver<(u64, RopeResponse)>,
    mut reader_done: oneshot::Receiver<()>,
    serving: &Serving,
) {
    let mut reading = true;
    loop {
        let answer = if reading {
            tokio::select! {
                answer = queued.recv() => answer,
                _ = &mut reader_done => {
                    reading = false;
                    continue;
                }
            }
        } else {
            tokio::time::timeout(serving.answer_timeout, queued.recv()).await.unwrap_or_default()
        };
        let Some((tag, answer)) = answer else { break };
        let id = answer.id.clone();
        let frame = match cbor::encode_with_limit(&Message::Response(answer), serving.max_bytes) {
            Ok(frame) => frame,
            Err(error) => {
                let refused = RopeResponse::err(id, RpcError::new(ErrorCode::InternalError, error.to_string()));
                match cbor::encode_with_limit(&Message::Response(refused), serving.max_bytes) {
                    Ok(frame) => frame,
                    Err(_) => continue,
                }
            }
        };
        // A peer that stops reading its answers is given up after a call's
        // timeout: the node's answers to it then fail instead of waiting.
        if let Err(error) = write_frame_within(&mut write, tag, &frame, serving.answer_timeout).await {
            debug!(%peer, %error, "could not answer on a ROPE link; link closed");
            break;
        }
    }
    let _ = tokio::time::timeout(serving.answer_timeout, write.close()).await;
}
