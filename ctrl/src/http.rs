//! The small HTTP listener: `/metrics` (Prometheus text), `/healthz` (the process answers) and
//! `/readyz` (the controller has listed its env ConfigMaps once and the API server answers).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ephemerator_core::Phase;
use ephemerator_core::cluster::ApiHealth;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the listener reports on.
pub struct HealthState {
    /// Metrics to encode on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Set once the controller's first list of env ConfigMaps has synced.
    pub ready: Arc<AtomicBool>,
    /// Whether the API server answers: while it does not, nothing the controller does lands.
    pub api_health: ApiHealth,
    /// The phases of all known envs, counted into `ephctrl_envs` at each scrape so the gauge is
    /// always the cluster's truth (deleted envs drop out by themselves).
    pub env_phases: Box<dyn Fn() -> Vec<Phase> + Send + Sync>,
}

/// Serves until the task is dropped. Each connection runs on its own task; a broken connection
/// is logged and never stops the listener.
pub async fn serve(listener: TcpListener, state: Arc<HealthState>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics/health connection failed");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &request)) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "metrics/health connection ended with an error");
            }
        });
    }
}

fn respond(state: &HealthState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if !state.ready.load(Ordering::Acquire) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: env ConfigMaps not listed yet\n",
        ),
        "/readyz" if !state.api_health.is_answering() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the Kubernetes API server does not answer\n",
        ),
        "/readyz" => text(StatusCode::OK, "ready\n"),
        "/metrics" => {
            state.metrics.set_env_phases((state.env_phases)());
            let mut response = text(StatusCode::OK, "");
            *response.body_mut() = Full::new(Bytes::from(state.metrics.encode()));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(ready: bool) -> (std::net::SocketAddr, Arc<AtomicBool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ready = Arc::new(AtomicBool::new(ready));
        let state = Arc::new(HealthState {
            metrics: Arc::new(Metrics::new()),
            ready: ready.clone(),
            api_health: ApiHealth::default(),
            env_phases: Box::new(|| vec![Phase::Ready, Phase::Ready, Phase::Failed]),
        });
        tokio::spawn(serve(listener, state));
        (addr, ready)
    }

    async fn get(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn readyz_follows_the_flag_and_healthz_always_answers() {
        let (addr, ready) = start(false).await;
        assert!(
            get(addr, "GET", "/healthz")
                .await
                .starts_with("HTTP/1.1 200")
        );
        assert!(
            get(addr, "GET", "/readyz")
                .await
                .starts_with("HTTP/1.1 503")
        );
        ready.store(true, Ordering::Release);
        assert!(
            get(addr, "GET", "/readyz")
                .await
                .starts_with("HTTP/1.1 200")
        );
    }

    #[tokio::test]
    async fn metrics_counts_envs_by_phase_at_scrape_time() {
        let (addr, _) = start(true).await;
        let response = get(addr, "GET", "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("text/plain; version=0.0.4"), "{response}");
        assert!(
            response.contains("ephctrl_envs{phase=\"Ready\"} 2"),
            "{response}"
        );
        assert!(
            response.contains("ephctrl_envs{phase=\"Failed\"} 1"),
            "{response}"
        );
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let (addr, _) = start(true).await;
        assert!(get(addr, "GET", "/nope").await.starts_with("HTTP/1.1 404"));
        assert!(
            get(addr, "POST", "/metrics")
                .await
                .starts_with("HTTP/1.1 405")
        );
    }
}
