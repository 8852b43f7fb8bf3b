//! The gateway on free ports with a devcluster behind it, stand-ins for what it talks to (an
//! env's HTTP, server-sent-event and WebSocket servers, and oauth2-proxy following its
//! documented `/oauth2/auth` contract), and a small HTTP client that can send any Host.
// Each test file uses a part of this module.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devcluster::DevCluster;
use ephctrl::testing::tilt::origin_allowed;
use ephemerator_core::{EnvSpec, EnvStatus, Phase, Port, env_config_map};
use ephemerator_kit::cluster::ApiHealth;
use ephgateway::auth::AuthMode;
use ephgateway::upstream::UpstreamTemplate;
use ephgateway::{Limits, Running, Settings};
use futures::SinkExt;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

pub use ephemerator_testkit::DEADLINE;
pub const GATEWAY_HOST: &str = "preview.localhost";
pub const NAMESPACE: &str = "default";
pub const COOKIE: &str = "_oauth2_proxy";

pub use ephemerator_testkit::wait_for;

pub async fn devcluster() -> DevCluster {
    DevCluster::builder()
        .start()
        .await
        .expect("devcluster starts")
}

/// Writes env `name` as ephctrl would leave it: the spec, and the status in `phase` with
/// `ports` published and `message`.
pub async fn put_env(
    client: &kube::Client,
    name: &str,
    phase: Phase,
    ports: &[u16],
    message: &str,
) {
    let status = EnvStatus {
        phase,
        message: (!message.is_empty()).then(|| message.to_string()),
        ports: ports
            .iter()
            .map(|&port| Port {
                name: format!("port-{port}"),
                port,
            })
            .collect(),
        ..EnvStatus::default()
    };
    put_env_status(client, name, &status, &[]).await;
}

/// Creates (or re-applies) env `name` (owned by `name`) with `status` and `annotations`.
pub async fn put_env_status(
    client: &kube::Client,
    name: &str,
    status: &EnvStatus,
    annotations: &[(&str, &str)],
) {
    let api = Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE);
    let mut cm = env_config_map(
        name,
        name,
        &EnvSpec {
            repo: "https://github.com/tilt-dev/tilt-example-html".into(),
            branch: "main".into(),
            path: "Tiltfile".into(),
        },
        None,
    );
    status.write_to(&mut cm.metadata);
    let extra = cm.metadata.annotations.get_or_insert_default();
    for (key, value) in annotations {
        extra.insert(key.to_string(), value.to_string());
    }
    match api.get_opt(name).await.unwrap() {
        None => {
            api.create(&PostParams::default(), &cm).await.unwrap();
        }
        Some(_) => {
            cm.metadata.managed_fields = None;
            api.patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&cm),
            )
            .await
            .unwrap();
        }
    }
}

pub async fn delete_env(client: &kube::Client, name: &str) {
    Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

/// How the test gateway authenticates.
pub enum Auth {
    None,
    Proxy(SocketAddr),
}

pub fn settings(client: kube::Client, auth: Auth, dashboard: SocketAddr) -> Settings {
    Settings {
        client,
        api_health: ApiHealth::default(),
        namespace: NAMESPACE.into(),
        config: ephemerator_kit::LiveConfig::fixed(
            ephemerator_core::Config::from_yaml_str(
                &format!("gatewayHost: {GATEWAY_HOST}\n"),
                "test.yaml",
            )
            .unwrap(),
        ),
        dashboard: dashboard.to_string().parse().unwrap(),
        // Every env port is a stand-in on loopback, published under its real port number.
        env_upstream: UpstreamTemplate::parse("127.0.0.1:{port}").unwrap(),
        auth: match auth {
            Auth::None => AuthMode::None,
            Auth::Proxy(addr) => AuthMode::OAuth2Proxy {
                url: format!("http://{addr}").parse().unwrap(),
                cookie_name: COOKIE.into(),
                cache_ttl: Duration::from_secs(5),
            },
        },
        identity_from: Default::default(),
        signing_keys: Some(test_keys()),
        tls: None,
        public_https: None,
        limits: Limits {
            upstream_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
        workers: 2,
        drain_timeout: Duration::from_secs(20),
    }
}

/// The signing key every test gateway (and the share links the tests make) uses: the test
/// dashboards', so that the links they make open here.
pub const TEST_KEY: &[u8] = ephdash::testing::TEST_SIGNING_KEY;

pub fn test_keys() -> ephemerator_kit::signing::LiveKeys {
    ephemerator_kit::signing::LiveKeys::fixed(
        ephemerator_kit::signing::SigningKeys::new(TEST_KEY, None).unwrap(),
    )
}

pub struct Gateway {
    pub running: Running,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Gateway {
    pub async fn start(settings: Settings) -> Gateway {
        let listeners = ephemerator_kit::Listeners::local(true).unwrap();
        let running = ephgateway::start(settings, listeners).expect("the gateway starts");
        let gateway = Gateway {
            running,
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        wait_for("the gateway to be ready", || async {
            (gateway.admin("/readyz").await.status == 200).then_some(())
        })
        .await;
        gateway
    }

    pub fn port(&self) -> u16 {
        self.running.addr.port()
    }

    /// `GET path` on `host` through the gateway, with extra headers.
    pub async fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.request("GET", host, path, headers, "").await
    }

    pub async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.running.addr))
            .header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = self
            .http
            .request(request)
            .await
            .expect("the gateway answers");
        Answer::read(response).await
    }

    pub async fn admin(&self, path: &str) -> Answer {
        let request = Request::get(format!("http://{}{path}", self.running.admin_addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        match self.http.request(request).await {
            Ok(response) => Answer::read(response).await,
            Err(error) => Answer {
                status: 0,
                headers: BTreeMap::new(),
                set_cookies: Vec::new(),
                body: error.to_string(),
            },
        }
    }
}

/// The host of `port` of env `env`.
pub fn env_host(port: u16, env: &str) -> String {
    format!("{port}---{env}.{GATEWAY_HOST}")
}

/// An answer: status, headers (lower-case names, the last of repeated ones), every
/// `Set-Cookie`, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Answer {
    pub async fn read(response: Response<Incoming>) -> Answer {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            set_cookies,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Serves `handler` on a free loopback port, HTTP/1.1 with upgrades.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ephgateway::Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

pub fn body(text: impl Into<String>) -> ephgateway::Body {
    Full::new(Bytes::from(text.into()))
        .map_err(|never| match never {})
        .boxed()
}

/// An env's web server: `/echo` answers with the request line and headers it got; `/cookies`
/// sets several cookies, one of them for the parent domain; `/hold` answers only once
/// `release` is notified; anything else is "hello from the env".
pub struct EnvServer {
    pub addr: SocketAddr,
    pub release: Arc<Notify>,
    pub requests: Arc<AtomicUsize>,
}

pub async fn env_server() -> EnvServer {
    let release = Arc::new(Notify::new());
    let requests = Arc::new(AtomicUsize::new(0));
    let (held, count) = (release.clone(), requests.clone());
    let addr = serve(move |request: Request<Incoming>| {
        let (held, count) = (held.clone(), count.clone());
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            match request.uri().path() {
                "/echo" => {
                    let mut text = format!("{} {}\n", request.method(), request.uri());
                    for (name, value) in request.headers() {
                        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
                    }
                    let uploaded = request.into_body().collect().await.unwrap().to_bytes();
                    text.push_str(&format!("body: {}\n", String::from_utf8_lossy(&uploaded)));
                    Response::new(body(text))
                }
                "/cookies" => Response::builder()
                    .header("set-cookie", "first=1; Path=/")
                    .header("set-cookie", "second=2; Path=/; HttpOnly")
                    .header(
                        "set-cookie",
                        format!("{COOKIE}=stolen; Domain={GATEWAY_HOST}; Path=/"),
                    )
                    .header("set-cookie", "tracker=x; Domain=.preview.localhost")
                    .body(body("cookies set"))
                    .unwrap(),
                "/gateway-cookies" => Response::builder()
                    .header("set-cookie", "ephemerator_env=forged; Path=/")
                    .header(
                        "set-cookie",
                        "__Host-ephemerator_env=forged; Path=/; Secure",
                    )
                    .header("set-cookie", "ephemerator_links=forged; Path=/")
                    .header("set-cookie", "app=kept; Path=/")
                    .body(body("gateway cookies set"))
                    .unwrap(),
                "/hold" => {
                    held.notified().await;
                    Response::new(body("released"))
                }
                _ => Response::new(body("hello from the env")),
            }
        }
    })
    .await;
    EnvServer {
        addr,
        release,
        requests,
    }
}

/// A server-sent-event stream whose events the test sends one at a time.
pub async fn sse_server() -> (SocketAddr, mpsc::UnboundedSender<String>) {
    let (events_in, events_out) = mpsc::unbounded_channel::<String>();
    let events_out = Arc::new(Mutex::new(Some(events_out)));
    let addr = serve(move |_request| {
        let events_out = events_out.clone();
        async move {
            let Some(mut events) = events_out.lock().unwrap().take() else {
                return Response::builder()
                    .status(StatusCode::GONE)
                    .body(body("one stream only"))
                    .unwrap();
            };
            let (frames_in, frames_out) = mpsc::channel(1);
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    let frame = Frame::data(Bytes::from(format!("data: {event}\n\n")));
                    if frames_in.send(Ok(frame)).await.is_err() {
                        break;
                    }
                }
            });
            let stream = FrameStream(frames_out);
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
    })
    .await;
    (addr, events_in)
}

type FrameResult = Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>;

/// The receiving end of a channel of body frames, as a stream.
struct FrameStream(mpsc::Receiver<FrameResult>);

impl futures::Stream for FrameStream {
    type Item = FrameResult;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<FrameResult>> {
        self.0.poll_recv(cx)
    }
}

/// A WebSocket echo server that enforces Tilt's origin rule (the stand-in's
/// [`origin_allowed`], checked against the real Tilt in ephctrl's tests), else 403.
pub async fn websocket_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)]
                let check =
                    |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                     response| {
                        let host = request.headers().get("host").and_then(|v| v.to_str().ok());
                        let origin = request
                            .headers()
                            .get("origin")
                            .and_then(|v| v.to_str().ok());
                        if host.is_some_and(|host| origin_allowed(origin, host)) {
                            Ok(response)
                        } else {
                            let mut refusal =
                            tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(
                                Some("origin not allowed".into()),
                            );
                            *refusal.status_mut() = StatusCode::FORBIDDEN;
                            Err(refusal)
                        }
                    };
                let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, check).await
                else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    } else if message.is_close() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A stand-in of oauth2-proxy (v7.15.6, set up as `deploy/` sets it up with the GitHub
/// provider), for what the real one cannot do in a test: many users at once with no sign-in,
/// refreshed sessions (`--cookie-refresh`), a 403 (only `allowed_groups` query parameters get
/// one), and counting what it is asked. It answers what the real one answered (the contract
/// tests in `tests/oauth2_proxy.rs` ask both the same):
/// - `/oauth2/auth` with `_oauth2_proxy=valid-USER`: 202 with `X-Auth-Request-User: USER` (a
///   login, as with GitHub), `-Email` and `Gap-Auth` (the e-mail); no access token (that needs
///   `--pass-access-token`);
/// - `token-USER`: the same with `X-Auth-Request-Access-Token`, as with `--pass-access-token`;
/// - `refresh-USER`: the same, with a new session cookie set (`Expires`, the cookie domain);
/// - `banned`: 403;
/// - no cookie: 401 `Unauthorized`; any other cookie: 401 with a `Set-Cookie` that clears it
///   (`Max-Age=0`, the cookie domain `deploy/` sets);
/// - `/oauth2/sign_in`: a redirect to the provider (`--skip-provider-button`).
pub struct OAuth2Proxy {
    pub addr: SocketAddr,
    pub auth_requests: Arc<AtomicUsize>,
    pub cookies_seen: Arc<Mutex<Vec<String>>>,
}

/// Where the stand-in's sign-in sends people: the provider's authorize endpoint.
pub const PROVIDER_AUTHORIZE: &str = "https://github.com/login/oauth/authorize";

pub async fn oauth2_proxy() -> OAuth2Proxy {
    let auth_requests = Arc::new(AtomicUsize::new(0));
    let cookies_seen = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (auth_requests.clone(), cookies_seen.clone());
    let addr = serve(move |request: Request<Incoming>| {
        let (count, seen) = (count.clone(), seen.clone());
        async move {
            let cookies = request
                .headers()
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let plain = |status: StatusCode, text: &str| {
                Response::builder()
                    .status(status)
                    .header("content-type", "text/plain; charset=utf-8")
                    .header("x-content-type-options", "nosniff")
                    .body(body(format!("{text}\n")))
                    .unwrap()
            };
            match request.uri().path() {
                "/oauth2/auth" => {
                    count.fetch_add(1, Ordering::SeqCst);
                    seen.lock().unwrap().push(cookies.clone());
                    let session = cookies
                        .split(';')
                        .map(str::trim)
                        .find_map(|pair| pair.strip_prefix(&format!("{COOKIE}=")));
                    let accepted = |user: &str| {
                        Response::builder()
                            .status(StatusCode::ACCEPTED)
                            .header("gap-auth", format!("{user}@example.com"))
                            .header("x-auth-request-user", user)
                            .header("x-auth-request-email", format!("{user}@example.com"))
                    };
                    match session {
                        Some(session) if session.starts_with("valid-") => {
                            accepted(&session["valid-".len()..]).body(body("")).unwrap()
                        }
                        Some(session) if session.starts_with("token-") => {
                            accepted(&session["token-".len()..])
                                .header("x-auth-request-access-token", "oauth-token-secret")
                                .body(body(""))
                                .unwrap()
                        }
                        Some(session) if session.starts_with("refresh-") => {
                            let user = &session["refresh-".len()..];
                            accepted(user)
                                .header(
                                    "set-cookie",
                                    format!(
                                        "{COOKIE}=valid-{user}; Path=/; \
                                         Expires=Wed, 09 Dec 2026 03:19:55 GMT; HttpOnly; SameSite=Lax"
                                    ),
                                )
                                .body(body(""))
                                .unwrap()
                        }
                        Some("banned") => plain(StatusCode::FORBIDDEN, "Forbidden"),
                        Some(_) => {
                            let mut refused = plain(StatusCode::UNAUTHORIZED, "Unauthorized");
                            refused.headers_mut().insert(
                                "set-cookie",
                                format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
                                    .parse()
                                    .unwrap(),
                            );
                            refused
                        }
                        None => plain(StatusCode::UNAUTHORIZED, "Unauthorized"),
                    }
                }
                "/oauth2/sign_in" => Response::builder()
                    .status(StatusCode::FOUND)
                    .header(
                        "location",
                        format!(
                            "{PROVIDER_AUTHORIZE}?client_id=stand-in&state={}",
                            request.uri().query().unwrap_or("")
                        ),
                    )
                    .body(body("Found"))
                    .unwrap(),
                other => plain(StatusCode::NOT_FOUND, &format!("oauth2-proxy: no {other}")),
            }
        }
    })
    .await;
    OAuth2Proxy {
        addr,
        auth_requests,
        cookies_seen,
    }
}

/// A loopback port nothing listens on.
pub async fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// The session cookie header of `user`.
pub fn session(user: &str) -> String {
    format!("{COOKIE}=valid-{user}")
}

/// The cookies of `user` signed in (the stand-in's session) and holding env `env`'s own
/// cookie for `port`, as the sign-in for env hosts hands it out (that flow is tested end to end
/// in `env_access.rs`). Waits for the gateway to know the env (its UID is in the cookie).
pub async fn env_session(gateway: &Gateway, env: &str, port: u16, user: &str) -> String {
    use ephgateway::env_access::{EnvPass, Who, purpose};
    let table = gateway.running.table.clone();
    let uid = wait_for(&format!("the gateway to know {env}"), || {
        let entry = table.get(env);
        async move { entry.map(|entry| entry.uid.clone()) }
    })
    .await;
    let now = ephemerator_kit::signing::unix_now();
    let pass = ephemerator_kit::signing::SigningKeys::new(TEST_KEY, None)
        .unwrap()
        .seal(
            purpose::PASS,
            now + 3600,
            &EnvPass {
                uid,
                port,
                who: Who::Person {
                    identity: user.to_string(),
                    headers: vec![
                        ("x-auth-request-user".into(), user.to_string()),
                        ("x-auth-request-email".into(), format!("{user}@example.com")),
                    ],
                },
                issued: now,
            },
        );
    format!("{}; ephemerator_env={pass}", session(user))
}

/// The real dashboard on free ports over `cluster`, with config `config_yaml`, reading identity
/// from the `X-Auth-Request-*` headers as behind the gateway.
pub fn dashboard(cluster: &DevCluster, config_yaml: &str) -> ephdash::startup::Running {
    ephdash::startup::start(
        ephdash::testing::settings(
            cluster.client(),
            NAMESPACE,
            ephemerator_kit::LiveConfig::fixed(
                ephemerator_core::Config::from_yaml_str(config_yaml, "test.yaml").unwrap(),
            ),
            ephdash::identity::IdentitySource::AuthRequest,
            ephdash::csrf::CsrfKey::random().unwrap(),
        ),
        ephemerator_kit::Listeners::local(true).unwrap(),
    )
    .expect("the dashboard starts")
}

/// A gateway with oauth2-proxy in front of a dashboard stand-in, and its cluster.
pub struct ProxiedGateway {
    pub cluster: DevCluster,
    pub oauth2: OAuth2Proxy,
    pub dashboard: EnvServer,
    pub gateway: Gateway,
}

pub async fn proxied_gateway() -> ProxiedGateway {
    let cluster = devcluster().await;
    let oauth2 = oauth2_proxy().await;
    let dashboard = env_server().await;
    let gateway = Gateway::start(settings(
        cluster.client(),
        Auth::Proxy(oauth2.addr),
        dashboard.addr,
    ))
    .await;
    ProxiedGateway {
        cluster,
        oauth2,
        dashboard,
        gateway,
    }
}

/// Env `name` Ready with `port` published, routed by the gateway; its owner's env cookie.
pub async fn routed(setup: &ProxiedGateway, name: &str, port: u16) -> String {
    put_env(&setup.cluster.client(), name, Phase::Ready, &[port], "").await;
    wait_for(&format!("{name} routed"), || async {
        setup
            .gateway
            .running
            .table
            .get(name)
            .filter(|entry| entry.status.exposes(port))
            .map(|_| ())
    })
    .await;
    env_session(&setup.gateway, name, port, name).await
}
