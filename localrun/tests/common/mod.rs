//! What the local stack's HTTP tests share: their settings, requests to the gateway with any
//! Host, and the dashboard's create form.
#![allow(dead_code)]

use std::time::Duration;

use ephemerator_core::{EnvStatus, Phase};
use ephemerator_testkit::wait_for;
use ephlocal::{LocalSettings, LocalStack, RunnerPorts};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

pub fn settings(data: &std::path::Path, ports: RunnerPorts, git_port: u16) -> LocalSettings {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut settings = LocalSettings::new(&root, data);
    settings.port = 0;
    settings.runner_ports = ports;
    settings.pod_ready_delay = Duration::from_millis(200);
    settings.git_port = git_port;
    settings
}

pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// A request to the gateway for `host` (its port added, as a browser sends it).
pub async fn request(
    stack: &LocalStack,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let port = stack.gateway_addr.port();
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", stack.gateway_addr))
        .header("host", format!("{host}:{port}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client
        .request(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub fn form(fields: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        for byte in value.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    out.push(byte as char)
                }
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
    }
    out
}

/// The CSRF token of the dashboard's forms, from its page (signed in as the local user).
pub async fn csrf_token(stack: &LocalStack) -> String {
    let page = request(stack, "GET", "preview.localhost", "/", &[], String::new()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("dev@example.com"), "{}", page.body);
    page.body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page has a form with a CSRF token")
        .to_string()
}

/// Creates an env of `repo` from the dashboard's form and returns its name.
pub async fn create_env(stack: &LocalStack, repo: &str, branch: &str, path: &str) -> String {
    let token = csrf_token(stack).await;
    let envs = Api::<ConfigMap>::namespaced(stack.client(), "default");
    let before: Vec<String> = envs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    let origin = format!("http://preview.localhost:{}", stack.gateway_addr.port());
    let created = request(
        stack,
        "POST",
        "preview.localhost",
        "/envs",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
        ],
        form(&[
            ("repo", repo),
            ("branch", branch),
            ("path", path),
            ("csrf", &token),
        ]),
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let list = envs.list(&ListParams::default()).await.unwrap().items;
    list.into_iter()
        .filter_map(|cm| cm.metadata.name)
        .find(|name| !before.contains(name))
        .expect("a new env ConfigMap")
}

pub async fn ready_status(stack: &LocalStack, name: &str) -> EnvStatus {
    let envs = Api::<ConfigMap>::namespaced(stack.client(), "default");
    wait_for(&format!("{name} Ready with its ports"), || async {
        let cm = envs.get_opt(name).await.ok()??;
        let status = EnvStatus::from_meta(&cm.metadata);
        (status.phase == Phase::Ready && status.ports.len() == 2).then_some(status)
    })
    .await
}
