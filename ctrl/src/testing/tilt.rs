//! A stand-in Tilt for tests: serves a UIResourceList at [`UIRESOURCES_PATH`] (also under
//! `/envs/NAME`) on 127.0.0.1 to requests carrying the right token (401 otherwise); the list can
//! be changed while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::tilt::{TOKEN_HEADER, UIRESOURCES_PATH};

struct Shared {
    token: String,
    body: Mutex<Bytes>,
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
    /// Starts serving `uiresources` (a UIResourceList JSON body) to holders of `token`.
    pub async fn start(token: &str, uiresources: impl Into<Bytes>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.to_string(),
            body: Mutex::new(uiresources.into()),
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

    /// `http://127.0.0.1:PORT`, what [`crate::tilt::TiltClient::discover_ports`] takes.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `uiresources` from now on.
    pub fn set_uiresources(&self, uiresources: impl Into<Bytes>) {
        *self
            .shared
            .body
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = uiresources.into();
    }

    /// Requests for the list so far, refused ones included.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests refused for a missing or wrong token.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for StandInTilt {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn answer(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Bytes| {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        response
    };
    if without_env_prefix(request.uri().path()) != UIRESOURCES_PATH {
        return reply(StatusCode::NOT_FOUND, Bytes::from_static(b"{}"));
    }
    if request.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, Bytes::from_static(b"{}"));
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let token_ok = request
        .headers()
        .get(TOKEN_HEADER)
        .is_some_and(|value| value.as_bytes() == shared.token.as_bytes());
    if !token_ok {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return reply(
            StatusCode::UNAUTHORIZED,
            Bytes::from_static(br#"{"kind":"Status","status":"Failure","code":401}"#),
        );
    }
    let body = shared
        .body
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    reply(StatusCode::OK, body)
}

/// `path` without a leading `/envs/NAME`: the list is also served under that prefix, so a
/// test's Tilt URL template can name the env (`http://127.0.0.1:PORT/envs/{env}`). Other paths
/// stay as they are (and are not found).
fn without_env_prefix(path: &str) -> &str {
    path.strip_prefix("/envs/")
        .and_then(|rest| {
            rest.find('/')
                .filter(|&end| end > 0)
                .map(|end| &rest[end..])
        })
        .unwrap_or(path)
}

/// One resource of a fake UIResourceList.
#[derive(Debug, Clone)]
pub struct FakeResource {
    pub name: String,
    /// `ok`, `pending`, `error`, `not_applicable`, `unknown`, `none`, or "" (absent).
    pub runtime_status: String,
    pub endpoint_links: Vec<String>,
}

impl FakeResource {
    /// A resource with the given runtime status and endpoint link URLs.
    pub fn new(name: &str, runtime_status: &str, links: &[&str]) -> Self {
        FakeResource {
            name: name.to_string(),
            runtime_status: runtime_status.to_string(),
            endpoint_links: links.iter().map(|l| l.to_string()).collect(),
        }
    }
}

/// A UIResourceList body shaped like Tilt's, with a loaded `(Tiltfile)` resource first.
pub fn uiresource_list(resources: &[FakeResource]) -> String {
    let mut items = vec![json!({
        "metadata": {"name": "(Tiltfile)"},
        "status": {"runtimeStatus": "not_applicable", "updateStatus": "ok", "order": 1},
    })];
    for (i, resource) in resources.iter().enumerate() {
        let mut status = json!({
            "updateStatus": "ok",
            "order": i + 2,
            "endpointLinks": resource.endpoint_links.iter().map(|url| json!({"url": url})).collect::<Vec<_>>(),
        });
        if !resource.runtime_status.is_empty() {
            status["runtimeStatus"] = json!(resource.runtime_status);
        }
        items.push(json!({
            "kind": "UIResource",
            "apiVersion": "tilt.dev/v1alpha1",
            "metadata": {"name": resource.name},
            "spec": {},
            "status": status,
        }));
    }
    json!({
        "kind": "UIResourceList",
        "apiVersion": "tilt.dev/v1alpha1",
        "metadata": {},
        "items": items,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_found_at_its_path_and_under_an_env_prefix_only() {
        assert_eq!(without_env_prefix(UIRESOURCES_PATH), UIRESOURCES_PATH);
        let under_env = format!("/envs/gina{UIRESOURCES_PATH}");
        assert_eq!(without_env_prefix(&under_env), UIRESOURCES_PATH);
        for elsewhere in [
            format!("/elsewhere{UIRESOURCES_PATH}"),
            format!("/envs/{UIRESOURCES_PATH}"),
            format!("/envs/a/b{UIRESOURCES_PATH}"),
            "/envs/gina".to_string(),
        ] {
            assert_ne!(
                without_env_prefix(&elsewhere),
                UIRESOURCES_PATH,
                "{elsewhere}"
            );
        }
    }
}
