//! One env's page: its status, its recent Events ("why is it failing?") and the runner's setup
//! logs, which htmx follows while the page is open (a reload without JavaScript).

use actix_web::{HttpRequest, HttpResponse, web};
use ephemerator_kit::runner_logs::{self, LogsView};

use crate::error::DashError;
use crate::identity::User;
use crate::render::{Render, Rows, html};
use crate::routes::EnvName;
use crate::state::AppState;
use crate::views::FormView;

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

/// Reads the setup logs of env `name`'s newest runner pod (the newest
/// [`runner_logs::LOG_LINES`]). Never fails the page: what cannot be read says why instead.
async fn logs(state: &AppState, name: &str) -> LogsView {
    runner_logs::read(
        &state.client,
        &state.namespace,
        name,
        runner_logs::LOG_LINES,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemerator_kit::runner_logs::plain_text;

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
}
