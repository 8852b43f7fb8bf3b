//! A Deployment's status computed from its pods, with the conditions and reasons the real
//! deployment controller reports.
//!
//! Simplifications: a ready pod counts as available at once (`minReadySeconds` is not honoured),
//! and there is no `ProgressDeadlineExceeded` (simulated pods always become ready).

use serde_json::{Map, Value, json};

use super::deployment::{DeploymentSpec, Strategy};
use super::pods::{is_ready, is_terminating, template_hash_of};

/// Pod counts as `DeploymentStatus` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    replicas: u64,
    updated: u64,
    ready: u64,
    available: u64,
    unavailable: u64,
}

fn counts(deploy: &DeploymentSpec, pods: &[&Value]) -> Counts {
    let live: Vec<&&Value> = pods.iter().filter(|p| !is_terminating(p)).collect();
    let replicas = live.len() as u64;
    let updated = live
        .iter()
        .filter(|p| template_hash_of(p) == Some(deploy.template_hash.as_str()))
        .count() as u64;
    let ready = live.iter().filter(|p| is_ready(p)).count() as u64;
    let available = ready;
    // The real controller subtracts from the replicas its ReplicaSets want: at least `spec.replicas`.
    let wanted = replicas.max(u64::from(deploy.replicas));
    Counts {
        replicas,
        updated,
        ready,
        available,
        unavailable: wanted.saturating_sub(available),
    }
}

fn old_count(status: Option<&Value>, field: &str) -> u64 {
    status
        .and_then(|s| s.get(field))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// How many pods may be unavailable (`MaxUnavailable` of the real controller).
fn max_unavailable(deploy: &DeploymentSpec) -> u64 {
    match deploy.strategy {
        Strategy::RollingUpdate {
            max_unavailable, ..
        } if deploy.replicas > 0 => u64::from(max_unavailable),
        _ => 0,
    }
}

struct Condition<'a> {
    kind: &'a str,
    is_true: bool,
    reason: &'a str,
    message: String,
}

/// Sets a condition like the real `SetDeploymentCondition`: an unchanged condition stays as it
/// is; a changed one keeps its transition time if its status did not flip, and moves to the end.
fn set_condition(conditions: &mut Vec<Value>, new: Condition, now: &str, refresh: bool) {
    let status = if new.is_true { "True" } else { "False" };
    let position = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some(new.kind));
    let previous = position.map(|i| conditions[i].clone());
    if let Some(p) = &previous {
        let same = p.get("status").and_then(Value::as_str) == Some(status)
            && p.get("reason").and_then(Value::as_str) == Some(new.reason)
            && p.get("message").and_then(Value::as_str) == Some(new.message.as_str());
        if same && !refresh {
            return;
        }
    }
    let transition = previous
        .as_ref()
        .filter(|p| p.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|p| p.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    if let Some(i) = position {
        conditions.remove(i);
    }
    conditions.push(json!({
        "type": new.kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
        "reason": new.reason,
        "message": new.message,
    }));
}

/// The status `deploy` should have given the pods it controls. `current` is the Deployment's
/// present status (for condition times and to tell progress); `now` is RFC 3339.
pub fn deployment_status(
    deploy: &DeploymentSpec,
    current: Option<&Value>,
    pods: &[&Value],
    now: &str,
) -> Value {
    let c = counts(deploy, pods);
    let desired = u64::from(deploy.replicas);
    let rs_name = deploy.replica_set_name();
    let mut conditions: Vec<Value> = current
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();

    let available = c.available >= desired.saturating_sub(max_unavailable(deploy));
    set_condition(
        &mut conditions,
        if available {
            Condition {
                kind: "Available",
                is_true: true,
                reason: "MinimumReplicasAvailable",
                message: "Deployment has minimum availability.".into(),
            }
        } else {
            Condition {
                kind: "Available",
                is_true: false,
                reason: "MinimumReplicasUnavailable",
                message: "Deployment does not have minimum availability.".into(),
            }
        },
        now,
        false,
    );

    let complete = c.updated == desired && c.replicas == desired && c.available == desired;
    let quoted = format!("\"{rs_name}\"");
    let names_this_template = conditions.iter().any(|cond| {
        cond.get("type").and_then(Value::as_str) == Some("Progressing")
            && cond
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| m.contains(&quoted))
    });
    let old_pods_before =
        old_count(current, "replicas").saturating_sub(old_count(current, "updatedReplicas"));
    let progressed = c.updated > old_count(current, "updatedReplicas")
        || c.ready > old_count(current, "readyReplicas")
        || c.available > old_count(current, "availableReplicas")
        || c.replicas - c.updated < old_pods_before;
    let progressing = if complete {
        Some((
            Condition {
                kind: "Progressing",
                is_true: true,
                reason: "NewReplicaSetAvailable",
                message: format!("ReplicaSet {quoted} has successfully progressed."),
            },
            false,
        ))
    } else if !names_this_template {
        Some((
            Condition {
                kind: "Progressing",
                is_true: true,
                reason: "NewReplicaSetCreated",
                message: format!("Created new replica set {quoted}"),
            },
            false,
        ))
    } else if progressed {
        Some((
            Condition {
                kind: "Progressing",
                is_true: true,
                reason: "ReplicaSetUpdated",
                message: format!("ReplicaSet {quoted} is progressing."),
            },
            true,
        ))
    } else {
        None
    };
    if let Some((condition, refresh)) = progressing {
        set_condition(&mut conditions, condition, now, refresh);
    }

    // Zero counts are omitted, as the real API serialises them.
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(deploy.generation));
    for (field, value) in [
        ("replicas", c.replicas),
        ("updatedReplicas", c.updated),
        ("readyReplicas", c.ready),
        ("availableReplicas", c.available),
        ("unavailableReplicas", c.unavailable),
    ] {
        if value > 0 {
            status.insert(field.into(), json!(value));
        }
    }
    if let Some(collisions) = current.and_then(|s| s.get("collisionCount")) {
        status.insert("collisionCount".into(), collisions.clone());
    }
    status.insert("conditions".into(), Value::Array(conditions));
    Value::Object(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::pods::POD_TEMPLATE_HASH_LABEL;

    const T0: &str = "2025-01-01T00:00:00Z";
    const T1: &str = "2025-01-01T00:00:05Z";
    const T2: &str = "2025-01-01T00:00:10Z";

    fn deployment(replicas: u32, image: &str) -> DeploymentSpec {
        DeploymentSpec::parse(&json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d", "generation": 2},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
        }))
        .unwrap()
    }

    fn pod(hash: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": "p", "labels": {POD_TEMPLATE_HASH_LABEL: hash}},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
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
    fn a_new_deployment_without_ready_pods_is_unavailable_and_progressing() {
        let d = deployment(1, "v1");
        let pending = pod(&d.template_hash, false);
        let status = deployment_status(&d, Some(&json!({})), &[&pending], T0);
        assert_eq!(status["observedGeneration"], 2);
        assert_eq!(status["replicas"], 1);
        assert_eq!(status["updatedReplicas"], 1);
        assert!(status.get("readyReplicas").is_none());
        assert_eq!(status["unavailableReplicas"], 1);
        assert_eq!(cond(&status, "Available")["status"], "False");
        assert_eq!(
            cond(&status, "Available")["reason"],
            "MinimumReplicasUnavailable"
        );
        assert_eq!(
            cond(&status, "Progressing")["reason"],
            "NewReplicaSetCreated"
        );
        assert_eq!(
            cond(&status, "Progressing")["message"],
            format!("Created new replica set \"web-{}\"", d.template_hash)
        );
    }

    #[test]
    fn ready_pods_make_it_available_and_complete() {
        let d = deployment(1, "v1");
        let pending = pod(&d.template_hash, false);
        let first = deployment_status(&d, Some(&json!({})), &[&pending], T0);
        let ready = pod(&d.template_hash, true);
        let done = deployment_status(&d, Some(&first), &[&ready], T1);
        assert_eq!(done["readyReplicas"], 1);
        assert_eq!(done["availableReplicas"], 1);
        assert!(done.get("unavailableReplicas").is_none());
        let available = cond(&done, "Available");
        assert_eq!(available["status"], "True");
        assert_eq!(available["reason"], "MinimumReplicasAvailable");
        assert_eq!(available["lastTransitionTime"], T1);
        let progressing = cond(&done, "Progressing");
        assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            progressing["message"],
            format!(
                "ReplicaSet \"web-{}\" has successfully progressed.",
                d.template_hash
            )
        );
        // It never stopped progressing, so the transition time is the first one.
        assert_eq!(progressing["lastTransitionTime"], T0);
        assert_eq!(progressing["lastUpdateTime"], T1);
        // Recomputing with nothing changed is a no-op.
        assert_eq!(deployment_status(&d, Some(&done), &[&ready], T2), done);
    }

    #[test]
    fn a_template_change_reports_progress_on_the_new_replica_set() {
        let v1 = deployment(1, "v1");
        let old = pod(&v1.template_hash, true);
        let settled = deployment_status(&v1, None, &[&old], T0);
        let v2 = deployment(1, "v2");
        let new = pod(&v2.template_hash, false);
        let rolling = deployment_status(&v2, Some(&settled), &[&old, &new], T1);
        assert_eq!(rolling["replicas"], 2);
        assert_eq!(rolling["updatedReplicas"], 1);
        assert_eq!(cond(&rolling, "Available")["status"], "True");
        assert_eq!(
            cond(&rolling, "Progressing")["reason"],
            "NewReplicaSetCreated"
        );
        let new_ready = pod(&v2.template_hash, true);
        let progressed = deployment_status(&v2, Some(&rolling), &[&old, &new_ready], T2);
        assert_eq!(
            cond(&progressed, "Progressing")["reason"],
            "ReplicaSetUpdated"
        );
        assert_eq!(
            cond(&progressed, "Progressing")["message"],
            format!("ReplicaSet \"web-{}\" is progressing.", v2.template_hash)
        );
        let done = deployment_status(&v2, Some(&progressed), &[&new_ready], T2);
        assert_eq!(
            cond(&done, "Progressing")["reason"],
            "NewReplicaSetAvailable"
        );
    }

    #[test]
    fn scaled_to_zero_is_available_with_counts_omitted() {
        let d = deployment(0, "v1");
        let status = deployment_status(&d, None, &[], T0);
        assert_eq!(
            status
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.ends_with("eplicas"))
                .count(),
            0
        );
        assert_eq!(cond(&status, "Available")["status"], "True");
        assert_eq!(
            cond(&status, "Progressing")["reason"],
            "NewReplicaSetAvailable"
        );
    }

    #[test]
    fn terminating_pods_do_not_count() {
        let d = deployment(1, "v1");
        let mut leaving = pod(&d.template_hash, true);
        leaving["metadata"]["deletionTimestamp"] = json!(T0);
        let status = deployment_status(&d, None, &[&leaving], T0);
        assert!(status.get("replicas").is_none());
        assert_eq!(status["unavailableReplicas"], 1);
    }
}
