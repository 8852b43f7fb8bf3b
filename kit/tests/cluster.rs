//! The shared client and watch setup (core::cluster) against a hung server and against a
//! devcluster that restarts.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use devcluster::DevCluster;
use ephemerator_kit::cluster::{ApiHealth, bounded_client, reflected_watch};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;

/// Generous: the machine is shared by several builds.
const DEADLINE: Duration = Duration::from_secs(60);

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn client_for(url: &str, limit: Duration, health: &ApiHealth) -> kube::Client {
    let mut config = kube::Config::new(url.parse().unwrap());
    config.default_namespace = "default".into();
    bounded_client(config, limit, health.clone()).unwrap()
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn a_server_that_never_answers_cannot_hang_a_request() {
    // Accepts connections and reads requests, but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let health = ApiHealth::default();
    let client = client_for(
        &format!("http://{addr}"),
        Duration::from_millis(300),
        &health,
    );
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let started = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(DEADLINE, api.list(&ListParams::default()))
        .await
        .expect("the request ends by itself");
    let error = outcome.expect_err("no answer is an error");
    assert!(
        error.to_string().contains("sent no answer within 300ms"),
        "{error}"
    );
    assert!(started.elapsed() < DEADLINE);
    assert!(!health.is_answering(), "a hung server is not answering");
    silent.abort();
}

#[tokio::test]
async fn requests_and_health_recover_when_the_server_does() {
    let cluster = DevCluster::start().await.unwrap();
    let health = ApiHealth::default();
    let client = client_for(cluster.url(), Duration::from_millis(500), &health);
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.list(&ListParams::default()).await.unwrap();
    assert!(health.is_answering());
    // Slower than the limit: times out, and counts as not answering.
    cluster.set_latency(Duration::from_secs(2));
    assert!(api.list(&ListParams::default()).await.is_err());
    assert!(!health.is_answering());
    cluster.set_latency(Duration::ZERO);
    api.list(&ListParams::default()).await.unwrap();
    assert!(health.is_answering());
}

#[tokio::test]
async fn the_watch_follows_the_server_through_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let cluster = DevCluster::builder()
        .data_dir(data.path())
        .start()
        .await
        .unwrap();
    let addr = cluster.addr();
    let health = ApiHealth::default();
    let client = client_for(cluster.url(), Duration::from_secs(5), &health);
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &config_map("before"))
        .await
        .unwrap();

    let (store, writer) = reflector::store::<ConfigMap>();
    let events = reflected_watch(api.clone(), watcher::Config::default(), writer, |_| {});
    let watching = tokio::spawn(events.for_each(|_| async {}));
    let has = |name: &'static str| {
        let store = store.clone();
        move || {
            let present = store.get(&ObjectRef::new(name).within("default")).is_some();
            async move { present }
        }
    };
    wait_for("the first object in the store", has("before")).await;

    // Down, a change made meanwhile through another server of the same data, then back on
    // the same address with a history that starts after what the watch saw (410 Gone).
    cluster.stop().await;
    let other = DevCluster::builder()
        .data_dir(data.path())
        .start()
        .await
        .unwrap();
    let other_api: Api<ConfigMap> = Api::default_namespaced(other.client());
    other_api
        .create(&PostParams::default(), &config_map("meanwhile"))
        .await
        .unwrap();
    other_api
        .delete("before", &Default::default())
        .await
        .unwrap();
    other.stop().await;
    let restarted = DevCluster::builder()
        .data_dir(data.path())
        .listen(addr)
        .start()
        .await
        .unwrap();

    wait_for("the change made while down", has("meanwhile")).await;
    wait_for("the deletion made while down", || {
        let gone = store
            .get(&ObjectRef::new("before").within("default"))
            .is_none();
        async move { gone }
    })
    .await;
    api.create(&PostParams::default(), &config_map("after"))
        .await
        .unwrap();
    wait_for("an object created after the restart", has("after")).await;
    assert!(health.is_answering());
    watching.abort();
    drop(restarted);
}

/// The expiration contract: a writer that read an older version never overwrites a value
/// someone wrote since (the patch carries the resourceVersion it read).
#[tokio::test]
async fn an_expiration_write_from_a_stale_read_is_refused() {
    use ephemerator_core::env::{EXPIRATION_KEY, expiration_patch};
    use kube::ResourceExt;
    use kube::api::{Patch, PatchParams};

    let cluster = DevCluster::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    let read = api
        .create(&PostParams::default(), &config_map("nicks"))
        .await
        .unwrap();
    let stale_version = read.resource_version().unwrap();
    // An extend lands first, built from the same read.
    let extended: jiff::Timestamp = "2030-01-01T11:00:00Z".parse().unwrap();
    api.patch(
        "nicks",
        &PatchParams::default(),
        &Patch::Merge(expiration_patch(&stale_version, extended)),
    )
    .await
    .unwrap();
    // The fill-in from the stale read is refused, and the extend stands.
    let filled_in: jiff::Timestamp = "2030-01-01T10:15:00Z".parse().unwrap();
    let refused = api
        .patch(
            "nicks",
            &PatchParams::default(),
            &Patch::Merge(expiration_patch(&stale_version, filled_in)),
        )
        .await
        .expect_err("a stale write is refused");
    assert!(
        matches!(&refused, kube::Error::Api(status) if status.code == 409),
        "{refused}"
    );
    let now = api.get("nicks").await.unwrap();
    assert_eq!(
        now.data.unwrap()[EXPIRATION_KEY],
        extended.to_string(),
        "the extend was kept"
    );
}

#[tokio::test]
async fn an_event_published_once_by_two_replicas_is_recorded_once() {
    use ephemerator_kit::events::{EventSink, EventType, Reporter};
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event;

    let cluster = DevCluster::start().await.unwrap();
    let reporter = Reporter {
        controller: "ephemerator.tilt.dev/test",
        action: "Test",
        server: "test",
    };
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("janes".into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    // Two replicas, each seeing the link's first use; and one other link.
    let mut writers = Vec::new();
    for _ in 0..2 {
        let (sink, writer) = EventSink::new(cluster.client(), "default", reporter);
        writers.push(tokio::spawn(writer));
        sink.publish_once(
            regarding.clone(),
            EventType::Normal,
            "ShareLinkUsed",
            "first use".into(),
            "share-link-used/uid-1/review01",
        );
        sink.publish_once(
            regarding.clone(),
            EventType::Normal,
            "ShareLinkUsed",
            "first use".into(),
            "share-link-used/uid-1/other",
        );
    }
    let api: Api<Event> = Api::namespaced(cluster.client(), "default");
    wait_for("both links' Events", || async {
        api.list(&ListParams::default()).await.unwrap().items.len() >= 2
    })
    .await;
    // One object per name: whatever the writers still have queued cannot add a third.
    let mut names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|event| event.metadata.name)
        .collect();
    names.sort();
    let mut expected = vec![
        ephemerator_kit::events::once_name("janes", "share-link-used/uid-1/review01"),
        ephemerator_kit::events::once_name("janes", "share-link-used/uid-1/other"),
    ];
    expected.sort();
    assert_eq!(names, expected);
    for writer in writers {
        writer.abort();
    }
}
