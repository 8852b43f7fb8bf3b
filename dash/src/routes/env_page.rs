//! One env's page: its status, its recent Events ("why is it failing?") and the runner's setup
//! logs, which htmx follows while the page is open (a reload without JavaScript).

use actix_web::{HttpRequest, HttpResponse, web};
use ephemerator_core::labels::child_label_selector;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;

use crate::error::DashError;
use crate::identity::User;
use crate::render::{Render, Rows, html};
use crate::routes::EnvName;
use crate::state::AppState;
use crate::views::FormView;

/// The runner's container whose output is the setup log.
pub const LOG_CONTAINER: &str = "tilt-upper";
/// Lines of log shown (the newest).
pub const LOG_LINES: i64 = 500;
/// Bytes of log read at most.
pub const LOG_BYTES: i64 = 256 * 1024;

/// The setup logs as shown.
#[derive(Debug, Clone, Default, Serialize)]
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

pub async fn env_page(
    request: HttpRequest,
    user: User,
    name: EnvName,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    let render = Render::new(&request, &user, &state);
    let mut context = render.context(Rows::None, FormView::default(), None);
    // Only this env's row is built.
    let Some(env) = render.env(&name) else {
        return Err(DashError::Refused(crate::decide::Refusal::NoSuchEnv(
            name.to_string(),
        )));
    };
    context.insert("env", &env);
    context.insert("logs", &logs(&state, &name).await);
    html(200, render.template("env_page.html", &context)?)
}

pub async fn env_logs(
    request: HttpRequest,
    user: User,
    name: EnvName,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    let render = Render::new(&request, &user, &state);
    let mut context = render.context(Rows::None, FormView::default(), None);
    context.insert("logs", &logs(&state, &name).await);
    html(200, render.template("logs.html", &context)?)
}

/// Reads the setup logs of env `name`'s newest runner pod. Never fails the page: what cannot
/// be read says why instead.
async fn logs(state: &AppState, name: &str) -> LogsView {
    match read_logs(state, name).await {
        Ok(view) => view,
        Err(error) => LogsView {
            waiting: Some(format!("the logs cannot be read now: {error}")),
            ..LogsView::default()
        },
    }
}

async fn read_logs(state: &AppState, name: &str) -> Result<LogsView, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(state.client.clone(), &state.namespace);
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
        tail_lines: Some(LOG_LINES),
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

/// Log text as plain text: colour and cursor codes removed (the template escapes the rest).
pub fn plain_text(text: &str) -> String {
    String::from_utf8_lossy(&strip_ansi_escapes::strip(text)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_render_as_inert_text_whatever_they_hold() {
        let pattern = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/**/*.html");
        let templates = tera::Tera::new(pattern).unwrap();
        let mut context = tera::Context::new();
        let hostile = "\u{1b}[31m<script>alert(1)</script>\u{1b}[0m <img src=x onerror=alert(2)>";
        context.insert(
            "logs",
            &LogsView {
                pod: Some("nicks-abc".into()),
                current: plain_text(hostile),
                previous: Some(plain_text("</pre><b>bold</b>")),
                waiting: None,
            },
        );
        let html = templates.render("logs.html", &context).unwrap();
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<b>"));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{html}"
        );
        assert!(!html.contains('\u{1b}'));
        assert_eq!(html.matches("</pre>").count(), 2, "{html}");
    }

    #[test]
    fn colour_codes_are_removed_and_markup_is_left_to_escaping() {
        let raw = "\u{1b}[32mOK\u{1b}[0m <b>bold</b>\n\u{1b}[1;31merror\u{1b}[0m";
        assert_eq!(plain_text(raw), "OK <b>bold</b>\nerror");
    }
}
