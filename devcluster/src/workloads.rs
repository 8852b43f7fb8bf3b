//! Workload simulation: what the kubelet and the deployment controller would do, so that
//! Deployments get Pods and both get the statuses a real cluster reports.
//!
//! - Deployments get Pods of their current template (`replicas` of them), rolled out with the
//!   Deployment's strategy when the template changes, and a status with the real conditions.
//!   Simplification: devcluster serves no ReplicaSets, so the Pods are owned by the Deployment
//!   directly (still named `<deployment>-<template-hash>-<5 chars>`, labelled `pod-template-hash`).
//! - Every Pod (owned or not) goes Pending -> Running -> Ready on the one simulated node
//!   `devcluster`: running after half of [`WorkloadSettings::pod_ready_delay`], ready after all of it.
//! - [`pod_log`] is the output of a simulated container, for `pods/log`.
//!
//! The pure parts (pod, status and rollout computations) are in submodules; [`spawn`] wires them
//! to the store.

mod controller;
pub mod deployment;
pub mod deployment_status;
pub mod logs;
pub mod pods;
pub mod rollout;
pub mod template_hash;

use std::time::Duration;

pub use deployment::{DeploymentSpec, Strategy};
pub use deployment_status::deployment_status;
pub use logs::{ContainerOutput, pod_log};
pub use pods::{PodStage, desired_pod, pod_status, restart_container};
pub use rollout::{RolloutPlan, plan_rollout};
pub use template_hash::pod_template_hash;

/// The field manager of pod status writes.
pub const KUBELET_MANAGER: &str = "devcluster-kubelet";
/// The field manager of pod creations/deletions and Deployment status writes.
pub const DEPLOYMENT_CONTROLLER_MANAGER: &str = "devcluster-deployment-controller";

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct WorkloadSettings {
    /// How long after the kubelet first sees a pod it reports it ready (running from half of it).
    pub pod_ready_delay: Duration,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        WorkloadSettings {
            pod_ready_delay: Duration::from_secs(1),
        }
    }
}

/// An object the simulator cannot act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    #[error("deployment {namespace}/{name} is malformed: {problem}")]
    MalformedDeployment {
        namespace: String,
        name: String,
        problem: String,
    },
}

/// Runs the simulator on `store` until the task is aborted: it follows every change through
/// [`crate::store::Store::subscribe`] and wakes exactly when a pod is due to change stage.
pub fn spawn(
    store: crate::store::Store,
    settings: WorkloadSettings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(controller::run(store, settings))
}

#[cfg(test)]
mod robustness_tests {
    //! Whatever the store holds, the simulator's computations return (never panic).
    use super::{
        DeploymentSpec, PodStage, deployment_status, desired_pod, plan_rollout, pod_log,
        pod_status, restart_container,
    };
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z%0-9:. -]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A plausible value or garbage, so both the happy and the malformed paths get exercised.
    fn maybe(valid: Value) -> impl Strategy<Value = Value> {
        prop_oneof![3 => Just(valid), 1 => any_json()]
    }

    prop_compose! {
        fn deployment_like()(
            replicas in maybe(json!(2)),
            strategy in maybe(json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 1}})),
            containers in maybe(json!([{"name": "a", "image": "x", "env": [{"name": "E"}], "args": ["1"]}])),
            init in maybe(json!([{"name": "i", "image": "y"}])),
            labels in maybe(json!({"app": "a"})),
            status in maybe(json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]})),
            generation in maybe(json!(4)),
        ) -> Value {
            json!({
                "metadata": {"name": "d", "namespace": "n", "uid": "u", "generation": generation},
                "spec": {
                    "replicas": replicas,
                    "strategy": strategy,
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": containers, "initContainers": init}},
                },
                "status": status,
            })
        }
    }

    proptest! {
        #[test]
        fn computations_never_panic(deploy in deployment_like(), pod_status_json in any_json(), container in proptest::option::of("[a-z]{0,2}"), previous: bool) {
            if let Ok(spec) = DeploymentSpec::parse(&deploy) {
                let mut pod = desired_pod(&spec);
                pod["metadata"]["name"] = json!("p");
                pod["status"] = pod_status_json;
                for stage in [PodStage::Pending, PodStage::Running, PodStage::Ready] {
                    let _ = pod_status(&pod, stage, "2025-01-01T00:00:00Z");
                }
                let _ = pod_log(&pod, container.as_deref(), previous);
                let _ = restart_container(&pod, container.as_deref().unwrap_or(""), "t");
                let _ = PodStage::observed(&pod);
                let _ = plan_rollout(&spec, &[&pod, &deploy]);
                let _ = deployment_status(&spec, deploy.get("status"), &[&pod, &deploy], "2025-01-01T00:00:00Z");
            }
            // Garbage in place of a pod, too.
            let _ = pod_status(&deploy, PodStage::Ready, "t");
            let _ = pod_log(&deploy, container.as_deref(), previous);
        }
    }
}
