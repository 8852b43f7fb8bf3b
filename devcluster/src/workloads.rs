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
pub use logs::pod_log;
pub use pods::{PodStage, desired_pod, pod_status};
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
