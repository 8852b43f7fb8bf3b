//! The parts every server's `Running` handle is made of: the tasks it owns (aborted when the
//! handle goes, so a dropped handle never leaves a watch running), the bounded drain of
//! `stop()`, and the [`Draining`] flag of a server on its way out.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

/// Background tasks owned by a running server: aborted on drop.
#[derive(Default)]
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Spawns `task` on the current runtime, owned by this set.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }

    /// Takes over a task already spawned.
    pub fn adopt(&mut self, task: JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Waits up to `timeout` for `in_flight` (the work begun before a stop) to finish; logs when it
/// did not. Whatever is left is cut off by the caller.
pub async fn drain(timeout: Duration, in_flight: impl Future) {
    if tokio::time::timeout(timeout, in_flight).await.is_err() {
        tracing::warn!(
            timeout = ?timeout,
            "work still in flight at the end of the drain time; stopping anyway"
        );
    }
}

/// Whether a server with a traffic listener is on its way out. Set on SIGTERM, for the
/// shutdown delay before it stops accepting: `/readyz` says so, so Kubernetes takes the pod out
/// of its Service while it still serves whoever has not heard yet, and every response closes
/// its connection, so keep-alive clients come back on a new one, to another replica.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on the server is on its way out.
    pub fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether it is.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// How a server with a traffic listener leaves on SIGTERM: [`Draining::begin`], serve on for
/// `delay` while the pod leaves its Service's endpoints (they are updated only after Kubernetes
/// sends the signal, so until then new connections still arrive), then `stop` (stop accepting,
/// drain what is in flight).
pub async fn leave_then_stop(draining: &Draining, delay: Duration, stop: impl Future) {
    draining.begin();
    tracing::info!(
        ?delay,
        "shutting down: not ready, serving on while the pod leaves its Service"
    );
    tokio::time::sleep(delay).await;
    tracing::info!("shutting down: no longer accepting; finishing requests in flight");
    stop.await;
}
