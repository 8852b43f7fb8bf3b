//! The small admin listener every server has beside its traffic: `/healthz` (the process
//! answers), `/readyz` (what the server's [`AdminReport`] says) and `/metrics` (Prometheus
//! text). Kept off the traffic listener so that probes and scrapes never depend on routing,
//! authentication or load there.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::running::Draining;

/// Content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `/readyz` says: 200 `ready` (with a note when the server works from its caches), or
/// 503 with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The server does its job.
    Ready,
    /// The server does its job; the note says in which role (ephctrl: leading or standing by).
    ReadyAs(String),
    /// The server does its job from what it has; the note says what it lacks.
    ReadyFromCache(&'static str),
    /// The server cannot do its job.
    NotReady(&'static str),
}

/// What a server's job needs, for [`readiness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Serving people from caches of the cluster (the dashboard, the gateway).
    ServeFromCache,
    /// Writing to the API server (ephctrl).
    WriteToApiServer,
}

/// The one readiness policy of every server (README "Readiness"): not ready until the first
/// list of the envs has reached the cache; after that, ready while the server can do its job.
/// A server that serves people from its caches keeps doing so while the API server is away and
/// stays ready (otherwise every replica would leave its Service at once and people would get
/// no page at all instead of a slightly stale one); one whose job is writing is not ready while
/// nothing it writes can land. Every server's `*_api_answering` gauge says which it is.
pub fn readiness(listed: bool, api_answering: bool, job: Job) -> Readiness {
    const AWAY: &str = "the Kubernetes API server does not answer";
    match (listed, api_answering, job) {
        (false, _, _) => Readiness::NotReady("env ConfigMaps not listed yet"),
        (true, true, _) => Readiness::Ready,
        (true, false, Job::ServeFromCache) => Readiness::ReadyFromCache(AWAY),
        (true, false, Job::WriteToApiServer) => Readiness::NotReady(AWAY),
    }
}

/// What `/readyz` says of a server on its way out.
pub const SHUTTING_DOWN: &str = "shutting down: this pod is leaving its Service";

/// [`readiness`] of a server with a traffic listener: not ready while it shuts down
/// ([`Draining`]), whatever else holds.
pub fn serving_readiness(
    draining: &Draining,
    listed: bool,
    api_answering: bool,
    job: Job,
) -> Readiness {
    if draining.is_draining() {
        return Readiness::NotReady(SHUTTING_DOWN);
    }
    readiness(listed, api_answering, job)
}

/// What a server reports on its admin listener.
pub trait AdminReport: Send + Sync + 'static {
    /// Shown on `/readyz` (see [`readiness`]).
    fn readiness(&self) -> Readiness;
    /// The Prometheus text of `/metrics`.
    fn metrics(&self) -> String;
}

/// Serves until the task is dropped. Each connection runs on its own task; a broken connection
/// is logged and never stops the listener.
pub async fn serve(listener: TcpListener, report: Arc<dyn AdminReport>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting an admin connection failed");
                continue;
            }
        };
        let report = report.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let report = report.clone();
                async move { Ok::<_, Infallible>(respond(report.as_ref(), &request)) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "admin connection ended with an error");
            }
        });
    }
}

fn respond(report: &dyn AdminReport, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match report.readiness() {
            Readiness::Ready => text(StatusCode::OK, "ready\n".into()),
            Readiness::ReadyAs(role) => text(StatusCode::OK, format!("ready: {role}\n")),
            Readiness::ReadyFromCache(note) => {
                text(StatusCode::OK, format!("ready, from the cache: {note}\n"))
            }
            Readiness::NotReady(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        },
        "/metrics" => {
            let mut response = text(StatusCode::OK, report.metrics());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Report {
        ready: AtomicBool,
        api_answering: AtomicBool,
    }

    impl AdminReport for Report {
        fn readiness(&self) -> Readiness {
            readiness(
                self.ready.load(Ordering::Acquire),
                self.api_answering.load(Ordering::Acquire),
                Job::ServeFromCache,
            )
        }
        fn metrics(&self) -> String {
            "thing_total 3\n".into()
        }
    }

    async fn start() -> (std::net::SocketAddr, Arc<Report>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let report = Arc::new(Report {
            ready: AtomicBool::new(false),
            api_answering: AtomicBool::new(true),
        });
        tokio::spawn(serve(listener, report.clone()));
        (addr, report)
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
    async fn readyz_says_why_until_ready_and_healthz_always_answers() {
        let (addr, report) = start().await;
        assert!(
            get(addr, "GET", "/healthz")
                .await
                .starts_with("HTTP/1.1 200")
        );
        let not_ready = get(addr, "GET", "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(
            not_ready.ends_with("not ready: env ConfigMaps not listed yet\n"),
            "{not_ready}"
        );
        report.ready.store(true, Ordering::Release);
        let ready = get(addr, "GET", "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(ready.ends_with("\r\n\r\nready\n"), "{ready}");
        report.api_answering.store(false, Ordering::Release);
        let from_cache = get(addr, "GET", "/readyz").await;
        assert!(from_cache.starts_with("HTTP/1.1 200"), "{from_cache}");
        assert!(
            from_cache
                .ends_with("ready, from the cache: the Kubernetes API server does not answer\n"),
            "{from_cache}"
        );
    }

    /// The one policy, every case.
    #[test]
    fn readiness_policy() {
        use Readiness::*;
        const AWAY: &str = "the Kubernetes API server does not answer";
        let cases = [
            (
                false,
                true,
                Job::ServeFromCache,
                NotReady("env ConfigMaps not listed yet"),
            ),
            (
                false,
                false,
                Job::WriteToApiServer,
                NotReady("env ConfigMaps not listed yet"),
            ),
            (true, true, Job::ServeFromCache, Ready),
            (true, true, Job::WriteToApiServer, Ready),
            (true, false, Job::ServeFromCache, ReadyFromCache(AWAY)),
            (true, false, Job::WriteToApiServer, NotReady(AWAY)),
        ];
        for (listed, answering, job, expected) in cases {
            assert_eq!(
                readiness(listed, answering, job),
                expected,
                "{listed} {answering} {job:?}"
            );
        }
    }

    #[test]
    fn a_server_shutting_down_is_not_ready_whatever_else_holds() {
        let draining = Draining::default();
        assert_eq!(
            serving_readiness(&draining, true, true, Job::ServeFromCache),
            Readiness::Ready
        );
        draining.begin();
        for (listed, answering) in [(true, true), (true, false), (false, true)] {
            assert_eq!(
                serving_readiness(&draining, listed, answering, Job::ServeFromCache),
                Readiness::NotReady(SHUTTING_DOWN)
            );
        }
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let (addr, _) = start().await;
        let response = get(addr, "GET", "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("text/plain; version=0.0.4"), "{response}");
        assert!(response.ends_with("thing_total 3\n"), "{response}");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let (addr, _) = start().await;
        assert!(get(addr, "GET", "/nope").await.starts_with("HTTP/1.1 404"));
        assert!(
            get(addr, "POST", "/metrics")
                .await
                .starts_with("HTTP/1.1 405")
        );
    }
}
