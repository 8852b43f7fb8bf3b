//! Fault injection, so clients' error handling can be tested: drop every watch, fail the next
//! N requests, add latency. (History compaction lives in the store.) Reachable from the
//! `DevCluster` handle and, for out-of-process users, under `POST /devcluster/faults/...`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use serde::Deserialize;

use crate::error::ApiError;
use crate::store::Store;

/// Path prefix of the fault endpoints; never itself failed or delayed.
pub const FAULTS_PATH: &str = "/devcluster/faults";

/// The active faults, shared by the middleware, the watch streams and the handle.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<FaultState>,
}

struct FaultState {
    fail_remaining: AtomicU32,
    fail_status: AtomicU16,
    latency_ms: AtomicU64,
    drop_watches: tokio::sync::watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            inner: Arc::new(FaultState {
                fail_remaining: AtomicU32::new(0),
                fail_status: AtomicU16::new(500),
                latency_ms: AtomicU64::new(0),
                drop_watches: tokio::sync::watch::channel(0).0,
            }),
        }
    }
}

impl Faults {
    /// Ends every open watch (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.inner.drop_watches.send_modify(|n| *n += 1);
    }

    /// A receiver that changes whenever watches are dropped.
    pub fn watch_drops(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.drop_watches.subscribe()
    }

    /// Fails the next `count` API requests with `status` (e.g. 500, or 429 with `Retry-After: 1`).
    pub fn fail_next_requests(&self, count: u32, status: u16) {
        self.inner.fail_status.store(status, Ordering::SeqCst);
        self.inner.fail_remaining.store(count, Ordering::SeqCst);
    }

    /// Delays every API request by `latency` (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.inner
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Takes one pending failure, if any.
    fn take_failure(&self) -> Option<u16> {
        self.inner
            .fail_remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| self.inner.fail_status.load(Ordering::SeqCst))
    }

    fn latency(&self) -> Duration {
        Duration::from_millis(self.inner.latency_ms.load(Ordering::SeqCst))
    }
}

fn injected_error(status: u16) -> ApiError {
    match status {
        429 => ApiError::new(
            429,
            "TooManyRequests",
            "injected fault: too many requests, please try again later",
        ),
        503 => ApiError::new(
            503,
            "ServiceUnavailable",
            "injected fault: service unavailable",
        ),
        code => ApiError::new(
            code,
            "InternalError",
            format!("injected fault: status {code}"),
        ),
    }
}

/// The middleware applying latency and injected failures to every request but the fault endpoints.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let faults = req.app_data::<web::Data<Faults>>().cloned();
    if let Some(faults) = faults.filter(|_| !req.path().starts_with(FAULTS_PATH)) {
        let latency = faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(status) = faults.take_failure() {
            let resp = injected_error(status).error_response();
            return Ok(req.into_response(resp));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[derive(Deserialize)]
struct FailQuery {
    count: Option<u32>,
    status: Option<u16>,
}

#[derive(Deserialize)]
struct LatencyQuery {
    ms: u64,
}

fn done(what: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(serde_json::json!({"fault": what}).to_string())
}

/// Registers `POST /devcluster/faults/{drop-watches|compact|fail-next|latency}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/devcluster/faults/drop-watches",
        web::post().to(|f: web::Data<Faults>| async move {
            f.drop_watches();
            done("drop-watches")
        }),
    )
    .route(
        "/devcluster/faults/compact",
        web::post().to(|s: web::Data<Store>| async move {
            s.compact_history();
            done("compact")
        }),
    )
    .route(
        "/devcluster/faults/fail-next",
        web::post().to(
            |f: web::Data<Faults>, q: web::Query<FailQuery>| async move {
                let status = q.status.unwrap_or(500);
                if !(400..=599).contains(&status) {
                    return ApiError::bad_request("status must be an HTTP error code (400-599)")
                        .error_response();
                }
                f.fail_next_requests(q.count.unwrap_or(1), status);
                done("fail-next")
            },
        ),
    )
    .route(
        "/devcluster/faults/latency",
        web::post().to(
            |f: web::Data<Faults>, q: web::Query<LatencyQuery>| async move {
                f.set_latency(Duration::from_millis(q.ms.min(60_000)));
                done("latency")
            },
        ),
    );
}
