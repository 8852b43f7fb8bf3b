//! Two dashboards and two gateways, each as its own ServiceAccount on the real API server,
//! restarted one pod at a time as a rolling update does it, under a steady stream of requests:
//! page loads and htmx polls of the dashboard, an env's page, and a WebSocket held open
//! through the gateway. No request fails; the WebSocket is closed only by a draining gateway,
//! and reconnects at once. And a CSRF token of one dashboard replica is accepted by the other,
//! and the gateways, as their account, record the env's use on its activity Lease.
//!
//! Each "pod" is the server in-process, stopped as its `main` stops it on SIGTERM
//! (`leave_then_stop`); the Services are `ephemerator_testkit::service`'s stand-in (no
//! kube-proxy here), which takes a terminating pod out of its endpoints a second after the
//! signal, as the endpoints controller and kube-proxy do a moment after Kubernetes sends it.

// Tests: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ephdash::csrf::CsrfKey;
use ephdash::identity::IdentitySource;
use ephemerator_core::{Config, EnvStatus, Phase, Port, env_config_map};
use ephemerator_testkit::service::Service;
use ephemerator_testkit::wait_for;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use realcluster::RealCluster;

const NAMESPACE: &str = "ephemerator";
const HOST: &str = "preview.localhost";
const USER: &str = "dev@example.com";
/// How long a stopping pod serves on (`--shutdown-delay`; 5 s in `deploy/`).
const SHUTDOWN_DELAY: Duration = Duration::from_secs(3);
/// How long after the signal the Service stops sending it new connections.
const ENDPOINT_LAG: Duration = Duration::from_secs(1);
/// How long requests in flight get after that (`--drain-timeout`).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

fn config() -> Config {
    Config::from_yaml_str(
        "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [tilt-example-html]\n",
        "test.yaml",
    )
    .unwrap()
}

/// One replica, in-process.
enum Pod {
    Dash(ephdash::startup::Running),
    Gateway(ephgateway::Running),
}

impl Pod {
    fn addr(&self) -> SocketAddr {
        match self {
            Pod::Dash(running) => running.addr,
            Pod::Gateway(running) => running.addr,
        }
    }

    fn admin(&self) -> SocketAddr {
        match self {
            Pod::Dash(running) => running.admin_addr,
            Pod::Gateway(running) => running.admin_addr,
        }
    }

    /// As on SIGTERM.
    async fn leave(self) {
        match self {
            Pod::Dash(running) => running.leave_then_stop(SHUTDOWN_DELAY).await,
            Pod::Gateway(running) => running.leave_then_stop(SHUTDOWN_DELAY).await,
        }
    }
}

struct Setup {
    _cluster: RealCluster,
    dash_client: kube::Client,
    gateway_client: kube::Client,
    csrf: CsrfKey,
    /// The dashboards' Service, which the gateways forward to.
    dashboards: Service,
}

impl Setup {
    async fn dash(&self) -> Pod {
        let mut settings = ephdash::testing::settings(
            self.dash_client.clone(),
            NAMESPACE,
            ephemerator_kit::LiveConfig::fixed(config()),
            IdentitySource::Fake(USER.into()),
            self.csrf.clone(),
        );
        settings.drain_timeout = DRAIN_TIMEOUT;
        let running =
            ephdash::startup::start(settings, ephemerator_kit::Listeners::local(true).unwrap())
                .expect("the dashboard starts");
        let pod = Pod::Dash(running);
        wait_ready(pod.admin()).await;
        pod
    }

    async fn gateway(&self) -> Pod {
        let running = ephgateway::start(
            ephgateway::Settings {
                drain_timeout: DRAIN_TIMEOUT,
                ..ephgateway::Settings::on_loopback(
                    self.gateway_client.clone(),
                    NAMESPACE,
                    ephemerator_kit::LiveConfig::fixed(config()),
                    self.dashboards.addr(),
                )
            },
            ephemerator_kit::Listeners::local(true).unwrap(),
        )
        .expect("the gateway starts");
        let pod = Pod::Gateway(running);
        wait_ready(pod.admin()).await;
        pod
    }
}

async fn wait_ready(admin: SocketAddr) {
    wait_for("the replica to be ready", || async {
        let (status, _) = get(admin, "x", "/readyz", &[]).await.ok()?;
        (status == 200).then_some(())
    })
    .await;
}

/// A plain GET on a new connection: (status, body).
async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    request(&client, addr, host, path, headers).await
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// A GET with `client` (its pool keeps connections alive, as a browser's does).
async fn request(
    client: &Client,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let mut builder = hyper::Request::get(format!("http://{addr}{path}")).header("host", host);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::new())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .map_err(|_| "no answer within 20 s".to_string())?
        .map_err(|error| format!("{error:?}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("reading the body: {error}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// What the steady stream saw.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
}

/// Requests `path` on `host` through the gateways' Service until `stop`, one after another on
/// one keep-alive client, each answer checked with `good`.
async fn stream_of(
    gateways: SocketAddr,
    host: String,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    good: fn(u16, &str) -> bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    while !stop.load(Ordering::Acquire) {
        match request(&client, gateways, &host, path, headers).await {
            Ok((status, body)) if good(status, &body) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, body)) => tally.failures.lock().unwrap().push(format!(
                "{host}{path}: {status} {}",
                body.chars().take(200).collect::<String>()
            )),
            Err(error) => tally
                .failures
                .lock()
                .unwrap()
                .push(format!("{host}{path}: {error}")),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A WebSocket to the env through the gateways' Service, echoing a message every 50 ms; when a
/// gateway closes it, it reconnects (as Tilt's UI does). Returns how many times it was closed,
/// and any failure that was not a close (an echo lost, a reconnect refused).
async fn held_socket(
    gateways: SocketAddr,
    host: String,
    stop: Arc<AtomicBool>,
) -> (usize, Vec<String>) {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (mut closes, mut failures) = (0, Vec::new());
    let connect = || async {
        let mut request = format!("ws://{gateways}/ws").into_client_request().unwrap();
        request.headers_mut().insert("host", host.parse().unwrap());
        let stream = tokio::net::TcpStream::connect(gateways)
            .await
            .map_err(|error| error.to_string())?;
        tokio_tungstenite::client_async(request, stream)
            .await
            .map(|(socket, _)| socket)
            .map_err(|error| error.to_string())
    };
    let mut socket = match connect().await {
        Ok(socket) => socket,
        Err(error) => return (0, vec![format!("the first WebSocket: {error}")]),
    };
    let mut sent = 0u64;
    while !stop.load(Ordering::Acquire) {
        sent += 1;
        let text = format!("ping {sent}");
        let echoed = async {
            socket.send(Message::text(text.clone())).await.ok()?;
            loop {
                match socket.next().await? {
                    Ok(Message::Text(echo)) => return Some(echo.to_string()),
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), echoed).await {
            Ok(Some(echo)) if echo == text => {}
            Ok(Some(echo)) => failures.push(format!("echo {echo:?} for {text:?}")),
            Ok(None) => {
                // Closed by a draining gateway: reconnect, on the first try.
                closes += 1;
                match connect().await {
                    Ok(again) => socket = again,
                    Err(error) => {
                        failures.push(format!("reconnecting: {error}"));
                        return (closes, failures);
                    }
                }
            }
            Err(_) => failures.push(format!("no echo for {text:?} within 5 s")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (closes, failures)
}

/// Replaces `old` with a new pod made by `start`, as a rolling update does: the new one ready
/// and in the Service first, then SIGTERM for the old one, which the Service takes out of its
/// endpoints a moment later.
async fn replace(service: &Service, old: Pod, new: Pod) -> Pod {
    service.add(new.addr());
    let (old_addr, old_admin) = (old.addr(), old.admin());
    let leaving = tokio::spawn(old.leave());
    // Not ready at once: what takes the pod out of its Service.
    wait_for("the old pod to say it is shutting down", || async {
        let (status, body) = get(old_admin, "x", "/readyz", &[]).await.ok()?;
        (status == 503 && body.contains("shutting down")).then_some(())
    })
    .await;
    tokio::time::sleep(ENDPOINT_LAG).await;
    service.remove(old_addr);
    tokio::time::timeout(
        SHUTDOWN_DELAY + DRAIN_TIMEOUT + Duration::from_secs(10),
        leaving,
    )
    .await
    .expect("the old pod stops within its grace period")
    .unwrap();
    new
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_two_dashboards_and_two_gateways_fails_no_request() {
    let cluster = RealCluster::start_with_overlay("dev").await.unwrap();
    let admin = cluster.client().await.unwrap();
    let dashboards = Service::start(&[]).await.unwrap();
    let setup = Setup {
        dash_client: cluster.client_as(NAMESPACE, "ephdash").await.unwrap(),
        gateway_client: cluster.client_as(NAMESPACE, "ephgateway").await.unwrap(),
        _cluster: cluster,
        csrf: CsrfKey::from_bytes(&[7u8; 32]).unwrap(),
        dashboards,
    };

    // An env whose app serves a page and a WebSocket, Ready as ephctrl would report it.
    let app_port = ephemerator_testkit::app::page_and_echo().await;
    let mut env = env_config_map(
        "sockets",
        USER,
        &ephemerator_core::EnvSpec {
            repo: "https://github.com/tilt-dev/tilt-example-html".into(),
            branch: "main".into(),
            path: "Tiltfile".into(),
        },
        None,
    );
    let status = EnvStatus {
        phase: Phase::Ready,
        message: None,
        ports: vec![Port {
            name: "web".into(),
            port: app_port,
        }],
        ready_at: Some(jiff::Timestamp::now()),
        ..EnvStatus::default()
    };
    env.metadata
        .labels
        .get_or_insert_with(Default::default)
        .extend(status.labels());
    env.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .extend(status.annotations());
    Api::<ConfigMap>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &env)
        .await
        .unwrap();
    let env_host = format!("{app_port}---sockets.{HOST}");

    let (dash_a, dash_b) = (setup.dash().await, setup.dash().await);
    setup.dashboards.add(dash_a.addr());
    setup.dashboards.add(dash_b.addr());

    // A CSRF token from one replica's page is accepted by the other: they share the key.
    let (status, page) = get(dash_a.addr(), HOST, "/", &[]).await.unwrap();
    assert_eq!(status, 200);
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's form carries a CSRF token")
        .to_string();
    let encoded = token
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let form = format!("level=team&csrf={encoded}");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let changed = client
        .request(
            hyper::Request::post(format!("http://{}/envs/sockets/access", dash_b.addr()))
                .header("host", HOST)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(changed.status(), 303, "replica b accepts replica a's token");
    let forged = client
        .request(
            hyper::Request::post(format!("http://{}/envs/sockets/access", dash_b.addr()))
                .header("host", HOST)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from("level=public&csrf=not-a-token")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "and refuses a token of no replica");

    let (gateway_a, gateway_b) = (setup.gateway().await, setup.gateway().await);
    let gateways = Service::start(&[gateway_a.addr(), gateway_b.addr()])
        .await
        .unwrap();
    wait_for("the env routed through the gateways", || async {
        let (status, _) = get(gateways.addr(), &env_host, "/", &[]).await.ok()?;
        (status == 200).then_some(())
    })
    .await;

    // The steady stream: page loads, htmx polls, the env's page; and the WebSocket.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut streams = Vec::new();
    let is_page = |status: u16, body: &str| status == 200 && body.contains("<html");
    let is_fragment = |status: u16, body: &str| status == 200 && !body.contains("<html");
    let is_app = |status: u16, body: &str| status == 200 && body == "the app";
    for _ in 0..2 {
        streams.push(tokio::spawn(stream_of(
            gateways.addr(),
            HOST.into(),
            "/",
            &[],
            is_page,
            stop.clone(),
            tally.clone(),
        )));
        streams.push(tokio::spawn(stream_of(
            gateways.addr(),
            HOST.into(),
            "/envs?show=all",
            &[("hx-request", "true")],
            is_fragment,
            stop.clone(),
            tally.clone(),
        )));
        // A browser's requests (fetch metadata): the gateways record the env's use, as their
        // account, on its activity Lease.
        streams.push(tokio::spawn(stream_of(
            gateways.addr(),
            env_host.clone(),
            "/",
            &[("sec-fetch-mode", "navigate")],
            is_app,
            stop.clone(),
            tally.clone(),
        )));
    }
    let socket = tokio::spawn(held_socket(gateways.addr(), env_host.clone(), stop.clone()));
    wait_for("the stream to flow", || async {
        (tally.ok.load(Ordering::Relaxed) > 20).then_some(())
    })
    .await;

    // The rollout: each dashboard, then each gateway, replaced in turn.
    let before = tally.ok.load(Ordering::Relaxed);
    let new_a = setup.dash().await;
    let dash_a2 = replace(&setup.dashboards, dash_a, new_a).await;
    let new_b = setup.dash().await;
    let dash_b2 = replace(&setup.dashboards, dash_b, new_b).await;
    let new_a = setup.gateway().await;
    let gateway_a2 = replace(&gateways, gateway_a, new_a).await;
    let new_b = setup.gateway().await;
    let gateway_b2 = replace(&gateways, gateway_b, new_b).await;
    // A little of the new pods alone.
    let after_rollout = tally.ok.load(Ordering::Relaxed);
    wait_for("requests to the new pods", || async {
        (tally.ok.load(Ordering::Relaxed) > after_rollout + 20).then_some(())
    })
    .await;
    stop.store(true, Ordering::Release);
    for stream in streams {
        stream.await.unwrap();
    }
    let (closes, socket_failures) = socket.await.unwrap();

    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {failures:#?}",
        failures.len()
    );
    let served = tally.ok.load(Ordering::Relaxed);
    assert!(
        served > before + 100,
        "the stream kept flowing: {served} answers"
    );
    assert!(socket_failures.is_empty(), "{socket_failures:?}");
    // The socket rode on one old gateway, maybe then the other: closed once or twice, never
    // by a dashboard's restart.
    assert!((1..=2).contains(&closes), "closed {closes} times");

    // The env's use was recorded by the gateways as their account, on a Lease the env owns:
    // the real garbage collector removes it with the env.
    let leases =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(admin.clone(), NAMESPACE);
    let name = ephemerator_core::activity::lease_name("sockets");
    let lease = leases.get(&name).await.expect("the activity Lease");
    assert_eq!(lease.metadata.owner_references.unwrap()[0].name, "sockets");
    Api::<ConfigMap>::namespaced(admin.clone(), NAMESPACE)
        .delete("sockets", &Default::default())
        .await
        .unwrap();
    wait_for("the activity Lease collected with its env", || async {
        leases.get_opt(&name).await.unwrap().is_none().then_some(())
    })
    .await;
    drop((dash_a2, dash_b2, gateway_a2, gateway_b2));
}
