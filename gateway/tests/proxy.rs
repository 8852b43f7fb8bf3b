//! ephgateway end to end, against a devcluster, stand-in env servers and an oauth2-proxy
//! stand-in: routing and its refusals, every status page, authentication, cookies, streaming
//! and WebSockets.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ephemerator_core::Phase;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Setup = ProxiedGateway;

async fn setup() -> Setup {
    proxied_gateway().await
}

/// Puts env `name` and waits until the gateway routes `port` of it (or shows `expect`).
async fn env_routed(
    setup: &Setup,
    name: &str,
    phase: Phase,
    ports: &[u16],
    message: &str,
    probe: u16,
    expect: &str,
) {
    put_env(&setup.cluster.client(), name, phase, ports, message).await;
    let cookie = env_session(&setup.gateway, name, probe, "alice").await;
    wait_for(&format!("{name} to show {expect:?}"), || async {
        let answer = setup
            .gateway
            .get(&env_host(probe, name), "/", &[("cookie", &cookie)])
            .await;
        answer.body.contains(expect).then_some(())
    })
    .await;
}

/// An env server published as env `name`, Ready, and routed: (the server, its port).
async fn ready_env(setup: &Setup, name: &str) -> (EnvServer, u16) {
    let env = env_server().await;
    let port = env.addr.port();
    env_routed(
        setup,
        name,
        Phase::Ready,
        &[port],
        "",
        port,
        "hello from the env",
    )
    .await;
    (env, port)
}

#[tokio::test]
async fn a_published_port_of_a_ready_env_is_proxied_with_the_users_identity_only() {
    let setup = setup().await;
    let (_env, port) = ready_env(&setup, "alice").await;

    let cookie = format!(
        "{}; theme=dark",
        env_session(&setup.gateway, "alice", port, "alice").await
    );
    let host = env_host(port, "alice");
    let echo = setup
        .gateway
        .request(
            "POST",
            &host,
            "/echo?q=1",
            &[
                ("cookie", &cookie),
                ("x-forwarded-user", "mallory"),
                ("x-auth-request-user", "mallory"),
                ("x-auth-request-email", "mallory@evil.com"),
                ("x-forwarded-access-token", "forged"),
                ("x-forwarded-for", "10.9.9.9"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "secret"),
            ],
            "the upload",
        )
        .await;
    assert_eq!(echo.status, 200, "{}", echo.body);
    let seen = echo.body.to_lowercase();
    assert!(seen.starts_with("post /echo?q=1\n"), "{seen}");
    // The original Host reaches the env (Tilt's origin check needs it), with X-Forwarded-*.
    assert!(seen.contains(&format!("\nhost: {host}\n")), "{seen}");
    assert!(
        seen.contains(&format!("\nx-forwarded-host: {host}\n")),
        "{seen}"
    );
    assert!(seen.contains("\nx-forwarded-proto: http\n"), "{seen}");
    assert!(
        seen.contains("\nx-forwarded-for: 10.9.9.9, 127.0.0.1\n"),
        "{seen}"
    );
    // Identity comes from oauth2-proxy only; the OAuth token never reaches an env.
    assert!(seen.contains("\nx-auth-request-user: alice\n"), "{seen}");
    assert!(
        seen.contains("\nx-auth-request-email: alice@example.com\n"),
        "{seen}"
    );
    assert!(
        !seen.contains("mallory") && !seen.contains("forged"),
        "{seen}"
    );
    // The session and env cookies are kept from the env; its own cookies pass.
    assert!(seen.contains("\ncookie: theme=dark\n"), "{seen}");
    assert!(
        !seen.contains(COOKIE) && !seen.contains("ephemerator_env"),
        "{seen}"
    );
    // Hop-by-hop headers stop at the gateway; the body streams through.
    assert!(!seen.contains("x-hop"), "{seen}");
    assert!(seen.contains("body: the upload\n"), "{seen}");

    // A session whose check answers with the user's OAuth token too (--pass-access-token):
    // the token reaches nobody, the dashboard included (so no env cookie can carry it).
    let dash = setup
        .gateway
        .get(
            GATEWAY_HOST,
            "/echo",
            &[("cookie", &format!("{COOKIE}=token-alice"))],
        )
        .await;
    assert_eq!(dash.status, 200);
    assert!(
        dash.body.contains("x-auth-request-user: alice"),
        "{}",
        dash.body
    );
    assert!(!dash.body.contains("oauth-token-secret"), "{}", dash.body);
}

#[tokio::test]
async fn a_client_can_neither_name_away_nor_forge_the_identity_the_gateway_sets() {
    let setup = setup().await;
    let (_env, port) = ready_env(&setup, "alice").await;
    let env_cookie = env_session(&setup.gateway, "alice", port, "alice").await;
    let dash_cookie = session("alice");
    // Headers named in `Connection` are the client's hop-by-hop ones, never the gateway's; and
    // every header oauth2-proxy can set is the gateway's to set (Gap-Auth among them).
    let forged = |cookie: &str| -> Vec<(&str, String)> {
        vec![
            ("cookie", cookie.to_string()),
            (
                "connection",
                "x-auth-request-user, x-auth-request-preferred-username, gap-auth".into(),
            ),
            ("gap-auth", "mallory@evil.com".into()),
            ("gap-signature", "sha256 forged".into()),
            ("x-auth-request-email", "mallory@evil.com".into()),
        ]
    };
    for (host, cookie) in [
        (GATEWAY_HOST.to_string(), &dash_cookie),
        (env_host(port, "alice"), &env_cookie),
    ] {
        let headers = forged(cookie);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let echo = setup.gateway.get(&host, "/echo", &headers).await;
        assert_eq!(echo.status, 200, "{}", echo.body);
        let seen = echo.body.to_lowercase();
        assert!(
            seen.contains("\nx-auth-request-user: alice\n"),
            "{host}: {seen}"
        );
        assert!(
            seen.contains("\nx-auth-request-email: alice@example.com\n"),
            "{host}: {seen}"
        );
        assert!(
            !seen.contains("mallory") && !seen.contains("forged"),
            "{host}: {seen}"
        );
        assert!(!seen.contains("gap-"), "{host}: {seen}");
    }
}

#[tokio::test]
async fn the_bare_host_is_the_dashboard_and_oauth2_paths_reach_oauth2_proxy_unauthenticated() {
    let setup = setup().await;
    let cookie = session("bob");
    let dash = setup
        .gateway
        .get(
            GATEWAY_HOST,
            "/echo",
            &[("cookie", &cookie), ("x-auth-request-user", "root")],
        )
        .await;
    assert_eq!(dash.status, 200);
    assert!(
        dash.body.contains("x-auth-request-user: bob\n"),
        "{}",
        dash.body
    );
    assert!(!dash.body.contains("root"), "{}", dash.body);
    assert!(
        !dash.body.contains(COOKIE),
        "the dashboard never needs the session: {}",
        dash.body
    );

    let before = setup.oauth2.auth_requests.load(Ordering::SeqCst);
    let sign_in = setup
        .gateway
        .get(GATEWAY_HOST, "/oauth2/sign_in?rd=x", &[])
        .await;
    assert_eq!(sign_in.status, 302);
    assert!(
        sign_in.header("location").starts_with(PROVIDER_AUTHORIZE),
        "{:?}",
        sign_in.headers
    );
    assert_eq!(
        setup.oauth2.auth_requests.load(Ordering::SeqCst),
        before,
        "no auth check for sign-in"
    );
}

#[tokio::test]
async fn without_a_session_browsers_go_to_sign_in_and_come_back_htmx_and_apis_get_401() {
    let setup = setup().await;
    let (env, port) = ready_env(&setup, "carol").await;
    let host = env_host(port, "carol");

    // On the dashboard's host: oauth2-proxy's sign-in, back to the page asked for.
    let browser = setup
        .gateway
        .get(
            GATEWAY_HOST,
            "/page?a=1&b=2",
            &[("accept", "text/html,application/xhtml+xml")],
        )
        .await;
    assert_eq!(browser.status, 302);
    let rd = format!("http://{GATEWAY_HOST}/page?a=1&b=2");
    let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    assert_eq!(
        browser.header("location"),
        format!("http://{GATEWAY_HOST}/oauth2/sign_in?rd={rd}")
    );
    // On an env host: through the dashboard's host, which knows the sign-in (env_access.rs).
    let env_page = setup
        .gateway
        .get(&host, "/page?a=1&b=2", &[("accept", "text/html")])
        .await;
    assert_eq!(env_page.status, 302);
    assert!(
        env_page.header("location").starts_with(&format!(
            "http://{GATEWAY_HOST}/__ephemerator/auth?env=carol&port={port}&rd=%2Fpage%3Fa%3D1%26b%3D2&state="
        )),
        "{:?}",
        env_page.headers
    );

    let htmx = setup
        .gateway
        .get(
            GATEWAY_HOST,
            "/envs",
            &[
                ("accept", "text/html"),
                ("hx-request", "true"),
                ("hx-current-url", "http://preview.localhost/?show=mine"),
            ],
        )
        .await;
    assert_eq!(htmx.status, 401);
    assert!(
        htmx.header("hx-redirect")
            .ends_with("rd=http%3A%2F%2Fpreview.localhost%2F%3Fshow%3Dmine"),
        "{:?}",
        htmx.headers
    );

    let api = setup
        .gateway
        .get(
            GATEWAY_HOST,
            "/api",
            &[
                ("accept", "application/json"),
                ("cookie", "_oauth2_proxy=expired"),
            ],
        )
        .await;
    assert_eq!(api.status, 401);
    // oauth2-proxy's clearing of the stale session reaches the client, so its next request
    // carries no cookie to ask about.
    let cleared = format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    assert_eq!(api.set_cookies, [cleared.as_str()]);
    let stale = setup
        .gateway
        .get(
            GATEWAY_HOST,
            "/page",
            &[
                ("accept", "text/html"),
                ("cookie", "_oauth2_proxy=tampered"),
            ],
        )
        .await;
    assert_eq!(stale.status, 302);
    assert!(stale.header("location").contains("/oauth2/sign_in?rd="));
    assert_eq!(stale.set_cookies, [cleared.as_str()]);
    // An env's API without the env's cookie: 401, the session notwithstanding.
    let env_api = setup
        .gateway
        .get(&host, "/api", &[("cookie", &session("carol"))])
        .await;
    assert_eq!(env_api.status, 401);
    assert_eq!(
        env.requests.load(Ordering::SeqCst),
        1,
        "only the readiness probe reached the env"
    );

    let banned = setup
        .gateway
        .get(
            GATEWAY_HOST,
            "/",
            &[("accept", "text/html"), ("cookie", "_oauth2_proxy=banned")],
        )
        .await;
    assert_eq!(banned.status, 403);
    assert!(banned.body.contains("not allowed"), "{}", banned.body);
}

#[tokio::test]
async fn only_the_session_cookie_goes_to_oauth2_proxy_and_answers_are_cached_per_session() {
    let setup = setup().await;
    let (_env, port) = ready_env(&setup, "dave").await;
    let before = setup.oauth2.auth_requests.load(Ordering::SeqCst);
    let cookie = format!("app=secret; {}", session("dave"));
    for _ in 0..5 {
        let answer = setup
            .gateway
            .get(GATEWAY_HOST, "/", &[("cookie", &cookie)])
            .await;
        assert_eq!(answer.status, 200);
    }
    // dave's session is asked about once.
    assert_eq!(
        setup.oauth2.auth_requests.load(Ordering::SeqCst),
        before + 1
    );
    let seen = setup
        .oauth2
        .cookies_seen
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        seen,
        session("dave"),
        "the page's other cookies are not oauth2-proxy's business"
    );
    // An env's requests never ask oauth2-proxy: its own cookie is checked by the gateway.
    let env_cookie = env_session(&setup.gateway, "dave", port, "dave").await;
    let asked = setup.oauth2.auth_requests.load(Ordering::SeqCst);
    for _ in 0..5 {
        let answer = setup
            .gateway
            .get(&env_host(port, "dave"), "/", &[("cookie", &env_cookie)])
            .await;
        assert_eq!(answer.status, 200);
    }
    assert_eq!(setup.oauth2.auth_requests.load(Ordering::SeqCst), asked);

    // A refreshed session reaches the browser and is not cached.
    let refreshing = setup
        .gateway
        .get(
            GATEWAY_HOST,
            "/",
            &[("cookie", "_oauth2_proxy=refresh-dave")],
        )
        .await;
    assert_eq!(refreshing.status, 200);
    assert!(
        refreshing
            .set_cookies
            .iter()
            .any(|c| c.starts_with("_oauth2_proxy=valid-dave; Path=/; Expires=")),
        "{:?}",
        refreshing.set_cookies
    );
}

#[tokio::test]
async fn envs_cannot_set_cookies_for_the_parent_domain_and_repeated_set_cookie_survives() {
    let setup = setup().await;
    let (_env, port) = ready_env(&setup, "erin").await;
    let cookie = env_session(&setup.gateway, "erin", port, "erin").await;
    let answer = setup
        .gateway
        .get(&env_host(port, "erin"), "/cookies", &[("cookie", &cookie)])
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.set_cookies,
        ["first=1; Path=/", "second=2; Path=/; HttpOnly"]
    );
}

#[tokio::test]
async fn every_status_page_says_what_is_there_and_links_the_dashboard() {
    let setup = setup().await;
    let client = setup.cluster.client();
    // Each env's page with that env's cookie for the port (none for envs that do not exist).
    let get = |env: &'static str, port: u16| {
        let gateway = &setup.gateway;
        async move {
            let cookie = match gateway.running.table.get(env) {
                Some(_) => env_session(gateway, env, port, "frank").await,
                None => session("frank"),
            };
            gateway
                .get(
                    &env_host(port, env),
                    "/",
                    &[("cookie", &cookie), ("accept", "text/html")],
                )
                .await
        }
    };
    let dashboard_link = r#"href="http:&#x2F;&#x2F;preview.localhost&#x2F;""#;

    let missing = get("gone", 8000).await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .body
            .contains("There might have been an environment here once, but it expired.")
    );
    assert!(missing.body.contains(dashboard_link), "{}", missing.body);

    env_routed(
        &setup,
        "slow",
        Phase::Starting,
        &[],
        "cloning the repo",
        8000,
        "cloning the repo",
    )
    .await;
    let starting = get("slow", 8000).await;
    assert_eq!(starting.status, 503);
    assert_eq!(starting.header("retry-after"), "3");
    assert!(
        starting
            .body
            .contains(r#"<meta http-equiv="refresh" content="3">"#)
    );
    assert!(starting.body.contains("Starting"), "{}", starting.body);

    let dead = dead_port().await;
    env_routed(
        &setup,
        "partial",
        Phase::Ready,
        &[dead],
        "",
        9,
        "does not publish port 9",
    )
    .await;
    let unpublished = get("partial", 9).await;
    assert_eq!(unpublished.status, 503);
    assert!(
        unpublished
            .body
            .contains(&format!("port-{dead} (port {dead})")),
        "{}",
        unpublished.body
    );

    env_routed(
        &setup,
        "broken",
        Phase::Failed,
        &[dead],
        "tilt up exited: <boom>",
        dead,
        "failed",
    )
    .await;
    let failed = get("broken", dead).await;
    assert_eq!(failed.status, 503);
    assert!(
        failed.body.contains("tilt up exited: &lt;boom&gt;"),
        "{}",
        failed.body
    );

    env_routed(
        &setup,
        "nope",
        Phase::Rejected,
        &[],
        "repo not allowed",
        8000,
        "was rejected",
    )
    .await;
    assert!(get("nope", 8000).await.body.contains("repo not allowed"));

    // A dead upstream: a 502 that says so, at once (refused, not timed out).
    let started = std::time::Instant::now();
    let refused = get("partial", dead).await;
    assert_eq!(refused.status, 502);
    assert!(
        refused.body.contains(&format!(
            "Port {dead} of environment partial did not answer"
        )),
        "{}",
        refused.body
    );
    assert!(
        refused.body.to_lowercase().contains("refused"),
        "{}",
        refused.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refusal is not waited out"
    );

    // A Service that exists but is not an env is never reached.
    let api = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    api.create(
        &PostParams::default(),
        &Service {
            metadata: ObjectMeta {
                name: Some("internal-db".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    port: 5432,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(get("internal-db", 5432).await.status, 404);
}

#[tokio::test]
async fn the_gateway_is_not_an_open_proxy() {
    let setup = setup().await;
    let (env, port) = ready_env(&setup, "gina").await;
    let cookie = env_session(&setup.gateway, "gina", port, "gina").await;
    for host in [
        format!("127.0.0.1:{port}"),
        format!("{port}---gina.preview.localhost.evil.com"),
        format!("{port}---gina.evilpreview.localhost"),
        "kubernetes.default.svc".to_string(),
    ] {
        let answer = setup
            .gateway
            .get(&host, "/echo", &[("cookie", &cookie)])
            .await;
        assert_eq!(answer.status, 404, "{host}");
        assert!(
            answer
                .body
                .contains("is not an address of this ephemerator"),
            "{host}"
        );
    }
    // An absolute-form request line naming another host is judged by that host.
    let mut stream = tokio::net::TcpStream::connect(setup.gateway.running.addr)
        .await
        .unwrap();
    let request = format!(
        "GET http://127.0.0.1:{port}/echo HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        env_host(port, "gina")
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(
        env.requests.load(Ordering::SeqCst),
        1,
        "only the readiness probe reached the env"
    );
}

#[tokio::test]
async fn server_sent_events_flow_as_they_come() {
    let setup = setup().await;
    let (sse, events) = sse_server().await;
    let port = sse.port();
    put_env(&setup.cluster.client(), "hank", Phase::Ready, &[port], "").await;
    wait_for("hank routed", || async {
        setup.gateway.running.table.get("hank").map(|_| ())
    })
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let request = hyper::Request::get(format!("http://{}/events", setup.gateway.running.addr))
        .header("host", env_host(port, "hank"))
        .header(
            "cookie",
            env_session(&setup.gateway, "hank", port, "hank").await,
        )
        .body(http_body_util::Empty::new())
        .unwrap();
    events.send("one".into()).unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "data: one\n\n");
    // The second event does not exist yet when the first arrives: nothing is buffered.
    events.send("two".into()).unwrap();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, "data: two\n\n");
}

#[tokio::test]
async fn websockets_work_end_to_end_with_tilts_origin_check() {
    let setup = setup().await;
    let ws = websocket_server().await;
    let port = ws.port();
    put_env(&setup.cluster.client(), "ivan", Phase::Ready, &[port], "").await;
    wait_for("ivan routed", || async {
        setup
            .gateway
            .running
            .table
            .get("ivan")
            .filter(|s| s.status.exposes(port))
            .map(|_| ())
    })
    .await;
    let host = env_host(port, "ivan");
    let cookie = env_session(&setup.gateway, "ivan", port, "ivan").await;
    let connect = |origin: String| {
        let (host, cookie) = (host.clone(), cookie.clone());
        let addr = setup.gateway.running.addr;
        async move {
            let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
            let headers = request.headers_mut();
            headers.insert("host", host.parse().unwrap());
            headers.insert("origin", origin.parse().unwrap());
            headers.insert("cookie", cookie.parse().unwrap());
            tokio_tungstenite::connect_async(request).await
        }
    };
    let (mut socket, response) = connect(format!("http://{host}"))
        .await
        .expect("the upgrade goes through");
    assert_eq!(response.status(), 101);
    for text in ["hello", "world"] {
        socket.send(Message::text(text)).await.unwrap();
        let echo = socket.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap(), text);
    }
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap().into_data(),
        vec![0u8, 1, 2, 255]
    );
    let open = setup.gateway.admin("/metrics").await;
    assert!(
        open.body.contains("ephgateway_websockets_open 1"),
        "{}",
        open.body
    );
    socket.close(None).await.unwrap();

    // Another origin is refused (by the gateway, for an env that is not public; by Tilt's own
    // origin check behind it otherwise), and the refusal reaches the client.
    let refused = connect("http://evil.com".into()).await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let setup = setup().await;
    let big = "x".repeat(64 * 1024);
    let mut stream = tokio::net::TcpStream::connect(setup.gateway.running.addr)
        .await
        .unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {GATEWAY_HOST}\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(setup.dashboard.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_head_limit_is_the_documented_one_to_the_byte() {
    let setup = setup().await;
    let limit = ephgateway::Limits::default().max_header_bytes;
    assert_eq!(limit, 32 * 1024, "the README's figure");
    // A head of exactly `size` bytes on the wire.
    let head = |size: usize| {
        let start = format!("GET / HTTP/1.1\r\nHost: {GATEWAY_HOST}\r\nX-Big: ");
        let end = "\r\n\r\n";
        format!("{start}{}{end}", "x".repeat(size - start.len() - end.len()))
    };
    for (size, expected) in [(limit, "HTTP/1.1 401"), (limit + 1, "HTTP/1.1 431")] {
        let request = head(size);
        assert_eq!(request.len(), size);
        let mut stream = tokio::net::TcpStream::connect(setup.gateway.running.addr)
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 64];
        let read = stream.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with(expected), "{size} bytes: {answer}");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_env_and_status() {
    let setup = setup().await;
    let (_env, port) = ready_env(&setup, "judy").await;
    let cookie = env_session(&setup.gateway, "judy", port, "judy").await;
    setup
        .gateway
        .get(&env_host(port, "judy"), "/", &[("cookie", &cookie)])
        .await;
    setup
        .gateway
        .get(GATEWAY_HOST, "/", &[("cookie", &session("judy"))])
        .await;
    setup
        .gateway
        .get(&env_host(1, "nobody"), "/", &[("cookie", &cookie)])
        .await;
    let metrics = setup.gateway.admin("/metrics").await.body;
    assert!(
        metrics.contains(r#"ephgateway_requests_total{target="env",env="judy",status="200"}"#),
        "{metrics}"
    );
    // "nobody" is no env: it labels nothing (the Host header alone never makes a series).
    // (The count is not asserted: waiting for judy to be routed may have met a 404 too.)
    assert!(
        metrics.contains(r#"ephgateway_requests_total{target="page",env="",status="404"} "#),
        "{metrics}"
    );
    assert!(!metrics.contains("nobody"), "{metrics}");
    assert!(
        metrics.contains("ephgateway_auth_subrequest_seconds_count{verdict=\"allowed\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("ephgateway_envs 1"), "{metrics}");
}

#[tokio::test]
async fn hosts_of_no_env_make_no_metrics_series_and_a_deleted_envs_series_go() {
    let setup = setup().await;
    let (_env, port) = ready_env(&setup, "kate").await;
    let cookie = env_session(&setup.gateway, "kate", port, "kate").await;
    let served = setup
        .gateway
        .get(&env_host(port, "kate"), "/", &[("cookie", &cookie)])
        .await;
    assert_eq!(served.status, 200);
    let before = setup.gateway.admin("/metrics").await.body;
    // Anyone, signed in or not, asking for hosts of envs that do not exist.
    for i in 0..300 {
        let host = env_host(1, &format!("random-{i}"));
        let signed_in = if i % 2 == 0 { cookie.as_str() } else { "" };
        setup
            .gateway
            .get(&host, "/", &[("cookie", signed_in)])
            .await;
    }
    let after = setup.gateway.admin("/metrics").await.body;
    assert!(!after.contains("random-"), "{after}");
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("ephgateway_requests_total{"))
            .count()
    };
    assert!(
        series(&after) <= series(&before) + 3,
        "a few series by status at most: {} then {}",
        series(&before),
        series(&after)
    );
    assert!(after.contains(r#"env="kate""#));

    // Deleted: its series go with it.
    delete_env(&setup.cluster.client(), "kate").await;
    wait_for("kate's series gone", || async {
        let metrics = setup.gateway.admin("/metrics").await.body;
        (!metrics.contains(r#"env="kate""#)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_gets_a_502_that_says_so() {
    let cluster = devcluster().await;
    let oauth2 = oauth2_proxy().await;
    let dashboard = env_server().await;
    let mut slow = settings(cluster.client(), Auth::Proxy(oauth2.addr), dashboard.addr);
    slow.limits.upstream_timeout = Duration::from_millis(300);
    let gateway = Gateway::start(slow).await;
    let env = env_server().await;
    let port = env.addr.port();
    put_env(&cluster.client(), "nora", Phase::Ready, &[port], "").await;
    let host = env_host(port, "nora");
    let cookie = env_session(&gateway, "nora", port, "nora").await;
    wait_for("nora routed", || async {
        (gateway.get(&host, "/", &[("cookie", &cookie)]).await.status == 200).then_some(())
    })
    .await;
    // `/hold` answers only when released, which this test never does.
    let answer = gateway.get(&host, "/hold", &[("cookie", &cookie)]).await;
    assert_eq!(answer.status, 502);
    assert!(answer.body.contains("no answer within"), "{}", answer.body);
    let metrics = gateway.admin("/metrics").await.body;
    assert!(
        metrics.contains(r#"ephgateway_upstream_errors_total{target="env",kind="timeout"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let cluster = devcluster().await;
    let dashboard = env_server().await;
    let mut strict = settings(cluster.client(), Auth::None, dashboard.addr);
    strict.limits.header_read_timeout = Duration::from_secs(1);
    let gateway = Gateway::start(strict).await;
    let mut stream = tokio::net::TcpStream::connect(gateway.running.addr)
        .await
        .unwrap();
    stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: {GATEWAY_HOST}\r\n").as_bytes())
        .await
        .unwrap();
    // The read ends when the gateway closes the connection (within the deadline of the test).
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the connection was never closed");
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(dashboard.requests.load(Ordering::SeqCst), 0);
}
