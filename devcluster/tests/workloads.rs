//! The workload simulator seen through kube-rs: Deployments get Pods that go Pending -> Running
//! -> Ready, statuses follow, template changes roll out, deletion cascades, and pods have logs.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::time::Duration;

use devcluster::DevCluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::{Value, json};

/// How long any awaited condition may take before the test fails (pods take a while to roll).
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` until it yields a value, failing the test after [`DEADLINE`].
async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    common::wait_for_within(DEADLINE, what, check).await
}

/// Starts watching `api` and returns once the watch has listed what exists, so no later change is
/// missed; the task feeds every event to `step` until it returns a result.
async fn watch_until<K, T>(
    api: Api<K>,
    config: watcher::Config,
    mut step: impl FnMut(Event<K>) -> Option<T> + Send + 'static,
) -> tokio::task::JoinHandle<T>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    T: Send + 'static,
{
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut started = Some(started_tx);
        let mut stream = watcher::watcher(api, config).boxed();
        while let Some(event) = stream.try_next().await.expect("watch") {
            if matches!(event, Event::InitDone)
                && let Some(tx) = started.take()
            {
                let _ = tx.send(());
            }
            if let Some(result) = step(event) {
                return result;
            }
        }
        panic!("the watch ended");
    });
    tokio::time::timeout(DEADLINE, started_rx)
        .await
        .expect("the watch starts in time")
        .expect("the watch task runs");
    task
}

/// Awaits a [`watch_until`] task.
async fn finished<T>(what: &str, task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(DEADLINE, task)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("the watch task does not fail")
}

async fn cluster(pod_ready_delay: Duration) -> (DevCluster, Client) {
    let cluster = DevCluster::builder()
        .pod_ready_delay(pod_ready_delay)
        .start()
        .await
        .expect("devcluster starts");
    let client = cluster.client();
    (cluster, client)
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "main",
                    "image": image,
                    "args": ["serve", "--port=8080"],
                    "env": [{"name": "API_TOKEN", "value": "s3cret-value"}],
                }]},
            },
        },
    }))
    .expect("a valid Deployment")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn deployment_condition<'a>(d: &'a Deployment, kind: &str) -> Option<(&'a str, &'a str)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.as_str(), c.reason.as_deref().unwrap_or("")))
}

async fn pods_of(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods")
        .items
}

/// The deployment once it reports `ready` ready replicas for its latest generation.
async fn wait_until_ready(deployments: &Api<Deployment>, name: &str, ready: i32) -> Deployment {
    wait_for(
        &format!("deployment {name} with {ready} ready replicas"),
        || async {
            let d = deployments.get(name).await.expect("get deployment");
            let status = d.status.as_ref()?;
            let done = status.observed_generation == d.metadata.generation
                && status.ready_replicas.unwrap_or(0) == ready
                && status.updated_replicas.unwrap_or(0) == ready
                && status.replicas.unwrap_or(0) == ready
                && deployment_condition(&d, "Progressing")
                    == Some(("True", "NewReplicaSetAvailable"));
            done.then_some(d)
        },
    )
    .await
}

/// A cluster whose pods get ready after `pod_ready_delay`, with `deployment(name, replicas,
/// image)` created and all its replicas ready.
async fn cluster_with_ready_deployment(
    pod_ready_delay: Duration,
    name: &str,
    replicas: i32,
    image: &str,
) -> (DevCluster, Api<Pod>, Api<Deployment>) {
    let (cluster, client) = cluster(pod_ready_delay).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    deployments
        .create(&PostParams::default(), &deployment(name, replicas, image))
        .await
        .expect("create");
    wait_until_ready(&deployments, name, replicas).await;
    (cluster, pods, deployments)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_pod_goes_pending_then_running_then_ready_after_the_delay() {
    let delay = Duration::from_millis(1200);
    let (_cluster, client) = cluster(delay).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());

    // Watch before creating, so every state the pod and the deployment pass through is seen.
    let mut seen = Vec::new();
    let pod_states = watch_until(
        pods.clone(),
        watcher::Config::default().labels("app=web"),
        move |e| {
            let Event::Apply(p) = e else { return None };
            seen.push((phase(&p).to_string(), is_ready(&p)));
            is_ready(&p).then(|| (std::mem::take(&mut seen), tokio::time::Instant::now()))
        },
    )
    .await;
    let mut availability = Vec::new();
    let deployment_states = watch_until(
        deployments.clone(),
        watcher::Config::default().fields("metadata.name=web"),
        move |e| {
            let Event::Apply(d) = e else { return None };
            let available =
                deployment_condition(&d, "Available").map(|(s, r)| (s.to_string(), r.to_string()));
            let done = available.as_ref().is_some_and(|(s, _)| s == "True");
            availability.push(available);
            done.then(|| std::mem::take(&mut availability))
        },
    )
    .await;

    let created_at = tokio::time::Instant::now();
    deployments
        .create(&PostParams::default(), &deployment("web", 1, "nginx:1.27"))
        .await
        .expect("create deployment");

    let (states, became_ready) = finished("the pod to become ready", pod_states).await;
    let phases: Vec<&str> = states.iter().map(|(p, _)| p.as_str()).collect();
    let pending = phases.iter().position(|p| *p == "Pending");
    let running = phases.iter().position(|p| *p == "Running");
    assert!(
        matches!((pending, running), (Some(p), Some(r)) if p < r),
        "Pending, then Running, then Ready: {phases:?}"
    );
    // The watch stopped at the first ready state; every earlier state was not ready.
    let pods_now = pods_of(&pods, "web").await;
    assert_eq!(pods_now.len(), 1);
    let pod = &pods_now[0];
    assert!(is_ready(pod) && phase(pod) == "Running");
    assert!(
        became_ready.duration_since(created_at) >= delay,
        "ready after {:?}, before the configured {delay:?}",
        became_ready.duration_since(created_at)
    );

    // What kubectl users see on the pod.
    let name = pod.metadata.name.as_deref().unwrap();
    let hash = pod.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    let suffix = name
        .strip_prefix(&format!("web-{hash}-"))
        .unwrap_or_else(|| panic!("{name} is web-<hash>-<suffix>"));
    assert_eq!(suffix.len(), 5, "{name}");
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Deployment", "web")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("devcluster"));
    let status = pod.status.as_ref().unwrap();
    assert!(
        status
            .pod_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.244."))
    );
    assert!(status.start_time.is_some());
    let container = &status.container_statuses.as_ref().unwrap()[0];
    assert!(container.ready && container.started == Some(true));
    assert!(container.state.as_ref().unwrap().running.is_some());
    let mut kinds: Vec<&str> = status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ContainersReady",
            "Initialized",
            "PodReadyToStartContainers",
            "PodScheduled",
            "Ready"
        ]
    );

    // The deployment's status followed: unavailable first, then available with one ready replica.
    let d = wait_until_ready(&deployments, "web", 1).await;
    let status = d.status.as_ref().unwrap();
    assert_eq!(status.available_replicas, Some(1));
    assert_eq!(status.unavailable_replicas, None);
    assert_eq!(
        deployment_condition(&d, "Available"),
        Some(("True", "MinimumReplicasAvailable"))
    );
    let availability = finished("the deployment to become available", deployment_states).await;
    assert!(
        availability
            .iter()
            .flatten()
            .any(|(s, r)| s == "False" && r == "MinimumReplicasUnavailable"),
        "unavailable before available: {availability:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_template_rolls_out_a_new_pod_before_removing_the_old() {
    let (_cluster, pods, deployments) =
        cluster_with_ready_deployment(Duration::from_millis(300), "api", 1, "api:v1").await;
    let old = pods_of(&pods, "api").await.remove(0);
    let old_name = old.metadata.name.clone().unwrap();

    // Record, at the moment the old pod goes, whether a new pod was already ready.
    let mut new_ready = false;
    let old_pod = old_name.clone();
    let watch = watch_until(
        pods.clone(),
        watcher::Config::default().labels("app=api"),
        move |e| {
            match e {
                Event::Apply(p) if p.metadata.name.as_deref() != Some(&old_pod) => {
                    new_ready |= is_ready(&p)
                }
                Event::Delete(p) if p.metadata.name.as_deref() == Some(&old_pod) => {
                    return Some(new_ready);
                }
                _ => {}
            }
            None
        },
    )
    .await;

    let change = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "api:v2"}]}}}});
    deployments
        .patch("api", &PatchParams::default(), &Patch::Strategic(&change))
        .await
        .expect("patch template");

    let d = wait_until_ready(&deployments, "api", 1).await;
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(2));
    let now = pods_of(&pods, "api").await;
    assert_eq!(now.len(), 1, "one pod after the rollout");
    let new = &now[0];
    assert_ne!(new.metadata.name, old.metadata.name);
    let image = new.spec.as_ref().unwrap().containers[0].image.as_deref();
    assert_eq!(image, Some("api:v2"));
    let new_hash = &new.metadata.labels.as_ref().unwrap()["pod-template-hash"];
    assert_ne!(
        new_hash,
        &old.metadata.labels.as_ref().unwrap()["pod-template-hash"]
    );
    let progressing = d.status.as_ref().unwrap().conditions.as_ref().unwrap();
    let message = progressing
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap()
        .message
        .clone();
    assert_eq!(
        message.as_deref(),
        Some(format!("ReplicaSet \"api-{new_hash}\" has successfully progressed.").as_str())
    );

    let new_was_ready = finished("the old pod to be deleted", watch).await;
    assert!(
        new_was_ready,
        "the old pod was deleted before a new one was ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_scale_up_and_down_to_zero() {
    let (_cluster, pods, deployments) =
        cluster_with_ready_deployment(Duration::from_millis(100), "workers", 3, "worker:1").await;
    assert_eq!(pods_of(&pods, "workers").await.len(), 3);

    let scale = json!({"spec": {"replicas": 0}});
    deployments
        .patch("workers", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .expect("scale to zero");
    wait_for("no pods left", || async {
        pods_of(&pods, "workers").await.is_empty().then_some(())
    })
    .await;
    let d = wait_for("status of zero replicas", || async {
        let d = deployments.get("workers").await.expect("get");
        (d.status.as_ref()?.observed_generation == Some(2) && d.status.as_ref()?.replicas.is_none())
            .then_some(d)
    })
    .await;
    let status = d.status.as_ref().unwrap();
    assert_eq!(
        (status.ready_replicas, status.available_replicas),
        (None, None)
    );
    assert_eq!(
        deployment_condition(&d, "Available"),
        Some(("True", "MinimumReplicasAvailable"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_removes_its_pods() {
    let (_cluster, pods, deployments) =
        cluster_with_ready_deployment(Duration::from_millis(100), "gone", 2, "x:1").await;
    deployments
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("the pods to be garbage collected", || async {
        pods_of(&pods, "gone").await.is_empty().then_some(())
    })
    .await;
    // And none come back.
    assert!(deployments.get_opt("gone").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_have_simulated_logs_without_env_values() {
    let (_cluster, pods, _) = cluster_with_ready_deployment(
        Duration::from_millis(100),
        "logged",
        1,
        "registry.example/app:7",
    )
    .await;
    let name = pods_of(&pods, "logged").await[0]
        .metadata
        .name
        .clone()
        .unwrap();

    let log = pods.logs(&name, &LogParams::default()).await.expect("logs");
    assert!(
        log.contains("container main started from image registry.example/app:7"),
        "{log}"
    );
    assert!(log.contains(r#"args: ["serve","--port=8080"]"#), "{log}");
    assert!(log.contains("API_TOKEN"), "{log}");
    assert!(
        !log.contains("s3cret-value"),
        "env values must not appear: {log}"
    );
    assert!(log.contains("devcluster: ready"), "{log}");

    let params = LogParams {
        container: Some("nope".into()),
        ..LogParams::default()
    };
    assert_bad_request(
        pods.logs(&name, &params).await,
        format!("container nope is not valid for pod {name}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_programs_write_a_containers_output() {
    let (cluster, pods, _) = cluster_with_ready_deployment(
        Duration::from_millis(100),
        "printing",
        1,
        "registry.example/app:7",
    )
    .await;
    let pod = pods_of(&pods, "printing").await.remove(0);
    let (name, uid) = (pod.metadata.name.unwrap(), pod.metadata.uid.unwrap());
    cluster.write_container_output(&uid, "main", "Tilt started on http://localhost:10350/\n");
    cluster
        .container_output()
        .append(&uid, "main", "Initial Build\n");
    let log = pods.logs(&name, &LogParams::default()).await.expect("logs");
    let kubelet = log
        .find("container main started")
        .expect("the kubelet's lines");
    let written = log.find("Tilt started on").expect("the written lines");
    assert!(kubelet < written, "{log}");
    assert!(
        log.ends_with("Tilt started on http://localhost:10350/\nInitial Build\n"),
        "{log}"
    );
    // Another container of the same name in another pod has none of it.
    cluster.write_container_output("another-uid", "main", "elsewhere\n");
    assert!(
        !pods
            .logs(&name, &LogParams::default())
            .await
            .unwrap()
            .contains("elsewhere")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_container_counts_its_restarts_and_keeps_its_previous_logs() {
    let (cluster, pods, _) = cluster_with_ready_deployment(
        Duration::from_millis(100),
        "crashy",
        1,
        "registry.example/app:7",
    )
    .await;
    let name = pods_of(&pods, "crashy").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let previous = LogParams {
        previous: true,
        ..LogParams::default()
    };
    // No restart yet: no previous run, as a real node answers.
    assert_bad_request(
        pods.logs(&name, &previous).await,
        format!("previous terminated container \"main\" in pod \"{name}\" not found"),
    );
    cluster.restart_container("default", &name, "main").unwrap();
    let pod = pods.get(&name).await.unwrap();
    let status = &pod.status.unwrap().container_statuses.unwrap()[0];
    assert_eq!(status.restart_count, 1);
    let terminated = status
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(terminated.exit_code, 1);
    let log = pods.logs(&name, &previous).await.expect("previous logs");
    assert!(
        log.contains("container main run 1 exited with code 1"),
        "{log}"
    );
    // The kubelet's later reports keep the count.
    wait_for("the pod to stay ready with its restart counted", || async {
        let pod = pods.get(&name).await.ok()?;
        let status = pod.status?.container_statuses?.first()?.clone();
        (status.restart_count == 1 && status.ready).then_some(())
    })
    .await;
}

/// Asserts that `result` is the API's 400 Bad Request with exactly `message`.
fn assert_bad_request<T: std::fmt::Debug>(result: kube::Result<T>, message: impl AsRef<str>) {
    let status = common::status_of(result);
    assert_eq!(status.code, 400);
    assert_eq!(status.message, message.as_ref());
}

fn bare_pod(name: &str, containers: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers},
    }))
    .expect("a valid Pod")
}

/// A cluster whose pods get ready after `pod_ready_delay`, with the bare pod `name` of one
/// container `a` created.
async fn cluster_with_one_container_pod(
    pod_ready_delay: Duration,
    name: &str,
) -> (DevCluster, Api<Pod>) {
    let (cluster, client) = cluster(pod_ready_delay).await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(
        &PostParams::default(),
        &bare_pod(name, json!([{"name": "a", "image": "a:1"}])),
    )
    .await
    .expect("create pod");
    (cluster, pods)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_without_an_owner_is_scheduled_and_becomes_ready() {
    let (_cluster, pods) = cluster_with_one_container_pod(Duration::from_millis(200), "solo").await;
    let pod = wait_for("the bare pod to be ready", || async {
        let p = pods.get("solo").await.expect("get");
        is_ready(&p).then_some(p)
    })
    .await;
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some("devcluster")
    );
    assert_eq!(phase(&pod), "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_containers_not_started_or_not_named_are_refused_like_a_real_server() {
    // Pods never get past Pending within this test.
    let (_cluster, pods) = cluster_with_one_container_pod(Duration::from_secs(3600), "slow").await;
    wait_for("the kubelet to report the pod", || async {
        let p = pods.get("slow").await.expect("get");
        p.status.as_ref()?.start_time.as_ref().map(|_| ())
    })
    .await;
    assert_bad_request(
        pods.logs("slow", &LogParams::default()).await,
        "container \"a\" in pod \"slow\" is waiting to start: ContainerCreating",
    );

    let two = json!([{"name": "dind", "image": "docker:dind"}, {"name": "tilt-upper", "image": "tilt:1"}]);
    pods.create(&PostParams::default(), &bare_pod("pair", two))
        .await
        .expect("create");
    assert_bad_request(
        pods.logs("pair", &LogParams::default()).await,
        "a container name must be specified for pod pair, choose one of: [dind tilt-upper]",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_deployment_is_skipped_and_the_others_still_run() {
    let (cluster, client) = cluster(Duration::from_millis(100)).await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    // Written straight into the store: the API would not stop a bad strategy type or an
    // empty container list, and the simulator must not trip over either.
    let rt = devcluster::resources::lookup("apps", "v1", "deployments").unwrap();
    for (name, spec) in [
        (
            "odd-strategy",
            json!({"strategy": {"type": "Canary"}, "template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}),
        ),
        (
            "no-containers",
            json!({"template": {"spec": {"containers": []}}}),
        ),
        ("no-template", json!({"replicas": "three"})),
    ] {
        cluster
            .store()
            .create(rt, Some("default"), json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}), "test")
            .expect("store accepts the object");
    }
    deployments
        .create(&PostParams::default(), &deployment("fine", 1, "ok:1"))
        .await
        .expect("create");
    wait_until_ready(&deployments, "fine", 1).await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let all = pods.list(&ListParams::default()).await.expect("list").items;
    assert_eq!(all.len(), 1, "only the valid deployment has a pod");
}
