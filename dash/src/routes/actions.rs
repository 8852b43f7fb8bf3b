//! Create, extend and delete: check the CSRF token, decide (pure, [`crate::decide`]), write
//! ([`crate::write`]), answer. htmx requests get a fragment in place (with the user's input
//! kept on a refusal); plain form posts get a redirect to the page, or the page with the
//! refusal.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ephemerator_core::EnvSpec;
use jiff::Timestamp;
use serde::Deserialize;

use crate::csrf::same_origin;
use crate::decide::{self, Refusal};
use crate::error::DashError;
use crate::identity::User;
use crate::render::Render;
use crate::routes::EnvName;
use crate::state::AppState;
use crate::views::{FormView, Notice};
use crate::write::{self, WriteError};

/// The create form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    pub repo: String,
    #[serde(default)]
    pub branch: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub csrf: String,
}

/// The extend and delete forms: only the token.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn create(
    request: HttpRequest,
    user: User,
    form: web::Form<CreateForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let render = Render::new(&request, &user, &state);
    let spec = EnvSpec {
        repo: form.repo.trim().to_string(),
        branch: form.branch.trim().to_string(),
        path: form.path.trim().to_string(),
    };
    let kept = FormView {
        repo: spec.repo.clone(),
        branch: spec.branch.clone(),
        path: spec.path.clone(),
        ..FormView::default()
    };
    let envs: Vec<_> = render
        .snapshot()
        .envs
        .iter()
        .map(|(_, env)| env.clone())
        .collect();
    let config_map =
        match decide::create(&user.identity, &spec, render.config(), &envs, render.now()) {
            Ok(config_map) => config_map,
            Err(refusal) => return refused_create(&request, &render, kept, refusal),
        };
    let name = config_map.metadata.name.clone().unwrap_or_default();
    match write::create(&state, &config_map).await {
        Ok(()) => {
            tracing::info!(user = %user.identity, env = %name, "env created");
            // Rendered anew, after the write: the answer shows the new quota.
            done(
                &request,
                &Render::new(&request, &user, &state),
                "create_form.html",
                Notice::ok(format!("Created {name}: its runner is starting.")),
            )
        }
        Err(WriteError::Refused(refusal)) => refused_create(&request, &render, kept, refusal),
        Err(WriteError::Cluster(error)) => {
            let form = FormView {
                error: Some(DashError::Cluster(error).to_string()),
                ..kept
            };
            answer_refusal(&request, &render, "create_form.html", form, None, 503)
        }
    }
}

pub async fn extend(
    request: HttpRequest,
    user: User,
    name: EnvName,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let render = Render::new(&request, &user, &state);
    let decided = write::extend(&state, &name, |config_map| {
        decide::extend(
            &user.identity,
            render.config(),
            &name,
            config_map,
            Timestamp::now(),
        )
    })
    .await;
    match decided {
        Ok(to) => {
            tracing::info!(user = %user.identity, env = %name, %to, "env extended");
            done(
                &request,
                &Render::new(&request, &user, &state),
                "notice.html",
                Notice::ok(format!(
                    "{name} now expires at {}.",
                    to.strftime("%Y-%m-%d %H:%M UTC")
                )),
            )
        }
        Err(WriteError::Refused(refusal)) => refused_action(&request, &render, refusal),
        Err(WriteError::Cluster(error)) => Err(error.into()),
    }
}

pub async fn delete(
    request: HttpRequest,
    user: User,
    name: EnvName,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let render = Render::new(&request, &user, &state);
    let decided = write::delete(&state, &name, |current| {
        decide::delete(&user.identity, render.config(), &name, current)
    })
    .await;
    match decided {
        Ok(()) => {
            tracing::info!(user = %user.identity, env = %name, "env deleted");
            done(
                &request,
                &Render::new(&request, &user, &state),
                "notice.html",
                Notice::ok(format!("{name} is being deleted.")),
            )
        }
        Err(WriteError::Refused(refusal)) => refused_action(&request, &render, refusal),
        Err(WriteError::Cluster(error)) => Err(error.into()),
    }
}

/// A valid token for this user, and (when the browser says) a post from this very origin.
fn check_csrf(
    request: &HttpRequest,
    user: &User,
    token: &str,
    state: &AppState,
) -> Result<(), DashError> {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok());
    let host = request.connection_info().host().to_string();
    if !state.csrf.verify(&user.identity, token) || !same_origin(origin, Some(&host)) {
        tracing::warn!(user = %user.identity, ?origin, "refused a post without a valid CSRF token or from another origin");
        return Err(DashError::Forbidden);
    }
    Ok(())
}

fn is_htmx(request: &HttpRequest) -> bool {
    request.headers().contains_key("hx-request")
}

/// Success: htmx gets `template` with the notice (and the list is told to refresh); a plain
/// post is redirected to the page (post, redirect, get).
fn done(
    request: &HttpRequest,
    render: &Render<'_>,
    template: &str,
    notice: Notice,
) -> Result<HttpResponse, DashError> {
    if !is_htmx(request) {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish());
    }
    let mut response = render.fragment(template, FormView::default(), Some(notice), 200)?;
    response.headers_mut().insert(
        header::HeaderName::from_static("hx-trigger"),
        header::HeaderValue::from_static("envs-changed"),
    );
    Ok(response)
}

fn refused_create(
    request: &HttpRequest,
    render: &Render<'_>,
    kept: FormView,
    refusal: Refusal,
) -> Result<HttpResponse, DashError> {
    let status = refusal.status();
    let form = match &refusal {
        Refusal::Invalid(errors) => kept.with_errors(errors),
        _ => FormView {
            error: Some(refusal.to_string()),
            ..kept
        },
    };
    answer_refusal(request, render, "create_form.html", form, None, status)
}

fn refused_action(
    request: &HttpRequest,
    render: &Render<'_>,
    refusal: Refusal,
) -> Result<HttpResponse, DashError> {
    let status = refusal.status();
    answer_refusal(
        request,
        render,
        "notice.html",
        FormView::default(),
        Some(Notice::error(refusal.to_string())),
        status,
    )
}

/// A refusal in place (htmx) or on the whole page (a plain post), with the given status.
fn answer_refusal(
    request: &HttpRequest,
    render: &Render<'_>,
    template: &str,
    form: FormView,
    notice: Option<Notice>,
    status: u16,
) -> Result<HttpResponse, DashError> {
    if is_htmx(request) {
        render.fragment(template, form, notice, status)
    } else {
        render.page(false, form, notice, status)
    }
}
