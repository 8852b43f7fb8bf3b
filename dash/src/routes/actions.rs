//! Create, extend, delete, set the access level, make and revoke share links, wake and keep
//! awake: check the CSRF token, decide (pure, [`crate::decide`]), write
//! ([`crate::write`]), answer. htmx requests get a fragment in place (with the user's input
//! kept on a refusal); plain form posts get a redirect to the page, or the page with the
//! refusal.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ephemerator_core::EnvSpec;
use ephemerator_core::access::Access;
use ephemerator_kit::signing::random_token;
use jiff::Timestamp;
use serde::Deserialize;

use crate::csrf::same_origin;
use crate::decide::{self, Refusal};
use crate::error::DashError;
use crate::identity::User;
use crate::render::Render;
use crate::routes::EnvName;
use crate::state::AppState;
use crate::views::{FormView, Notice, access_label, span};
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
    /// The access level; empty: the config's default.
    #[serde(default)]
    pub access: String,
    #[serde(default)]
    pub csrf: String,
}

/// The access form.
#[derive(Debug, Deserialize)]
pub struct AccessForm {
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub csrf: String,
}

/// The new share link form.
#[derive(Debug, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    pub label: String,
    /// `1h`, `7d`, …
    #[serde(default)]
    pub lifetime: String,
    #[serde(default)]
    pub csrf: String,
}

fn level(text: &str) -> Result<Access, Refusal> {
    text.trim().parse().map_err(Refusal::NotAllowed)
}

/// The extend and delete forms: only the token.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
}

/// The Wake form.
#[derive(Debug, Deserialize)]
pub struct WakeForm {
    /// `env`: a plain post is answered with the env's page (where the form was); else the list.
    #[serde(default)]
    pub back: String,
    #[serde(default)]
    pub csrf: String,
}

/// The keep-awake form.
#[derive(Debug, Deserialize)]
pub struct KeepAwakeForm {
    /// `true`: keep it awake; `false`: let it sleep when unused.
    #[serde(default)]
    pub on: String,
    /// As [`WakeForm::back`].
    #[serde(default)]
    pub back: String,
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
        access: form.access.trim().to_string(),
        ..FormView::default()
    };
    let envs: Vec<_> = render
        .snapshot()
        .envs
        .iter()
        .map(|(_, env)| env.clone())
        .collect();
    let access = match form.access.trim() {
        "" => Ok(None),
        text => level(text).map(Some),
    };
    let decided = access.and_then(|access| {
        decide::create(
            &user.identity,
            &spec,
            access,
            render.config(),
            &envs,
            render.now(),
        )
    });
    let config_map = match decided {
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

pub async fn set_access(
    request: HttpRequest,
    user: User,
    name: EnvName,
    form: web::Form<AccessForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let render = Render::new(&request, &user, &state);
    let asked = match level(&form.level) {
        Ok(asked) => asked,
        Err(refusal) => return refused_action(&request, &render, refusal),
    };
    let decided = write::patch(&state, &name, "access", |config_map| {
        decide::set_access(&user.identity, render.config(), &name, config_map, asked)
    })
    .await;
    match decided {
        Ok(level) => {
            tracing::info!(user = %user.identity, env = %name, %level, "access level changed");
            if let Some(cm) = state.cached(&name) {
                write::record(
                    &state,
                    &cm,
                    "AccessChanged",
                    format!("{} set who may open it to {level}", user.identity),
                );
            }
            done(
                &request,
                &Render::new(&request, &user, &state),
                "notice.html",
                Notice::ok(format!("{name} is now open to: {}.", access_label(level))),
            )
        }
        Err(WriteError::Refused(refusal)) => refused_action(&request, &render, refusal),
        Err(WriteError::Cluster(error)) => Err(error.into()),
    }
}

pub async fn create_link(
    request: HttpRequest,
    user: User,
    name: EnvName,
    form: web::Form<LinkForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let render = Render::new(&request, &user, &state);
    if state.signing_keys.is_none() {
        let refusal = Refusal::NotAllowed(
            "share links need the signing keys (ephdash --signing-keys)".into(),
        );
        return refused_action(&request, &render, refusal);
    }
    let lifetime = match ephemerator_core::duration::parse_duration(form.lifetime.trim()) {
        Ok(lifetime) => lifetime,
        Err(problem) => {
            return refused_action(&request, &render, Refusal::NotAllowed(problem.to_string()));
        }
    };
    let Some(id) = random_token(9) else {
        return Err(DashError::Internal("no randomness for a link id".into()));
    };
    let new = decide::NewLink {
        id,
        lifetime,
        label: form.label.clone(),
    };
    let decided = write::patch(&state, &name, "share_link", |config_map| {
        decide::create_link(
            &user.identity,
            render.config(),
            &name,
            config_map,
            &new,
            Timestamp::now(),
        )
    })
    .await;
    match decided {
        Ok(link) => {
            tracing::info!(user = %user.identity, env = %name, link = %link.id, "share link made");
            if let Some(cm) = state.cached(&name) {
                let label = if link.label.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", link.label)
                };
                write::record(
                    &state,
                    &cm,
                    "ShareLinkCreated",
                    format!(
                        "{} made share link {}{label}, until {}",
                        user.identity,
                        link.id,
                        link.expires.strftime("%Y-%m-%d %H:%M UTC")
                    ),
                );
            }
            to_env_page(
                &request,
                &user,
                &state,
                &name,
                Notice::ok("Share link made: copy it below."),
            )
        }
        Err(WriteError::Refused(refusal)) => refused_action(&request, &render, refusal),
        Err(WriteError::Cluster(error)) => Err(error.into()),
    }
}

pub async fn revoke_link(
    request: HttpRequest,
    user: User,
    name: EnvName,
    id: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    let (_, id) = id.into_inner();
    revoke(request, user, name, Some(id), form, state).await
}

pub async fn revoke_links(
    request: HttpRequest,
    user: User,
    name: EnvName,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    revoke(request, user, name, None, form, state).await
}

async fn revoke(
    request: HttpRequest,
    user: User,
    name: EnvName,
    id: Option<String>,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let render = Render::new(&request, &user, &state);
    let decided = write::patch(&state, &name, "share_link", |config_map| {
        decide::revoke_links(
            &user.identity,
            render.config(),
            &name,
            config_map,
            id.as_deref(),
        )
    })
    .await;
    match decided {
        Ok(revoked) => {
            let ids: Vec<&str> = revoked.iter().map(|link| link.id.as_str()).collect();
            tracing::info!(user = %user.identity, env = %name, ?ids, "share links revoked");
            if let Some(cm) = state.cached(&name)
                && !ids.is_empty()
            {
                write::record(
                    &state,
                    &cm,
                    "ShareLinkRevoked",
                    format!("{} revoked share link {}", user.identity, ids.join(", ")),
                );
            }
            let text = match revoked.len() {
                1 => "The link was revoked: it opens nothing any more.".to_string(),
                n => format!("{n} links were revoked."),
            };
            to_env_page(&request, &user, &state, &name, Notice::ok(text))
        }
        Err(WriteError::Refused(refusal)) => refused_action(&request, &render, refusal),
        Err(WriteError::Cluster(error)) => Err(error.into()),
    }
}

pub async fn wake(
    request: HttpRequest,
    user: User,
    name: EnvName,
    form: web::Form<WakeForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let render = Render::new(&request, &user, &state);
    let decided = write::patch(&state, &name, "wake", |config_map| {
        decide::wake(&user.identity, render.config(), &name, config_map)
    })
    .await;
    match decided {
        // ephctrl wakes it, says who asked (its message and Event), and removes the annotation.
        Ok(()) => {
            tracing::info!(user = %user.identity, env = %name, "wake asked");
            back(
                &request,
                &user,
                &state,
                &name,
                &form.back,
                Notice::ok(format!(
                    "Waking {name}: its runner starts again in a moment."
                )),
            )
        }
        Err(WriteError::Refused(refusal)) => refused_action(&request, &render, refusal),
        Err(WriteError::Cluster(error)) => Err(error.into()),
    }
}

pub async fn keep_awake(
    request: HttpRequest,
    user: User,
    name: EnvName,
    form: web::Form<KeepAwakeForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let render = Render::new(&request, &user, &state);
    let asked = match form.on.trim() {
        "true" => true,
        "false" => false,
        _ => {
            let refusal = Refusal::NotAllowed("keep-awake is either on=true or on=false".into());
            return refused_action(&request, &render, refusal);
        }
    };
    let decided = write::patch(&state, &name, "keep_awake", |config_map| {
        decide::keep_awake(&user.identity, render.config(), &name, config_map, asked)
    })
    .await;
    match decided {
        Ok(on) => {
            tracing::info!(user = %user.identity, env = %name, on, "keep-awake changed");
            if let Some(cm) = state.cached(&name) {
                let note = if on {
                    format!("{} keeps it awake", user.identity)
                } else {
                    format!("{} lets it sleep when unused", user.identity)
                };
                write::record(&state, &cm, "KeepAwakeChanged", note);
            }
            let text = match (on, render.config().sleep_after) {
                (true, _) => format!("{name} is kept awake: it will not sleep."),
                (false, Some(after)) => {
                    format!("{name} sleeps again after {} unused.", span(after))
                }
                (false, None) => format!("{name} sleeps again when unused."),
            };
            back(&request, &user, &state, &name, &form.back, Notice::ok(text))
        }
        Err(WriteError::Refused(refusal)) => refused_action(&request, &render, refusal),
        Err(WriteError::Cluster(error)) => Err(error.into()),
    }
}

/// After a Wake or keep-awake: htmx gets the notice (and the list refreshes); a plain post goes
/// back where its form was, the env's page (`back=env`) or the list.
fn back(
    request: &HttpRequest,
    user: &User,
    state: &AppState,
    name: &str,
    back: &str,
    notice: Notice,
) -> Result<HttpResponse, DashError> {
    if back == "env" {
        return to_env_page(request, user, state, name, notice);
    }
    done(
        request,
        &Render::new(request, user, state),
        "notice.html",
        notice,
    )
}

/// After a share link action: back to the env's page (post, redirect, get), which lists the
/// links; htmx gets the notice.
fn to_env_page(
    request: &HttpRequest,
    user: &User,
    state: &AppState,
    name: &str,
    notice: Notice,
) -> Result<HttpResponse, DashError> {
    if is_htmx(request) {
        return done(
            request,
            &Render::new(request, user, state),
            "notice.html",
            notice,
        );
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/envs/{name}")))
        .finish())
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
