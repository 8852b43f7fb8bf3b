//! What the controller remembers about each env between reconciles, and the only code that
//! changes it. Losing it all (a restart) costs at most a repeated warning, one Tilt poll and
//! one no-op apply per child.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use ephemerator_core::{EnvStatus, Port};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::observe::ChildKind;

/// The memory of every env, by env name.
#[derive(Debug, Default)]
pub struct Memory {
    envs: Mutex<HashMap<String, EnvMemory>>,
}

/// What the controller remembers about one env. Read through [`Memory::of`]; changed only
/// through [`Memory`]'s methods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvMemory {
    /// The deadline a warning was sent for (an extension moves the deadline and re-arms it).
    warned_for: Option<Timestamp>,
    ports: PortMemory,
    /// Children as last applied, by [`ChildKind`].
    applied: [Option<AppliedChild>; 3],
    /// The Tilt token the runner was last given, with the uid of the env ConfigMap it was made
    /// for: reused while the Deployment is not in the cache yet, so a lagging cache never
    /// restarts a runner with a new token.
    runner_token: Option<(String, String)>,
    status_written: Option<StatusWrite>,
    failures: u32,
    /// The controller deletes it at its deadline (set before the delete is sent: its watch
    /// event may arrive before the delete's answer).
    expired: bool,
}

/// What Tilt said about an env's ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMemory {
    /// Ports last discovered from Tilt, for the runner [`PortMemory::for_runner`].
    pub discovered: Vec<Port>,
    /// The runner (template hash and Tilt token) the discovered ports belong to.
    pub for_runner: Option<String>,
    /// Whether Tilt still had pending resources at the last poll (or could not be asked).
    pub pending: bool,
    /// When Tilt was last asked.
    pub polled_at: Option<Timestamp>,
    /// What the env's status message adds about Tilt: what is not running yet, or why Tilt
    /// could not be asked; `None` when all is well.
    pub note: Option<String>,
}

/// A child as the controller last applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedChild {
    /// [`crate::desired::ChildrenInputs::digest`] of what it was built from.
    pub inputs: u64,
    /// `metadata.uid` of the object the apply returned.
    pub uid: String,
    /// Its `metadata.generation` (Deployments) or `metadata.resourceVersion` (others): a change
    /// means someone else touched the spec.
    pub spec_version: String,
    /// The `metadata.resourceVersion` whose watch event is the echo of the apply and needs no
    /// reconcile; empty when the apply's answer showed a write the plan was not made from.
    pub resource_version: String,
}

impl AppliedChild {
    /// The record of an apply of `kind` built from `inputs` that returned `meta`.
    ///
    /// `echo` says whether the answer shows nothing the plan had not seen. An apply that
    /// changes nothing answers with the version of the object's last write, whoever made it:
    /// with the cache behind, that can be the runner turning Ready. Its watch event is then
    /// news, not an echo, and must reconcile (once it was dropped, and the env stayed
    /// `Starting` with its runner ready).
    pub fn new(kind: ChildKind, inputs: u64, meta: &ObjectMeta, echo: bool) -> Self {
        AppliedChild {
            inputs,
            uid: meta.uid.clone().unwrap_or_default(),
            spec_version: spec_version(kind, meta).unwrap_or_default(),
            resource_version: if echo {
                meta.resource_version.clone().unwrap_or_default()
            } else {
                String::new()
            },
        }
    }
}

/// A status write of the controller on an env ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite {
    /// The ConfigMap's resourceVersions before the write (as cached, and after the
    /// controller's own expiration write, if any): a cache still showing one of them lags
    /// behind the write.
    pub from_versions: Vec<String>,
    /// The resourceVersion the write produced (its watch event is an echo).
    pub to_version: String,
    /// The status written, as it reads back.
    pub status: EnvStatus,
}

/// What changes when a child's spec changes: a Deployment's generation (its status writes
/// leave it alone), the resourceVersion of the others.
fn spec_version(kind: ChildKind, meta: &ObjectMeta) -> Option<String> {
    match kind {
        ChildKind::Deployment => meta.generation.map(|generation| generation.to_string()),
        ChildKind::Service | ChildKind::Ingress => meta.resource_version.clone(),
    }
}

impl EnvMemory {
    /// The deadline the owner was last warned about.
    pub fn warned_for(&self) -> Option<Timestamp> {
        self.warned_for
    }

    /// What Tilt last said about the ports.
    pub fn ports(&self) -> &PortMemory {
        &self.ports
    }

    /// The token last given to the runner of the env ConfigMap with uid `config_map_uid`.
    pub fn runner_token_for(&self, config_map_uid: &str) -> Option<&str> {
        self.runner_token
            .as_ref()
            .filter(|(uid, _)| uid == config_map_uid)
            .map(|(_, token)| token.as_str())
    }

    /// Whether the controller deleted the env at its deadline.
    pub fn was_expired(&self) -> bool {
        self.expired
    }

    /// The controller's last status write.
    pub fn status_written(&self) -> Option<&StatusWrite> {
        self.status_written.as_ref()
    }

    /// Whether the child `observed` is exactly what the controller last applied from inputs
    /// with digest `inputs`, untouched since (so applying again would change nothing).
    pub fn has_applied(&self, kind: ChildKind, inputs: u64, observed: Option<&ObjectMeta>) -> bool {
        let (Some(record), Some(observed)) = (&self.applied[kind as usize], observed) else {
            return false;
        };
        record.inputs == inputs
            && observed.uid.as_deref() == Some(record.uid.as_str())
            && spec_version(kind, observed).as_deref() == Some(record.spec_version.as_str())
    }
}

impl Memory {
    /// A copy of the memory of env `name` (empty for an env not seen yet).
    pub fn of(&self, name: &str) -> EnvMemory {
        self.lock().get(name).cloned().unwrap_or_default()
    }

    /// Whether a child event shows the very version the controller's last apply of that child
    /// returned: the echo of its own write, which needs no reconcile.
    pub fn is_own_apply(
        &self,
        name: &str,
        kind: ChildKind,
        resource_version: Option<&str>,
    ) -> bool {
        let Some(version) = resource_version else {
            return false;
        };
        self.lock().get(name).is_some_and(|env| {
            env.applied[kind as usize].as_ref().is_some_and(|applied| {
                !applied.resource_version.is_empty() && applied.resource_version == version
            })
        })
    }

    /// Whether a ConfigMap event shows the very version the controller's last status write
    /// returned.
    pub fn is_own_status_write(&self, name: &str, resource_version: Option<&str>) -> bool {
        let Some(version) = resource_version else {
            return false;
        };
        self.lock().get(name).is_some_and(|env| {
            env.status_written
                .as_ref()
                .is_some_and(|write| write.to_version == version)
        })
    }

    /// Records an apply of a child.
    pub fn applied(&self, name: &str, kind: ChildKind, record: AppliedChild) {
        self.change(name, |env| env.applied[kind as usize] = Some(record));
    }

    /// Forgets the apply of a child that was deleted.
    pub fn deleted(&self, name: &str, kind: ChildKind) {
        self.change(name, |env| env.applied[kind as usize] = None);
    }

    /// Records the token a runner is given.
    pub fn gave_token(&self, name: &str, config_map_uid: &str, token: &str) {
        self.change(name, |env| {
            env.runner_token = Some((config_map_uid.to_string(), token.to_string()));
        });
    }

    /// Records a status write.
    pub fn wrote_status(&self, name: &str, write: StatusWrite) {
        self.change(name, |env| env.status_written = Some(write));
    }

    /// Records that the owner was warned about `deadline`.
    pub fn warned(&self, name: &str, deadline: Timestamp) {
        self.change(name, |env| env.warned_for = Some(deadline));
    }

    /// Records what Tilt said about the ports.
    pub fn polled_ports(&self, name: &str, ports: PortMemory) {
        self.change(name, |env| env.ports = ports);
    }

    /// Counts a failed reconcile; returns the consecutive failures so far.
    pub fn failed(&self, name: &str) -> u32 {
        self.change(name, |env| {
            env.failures = env.failures.saturating_add(1);
            env.failures
        })
    }

    /// Resets the failure count after a successful reconcile.
    pub fn succeeded(&self, name: &str) {
        let mut envs = self.lock();
        if let Some(env) = envs.get_mut(name) {
            env.failures = 0;
        }
    }

    /// Records that the controller deletes (`true`) env `name` at its deadline, or could not
    /// (`false`).
    pub fn expiring(&self, name: &str, expiring: bool) {
        self.change(name, |env| env.expired = expiring);
    }

    /// Forgets env `name` (deleted).
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Forgets envs for which `keep` is false (deleted ConfigMaps).
    pub fn forget_unless(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, _| keep(name));
    }

    /// How many envs are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no env is remembered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn change<T>(&self, name: &str, change: impl FnOnce(&mut EnvMemory) -> T) -> T {
        let mut envs = self.lock();
        // Looked up first: the key is copied only for an env seen for the first time.
        if let Some(env) = envs.get_mut(name) {
            return change(env);
        }
        change(envs.entry(name.to_string()).or_default())
    }

    /// A poisoned lock is recovered: the memory is only a cache.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, EnvMemory>> {
        self.envs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: &str, generation: i64, version: &str) -> ObjectMeta {
        ObjectMeta {
            uid: Some(uid.into()),
            generation: Some(generation),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn an_apply_is_recognised_until_someone_else_changes_the_child() {
        let memory = Memory::default();
        let applied = meta("u1", 1, "10");
        memory.applied(
            "a",
            ChildKind::Deployment,
            AppliedChild::new(ChildKind::Deployment, 7, &applied, true),
        );
        let env = memory.of("a");
        assert!(env.has_applied(ChildKind::Deployment, 7, Some(&applied)));
        // Its status changed (new resourceVersion, same generation): still ours as applied.
        assert!(env.has_applied(ChildKind::Deployment, 7, Some(&meta("u1", 1, "11"))));
        // Other inputs, a spec edit, a re-created object, or none: apply again.
        assert!(!env.has_applied(ChildKind::Deployment, 8, Some(&applied)));
        assert!(!env.has_applied(ChildKind::Deployment, 7, Some(&meta("u1", 2, "12"))));
        assert!(!env.has_applied(ChildKind::Deployment, 7, Some(&meta("u2", 1, "13"))));
        assert!(!env.has_applied(ChildKind::Deployment, 7, None));
        assert!(!env.has_applied(ChildKind::Service, 7, Some(&applied)));
        assert!(memory.is_own_apply("a", ChildKind::Deployment, Some("10")));
        assert!(!memory.is_own_apply("a", ChildKind::Deployment, Some("11")));
        memory.deleted("a", ChildKind::Deployment);
        assert!(!memory.is_own_apply("a", ChildKind::Deployment, Some("10")));
    }

    #[test]
    fn an_apply_whose_answer_showed_news_has_no_echo() {
        let memory = Memory::default();
        let answer = meta("u1", 1, "10");
        memory.applied(
            "a",
            ChildKind::Deployment,
            AppliedChild::new(ChildKind::Deployment, 7, &answer, false),
        );
        // Still applied as planned, but the event of that version is news.
        assert!(
            memory
                .of("a")
                .has_applied(ChildKind::Deployment, 7, Some(&answer))
        );
        assert!(!memory.is_own_apply("a", ChildKind::Deployment, Some("10")));
        assert!(!memory.is_own_apply("a", ChildKind::Deployment, Some("")));
    }

    #[test]
    fn tokens_belong_to_one_config_map() {
        let memory = Memory::default();
        memory.gave_token("a", "uid-1", "t1");
        assert_eq!(memory.of("a").runner_token_for("uid-1"), Some("t1"));
        assert_eq!(memory.of("a").runner_token_for("uid-2"), None);
    }

    #[test]
    fn failures_count_up_and_reset_and_envs_are_forgotten() {
        let memory = Memory::default();
        assert_eq!(memory.failed("a"), 1);
        assert_eq!(memory.failed("a"), 2);
        memory.succeeded("a");
        assert_eq!(memory.failed("a"), 1);
        memory.warned("b", Timestamp::UNIX_EPOCH);
        memory.forget_unless(|name| name == "b");
        assert_eq!(memory.len(), 1);
        assert_eq!(memory.of("b").warned_for(), Some(Timestamp::UNIX_EPOCH));
        memory.forget("b");
        assert!(memory.is_empty());
    }
}
