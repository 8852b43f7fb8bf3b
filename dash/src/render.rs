//! Rendering: the one place templates are filled. Each request builds one [`Render`] from one
//! reading of everything an answer shows (the person, the config in force and its reload
//! report, the cached envs and Events, the time, the link base, the person's CSRF token), and
//! every template of its answer is filled from that, so one answer never mixes two configs or
//! two generations of the caches. The same templates render the page and its fragments.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::header;
use ephemerator_core::{Config, Env};
use ephemerator_kit::live_config::ReloadReport;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::chunked::{Chunked, ROWS_MARKER, TOKEN_MARKER};
use crate::decide::quota;
use crate::error::DashError;
use crate::fragment_cache::{Row, SharedList, Snapshot, Stamp};
use crate::identity::User;
use crate::state::AppState;
use crate::views::{
    AccessChoice, EnvView, FormView, LinkBase, LinkView, Notice, QuotaView, access_label, env_view,
    link_lifetimes, time_left,
};
use ephemerator_core::share::{LINK_PURPOSE, link_path, link_signed_data};

/// What one request renders from (see the module doc).
pub struct Render<'a> {
    state: &'a AppState,
    user: &'a User,
    config: Arc<Config>,
    report: ReloadReport,
    snapshot: Arc<Snapshot>,
    links: LinkBase,
    now: Timestamp,
    stamp: Stamp,
    csrf: String,
}

/// What a template needs besides the basics: the env list (the page and the list fragment)
/// or not (forms, notices, fields): building 1,000 rows is the costly part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows<'a> {
    /// No env rows.
    None,
    /// The rows, made with [`Render::list_rows`]; the template gets [`ROWS_MARKER`] where they
    /// go.
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

impl<'a> Render<'a> {
    /// Reads everything once. The cache generation is read before the time and anything else,
    /// so that a change meanwhile makes the next request render again (never the reverse).
    pub fn new(request: &actix_web::HttpRequest, user: &'a User, state: &'a AppState) -> Self {
        let snapshot = state.snapshot();
        let now = Timestamp::now();
        let stamp = Stamp {
            generation: snapshot.generation,
            minute: now.as_second().div_euclid(60),
        };
        Render {
            state,
            user,
            config: state.config.current(),
            report: state.config.report(),
            snapshot,
            links: LinkBase::of(request),
            now,
            stamp,
            csrf: state.csrf.token(&user.identity),
        }
    }

    /// The config this request runs on.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The cached envs and Events this request shows.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The person's CSRF token.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Links to env ports, as this request reached the dashboard.
    pub fn links(&self) -> &LinkBase {
        &self.links
    }

    /// The time this request is answered at.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Why the config file's current content was refused, for admins only: they see a banner
    /// until it is fixed (everyone keeps working on the last good config meanwhile).
    fn config_refused(&self) -> Option<String> {
        self.user.admin.then(|| self.report.error.clone()).flatten()
    }

    /// The whole page, with the form as given and an optional notice (a refused action).
    pub fn page(
        &self,
        mine_only: bool,
        form: FormView,
        notice: Option<Notice>,
        status: u16,
    ) -> Result<HttpResponse, DashError> {
        let rows = self.list_rows(mine_only)?;
        let context = self.context(Rows::List(&rows), form, notice);
        let mut body = Chunked::new();
        body.push_spliced(self.template("page.html", &context)?, &rows.rows);
        Ok(HttpResponse::build(status_code(status)?)
            .content_type("text/html; charset=utf-8")
            .body(body))
    }

    /// The list fragment htmx polls, with the quota and the config banner out of band; `304`
    /// when `if_none_match` names what it would be.
    pub fn env_list(
        &self,
        mine_only: bool,
        if_none_match: Option<&str>,
    ) -> Result<HttpResponse, DashError> {
        // The answer is a function of these alone, so a revalidating browser is answered before
        // anything is assembled.
        let etag = self.list_etag(mine_only);
        let revalidated =
            if_none_match.is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
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
        let rows = self.list_rows(mine_only)?;
        let mut context = self.context(Rows::List(&rows), FormView::default(), None);
        let mut body = Chunked::new();
        body.push_spliced(self.template("env_list.html", &context)?, &rows.rows);
        // The quota changes with the list (an expiry, a delete elsewhere), and an admin's config
        // banner comes and goes with a reload: both refreshed with it.
        context.insert("oob", &true);
        body.push(self.template("quota.html", &context)?);
        body.push(self.template("config_banner.html", &context)?);
        Ok(response.content_type("text/html; charset=utf-8").body(body))
    }

    /// One fragment template that shows no env rows (a form, a field, a notice).
    pub fn fragment(
        &self,
        template: &str,
        form: FormView,
        notice: Option<Notice>,
        status: u16,
    ) -> Result<HttpResponse, DashError> {
        let context = self.context(Rows::None, form, notice);
        html(status, self.template(template, &context)?)
    }

    /// Fills `template` from `context`.
    pub fn template(&self, template: &str, context: &tera::Context) -> Result<String, DashError> {
        Ok(self.state.templates.render(template, context)?)
    }

    /// The list fragment's entity tag: everything its body is made from.
    fn list_etag(&self, mine_only: bool) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        (
            &self.user.identity,
            self.user.admin,
            mine_only,
            &self.links,
            &self.config_refused(),
            &self.csrf,
        )
            .hash(&mut hasher);
        format!(
            "\"{:x}-{:x}-{:x}\"",
            self.stamp.generation,
            self.stamp.minute,
            hasher.finish()
        )
    }

    /// The rows the person sees, theirs first and then the team's (unless `mine_only`), each
    /// group by name, from the [`crate::fragment_cache::RowCache`] or rendered now and kept
    /// there. A row only its owner and admins can change carries the viewer's buttons and
    /// token, and is kept for that viewer alone; the team's rows are slices of the list every
    /// viewer shares (a sleeping env's Wake button there gets the viewer's token as it is
    /// sliced: whether it is offered is the same for every viewer who is neither its owner nor
    /// an admin).
    pub fn list_rows(&self, mine_only: bool) -> Result<ListRows, DashError> {
        let (state, user, snapshot) = (self.state, self.user, &self.snapshot);
        let personal = |env: &Env| user.admin || env.owner == user.identity;
        let own = |env: &Env| env.owner == user.identity;
        // Theirs first, then (for an admin, whose every row is personal) the team's.
        let personal_rows = snapshot.envs.iter().filter(|(_, env)| own(env)).chain(
            snapshot
                .envs
                .iter()
                .filter(|(_, env)| user.admin && !mine_only && !own(env)),
        );
        let mut pieces = self.personal_rows(personal_rows)?;
        if !mine_only && !user.admin {
            let list = match state.rows.list(self.stamp, &self.links) {
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
                        .map(|(cm, env)| self.row(cm, env, &nobody, ""))
                        .collect();
                    let list = Arc::new(SharedList::join(rows?));
                    state.rows.put_list(self.stamp, &self.links, list.clone());
                    list
                }
            };
            // Shared rows hold no token; a sleeping env's Wake button gets the viewer's.
            let token = Row::from(self.csrf.clone());
            pieces.extend(list.pick(&token, |index| {
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

    /// Env `name` as the person sees it, with its recent Events, if it is cached.
    pub fn env(&self, name: &str) -> Option<EnvView> {
        let (cm, env) = self
            .snapshot
            .envs
            .iter()
            .find(|(_, env)| env.name == name)?;
        let mut view = env_view(cm, env, self.user, &self.config, &self.links, self.now);
        view.events = self.snapshot.events.get(name).cloned().unwrap_or_default();
        // Links carry their token: only those who may change the env see them.
        if view.can_change
            && let Some(keys) = &self.state.signing_keys
        {
            let keys = keys.current();
            let uid = cm.metadata.uid.as_deref().unwrap_or_default();
            let port = env.status.ports.first().map(|port| port.port);
            view.can_share = true;
            view.link_lifetimes = link_lifetimes(self.config.access.max_link_lifetime);
            view.share_links = env
                .share_links
                .iter()
                .filter(|link| link.is_live(self.now))
                .map(|link| {
                    let tag = keys.tag(LINK_PURPOSE, &link_signed_data(uid, &link.id));
                    let query = port.map(|port| format!("?port={port}")).unwrap_or_default();
                    LinkView {
                        id: link.id.clone(),
                        label: link.label.clone(),
                        created_by: link.created_by.clone(),
                        expires_label: link.expires.strftime("%Y-%m-%d %H:%M UTC").to_string(),
                        expires_in: time_left(link.expires.duration_since(self.now)),
                        url: format!(
                            "{}://{}{}{}{query}",
                            self.links.scheme,
                            self.config.gateway_host,
                            self.links.port_suffix,
                            link_path(&env.name, &link.id, &tag)
                        ),
                    }
                })
                .collect();
        }
        Some(view)
    }

    /// One env's row as `viewer` sees it, with `csrf` in its forms; with `csrf` empty (a row
    /// every viewer shares), [`TOKEN_MARKER`] where each viewer's token is to go.
    fn row(&self, cm: &ConfigMap, env: &Env, viewer: &User, csrf: &str) -> tera::Result<String> {
        let mut view = env_view(cm, env, viewer, &self.config, &self.links, self.now);
        view.events = self
            .snapshot
            .events
            .get(&env.name)
            .cloned()
            .unwrap_or_default();
        let mut context = tera::Context::new();
        context.insert("env", &view);
        context.insert("csrf", csrf);
        context.insert("token_marker", TOKEN_MARKER);
        self.state.templates.render("env_row.html", &context)
    }

    /// The rows of `envs` with the person's buttons and token, kept under the env, the person
    /// and the token: they are theirs alone, and the byte bound covers them like every other
    /// row.
    fn personal_rows<'e>(
        &self,
        envs: impl Iterator<Item = &'e (Arc<ConfigMap>, Env)>,
    ) -> Result<Vec<Row>, DashError> {
        let (user, csrf) = (self.user, &self.csrf);
        let envs: Vec<_> = envs.collect();
        let keys: Vec<String> = envs
            .iter()
            .map(|(_, env)| format!("{}\0{}\0{}\0{csrf}", env.name, user.identity, user.admin))
            .collect();
        let names: Vec<&str> = keys.iter().map(String::as_str).collect();
        let kept = self.state.rows.get(self.stamp, &self.links, &names);
        let mut rows = Vec::with_capacity(envs.len());
        let mut fresh = Vec::new();
        for (((cm, env), key), kept) in envs.into_iter().zip(keys).zip(kept) {
            match kept {
                Some(row) => rows.push(row),
                None => {
                    let row = Row::from(self.row(cm, env, user, csrf)?);
                    rows.push(row.clone());
                    fresh.push((key, row));
                }
            }
        }
        if !fresh.is_empty() {
            self.state.rows.put(self.stamp, &self.links, fresh);
        }
        Ok(rows)
    }

    /// Everything the templates read.
    pub fn context(&self, rows: Rows<'_>, form: FormView, notice: Option<Notice>) -> tera::Context {
        let (used, max) = quota(
            self.snapshot.envs.iter().map(|(_, env)| env),
            &self.user.identity,
            &self.config,
        );
        let mut context = tera::Context::new();
        context.insert("user", &self.user.identity);
        context.insert("admin", &self.user.admin);
        context.insert("config_refused", &self.config_refused());
        context.insert("config_generation", &self.report.generation);
        context.insert("csrf", &self.csrf);
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
        context.insert("repos", &self.config.allowed_repo_urls());
        let chosen = form
            .access
            .parse()
            .unwrap_or(self.config.access.effective(None));
        let levels: Vec<AccessChoice> = self
            .config
            .access
            .choices()
            .into_iter()
            .map(|level| AccessChoice {
                value: level.as_str(),
                label: access_label(level),
                selected: level == chosen,
            })
            .collect();
        context.insert("access_levels", &levels);
        context.insert("form", &form);
        context.insert("notice", &notice);
        context.insert("gateway_host", &self.config.gateway_host);
        // The form's lists load after the page (git discovery never delays it); see
        // `routes/form.rs`.
        let none: Vec<String> = Vec::new();
        context.insert("discovered", &false);
        context.insert("oob", &false);
        context.insert("branch_options", &none);
        context.insert("branch_note", &None::<String>);
        context.insert("path_options", &none);
        context.insert("path_note", &None::<String>);
        context
    }
}

/// An HTML answer with `status`.
pub fn html(status: u16, body: String) -> Result<HttpResponse, DashError> {
    Ok(HttpResponse::build(status_code(status)?)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

fn status_code(status: u16) -> Result<actix_web::http::StatusCode, DashError> {
    actix_web::http::StatusCode::from_u16(status)
        .map_err(|error| DashError::Internal(error.to_string()))
}
