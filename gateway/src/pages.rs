//! The gateway's own pages, answered instead of bare errors: each says what is there (or not)
//! and links back to the dashboard. One tera template (`templates/gateway/status.html`, built
//! into the binary), HTML-escaped, no script.

use std::sync::LazyLock;

use ephemerator_core::hosts::env_port_host;
use ephemerator_core::{EnvStatus, Phase};
use ephemerator_kit::runner_logs::LogsView;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::Body;

/// Seconds between reloads of a page waiting for an env to answer.
pub const RELOAD_SECONDS: u32 = 3;
/// The `Retry-After` of a request to a sleeping env that does not wake it: long enough for a
/// script's retry not to hammer, short enough to catch a wake someone else started.
pub const ASLEEP_RETRY_SECONDS: u32 = 10;

/// What every page may show, HTML-escaped by the template.
#[derive(Debug, Serialize, Default)]
pub struct PageView {
    #[serde(skip)]
    status: u16,
    title: String,
    heading: String,
    lines: Vec<String>,
    phase: Option<String>,
    detail: Option<String>,
    links: Vec<Link>,
    refresh: Option<u32>,
    dashboard_url: String,
    /// The runner's setup logs, on the pages that wait for it.
    logs: Option<LogsView>,
}

impl PageView {
    /// A page that waits on an env: its phase and message, its runner's setup logs, and a
    /// reload every [`RELOAD_SECONDS`] until the env answers.
    fn waiting_on(&mut self, status: &EnvStatus, logs: Option<&LogsView>) {
        self.phase = Some(status.phase.as_str().into());
        self.detail = status.message.clone();
        self.refresh = Some(RELOAD_SECONDS);
        self.logs = logs.cloned();
    }
}

#[derive(Debug, Serialize)]
struct Link {
    label: String,
    url: String,
}

/// Where a page's links point: the scheme and the gateway's public address.
pub struct PageContext<'a> {
    /// `http` or `https`.
    pub proto: &'a str,
    /// The gateway host.
    pub gateway_host: &'a str,
    /// `:PORT` when clients use a port that is not the scheme's default (local runs), else "".
    pub port_suffix: &'a str,
    /// The host the request asked for.
    pub host: &'a str,
}

impl PageContext<'_> {
    fn dashboard_url(&self) -> String {
        format!(
            "{}://{}{}/",
            self.proto, self.gateway_host, self.port_suffix
        )
    }

    fn env_url(&self, env: &str, port: u16) -> String {
        format!(
            "{}://{}{}/",
            self.proto,
            env_port_host(port, env, self.gateway_host),
            self.port_suffix
        )
    }

    fn view(&self, status: StatusCode, title: &str, heading: String) -> PageView {
        PageView {
            status: status.as_u16(),
            title: title.to_string(),
            heading,
            dashboard_url: self.dashboard_url(),
            ..PageView::default()
        }
    }

    /// The host is not one the gateway serves.
    pub fn unknown_host(&self) -> PageView {
        let mut view = self.view(StatusCode::NOT_FOUND, "Not found", "Nothing here".into());
        view.lines.push(format!(
            "{} is not an address of this ephemerator.",
            self.host
        ));
        view
    }

    /// No env of that name (upstream's wording).
    pub fn no_such_env(&self) -> PageView {
        let mut view = self.view(
            StatusCode::NOT_FOUND,
            "No environment",
            format!("Sorry! There's no environment at {}.", self.host),
        );
        view.lines
            .push("There might have been an environment here once, but it expired.".into());
        view
    }

    /// A visit woke the sleeping env: says so and follows it, like [`PageContext::starting`].
    pub fn waking(
        &self,
        env: &str,
        port: u16,
        status: &EnvStatus,
        logs: Option<&LogsView>,
    ) -> PageView {
        let mut view = self.view(
            StatusCode::SERVICE_UNAVAILABLE,
            "Waking up",
            format!("Environment {env} is waking up"),
        );
        let since = status.asleep_since.map_or_else(String::new, |since| {
            format!(
                " since {}",
                since.round(jiff::Unit::Second).unwrap_or(since)
            )
        });
        view.lines.push(format!(
            "It was asleep{since} because nobody used it. Its runner is starting again: this \
             page follows it and opens port {port} once it is ready."
        ));
        view.waiting_on(status, logs);
        view
    }

    /// The env exists but does not serve this port yet: reloads until it does. `logs`: its
    /// runner's setup logs, for a person waiting on it.
    pub fn starting(
        &self,
        env: &str,
        port: u16,
        status: &EnvStatus,
        logs: Option<&LogsView>,
    ) -> PageView {
        if status.asleep_since.is_some() && status.phase != Phase::Ready {
            // Woken, not ready yet.
            return self.waking(env, port, status, logs);
        }
        let mut view = self.view(
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting",
            format!("Environment {env} is not ready yet"),
        );
        if status.phase == Phase::Ready {
            view.lines.push(format!(
                "It is running but does not publish port {port} (yet)."
            ));
            view.links = status
                .ports
                .iter()
                .map(|p| Link {
                    label: format!("{} (port {})", p.name, p.port),
                    url: self.env_url(env, p.port),
                })
                .collect();
            if !view.links.is_empty() {
                view.lines.push("Ports it publishes:".into());
            }
        } else {
            view.lines.push(format!(
                "Port {port} will answer here once the environment is ready."
            ));
        }
        view.waiting_on(status, logs);
        view
    }

    /// The env failed or was rejected.
    pub fn broken(&self, env: &str, status: &EnvStatus) -> PageView {
        let heading = match status.phase {
            Phase::Rejected => format!("Environment {env} was rejected"),
            _ => format!("Environment {env} failed"),
        };
        let mut view = self.view(StatusCode::SERVICE_UNAVAILABLE, "Not running", heading);
        view.lines
            .push("It will not answer until it is fixed or created again.".into());
        view.phase = Some(status.phase.as_str().into());
        view.detail = Some(
            status
                .message
                .clone()
                .unwrap_or_else(|| "No reason was recorded.".into()),
        );
        view
    }

    /// The env's port (or the dashboard) did not answer.
    pub fn upstream_failed(&self, what: &str, problem: &str, reload: bool) -> PageView {
        let mut view = self.view(
            StatusCode::BAD_GATEWAY,
            "No answer",
            format!("{what} did not answer"),
        );
        view.detail = Some(problem.to_string());
        if reload {
            view.lines
                .push("It may still be starting, or it has stopped listening.".into());
            view.refresh = Some(RELOAD_SECONDS);
        }
        view
    }

    /// Signed in, but oauth2-proxy refuses this account.
    pub fn forbidden(&self) -> PageView {
        let mut view = self.view(StatusCode::FORBIDDEN, "Forbidden", "Not allowed".into());
        view.lines
            .push("Your account is signed in but is not allowed to use this ephemerator.".into());
        view.links.push(Link {
            label: "Sign out".into(),
            url: format!(
                "{}://{}{}/oauth2/sign_out",
                self.proto, self.gateway_host, self.port_suffix
            ),
        });
        view
    }

    /// The request carried the session cookie twice; the planted copy is cleared with it.
    pub fn duplicate_session(&self) -> PageView {
        let mut view = self.view(
            StatusCode::BAD_REQUEST,
            "Sign-in cookie sent twice",
            "Your browser sent the sign-in cookie twice".into(),
        );
        view.lines.push(
            "The second copy was not set by the sign-in: most likely a page of an environment \
             set it, to have the dashboard act for someone else. Nothing was done with it, and \
             this answer removes it."
                .into(),
        );
        view.lines.push(
            "Reload the page. If this keeps happening, tell your admins which environments you \
             opened."
                .into(),
        );
        view
    }

    /// A request from another site's page to a non-public env (see
    /// `crate::env_access::cross_site_refusal`).
    pub fn cross_site(&self, env: &str) -> PageView {
        let mut view = self.view(
            StatusCode::FORBIDDEN,
            "Refused",
            format!("Environment {env} refuses requests from other sites"),
        );
        view.lines.push(
            "This request came from a page of another site (another environment, perhaps), \
             which may not act in this environment with your sign-in. Open the environment \
             directly instead."
                .into(),
        );
        view.links.push(Link {
            label: format!("Open {}", self.host),
            url: format!("{}://{}/", self.proto, self.host),
        });
        view
    }

    /// The env's level does not admit this person.
    pub fn not_admitted(&self, env: &str, owner: &str) -> PageView {
        let mut view = self.view(
            StatusCode::FORBIDDEN,
            "Not shared with you",
            format!("Environment {env} is open to its owner only"),
        );
        view.lines.push(format!(
            "Ask {owner} (or an admin) to open it to the team, or for a share link."
        ));
        view
    }

    /// Taking a one-time code failed: used, expired, or not this browser's.
    pub fn sign_in_failed(&self, retry: &str) -> PageView {
        let mut view = self.view(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in has expired or was already used".into(),
        );
        view.lines
            .push("Sign-in addresses work once, for a minute, in the browser that asked.".into());
        view.links.push(Link {
            label: "Open the environment again".into(),
            url: retry.to_string(),
        });
        view
    }

    /// A share link that is not (or no longer) one.
    pub fn link_gone(&self) -> PageView {
        let mut view = self.view(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This link has expired or was revoked".into(),
        );
        view.lines.push(
            "Share links open one environment until their owner revokes them or they expire. \
             Ask whoever sent it for a new one."
                .into(),
        );
        view
    }

    /// The gateway was started without signing keys: no env can be opened signed in.
    pub fn no_keys(&self) -> PageView {
        let mut view = self.view(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not configured",
            "This gateway has no signing keys".into(),
        );
        view.lines.push(
            "Its operator must give it --signing-keys (README: the manifests' Secrets).".into(),
        );
        view
    }

    /// oauth2-proxy did not answer: nobody can be let in.
    pub fn auth_unavailable(&self, problem: &str) -> PageView {
        let mut view = self.view(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "Sign-in is not available right now".into(),
        );
        view.detail = Some(problem.to_string());
        view.refresh = Some(RELOAD_SECONDS);
        view
    }
}

/// A request to a sleeping env that does not wake it (an XHR, a fetch, a WebSocket, a
/// script): at once, 503 with `Retry-After`, in plain text.
pub fn asleep() -> Response<Body> {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "This environment is asleep. Opening it in a browser tab wakes it.\n",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(ASLEEP_RETRY_SECONDS));
    response
}

/// A page for a request without a usable `Host` header (no links: there is no host to link).
pub fn bad_request(problem: &str) -> Response<Body> {
    plain(StatusCode::BAD_REQUEST, problem)
}

/// A request head over the limit: 431, in plain text.
pub fn head_too_large(limit: usize) -> Response<Body> {
    plain(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        &format!("the request's head is over {limit} bytes"),
    )
}

/// A short plain-text answer (redirects, refusals of scripts' requests): never cached, and its
/// URL (a sign-in's) never sent on as a referrer.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// `STATUS REASON: problem`, in plain text.
fn plain(status: StatusCode, problem: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(
        Full::new(Bytes::from(format!(
            "{} {reason}: {problem}\n",
            status.as_u16()
        )))
        .map_err(|never| match never {})
        .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

static TEMPLATES: LazyLock<Result<tera::Tera, tera::Error>> = LazyLock::new(|| {
    let mut tera = tera::Tera::default();
    tera.add_raw_template(
        "status.html",
        include_str!("../../templates/gateway/status.html"),
    )?;
    Ok(tera)
});

/// The Content-Security-Policy of the pages: no script at all, the inline style only.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Renders `view` as a complete response.
pub fn render(view: &PageView) -> Response<Body> {
    let html = TEMPLATES
        .as_ref()
        .map_err(|error| error.to_string())
        .and_then(|tera| {
            let context = tera::Context::from_serialize(view).map_err(|e| e.to_string())?;
            tera.render("status.html", &context)
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|error| {
            tracing::error!(%error, "rendering a gateway page failed");
            format!("{}\n", view.heading)
        });
    let mut response = Response::new(Full::new(Bytes::from(html)).map_err(|n| match n {}).boxed());
    *response.status_mut() =
        StatusCode::from_u16(view.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(seconds) = view.refresh {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemerator_core::Port;

    fn context() -> PageContext<'static> {
        PageContext {
            proto: "http",
            gateway_host: "preview.localhost",
            port_suffix: ":8080",
            host: "8000---a.preview.localhost:8080",
        }
    }

    async fn html(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn pages_escape_what_they_show_and_link_the_dashboard() {
        let status = EnvStatus {
            phase: Phase::Failed,
            message: Some("<script>alert(1)</script>".into()),
            ..EnvStatus::default()
        };
        let response = render(&context().broken("a", &status));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = html(response).await;
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{body}"
        );
        assert!(!body.contains("<script>"));
        // tera escapes `/` too; browsers read it back as is.
        assert!(
            body.contains(r#"href="http:&#x2F;&#x2F;preview.localhost:8080&#x2F;""#),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_ready_env_without_the_port_lists_the_ports_it_has() {
        let status = EnvStatus {
            phase: Phase::Ready,
            ports: vec![Port {
                name: "web".into(),
                port: 8000,
            }],
            ..EnvStatus::default()
        };
        let response = render(&context().starting("a", 9000, &status, None));
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        let body = html(response).await;
        assert!(body.contains("does not publish port 9000"), "{body}");
        assert!(
            body.contains(r#"href="http:&#x2F;&#x2F;8000---a.preview.localhost:8080&#x2F;""#),
            "{body}"
        );
        assert!(body.contains(r#"<meta http-equiv="refresh" content="3">"#));
    }
}
