//! A stand-in Tilt, for what the real one (built in `testprograms/`, run by the `realprograms`
//! crate) cannot do in a test: answer like a release that cannot be built here (0.37.4 and
//! later, with their token and origin rules), send a view of any size or shape, or hang.
//!
//! It answers as Tilt's web server does, as recorded against the real Tilt 0.34.0 (the contract
//! tests in `ctrl/tests/tilt.rs` run the same checks against both) and, for 0.37.4 and later,
//! as their source says (`internal/hud/server/server.go`: `originCheckMiddleware`,
//! `requireToken`) and a build of 0.37.6 from that source answered when tried by hand (README:
//! "Tilt and oauth2-proxy"): `GET /api/view` is the view with `logList` and `uiResources`;
//! `/proxy` is 403 `Forbidden` for anything but `uibuttons`; other paths are not served here.
//! Tilt does not look at the `Host` header but to compare it with `Origin`, so one stand-in
//! answers every env of a test whose Tilt URL names the env in the host
//! (`http://{env}.localhost:PORT`).
//!
//! [`origin_allowed`] is Tilt's WebSocket origin rule, shared by every stand-in that serves a
//! Tilt WebSocket (the local run's simulated runner, the gateway's tests).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, header};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::tilt::{TOKEN_HEADER, VIEW_PATH};

/// The cookie Tilt's page sets with the token, which Tilt 0.37.4+ accepts in place of the header.
pub const TOKEN_COOKIE: &str = "Tilt-Token";

/// Which release's rules the stand-in follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TiltRules {
    /// Tilt 0.34 to 0.37.3: `/api/view` for anyone.
    Open,
    /// Tilt 0.37.4 and later: `/api/*` needs the token (header or cookie), and a request with
    /// an `Origin` of another host is refused everywhere.
    TokenAndOrigin,
}

struct Shared {
    rules: TiltRules,
    token: String,
    view: Mutex<Bytes>,
    requests: AtomicUsize,
    refused: AtomicUsize,
}

/// The running stand-in; stops when dropped.
pub struct StandInTilt {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl StandInTilt {
    /// Starts serving `view` (a view JSON body, see [`view`]) under `rules`, with `token` as
    /// the runner's token.
    pub async fn start(
        rules: TiltRules,
        token: &str,
        view: impl Into<Bytes>,
    ) -> std::io::Result<Self> {
        Self::start_on(0, rules, token, view).await
    }

    /// [`StandInTilt::start`] on `port` of 127.0.0.1 (0: any free one).
    pub async fn start_on(
        port: u16,
        rules: TiltRules,
        token: &str,
        view: impl Into<Bytes>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            rules,
            token: token.to_string(),
            view: Mutex::new(view.into()),
            requests: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let server = tokio::spawn(super::serve(
            listener,
            shared.clone(),
            |shared, request| async move { answer(&shared, &request) },
        ));
        Ok(StandInTilt {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, what [`crate::tilt::TiltClient::ask`] takes.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A Tilt URL template for ephctrl that reaches this stand-in for every env, naming the env
    /// in the host as the cluster's Service names do (`http://{env}.localhost:PORT`).
    pub fn url_template(&self) -> String {
        format!("http://{{env}}.localhost:{}", self.addr.port())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `view` from now on.
    pub fn set_view(&self, view: impl Into<Bytes>) {
        *self
            .shared
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = view.into();
    }

    /// Stops serving and returns once the port is closed (free for another server).
    pub async fn stop(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }

    /// Requests for the view so far, refused ones included.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests for the view refused (a missing or wrong token, a foreign origin).
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for StandInTilt {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Go's `http.Error`: the text and a newline, as plain text.
fn go_error(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = reply(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(format!("{text}\n")),
    );
    response.headers_mut().insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

fn answer(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let headers = request.headers();
    let counted = path == VIEW_PATH;
    if counted {
        shared.requests.fetch_add(1, Ordering::SeqCst);
    }
    let refuse = |text: &'static str| {
        if counted {
            shared.refused.fetch_add(1, Ordering::SeqCst);
        }
        go_error(StatusCode::FORBIDDEN, text)
    };
    let checks_token = path == VIEW_PATH || path.starts_with("/proxy");
    if shared.rules == TiltRules::TokenAndOrigin {
        // originCheckMiddleware: every route; the host compared exactly, case included.
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if origin.is_some_and(|origin| !origin.is_empty() && origin_host(origin) != Some(host)) {
            return refuse("cross-origin request forbidden");
        }
        // requireToken: the header, else the cookie.
        if checks_token {
            let candidate = headers
                .get(TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .or_else(|| token_cookie(request));
            match candidate {
                None => return refuse("missing session token"),
                Some(token) if token != shared.token => return refuse("invalid session token"),
                Some(_) => {}
            }
        }
    }
    if path.starts_with("/proxy") {
        return go_error(StatusCode::FORBIDDEN, "Forbidden");
    }
    if path != VIEW_PATH {
        return go_error(StatusCode::NOT_FOUND, "404 page not found");
    }
    let view = shared
        .view
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    reply(StatusCode::OK, "application/json", view)
}

/// The host (with its port) of an `Origin` value, as Go's `url.Parse` gives it; `None` when it
/// has none (`null`, a bare word).
fn origin_host(origin: &str) -> Option<&str> {
    let (_scheme, rest) = origin.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // A userinfo part is not the host.
    let host = authority.rsplit('@').next().unwrap_or("");
    (!host.is_empty()).then_some(host)
}

/// The `Tilt-Token` cookie of a request, if any.
fn token_cookie(request: &Request<Incoming>) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == TOKEN_COOKIE).then(|| value.to_string())
        })
}

/// Tilt's rule for its WebSocket before 0.37.4 (`/ws/view`; gorilla/websocket's same-origin
/// check): allowed with no `Origin`, or one whose host (with its port) equals `host`, ignoring
/// ASCII case; a scheme or a trailing `/` makes no difference. `null`, another host, or
/// anything that is not a URL with a host is refused. As recorded against the real Tilt 0.34.0
/// (`ctrl/tests/tilt.rs`). From 0.37.4 the socket also needs `?csrf=` (from
/// `/api/websocket_token`) and the origin middleware compares the host exactly, case included.
pub fn origin_allowed(origin: Option<&str>, host: &str) -> bool {
    match origin {
        None => true,
        Some(origin) => origin_host(origin).is_some_and(|origin| origin.eq_ignore_ascii_case(host)),
    }
}

/// One resource of a stand-in view.
#[derive(Debug, Clone)]
pub struct FakeResource {
    pub name: String,
    /// `ok`, `pending`, `error`, `not_applicable`, `unknown`, `none`, or "" (absent).
    pub runtime_status: String,
    pub endpoint_links: Vec<String>,
    /// Disabled in Tilt's UI (`disableStatus.state: Disabled`).
    pub disabled: bool,
}

impl FakeResource {
    /// A resource with the given runtime status and endpoint link URLs.
    pub fn new(name: &str, runtime_status: &str, links: &[&str]) -> Self {
        FakeResource {
            name: name.to_string(),
            runtime_status: runtime_status.to_string(),
            endpoint_links: links.iter().map(|l| l.to_string()).collect(),
            disabled: false,
        }
    }

    /// The same resource, disabled in Tilt.
    pub fn disabled(mut self) -> Self {
        self.disabled = true;
        self.runtime_status = "none".to_string();
        self
    }
}

/// A view shaped like the real Tilt's (`GET /api/view`, as Tilt 0.34.0 answered it): a log of
/// `log_bytes` bytes of text first, then the UI session, a loaded `(Tiltfile)` and `resources`.
pub fn view_with_log(resources: &[FakeResource], log_bytes: usize) -> String {
    let mut items = vec![json!({
        "metadata": {"name": "(Tiltfile)"},
        "status": {"runtimeStatus": "not_applicable", "updateStatus": "ok", "order": 1},
    })];
    for (i, resource) in resources.iter().enumerate() {
        let mut status = json!({
            "updateStatus": if resource.disabled { "none" } else { "not_applicable" },
            "order": i + 2,
            "endpointLinks": resource.endpoint_links.iter().map(|url| json!({"url": url})).collect::<Vec<_>>(),
            "disableStatus": {
                "state": if resource.disabled { "Disabled" } else { "Enabled" },
                "sources": [{"configMap": {"name": format!("{}-disable", resource.name), "key": "isDisabled"}}],
            },
        });
        if !resource.runtime_status.is_empty() {
            status["runtimeStatus"] = json!(resource.runtime_status);
        }
        items.push(json!({
            "metadata": {"name": resource.name, "annotations": {"tilt.dev/resource": resource.name}},
            "status": status,
        }));
    }
    // Tilt's log segments are lines of a span, each with its time.
    let line = "web │ 127.0.0.1 - - \"GET / HTTP/1.1\" 200 -\n";
    let segments: Vec<_> = (0..log_bytes.div_ceil(line.len()))
        .map(|_| json!({"spanId": "localserve:1", "time": "2026-12-02T02:44:24.743828831Z", "text": line, "level": "INFO"}))
        .collect();
    json!({
        "logList": {
            "spans": {"localserve:1": {"manifestName": "web"}},
            "segments": segments,
            "toCheckpoint": segments.len(),
        },
        "tiltStartTime": "2026-12-02T02:44:24.639486Z",
        "uiSession": {"metadata": {"name": "Tiltfile"}, "status": {"runningTiltBuild": {"version": "0.34.0"}}},
        "uiResources": items,
        "uiButtons": [],
        "isComplete": true,
    })
    .to_string()
}

/// [`view_with_log`] with a short log.
pub fn view(resources: &[FakeResource]) -> String {
    view_with_log(resources, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_rule_is_tilts() {
        let host = "10350---nicks.preview.localhost:8080";
        for (origin, allowed) in [
            (None, true),
            (Some("http://10350---nicks.preview.localhost:8080"), true),
            (Some("http://10350---nicks.preview.localhost:8080/"), true),
            (Some("HTTP://10350---NICKS.preview.localhost:8080"), true),
            (Some("https://10350---nicks.preview.localhost:8080"), true),
            (Some("http://10350---nicks.preview.localhost"), false),
            (Some("http://8000---nicks.preview.localhost:8080"), false),
            (Some("http://evil.example"), false),
            (Some("null"), false),
            (Some(""), false),
            (Some("10350---nicks.preview.localhost:8080"), false),
        ] {
            assert_eq!(origin_allowed(origin, host), allowed, "{origin:?}");
        }
    }
}
