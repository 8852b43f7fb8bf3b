//! Pods: the pod a Deployment wants, and the status a kubelet would report for a pod over time.
//!
//! There is no container runtime: a pod is "scheduled" on the one simulated node `devcluster`,
//! its containers "start" halfway through the configured ready delay and report ready at its end.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::deployment::DeploymentSpec;
use super::template_hash::fnv1a32;

/// The one simulated node every pod runs on.
pub const NODE_NAME: &str = "devcluster";
/// The node's address (`status.hostIP`).
pub const HOST_IP: &str = "127.0.0.1";
/// The label naming the template version a pod was made from.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The Pod a Deployment creates for its current template. It has `generateName`
/// `<deployment>-<template-hash>-` (cut to 58 characters like the real controller), so the API
/// server names it `<deployment>-<template-hash>-<5 chars>`.
pub fn desired_pod(deploy: &DeploymentSpec) -> Value {
    let template_meta = deploy.template.get("metadata");
    let mut labels = template_meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(POD_TEMPLATE_HASH_LABEL.into(), json!(deploy.template_hash));
    let mut metadata = json!({
        "generateName": generate_name_prefix(&deploy.replica_set_name()),
        "namespace": deploy.namespace,
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deploy.name,
            "uid": deploy.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if let Some(annotations) = template_meta
        .and_then(|m| m.get("annotations"))
        .filter(|a| a.as_object().is_some_and(|a| !a.is_empty()))
    {
        metadata["annotations"] = annotations.clone();
    }
    let mut spec = deploy
        .template
        .get("spec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("nodeName".into(), json!(NODE_NAME));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// `<base>-`, cut so five generated characters still fit in 63.
fn generate_name_prefix(base: &str) -> String {
    let mut prefix: String = format!("{base}-");
    if prefix.len() > 58 {
        // Names are ASCII (validated DNS subdomains), so byte and char positions agree.
        prefix.truncate(58);
    }
    prefix
}

/// How far a simulated pod has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodStage {
    /// Scheduled, containers being created.
    Pending,
    /// Containers running, not yet ready.
    Running,
    /// Containers running and ready.
    Ready,
}

impl PodStage {
    /// The stage `elapsed` after the kubelet first saw the pod: running from half the ready
    /// delay, ready from the full delay.
    pub fn at(elapsed: Duration, ready_delay: Duration) -> PodStage {
        if elapsed >= ready_delay {
            PodStage::Ready
        } else if elapsed >= ready_delay / 2 {
            PodStage::Running
        } else {
            PodStage::Pending
        }
    }

    /// When (since first seen) the pod reaches its next stage; None once ready.
    pub fn next_transition(self, ready_delay: Duration) -> Option<Duration> {
        match self {
            PodStage::Pending => Some(ready_delay / 2),
            PodStage::Running => Some(ready_delay),
            PodStage::Ready => None,
        }
    }

    /// The stage a pod's status reports; None for a pod the kubelet has not reported on yet
    /// or one it does not drive (Succeeded/Failed, set by someone else).
    pub fn observed(pod: &Value) -> Option<PodStage> {
        let status = pod.get("status")?;
        // The kubelet's first report sets startTime; the API server's defaulted `Pending` does not.
        status.get("startTime")?;
        match status.get("phase").and_then(Value::as_str)? {
            "Pending" => Some(PodStage::Pending),
            "Running" if condition_is_true(pod, "Ready") => Some(PodStage::Ready),
            "Running" => Some(PodStage::Running),
            _ => None,
        }
    }
}

/// Whether the pod has condition `kind` with status True.
pub fn condition_is_true(pod: &Value, kind: &str) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some(kind)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// Whether the pod is ready (its Ready condition is True).
pub fn is_ready(pod: &Value) -> bool {
    condition_is_true(pod, "Ready")
}

/// Whether the pod is being deleted.
pub fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// The uid of the pod's controller (the ownerReference with `controller: true`), if any.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// The pod's template hash label, if any.
pub fn template_hash_of(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .and_then(Value::as_str)
}

/// The names of the containers listed under `spec.<key>` (`containers`, `initContainers`, ...).
pub fn container_names<'a>(pod: &'a Value, key: &str) -> Vec<&'a str> {
    pod.get("spec")
        .and_then(|s| s.get(key))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect()
}

/// A seed identifying the pod: its uid, or its namespace/name before it has one.
fn pod_seed(pod: &Value) -> String {
    match pod.pointer("/metadata/uid").and_then(Value::as_str) {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => format!(
            "{}/{}",
            pod.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            pod.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
    }
}

/// A stable pod address in 10.244.0.0/16 (collisions are possible and harmless: nothing routes to it).
pub fn pod_ip(pod: &Value) -> String {
    let h = fnv1a32(pod_seed(pod).as_bytes());
    format!("10.244.{}.{}", (h >> 8) & 0xff, (h % 254) + 1)
}

/// 64 hex digits derived from `seed`, shaped like a sha256 digest.
fn fake_digest(seed: &str) -> String {
    (0..8u8)
        .map(|i| format!("{:08x}", fnv1a32(format!("{seed}#{i}").as_bytes())))
        .collect()
}

/// The QoS class the API server assigns from the containers' resources (quantities are
/// compared as written: `1` and `1000m` count as different).
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let resource = |c: &Value, kind: &str, name: &str| -> Option<Value> {
        c.pointer(&format!("/resources/{kind}/{name}")).cloned()
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        for name in ["cpu", "memory"] {
            let request = resource(c, "requests", name);
            let limit = resource(c, "limits", name);
            any |= request.is_some() || limit.is_some();
            // A request defaults to its limit; guaranteed needs limits set and equal to requests.
            match (&request, &limit) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A condition entry; keeps the old transition time when the status did not change.
fn condition(
    old: &Value,
    kind: &str,
    is_true: bool,
    reason_message: Option<(&str, String)>,
    now: &str,
) -> Value {
    let status = if is_true { "True" } else { "False" };
    let previous = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind));
    let transition = match previous {
        Some(p) if p.get("status").and_then(Value::as_str) == Some(status) => p
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| json!(now)),
        _ => json!(now),
    };
    let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition});
    if let Some((reason, message)) = reason_message {
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
    c
}

/// The old status entry of container `name` under `status.<key>`.
fn old_container_status<'a>(pod: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    pod.get("status")
        .and_then(|s| s.get(key))
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

/// The time a container started, kept from the old status when it was already running.
fn started_at(pod: &Value, key: &str, name: &str, now: &str) -> Value {
    old_container_status(pod, key, name)
        .and_then(|c| {
            c.pointer("/state/running/startedAt")
                .or_else(|| c.pointer("/state/terminated/startedAt"))
        })
        .cloned()
        .unwrap_or_else(|| json!(now))
}

fn container_status(
    pod: &Value,
    container: &Value,
    state: Value,
    ready: bool,
    started: bool,
) -> Value {
    let name = container.get("name").and_then(Value::as_str).unwrap_or("");
    let image = container.get("image").and_then(Value::as_str).unwrap_or("");
    let seed = format!("{}/{name}", pod_seed(pod));
    // Restarts (see `restart_container`) are kept across the kubelet's reports.
    let old = old_container_status(pod, "containerStatuses", name)
        .or_else(|| old_container_status(pod, "initContainerStatuses", name));
    let restarts = old
        .and_then(|c| c.get("restartCount"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let last_state = old
        .and_then(|c| c.get("lastState"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut status = json!({
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "started": started,
        "state": state,
        "lastState": last_state,
    });
    if started || state.get("terminated").is_some() {
        status["containerID"] = json!(format!("containerd://{}", fake_digest(&seed)));
        status["imageID"] = json!(format!("{image}@sha256:{}", fake_digest(image)));
    }
    status
}

/// `pod` after its container `name` crashed and was restarted by the kubelet: its
/// `restartCount` one higher and its `lastState` the terminated run. None when the pod has no
/// running container of that name.
pub fn restart_container(pod: &Value, name: &str, now: &str) -> Option<Value> {
    let mut pod = pod.clone();
    let statuses = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)?;
    let status = statuses
        .iter_mut()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))?;
    let started = status.pointer("/state/running/startedAt")?.clone();
    let restarts = status
        .get("restartCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    status["restartCount"] = json!(restarts + 1);
    status["lastState"] = json!({"terminated": {
        "exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": now,
    }});
    status["state"] = json!({"running": {"startedAt": now}});
    Some(pod)
}

/// The status the kubelet reports for `pod` at `stage`. Transition and start times are kept from
/// the pod's current status where nothing changed, so the same stage always yields the same
/// status (writing it again is then a no-op). `now` is RFC 3339.
pub fn pod_status(pod: &Value, stage: PodStage, now: &str) -> Value {
    let running = stage >= PodStage::Running;
    let ready = stage == PodStage::Ready;
    let spec_containers = |key: &str| -> Vec<Value> {
        pod.get("spec")
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let containers = spec_containers("containers");
    let init_containers = spec_containers("initContainers");

    // Init containers run to completion before the app containers start.
    let init_statuses: Vec<Value> = init_containers
        .iter()
        .map(|c| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            let state = if running {
                json!({"terminated": {
                    "exitCode": 0, "reason": "Completed",
                    "startedAt": started_at(pod, "initContainerStatuses", name, now),
                    "finishedAt": old_container_status(pod, "initContainerStatuses", name)
                        .and_then(|s| s.pointer("/state/terminated/finishedAt"))
                        .cloned()
                        .unwrap_or_else(|| json!(now)),
                }})
            } else {
                json!({"waiting": {"reason": "PodInitializing"}})
            };
            container_status(pod, c, state, running, false)
        })
        .collect();
    let waiting_reason = if init_containers.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            let state = if running {
                json!({"running": {"startedAt": started_at(pod, "containerStatuses", name, now)}})
            } else {
                json!({"waiting": {"reason": waiting_reason}})
            };
            container_status(pod, c, state, ready, running)
        })
        .collect();

    let names = |list: &[Value]| -> String {
        list.iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let unready = (!ready).then(|| {
        (
            "ContainersNotReady",
            format!("containers with unready status: [{}]", names(&containers)),
        )
    });
    let initialized = running || init_containers.is_empty();
    let uninitialized = (!initialized).then(|| {
        (
            "ContainersNotInitialized",
            format!(
                "containers with incomplete status: [{}]",
                names(&init_containers)
            ),
        )
    });
    let conditions = vec![
        condition(pod, "PodReadyToStartContainers", running, None, now),
        condition(pod, "Initialized", initialized, uninitialized, now),
        condition(pod, "Ready", ready, unready.clone(), now),
        condition(pod, "ContainersReady", ready, unready, now),
        condition(pod, "PodScheduled", true, None, now),
    ];

    let old_status = pod.get("status");
    let mut status = Map::new();
    status.insert(
        "phase".into(),
        json!(if running { "Running" } else { "Pending" }),
    );
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("hostIP".into(), json!(HOST_IP));
    status.insert("hostIPs".into(), json!([{"ip": HOST_IP}]));
    if running {
        let ip = pod_ip(pod);
        status.insert("podIP".into(), json!(ip));
        status.insert("podIPs".into(), json!([{"ip": ip}]));
    }
    status.insert(
        "startTime".into(),
        old_status
            .and_then(|s| s.get("startTime"))
            .cloned()
            .unwrap_or_else(|| json!(now)),
    );
    if !init_statuses.is_empty() {
        status.insert("initContainerStatuses".into(), Value::Array(init_statuses));
    }
    status.insert("containerStatuses".into(), Value::Array(statuses));
    let qos = old_status
        .and_then(|s| s.get("qosClass"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| qos_class(pod));
    status.insert("qosClass".into(), json!(qos));
    Value::Object(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::deployment::DeploymentSpec;

    const T0: &str = "2025-01-01T00:00:00Z";
    const T1: &str = "2025-01-01T00:00:05Z";
    const T2: &str = "2025-01-01T00:00:10Z";

    fn deployment() -> DeploymentSpec {
        DeploymentSpec::parse(&json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "d-uid", "generation": 1},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            }},
        }))
        .unwrap()
    }

    fn pod_with(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "team", "uid": "p-uid"}, "spec": spec, "status": {"phase": "Pending", "qosClass": "BestEffort"}})
    }

    fn cond<'a>(status: &'a Value, kind: &str) -> &'a Value {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap()
    }

    #[test]
    fn desired_pod_is_owned_labelled_and_scheduled() {
        let d = deployment();
        let pod = desired_pod(&d);
        assert_eq!(
            pod["metadata"]["generateName"],
            format!("web-{}-", d.template_hash)
        );
        assert_eq!(pod["metadata"]["namespace"], "team");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(
            pod["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL],
            d.template_hash
        );
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Deployment");
        assert_eq!(owner["uid"], "d-uid");
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
        assert_eq!(pod["spec"]["nodeName"], NODE_NAME);
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.27");
        assert_eq!(controller_uid(&pod), Some("d-uid"));
        assert_eq!(template_hash_of(&pod), Some(d.template_hash.as_str()));
    }

    #[test]
    fn long_names_leave_room_for_the_generated_suffix() {
        let prefix = generate_name_prefix(&"a".repeat(70));
        assert_eq!(prefix.len(), 58);
        assert_eq!(generate_name_prefix("web-abc"), "web-abc-");
    }

    #[test]
    fn stages_follow_the_ready_delay() {
        let delay = Duration::from_secs(2);
        assert_eq!(PodStage::at(Duration::ZERO, delay), PodStage::Pending);
        assert_eq!(
            PodStage::at(Duration::from_millis(999), delay),
            PodStage::Pending
        );
        assert_eq!(
            PodStage::at(Duration::from_secs(1), delay),
            PodStage::Running
        );
        assert_eq!(PodStage::at(delay, delay), PodStage::Ready);
        assert_eq!(
            PodStage::at(Duration::ZERO, Duration::ZERO),
            PodStage::Ready
        );
        assert_eq!(
            PodStage::Pending.next_transition(delay),
            Some(Duration::from_secs(1))
        );
        assert_eq!(PodStage::Running.next_transition(delay), Some(delay));
        assert_eq!(PodStage::Ready.next_transition(delay), None);
    }

    #[test]
    fn pending_pod_is_scheduled_but_not_running() {
        let pod = pod_with(
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}),
        );
        let status = pod_status(&pod, PodStage::Pending, T0);
        assert_eq!(status["phase"], "Pending");
        assert_eq!(status["startTime"], T0);
        assert!(status.get("podIP").is_none());
        assert_eq!(cond(&status, "PodScheduled")["status"], "True");
        assert_eq!(cond(&status, "Ready")["status"], "False");
        assert_eq!(cond(&status, "Ready")["reason"], "ContainersNotReady");
        assert_eq!(
            cond(&status, "Ready")["message"],
            "containers with unready status: [a b]"
        );
        assert_eq!(
            status["containerStatuses"][1]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(status["containerStatuses"][1]["started"], false);
    }

    #[test]
    fn pod_runs_then_becomes_ready_keeping_earlier_times() {
        let mut pod = pod_with(json!({"containers": [{"name": "web", "image": "nginx"}]}));
        pod["status"] = pod_status(&pod, PodStage::Pending, T0);
        assert_eq!(PodStage::observed(&pod), Some(PodStage::Pending));

        pod["status"] = pod_status(&pod, PodStage::Running, T1);
        assert_eq!(PodStage::observed(&pod), Some(PodStage::Running));
        let status = &pod["status"];
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["startTime"], T0);
        assert!(status["podIP"].as_str().unwrap().starts_with("10.244."));
        assert_eq!(status["podIPs"][0]["ip"], status["podIP"]);
        let web = &status["containerStatuses"][0];
        assert_eq!(web["state"]["running"]["startedAt"], T1);
        assert_eq!(web["ready"], false);
        assert!(
            web["containerID"]
                .as_str()
                .unwrap()
                .starts_with("containerd://")
        );
        assert_eq!(
            cond(status, "PodReadyToStartContainers")["lastTransitionTime"],
            T1
        );
        assert_eq!(cond(status, "PodScheduled")["lastTransitionTime"], T0);
        assert!(!is_ready(&pod));

        pod["status"] = pod_status(&pod, PodStage::Ready, T2);
        assert!(is_ready(&pod));
        assert_eq!(PodStage::observed(&pod), Some(PodStage::Ready));
        let status = &pod["status"];
        assert_eq!(cond(status, "Ready")["lastTransitionTime"], T2);
        assert!(cond(status, "Ready").get("reason").is_none());
        assert_eq!(status["containerStatuses"][0]["ready"], true);
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            T1
        );

        // Recomputing the same stage later changes nothing.
        assert_eq!(
            pod_status(&pod, PodStage::Ready, "2030-01-01T00:00:00Z"),
            pod["status"]
        );
    }

    #[test]
    fn init_containers_complete_before_the_app_starts() {
        let mut pod = pod_with(json!({
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "web", "image": "nginx"}],
        }));
        pod["status"] = pod_status(&pod, PodStage::Pending, T0);
        assert_eq!(cond(&pod["status"], "Initialized")["status"], "False");
        assert_eq!(
            cond(&pod["status"], "Initialized")["message"],
            "containers with incomplete status: [setup]"
        );
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let running = pod_status(&pod, PodStage::Running, T1);
        assert_eq!(cond(&running, "Initialized")["status"], "True");
        assert_eq!(
            running["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(
            running["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
    }

    #[test]
    fn a_pod_without_a_kubelet_report_has_no_observed_stage() {
        let pod = pod_with(json!({"containers": [{"name": "web", "image": "nginx"}]}));
        assert_eq!(PodStage::observed(&pod), None);
        let mut done = pod.clone();
        done["status"] = json!({"phase": "Succeeded", "startTime": T0});
        assert_eq!(PodStage::observed(&done), None);
    }

    #[test]
    fn qos_class_follows_resources() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})
            )),
            "Burstable"
        );
        // A status without a class gets one computed.
        let mut p = pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}));
        p["status"] = json!({});
        assert_eq!(
            pod_status(&p, PodStage::Pending, T0)["qosClass"],
            "Guaranteed"
        );
    }
}
