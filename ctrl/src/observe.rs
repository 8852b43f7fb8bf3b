//! Pure readings of observed objects: whose a child is, and how far the runner got.

use ephemerator_core::Phase;
use ephemerator_core::labels::{OWNER_NAME_LABEL, has_ephemerator_labels};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cached::RunnerDeployment;

/// The children of an env.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// The runner Deployment.
    Deployment = 0,
    /// Its Service.
    Service = 1,
    /// Its Ingress (Ingress mode).
    Ingress = 2,
}

impl ChildKind {
    /// Every kind, in the order they are written.
    pub const ALL: [ChildKind; 3] = [
        ChildKind::Deployment,
        ChildKind::Service,
        ChildKind::Ingress,
    ];

    /// The API kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::Deployment => "Deployment",
            ChildKind::Service => "Service",
            ChildKind::Ingress => "Ingress",
        }
    }
}

/// Who an object with a child's name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// It carries this env's labels and no other controller: the controller may change it.
    Ours,
    /// It carries this env's labels but is controlled by an earlier ConfigMap of the same name
    /// (deleted and re-created before garbage collection ran): it must go before ours is made.
    PreviousEnv,
    /// It lacks the ephemerator labels or belongs to another env: never touched.
    Foreign,
}

/// Reads who `meta` belongs to, for the env `env_name` whose ConfigMap has uid `config_map_uid`.
pub fn ownership(meta: &ObjectMeta, env_name: &str, config_map_uid: &str) -> Ownership {
    let labels = meta.labels.as_ref();
    let labelled_for_env = has_ephemerator_labels(labels)
        && labels
            .and_then(|l| l.get(OWNER_NAME_LABEL))
            .map(String::as_str)
            == Some(env_name);
    if !labelled_for_env {
        return Ownership::Foreign;
    }
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    match controller {
        None => Ownership::Ours,
        Some(owner) if owner.kind == "ConfigMap" && owner.name == env_name => {
            if owner.uid == config_map_uid {
                Ownership::Ours
            } else {
                Ownership::PreviousEnv
            }
        }
        Some(_) => Ownership::Foreign,
    }
}

/// The runner's phase and a message saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerState {
    /// Pending, Starting, Ready or Failed.
    pub phase: Phase,
    /// Human-readable detail.
    pub message: String,
}

impl RunnerState {
    /// A state with its message.
    pub fn new(phase: Phase, message: impl Into<String>) -> Self {
        RunnerState {
            phase,
            message: message.into(),
        }
    }
}

/// What an apply's answer can show that the plan it carried out was not made from: a write
/// by someone else that the cache had not brought yet.
pub trait AnswerNews: Sized {
    /// Whether this answer shows something the controller reads that `seen` (the cached
    /// object the plan was made from, `None` when there was none) did not.
    fn shows_news_since(&self, seen: Option<&Self>) -> bool;
}

impl AnswerNews for RunnerDeployment {
    /// The runner's status is written by the Deployment controller alone; everything else the
    /// controller reads of it, its forced apply sets. A Deployment not seen reads as one
    /// with no status yet, as a new one is.
    fn shows_news_since(&self, seen: Option<&Self>) -> bool {
        let status = |d: Option<&Self>| d.and_then(|d| d.status.clone()).unwrap_or_default();
        status(Some(self)) != status(seen)
    }
}

impl<K> AnswerNews for crate::cached::ChildMeta<K> {
    /// Of Services and Ingresses the controller reads only labels and owners, which its
    /// forced apply sets.
    fn shows_news_since(&self, _seen: Option<&Self>) -> bool {
        false
    }
}

/// How far the runner Deployment got. `expected_hash` is the template hash of the current
/// spec: a Deployment still showing another one has not rolled out the change yet.
pub fn runner_state(deployment: Option<&RunnerDeployment>, expected_hash: &str) -> RunnerState {
    let Some(deployment) = deployment else {
        return RunnerState::new(Phase::Pending, "waiting for the runner to be created");
    };
    let status = deployment.status.as_ref();
    for condition in status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        let failed = (condition.type_ == "Progressing"
            && condition.status == "False"
            && condition.reason.as_deref() == Some("ProgressDeadlineExceeded"))
            || (condition.type_ == "ReplicaFailure" && condition.status == "True");
        if failed {
            let detail = condition
                .message
                .as_deref()
                .or(condition.reason.as_deref())
                .unwrap_or("no detail");
            return RunnerState::new(Phase::Failed, format!("runner failing: {detail}"));
        }
    }
    if deployment.template_hash.as_deref() != Some(expected_hash) {
        return RunnerState::new(Phase::Starting, "rolling out the runner for the new spec");
    }
    // Status written for an older generation says nothing about the current template.
    let generation = deployment.metadata.generation.unwrap_or(0);
    if status
        .and_then(|s| s.observed_generation)
        .is_some_and(|observed| observed < generation)
    {
        return RunnerState::new(Phase::Starting, "rolling out the runner");
    }
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated_ok = status
        .and_then(|s| s.updated_replicas)
        .is_none_or(|updated| updated >= 1);
    if ready >= 1 && updated_ok {
        RunnerState::new(Phase::Ready, "runner ready")
    } else {
        RunnerState::new(Phase::Starting, "runner starting")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{TEMPLATE_HASH_ANNOTATION, owner_reference};
    use ephemerator_core::labels::child_labels;
    use k8s_openapi::api::apps::v1::{
        Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
    };
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use std::collections::BTreeMap;

    fn meta(labels: Option<BTreeMap<String, String>>, owner_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("nicks".into()),
            labels,
            owner_references: owner_uid.map(|uid| vec![owner_reference("nicks", uid)]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn ownership_needs_our_labels_and_our_config_map() {
        let ours = Some(child_labels("nicks"));
        assert_eq!(
            ownership(&meta(ours.clone(), Some("u1")), "nicks", "u1"),
            Ownership::Ours
        );
        assert_eq!(
            ownership(&meta(ours.clone(), None), "nicks", "u1"),
            Ownership::Ours
        );
        assert_eq!(
            ownership(&meta(ours, Some("old")), "nicks", "u1"),
            Ownership::PreviousEnv
        );
        assert_eq!(
            ownership(&meta(None, None), "nicks", "u1"),
            Ownership::Foreign
        );
        assert_eq!(
            ownership(&meta(Some(child_labels("other")), None), "nicks", "u1"),
            Ownership::Foreign
        );
        let mut hand_made = meta(Some(child_labels("nicks")), None);
        hand_made.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "x".into(),
                uid: "x".into(),
                controller: Some(true),
                block_owner_deletion: None,
            },
        ]);
        assert_eq!(ownership(&hand_made, "nicks", "u1"), Ownership::Foreign);
    }

    fn deployment(hash: &str, status: DeploymentStatus) -> RunnerDeployment {
        RunnerDeployment::from(Deployment {
            metadata: ObjectMeta {
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        annotations: Some(BTreeMap::from([(
                            TEMPLATE_HASH_ANNOTATION.to_string(),
                            hash.to_string(),
                        )])),
                        ..ObjectMeta::default()
                    }),
                    spec: None,
                },
                ..DeploymentSpec::default()
            }),
            status: Some(status),
        })
    }

    #[test]
    fn phases_follow_the_deployment() {
        assert_eq!(runner_state(None, "h").phase, Phase::Pending);
        let starting = deployment("h", DeploymentStatus::default());
        assert_eq!(runner_state(Some(&starting), "h").phase, Phase::Starting);
        let ready = deployment(
            "h",
            DeploymentStatus {
                ready_replicas: Some(1),
                observed_generation: Some(2),
                ..DeploymentStatus::default()
            },
        );
        assert_eq!(runner_state(Some(&ready), "h").phase, Phase::Ready);
        // The old runner is still ready, but the spec changed: not Ready until rolled out.
        assert_eq!(runner_state(Some(&ready), "new").phase, Phase::Starting);
        let stale = deployment(
            "h",
            DeploymentStatus {
                ready_replicas: Some(1),
                observed_generation: Some(1),
                ..DeploymentStatus::default()
            },
        );
        assert_eq!(runner_state(Some(&stale), "h").phase, Phase::Starting);
    }

    #[test]
    fn a_stuck_rollout_is_failed_with_its_reason() {
        let stuck = deployment(
            "h",
            DeploymentStatus {
                conditions: Some(vec![DeploymentCondition {
                    type_: "Progressing".into(),
                    status: "False".into(),
                    reason: Some("ProgressDeadlineExceeded".into()),
                    message: Some("ReplicaSet \"nicks-1\" has timed out progressing.".into()),
                    ..DeploymentCondition::default()
                }]),
                ..DeploymentStatus::default()
            },
        );
        let state = runner_state(Some(&stuck), "h");
        assert_eq!(state.phase, Phase::Failed);
        assert!(
            state.message.contains("timed out progressing"),
            "{}",
            state.message
        );
    }
}
