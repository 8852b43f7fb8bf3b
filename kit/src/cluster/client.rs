//! A kube `Client` whose requests cannot hang, and a record of whether the API server answers.
//!
//! kube's default client has no read timeout (so that exec and port-forward sessions live), and
//! its retry layer may retry a 429/503 for many minutes: one request to an API server that
//! accepted the connection and never answered would block its caller for ever. Every request
//! made through [`bounded_client`] gets an answer's headers within the limit, and every
//! non-watch answer's body within the same limit. Watch bodies are long-lived by design; the
//! kube watcher ends a watch that stays silent past its own idle timeout.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use kube::client::ClientBuilder;
use tokio::time::{Instant, Sleep};
use tower::{BoxError, Layer, Service};

/// Default limit of one API request (headers, and the body of anything but a watch). A list of
/// 10,000 ConfigMaps takes well under a second; a server that needs longer is not answering.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the API server currently answers: false from a failed request (no connection, a
/// timeout, a 5xx) until the next answered one. Shared by clones.
#[derive(Clone, Debug)]
pub struct ApiHealth {
    answering: Arc<AtomicBool>,
}

impl Default for ApiHealth {
    fn default() -> Self {
        ApiHealth {
            answering: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl ApiHealth {
    /// Whether the last request got an answer.
    pub fn is_answering(&self) -> bool {
        self.answering.load(Ordering::Acquire)
    }

    pub(crate) fn record(&self, answered: bool) {
        let was = self.answering.swap(answered, Ordering::AcqRel);
        if was != answered {
            if answered {
                tracing::info!("the API server answers again");
            } else {
                tracing::warn!("the API server does not answer");
            }
        }
    }
}

/// A kube client for `config` whose every request is bounded by `limit` (see the module docs),
/// reporting to `health`.
pub fn bounded_client(
    config: kube::Config,
    limit: Duration,
    health: ApiHealth,
) -> Result<kube::Client, kube::Error> {
    let layer = DeadlineLayer { limit, health };
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}

/// The cluster as every binary finds it: its client (see [`bounded_client`]), the health that
/// client reports, and the namespace of the envs.
pub struct Cluster {
    /// The bounded client.
    pub client: kube::Client,
    /// Whether the API server answers, as the client reports it.
    pub api_health: ApiHealth,
    /// The namespace given, else the pod's namespace in-cluster, else the kubeconfig's.
    pub namespace: String,
}

/// Why the cluster could not be reached at start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Neither in-cluster configuration nor a kubeconfig was found or usable.
    #[error("finding the cluster (in-cluster or kubeconfig): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// Finds the cluster the standard kube-rs way (in-cluster, else `KUBECONFIG` /
/// `~/.kube/config`) and builds a client whose requests are bounded by `limit`.
pub async fn connect(namespace: Option<String>, limit: Duration) -> Result<Cluster, ConnectError> {
    let config = kube::Config::infer().await.map_err(ConnectError::Infer)?;
    let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
    let api_health = ApiHealth::default();
    let client = bounded_client(config, limit, api_health.clone()).map_err(ConnectError::Client)?;
    Ok(Cluster {
        client,
        api_health,
        namespace,
    })
}

/// A request that did not get its answer in time.
#[derive(Debug)]
pub struct TimedOut {
    /// What timed out.
    pub what: &'static str,
    /// The limit.
    pub limit: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the API server sent no {} within {:?}",
            self.what, self.limit
        )
    }
}

impl StdError for TimedOut {}

/// The outermost layer of the client stack (outside kube's retries).
#[derive(Clone)]
struct DeadlineLayer {
    limit: Duration,
    health: ApiHealth,
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            limit: self.limit,
            health: self.health.clone(),
        }
    }
}

#[derive(Clone)]
struct Deadline<S> {
    inner: S,
    limit: Duration,
    health: ApiHealth,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<kube::client::Body>> for Deadline<S>
where
    S: Service<Request<kube::client::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<DeadlineBody<B>>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let watch = is_watch(request.uri());
        let limit = self.limit;
        let health = self.health.clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match tokio::time::timeout(limit, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    health.record(false);
                    return Err(error.into());
                }
                Err(_) => {
                    health.record(false);
                    return Err(Box::new(TimedOut {
                        what: "answer",
                        limit,
                    }));
                }
            };
            health.record(!response.status().is_server_error());
            let body_deadline = (!watch).then(|| started + limit);
            Ok(response.map(|body| DeadlineBody::new(body, body_deadline, limit)))
        })
    }
}

/// Whether a request is a watch (its body streams for minutes by design).
fn is_watch(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1"))
    })
}

/// A response body that fails once its deadline passes (no deadline for watches).
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, deadline: Option<Instant>, limit: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            limit,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(Box::new(TimedOut {
                what: "whole answer",
                limit: this.limit,
            }))));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_told_apart_by_their_query() {
        let watch: http::Uri = "/api/v1/namespaces/a/configmaps?&watch=true&timeoutSeconds=290"
            .parse()
            .unwrap();
        let list: http::Uri = "/api/v1/namespaces/a/configmaps?&limit=500"
            .parse()
            .unwrap();
        let named: http::Uri = "/api/v1/namespaces/a/configmaps/watch=true"
            .parse()
            .unwrap();
        assert!(is_watch(&watch));
        assert!(!is_watch(&list));
        assert!(!is_watch(&named));
    }
}
