//! Sleep and wake end to end, on devcluster and on the real API server (there every server as
//! its own ServiceAccount with `deploy/`'s RBAC): ephctrl, two gateways and the dashboard. An env sleeps after its idle
//! time although a WebSocket to it stays open (silent), a monitor probes it and the dashboard
//! polls; an XHR to the sleeping env gets a prompt 503 and wakes nothing; two gateways opened
//! by two visitors at once wake it once (one scale-up); and the page a visitor opened follows
//! the wake to the app with nobody reloading it (its own reloads are the meta refresh's).

// Tests: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ephdash::csrf::CsrfKey;
use ephdash::identity::IdentitySource;
use ephemerator_core::{Config, EnvStatus, Phase, env_config_map};
use ephemerator_testkit::wait_for;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use realcluster::RealCluster;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const NAMESPACE: &str = "ephemerator";
const HOST: &str = "preview.localhost";
const STATIC_REPO: &str = "https://github.com/example/static-site";

/// Envs sleep after 4 s; the repo publishes the test app's port (no Tilt to ask).
fn config(app_port: u16) -> Config {
    Config::from_yaml_str(
        &format!(
            "gatewayHost: {HOST}\nsleepAfter: 4s\nallowlist:\n  repos:\n    - url: {STATIC_REPO}\n      ports: [{{name: web, port: {app_port}}}]\n"
        ),
        "test.yaml",
    )
    .unwrap()
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn get(
    client: &Client,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let mut builder = hyper::Request::get(format!("http://{addr}{path}")).header("host", host);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client
        .request(builder.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        retry_after,
    )
}

async fn metric(client: &Client, admin: SocketAddr, name: &str) -> Option<f64> {
    let (_, body, _) = get(client, admin, "x", "/metrics", &[]).await;
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn phase(admin: &kube::Client, name: &str) -> Option<EnvStatus> {
    let cm = Api::<ConfigMap>::namespaced(admin.clone(), NAMESPACE)
        .get_opt(name)
        .await
        .unwrap()?;
    Some(EnvStatus::from_meta(&cm.metadata))
}

const NAVIGATION: [(&str, &str); 2] = [
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
];

/// The API server and a client for each account (all the same one on devcluster, which has
/// no RBAC), and what keeps the server running.
struct Accounts {
    admin: kube::Client,
    ctrl: kube::Client,
    dash: kube::Client,
    gateway: kube::Client,
    _server: Box<dyn std::any::Any + Send>,
}

async fn on_devcluster() -> Accounts {
    let cluster = devcluster::DevCluster::builder()
        .pod_ready_delay(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let client = cluster.client();
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}})).unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    Accounts {
        admin: client.clone(),
        ctrl: client.clone(),
        dash: client.clone(),
        gateway: client,
        _server: Box::new(cluster),
    }
}

async fn on_real_apiserver() -> Accounts {
    let cluster = RealCluster::start_with_overlay("dev").await.unwrap();
    Accounts {
        admin: cluster.client().await.unwrap(),
        ctrl: cluster.client_as(NAMESPACE, "ephctrl").await.unwrap(),
        dash: cluster.client_as(NAMESPACE, "ephdash").await.unwrap(),
        gateway: cluster.client_as(NAMESPACE, "ephgateway").await.unwrap(),
        _server: Box::new(cluster),
    }
}

ephemerator_testkit::on_devcluster_and_real_apiserver!(
    dev: crate::on_devcluster().await,
    real: crate::on_real_apiserver().await;
    an_idle_env_sleeps_despite_sockets_probes_and_polls_and_two_visits_wake_it_once,
);

async fn an_idle_env_sleeps_despite_sockets_probes_and_polls_and_two_visits_wake_it_once(
    accounts: Accounts,
) {
    let admin = accounts.admin.clone();
    let app_port = ephemerator_testkit::app::page_and_echo().await;
    let config = config(app_port);

    let _ctrl = ephctrl::testing::start(ephctrl::testing::settings(
        accounts.ctrl.clone(),
        NAMESPACE,
        config.clone(),
    ));
    let ctrl_admin = _ctrl.admin_addr;
    let dash = ephdash::startup::start(
        ephdash::testing::settings(
            accounts.dash.clone(),
            NAMESPACE,
            ephemerator_kit::LiveConfig::fixed(config.clone()),
            IdentitySource::Fake("dev@example.com".into()),
            CsrfKey::random().unwrap(),
        ),
        ephemerator_kit::Listeners::local(true).unwrap(),
    )
    .unwrap();
    let gateway_client = accounts.gateway.clone();
    let start_gateway = || {
        ephgateway::start(
            ephgateway::Settings::on_loopback(
                gateway_client.clone(),
                NAMESPACE,
                ephemerator_kit::LiveConfig::fixed(config.clone()),
                dash.addr,
            ),
            ephemerator_kit::Listeners::local(true).unwrap(),
        )
        .unwrap()
    };
    let gateways = [start_gateway(), start_gateway()];
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();

    let envs = Api::<ConfigMap>::namespaced(admin.clone(), NAMESPACE);
    let spec = ephemerator_core::EnvSpec {
        repo: STATIC_REPO.into(),
        branch: "main".into(),
        path: "Tiltfile".into(),
    };
    envs.create(
        &PostParams::default(),
        &env_config_map("nap", "nap", &spec, None),
    )
    .await
    .unwrap();
    let host = format!("{app_port}---nap.{HOST}");
    // Ready, and routed by both gateways.
    for gateway in &gateways {
        wait_for("nap routed", || async {
            let (status, body, _) = get(&http, gateway.addr, &host, "/", &[]).await;
            (status == 200 && body == "the app").then_some(())
        })
        .await;
    }

    // What must not keep it awake, all the while: a WebSocket held open and silent, a
    // monitor's probe, the dashboard's polling (through the gateway, as a browser's).
    let mut socket_request = format!("ws://{}/ws", gateways[0].addr)
        .into_client_request()
        .unwrap();
    let headers = socket_request.headers_mut();
    headers.insert("host", host.parse().unwrap());
    headers.insert("sec-fetch-mode", "websocket".parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(socket_request)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (stop, http, host) = (stop.clone(), http.clone(), host.clone());
        let (probe_at, poll_at) = (gateways[1].addr, gateways[0].addr);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                get(&http, probe_at, &host, "/healthz", &[]).await;
                get(
                    &http,
                    poll_at,
                    HOST,
                    "/envs",
                    &[
                        ("hx-request", "true"),
                        ("sec-fetch-mode", "cors"),
                        ("sec-fetch-dest", "empty"),
                    ],
                )
                .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let asleep = wait_for("nap asleep", || async {
        phase(&admin, "nap")
            .await
            .filter(|s| s.phase == Phase::Sleeping)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    background.await.unwrap();
    let deployments = Api::<Deployment>::namespaced(admin.clone(), NAMESPACE);
    let asleep_generation = wait_for("the runner scaled to zero", || async {
        let deployment = deployments.get("nap").await.ok()?;
        (deployment.spec.as_ref()?.replicas == Some(0)).then_some(deployment.metadata.generation?)
    })
    .await;
    drop(socket);

    // Both gateways know it sleeps: an XHR gets a prompt 503 and wakes nothing.
    for gateway in &gateways {
        wait_for("the gateway routes nap as asleep", || async {
            let (status, _, retry) = get(
                &http,
                gateway.addr,
                &host,
                "/api",
                &[("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")],
            )
            .await;
            (status == 503 && retry.as_deref() == Some("10")).then_some(())
        })
        .await;
        assert_eq!(
            metric(&http, gateway.admin_addr, "ephgateway_wakes_total").await,
            Some(0.0)
        );
    }
    assert_eq!(phase(&admin, "nap").await.unwrap().phase, Phase::Sleeping);

    // Two visitors open it at once, one through each gateway: each sees the waking page.
    let (first, second) = tokio::join!(
        get(&http, gateways[0].addr, &host, "/", &NAVIGATION),
        get(&http, gateways[1].addr, &host, "/", &NAVIGATION),
    );
    for (status, body, _) in [&first, &second] {
        assert_eq!(*status, 503);
        assert!(body.contains("Environment nap is waking up"), "{body}");
    }
    // The page reloads itself (its meta refresh) until the app answers.
    let reached = wait_for("the page reaches the app", || async {
        let (status, body, _) = get(&http, gateways[0].addr, &host, "/", &NAVIGATION).await;
        match (status, body.as_str()) {
            (200, "the app") => Some(Ok(())),
            // Until then, the waking page follows the wake.
            (503, page) if page.contains("is waking up") => None,
            _ => Some(Err(format!("{status}: {body}"))),
        }
    })
    .await;
    assert_eq!(
        reached,
        Ok(()),
        "the page between the waking page and the app"
    );
    // Kept awake from here, so what is counted below is this wake's alone on a slow machine.
    envs.patch(
        "nap",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({
            "metadata": {"annotations": {ephemerator_core::labels::KEEP_AWAKE_ANNOTATION: "true"}}
        })),
    )
    .await
    .unwrap();
    let woke = phase(&admin, "nap").await.unwrap();
    assert_eq!(woke.phase, Phase::Ready);
    assert!(woke.woke_at.unwrap() > asleep.asleep_since.unwrap());

    // One wake: the runner scaled up once, one wake measured, one Starting after Sleeping.
    let deployment = deployments.get("nap").await.unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(1));
    assert_eq!(
        deployment.metadata.generation,
        Some(asleep_generation + 1),
        "scaled up once"
    );
    wait_for("the wake measured", || async {
        (metric(&http, ctrl_admin, "ephctrl_wake_duration_seconds_count").await == Some(1.0))
            .then_some(())
    })
    .await;
    let woken_notes = ephemerator_testkit::event_notes(&admin, NAMESPACE, "nap", "Starting").await;
    assert_eq!(
        woken_notes
            .iter()
            .filter(|note| note.starts_with("woken by a visit"))
            .count(),
        1,
        "{woken_notes:?}"
    );
}
