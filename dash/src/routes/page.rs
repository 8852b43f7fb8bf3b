//! The page and its env-list fragment: the same templates render both.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use jiff::Timestamp;
use serde::Deserialize;

use crate::decide::quota;
use crate::error::DashError;
use crate::fragment_cache::Key;
use crate::identity::User;
use crate::state::AppState;
use crate::views::{FormView, LinkBase, Notice, QuotaView, env_views};

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
    let key = Key {
        user: user.identity.clone(),
        mine_only: show.mine_only(),
        links: LinkBase::of(&request),
        config_refused: config_refused(&user, &state),
    };
    // Read before rendering: a change during the render makes the next poll render again.
    let generation = state.generation.current();
    let minute = Timestamp::now().as_second().div_euclid(60);
    let rendered = match state.fragments.get(&key, generation, minute) {
        Some(rendered) => rendered,
        None => {
            let rows = Rows::List {
                mine_only: show.mine_only(),
            };
            let mut context = context(&request, &user, &state, rows, FormView::default(), None);
            let list = state.templates.render("env_list.html", &context)?;
            // The quota changes with the list (an expiry, a delete elsewhere), and an admin's
            // config banner comes and goes with a reload: both refreshed with it.
            context.insert("oob", &true);
            let body = list
                + &state.templates.render("quota.html", &context)?
                + &state.templates.render("config_banner.html", &context)?;
            state.fragments.put(key, generation, minute, body)
        }
    };
    let revalidated = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == rendered.etag));
    let mut response = if revalidated {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, rendered.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"));
    if revalidated {
        return Ok(response.finish());
    }
    Ok(response
        .content_type("text/html; charset=utf-8")
        .body(rendered.body))
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
    let context = context(request, user, state, Rows::List { mine_only }, form, notice);
    html(status, state.templates.render("page.html", &context)?)
}

/// Renders one fragment template that shows no env rows (a form, a field, a notice).
pub fn render_fragment(
    request: &HttpRequest,
    user: &User,
    state: &AppState,
    template: &str,
    form: FormView,
    notice: Option<Notice>,
    status: u16,
) -> Result<HttpResponse, DashError> {
    let context = context(request, user, state, Rows::None, form, notice);
    html(status, state.templates.render(template, &context)?)
}

/// What a template needs besides the basics: the env list (the page and the list fragment)
/// or not (forms, notices, fields): building 1,000 rows is the costly part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// No env rows.
    None,
    /// Every env (or, with `mine_only`, the user's).
    List { mine_only: bool },
}

/// Everything the templates read.
/// Why the config file's current content was refused, for admins only: they see a banner
/// until it is fixed (everyone keeps working on the last good config meanwhile).
fn config_refused(user: &User, state: &AppState) -> Option<String> {
    user.admin.then(|| state.config.report().error).flatten()
}

pub fn context(
    request: &HttpRequest,
    user: &User,
    state: &AppState,
    rows: Rows,
    form: FormView,
    notice: Option<Notice>,
) -> tera::Context {
    let envs = state.env_list();
    let (used, max) = quota(
        envs.iter().map(|(_, env)| env),
        &user.identity,
        &state.config.current(),
    );
    let mut context = tera::Context::new();
    context.insert("user", &user.identity);
    context.insert("admin", &user.admin);
    context.insert("config_refused", &config_refused(user, state));
    context.insert("config_generation", &state.config.report().generation);
    context.insert("csrf", &state.csrf.token(&user.identity));
    let mine_only = matches!(rows, Rows::List { mine_only: true });
    context.insert("show", if mine_only { "mine" } else { "all" });
    if let Rows::List { mine_only } = rows {
        let links = LinkBase::of(request);
        context.insert(
            "envs",
            &env_views(
                &envs,
                &state.events.state(),
                user,
                &state.config.current(),
                &links,
                Timestamp::now(),
                mine_only,
            ),
        );
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
