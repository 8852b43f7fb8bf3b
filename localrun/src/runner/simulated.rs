//! The simulated runners of local runs: what a runner pod's Tilt would serve, for every env
//! whose runner pod is Ready, when there is no real Tilt (see [`super::RunnerKind`]).
//!
//! Two listeners on loopback stand for every runner at once: Tilt's port (its view at
//! `/api/view`, which ephctrl asks for the env's ports, with Tilt 0.37.4's token rule, and a
//! page) and the port of the env's app. The app page names the env's repo, branch and
//! Tiltfile. Both accept a WebSocket only under Tilt's origin rule
//! (`ephctrl::testing::tilt::origin_allowed`, checked against the real Tilt); Tilt's sends the
//! view first, as the real `/ws/view` does, and the app's echoes. When a runner pod becomes
//! Ready, a Tilt start's lines are written as its tilt-upper container's output.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use devcluster::workloads::ContainerOutput;
use ephctrl::testing::tilt::{FakeResource, origin_allowed, view};
use futures::{SinkExt, Stream, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{RunnerPorts, RunningEnv, TILT_UPPER, env_of_request};

type RunningEnvs = Arc<RwLock<BTreeMap<String, RunningEnv>>>;

/// The simulated runners; they stop when this is dropped.
pub struct SimulatedRunners {
    envs: RunningEnvs,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SimulatedRunners {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl SimulatedRunners {
    /// Stops the listeners and the pod watch, and returns once their ports are closed.
    pub async fn stop(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
    }

    /// Whether env `name`'s runner is up.
    pub fn is_running(&self, name: &str) -> bool {
        read(&self.envs).contains_key(name)
    }
}

/// Starts the listeners on 127.0.0.1 and follows `running` (the envs whose runner pods are
/// Ready), writing their Tilt output to `output`.
pub(super) async fn start(
    running: impl Stream<Item = BTreeMap<String, RunningEnv>> + Send + 'static,
    ports: RunnerPorts,
    gateway_host: &str,
    output: ContainerOutput,
) -> anyhow::Result<SimulatedRunners> {
    let envs: RunningEnvs = Arc::default();
    let mut tasks = Vec::new();
    for (kind, port) in [(Kind::Tilt, ports.tilt), (Kind::Web, ports.web)] {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|error| {
                anyhow::anyhow!("the simulated runner's port 127.0.0.1:{port} is not free: {error}")
            })?;
        let site = Arc::new(Site {
            kind,
            ports,
            gateway_host: gateway_host.to_ascii_lowercase(),
            envs: envs.clone(),
        });
        tasks.push(tokio::spawn(serve(listener, site)));
    }
    let followed = envs.clone();
    let mut printed: HashSet<String> = HashSet::new();
    tasks.push(tokio::spawn(running.for_each(move |running| {
        for env in running.values() {
            if printed.insert(env.pod_uid.clone()) {
                output.append(&env.pod_uid, TILT_UPPER, &tilt_start(env, ports));
            }
        }
        *write(&followed) = running;
        futures::future::ready(())
    })));
    Ok(SimulatedRunners { envs, tasks })
}

/// What Tilt prints as it starts, for the setup logs.
fn tilt_start(env: &RunningEnv, ports: RunnerPorts) -> String {
    format!(
        "Cloning {repo} at {branch}\n\
         Tilt started on http://localhost:{tilt}/ (simulated by the local run)\n\
         Initial Build\n\
         Loading Tiltfile at: {path}\n\
         Successfully loaded Tiltfile\n\
         web │ Serving on http://localhost:{web}/\n",
        repo = env.repo,
        branch = env.branch,
        path = env.path,
        tilt = ports.tilt,
        web = ports.web,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tilt,
    Web,
}

struct Site {
    kind: Kind,
    ports: RunnerPorts,
    gateway_host: String,
    envs: RunningEnvs,
}

async fn serve(listener: TcpListener, site: Arc<Site>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let site = site.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let site = site.clone();
                async move { Ok::<_, Infallible>(answer(&site, request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn answer(site: &Site, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let host = request
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (name, rest) = env_of_request(&host, request.uri().path(), &site.gateway_host);
    let Some(env) = read(&site.envs).get(&name).cloned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no runner is up for env {name:?}\n"),
        );
    };
    if request.headers().contains_key(UPGRADE) {
        // Tilt's live view sends the whole view first (as the real Tilt's /ws/view does); the
        // app echoes.
        let greeting = (site.kind == Kind::Tilt).then(|| simulated_view(site.ports));
        return websocket(request, &host, greeting);
    }
    match (site.kind, rest.as_str()) {
        (Kind::Tilt, "/api/view") => {
            // Tilt 0.37.4's rule: the runner's token (ephctrl sends it as this header).
            let token = request
                .headers()
                .get("x-tilt-token")
                .and_then(|v| v.to_str().ok());
            let refusal = match token {
                None | Some("") => Some("missing session token\n"),
                Some(token) if token != env.token => Some("invalid session token\n"),
                Some(_) => None,
            };
            if let Some(refusal) = refusal {
                return text(StatusCode::FORBIDDEN, refusal.into());
            }
            let mut response = text(StatusCode::OK, simulated_view(site.ports));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        (Kind::Tilt, _) => html(format!(
            "<h1>Tilt (simulated) for {}</h1><p>Resources: (Tiltfile), web on port {}.</p>\
             <p>Started for {} at {} with {}.</p>",
            escape(&name),
            site.ports.web,
            escape(&env.repo),
            escape(&env.branch),
            escape(&env.path)
        )),
        (Kind::Web, _) => html(format!(
            "<h1>Env {}</h1><dl><dt>Repo</dt><dd>{}</dd><dt>Branch</dt><dd>{}</dd>\
             <dt>Tiltfile</dt><dd>{}</dd></dl><p>Served by the simulated runner of the local \
             run.</p>",
            escape(&name),
            escape(&env.repo),
            escape(&env.branch),
            escape(&env.path)
        )),
    }
}

/// Tilt's view of a simulated runner: the Tiltfile loaded, and `web` serving the app's port.
fn simulated_view(ports: RunnerPorts) -> String {
    let link = format!("http://localhost:{}/", ports.web);
    view(&[FakeResource::new("web", "ok", &[&link])])
}

/// Switches to a WebSocket under Tilt's origin rule (a page of another origin cannot open
/// Tilt's socket) that sends `greeting` first, if any, and then reads what the client sends
/// without answering (Tilt's live view), or echoes every message (no greeting: the app).
fn websocket(
    mut request: Request<Incoming>,
    host: &str,
    greeting: Option<String>,
) -> Response<Full<Bytes>> {
    let origin = request
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok());
    if !origin_allowed(origin, host) {
        return text(StatusCode::FORBIDDEN, "origin not allowed\n".into());
    }
    let Some(key) = request.headers().get("sec-websocket-key").cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            "not a WebSocket handshake\n".into(),
        );
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let mut socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let echo = greeting.is_none();
        if let Some(greeting) = greeting
            && socket.send(Message::text(greeting)).await.is_err()
        {
            return;
        }
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() || (echo && socket.send(message).await.is_err()) {
                break;
            }
        }
    });
    let mut response = text(StatusCode::SWITCHING_PROTOCOLS, String::new());
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert("sec-websocket-accept", accept);
    }
    headers.remove(CONTENT_TYPE);
    response
}

fn html(body: String) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::OK,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ephemerator \
             local runner</title></head><body>{body}</body></html>"
        ),
    );
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

// Each update swaps the whole map; a poisoned lock holds a consistent one.
fn read(envs: &RunningEnvs) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, RunningEnv>> {
    envs.read().unwrap_or_else(|p| p.into_inner())
}

fn write(envs: &RunningEnvs) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, RunningEnv>> {
    envs.write().unwrap_or_else(|p| p.into_inner())
}
