//! An env runner's setup logs (its `tilt-upper` container's output: clone, cluster, `tilt up`),
//! as the dashboard's env page and the gateway's waking page show them: the newest lines of the
//! newest pod, colour codes removed, bounded in lines and bytes. Reading never fails the page:
//! what cannot be read says why instead.

use ephemerator_core::labels::child_label_selector;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;

/// The runner's container whose output is the setup log.
pub const LOG_CONTAINER: &str = "tilt-upper";
/// Lines of log shown (the newest).
pub const LOG_LINES: i64 = 500;
/// Bytes of log read at most.
pub const LOG_BYTES: i64 = 256 * 1024;

/// The setup logs as shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogsView {
    /// The pod read, if there is one.
    pub pod: Option<String>,
    /// The current container's output, ANSI codes removed.
    pub current: String,
    /// The output of the container before its last restart, if it restarted.
    pub previous: Option<String>,
    /// Why there is nothing to show (no runner yet, still starting, …).
    pub waiting: Option<String>,
}

/// Reads the newest `lines` (at most [`LOG_LINES`]) of the setup logs of env `name`'s newest
/// runner pod in `namespace`. Never fails: what cannot be read is said in
/// [`LogsView::waiting`].
pub async fn read(client: &kube::Client, namespace: &str, name: &str, lines: i64) -> LogsView {
    match read_logs(client, namespace, name, lines.clamp(1, LOG_LINES)).await {
        Ok(view) => view,
        Err(error) => LogsView {
            waiting: Some(format!("the logs cannot be read now: {error}")),
            ..LogsView::default()
        },
    }
}

async fn read_logs(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    lines: i64,
) -> Result<LogsView, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut runners = pods
        .list(&ListParams::default().labels(&child_label_selector(name)))
        .await?
        .items;
    runners.sort_by_key(|pod| pod.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let Some(pod) = runners.pop() else {
        return Ok(LogsView {
            waiting: Some("no runner yet: the controller creates it in a moment".into()),
            ..LogsView::default()
        });
    };
    let pod_name = pod.name_any();
    let restarts = pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .and_then(|statuses| statuses.iter().find(|s| s.name == LOG_CONTAINER))
        .map_or(0, |status| status.restart_count);
    let params = |previous: bool| LogParams {
        container: Some(LOG_CONTAINER.to_string()),
        tail_lines: Some(lines),
        limit_bytes: Some(LOG_BYTES),
        previous,
        ..LogParams::default()
    };
    let current = match pods.logs(&pod_name, &params(false)).await {
        Ok(text) => text,
        // Not started yet: the API server says why (400 "waiting to start: ...").
        Err(kube::Error::Api(status)) if status.code == 400 => {
            return Ok(LogsView {
                pod: Some(pod_name),
                waiting: Some(status.message),
                ..LogsView::default()
            });
        }
        Err(error) => return Err(error),
    };
    let previous = if restarts > 0 {
        pods.logs(&pod_name, &params(true))
            .await
            .ok()
            .map(|text| plain_text(&text))
    } else {
        None
    };
    Ok(LogsView {
        pod: Some(pod_name),
        current: plain_text(&current),
        previous,
        waiting: None,
    })
}

/// Log text as plain text: colour and cursor codes removed (templates escape the rest).
pub fn plain_text(text: &str) -> String {
    String::from_utf8_lossy(&strip_ansi_escapes::strip(text)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_removed_and_markup_is_left_to_escaping() {
        let raw = "\u{1b}[32mOK\u{1b}[0m <b>bold</b>\n\u{1b}[1;31merror\u{1b}[0m";
        assert_eq!(plain_text(raw), "OK <b>bold</b>\nerror");
    }
}
