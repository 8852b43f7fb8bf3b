//! The whole local stack over HTTP, as a newcomer uses it: the dashboard through the gateway,
//! an env created from the form, Ready with its ports discovered from the simulated runner,
//! its app page and a WebSocket through the gateway, deleted, and envs kept across a restart.

use std::time::Duration;

use ephemerator_core::{EnvStatus, Phase};
use ephemerator_testkit::{free_port, wait_for};
use ephlocal::{LocalSettings, LocalStack, RunnerPorts};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn settings(data: &std::path::Path, ports: RunnerPorts, git_port: u16) -> LocalSettings {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut settings = LocalSettings::new(&root, data);
    settings.port = 0;
    settings.runner_ports = ports;
    settings.pod_ready_delay = Duration::from_millis(200);
    settings.git_port = git_port;
    settings
}

struct Answer {
    status: u16,
    body: String,
}

/// A request to the gateway for `host` (its port added, as a browser sends it).
async fn request(
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

fn form(fields: &[(&str, &str)]) -> String {
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

/// Creates an env of `repo` from the dashboard's form and returns its name.
async fn create_env(stack: &LocalStack, repo: &str, branch: &str, path: &str) -> String {
    let page = request(stack, "GET", "preview.localhost", "/", &[], String::new()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("dev@example.com"), "{}", page.body);
    let token = page
        .body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
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

async fn ready_status(stack: &LocalStack, name: &str) -> EnvStatus {
    let envs = Api::<ConfigMap>::namespaced(stack.client(), "default");
    wait_for(&format!("{name} Ready with its ports"), || async {
        let cm = envs.get_opt(name).await.ok()??;
        let status = EnvStatus::from_meta(&cm.metadata);
        (status.phase == Phase::Ready && status.ports.len() == 2).then_some(status)
    })
    .await
}

#[tokio::test]
async fn an_env_goes_from_the_form_to_its_page_through_the_gateway_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let ports = RunnerPorts {
        tilt: free_port(),
        web: free_port(),
    };
    let git_port = free_port();
    let stack = ephlocal::start(settings(data.path(), ports, git_port))
        .await
        .unwrap();
    assert!(
        stack.url.starts_with("http://preview.localhost:"),
        "{}",
        stack.url
    );

    // The sample repository's branches and Tiltfiles, discovered over git on loopback.
    let sample = ephlocal::sample_repo_url(git_port);
    let query = form(&[("repo", &sample)]);
    let path = format!("/form/branches?{query}");
    let branches = request(
        &stack,
        "GET",
        "preview.localhost",
        &path,
        &[],
        String::new(),
    )
    .await;
    assert_eq!(branches.status, 200, "{}", branches.body);
    assert!(
        branches.body.contains("feature&#x2F;login") && branches.body.contains("main"),
        "{}",
        branches.body
    );
    let query = form(&[("repo", &sample), ("branch", "feature/login")]);
    let path = format!("/form/paths?{query}");
    let paths = request(
        &stack,
        "GET",
        "preview.localhost",
        &path,
        &[],
        String::new(),
    )
    .await;
    for tiltfile in [
        "Tiltfile",
        "services/api/Tiltfile",
        "deploy/staging/Tiltfile",
    ] {
        // tera escapes `/` in attribute values.
        let escaped = tiltfile.replace('/', "&#x2F;");
        assert!(paths.body.contains(&escaped), "{tiltfile}: {}", paths.body);
    }

    let name = create_env(&stack, &sample, "feature/login", "deploy/staging/Tiltfile").await;
    let status = ready_status(&stack, &name).await;
    // Ports as ephctrl discovered them from the simulated Tilt: Tilt's own and the app's.
    let published: Vec<u16> = status.ports.iter().map(|p| p.port).collect();
    assert_eq!(published, {
        let mut expected = vec![ports.tilt, ports.web];
        expected.sort();
        expected
    });

    // The app's page through the gateway, and the dashboard's link to it (with the port).
    let app_host = format!("{}---{name}.preview.localhost", ports.web);
    let app = wait_for("the app through the gateway", || async {
        let app = request(&stack, "GET", &app_host, "/", &[], String::new()).await;
        (app.status == 200).then_some(app)
    })
    .await;
    assert!(app.body.contains(&sample), "{}", app.body);
    assert!(app.body.contains("deploy/staging/Tiltfile") && app.body.contains("feature/login"));
    let list = request(
        &stack,
        "GET",
        "preview.localhost",
        "/envs",
        &[],
        String::new(),
    )
    .await;
    let link = format!(
        "http:&#x2F;&#x2F;{app_host}:{}&#x2F;",
        stack.gateway_addr.port()
    );
    assert!(list.body.contains(&link), "{link} in {}", list.body);

    // Tilt's WebSocket through the gateway, with the browser's Origin.
    let tilt_host = format!(
        "{}---{name}.preview.localhost:{}",
        ports.tilt,
        stack.gateway_addr.port()
    );
    let mut ws = format!("ws://{}/ws/view", stack.gateway_addr)
        .into_client_request()
        .unwrap();
    ws.headers_mut().insert("host", tilt_host.parse().unwrap());
    ws.headers_mut()
        .insert("origin", format!("http://{tilt_host}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    socket.send(Message::text("hello tilt")).await.unwrap();
    let echo = socket.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap(), "hello tilt");
    drop(socket);

    // A second env, then a restart on the same data: both are still there and served.
    let second = create_env(
        &stack,
        "https://github.com/tilt-dev/tilt-example-html",
        "master",
        "0-base/Tiltfile",
    )
    .await;
    ready_status(&stack, &second).await;
    stack.stop().await;
    let stack = ephlocal::start(settings(data.path(), ports, git_port))
        .await
        .unwrap();
    for env in [&name, &second] {
        let host = format!("{}---{env}.preview.localhost", ports.web);
        wait_for(&format!("{env} served after the restart"), || async {
            let app = request(&stack, "GET", &host, "/", &[], String::new()).await;
            (app.status == 200).then_some(())
        })
        .await;
    }

    // Deleted from the dashboard: its host answers with the not-found page.
    let page = request(&stack, "GET", "preview.localhost", "/", &[], String::new()).await;
    let token = page
        .body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let origin = format!("http://preview.localhost:{}", stack.gateway_addr.port());
    let deleted = request(
        &stack,
        "POST",
        "preview.localhost",
        &format!("/envs/{name}/delete"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
        ],
        form(&[("csrf", &token)]),
    )
    .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    wait_for("the not-found page at the deleted env's host", || async {
        let app = request(&stack, "GET", &app_host, "/", &[], String::new()).await;
        (app.status == 404
            && app
                .body
                .contains("There might have been an environment here once"))
        .then_some(())
    })
    .await;

    // A team lead edits the config file the stack follows: a new repo is offered at once.
    let file = std::fs::read_to_string(&stack.config_file).unwrap();
    assert!(!file.contains("tilt-example-rust"));
    let edited = file.replace(
        "  repos:\n",
        "  repos:\n    - url: https://github.com/tilt-dev/tilt-example-rust\n      branches: [main]\n      paths: [Tiltfile]\n",
    );
    ephemerator_testkit::replace_file(&stack.config_file, edited).unwrap();
    wait_for("the new repo offered on the dashboard", || async {
        let page = request(&stack, "GET", "preview.localhost", "/", &[], String::new()).await;
        page.body.contains("tilt-example-rust").then_some(())
    })
    .await;
    stack.stop().await;
}
