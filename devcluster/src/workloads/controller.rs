//! The simulator loop: follows store changes, drives pods through their stages at the exact
//! moments they are due, and keeps Deployments' pods and statuses converged.
//!
//! Conflicts are not retried in place: a conflicting write means the object changed, and that
//! change arrives as an event which triggers a fresh sync from the current object.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::deployment::DeploymentSpec;
use super::deployment_status::deployment_status;
use super::pods::{NODE_NAME, PodStage, controller_uid, desired_pod, is_terminating, pod_status};
use super::rollout::plan_rollout;
use super::{DEPLOYMENT_CONTROLLER_MANAGER, KUBELET_MANAGER, WorkloadSettings};
use crate::error::ApiError;
use crate::resources::{ResourceType, lookup};
use crate::store::{DeleteOptions, EventKind, Store, StoreEvent, ids, meta};

/// The manager that binds directly created pods to the node.
const SCHEDULER_MANAGER: &str = "devcluster-scheduler";

type PodKey = (String, String);

struct Simulator {
    store: Store,
    settings: WorkloadSettings,
    pods: &'static ResourceType,
    deployments: &'static ResourceType,
    /// When the kubelet first saw each pod (by uid): the origin of its stage timeline.
    first_seen: HashMap<String, Instant>,
    /// Pods due for their next stage, by due time.
    timers: BTreeMap<Instant, BTreeSet<PodKey>>,
}

pub(super) async fn run(store: Store, settings: WorkloadSettings) {
    let (Some(pods), Some(deployments)) = (
        lookup("", "v1", "pods"),
        lookup("apps", "v1", "deployments"),
    ) else {
        tracing::error!(
            "the resource table serves no pods or deployments: workload simulation is off"
        );
        return;
    };
    // Subscribe before the initial sync so no change falls between the two.
    let mut changes = store.subscribe();
    let mut sim = Simulator {
        store,
        settings,
        pods,
        deployments,
        first_seen: HashMap::new(),
        timers: BTreeMap::new(),
    };
    sim.resync();
    loop {
        let next_due = sim.timers.keys().next().copied();
        tokio::select! {
            change = changes.recv() => match change {
                Ok(event) => sim.on_change(&event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "workload simulator fell behind the store; resyncing");
                    sim.resync();
                }
                Err(RecvError::Closed) => return,
            },
            () = sleep_until(next_due) => sim.fire_due_timers(),
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `obj` with its status replaced (objects in the store are always JSON objects; anything else
/// is returned unchanged rather than trusted).
fn with_status(obj: &Value, status: Value) -> Value {
    let mut updated = obj.clone();
    if let Some(map) = updated.as_object_mut() {
        map.insert("status".into(), status);
    }
    updated
}

fn key_of(obj: &Value) -> PodKey {
    (
        meta::namespace(obj).to_string(),
        meta::name(obj).to_string(),
    )
}

impl Simulator {
    fn is_pod(&self, rt: &ResourceType) -> bool {
        std::ptr::eq(rt, self.pods) || *rt == *self.pods
    }

    fn is_deployment(&self, rt: &ResourceType) -> bool {
        std::ptr::eq(rt, self.deployments) || *rt == *self.deployments
    }

    fn on_change(&mut self, event: &StoreEvent) {
        if self.is_pod(event.resource) {
            if event.kind == EventKind::Deleted {
                self.first_seen.remove(meta::uid(&event.object));
            } else {
                let (ns, name) = key_of(&event.object);
                self.sync_pod(&ns, &name);
            }
            if let Some(owner) = controller_uid(&event.object) {
                self.reconcile_uid(owner);
            }
        } else if self.is_deployment(event.resource) && event.kind != EventKind::Deleted {
            let (ns, name) = key_of(&event.object);
            self.reconcile(&ns, &name);
        }
    }

    /// Syncs everything from scratch: at start, and after missing changes.
    fn resync(&mut self) {
        let pods = match self.store.list(self.pods, None, None) {
            Ok((pods, _)) => pods,
            Err(e) => {
                tracing::error!(error = %e, "listing pods");
                Vec::new()
            }
        };
        let live: HashSet<&str> = pods.iter().map(meta::uid).collect();
        self.first_seen.retain(|uid, _| live.contains(uid.as_str()));
        for pod in &pods {
            let (ns, name) = key_of(pod);
            self.sync_pod(&ns, &name);
        }
        match self.store.list(self.deployments, None, None) {
            Ok((deployments, _)) => {
                for d in &deployments {
                    let (ns, name) = key_of(d);
                    self.reconcile(&ns, &name);
                }
            }
            Err(e) => tracing::error!(error = %e, "listing deployments"),
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        let later = self
            .timers
            .split_off(&(now + std::time::Duration::from_nanos(1)));
        let due = std::mem::replace(&mut self.timers, later);
        for (ns, name) in due.into_values().flatten() {
            self.sync_pod(&ns, &name);
            if let Ok(pod) = self.store.get_arc(self.pods, Some(&ns), &name)
                && let Some(owner) = controller_uid(&pod)
            {
                self.reconcile_uid(owner);
            }
        }
    }

    /// How long ago a pod reported by an earlier run (or before a resync) was created.
    fn age(pod: &Value) -> std::time::Duration {
        meta::str_at(pod, "/metadata/creationTimestamp")
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .and_then(|created| {
                let age = jiff::Timestamp::now().duration_since(created);
                std::time::Duration::try_from(age).ok()
            })
            .unwrap_or_default()
    }

    /// The kubelet's part: bind the pod to the node if nobody did, and report the stage it is due at.
    fn sync_pod(&mut self, ns: &str, name: &str) {
        let Ok(mut pod) = self.store.get_arc(self.pods, Some(ns), name) else {
            return;
        };
        let finished = matches!(
            meta::str_at(&pod, "/status/phase"),
            Some("Succeeded" | "Failed")
        );
        if is_terminating(&pod) || finished {
            return;
        }
        if meta::str_at(&pod, "/spec/nodeName").is_none_or(str::is_empty) {
            match self.bind(ns, name) {
                Ok(bound) => pod = Arc::new(bound),
                Err(e) => {
                    tracing::debug!(namespace = ns, pod = name, error = %e, "binding pod");
                    return;
                }
            }
        }
        let observed = PodStage::observed(&pod);
        let now = Instant::now();
        let first_seen = *self
            .first_seen
            .entry(meta::uid(&pod).to_string())
            .or_insert_with(|| match observed {
                // Never reported on: new, its timeline starts now.
                None => now,
                // Reported on before this simulator ran: continue from its creation.
                Some(_) => now.checked_sub(Self::age(&pod)).unwrap_or(now),
            });
        let delay = self.settings.pod_ready_delay;
        let due = PodStage::at(now.saturating_duration_since(first_seen), delay);
        let target = observed.map_or(due, |o| o.max(due));
        if observed != Some(target) {
            let status = pod_status(&pod, target, &ids::now_rfc3339());
            let updated = with_status(&pod, status);
            if let Err(e) = self
                .store
                .update_status(self.pods, Some(ns), updated, KUBELET_MANAGER)
            {
                // A conflict means a newer version whose event re-syncs the pod.
                tracing::debug!(namespace = ns, pod = name, error = %e, "writing pod status");
            }
        }
        // A delay too large for the clock (from a command line) just never fires.
        if let Some(due_at) = target
            .next_transition(delay)
            .and_then(|offset| first_seen.checked_add(offset))
        {
            self.timers
                .entry(due_at)
                .or_default()
                .insert((ns.to_string(), name.to_string()));
        }
    }

    /// The scheduler's part, for pods created without a node.
    fn bind(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.store.modify(
            self.pods,
            Some(ns),
            name,
            SCHEDULER_MANAGER,
            |pod| match pod.get_mut("spec").and_then(Value::as_object_mut) {
                Some(spec) => {
                    spec.insert("nodeName".into(), json!(NODE_NAME));
                    true
                }
                None => false,
            },
        )
    }

    fn reconcile_uid(&mut self, uid: &str) {
        if let Some((rt, owner)) = self.store.get_by_uid(uid)
            && self.is_deployment(rt)
        {
            let (ns, name) = key_of(&owner);
            self.reconcile(&ns, &name);
        }
    }

    /// The pods `uid` controls.
    fn controlled_pods(&self, uid: &str) -> Vec<Arc<Value>> {
        self.store
            .dependents_of(uid)
            .into_iter()
            .filter(|(rt, pod)| self.is_pod(rt) && controller_uid(pod) == Some(uid))
            .map(|(_, pod)| pod)
            .collect()
    }

    /// The deployment controller's part: converge the pods, then report the status.
    fn reconcile(&mut self, ns: &str, name: &str) {
        let Ok(deploy) = self.store.get_arc(self.deployments, Some(ns), name) else {
            return;
        };
        let spec = match DeploymentSpec::parse(&deploy) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::warn!(error = %e, "skipping deployment");
                return;
            }
        };
        let mut pods = self.controlled_pods(&spec.uid);
        // A deployment being deleted gets no new pods; its pods go with it.
        let paused = deploy.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
        if !is_terminating(&deploy) && !paused {
            let refs: Vec<&Value> = pods.iter().map(|p| p.as_ref()).collect();
            let plan = plan_rollout(&spec, &refs);
            for _ in 0..plan.create {
                if let Err(e) = self.store.create(
                    self.pods,
                    Some(ns),
                    desired_pod(&spec),
                    DEPLOYMENT_CONTROLLER_MANAGER,
                ) {
                    tracing::warn!(namespace = ns, deployment = name, error = %e, "creating pod");
                    break;
                }
            }
            for pod_name in &plan.delete {
                match self
                    .store
                    .delete(self.pods, Some(ns), pod_name, &DeleteOptions::default())
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => {
                        tracing::warn!(namespace = ns, pod = %pod_name, error = %e, "deleting pod")
                    }
                }
            }
            if plan.create > 0 || !plan.delete.is_empty() {
                pods = self.controlled_pods(&spec.uid);
            }
        }
        let refs: Vec<&Value> = pods.iter().map(|p| p.as_ref()).collect();
        let status = deployment_status(&spec, deploy.get("status"), &refs, &ids::now_rfc3339());
        if deploy.get("status") == Some(&status) {
            return;
        }
        let updated = with_status(&deploy, status);
        if let Err(e) = self.store.update_status(
            self.deployments,
            Some(ns),
            updated,
            DEPLOYMENT_CONTROLLER_MANAGER,
        ) {
            tracing::debug!(namespace = ns, deployment = name, error = %e, "writing deployment status");
        }
    }
}
