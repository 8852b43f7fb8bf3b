//! The setup logs the waking and starting pages show, read with the dashboard's reader
//! (`ephemerator_kit::runner_logs`). However many visitors wait on an env, and however often
//! their pages reload, this replica reads its logs at most once per [`FRESH_FOR`]: the reads
//! of one env queue behind one lock, and the answer is shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ephemerator_kit::runner_logs::{self, LogsView};

/// How long one read of an env's logs is shown to every page that asks.
pub const FRESH_FOR: Duration = Duration::from_secs(2);
/// How long a page waits for the logs before it is answered without them.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Most envs whose logs are cached; past it the stale entries go.
const MAX_CACHED: usize = 1024;

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<LogsView>)>>>;

/// The runners' setup logs, read through the API server and cached per env.
pub struct SetupLogs {
    client: Option<kube::Client>,
    namespace: String,
    cached: Mutex<HashMap<String, Slot>>,
}

impl SetupLogs {
    /// Logs read from `namespace` with `client` (`None`: no cluster, no logs).
    pub fn new(client: Option<kube::Client>, namespace: &str) -> SetupLogs {
        SetupLogs {
            client,
            namespace: namespace.to_string(),
            cached: Mutex::new(HashMap::new()),
        }
    }

    /// Env `env`'s setup logs, at most [`FRESH_FOR`] old; `None` without a cluster.
    pub async fn of(&self, env: &str) -> Option<Arc<LogsView>> {
        let client = self.client.as_ref()?;
        let slot = self.slot(env);
        let mut entry = slot.lock().await;
        if let Some((read_at, logs)) = entry.as_ref()
            && read_at.elapsed() < FRESH_FOR
        {
            return Some(logs.clone());
        }
        let read = tokio::time::timeout(
            READ_TIMEOUT,
            runner_logs::read(client, &self.namespace, env, WAKING_LINES),
        )
        .await
        .unwrap_or_else(|_| LogsView {
            waiting: Some("the logs did not come in time; this page tries again".into()),
            ..LogsView::default()
        });
        let logs = Arc::new(read);
        *entry = Some((Instant::now(), logs.clone()));
        Some(logs)
    }

    fn slot(&self, env: &str) -> Slot {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.len() >= MAX_CACHED && !cached.contains_key(env) {
            // Entries whose lock is free and whose read is old are nobody's.
            cached.retain(|_, slot| {
                slot.try_lock()
                    .map(|entry| {
                        entry
                            .as_ref()
                            .is_some_and(|(read_at, _)| read_at.elapsed() < FRESH_FOR)
                    })
                    .unwrap_or(true)
            });
        }
        cached.entry(env.to_string()).or_default().clone()
    }
}

/// Lines of log a waiting page shows: the newest, enough to see what the runner does.
pub const WAKING_LINES: i64 = 80;
