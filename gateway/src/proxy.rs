//! One request, start to end, in fixed phases: identity headers stripped, the route decided,
//! the gate (the sign-in for the dashboard, the env's access level and env cookie for env
//! hosts: [`crate::env_gate`]), then the upstream (dashboard, oauth2-proxy or an env's port), a
//! step of the env sign-in flow, or a status page. Bodies stream
//! both ways; `Upgrade` requests (WebSockets) become a byte tunnel once both sides switched.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, HeaderValue, LOCATION, SET_COOKIE, UPGRADE};
use hyper::http::uri::{Authority, PathAndQuery};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use ephemerator_core::Phase;
use ephemerator_core::activity::record_every;
use ephemerator_core::hosts::port_suffix;

use crate::activity::{Activity, counts_as_activity, is_top_level_navigation};
use crate::auth::{Grant, Subject, Verdict, sign_in_location};
use crate::env_access::CookieNames;
use crate::env_gate::{self, Gate, Here, env_gate};
use crate::headers::{
    clearing_cookies, drop_cookies_named, drop_domain_cookies, is_browser_navigation, is_upgrade,
    remove_cookies, remove_hop_by_hop, remove_session_cookies, set_forwarded, strip_identity,
};
use crate::pages::{PageContext, asleep, bad_request, head_too_large, render, text};
use crate::route::{Page, Target, route};
use crate::table::EnvEntry;
use crate::{Body, Gateway, Upstreams};

/// Answers one client request.
pub async fn handle(
    gateway: Arc<Gateway>,
    upstreams: Upstreams,
    mut request: Request<Incoming>,
    client: IpAddr,
) -> Response<Body> {
    let started = Instant::now();
    // hyper bounds what it buffers, but only roughly (a head a third over its buffer size
    // still parses): the limit that is documented is enforced here, to the byte.
    let limit = gateway.limits.max_header_bytes;
    if head_size(&request) > limit {
        let response = head_too_large(limit);
        gateway
            .metrics
            .request("refused", "", 431, started.elapsed().as_secs_f64());
        return response;
    }
    strip_identity(request.headers_mut());
    // The client's hop-by-hop headers go before the gateway adds any of its own, so that no
    // header the gateway sets (the identity above all) can be named away in `Connection`.
    let upgrade = is_upgrade(request.headers())
        .then(|| request.headers().get(UPGRADE).cloned())
        .flatten();
    remove_hop_by_hop(request.headers_mut(), upgrade);
    let Some(host) = request_host(&request) else {
        return bad_request("the request has no usable Host header");
    };
    // One config for the whole request, even if a reload lands meanwhile.
    let config = gateway.config.current();
    let gateway_host = config.gateway_host.as_str();
    // The env's entry, looked up once: the route and the access check see the same one.
    let mut entry = None;
    let target = route(&host, request.uri().path(), gateway_host, |env| {
        entry = gateway.table.get(env);
        entry.as_ref().map(|entry| entry.status.clone())
    });
    // Only envs of the route table label a series: a name from the Host header alone never does.
    let (label, env) = match &target {
        Target::Dashboard => ("dashboard", ""),
        Target::OAuth2Proxy => ("oauth2-proxy", ""),
        Target::EnvSignIn | Target::ShareLink | Target::Reserved => ("sign-in", ""),
        Target::EnvReserved { env, .. } => ("sign-in", env.as_str()),
        Target::Env { env, .. } => ("env", env.as_str()),
        Target::Page(
            Page::Starting { env, .. } | Page::Broken { env, .. } | Page::Sleeping { env, .. },
        ) => ("page", env.as_str()),
        Target::Page(Page::NoSuchEnv { .. } | Page::UnknownHost) => ("page", ""),
    };
    let env = env.to_string();
    let port_suffix = port_suffix(&host, gateway.proto);
    let here = Here {
        gateway: &gateway,
        upstreams: &upstreams,
        config: &config,
        host: &host,
        port_suffix: &port_suffix,
        client,
    };
    let mut response = answer(&here, request, target, entry).await;
    // On the way out: the client's next request goes on a new connection, to another replica.
    if gateway.draining.is_draining() && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    gateway.metrics.request(
        label,
        &env,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The phases after routing: the gate of the target (the sign-in for the dashboard, the env's
/// access level for env hosts), then the upstream or the gateway's own answer.
async fn answer(
    here: &Here<'_>,
    mut request: Request<Incoming>,
    target: Target,
    entry: Option<Arc<EnvEntry>>,
) -> Response<Body> {
    let gateway = here.gateway;
    let pages = PageContext {
        proto: gateway.proto,
        gateway_host: &here.config.gateway_host,
        port_suffix: here.port_suffix,
        host: here.host,
    };
    let own_cookies = CookieNames::for_proto(gateway.proto).all();
    // Env hosts: the gate, for every target of an existing env but the code's redemption
    // (which is how a visitor gets through the gate).
    if let (Some((env, port)), Some(entry)) = (target.env(), entry.as_deref())
        && !matches!(target, Target::EnvReserved { .. })
    {
        match env_gate(here, &request, env, port, entry) {
            Gate::Answer(response) => return response,
            Gate::Open(identity) => {
                for (name, value) in identity {
                    request.headers_mut().insert(name, value);
                }
            }
        }
    }
    match target {
        Target::Page(Page::UnknownHost) => render(&pages.unknown_host()),
        Target::Page(Page::NoSuchEnv { .. }) => render(&pages.no_such_env()),
        Target::Page(Page::Starting {
            env, port, status, ..
        }) => {
            // A person waiting on the env sees its setup logs; a script's poll costs no read.
            let logs = if status.phase != Phase::Ready && is_top_level_navigation(request.headers())
            {
                gateway.setup_logs.of(&env).await
            } else {
                None
            };
            render(&pages.starting(&env, port, &status, logs.as_deref()))
        }
        Target::Page(Page::Sleeping { env, port, status }) => {
            if !is_top_level_navigation(request.headers()) {
                return asleep();
            }
            let uid = entry.as_deref().map_or("", |entry| entry.uid.as_str());
            if gateway.activity.wake(&env, uid, status.asleep_since) {
                tracing::info!(%env, port, "a visit wakes the env");
                gateway.metrics.woke_env();
            }
            let logs = gateway.setup_logs.of(&env).await;
            render(&pages.waking(&env, port, &status, logs.as_deref()))
        }
        Target::Page(Page::Broken { env, status, .. }) => render(&pages.broken(&env, &status)),
        Target::EnvSignIn => env_gate::env_sign_in(here, &request).await,
        Target::ShareLink => env_gate::share_link(here, &request),
        Target::Reserved => render(&pages.unknown_host()),
        Target::EnvReserved { env, port } => match entry.as_deref() {
            Some(entry) => env_gate::redeem(here, &request, &env, port, entry),
            None => render(&pages.no_such_env()),
        },
        Target::OAuth2Proxy => match gateway.auth.oauth2_proxy().and_then(Uri::authority) {
            Some(authority) => {
                let authority = authority.clone();
                forward(here, request, authority, "oauth2-proxy", None)
                    .await
                    .unwrap_or_else(|problem| {
                        render(&pages.upstream_failed("Sign-in (oauth2-proxy)", &problem, false))
                    })
            }
            None => render(&pages.unknown_host()),
        },
        Target::Dashboard => {
            let grant = match dashboard_sign_in(here, &request, &pages).await {
                Ok(grant) => grant,
                Err(response) => return response,
            };
            for (name, value) in &grant.identity {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            if let Some(cookie_name) = gateway.auth.cookie_name() {
                remove_session_cookies(request.headers_mut(), cookie_name);
            }
            remove_cookies(request.headers_mut(), &own_cookies);
            let mut response = forward(here, request, gateway.dashboard.clone(), "dashboard", None)
                .await
                .unwrap_or_else(|problem| {
                    render(&pages.upstream_failed("The dashboard", &problem, true))
                });
            pass_refreshed_session(&grant, &mut response);
            response
        }
        Target::Env { env, port } => {
            if let Some(cookie_name) = gateway.auth.cookie_name() {
                remove_session_cookies(request.headers_mut(), cookie_name);
            }
            remove_cookies(request.headers_mut(), &own_cookies);
            match gateway.env_authority(&env, port) {
                Ok(authority) => {
                    // A person's use of the env (its WebSocket's messages are noted as they go).
                    let uid = entry
                        .as_deref()
                        .map(|entry| entry.uid.clone())
                        .unwrap_or_default();
                    let every = record_every(here.config.sleep_after);
                    if counts_as_activity(request.headers()) {
                        gateway.activity.noticed(&env, &uid, every);
                    }
                    let socket = Some((gateway.activity.clone(), env.clone(), uid, every));
                    match forward(here, request, authority, "env", socket).await {
                        Ok(mut response) => {
                            let dropped = drop_domain_cookies(response.headers_mut())
                                + drop_cookies_named(response.headers_mut(), &own_cookies);
                            if dropped > 0 {
                                tracing::info!(%env, port, dropped, "dropped cookies an env set for the parent domain or in the gateway's name");
                            }
                            response
                        }
                        Err(problem) => render(&pages.upstream_failed(
                            &format!("Port {port} of environment {env}"),
                            &problem,
                            true,
                        )),
                    }
                }
                Err(problem) => {
                    tracing::error!(%env, port, %problem, "the upstream template gave no address");
                    render(&pages.upstream_failed(&format!("Environment {env}"), &problem, false))
                }
            }
        }
    }
}

/// The dashboard's gate: oauth2-proxy's answer for the session, or the answer that replaces
/// the dashboard's (sign in, refused, unavailable).
async fn dashboard_sign_in(
    here: &Here<'_>,
    request: &Request<Incoming>,
    pages: &PageContext<'_>,
) -> Result<Arc<Grant>, Response<Body>> {
    let gateway = here.gateway;
    let subject = Subject {
        headers: request.headers(),
        host: here.host,
        uri: request.uri(),
        method: request.method(),
        client: here.client,
        proto: gateway.proto,
    };
    match gateway.auth.check(&subject, &here.upstreams.auth).await {
        Verdict::Allowed(grant) => Ok(grant),
        Verdict::SignIn(clear_cookies) => {
            let dashboard = format!("{}{}", here.config.gateway_host, here.port_suffix);
            let mut response = sign_in(gateway, request, here.host, &dashboard);
            for cookie in clear_cookies {
                response.headers_mut().append(SET_COOKIE, cookie);
            }
            Err(response)
        }
        Verdict::Forbidden => Err(render(&pages.forbidden())),
        Verdict::DuplicateSession(names) => {
            tracing::warn!(
                ?names,
                "refused a request carrying the session cookie twice"
            );
            let mut response = render(&pages.duplicate_session());
            let secure = gateway.proto == "https";
            let path = request.uri().path();
            for cookie in clearing_cookies(&names, path, &here.config.gateway_host, secure) {
                response.headers_mut().append(SET_COOKIE, cookie);
            }
            Err(response)
        }
        Verdict::Unavailable(problem) => {
            tracing::warn!(%problem, "authentication unavailable");
            Err(render(&pages.auth_unavailable(&problem)))
        }
    }
}

/// oauth2-proxy refreshed the session while checking: the new cookie goes to the client.
fn pass_refreshed_session(grant: &Grant, response: &mut Response<Body>) {
    for cookie in &grant.set_cookies {
        response.headers_mut().append(SET_COOKIE, cookie.clone());
    }
}

/// No valid session: browsers navigating go to sign in and come back; htmx and other requests
/// get the 401 (htmx, told by `HX-Redirect`, sends the whole page to sign in).
fn sign_in(
    gateway: &Gateway,
    request: &Request<Incoming>,
    host: &str,
    dashboard: &str,
) -> Response<Body> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", PathAndQuery::as_str);
    let original = format!("{}://{host}{path}", gateway.proto);
    if is_browser_navigation(request.method(), request.headers()) {
        let mut response = text(StatusCode::FOUND, "Sign in required.\n");
        if let Ok(location) =
            HeaderValue::from_str(&sign_in_location(gateway.proto, dashboard, &original))
        {
            response.headers_mut().insert(LOCATION, location);
        }
        return response;
    }
    let mut response = text(StatusCode::UNAUTHORIZED, "Sign in required.\n");
    if request.headers().contains_key("hx-request") {
        let page = request
            .headers()
            .get("hx-current-url")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&original);
        if let Ok(location) =
            HeaderValue::from_str(&sign_in_location(gateway.proto, dashboard, page))
        {
            response.headers_mut().insert("hx-redirect", location);
        }
    }
    response
}

/// Sends the request to `authority` and streams the answer back. `Err` says why there is no
/// answer (refused, timed out, broken), for the 502 page.
///
/// `socket`: for an env, the recorder its WebSockets' messages are noted with, and the env.
async fn forward(
    here: &Here<'_>,
    mut request: Request<Incoming>,
    authority: Authority,
    target: &'static str,
    socket: Option<(Activity, String, String, Duration)>,
) -> Result<Response<Body>, String> {
    let (gateway, upstreams, client, host) = (here.gateway, here.upstreams, here.client, here.host);
    let upgrade = is_upgrade(request.headers())
        .then(|| request.headers().get(UPGRADE).cloned())
        .flatten();
    let headers = request.headers_mut();
    remove_hop_by_hop(headers, upgrade.clone());
    if let Ok(value) = HeaderValue::from_str(host) {
        headers.insert(HOST, value);
    }
    set_forwarded(headers, client, gateway.proto);
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|error| error.to_string())?;
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));

    let sent = tokio::time::timeout(
        gateway.limits.upstream_timeout,
        upstreams.proxy.request(request),
    )
    .await;
    let mut response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            let kind = if error.is_connect() {
                "connect"
            } else {
                "other"
            };
            gateway.metrics.upstream_error(target, kind);
            return Err(describe_client_error(&error));
        }
        Err(_) => {
            gateway.metrics.upstream_error(target, "timeout");
            return Err(format!(
                "no answer within {} s",
                gateway.limits.upstream_timeout.as_secs()
            ));
        }
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            gateway.metrics.upstream_error(target, "other");
            return Err("it switched protocols without being asked to".into());
        };
        let protocol = response.headers().get(UPGRADE).cloned();
        remove_hop_by_hop(response.headers_mut(), protocol);
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let open = gateway.metrics.websockets().clone();
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    open.inc();
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    match socket {
                        Some((activity, env, uid, every)) => {
                            activity
                                .carry_socket(client, upstream, env, uid, every)
                                .await;
                        }
                        None => {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    }
                    open.dec();
                }
                Err(error) => tracing::debug!(%error, "a protocol switch did not complete"),
            }
        });
    } else {
        remove_hop_by_hop(response.headers_mut(), None);
    }
    Ok(response.map(|body| body.map_err(Into::into).boxed()))
}

/// The cause chain of a client error, e.g. "client error (Connect): tcp connect error:
/// Connection refused (os error 111)".
fn describe_client_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The size of a request's head as HTTP/1.1 sends it: the request line, each header as
/// `name: value` and the line ends.
fn head_size(request: &Request<Incoming>) -> usize {
    let line = request.method().as_str().len() + 1 + request.uri().to_string().len() + 11;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// The host the request is for: the authority of an absolute-form request, else the `Host`
/// header. `None` when neither is there or it is not text.
fn request_host(request: &Request<Incoming>) -> Option<String> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str().to_string());
    }
    let host = request.headers().get(HOST)?.to_str().ok()?.trim();
    (!host.is_empty()).then(|| host.to_string())
}
