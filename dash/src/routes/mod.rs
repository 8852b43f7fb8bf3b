//! The route table of ephdash. Every route is thin: read the request (its checked inputs are
//! the extractors here: [`EnvName`], [`User`]), decide ([`crate::decide`], pure), write
//! ([`crate::write`]), render ([`crate::render`], one per request).
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/` | the page: env list, quota, create form (`?show=mine`) |
//! | GET | `/envs` | the env list fragment (htmx polls it) |
//! | POST | `/envs` | create an env |
//! | GET | `/form/branches` | the create form's branch field for `?repo=` (and its Tiltfiles) |
//! | GET | `/form/paths` | the create form's Tiltfile field for `?repo=&branch=` |
//! | GET | `/envs/{name}` | one env: status, Events, setup logs |
//! | GET | `/envs/{name}/logs` | the setup logs fragment (htmx follows it) |
//! | POST | `/envs/{name}/extend` | extend an env |
//! | POST | `/envs/{name}/delete` | delete an env |
//! | POST | `/envs/{name}/access` | set who may open it (`level`) |
//! | POST | `/envs/{name}/links` | make a share link (`label`, `lifetime`) |
//! | POST | `/envs/{name}/links/{id}/revoke` | revoke one share link |
//! | POST | `/envs/{name}/links/revoke-all` | revoke every share link |
//! | POST | `/envs/{name}/wake` | wake a sleeping env (anyone it admits; `back=env`: answer with its page) |
//! | POST | `/envs/{name}/keep-awake` | keep it from sleeping, or not (owner or admin; `on=true`/`on=false`; `back`) |
//! | GET | `/assets/...` | static files |
//!
//! `/healthz`, `/readyz` and `/metrics` are on the admin listener (see [`crate::startup`]),
//! never on this one: the gateway forwards every path of the dashboard's host here.

pub mod actions;
pub mod env_page;
pub mod form;
pub mod page;

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use ephemerator_core::names::is_valid_env_name;

use crate::decide::Refusal;
use crate::error::DashError;
use crate::identity::User;
use crate::state::AppState;

/// The `{name}` of an env route, checked: a name that cannot be an env's is a 404 before any
/// API call (it would otherwise reach an API request's URL or a label selector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvName(pub String);

impl std::ops::Deref for EnvName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EnvName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromRequest for EnvName {
    type Error = DashError;
    type Future = Ready<Result<EnvName, DashError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let name = request.match_info().get("name").unwrap_or("");
        ready(if is_valid_env_name(name) {
            Ok(EnvName(name.to_string()))
        } else {
            // Shown escaped, and cut: it is whatever the client put in the URL.
            let shown: String = name.chars().take(64).collect();
            Err(DashError::Refused(Refusal::NoSuchEnv(shown)))
        })
    }
}

/// The signed-in user, from the headers the configured source trusts; an admin when the config
/// in force lists them.
impl FromRequest for User {
    type Error = DashError;
    type Future = Ready<Result<User, DashError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = request.app_data::<web::Data<AppState>>() else {
            return ready(Err(DashError::Internal("no application state".into())));
        };
        let user = state
            .identity
            .identify(&state.identity_from, request)
            .map(|identity| {
                // The request's log line names who made it.
                if let Some(span) = request.extensions().get::<tracing_actix_web::RootSpan>() {
                    span.record("user", identity.as_str());
                }
                User {
                    admin: state.config.current().is_admin(&identity),
                    identity,
                }
            });
        ready(user)
    }
}

/// Registers every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(page::page))
        .route("/envs", web::get().to(page::env_list))
        .route("/envs", web::post().to(actions::create))
        .route("/form/branches", web::get().to(form::branches))
        .route("/form/paths", web::get().to(form::paths))
        .route("/envs/{name}", web::get().to(env_page::env_page))
        .route("/envs/{name}/logs", web::get().to(env_page::env_logs))
        .route("/envs/{name}/extend", web::post().to(actions::extend))
        .route("/envs/{name}/delete", web::post().to(actions::delete))
        .route("/envs/{name}/access", web::post().to(actions::set_access))
        .route("/envs/{name}/links", web::post().to(actions::create_link))
        .route(
            "/envs/{name}/links/revoke-all",
            web::post().to(actions::revoke_links),
        )
        .route(
            "/envs/{name}/links/{id}/revoke",
            web::post().to(actions::revoke_link),
        )
        .route("/envs/{name}/wake", web::post().to(actions::wake))
        .route(
            "/envs/{name}/keep-awake",
            web::post().to(actions::keep_awake),
        );
}
