//! ephctrl and the runner's Tilt, each test written once and run against the real Tilt
//! (`realprograms`: `tilt up` of a local-only Tiltfile) and against the stand-in, which keeps
//! the rules of Tilt 0.37.4+ (the token, the origin check) that no release served here has.
//! The contract tests at the end check that the stand-in answers what the real Tilt answers.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use ephctrl::desired::tilt_token_of;
use ephctrl::plan::TiltPolls;
use ephctrl::testing::tilt::{FakeResource, StandInTilt, TiltRules, origin_allowed, view};
use ephctrl::tilt::{TiltClient, TiltError};
use ephemerator_core::labels::PORTS_ANNOTATION;
use ephemerator_core::{EnvStatus, Phase, Port};
use ephemerator_testkit::written_once;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::ResourceExt;
use realprograms::tilt::RealTilt;

/// Which Tilt a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TiltKind {
    /// `testprograms/`'s Tilt 0.34.0.
    Real,
    /// The stand-in, with Tilt 0.37.4's token and origin rules.
    StandIn,
}

/// A resource of a test's Tiltfile: it serves plain HTTP on `port`, linked; a `held` one does
/// not start serving (Tilt shows it pending) until the test releases it.
#[derive(Debug, Clone)]
struct App {
    name: &'static str,
    port: u16,
    held: bool,
    disabled: bool,
}

impl App {
    fn new(name: &'static str) -> App {
        App {
            name,
            port: ephemerator_testkit::free_port(),
            held: false,
            disabled: false,
        }
    }

    fn held(mut self) -> App {
        self.held = true;
        self
    }
}

/// A Tilt of either kind, serving a Tiltfile of [`App`]s.
enum TestTilt {
    Real(Box<RealTilt>),
    StandIn(StandInTilt),
}

impl TestTilt {
    async fn start(kind: TiltKind, port: u16, token: &str, apps: &[App]) -> TestTilt {
        match kind {
            TiltKind::Real => TestTilt::Real(Box::new(
                RealTilt::start_on(port, &tiltfile(apps), token)
                    .await
                    .expect("tilt up starts"),
            )),
            TiltKind::StandIn => {
                let tilt = StandInTilt::start_on(
                    port,
                    TiltRules::TokenAndOrigin,
                    token,
                    stand_in_view(apps),
                )
                .await
                .expect("the stand-in starts");
                TestTilt::StandIn(tilt)
            }
        }
    }

    /// The Tiltfile now lists `apps` (the real Tilt loads it again; the stand-in serves it).
    fn set(&self, apps: &[App]) {
        match self {
            TestTilt::Real(tilt) => tilt
                .replace_tiltfile(&tiltfile(apps))
                .expect("the Tiltfile is replaced"),
            TestTilt::StandIn(tilt) => tilt.set_view(stand_in_view(apps)),
        }
    }

    /// Lets a held app start serving.
    fn release(&self, app: &App, apps: &[App]) {
        match self {
            TestTilt::Real(tilt) => std::fs::write(tilt.source_dir().join(app.name), "go")
                .expect("the release file is written"),
            TestTilt::StandIn(tilt) => {
                let released: Vec<App> = apps
                    .iter()
                    .map(|a| App {
                        held: a.held && a.name != app.name,
                        ..a.clone()
                    })
                    .collect();
                tilt.set_view(stand_in_view(&released));
            }
        }
    }

    /// Disables `app` in Tilt, as its user would with `tilt disable` or its page.
    async fn disable(&self, app: &App, apps: &[App]) {
        match self {
            TestTilt::Real(tilt) => {
                tilt.cli(&["disable", app.name])
                    .await
                    .expect("tilt disable runs");
            }
            TestTilt::StandIn(tilt) => {
                let changed: Vec<App> = apps
                    .iter()
                    .map(|a| App {
                        disabled: a.disabled || a.name == app.name,
                        held: a.held && a.name != app.name,
                        ..a.clone()
                    })
                    .collect();
                tilt.set_view(stand_in_view(&changed));
            }
        }
    }
}

/// A local-only Tiltfile: each app a `local_resource` serving on its port once it may (a held
/// one waits for a file named after it), probed until it answers.
fn tiltfile(apps: &[App]) -> String {
    apps.iter()
        .map(|app| {
            let serve = format!("python3 -m http.server {} --bind 127.0.0.1", app.port);
            let serve = if app.held {
                format!("while [ ! -e {} ]; do sleep 0.1; done; exec {serve}", app.name)
            } else {
                format!("exec {serve}")
            };
            format!(
                "local_resource('{name}', serve_cmd='{serve}', links=['http://localhost:{port}/'], \
                 readiness_probe=probe(period_secs=1, http_get=http_get_action(port={port}, host='127.0.0.1')))\n",
                name = app.name,
                port = app.port
            )
        })
        .collect()
}

fn stand_in_view(apps: &[App]) -> String {
    let resources: Vec<FakeResource> = apps
        .iter()
        .map(|app| {
            let link = format!("http://localhost:{}/", app.port);
            let resource =
                FakeResource::new(app.name, if app.held { "pending" } else { "ok" }, &[&link]);
            if app.disabled {
                resource.disabled()
            } else {
                resource
            }
        })
        .collect();
    view(&resources)
}

/// The controller with Tilt at `port` of every env's `<env>.localhost` (as a Service name in
/// the cluster's DNS names each env's runner), asking often so the test need not wait long.
fn ctrl_settings(cluster: &devcluster::DevCluster, tilt_port: u16) -> ephctrl::Settings {
    let mut settings = ephctrl::testing::settings(cluster.client(), NAMESPACE, config());
    settings.tilt_url_template = format!("http://{{env}}.localhost:{tilt_port}");
    settings.tilt_polls = TiltPolls {
        while_pending: Duration::from_millis(300),
        when_settled: Duration::from_secs(1),
    };
    settings
}

/// Waits until env `name`'s status and Service publish exactly Tilt's port and `ports`, and
/// returns the status.
async fn published(client: &kube::Client, name: &str, ports: &[u16]) -> EnvStatus {
    let mut wanted: Vec<u16> = ports.iter().copied().chain([10350]).collect();
    wanted.sort();
    wait_for(&format!("{name} to publish {wanted:?}"), || async {
        let cm: ConfigMap = get(client, name).await?;
        let status = EnvStatus::from_meta(&cm.metadata);
        let service: Service = get(client, name).await?;
        let mut on_status: Vec<u16> = status.ports.iter().map(|p| p.port).collect();
        on_status.sort();
        let mut on_service: Vec<u16> = service_ports(&service)
            .into_iter()
            .filter_map(|(_, port)| u16::try_from(port).ok())
            .collect();
        on_service.sort();
        (status.phase == Phase::Ready && on_status == wanted && on_service == wanted)
            .then_some(status)
    })
    .await
}

/// Starts the controller, creates env `name` and returns the Tilt token its runner was given
/// (the controller keeps asking Tilt at `tilt_port`, which nothing serves yet).
async fn env_with_runner(
    cluster: &devcluster::DevCluster,
    name: &str,
    tilt_port: u16,
) -> (Ctrl, String) {
    let ctrl = Ctrl::start(ctrl_settings(cluster, tilt_port));
    create_env(
        &cluster.client(),
        name,
        &spec(HTML_REPO, "master", "0-base"),
    )
    .await;
    let (deployment, _) = wait_for_children(&cluster.client(), name).await;
    let token = tilt_token_of(&deployment).expect("the runner is given a Tilt token");
    (ctrl, token)
}

written_once!(
    [on_real_tilt: crate::TiltKind::Real, on_stand_in: crate::TiltKind::StandIn];
    ephctrl_publishes_the_ports_of_tilts_resources_as_they_start_change_and_stop,
);

async fn ephctrl_publishes_the_ports_of_tilts_resources_as_they_start_change_and_stop(
    kind: TiltKind,
) {
    let cluster = cluster().await;
    let client = cluster.client();
    let tilt_port = ephemerator_testkit::free_port();
    let (_ctrl, token) = env_with_runner(&cluster, "gina", tilt_port).await;

    // The runner is up before its Tilt answers: Ready, with Tilt's port only, saying why.
    let status = published(&client, "gina", &[]).await;
    let message = status.message.unwrap_or_default();
    assert!(
        message
            == "runner ready; the app's ports are not known yet: Tilt does not answer yet (no connection)",
        "{message}"
    );

    // Tilt starts with the runner's token: `web` serves, `api` is still starting.
    let web = App::new("web");
    let api = App::new("api").held();
    let mut apps = vec![web.clone(), api.clone()];
    let tilt = TestTilt::start(kind, tilt_port, &token, &apps).await;
    let status = published(&client, "gina", &[web.port]).await;
    assert!(
        status.ports.contains(&Port {
            name: "web".into(),
            port: web.port
        }),
        "{status:?}"
    );
    wait_for("the message to say api is starting", || async {
        let message = common::status(&client, "gina").await?.message?;
        (message == "runner ready; starting in Tilt: api").then_some(())
    })
    .await;

    // `api` runs: its port is published, and the message is plain again.
    tilt.release(&api, &apps);
    apps[1].held = false;
    let status = published(&client, "gina", &[web.port, api.port]).await;
    wait_for("the message to be plain", || async {
        let message = common::status(&client, "gina").await?.message;
        (message.as_deref() == Some("runner ready")).then_some(())
    })
    .await;
    assert!(status.ready_at.is_some());

    // The Tiltfile changes: a new resource with a link (Tilt loads it again).
    let docs = App::new("docs");
    apps.push(docs.clone());
    tilt.set(&apps);
    published(&client, "gina", &[web.port, api.port, docs.port]).await;

    // `web` is disabled in Tilt: its port goes.
    tilt.disable(&web, &apps).await;
    let status = published(&client, "gina", &[api.port, docs.port]).await;
    let cm: ConfigMap = get(&client, "gina").await.unwrap();
    assert!(
        !cm.annotations()[PORTS_ANNOTATION].contains(&web.port.to_string()),
        "{status:?}"
    );

    if let TestTilt::StandIn(tilt) = &tilt {
        assert_eq!(
            tilt.refused(),
            0,
            "every request carried the runner's token"
        );
    }
}

/// Tilt 0.37.4+ refuses a request without the runner's token: the env says so, keeps Tilt's
/// port, and finds the ports once the token matches (the stand-in only: no release with the
/// token rule is served here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tilt_that_refuses_the_token_is_named_in_the_status() {
    let cluster = cluster().await;
    let client = cluster.client();
    let tilt_port = ephemerator_testkit::free_port();
    let (_ctrl, token) = env_with_runner(&cluster, "hank", tilt_port).await;
    let web = App::new("web");
    let wrong = StandInTilt::start_on(
        tilt_port,
        TiltRules::TokenAndOrigin,
        "another-runners-token",
        stand_in_view(std::slice::from_ref(&web)),
    )
    .await
    .unwrap();
    let message = wait_for("the refusal in the status", || async {
        let message = status(&client, "hank").await?.message?;
        message.contains("refused").then_some(message)
    })
    .await;
    assert_eq!(
        message,
        "runner ready; the app's ports are not known yet: Tilt refused ephctrl (HTTP 403: \
         invalid session token)"
    );
    published(&client, "hank", &[]).await;
    assert!(wrong.refused() >= 1);
    wrong.stop().await;

    let right = StandInTilt::start_on(
        tilt_port,
        TiltRules::TokenAndOrigin,
        &token,
        stand_in_view(std::slice::from_ref(&web)),
    )
    .await
    .unwrap();
    published(&client, "hank", &[web.port]).await;
    assert_eq!(right.refused(), 0);
}

// The contract: what ephctrl and the gateway rely on, asked of the real Tilt and of the
// stand-in (with the rules of the releases before 0.37.4, which the real one follows).

written_once!(
    [on_real_tilt: crate::TiltKind::Real, on_stand_in: crate::TiltKind::StandIn];
    the_view_lists_the_resources_and_the_proxy_route_refuses_them,
);

async fn the_view_lists_the_resources_and_the_proxy_route_refuses_them(kind: TiltKind) {
    let web = App::new("web");
    let token = "contract-token";
    let port = ephemerator_testkit::free_port();
    let tilt = match kind {
        TiltKind::Real => TestTilt::start(kind, port, token, std::slice::from_ref(&web)).await,
        TiltKind::StandIn => TestTilt::StandIn(
            StandInTilt::start_on(
                port,
                TiltRules::Open,
                token,
                stand_in_view(std::slice::from_ref(&web)),
            )
            .await
            .unwrap(),
        ),
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = TiltClient::new();
    let state = wait_for("web to run", || async {
        client
            .ask(&base, token)
            .await
            .ok()
            .filter(|state| !state.pending())
    })
    .await;
    assert_eq!(
        state.ports,
        vec![Port {
            name: "web".into(),
            port: web.port
        }]
    );
    // Before 0.37.4 any token (or none) is taken.
    assert!(client.ask(&base, "not-the-token").await.is_ok());

    // The route upstream's notes named answers 403 to anything but UIButtons.
    let (status, body) = raw_get(port, "/proxy/apis/tilt.dev/v1alpha1/uiresources", &[]).await;
    assert_eq!((status, body.trim()), (403, "Forbidden"));
    drop(tilt);
}

/// Tilt's WebSocket origin rule, as the stand-ins' [`origin_allowed`] has it, asked of the real
/// Tilt's `/ws/view` (the stand-ins of the local run and the gateway's tests use that function).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_tilts_websocket_origin_rule_is_the_stand_ins() {
    let port = ephemerator_testkit::free_port();
    let _tilt = RealTilt::start_on(port, &tiltfile(&[App::new("web")]), "t")
        .await
        .expect("tilt up starts");
    let host = format!("127.0.0.1:{port}");
    let origins = [
        None,
        Some(format!("http://{host}")),
        Some(format!("http://{host}/")),
        Some(format!("HTTP://{host}")),
        Some(format!("https://{host}")),
        Some(format!("http://user@{host}")),
        Some("http://127.0.0.1".to_string()),
        Some(format!("http://localhost:{port}")),
        Some("http://evil.example".to_string()),
        Some("null".to_string()),
        Some(String::new()),
    ];
    for origin in origins {
        // `close`: a refusal ends the connection, an upgrade keeps it.
        let mut headers = vec![
            ("connection", "Upgrade, close".to_string()),
            ("upgrade", "websocket".to_string()),
            ("sec-websocket-version", "13".to_string()),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".to_string()),
        ];
        if let Some(origin) = &origin {
            headers.push(("origin", origin.clone()));
        }
        let (status, _) = raw_get(port, "/ws/view", &headers).await;
        let expected = if origin_allowed(origin.as_deref(), &host) {
            101
        } else {
            403
        };
        assert_eq!(status, expected, "Origin {origin:?}");
    }
}

/// The status and body of `GET path` on 127.0.0.1:`port`, read until the head (and, unless
/// the connection was upgraded, the body) has arrived.
async fn raw_get(port: u16, path: &str, headers: &[(&str, String)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("Tilt listens");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if headers.is_empty() {
        request.push_str("Connection: close\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            // An upgrade answers with its head alone and keeps the connection.
            if text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("Tilt answers");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

#[tokio::test]
async fn a_refusal_is_an_error_that_says_why() {
    let tilt = StandInTilt::start(TiltRules::TokenAndOrigin, "right", view(&[]))
        .await
        .unwrap();
    let err = TiltClient::new()
        .ask(&tilt.base_url(), "")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TiltError::Refused { reason, .. } if reason == "missing session token"),
        "{err}"
    );
}
