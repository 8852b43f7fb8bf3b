//! Stand-ins for the servers ephctrl talks to, for tests (and, with the `test-support` feature,
//! for the integration tests and benchmarks): a Tilt serving its UIResource list ([`tilt`]) and
//! a notification webhook receiver ([`webhook`]). Both are HTTP/1 servers on 127.0.0.1 that stop
//! when dropped.

pub mod tilt;
pub mod webhook;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The loop the stand-ins share: serves `listener` until the task is aborted, one task per
/// connection (aborted with it), answering every request with `answer`.
async fn serve<S, F, Fut>(listener: TcpListener, shared: Arc<S>, answer: F)
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    // Connections end with the server (the set is dropped with this task), as they do when a
    // real server stops: no pooled connection of a client outlives it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let answered = answer(shared.clone(), request);
                async move { Ok::<_, Infallible>(answered.await) }
            });
            // A client hanging up mid-request is not the stand-in's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Where tests point ephctrl for Tilt when they run no stand-in: a closed port on loopback, so
/// asking fails at once and no test looks up a cluster DNS name off this machine.
pub const NO_TILT_URL_TEMPLATE: &str = "http://127.0.0.1:9/{env}";

/// [`crate::Settings::new`] for tests: the same, with Tilt at [`NO_TILT_URL_TEMPLATE`].
pub fn settings(
    client: kube::Client,
    namespace: &str,
    config: ephemerator_core::Config,
) -> crate::Settings {
    let mut settings = crate::Settings::new(client, namespace, config);
    settings.tilt_url_template = NO_TILT_URL_TEMPLATE.to_string();
    settings.lease.timings = TEST_LEASE_TIMINGS;
    settings
}

/// Lease timings for tests: a controller that was killed is replaced within about three
/// seconds rather than fifteen, and a leader starved of CPU for most of two seconds (a loaded
/// test machine) still keeps the lead.
pub const TEST_LEASE_TIMINGS: crate::leader::LeaseTimings = crate::leader::LeaseTimings {
    lease_duration: std::time::Duration::from_secs(3),
    renew_deadline: std::time::Duration::from_secs(2),
    retry_period: std::time::Duration::from_millis(250),
};

/// The controller started on the current runtime with its admin listener on a free local port;
/// it stops when the handle is dropped.
pub fn start(settings: crate::Settings) -> crate::Running {
    let listeners = ephemerator_kit::Listeners::local(false).expect("a local listener");
    crate::start(settings, listeners).expect("the controller starts")
}
