//! The envs' activity Leases: a person's requests and WebSocket messages renew them, at most
//! once a minute per replica; scripts, probes, the gateway's own pages and a silent WebSocket
//! do not.

// Tests: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::Phase;
use ephemerator_core::activity::{ACTIVITY_OF_LABEL, lease_name};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Setup = ProxiedGateway;

async fn setup() -> Setup {
    proxied_gateway().await
}

async fn lease(setup: &Setup, env: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(setup.cluster.client(), NAMESPACE)
        .get_opt(&lease_name(env))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_persons_requests_renew_the_envs_activity_lease_and_scripts_do_not() {
    let setup = setup().await;
    let env = env_server().await;
    let port = env.addr.port();
    let cookie = routed(&setup, "alice", port).await;
    let host = env_host(port, "alice");

    // A script, a monitor or a probe (no fetch metadata): answered, not recorded.
    let answer = setup.gateway.get(&host, "/", &[("cookie", &cookie)]).await;
    assert_eq!(answer.status, 200);
    // A browser's page load: recorded, as the env's, owned by it.
    let answer = setup
        .gateway
        .get(
            &host,
            "/",
            &[("cookie", &cookie), ("sec-fetch-mode", "navigate")],
        )
        .await;
    assert_eq!(answer.status, 200);
    let recorded = wait_for("the activity Lease", || lease(&setup, "alice")).await;
    let uid = Api::<ConfigMap>::namespaced(setup.cluster.client(), NAMESPACE)
        .get("alice")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let owner = &recorded.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("ConfigMap", uid.as_str())
    );
    assert_eq!(
        recorded.metadata.labels.as_ref().unwrap()[ACTIVITY_OF_LABEL],
        "alice"
    );
    let renewed = recorded
        .spec
        .as_ref()
        .unwrap()
        .renew_time
        .clone()
        .unwrap()
        .0;
    let age = jiff::Timestamp::now().duration_since(renewed);
    assert!(
        age < jiff::SignedDuration::from_secs(30),
        "renewed {age:?} ago"
    );

    // More requests within the minute: no more writes.
    for _ in 0..5 {
        setup
            .gateway
            .get(
                &host,
                "/",
                &[("cookie", &cookie), ("sec-fetch-mode", "cors")],
            )
            .await;
    }
    let again = lease(&setup, "alice").await.unwrap();
    assert_eq!(
        again.metadata.resource_version, recorded.metadata.resource_version,
        "renewed at most once a minute"
    );

    // Another env's page and the gateway's own pages are no use of this one; a probe without
    // a session sees the sign-in and records nothing either.
    put_env(&setup.cluster.client(), "bob", Phase::Starting, &[], "").await;
    let starting = env_host(port, "bob");
    wait_for("bob's starting page", || async {
        let answer = setup
            .gateway
            .get(&starting, "/", &[("sec-fetch-mode", "navigate")])
            .await;
        (answer.status != 404).then_some(())
    })
    .await;
    assert!(lease(&setup, "bob").await.is_none());
}

#[tokio::test]
async fn a_silent_websocket_does_not_count_and_a_message_on_it_does() {
    let setup = setup().await;
    let ws = websocket_server().await;
    let port = ws.port();
    let cookie = routed(&setup, "ivan", port).await;
    let host = env_host(port, "ivan");
    let addr = setup.gateway.running.addr;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("host", host.parse().unwrap());
    headers.insert("origin", format!("http://{host}").parse().unwrap());
    headers.insert("cookie", cookie.parse().unwrap());
    headers.insert("sec-fetch-mode", "websocket".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    // Open, answering the server's pings (a browser does that by itself): nothing recorded.
    socket.send(Message::Pong(Vec::new().into())).await.unwrap();
    socket.send(Message::Ping(Vec::new().into())).await.unwrap();
    let _ = socket.next().await;
    // A page load elsewhere on the gateway is the marker: once its writes are seen, any write
    // of the socket's would have been too.
    let other = env_server().await;
    let other_cookie = routed(&setup, "marker", other.addr.port()).await;
    setup
        .gateway
        .get(
            &env_host(other.addr.port(), "marker"),
            "/",
            &[("cookie", &other_cookie), ("sec-fetch-mode", "navigate")],
        )
        .await;
    wait_for("the marker's Lease", || lease(&setup, "marker")).await;
    assert!(
        lease(&setup, "ivan").await.is_none(),
        "a silent socket counted"
    );

    // A message from the browser: a use of the env.
    socket.send(Message::text("hello")).await.unwrap();
    let echo = socket.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap(), "hello");
    wait_for("ivan's Lease", || lease(&setup, "ivan")).await;
    socket.close(None).await.unwrap();
}
