//! The parts every server's `Running` handle is made of: the tasks it owns (aborted when the
//! handle goes, so a dropped handle never leaves a watch running) and the bounded drain of
//! `stop()`.

use std::future::Future;
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
