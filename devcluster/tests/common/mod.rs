//! Helpers shared by devcluster's integration tests.
#![allow(dead_code, unused_imports, unused_macros)]

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use devcluster::DevCluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) use server::{Server, on_both_servers};

mod server;

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `check` until it yields a value, failing the test after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_within(DEADLINE, what, check).await
}

/// Polls `check` until it yields a value, failing the test after `limit`.
pub async fn wait_for_within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `fut`, failing the test after [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        },
        data: (!data.is_empty()).then(|| {
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        ..Default::default()
    }
}

/// A Deployment `name` (labelled `app: name`) of `replicas` busybox pods selected by that label.
pub fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}
            }
        }
    }))
    .expect("valid deployment")
}

/// The Kubernetes Status of a failed kube call.
pub fn status_of<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A plain HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.body))
    }
}

/// Sends one request and reads the whole response (not for watches). `head` is the status
/// line and the headers, one per line.
pub async fn raw(
    cluster: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> RawResponse {
    raw_with_headers(
        cluster,
        method,
        path,
        &[("Content-Type", content_type)],
        body,
    )
    .await
}

/// Like [`raw`], with any request headers (a watch must end by itself: `timeoutSeconds`).
/// devcluster gets the bytes over plain TCP, with no client layer in between (kube's client
/// retries a 429, for one); the real server, which needs TLS and credentials, gets them
/// through its client.
pub async fn raw_with_headers(
    cluster: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    if cluster.is_real() {
        return raw_through_client(cluster, method, path, headers, body).await;
    }
    let addr = cluster.devcluster().addr();
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to devcluster");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write request");
    stream.write_all(body).await.expect("write body");
    let mut buf = Vec::new();
    within("a raw response", stream.read_to_end(&mut buf))
        .await
        .expect("read response");
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    RawResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

async fn raw_through_client(
    cluster: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    use http_body_util::BodyExt as _;
    let mut request = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(kube::client::Body::from(body.to_vec()))
        .expect("a valid request");
    let response = within("a raw response", cluster.client().send(request))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let mut head = format!("HTTP/1.1 {}", response.status());
    for (name, value) in response.headers() {
        head.push_str(&format!("\r\n{name}: {}", value.to_str().unwrap_or("")));
    }
    let bytes = within("a raw response's body", response.into_body().collect())
        .await
        .expect("read body")
        .to_bytes();
    RawResponse {
        status,
        head,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Runs kubectl (`$KUBECTL`, else /usr/bin/kubectl) against `c` and returns its stdout, failing
/// the test on error or after a minute.
pub async fn kubectl_stdout(c: &Server, args: &[&str]) -> String {
    let binary = std::env::var_os("KUBECTL").unwrap_or_else(|| "/usr/bin/kubectl".into());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    c.write_kubeconfig(&kubeconfig).unwrap();
    let run = tokio::process::Command::new(&binary)
        .args(args)
        .arg(format!(
            "--cache-dir={}",
            dir.path().join("cache").display()
        ))
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} took over a minute"))
        .unwrap_or_else(|e| panic!("running {binary:?}: {e}"));
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
