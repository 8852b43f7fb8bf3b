//! Which pods to create and delete so a Deployment converges on its template and replica count.
//!
//! Simplification: the real controller goes through one ReplicaSet per template version; devcluster
//! does not serve ReplicaSets, so pods are owned by the Deployment directly and "old ReplicaSet"
//! means "pods whose `pod-template-hash` differs from the current template's". The arithmetic
//! (surge, unavailability, unhealthy pods first) is the real controller's.

use serde_json::Value;

use super::deployment::{DeploymentSpec, Strategy};
use super::pods::{is_ready, is_terminating, template_hash_of};

/// The changes one reconcile makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutPlan {
    /// How many pods of the current template to create.
    pub create: usize,
    /// Names of pods to delete.
    pub delete: Vec<String>,
}

#[derive(Clone, Copy)]
struct PodRef<'a> {
    name: &'a str,
    ready: bool,
}

fn pod_ref(pod: &Value) -> PodRef<'_> {
    PodRef {
        name: pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
        ready: is_ready(pod),
    }
}

/// Picks `count` pods to remove: unready ones first, then the newest names last-created-first
/// (names sort stably; the real controller also prefers unready and younger pods).
fn pick_for_deletion(pods: &[PodRef], count: usize) -> Vec<String> {
    let mut order: Vec<&PodRef> = pods.iter().collect();
    order.sort_by(|a, b| a.ready.cmp(&b.ready).then_with(|| b.name.cmp(a.name)));
    order
        .into_iter()
        .take(count)
        .map(|p| p.name.to_string())
        .collect()
}

/// Plans the next step for `deploy`, given every pod it controls (terminating ones included:
/// they still count against Recreate, which waits until the old pods are gone).
pub fn plan_rollout(deploy: &DeploymentSpec, pods: &[&Value]) -> RolloutPlan {
    let desired = deploy.replicas as usize;
    let live: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| !is_terminating(p))
        .collect();
    let (current, old): (Vec<&Value>, Vec<&Value>) = live
        .iter()
        .partition(|p| template_hash_of(p) == Some(deploy.template_hash.as_str()));
    let current: Vec<PodRef> = current.into_iter().map(pod_ref).collect();
    let old: Vec<PodRef> = old.into_iter().map(pod_ref).collect();
    let mut plan = RolloutPlan::default();

    if current.len() > desired {
        plan.delete = pick_for_deletion(&current, current.len() - desired);
    }

    match deploy.strategy {
        Strategy::Recreate => {
            if !old.is_empty() {
                plan.delete.extend(old.iter().map(|p| p.name.to_string()));
                return plan;
            }
            let old_terminating = pods.iter().any(|p| {
                is_terminating(p) && template_hash_of(p) != Some(deploy.template_hash.as_str())
            });
            if !old_terminating {
                plan.create = desired.saturating_sub(current.len());
            }
        }
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => {
            let (max_surge, max_unavailable) = (max_surge as usize, max_unavailable as usize);
            let all = current.len() + old.len();
            if current.len() < desired {
                let room = (desired + max_surge).saturating_sub(all);
                plan.create = (desired - current.len()).min(room);
            }
            // Scale old pods down only as far as availability allows.
            let min_available = desired.saturating_sub(max_unavailable);
            let current_unavailable = current.iter().filter(|p| !p.ready).count();
            let max_scaled_down = all.saturating_sub(min_available + current_unavailable);
            if max_scaled_down == 0 || old.is_empty() {
                return plan;
            }
            // Unready old pods go first: removing them costs no availability.
            let unhealthy: Vec<PodRef> = old.iter().filter(|p| !p.ready).copied().collect();
            let cleaned = unhealthy.len().min(max_scaled_down);
            plan.delete.extend(pick_for_deletion(&unhealthy, cleaned));
            let available = current.iter().chain(old.iter()).filter(|p| p.ready).count();
            let healthy_old: Vec<PodRef> = old.iter().filter(|p| p.ready).copied().collect();
            let scale_down = available
                .saturating_sub(min_available)
                .min(max_scaled_down - cleaned)
                .min(healthy_old.len());
            plan.delete
                .extend(pick_for_deletion(&healthy_old, scale_down));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::pods::POD_TEMPLATE_HASH_LABEL;
    use serde_json::json;

    fn deployment(replicas: u32, image: &str, strategy: Value) -> DeploymentSpec {
        DeploymentSpec::parse(&json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d"},
            "spec": {"replicas": replicas, "strategy": strategy, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            }},
        }))
        .unwrap()
    }

    fn pod(name: &str, hash: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "labels": {POD_TEMPLATE_HASH_LABEL: hash}},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
    }

    fn rolling() -> Value {
        json!({"type": "RollingUpdate"})
    }

    #[test]
    fn creates_missing_replicas_and_removes_extras() {
        let d = deployment(3, "v1", rolling());
        assert_eq!(plan_rollout(&d, &[]).create, 3);
        let h = d.template_hash.clone();
        let pods = [
            pod("a", &h, true),
            pod("b", &h, false),
            pod("c", &h, true),
            pod("d", &h, true),
        ];
        let refs: Vec<&Value> = pods.iter().collect();
        let one = deployment(1, "v1", rolling());
        let plan = plan_rollout(&one, &refs);
        assert_eq!(plan.create, 0);
        // The unready pod goes first.
        assert_eq!(plan.delete.len(), 3);
        assert_eq!(plan.delete[0], "b");
        let none = deployment(0, "v1", rolling());
        assert_eq!(plan_rollout(&none, &refs).delete.len(), 4);
    }

    #[test]
    fn rolling_update_replaces_a_ready_pod_only_once_the_new_one_is_ready() {
        let d = deployment(1, "v2", rolling());
        let old = pod("old", "oldhash", true);
        // Surge one new pod; keep the old one serving.
        let plan = plan_rollout(&d, &[&old]);
        assert_eq!(
            plan,
            RolloutPlan {
                create: 1,
                delete: vec![]
            }
        );
        let new_unready = pod("new", &d.template_hash, false);
        assert_eq!(
            plan_rollout(&d, &[&old, &new_unready]),
            RolloutPlan::default()
        );
        let new_ready = pod("new", &d.template_hash, true);
        assert_eq!(
            plan_rollout(&d, &[&old, &new_ready]),
            RolloutPlan {
                create: 0,
                delete: vec!["old".into()]
            }
        );
    }

    #[test]
    fn rolling_update_with_unavailability_allowed_deletes_old_pods_up_front() {
        let d = deployment(
            2,
            "v2",
            json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
        );
        let pods = [pod("o1", "x", true), pod("o2", "x", true)];
        let refs: Vec<&Value> = pods.iter().collect();
        let plan = plan_rollout(&d, &refs);
        assert_eq!(plan.create, 0);
        assert_eq!(plan.delete.len(), 1);
    }

    #[test]
    fn recreate_deletes_old_pods_and_waits_for_them_to_go() {
        let d = deployment(2, "v2", json!({"type": "Recreate"}));
        let pods = [pod("o1", "x", true), pod("o2", "x", false)];
        let refs: Vec<&Value> = pods.iter().collect();
        let plan = plan_rollout(&d, &refs);
        assert_eq!(plan.create, 0);
        assert_eq!(plan.delete.len(), 2);
        let mut terminating = pod("o1", "x", true);
        terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert_eq!(plan_rollout(&d, &[&terminating]), RolloutPlan::default());
        assert_eq!(plan_rollout(&d, &[]).create, 2);
    }
}
