//! Events and notices as users see them: `kubectl describe` of an env, the Event objects, the
//! bounded Event queue, and the expiry warning's link to the dashboard.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ephctrl::events::{self, EventType, QUEUE_CAPACITY, REPORTING_CONTROLLER};
use ephemerator_core::Phase;
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn kubectl_describe_tells_an_envs_story() {
    let cluster = cluster().await;
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(client.clone(), config());
    create_env(&client, "alice", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "alice", Phase::Ready).await;
    wait_for("the Ready event", || async {
        event_reasons(&client, "alice")
            .await
            .contains(&"Ready".to_string())
            .then_some(())
    })
    .await;

    let stdout = kubectl(&cluster, &["describe", "configmap", "alice"], &[]).await;
    let events: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("Events:"))
        .collect();
    // kubectl orders by a timestamp of whole seconds: the order within a second is its own.
    let listed = |reason: &str, message: &str| {
        events.iter().any(|line| {
            line.contains("Normal")
                && line.contains(reason)
                && line.contains(REPORTING_CONTROLLER)
                && line.contains(message)
        })
    };
    assert!(
        listed("Starting", "runner starting") && listed("Ready", READY_WITHOUT_TILT),
        "describe lists Starting and Ready, from ephctrl, with their messages:\n{stdout}"
    );
}

#[tokio::test]
async fn events_name_the_env_the_controller_and_what_happened() {
    let cluster = cluster().await;
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(client.clone(), config());
    let created = create_env(&client, "bob", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "bob", Phase::Ready).await;

    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let ready = wait_for("bob's Ready event", || async {
        api.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|event| {
                event.reason.as_deref() == Some("Ready")
                    && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bob")
            })
    })
    .await;
    let regarding = ready.regarding.as_ref().unwrap();
    assert_eq!(regarding.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(regarding.api_version.as_deref(), Some("v1"));
    assert_eq!(regarding.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(regarding.uid, created.uid());
    assert_eq!(
        ready.reporting_controller.as_deref(),
        Some(REPORTING_CONTROLLER)
    );
    assert!(
        !ready
            .reporting_instance
            .clone()
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(ready.action.as_deref(), Some("Reconcile"));
    assert_eq!(ready.type_.as_deref(), Some("Normal"));
    assert_eq!(ready.note.as_deref(), Some(READY_WITHOUT_TILT));
    assert!(ready.event_time.is_some());
    assert!(ready.name_any().starts_with("bob."), "{}", ready.name_any());
}

#[tokio::test]
async fn each_transition_is_recorded_once() {
    let cluster = cluster().await;
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(client.clone(), config());
    // Several at once, so watch events of different kinds interleave.
    let names: Vec<String> = (0..8).map(|i| format!("env-{i}")).collect();
    let spec = spec(HTML_REPO, "master", "0-base");
    futures::future::join_all(names.iter().map(|name| create_env(&client, name, &spec))).await;
    for name in &names {
        wait_for_phase(&client, name, Phase::Ready).await;
        let reasons = wait_for(&format!("{name}'s Ready event"), || async {
            let reasons = event_reasons(&client, name).await;
            reasons.contains(&"Ready".to_string()).then_some(reasons)
        })
        .await;
        assert_eq!(reasons, ["Starting", "Ready"], "{name}'s Events");
    }
}

#[tokio::test]
async fn a_full_event_queue_drops_events_instead_of_waiting() {
    let cluster = cluster().await;
    let client = cluster.client();
    let (sink, writer) = events::sink(client.clone(), NAMESPACE);
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("flood".into()),
        namespace: Some(NAMESPACE.into()),
        ..ObjectReference::default()
    };
    // Nothing writes yet: the queue fills, and publishing more returns at once.
    let started = Instant::now();
    for i in 0..QUEUE_CAPACITY + 50 {
        sink.publish(
            regarding.clone(),
            EventType::Warning,
            "Flood",
            format!("event {i}"),
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "publishing never waits for the API"
    );
    drop(sink);
    tokio::time::timeout(DEADLINE, writer)
        .await
        .expect("the writer drains the queue and stops once the sinks are gone");

    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let written: Vec<Event> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some("Flood"))
        .collect();
    assert_eq!(
        written.len(),
        QUEUE_CAPACITY,
        "the queue's worth was written"
    );
    let notes: std::collections::BTreeSet<String> = written
        .iter()
        .filter_map(|event| event.note.clone())
        .collect();
    assert!(notes.contains("event 0"));
    assert!(
        !notes.contains(&format!("event {QUEUE_CAPACITY}")),
        "later ones were dropped"
    );
    assert!(
        written
            .iter()
            .all(|event| event.type_.as_deref() == Some("Warning"))
    );
}

#[tokio::test]
async fn the_expiry_warning_says_where_to_extend_the_env() {
    use ephctrl::testing::webhook::StandInWebhook;

    let webhook = StandInWebhook::start(&[]).await.unwrap();
    let cluster = cluster().await;
    let client = cluster.client();
    let mut config = config();
    // Warned two seconds after creation, long before it expires.
    config.expiration.default_ttl = SignedDuration::from_secs(60);
    config.expiration.warn_before = SignedDuration::from_secs(58);
    config.notifications.webhook_url = Some(ephemerator_core::SecretUrl::new(webhook.url()));
    let _ctrl = Ctrl::with_config(client.clone(), config);
    create_env(&client, "carol", &spec(HTML_REPO, "master", "0-base")).await;

    // The "created" notice, then the warning.
    let received = webhook.wait_for(2, DEADLINE).await;
    let body = received
        .iter()
        .map(|notice| notice.body.to_string())
        .find(|body| body.contains("expires"))
        .unwrap_or_else(|| panic!("no warning arrived within {DEADLINE:?}: {received:?}"));
    assert!(body.contains("carol"), "{body}");
    assert!(body.contains("http://preview.localhost/"), "{body}");
    wait_for("the ExpiresSoon event", || async {
        event_reasons(&client, "carol")
            .await
            .contains(&"ExpiresSoon".to_string())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn owners_are_told_once_when_an_env_is_created_and_when_it_is_deleted() {
    use ephctrl::testing::webhook::StandInWebhook;

    let webhook = StandInWebhook::start(&[]).await.unwrap();
    let cluster = cluster().await;
    let client = cluster.client();
    let mut config = config();
    config.notifications.webhook_url = Some(ephemerator_core::SecretUrl::new(webhook.url()));
    let ctrl = Ctrl::with_config(client.clone(), config.clone());
    create_env(&client, "dora", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "dora", Phase::Ready).await;
    let created = webhook.wait_for(1, DEADLINE).await;
    let body = created[0].body.to_string();
    assert!(
        body.contains("dora") && body.contains("was created from"),
        "{body}"
    );
    assert!(body.contains(HTML_REPO), "{body}");

    // A restarted controller does not announce the env again; a deletion is announced.
    ctrl.kill().await;
    let settings = ephctrl::testing::settings(client.clone(), NAMESPACE, config);
    let ctrl = Ctrl::start(settings);
    let port = ctrl.admin_port;
    // Leading (the killed one's Lease has lapsed) and ready: it has listed the envs, so it sees
    // the deletion that follows, and announces it (a deletion while nobody leads is not).
    wait_for("the new controller to lead", || async {
        let (status, body) = http_get(port, "/readyz").await?;
        (status.contains("200") && body.contains("leading as")).then_some(())
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    api.delete("dora", &Default::default()).await.unwrap();
    let received = webhook.wait_for(2, DEADLINE).await;
    let bodies: Vec<String> = received.iter().map(|n| n.body.to_string()).collect();
    assert_eq!(
        bodies.iter().filter(|b| b.contains("was created")).count(),
        1,
        "{bodies:?}"
    );
    assert!(
        bodies[1].contains("dora") && bodies[1].contains("was deleted"),
        "{bodies:?}"
    );
}

#[tokio::test]
async fn an_expired_env_is_announced_as_expired_not_as_deleted() {
    use ephctrl::testing::webhook::StandInWebhook;

    let webhook = StandInWebhook::start(&[]).await.unwrap();
    let cluster = cluster().await;
    let client = cluster.client();
    let mut config = config();
    config.expiration.default_ttl = SignedDuration::from_secs(2);
    config.expiration.warn_before = SignedDuration::ZERO;
    config.notifications.webhook_url = Some(ephemerator_core::SecretUrl::new(webhook.url()));
    let _ctrl = Ctrl::with_config(client.clone(), config);
    create_env(&client, "eve", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for("eve to expire", || async {
        get::<ConfigMap>(&client, "eve")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    // Created, then expired; a "deleted" notice would be a third.
    let received = webhook.wait_for(2, DEADLINE).await;
    let bodies: Vec<String> = received.iter().map(|n| n.body.to_string()).collect();
    assert!(bodies[0].contains("was created"), "{bodies:?}");
    assert!(bodies[1].contains("expired and was deleted"), "{bodies:?}");
    // The same env again, to flush: its "created" notice comes after anything eve caused.
    create_env(&client, "eve", &spec(HTML_REPO, "master", "0-base")).await;
    let received = webhook.wait_for(3, DEADLINE).await;
    let bodies: Vec<String> = received.iter().map(|n| n.body.to_string()).collect();
    assert!(
        bodies[2].contains("was created"),
        "no deleted notice for an expiry: {bodies:?}"
    );
}
