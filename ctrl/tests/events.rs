//! Events and notices as users see them: `kubectl describe` of an env, the Event objects, the
//! bounded Event queue, and the expiry warning's link to the dashboard.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ephctrl::events::{self, EventSink, EventType, QUEUE_CAPACITY, REPORTING_CONTROLLER};
use ephemerator_core::Phase;
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::ObjectReference;
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
        listed("Starting", "runner starting") && listed("Ready", "runner ready"),
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
    assert_eq!(ready.note.as_deref(), Some("runner ready"));
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
    let (sink, writer) = EventSink::new(client.clone(), NAMESPACE, &events::reporting_instance());
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

    let received = webhook.wait_for(1, DEADLINE).await;
    let body = received
        .first()
        .unwrap_or_else(|| panic!("no notice arrived within {DEADLINE:?}"))
        .body
        .to_string();
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
