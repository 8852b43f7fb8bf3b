//! What a reconcile decides: a pure function from an env ConfigMap, what was observed of its
//! children, the controller's memory of the env, the config and the time, to a [`Plan`]. No
//! cluster, no clock, no randomness: every rule is a table test (see the tests below).
//! [`crate::execute`] carries plans out.

use std::time::Duration;

use ephemerator_core::config_change::{Standing, accepted_before, standing};
use ephemerator_core::env::{EXPIRATION_KEY, recorded_max_lifetime};
use ephemerator_core::labels::{PHASE_LABEL, WARNED_FOR_ANNOTATION};
use ephemerator_core::lifecycle::Due;
use ephemerator_core::status::normalize_ports;
use ephemerator_core::{Config, Env, EnvStatus, Phase, Port};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::cached::RunnerDeployment;
use crate::desired::{self, Children, ChildrenInputs};
use crate::events::EventType;
use crate::memory::{EnvMemory, PortMemory};
use crate::notify::Notice;
use crate::observe::{self, ChildKind, Ownership, RunnerState};
use crate::sleep::{self, SleepInputs};

/// How often the Tilt of a ready runner is asked for its view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TiltPolls {
    /// While resources are starting, or Tilt could not be asked (upstream: 10 s).
    pub while_pending: Duration,
    /// Once everything has started: links change when resources are enabled or disabled in
    /// Tilt, or the Tiltfile is reloaded.
    pub when_settled: Duration,
}

impl Default for TiltPolls {
    fn default() -> Self {
        TiltPolls {
            while_pending: Duration::from_secs(10),
            when_settled: Duration::from_secs(60),
        }
    }
}
/// How soon a failed env (a foreign object in the way) is checked again.
pub const FAILED_RECHECK: Duration = Duration::from_secs(30);
/// Most ConfigMap versions remembered as older than the last status write (the cache lags by
/// a few events at most; the bound keeps a stuck watch from growing the memory).
const MAX_LAGGING_VERSIONS: usize = 8;

/// Everything a plan is made from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The loaded config.
    pub config: &'a Config,
    /// Its [`Config::digest`].
    pub config_digest: u64,
    /// The namespace of the envs.
    pub namespace: &'a str,
    /// The time of this reconcile.
    pub now: Timestamp,
    /// The env ConfigMap as cached.
    pub config_map: &'a ConfigMap,
    /// What the controller remembers of the env.
    pub memory: &'a EnvMemory,
    /// Objects of the env's name, with whose they are.
    pub observed: Observed<'a>,
    /// The Tilt token of the runner: the observed runner's, else the one remembered for this
    /// ConfigMap, else a fresh one (used only if a runner is made).
    pub tilt_token: &'a str,
    /// The dashboard's address, for notices.
    pub dashboard_url: &'a str,
    /// How often Tilt is asked.
    pub tilt_polls: TiltPolls,
    /// Tilt was asked in this reconcile and `memory` holds its answer: the answer is used
    /// however long it took, and the next ask is planned, never a second one now (an answer
    /// slower than the poll interval once left the plan empty, with no wake-up at all).
    pub tilt_answered: bool,
    /// When a person last used the env (its activity Lease's renewTime).
    pub last_activity: Option<Timestamp>,
}

/// The objects named like the env, as cached.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed<'a> {
    /// The Deployment of that name.
    pub deployment: Option<(Ownership, &'a RunnerDeployment)>,
    /// The Service of that name.
    pub service: Option<(Ownership, &'a ObjectMeta)>,
    /// The Ingress of that name.
    pub ingress: Option<(Ownership, &'a ObjectMeta)>,
}

impl Observed<'_> {
    fn ownership(&self, kind: ChildKind) -> Option<Ownership> {
        match kind {
            ChildKind::Deployment => self.deployment.map(|(ownership, _)| ownership),
            ChildKind::Service => self.service.map(|(ownership, _)| ownership),
            ChildKind::Ingress => self.ingress.map(|(ownership, _)| ownership),
        }
    }

    /// The metadata of the child of `kind` if it is ours.
    fn ours(&self, kind: ChildKind) -> Option<&ObjectMeta> {
        match kind {
            ChildKind::Deployment => self
                .deployment
                .filter(|(ownership, _)| *ownership == Ownership::Ours)
                .map(|(_, deployment)| &deployment.metadata),
            ChildKind::Service => self
                .service
                .filter(|(ownership, _)| *ownership == Ownership::Ours)
                .map(|(_, meta)| meta),
            ChildKind::Ingress => self
                .ingress
                .filter(|(ownership, _)| *ownership == Ownership::Ours)
                .map(|(_, meta)| meta),
        }
    }

    fn our_deployment(&self) -> Option<&RunnerDeployment> {
        self.deployment
            .filter(|(ownership, _)| *ownership == Ownership::Ours)
            .map(|(_, deployment)| deployment)
    }
}

/// What to do for one env, in the order [`crate::execute`] does it.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The status the env shows as the plan was made (what a status write builds on).
    pub shown: ShownStatus,
    /// Ask the runner's Tilt for its ports first (the key of the runner asked about), then
    /// plan again with the answer remembered; nothing else of this plan is carried out.
    pub ask_tilt: Option<String>,
    /// Write `data.expiration` (it was missing, or past the cap), guarded by the ConfigMap's
    /// resourceVersion so a value someone wrote meanwhile is never overwritten.
    pub write_expiration: Option<Timestamp>,
    /// Record the config's `maxLifetime` on the env (it has none recorded), in the same
    /// guarded write as [`Plan::write_expiration`].
    pub record_max_lifetime: Option<SignedDuration>,
    /// Delete the env ConfigMap (guarded by its uid): it expired.
    pub expire: Option<Expiry>,
    /// Children to delete (each guarded by its uid): no longer wanted, or an earlier env's.
    pub delete: Vec<ChildKind>,
    /// Children to apply, from [`Plan::children`].
    pub apply: Vec<ChildKind>,
    /// The desired children, built when something is applied.
    pub children: Option<Children>,
    /// The digest of what the children were built from.
    pub children_digest: u64,
    /// The status to write, when it differs from what the ConfigMap shows.
    pub status: Option<StatusChange>,
    /// Warn the owner that the env expires soon.
    pub warn: Option<Warning>,
    /// Remove the wake annotation once the status is written: it was acted on.
    pub clear_wake: bool,
    /// When to reconcile again without a change (the earliest deadline ahead).
    pub requeue: Option<Duration>,
}

/// An expiry to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Sent once the ConfigMap is deleted.
    pub notice: Notice,
}

/// A status to write.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// The new status.
    pub status: EnvStatus,
    /// The Event of a phase change.
    pub event: Option<PlannedEvent>,
    /// Time from creation to the first Ready, when this write is that moment.
    pub first_ready_after: Option<Duration>,
    /// The "created" notice, sent with the env's first status (once, even across restarts:
    /// the phase label is there from then on).
    pub notice: Option<Notice>,
    /// Time from a wake until the runner was ready again, when this write is that moment.
    pub woke_after: Option<Duration>,
    /// This write puts the env to sleep.
    pub falls_asleep: bool,
}

/// A warning to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The deadline warned about (remembered, so it is warned once).
    pub deadline: Timestamp,
    /// For the webhook.
    pub notice: Notice,
    /// For `kubectl describe`.
    pub event: PlannedEvent,
}

/// An Event on the env ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason.
    pub reason: String,
    /// What happened.
    pub note: String,
}

/// The env's status as the controller knows it: the cached ConfigMap's, unless the cache still
/// shows the ConfigMap from before the controller's last status write (watch events of
/// different kinds can arrive in any order), in which case that write's status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShownStatus {
    /// The status.
    pub status: EnvStatus,
    /// Whether `status` is what the cached ConfigMap shows (else it is the last write's).
    pub cached: bool,
    /// The resourceVersions of the ConfigMap a status write now builds on.
    pub versions: Vec<String>,
}

impl ShownStatus {
    /// The status shown for `config_map`, given the controller's memory of the env.
    pub fn of(memory: &EnvMemory, config_map: &ConfigMap) -> ShownStatus {
        let version = config_map.resource_version().unwrap_or_default();
        let last_write = memory
            .status_written()
            .filter(|write| write.from_versions.contains(&version));
        match last_write {
            Some(write) => {
                // Still lagging: every version before that write, and the write's own, is
                // older than a write made now.
                let mut versions = write.from_versions.clone();
                versions.push(write.to_version.clone());
                let excess = versions.len().saturating_sub(MAX_LAGGING_VERSIONS);
                versions.drain(..excess);
                ShownStatus {
                    status: write.status.clone(),
                    cached: false,
                    versions,
                }
            }
            None => ShownStatus {
                status: EnvStatus::from_meta(&config_map.metadata),
                cached: true,
                versions: vec![version],
            },
        }
    }

    /// Whether writing `status` would change nothing.
    pub fn shows(&self, meta: &ObjectMeta, status: &EnvStatus) -> bool {
        if self.cached {
            status_is_current(meta, status)
        } else {
            self.status == read_back(status)
        }
    }
}

/// The deadline the owner was warned about, as the env ConfigMap records it (a value that does
/// not read as a time records nothing).
pub fn warned_for(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.annotations
        .as_ref()?
        .get(WARNED_FOR_ANNOTATION)?
        .parse()
        .ok()
}

/// Plans the reconcile of one env.
pub fn plan(inputs: &Inputs) -> Plan {
    let config_map = inputs.config_map;
    let meta = &config_map.metadata;
    let shown = ShownStatus::of(inputs.memory, config_map);
    let mut plan = Plan {
        shown: shown.clone(),
        ..Plan::default()
    };
    if meta.deletion_timestamp.is_some() {
        return plan;
    }
    let env = match Env::from_config_map(config_map) {
        Ok(env) => env,
        Err(error) if error.field == format!("data.{EXPIRATION_KEY}") => {
            // Never a reason to delete anything: the env keeps what it has and says why.
            let status = EnvStatus {
                phase: Phase::Failed,
                message: Some(format!("{error}; the env is kept until it is fixed")),
                ..shown.status.clone()
            };
            plan.status = status_change(inputs, &shown, status, None);
            return plan;
        }
        Err(error) => {
            reject(&mut plan, inputs, &shown, error.to_string());
            return plan;
        }
    };

    let now = inputs.now;
    // The cap the env was given when its expiration was set, not today's: a shorter
    // maxLifetime in a new config never cuts a running env short (core::config_change).
    let recorded = recorded_max_lifetime(meta);
    let policy = &inputs.config.expiration.for_env(recorded);
    if recorded.is_none() {
        plan.record_max_lifetime = Some(inputs.config.expiration.max_lifetime);
    }
    let created = meta.creation_timestamp.as_ref().map(|time| time.0);
    let expiration = match env.expiration {
        Some(written) => {
            if policy.needs_cap_written(created, written) {
                plan.write_expiration = Some(policy.deadline(created, written));
            }
            written
        }
        None => {
            let initial = policy.initial_expiration(now);
            plan.write_expiration = Some(initial);
            initial
        }
    };
    let deadline = policy.deadline(created, expiration);
    // The annotation is the record every replica shares; the memory covers a cache that does
    // not show the claim yet.
    let warned = inputs.memory.warned_for() == Some(deadline) || warned_for(meta) == Some(deadline);
    let due = policy.due(created, expiration, now, warned);
    if due == Due::Expire {
        // Deleted as it is: no point writing the expiration first.
        plan.write_expiration = None;
        plan.record_max_lifetime = None;
        plan.expire = Some(Expiry {
            notice: Notice::Expired {
                env: env.name.clone(),
                owner: env.owner.clone(),
            },
        });
        return plan;
    }
    let mut deadlines = vec![deadline];

    // (The name was checked by the parse: children are named after it.)
    let name = env.name.as_str();
    let has_children = ChildKind::ALL
        .into_iter()
        .any(|kind| inputs.observed.ours(kind).is_some());
    let status_written = !shown.cached
        || meta
            .labels
            .as_ref()
            .is_some_and(|labels| labels.contains_key(PHASE_LABEL));
    let accepted = accepted_before(&shown.status, status_written, has_children);
    match standing(inputs.config, &env.spec, accepted) {
        Standing::Allowed => {}
        Standing::Refused(reason) => {
            reject(&mut plan, inputs, &shown, reason);
            plan.requeue = requeue(now, deadlines);
            return plan;
        }
        Standing::NoLongerAllowed(reason) => {
            reject(&mut plan, inputs, &shown, reason.clone());
            // Told once, when it is stopped.
            if let Some(change) = plan
                .status
                .as_mut()
                .filter(|_| shown.status.phase != Phase::Rejected)
            {
                change.notice = Some(Notice::Stopped {
                    env: env.name.clone(),
                    owner: env.owner.clone(),
                    reason,
                });
            }
            plan.requeue = requeue(now, deadlines);
            return plan;
        }
    }
    if due == Due::Warn {
        plan.warn = Some(Warning {
            deadline,
            notice: Notice::ExpiresSoon {
                env: env.name.clone(),
                owner: env.owner.clone(),
                at: deadline,
                url: Some(inputs.dashboard_url.to_string()),
            },
            event: PlannedEvent {
                type_: EventType::Normal,
                reason: "ExpiresSoon".to_string(),
                note: format!("the env expires at {deadline}"),
            },
        });
    } else if !warned {
        deadlines.extend(policy.warn_at(created, expiration));
    }

    // Children of an earlier ConfigMap of this name go; foreign objects are never touched.
    let observed = &inputs.observed;
    let mut foreign = Vec::new();
    for kind in ChildKind::ALL {
        match observed.ownership(kind) {
            Some(Ownership::PreviousEnv) => plan.delete.push(kind),
            // Without Ingress mode a foreign Ingress of that name is none of our business.
            Some(Ownership::Foreign)
                if kind != ChildKind::Ingress || inputs.config.ingress.enabled =>
            {
                foreign.push(kind.as_str());
            }
            _ => {}
        }
    }
    if !foreign.is_empty() {
        let kinds = foreign.join(" and ");
        let status = EnvStatus {
            phase: Phase::Failed,
            message: Some(format!(
                "a {kinds} named {name:?} already exists and is not managed by ephemerator; it \
                 was left untouched. Delete or rename it, or choose another env name"
            )),
            ports: Vec::new(),
            ready_at: shown.status.ready_at,
            ..EnvStatus::default()
        };
        plan.status = status_change(inputs, &shown, status, Some(&env));
        // Re-checked now and then: the foreign object may be removed by its owner.
        deadlines.push(after(now, FAILED_RECHECK));
        plan.requeue = requeue(now, deadlines);
        return plan;
    }

    let template_hash = env.spec.fingerprint();
    let deployment = observed.our_deployment();
    let runner = observe::runner_state(deployment, &template_hash);
    let sleep = sleep::sleep(&SleepInputs {
        sleep_after: inputs.config.sleep_after,
        status: &shown.status,
        meta,
        last_activity: inputs.last_activity,
        runner_ready: runner.phase == Phase::Ready,
        now,
    });
    deadlines.extend(sleep.sleeps_at);
    plan.clear_wake = sleep.clear_wake;
    let runner = match (&sleep.wakes, sleep.asleep_since) {
        (_, Some(since)) if sleep.asleep => RunnerState::new(
            Phase::Sleeping,
            sleep::asleep_message(since, inputs.config.sleep_after),
        ),
        (Some(wake), _) => RunnerState::new(
            runner.phase,
            format!("{}; {}", wake.describe(), runner.message),
        ),
        _ if sleep.waking => {
            RunnerState::new(runner.phase, format!("waking up; {}", runner.message))
        }
        _ => runner,
    };
    let ports = ports_known(inputs, &env, &runner, &template_hash);
    if let Some(runner_key) = ports.ask {
        plan.ask_tilt = Some(runner_key);
        return plan;
    }
    deadlines.extend(ports.next_poll);

    let children_inputs = ChildrenInputs {
        name,
        namespace: inputs.namespace,
        config_map_uid: meta.uid.as_deref().unwrap_or_default(),
        spec: &env.spec,
        tilt_token: inputs.tilt_token,
        discovered_ports: &ports.discovered,
        config: inputs.config,
        config_digest: inputs.config_digest,
        asleep: sleep.asleep,
    };
    let digest = children_inputs.digest();
    plan.children_digest = digest;
    for kind in ChildKind::ALL {
        let wanted = kind != ChildKind::Ingress || inputs.config.ingress.enabled;
        let ours = observed.ours(kind);
        if !wanted {
            // Ingress mode was switched off: ours goes.
            if ours.is_some() {
                plan.delete.push(kind);
            }
        } else if !inputs.memory.has_applied(kind, digest, ours) {
            plan.apply.push(kind);
        }
    }
    if !plan.apply.is_empty() {
        // Built only when something is written: an env whose children are in place costs no
        // more than the checks above.
        plan.children = Some(desired::desired_children(&children_inputs));
    }

    // A runner made just now has no replica yet; one that exists says how far it got.
    let runner = if deployment.is_none() && plan.apply.contains(&ChildKind::Deployment) {
        RunnerState::new(Phase::Starting, "runner starting")
    } else {
        runner
    };
    let ready_at = shown
        .status
        .ready_at
        .or_else(|| (runner.phase == Phase::Ready).then_some(now));
    // A ready runner's message says what its Tilt reported, when that is not all well.
    let message = match ports.note.filter(|_| runner.phase == Phase::Ready) {
        Some(note) => format!("{}; {note}", runner.message),
        None => runner.message,
    };
    // A sleeping env keeps the ports it showed: its Tilt cannot be asked.
    let ports = if sleep.asleep && !shown.status.ports.is_empty() {
        shown.status.ports.clone()
    } else {
        // In the order the status reads back (by port), so an unchanged status compares equal.
        normalize_ports(children_inputs.ports())
    };
    let status = EnvStatus {
        phase: runner.phase,
        message: Some(message),
        ports,
        ready_at,
        asleep_since: sleep.asleep_since,
        woke_at: sleep.woke_at,
    };
    plan.status = status_change(inputs, &shown, status, Some(&env));
    if let Some(change) = plan.status.as_mut() {
        change.woke_after = sleep.woke_after;
        change.falls_asleep = sleep.falls_asleep;
    }
    plan.requeue = requeue(now, deadlines);
    plan
}

/// A rejected env: its children go, phase `Rejected` with the reason.
fn reject(plan: &mut Plan, inputs: &Inputs, shown: &ShownStatus, reason: String) {
    for kind in ChildKind::ALL {
        if inputs.observed.ours(kind).is_some() {
            plan.delete.push(kind);
        }
    }
    let status = EnvStatus {
        phase: Phase::Rejected,
        message: Some(reason),
        ..EnvStatus::default()
    };
    plan.status = status_change(inputs, shown, status, None);
}

/// The write of `status`, unless the ConfigMap shows it already. `env` is the env as parsed
/// (`None` when it does not parse, or is rejected: neither is announced as created).
fn status_change(
    inputs: &Inputs,
    shown: &ShownStatus,
    status: EnvStatus,
    env: Option<&Env>,
) -> Option<StatusChange> {
    let meta = &inputs.config_map.metadata;
    if shown.shows(meta, &status) {
        return None;
    }
    let event = (shown.status.phase != status.phase).then(|| PlannedEvent {
        type_: match status.phase {
            Phase::Failed | Phase::Rejected => EventType::Warning,
            _ => EventType::Normal,
        },
        reason: status.phase.as_str().to_string(),
        note: status.message.clone().unwrap_or_default(),
    });
    let first_ready_after = meta
        .creation_timestamp
        .as_ref()
        .filter(|_| shown.status.ready_at.is_none())
        .and_then(|created| Some((created.0, status.ready_at?)))
        .and_then(|(created, ready)| Duration::try_from(ready.duration_since(created)).ok());
    let first_status = shown.cached
        && !meta
            .labels
            .as_ref()
            .is_some_and(|labels| labels.contains_key(PHASE_LABEL));
    let notice = (first_status
        && matches!(
            status.phase,
            Phase::Pending | Phase::Starting | Phase::Ready
        ))
    .then_some(env)
    .flatten()
    .map(|env| Notice::Created {
        env: env.name.clone(),
        owner: env.owner.clone(),
        repo: env.spec.repo.clone(),
        branch: env.spec.branch.clone(),
        url: Some(inputs.dashboard_url.to_string()),
    });
    Some(StatusChange {
        status,
        event,
        first_ready_after,
        notice,
        woke_after: None,
        falls_asleep: false,
    })
}

/// The ports known for the env's runner, and whether to ask Tilt now.
struct PortsKnown {
    discovered: Vec<Port>,
    /// What Tilt last reported that the env's message should say.
    note: Option<String>,
    next_poll: Option<Timestamp>,
    /// The runner to ask about, when Tilt is to be asked now.
    ask: Option<String>,
}

/// Tilt is asked once per runner as soon as it is ready, then every
/// [`TiltPolls::while_pending`] while it reports pending resources (or could not be asked),
/// and every [`TiltPolls::when_settled`] after. Repos with static ports never ask.
fn ports_known(
    inputs: &Inputs,
    env: &Env,
    runner: &RunnerState,
    template_hash: &str,
) -> PortsKnown {
    let nothing = PortsKnown {
        discovered: Vec::new(),
        note: None,
        next_poll: None,
        ask: None,
    };
    if !inputs.config.static_ports(&env.spec.repo).is_empty() {
        return nothing;
    }
    let memory: &PortMemory = inputs.memory.ports();
    let runner_key = runner_key(template_hash, inputs.tilt_token);
    let known = memory.for_runner.as_deref() == Some(runner_key.as_str());
    let (discovered, note) = if known {
        (memory.discovered.clone(), memory.note.clone())
    } else {
        (Vec::new(), None)
    };
    if runner.phase != Phase::Ready {
        return PortsKnown {
            discovered,
            ..nothing
        };
    }
    if let Some(polled_at) = memory.polled_at.filter(|_| known) {
        let polls = inputs.tilt_polls;
        let interval = if memory.pending {
            polls.while_pending
        } else {
            polls.when_settled
        };
        let next = after(polled_at, interval);
        if next > inputs.now || inputs.tilt_answered {
            return PortsKnown {
                discovered,
                note,
                next_poll: Some(if next > inputs.now {
                    next
                } else {
                    after(inputs.now, interval)
                }),
                ask: None,
            };
        }
    }
    PortsKnown {
        discovered,
        note,
        next_poll: None,
        ask: Some(runner_key),
    }
}

/// Names one runner: its template and its token.
pub fn runner_key(template_hash: &str, tilt_token: &str) -> String {
    format!("{template_hash}/{tilt_token}")
}

/// Whether `current` already shows `status` (as read back, so port order and formatting do not
/// matter), in which case no write is needed.
pub fn status_is_current(current: &ObjectMeta, status: &EnvStatus) -> bool {
    let labels_written = status
        .labels()
        .iter()
        .all(|(key, value)| current.labels.as_ref().and_then(|l| l.get(key)) == Some(value));
    labels_written && EnvStatus::from_meta(current) == read_back(status)
}

/// `status` as it reads back from the ConfigMap once written.
pub fn read_back(status: &EnvStatus) -> EnvStatus {
    EnvStatus::from_meta(&ObjectMeta {
        labels: Some(status.labels()),
        annotations: Some(status.annotations()),
        ..ObjectMeta::default()
    })
}

fn after(time: Timestamp, wait: Duration) -> Timestamp {
    time.saturating_add(wait).unwrap_or(Timestamp::MAX)
}

/// How long from `now` until the earliest of `deadlines` still ahead, rounded up to the
/// millisecond so the wake-up is never early. `None` when none is ahead.
pub fn requeue(now: Timestamp, deadlines: impl IntoIterator<Item = Timestamp>) -> Option<Duration> {
    deadlines
        .into_iter()
        .filter(|deadline| *deadline > now)
        .min()
        .and_then(|deadline| Duration::try_from(deadline.duration_since(now)).ok())
        .map(|wait| {
            let millis = wait.as_nanos().div_ceil(1_000_000);
            Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
        })
}

#[cfg(test)]
mod tests;
