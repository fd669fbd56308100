//! Every task a node starts, owned in one place: a cancellation token that
//! stops them all and a tracker that knows when they have stopped, so no task
//! outlives its node. Each task runs in the node's span (its short peer id),
//! so one node's story can be followed in a log of a hundred.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span, debug};

/// The tasks of one node.
#[derive(Debug)]
pub(crate) struct Tasks {
    cancel: CancellationToken,
    tracker: TaskTracker,
    span: Span,
}

impl Tasks {
    /// Tasks that run in `span`.
    pub(crate) fn new(span: Span) -> Self {
        Self { cancel: CancellationToken::new(), tracker: TaskTracker::new(), span }
    }

    /// Runs `future` until it ends or the node stops.
    pub(crate) fn spawn(&self, name: &'static str, future: impl Future<Output = ()> + Send + 'static) {
        if let Some(task) = self.guarded(name, future) {
            self.tracker.spawn(task);
        }
    }

    /// Like [`Tasks::spawn`], from a thread outside the runtime (mediasoup's
    /// callbacks), onto `runtime`.
    pub(crate) fn spawn_on(
        &self,
        runtime: &tokio::runtime::Handle,
        name: &'static str,
        future: impl Future<Output = ()> + Send + 'static,
    ) {
        if let Some(task) = self.guarded(name, future) {
            self.tracker.spawn_on(task, runtime);
        }
    }

    /// `future`, ended by the node's stop and run in its span; `None` once
    /// the node is stopping (nothing starts after).
    fn guarded(
        &self,
        name: &'static str,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        if self.cancel.is_cancelled() {
            debug!(task = name, "not started: the node is stopping");
            return None;
        }
        let cancel = self.cancel.clone();
        let task = async move {
            tokio::select! {
                biased;
                () = cancel.cancelled() => debug!(task = name, "cancelled"),
                () = future => {}
            }
        };
        Some(task.instrument(self.span.clone()))
    }

    /// The node's span.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Resolves once the node is stopping.
    pub(crate) fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.cancel.clone().cancelled_owned()
    }

    /// Whether the node is stopping.
    pub(crate) fn is_stopping(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Cancels every task and waits up to `grace` for them to end; true if
    /// they all did. Only the first call stops anything.
    pub(crate) async fn stop(&self, grace: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await.is_ok()
    }

    /// How many tasks are running.
    pub(crate) fn running(&self) -> usize {
        self.tracker.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_cancels_and_waits_for_every_task() {
        let tasks = Tasks::new(Span::none());
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(4);
        for _ in 0..3 {
            let done = done_tx.clone();
            tasks.spawn("forever", async move {
                let _done = done; // dropped when the task is cancelled
                std::future::pending::<()>().await;
            });
        }
        drop(done_tx);
        assert_eq!(tasks.running(), 3);
        assert!(tasks.stop(Duration::from_secs(1)).await, "every task stopped");
        assert_eq!(tasks.running(), 0);
        assert!(done_rx.recv().await.is_none(), "every task dropped its state");
        tasks.spawn("late", async {});
        assert_eq!(tasks.running(), 0, "nothing starts after the stop");
    }
}
