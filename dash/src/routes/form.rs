//! The create form's lists, refreshed by htmx as the user picks: the repo's branches, then the
//! branch's Tiltfiles. A repo entry's own lists (config `branches`, `paths`) win; otherwise they
//! are discovered from git ([`crate::discovery`]); when that fails the field says why and stays
//! a free text field.

use actix_web::{HttpRequest, HttpResponse, web};
use ephemerator_core::RepoEntry;
use serde::Deserialize;

use crate::discovery::DiscoveryError;
use crate::error::DashError;
use crate::identity::User;
use crate::render::{Render, Rows, html};
use crate::state::AppState;
use crate::views::FormView;

/// `?repo=URL&branch=NAME`.
#[derive(Debug, Deserialize)]
pub struct FormQuery {
    #[serde(default)]
    pub repo: String,
    #[serde(default)]
    pub branch: String,
}

/// The options of one field and a note on where they came from.
struct Options {
    values: Vec<String>,
    note: Option<String>,
}

fn options(
    allowed: &[String],
    discovered: Option<Result<Vec<String>, DiscoveryError>>,
    what: &str,
) -> Options {
    if !allowed.is_empty() {
        return Options {
            values: allowed.to_vec(),
            note: None,
        };
    }
    match discovered {
        Some(Ok(values)) if values.is_empty() => Options {
            values,
            note: Some(format!("No {what} found: type one.")),
        },
        Some(Ok(values)) => Options { values, note: None },
        Some(Err(error)) => {
            let mut reason = error.to_string();
            if reason.len() > 160 {
                let mut end = 160;
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                reason.truncate(end);
                reason.push('…');
            }
            Options {
                values: Vec::new(),
                note: Some(format!("Could not list the {what} ({reason}): type one.")),
            }
        }
        None => Options {
            values: Vec::new(),
            note: None,
        },
    }
}

/// The allow-list entry of the repo asked about, in the config in force.
fn allowed_entry(render: &Render<'_>, query: &FormQuery) -> Option<RepoEntry> {
    render.config().repo_entry(query.repo.trim()).cloned()
}

/// The branch field (and, out of band, the path field for the branch it offers first).
pub async fn branches(
    request: HttpRequest,
    user: User,
    query: web::Query<FormQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    let render = Render::new(&request, &user, &state);
    let Some(entry) = allowed_entry(&render, &query) else {
        return not_allowed(&render);
    };
    let discovered = if entry.branches.is_empty() {
        Some(state.discovery.branches(&entry.url, &user.identity).await)
    } else {
        None
    };
    let branches = options(&entry.branches, discovered, "branches");
    let branch = match query.branch.trim() {
        "" => branches.values.first().cloned().unwrap_or_default(),
        typed => typed.to_string(),
    };
    let paths = path_options(&state, &user, &entry, &branch).await;
    let mut context = form_context(&render, &entry, &branch, &branches, &paths);
    context.insert("oob", &true);
    let body = render.template("branch_field.html", &context)?
        + &render.template("path_field.html", &context)?;
    html(200, body)
}

/// The path field for the chosen branch.
pub async fn paths(
    request: HttpRequest,
    user: User,
    query: web::Query<FormQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    let render = Render::new(&request, &user, &state);
    let Some(entry) = allowed_entry(&render, &query) else {
        return not_allowed(&render);
    };
    let branch = query.branch.trim().to_string();
    let paths = path_options(&state, &user, &entry, &branch).await;
    let none = Options {
        values: Vec::new(),
        note: None,
    };
    let context = form_context(&render, &entry, &branch, &none, &paths);
    html(200, render.template("path_field.html", &context)?)
}

async fn path_options(state: &AppState, user: &User, entry: &RepoEntry, branch: &str) -> Options {
    let discovered = if branch.is_empty() || !entry.paths.is_empty() {
        None
    } else {
        Some(
            state
                .discovery
                .tiltfiles(&entry.url, branch, &user.identity)
                .await,
        )
    };
    options(&entry.paths, discovered, "Tiltfiles")
}

fn form_context(
    render: &Render<'_>,
    entry: &RepoEntry,
    branch: &str,
    branches: &Options,
    paths: &Options,
) -> tera::Context {
    let form = FormView {
        repo: entry.url.clone(),
        branch: branch.to_string(),
        path: paths.values.first().cloned().unwrap_or_default(),
        ..FormView::default()
    };
    let mut context = render.context(Rows::None, form, None);
    context.insert("discovered", &true);
    context.insert("oob", &false);
    context.insert("branch_options", &branches.values);
    context.insert("branch_note", &branches.note);
    context.insert("path_options", &paths.values);
    context.insert("path_note", &paths.note);
    context
}

/// A repo that is not on the allow-list: nothing is fetched.
fn not_allowed(render: &Render<'_>) -> Result<HttpResponse, DashError> {
    let none: Vec<String> = Vec::new();
    let mut context = render.context(Rows::None, FormView::default(), None);
    context.insert("discovered", &true);
    context.insert("oob", &false);
    context.insert("branch_options", &none);
    context.insert(
        "branch_note",
        &Some("That repository is not on the allow-list."),
    );
    html(422, render.template("branch_field.html", &context)?)
}
