//! Events are one set of objects served by two APIs: what kube-runtime's `Recorder` writes
//! (events.k8s.io/v1) is what `kubectl describe` reads (core/v1), and the other way round.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, config_map, kubectl_stdout, on_both_servers, raw, status_of, within};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use serde_json::json;

async fn with_config_map(c: &Server, name: &str) -> ConfigMap {
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    cms.create(&PostParams::default(), &config_map(name, &[], &[]))
        .await
        .expect("config map created")
}

on_both_servers!(
    recorder_events_are_listed_by_describe_as_core_events,
    core_events_are_served_as_events_k8s_io,
    watches_on_both_apis_see_recorder_events_and_their_series,
    kubectl_describe_shows_recorder_events,
);

/// The field selector `kubectl describe` sends for the events of an object.
fn describe_selector(cm: &ConfigMap) -> String {
    format!(
        "involvedObject.name={},involvedObject.namespace=default,involvedObject.kind=ConfigMap,involvedObject.uid={}",
        cm.name_any(),
        cm.uid().expect("uid")
    )
}

fn recorder(c: &Server) -> Recorder {
    Recorder::new(
        c.client(),
        Reporter {
            controller: "ephctrl".into(),
            instance: Some("ephctrl-0".into()),
        },
    )
}

fn expiring_event() -> Event {
    Event {
        type_: EventType::Normal,
        reason: "Expiring".into(),
        note: Some("env expires in 5m".into()),
        action: "Expire".into(),
        secondary: None,
    }
}

/// The next ADDED/MODIFIED/DELETED event of a watch stream, skipping bookmarks.
async fn next_change<K, S>(stream: &mut S) -> (&'static str, K)
where
    K: std::fmt::Debug,
    S: Stream<Item = kube::Result<WatchEvent<K>>> + Unpin,
{
    loop {
        match within("a watch event", stream.next()).await {
            Some(Ok(WatchEvent::Added(o))) => return ("ADDED", o),
            Some(Ok(WatchEvent::Modified(o))) => return ("MODIFIED", o),
            Some(Ok(WatchEvent::Deleted(o))) => return ("DELETED", o),
            Some(Ok(WatchEvent::Bookmark(_))) => continue,
            other => panic!("unexpected watch item {other:?}"),
        }
    }
}

async fn recorder_events_are_listed_by_describe_as_core_events(c: Server) {
    let cm = with_config_map(&c, "web").await;
    recorder(&c)
        .publish(&expiring_event(), &cm.object_ref(&()))
        .await
        .expect("event published");

    let core: Api<CoreEvent> = Api::default_namespaced(c.client());
    let found = core
        .list(&ListParams::default().fields(&describe_selector(&cm)))
        .await
        .expect("core events listed");
    assert_eq!(found.items.len(), 1, "{found:?}");
    let ev = &found.items[0];
    assert_eq!(ev.involved_object.name.as_deref(), Some("web"));
    assert_eq!(ev.involved_object.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(ev.message.as_deref(), Some("env expires in 5m"));
    assert_eq!(ev.reason.as_deref(), Some("Expiring"));
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    assert_eq!(ev.action.as_deref(), Some("Expire"));
    assert_eq!(ev.reporting_component.as_deref(), Some("ephctrl"));
    assert_eq!(ev.reporting_instance.as_deref(), Some("ephctrl-0"));
    assert!(ev.event_time.is_some(), "eventTime carried over");

    // The same object, by name, through the core API; another object's events stay out.
    let by_name = core.get(&ev.name_any()).await.expect("get by name");
    assert_eq!(by_name.message, ev.message);
    let other = core
        .list(&ListParams::default().fields("involvedObject.name=db"))
        .await
        .unwrap();
    assert!(other.items.is_empty());
}

async fn core_events_are_served_as_events_k8s_io(c: Server) {
    let cm = with_config_map(&c, "web").await;
    let core: Api<CoreEvent> = Api::default_namespaced(c.client());
    let written: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "web.1"},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "web", "namespace": "default", "uid": cm.uid()},
        "reason": "Updated", "message": "data changed", "type": "Warning",
        "source": {"component": "kubectl"},
        "firstTimestamp": "2025-01-01T00:00:00Z", "lastTimestamp": "2025-01-01T00:01:00Z",
        "count": 3
    }))
    .unwrap();
    core.create(&PostParams::default(), &written).await.unwrap();

    let new: Api<NewEvent> = Api::default_namespaced(c.client());
    let found = new
        .list(&ListParams::default().fields(&format!(
            "regarding.name=web,regarding.kind=ConfigMap,regarding.uid={},reason=Updated,type=Warning",
            cm.uid().unwrap()
        )))
        .await
        .expect("events.k8s.io events listed");
    assert_eq!(found.items.len(), 1, "{found:?}");
    let ev = &found.items[0];
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("web")
    );
    assert_eq!(ev.note.as_deref(), Some("data changed"));
    assert_eq!(ev.deprecated_count, Some(3));
    assert_eq!(
        ev.deprecated_source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("kubectl")
    );
    assert!(ev.deprecated_first_timestamp.is_some() && ev.deprecated_last_timestamp.is_some());
    let raw_list = raw(
        &c,
        "GET",
        // A real cluster has events of its own in `default` (its nodes').
        "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=reason%3DUpdated",
        "application/json",
        b"",
    )
    .await
    .json();
    assert_eq!(raw_list["kind"], "EventList");
    assert_eq!(raw_list["apiVersion"], "events.k8s.io/v1");
    let item = &raw_list["items"][0];
    // As the real server writes lists: the items carry no apiVersion or kind of their own.
    assert!(item.get("apiVersion").is_none() && item.get("kind").is_none());
    assert_eq!(item["note"], "data changed");
    assert!(
        item.get("message").is_none() && item.get("involvedObject").is_none(),
        "only events.k8s.io field names: {item}"
    );

    // Selectors use each API's own names; the other API's names are refused like the real server.
    let refused = status_of(
        new.list(&ListParams::default().fields("involvedObject.name=web"))
            .await,
    );
    assert_eq!(
        (refused.code, refused.message.as_str()),
        (400, "field label not supported: involvedObject.name")
    );
    let refused = status_of(
        core.list(&ListParams::default().fields("regarding.name=web"))
            .await,
    );
    assert_eq!(refused.code, 400);
    let by_reporter = core
        .list(&ListParams::default().fields("source=kubectl"))
        .await
        .unwrap();
    assert_eq!(by_reporter.items.len(), 1);

    // One object: deleting it through one API removes it from the other.
    new.delete("web.1", &DeleteParams::default()).await.unwrap();
    assert!(core.get_opt("web.1").await.unwrap().is_none());
}

async fn watches_on_both_apis_see_recorder_events_and_their_series(c: Server) {
    let cm = with_config_map(&c, "web").await;
    let core: Api<CoreEvent> = Api::default_namespaced(c.client());
    let new: Api<NewEvent> = Api::default_namespaced(c.client());
    let rv = core.list(&ListParams::default()).await.unwrap().metadata;
    let rv = rv.resource_version.expect("list resourceVersion");
    let mut core_watch = core
        .watch(&WatchParams::default().fields(&describe_selector(&cm)), &rv)
        .await
        .unwrap()
        .boxed();
    let mut new_watch = new
        .watch(
            &WatchParams::default().fields(&format!("regarding.name={}", cm.name_any())),
            &rv,
        )
        .await
        .unwrap()
        .boxed();

    let rec = recorder(&c);
    let reference = cm.object_ref(&());
    rec.publish(&expiring_event(), &reference).await.unwrap();
    let (kind, ev) = next_change(&mut core_watch).await;
    assert_eq!(kind, "ADDED");
    assert_eq!(ev.message.as_deref(), Some("env expires in 5m"));
    let (kind, ev) = next_change(&mut new_watch).await;
    assert_eq!(kind, "ADDED");
    assert_eq!(ev.note.as_deref(), Some("env expires in 5m"));
    assert_eq!(ev.reporting_controller.as_deref(), Some("ephctrl"));

    // A repeat becomes a series: the Recorder patches the event through events.k8s.io.
    rec.publish(&expiring_event(), &reference).await.unwrap();
    let (kind, ev) = next_change(&mut core_watch).await;
    assert_eq!(kind, "MODIFIED");
    assert_eq!(ev.series.as_ref().and_then(|s| s.count), Some(2));
    let (kind, ev) = next_change(&mut new_watch).await;
    assert_eq!(kind, "MODIFIED");
    assert_eq!(ev.series.as_ref().map(|s| s.count), Some(2));

    core.delete(&ev.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(next_change(&mut core_watch).await.0, "DELETED");
    let (kind, ev) = next_change(&mut new_watch).await;
    assert_eq!(kind, "DELETED");
    assert_eq!(ev.note.as_deref(), Some("env expires in 5m"));
}

/// kubectl must be installed (as for tests/kubectl.rs): a missing one fails the test.
async fn kubectl_describe_shows_recorder_events(c: Server) {
    let cm = with_config_map(&c, "web").await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let db = cms
        .create(&PostParams::default(), &config_map("db", &[], &[]))
        .await
        .unwrap();
    let rec = recorder(&c);
    rec.publish(&expiring_event(), &cm.object_ref(&()))
        .await
        .unwrap();
    let about_db = Event {
        note: Some("about db".into()),
        ..expiring_event()
    };
    rec.publish(&about_db, &db.object_ref(&())).await.unwrap();
    let stdout = kubectl_stdout(&c, &["describe", "configmap", "web"]).await;
    let events: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .collect();
    assert!(
        events
            .iter()
            .any(|l| l.contains("Expiring") && l.contains("env expires in 5m")),
        "describe lists the event:\n{stdout}"
    );
    assert!(
        !stdout.contains("about db"),
        "another object's event is not listed:\n{stdout}"
    );
}
