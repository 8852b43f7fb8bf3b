//! The simulated runner of local runs: what a runner pod's Tilt would serve, for every env
//! whose runner pod devcluster reports Ready.
//!
//! Two listeners on loopback stand for every runner at once: Tilt's port (its
//! `uiresources` API, which ephctrl asks for the env's ports, and its UI) and the port of the
//! env's app. A request names its env by its `Host` (`PORT---ENV.<gatewayHost>`, as the gateway
//! forwards it) or, from ephctrl, by a path prefix `/ENV` (ephctrl's Tilt URL template is
//! `http://127.0.0.1:TILT/{env}`). The app page names the env's repo, branch and Tiltfile; both
//! ports echo WebSockets and, like Tilt, accept one only when `Origin` matches `Host`. When a
//! runner pod becomes Ready, a Tilt start's lines are written as its tilt-upper container's
//! output, so the dashboard's setup logs read as they would in a cluster.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use devcluster::workloads::ContainerOutput;
use ephemerator_core::cluster::reflected_watch;
use ephemerator_core::hosts::parse_env_port_host;
use ephemerator_core::labels::OWNER_NAME_LABEL;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{reflector, watcher};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Tilt's API path for the resource list (what ephctrl reads the ports from).
const UIRESOURCES_PATH: &str = "/proxy/apis/tilt.dev/v1alpha1/uiresources";
/// The runner container whose environment names the env's spec.
const TILT_UPPER: &str = "tilt-upper";

/// The loopback ports of the simulated runners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerPorts {
    /// Tilt's web port (the config's `runner.tiltPort`).
    pub tilt: u16,
    /// The port of the env's app, published as `web`.
    pub web: u16,
}

/// What a running env's runner was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunningEnv {
    repo: String,
    branch: String,
    path: String,
    token: String,
}

type RunningEnvs = Arc<RwLock<HashMap<String, RunningEnv>>>;

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

/// Starts the runners' listeners on 127.0.0.1 and follows the runner pods of `namespace`,
/// writing their Tilt output to `output`.
pub async fn start(
    client: kube::Client,
    namespace: &str,
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
    let (store, writer) = reflector::store::<Pod>();
    let events = reflected_watch(
        Api::<Pod>::namespaced(client, namespace),
        watcher::Config::default().labels("app.kubernetes.io/name=ephrunner"),
        writer,
        |pod| pod.metadata.managed_fields = None,
    );
    let followed = envs.clone();
    let mut printed: HashSet<String> = HashSet::new();
    tasks.push(tokio::spawn(events.for_each(move |_| {
        let mut running = HashMap::new();
        for pod in store.state() {
            let Some((name, env)) = running_env(&pod) else {
                continue;
            };
            if let Some(uid) = pod.metadata.uid.as_deref()
                && printed.insert(uid.to_string())
            {
                output.append(uid, TILT_UPPER, &tilt_start(&env, ports));
            }
            running.insert(name, env);
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

/// The env a Ready, not terminating runner pod runs, from its labels and tilt-upper's
/// environment.
fn running_env(pod: &Pod) -> Option<(String, RunningEnv)> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    let name = pod.metadata.labels.as_ref()?.get(OWNER_NAME_LABEL)?.clone();
    let container = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == TILT_UPPER)?;
    let var = |key: &str| {
        container
            .env
            .as_ref()?
            .iter()
            .find(|v| v.name == key)?
            .value
            .clone()
    };
    Some((
        name,
        RunningEnv {
            repo: var("TILT_UPPER_REPO")?,
            branch: var("TILT_UPPER_BRANCH")?,
            path: var("TILT_UPPER_PATH")?,
            token: var("TILT_UPPER_TOKEN").unwrap_or_default(),
        },
    ))
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
    let path = request.uri().path().to_string();
    // The env: from the gateway's Host, else from ephctrl's path prefix.
    let (name, rest) = match parse_env_port_host(&host, &site.gateway_host) {
        Some(env_host) => (env_host.env_name, path.clone()),
        None => {
            let trimmed = path.trim_start_matches('/');
            let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
            (first.to_string(), format!("/{rest}"))
        }
    };
    let Some(env) = read(&site.envs).get(&name).cloned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no runner is up for env {name:?}\n"),
        );
    };
    if request.headers().contains_key(UPGRADE) {
        return websocket(request, &host);
    }
    match (site.kind, rest.as_str()) {
        (Kind::Tilt, UIRESOURCES_PATH) => {
            let token = request
                .headers()
                .get("x-tilt-token")
                .and_then(|v| v.to_str().ok());
            if token != Some(env.token.as_str()) {
                return text(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong X-Tilt-Token\n".into(),
                );
            }
            let mut response = text(StatusCode::OK, uiresources(site.ports.web));
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

/// Tilt's resource list: the Tiltfile loaded, and one resource `web` linking the app port.
fn uiresources(web_port: u16) -> String {
    serde_json::json!({
        "kind": "UIResourceList",
        "apiVersion": "tilt.dev/v1alpha1",
        "metadata": {},
        "items": [
            {
                "metadata": {"name": "(Tiltfile)"},
                "status": {"runtimeStatus": "not_applicable", "updateStatus": "ok"}
            },
            {
                "metadata": {"name": "web"},
                "status": {
                    "runtimeStatus": "ok",
                    "updateStatus": "ok",
                    "endpointLinks": [{"url": format!("http://localhost:{web_port}/")}]
                }
            }
        ]
    })
    .to_string()
}

/// Switches to a WebSocket that echoes every message, if `Origin` names the `Host` (Tilt's
/// rule: a page of another origin cannot open Tilt's socket).
fn websocket(mut request: Request<Incoming>, host: &str) -> Response<Full<Bytes>> {
    let origin_host = request
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .and_then(|origin| origin.split_once("://").map(|(_, h)| h.to_string()));
    if origin_host.as_deref().is_some_and(|origin| origin != host) {
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
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() || socket.send(message).await.is_err() {
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
fn read(envs: &RunningEnvs) -> std::sync::RwLockReadGuard<'_, HashMap<String, RunningEnv>> {
    envs.read().unwrap_or_else(|p| p.into_inner())
}

fn write(envs: &RunningEnvs) -> std::sync::RwLockWriteGuard<'_, HashMap<String, RunningEnv>> {
    envs.write().unwrap_or_else(|p| p.into_inner())
}
