//! The page and its env-list fragment: the same templates render both.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use jiff::Timestamp;
use serde::Deserialize;

use crate::decide::quota;
use crate::error::DashError;
use crate::fragment_cache::{Row, Stamp};
use crate::identity::User;
use crate::state::AppState;
use crate::views::{FormView, LinkBase, Notice, QuotaView, env_view};

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
    let mut context = context(&user, &state, Rows::List(rows), FormView::default(), None);
    let list = state.templates.render("env_list.html", &context)?;
    // The quota changes with the list (an expiry, a delete elsewhere), and an admin's config
    // banner comes and goes with a reload: both refreshed with it.
    context.insert("oob", &true);
    let body = list
        + &state.templates.render("quota.html", &context)?
        + &state.templates.render("config_banner.html", &context)?;
    Ok(response.content_type("text/html; charset=utf-8").body(body))
}

/// Now, and the [`Stamp`] rows rendered now belong to: read together, and the generation
/// before anything is read from the caches (a change meanwhile makes the next request render
/// again).
fn now_and_stamp(state: &AppState) -> (Timestamp, Stamp) {
    let generation = state.generation.current();
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
/// name, as one HTML string, from the [`crate::fragment_cache::RowCache`] or rendered now and
/// kept there. A row only its owner and admins can change carries the viewer's buttons and
/// token, and is kept for that viewer alone; every other row is the one all viewers share.
pub fn list_rows(
    state: &AppState,
    user: &User,
    links: &LinkBase,
    mine_only: bool,
    now: Timestamp,
    stamp: Stamp,
    csrf: &str,
) -> Result<ListRows, DashError> {
    let snapshot = state.snapshot();
    let config = state.config.current();
    let own = snapshot
        .envs
        .iter()
        .filter(|(_, env)| env.owner == user.identity);
    let team = snapshot
        .envs
        .iter()
        .filter(|(_, env)| !mine_only && env.owner != user.identity);
    let rows: Vec<&(
        std::sync::Arc<k8s_openapi::api::core::v1::ConfigMap>,
        ephemerator_core::Env,
    )> = own.chain(team).collect();
    let personal = |env: &ephemerator_core::Env| user.admin || env.owner == user.identity;
    // A row with one person's buttons is kept under that person and token too: it is theirs
    // alone, and the byte bound covers it like every other row.
    let keys: Vec<String> = rows
        .iter()
        .map(|(_, env)| {
            if personal(env) {
                format!("{}\0{}\0{}\0{csrf}", env.name, user.identity, user.admin)
            } else {
                env.name.clone()
            }
        })
        .collect();
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut kept = state.rows.get(stamp, links, &names).into_iter();
    let render = |cm, env: &ephemerator_core::Env, csrf: &str| -> Result<String, DashError> {
        let mut view = env_view(cm, env, user, &config, links, now);
        view.events = snapshot.events.get(&env.name).cloned().unwrap_or_default();
        let mut context = tera::Context::new();
        context.insert("env", &view);
        context.insert("csrf", csrf);
        Ok(state.templates.render("env_row.html", &context)?)
    };
    let mut html = String::new();
    let mut fresh = Vec::new();
    for ((cm, env), key) in rows.iter().zip(keys) {
        match kept.next().flatten() {
            Some(row) => html.push_str(&row),
            None => {
                let row = render(cm, env, if personal(env) { csrf } else { "" })?;
                html.push_str(&row);
                fresh.push((key, Row::from(row)));
            }
        }
    }
    if !fresh.is_empty() {
        state.rows.put(stamp, links, fresh);
    }
    // Also when nothing was kept: a newer stamp dropped the older rows.
    state.metrics.shared_rows_bytes(state.rows.bytes());
    Ok(ListRows {
        mine_only,
        empty: rows.is_empty(),
        html,
    })
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
    let context = context(user, state, Rows::List(rows), form, notice);
    html(status, state.templates.render("page.html", &context)?)
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// No env rows.
    None,
    /// The rows, made with [`list_rows`].
    List(ListRows),
}

/// The env rows a list shows, ready to be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRows {
    /// Only the user's envs.
    pub mine_only: bool,
    /// No row at all.
    pub empty: bool,
    /// The rows' HTML (escaped when rendered).
    pub html: String,
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
    rows: Rows,
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
        context.insert("rows", &list.html);
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
    let status = actix_web::http::StatusCode::from_u16(status)
        .map_err(|error| DashError::Internal(error.to_string()))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}
