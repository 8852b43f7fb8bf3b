//! Sleeping envs at the gateway: a person's top-level navigation wakes one (its activity Lease
//! renewed past the time it fell asleep, once per sleep however often the waking page reloads)
//! and gets the waking page with the runner's setup logs; XHRs, fetches, frames, WebSockets,
//! scripts and probes get a prompt 503 with `Retry-After` and wake nothing; a visitor the env's
//! gate turns away wakes nothing either. ephctrl's side is `ctrl/tests/sleep.rs`; both
//! together, with two gateways, `realcluster/tests/sleep.rs`.

// Tests: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::activity::lease_name;
use ephemerator_core::labels::ACCESS_ANNOTATION;
use ephemerator_core::{EnvStatus, Phase, Port};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

/// Env `name`, asleep since a minute ago, publishing `port`, open to its owner only.
async fn put_sleeping(client: &kube::Client, name: &str, port: u16) -> Timestamp {
    let since = Timestamp::now() - SignedDuration::from_mins(1);
    let status = EnvStatus {
        phase: Phase::Sleeping,
        message: Some(format!("asleep since {since}")),
        ports: vec![Port {
            name: "web".into(),
            port,
        }],
        asleep_since: Some(since),
        ..EnvStatus::default()
    };
    put_env_status(client, name, &status, &[(ACCESS_ANNOTATION, "owner")]).await;
    since
}

async fn lease(cluster: &devcluster::DevCluster, env: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(cluster.client(), NAMESPACE)
        .get_opt(&lease_name(env))
        .await
        .unwrap()
}

fn renewed(lease: &Lease) -> Timestamp {
    lease.spec.as_ref().unwrap().renew_time.clone().unwrap().0
}

const NAVIGATION: [(&str, &str); 2] = [
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
];

#[tokio::test]
async fn only_a_persons_navigation_wakes_a_sleeping_env_and_the_rest_get_a_prompt_503() {
    let setup = proxied_gateway().await;
    let gateway = &setup.gateway;
    let port = 8000;
    let since = put_sleeping(&setup.cluster.client(), "dora", port).await;
    let cookie = env_session(gateway, "dora", port, "dora").await;
    let host = env_host(port, "dora");
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut headers = vec![("cookie", cookie.clone())];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        headers
    };
    let get = |headers: Vec<(&'static str, String)>| {
        let host = host.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            gateway.get(&host, "/app?x=1", &headers).await
        }
    };

    // Not a person opening a page: answered at once, and nothing is woken.
    for extra in [
        &[][..],
        &[("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")][..],
        &[("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "script")][..],
        &[("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")][..],
        &[
            ("sec-fetch-mode", "websocket"),
            ("sec-fetch-dest", "websocket"),
        ][..],
    ] {
        let answer = get(with(extra)).await;
        assert_eq!(answer.status, 503, "{extra:?}: {}", answer.body);
        assert_eq!(answer.header("retry-after"), "10", "{extra:?}");
        assert!(answer.body.contains("asleep"), "{}", answer.body);
    }
    // A WebSocket's opening, as a browser sends it: refused the same way.
    let upgrade = gateway
        .get(
            &host,
            "/ws",
            &[
                ("cookie", &cookie),
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("sec-fetch-mode", "websocket"),
            ],
        )
        .await;
    assert_eq!(upgrade.status, 503);

    // Someone the env's level does not admit (it is dora's alone): sent to sign in, no wake.
    let bob = env_session(gateway, "dora", port, "bob").await;
    let refused = gateway
        .get(
            &host,
            "/",
            &[("cookie", &bob), NAVIGATION[0], NAVIGATION[1]],
        )
        .await;
    assert_ne!(refused.status, 503, "{}", refused.body);
    assert!(!refused.body.contains("waking up"), "{}", refused.body);
    assert!(
        lease(&setup.cluster, "dora").await.is_none(),
        "nothing woke it"
    );

    // Its owner opens it in a tab: the waking page, at once, and the Lease renewed past the
    // moment it fell asleep (what ephctrl takes for a wake).
    let waking = get(with(&NAVIGATION)).await;
    assert_eq!(waking.status, 503);
    assert!(
        waking.body.contains("Environment dora is waking up"),
        "{}",
        waking.body
    );
    assert!(
        waking
            .body
            .contains(r#"<meta http-equiv="refresh" content="3">"#)
    );
    assert!(waking.body.contains("Setup log"), "{}", waking.body);
    assert!(
        waking
            .body
            .contains("starting again: this page follows it and opens port 8000"),
        "{}",
        waking.body
    );
    assert!(
        waking
            .header("content-security-policy")
            .contains("default-src 'none'"),
        "no script on the page"
    );
    let woken = wait_for("dora's Lease", || lease(&setup.cluster, "dora")).await;
    assert!(
        renewed(&woken) > since,
        "renewed {} <= {since}",
        renewed(&woken)
    );

    // The page reloads itself, other tabs open: one wake per sleep from this replica.
    for _ in 0..3 {
        let again = get(with(&NAVIGATION)).await;
        assert!(again.body.contains("waking up"));
    }
    let marker = env_server().await;
    let marker_cookie = routed(&setup, "marker", marker.addr.port()).await;
    gateway
        .get(
            &env_host(marker.addr.port(), "marker"),
            "/",
            &[("cookie", &marker_cookie), NAVIGATION[0], NAVIGATION[1]],
        )
        .await;
    wait_for("the marker's Lease", || lease(&setup.cluster, "marker")).await;
    assert_eq!(
        lease(&setup.cluster, "dora")
            .await
            .unwrap()
            .metadata
            .resource_version,
        woken.metadata.resource_version,
        "woken once"
    );
    let metrics = gateway.admin("/metrics").await.body;
    assert!(
        metrics
            .lines()
            .any(|line| line == "ephgateway_wakes_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_waking_env_shows_the_waking_page_with_its_setup_logs_until_it_is_ready() {
    let setup = proxied_gateway().await;
    let gateway = &setup.gateway;
    let client = setup.cluster.client();
    let app = env_server().await;
    let port = app.addr.port();
    let since = put_sleeping(&client, "wren", port).await;
    let cookie = env_session(gateway, "wren", port, "wren").await;
    let host = env_host(port, "wren");
    let nav = [("cookie", cookie.as_str()), NAVIGATION[0], NAVIGATION[1]];

    // Woken (as ephctrl writes it): Starting, still marked as asleep until Ready.
    let waking = EnvStatus {
        phase: Phase::Starting,
        message: Some("woken by a visit; runner starting".into()),
        ports: vec![Port {
            name: "web".into(),
            port,
        }],
        asleep_since: Some(since),
        woke_at: Some(Timestamp::now()),
        ..EnvStatus::default()
    };
    set_status(&client, "wren", &waking).await;
    wait_for("wren waking in the table", || async {
        gateway
            .running
            .table
            .get("wren")
            .filter(|entry| entry.status.phase == Phase::Starting)
    })
    .await;
    let page = gateway.get(&host, "/", &nav).await;
    assert_eq!(page.status, 503);
    assert!(
        page.body.contains("Environment wren is waking up"),
        "{}",
        page.body
    );
    assert!(page.body.contains("woken by a visit; runner starting"));
    // No runner pod in this cluster yet: the log section says so.
    assert!(page.body.contains("no runner yet"), "{}", page.body);

    // Ready: the same navigation (the page's next reload) reaches the app.
    set_status(
        &client,
        "wren",
        &EnvStatus {
            phase: Phase::Ready,
            message: Some("runner ready".into()),
            asleep_since: None,
            ..waking
        },
    )
    .await;
    let app_page = wait_for("wren's app", || async {
        let answer = gateway.get(&host, "/", &nav).await;
        (answer.status == 200).then_some(answer)
    })
    .await;
    assert!(!app_page.body.contains("waking up"), "{}", app_page.body);
}

/// Writes `status` on env `name`, as ephctrl's apply does.
async fn set_status(client: &kube::Client, name: &str, status: &EnvStatus) {
    let mut meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::default();
    status.write_to(&mut meta);
    let patch = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": meta.labels, "annotations": meta.annotations},
    });
    Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .patch(
            name,
            &kube::api::PatchParams::apply("test-ephctrl").force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await
        .unwrap();
}
