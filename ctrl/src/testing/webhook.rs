//! A stand-in webhook receiver for tests: records every JSON body posted to it on 127.0.0.1 and
//! answers with scripted status codes (then 200).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: Option<String>,
    /// The body as JSON (`Value::Null` if it was not JSON).
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    statuses: Mutex<VecDeque<u16>>,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
}

/// The running receiver; stops when dropped.
pub struct StandInWebhook {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl StandInWebhook {
    /// Starts a receiver that answers the first requests with `statuses`, then 200.
    pub async fn start(statuses: &[u16]) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            statuses: Mutex::new(statuses.iter().copied().collect()),
            ..Shared::default()
        });
        let server = tokio::spawn(super::serve(
            listener,
            shared.clone(),
            |shared, request| async move { answer(&shared, request).await },
        ));
        Ok(StandInWebhook {
            addr,
            shared,
            server,
        })
    }

    /// A webhook URL on the receiver, with a secret-looking path like Slack's.
    pub fn url(&self) -> url::Url {
        let text = format!("http://{}/services/T000/B000/s3cr3tpath", self.addr);
        url::Url::parse(&text).unwrap_or_else(|err| unreachable!("{text}: {err}"))
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `count` requests arrived or `deadline` passed; returns them.
    pub async fn wait_for(&self, count: usize, deadline: Duration) -> Vec<Received> {
        let _ = tokio::time::timeout(deadline, async {
            loop {
                let arrived = self.shared.arrived.notified();
                if self.received().len() >= count {
                    return;
                }
                arrived.await;
            }
        })
        .await;
        self.received()
    }
}

impl Drop for StandInWebhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let status = shared
        .statuses
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front()
        .unwrap_or(200);
    shared
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Received {
            path,
            content_type,
            body,
        });
    shared.arrived.notify_waiters();
    let mut response = Response::new(Full::new(Bytes::from(if status == 200 {
        "ok"
    } else {
        "no_service"
    })));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
}
