//! One ROPE connection, either side: sends calls and correlates their answers
//! (with timeouts; a late answer is dropped), answers the peer's calls through a
//! [`Handler`], and hands every other message to its owner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::debug;

use crate::error::{ErrorCode, RpcError};
use crate::message::{Message, ObjectId, Request, RequestId, Response, Value};
use crate::transport::{Connection, TransportError};

/// Answers calls that arrive on a connection.
pub trait Handler: Send + Sync + 'static {
    /// Handles `request`; its target says which object (none: the endpoint itself).
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>>;
}

/// A handler that knows no method.
#[derive(Debug, Default)]
pub(crate) struct NoMethods;

impl Handler for NoMethods {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        let error = RpcError::new(ErrorCode::MethodNotFound, format!("unknown method {}", request.method));
        Box::pin(async move { Err(error) })
    }
}

/// Why a call through a session failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The peer answered with an error.
    #[error(transparent)]
    Rpc(RpcError),
    /// No answer in time; a late answer will be dropped.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The connection is gone.
    #[error("not connected")]
    Disconnected,
}

/// Outgoing messages waiting for the connection.
const OUTGOING_QUEUE: usize = 256;
/// Calls from the peer handled at once; more are answered "busy".
const MAX_CONCURRENT_CALLS: usize = 64;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>>>;

/// Cloneable handle to a running session.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    outgoing: mpsc::Sender<Message>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
}

impl SessionHandle {
    /// Calls `method` on the peer and waits up to `timeout` for the answer.
    pub(crate) async fn call(
        &self,
        method: &str,
        target: Option<ObjectId>,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.lock_pending().insert(id, reply);
        let request = Request { id: RequestId::Number(id), method: method.to_owned(), target, params };
        if self.outgoing.send(Message::Request(request)).await.is_err() {
            self.lock_pending().remove(&id);
            return Err(CallError::Disconnected);
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result.map_err(CallError::Rpc),
            Ok(Err(_)) => Err(CallError::Disconnected),
            Err(_) => {
                self.lock_pending().remove(&id);
                Err(CallError::Timeout(timeout))
            }
        }
    }

    /// Queues a message for the peer (waits if the queue is full).
    pub(crate) async fn send(&self, message: Message) -> Result<(), CallError> {
        self.outgoing.send(message).await.map_err(|_| CallError::Disconnected)
    }

    /// Whether the connection is still up.
    pub(crate) fn is_connected(&self) -> bool {
        !self.outgoing.is_closed()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection's task, aborted (closing the connection) when this is
/// dropped, however its owner ends.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts a session over `connection`: the peer's calls go to `handler`; every
/// other message (notifications, events, snapshots) goes to `inbound`. The
/// returned task ends when the connection does.
pub(crate) fn start(
    connection: Connection,
    handler: Arc<dyn Handler>,
    inbound: mpsc::Sender<Message>,
) -> (SessionHandle, tokio::task::JoinHandle<()>) {
    let (outgoing_tx, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
    let pending: Pending = Arc::default();
    let handle =
        SessionHandle { outgoing: outgoing_tx.clone(), pending: Arc::clone(&pending), next_id: Arc::default() };
    let task = tokio::spawn(run(connection, handler, inbound, outgoing_tx, outgoing_rx, pending));
    (handle, task)
}

async fn run(
    connection: Connection,
    handler: Arc<dyn Handler>,
    inbound: mpsc::Sender<Message>,
    outgoing_tx: mpsc::Sender<Message>,
    mut outgoing_rx: mpsc::Receiver<Message>,
    pending: Pending,
) {
    let Connection { mut sink, mut stream } = connection;
    let calls = Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS));
    let mut turns = Turns::default();
    loop {
        tokio::select! {
            message = outgoing_rx.recv() => {
                let Some(message) = message else { break };
                if let Err(error) = sink.send(message).await {
                    debug!(%error, "sending failed; closing the session");
                    break;
                }
            }
            incoming = stream.next() => match incoming {
                None | Some(Err(TransportError::Closed)) => break,
                Some(Err(TransportError::Failed(reason))) => {
                    debug!(%reason, "connection failed");
                    break;
                }
                Some(Err(TransportError::Codec(error))) => {
                    debug!(%error, "undecodable message from the peer");
                    let answer = Response::err(error.request_id(), error.to_rpc_error());
                    if sink.send(Message::Response(answer)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Request(request))) => {
                    let id = request.id.clone();
                    let Ok(permit) = Arc::clone(&calls).try_acquire_owned() else {
                        let busy = RpcError::new(ErrorCode::Busy, "too many calls in progress");
                        let _ = outgoing_tx.try_send(Message::Response(Response::err(Some(id), busy)));
                        continue;
                    };
                    // Calls on one object run in the order they came, as on a
                    // local object; calls on different objects run at once.
                    let (previous, done) = turns.take(request.target.as_deref());
                    let answer = handler.call(request);
                    let outgoing = outgoing_tx.clone();
                    tokio::spawn(async move {
                        if let Some(previous) = previous {
                            let _ = previous.await;
                        }
                        let response = Response { id: Some(id), outcome: answer.await };
                        drop(done);
                        let _ = outgoing.send(Message::Response(response)).await;
                        drop(permit);
                    });
                }
                Some(Ok(Message::Response(response))) => on_response(&pending, response),
                Some(Ok(other)) => {
                    if inbound.send(other).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    // Pending calls see the connection gone.
    pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
}

/// The order of calls per target object: each call waits for the one before
/// it on the same object (its receiver ends when that call is answered).
#[derive(Default)]
struct Turns {
    last: HashMap<String, oneshot::Receiver<()>>,
}

impl Turns {
    /// Most objects remembered before finished turns are forgotten.
    const PRUNE_AT: usize = 1024;

    /// For a call on `target`: what to wait for first, and what to drop when done.
    fn take(&mut self, target: Option<&str>) -> (Option<oneshot::Receiver<()>>, Option<oneshot::Sender<()>>) {
        let Some(target) = target else { return (None, None) };
        if self.last.len() >= Self::PRUNE_AT {
            self.last.retain(|_, turn| matches!(turn.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        }
        let (done, next) = oneshot::channel();
        (self.last.insert(target.to_owned(), next), Some(done))
    }
}

fn on_response(pending: &Pending, response: Response) {
    let Some(RequestId::Number(id)) = response.id else {
        debug!(?response, "response without a known id dropped");
        return;
    };
    let reply = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    match reply {
        Some(reply) => {
            let _ = reply.send(response.outcome);
        }
        None => debug!(id, "late or unknown response dropped"),
    }
}
