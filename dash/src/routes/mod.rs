//! The route table of ephdash. Every route is thin: read the request, call a decision in
//! [`crate::decide`] or a view in [`crate::views`], write, render.
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
//! | GET | `/healthz`, `/readyz`, `/metrics` | operations |
//! | GET | `/assets/...` | static files |

pub mod actions;
pub mod env_page;
pub mod form;
pub mod health;
pub mod page;

use actix_web::web;

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
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}
