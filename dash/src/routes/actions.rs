//! Create, extend and delete: check the CSRF token, decide (pure, [`crate::decide`]), write
//! the ConfigMap, answer. htmx requests get a fragment in place (with the user's input kept on
//! a refusal); plain form posts get a redirect to the page, or the page with the refusal.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ephemerator_core::EnvSpec;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde::Deserialize;

use crate::csrf::same_origin;
use crate::decide::{self, Refusal};
use crate::error::DashError;
use crate::identity::User;
use crate::routes::EnvName;
use crate::routes::page::{render_fragment, render_page};
use crate::state::AppState;
use crate::views::{FormView, Notice};

/// Field manager of the dashboard's writes.
pub const FIELD_MANAGER: &str = "ephdash";
/// Attempts of an extend whose precondition failed (someone wrote meanwhile).
const EXTEND_ATTEMPTS: usize = 3;

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
    let envs: Vec<_> = state.env_list().into_iter().map(|(_, env)| env).collect();
    let config_map = match decide::create(
        &user.identity,
        &spec,
        &state.config.current(),
        &envs,
        Timestamp::now(),
    ) {
        Ok(config_map) => config_map,
        Err(refusal) => return refused_create(&request, &user, &state, kept, refusal),
    };
    let name = config_map.metadata.name.clone().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(state.client.clone(), &state.namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    match api.create(&params, &config_map).await {
        Ok(_) => {
            state.metrics.write("create", "ok");
            tracing::info!(user = %user.identity, env = %name, "env created");
            // The answer shows the new quota, so it waits (briefly) for the cache to see it.
            cache_catches_up(&state, &name, true).await;
            done(
                &request,
                &user,
                &state,
                "create_form.html",
                Notice::ok(format!("Created {name}: its runner is starting.")),
            )
        }
        // AlreadyExists: never an overwrite.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            state.metrics.write("create", "conflict");
            refused_create(&request, &user, &state, kept, Refusal::Conflict(name))
        }
        Err(error) => {
            state.metrics.write("create", "error");
            let form = FormView {
                error: Some(DashError::Cluster(error).to_string()),
                ..kept
            };
            answer_refusal(&request, &user, &state, "create_form.html", form, None, 503)
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
    let api: Api<ConfigMap> = Api::namespaced(state.client.clone(), &state.namespace);
    let mut config_map = state.cached(&name).map(|cm| (*cm).clone());
    for _ in 0..EXTEND_ATTEMPTS {
        let (patch, to) = match decide::extend(
            &user.identity,
            &state.config.current(),
            &name,
            config_map.as_ref(),
            Timestamp::now(),
        ) {
            Ok(decision) => decision,
            Err(refusal) => return refused_action(&request, &user, &state, refusal),
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {
                state.metrics.write("extend", "ok");
                tracing::info!(user = %user.identity, env = %name, %to, "env extended");
                return done(
                    &request,
                    &user,
                    &state,
                    "notice.html",
                    Notice::ok(format!(
                        "{name} now expires at {}.",
                        to.strftime("%Y-%m-%d %H:%M UTC")
                    )),
                );
            }
            // Someone wrote meanwhile (ephctrl's fill-in, another click): decide again on
            // what is there now, never over it.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                state.metrics.write("extend", "conflict");
                config_map = api.get_opt(&name).await?;
            }
            Err(error) => {
                state.metrics.write("extend", "error");
                return Err(error.into());
            }
        }
    }
    refused_action(
        &request,
        &user,
        &state,
        Refusal::Broken {
            env: name.to_string(),
            reason: "it kept changing while it was extended; try again".to_string(),
        },
    )
}

pub async fn delete(
    request: HttpRequest,
    user: User,
    name: EnvName,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    check_csrf(&request, &user, &form.csrf, &state)?;
    let api: Api<ConfigMap> = Api::namespaced(state.client.clone(), &state.namespace);
    // Read fresh: the labels and the owner are checked on what is deleted, not on a cache.
    let current = api.get_opt(&name).await?;
    let uid = match decide::delete(
        &user.identity,
        &state.config.current(),
        &name,
        current.as_ref(),
    ) {
        Ok(uid) => uid,
        Err(refusal) => return refused_action(&request, &user, &state, refusal),
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            state.metrics.write("delete", "ok");
            tracing::info!(user = %user.identity, env = %name, "env deleted");
            cache_catches_up(&state, &name, false).await;
            done(
                &request,
                &user,
                &state,
                "notice.html",
                Notice::ok(format!("{name} is being deleted.")),
            )
        }
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            state.metrics.write("delete", "gone");
            refused_action(
                &request,
                &user,
                &state,
                Refusal::NoSuchEnv(name.to_string()),
            )
        }
        Err(error) => {
            state.metrics.write("delete", "error");
            Err(error.into())
        }
    }
}

/// Longest wait for the env cache to show a write the user just made.
const CACHE_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until the cache shows env `name` (`present`) or not, at most [`CACHE_CATCH_UP`]
/// (the watch event usually arrives within milliseconds), so the answer shows what was done.
async fn cache_catches_up(state: &AppState, name: &str, present: bool) {
    let until = tokio::time::Instant::now() + CACHE_CATCH_UP;
    while state.cached(name).is_some() != present && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
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
    user: &User,
    state: &AppState,
    template: &str,
    notice: Notice,
) -> Result<HttpResponse, DashError> {
    if !is_htmx(request) {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish());
    }
    let mut response = render_fragment(
        user,
        state,
        template,
        FormView::default(),
        Some(notice),
        200,
    )?;
    response.headers_mut().insert(
        header::HeaderName::from_static("hx-trigger"),
        header::HeaderValue::from_static("envs-changed"),
    );
    Ok(response)
}

fn refused_create(
    request: &HttpRequest,
    user: &User,
    state: &AppState,
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
    answer_refusal(request, user, state, "create_form.html", form, None, status)
}

fn refused_action(
    request: &HttpRequest,
    user: &User,
    state: &AppState,
    refusal: Refusal,
) -> Result<HttpResponse, DashError> {
    let status = refusal.status();
    answer_refusal(
        request,
        user,
        state,
        "notice.html",
        FormView::default(),
        Some(Notice::error(refusal.to_string())),
        status,
    )
}

/// A refusal in place (htmx) or on the whole page (a plain post), with the given status.
fn answer_refusal(
    request: &HttpRequest,
    user: &User,
    state: &AppState,
    template: &str,
    form: FormView,
    notice: Option<Notice>,
    status: u16,
) -> Result<HttpResponse, DashError> {
    if is_htmx(request) {
        render_fragment(user, state, template, form, notice, status)
    } else {
        render_page(request, user, state, false, form, notice, status)
    }
}
