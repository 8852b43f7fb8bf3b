//! The page and its env-list fragment: the same templates render both.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use jiff::Timestamp;
use serde::Deserialize;

use crate::chunked::{Chunked, ROWS_MARKER};
use crate::decide::quota;
use crate::error::DashError;
use crate::fragment_cache::{Row, SharedList, Stamp};
use crate::identity::User;
use crate::state::AppState;
use crate::views::{FormView, LinkBase, Notice, QuotaView, env_view};
use k8s_openapi::api::core::v1::ConfigMap;

/// `?show=mine` or `?show=all` (the default).
#[derive(Debug, Deserialize, Default)]
pub struct Show {
    #[serde(default)]
    pub show: Option<String>,
}

impl Show {
    fn mine_only(&self) -> bool {
        self.show.as_deref() == Some("mine")
    }
}

pub async fn page(
    request: HttpRequest,
    user: User,
    show: web::Query<Show>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    render_page(
        &request,
        &user,
        &state,
        show.mine_only(),
        FormView::default(),
        None,
        200,
    )
}

pub async fn env_list(
    request: HttpRequest,
    user: User,
    show: web::Query<Show>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    let mine_only = show.mine_only();
    let links = LinkBase::of(&request);
    let (now, stamp) = now_and_stamp(&state);
    let csrf = state.csrf.token(&user.identity);
    // The answer is a function of these alone, so a revalidating browser is answered before
    // anything is assembled.
    let etag = list_etag(
        stamp,
        &user,
        mine_only,
        &links,
        &config_refused(&user, &state),
        &csrf,
    );
    let revalidated = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if revalidated {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"));
    if revalidated {
        return Ok(response.finish());
    }
    let rows = list_rows(&state, &user, &links, mine_only, now, stamp, &csrf)?;
    let mut context = context(&user, &state, Rows::List(&rows), FormView::default(), None);
    let mut body = Chunked::new();
    body.push_spliced(
        state.templates.render("env_list.html", &context)?,
        &rows.rows,
    );
    // The quota changes with the list (an expiry, a delete elsewhere), and an admin's config
    // banner comes and goes with a reload: both refreshed with it.
    context.insert("oob", &true);
    body.push(state.templates.render("quota.html", &context)?);
    body.push(state.templates.render("config_banner.html", &context)?);
    Ok(response.content_type("text/html; charset=utf-8").body(body))
}

/// Now, and the [`Stamp`] rows rendered now belong to: read together, and the generation
/// before anything is read from the caches (a change meanwhile makes the next request render
/// again).
fn now_and_stamp(state: &AppState) -> (Timestamp, Stamp) {
    let generation = state.snapshot().generation;
    let now = Timestamp::now();
    let stamp = Stamp {
        generation,
        minute: now.as_second().div_euclid(60),
    };
    (now, stamp)
}

/// The list fragment's entity tag: everything its body is made from.
fn list_etag(
    stamp: Stamp,
    user: &User,
    mine_only: bool,
    links: &LinkBase,
    config_refused: &Option<String>,
    csrf: &str,
) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (
        &user.identity,
        user.admin,
        mine_only,
        links,
        config_refused,
        csrf,
    )
        .hash(&mut hasher);
    format!(
        "\"{:x}-{:x}-{:x}\"",
        stamp.generation,
        stamp.minute,
        hasher.finish()
    )
}

/// The rows `user` sees, theirs first and then the team's (unless `mine_only`), each group by
/// name, from the [`crate::fragment_cache::RowCache`] or rendered now and kept there. A row
/// only its owner and admins can change carries the viewer's buttons and token, and is kept
/// for that viewer alone; the team's rows are slices of the list every viewer shares.
pub fn list_rows(
    state: &AppState,
    user: &User,
    links: &LinkBase,
    mine_only: bool,
    now: Timestamp,
    stamp: Stamp,
    csrf: &str,
) -> Result<ListRows, DashError> {
    let snapshot = state.snapshot_at(stamp.generation);
    let config = state.config.current();
    let render = |cm: &ConfigMap, env: &ephemerator_core::Env, viewer: &User, csrf: &str| {
        let mut view = env_view(cm, env, viewer, &config, links, now);
        view.events = snapshot.events.get(&env.name).cloned().unwrap_or_default();
        let mut context = tera::Context::new();
        context.insert("env", &view);
        context.insert("csrf", csrf);
        state.templates.render("env_row.html", &context)
    };
    let personal = |env: &ephemerator_core::Env| user.admin || env.owner == user.identity;
    let own = |env: &ephemerator_core::Env| env.owner == user.identity;
    // Theirs first, then (for an admin, whose every row is personal) the team's.
    let personal_rows = snapshot.envs.iter().filter(|(_, env)| own(env)).chain(
        snapshot
            .envs
            .iter()
            .filter(|(_, env)| user.admin && !mine_only && !own(env)),
    );
    let mut pieces = personal_rows_of(state, stamp, links, user, csrf, personal_rows, &render)?;
    if !mine_only && !user.admin {
        let list = match state.rows.list(stamp, links) {
            Some(list) => list,
            None => {
                // The shared form: seen by someone who is neither its owner nor an admin.
                let nobody = User {
                    identity: String::new(),
                    admin: false,
                };
                let rows: Result<Vec<String>, _> = snapshot
                    .envs
                    .iter()
                    .map(|(cm, env)| render(cm, env, &nobody, ""))
                    .collect();
                let list = std::sync::Arc::new(SharedList::join(rows?));
                state.rows.put_list(stamp, links, list.clone());
                list
            }
        };
        pieces.extend(list.pick(|index| {
            snapshot
                .envs
                .get(index)
                .is_some_and(|(_, env)| !personal(env))
        }));
    }
    // Also when nothing was kept: a newer stamp dropped the older rows.
    state.metrics.shared_rows_bytes(state.rows.bytes());
    let empty = if mine_only {
        !snapshot.envs.iter().any(|(_, env)| own(env))
    } else {
        snapshot.envs.is_empty()
    };
    Ok(ListRows {
        mine_only,
        empty,
        rows: pieces,
    })
}

/// The rows of `envs` with `user`'s buttons and token, kept under the env, the person and the
/// token: they are theirs alone, and the byte bound covers them like every other row.
fn personal_rows_of<'a>(
    state: &AppState,
    stamp: Stamp,
    links: &LinkBase,
    user: &User,
    csrf: &str,
    envs: impl Iterator<Item = &'a (std::sync::Arc<ConfigMap>, ephemerator_core::Env)>,
    render: &dyn Fn(&ConfigMap, &ephemerator_core::Env, &User, &str) -> tera::Result<String>,
) -> Result<Vec<Row>, DashError> {
    let envs: Vec<_> = envs.collect();
    let keys: Vec<String> = envs
        .iter()
        .map(|(_, env)| format!("{}\0{}\0{}\0{csrf}", env.name, user.identity, user.admin))
        .collect();
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let kept = state.rows.get(stamp, links, &names);
    let mut rows = Vec::with_capacity(envs.len());
    let mut fresh = Vec::new();
    for (((cm, env), key), kept) in envs.into_iter().zip(keys).zip(kept) {
        match kept {
            Some(row) => rows.push(row),
            None => {
                let row = Row::from(render(cm, env, user, csrf)?);
                rows.push(row.clone());
                fresh.push((key, row));
            }
        }
    }
    if !fresh.is_empty() {
        state.rows.put(stamp, links, fresh);
    }
    Ok(rows)
}

/// The whole page, with the form as given and an optional notice (a refused action).
pub fn render_page(
    request: &HttpRequest,
    user: &User,
    state: &AppState,
    mine_only: bool,
    form: FormView,
    notice: Option<Notice>,
    status: u16,
) -> Result<HttpResponse, DashError> {
    let links = LinkBase::of(request);
    let (now, stamp) = now_and_stamp(state);
    let csrf = state.csrf.token(&user.identity);
    let rows = list_rows(state, user, &links, mine_only, now, stamp, &csrf)?;
    let context = context(user, state, Rows::List(&rows), form, notice);
    let mut body = Chunked::new();
    body.push_spliced(state.templates.render("page.html", &context)?, &rows.rows);
    Ok(HttpResponse::build(status_code(status)?)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// Renders one fragment template that shows no env rows (a form, a field, a notice).
pub fn render_fragment(
    user: &User,
    state: &AppState,
    template: &str,
    form: FormView,
    notice: Option<Notice>,
    status: u16,
) -> Result<HttpResponse, DashError> {
    let context = context(user, state, Rows::None, form, notice);
    html(status, state.templates.render(template, &context)?)
}

/// What a template needs besides the basics: the env list (the page and the list fragment)
/// or not (forms, notices, fields): building 1,000 rows is the costly part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows<'a> {
    /// No env rows.
    None,
    /// The rows, made with [`list_rows`]; the template gets [`ROWS_MARKER`] where they go.
    List(&'a ListRows),
}

/// The env rows a list shows, ready to be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRows {
    /// Only the user's envs.
    pub mine_only: bool,
    /// No row at all.
    pub empty: bool,
    /// Each row's HTML (escaped when rendered), in order.
    pub rows: Vec<Row>,
}

/// Everything the templates read.
/// Why the config file's current content was refused, for admins only: they see a banner
/// until it is fixed (everyone keeps working on the last good config meanwhile).
fn config_refused(user: &User, state: &AppState) -> Option<String> {
    user.admin.then(|| state.config.report().error).flatten()
}

pub fn context(
    user: &User,
    state: &AppState,
    rows: Rows<'_>,
    form: FormView,
    notice: Option<Notice>,
) -> tera::Context {
    let snapshot = state.snapshot();
    let (used, max) = quota(
        snapshot.envs.iter().map(|(_, env)| env),
        &user.identity,
        &state.config.current(),
    );
    let mut context = tera::Context::new();
    context.insert("user", &user.identity);
    context.insert("admin", &user.admin);
    context.insert("config_refused", &config_refused(user, state));
    context.insert("config_generation", &state.config.report().generation);
    context.insert("csrf", &state.csrf.token(&user.identity));
    let mine_only = matches!(&rows, Rows::List(list) if list.mine_only);
    context.insert("show", if mine_only { "mine" } else { "all" });
    if let Rows::List(list) = rows {
        context.insert("rows", ROWS_MARKER);
        context.insert("empty", &list.empty);
    }
    context.insert(
        "quota",
        &QuotaView {
            used,
            max,
            full: used >= max,
        },
    );
    context.insert("repos", &state.config.current().allowed_repo_urls());
    context.insert("form", &form);
    context.insert("notice", &notice);
    context.insert("gateway_host", &state.config.current().gateway_host);
    // The form's lists load after the page (git discovery never delays it); see `form.rs`.
    let none: Vec<String> = Vec::new();
    context.insert("discovered", &false);
    context.insert("oob", &false);
    context.insert("branch_options", &none);
    context.insert("branch_note", &None::<String>);
    context.insert("path_options", &none);
    context.insert("path_note", &None::<String>);
    context
}

pub fn html(status: u16, body: String) -> Result<HttpResponse, DashError> {
    Ok(HttpResponse::build(status_code(status)?)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

fn status_code(status: u16) -> Result<actix_web::http::StatusCode, DashError> {
    actix_web::http::StatusCode::from_u16(status)
        .map_err(|error| DashError::Internal(error.to_string()))
}
