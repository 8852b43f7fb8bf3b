//! The reconcile loop of one env ConfigMap: parse and expire, validate, check for foreign
//! objects, apply the children, and report the status back on the ConfigMap.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use ephemerator_core::env::EXPIRATION_KEY;
use ephemerator_core::labels::has_ephemerator_labels;
use ephemerator_core::names::is_valid_env_name;
use ephemerator_core::status::normalize_ports;
use ephemerator_core::{Env, EnvStatus, Phase, Port};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::context::{AppliedChild, Context, EnvMemory, FIELD_MANAGER};
use crate::desired::{self, Observed};
use crate::error::{Error, Result};
use crate::expiry::{self, Due};
use crate::notify::Notice;
use crate::observe::{self, Ownership};

/// How often Tilt is asked again while resources are pending (upstream: 10 s).
pub const PORT_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// How soon a failed env (a foreign object in the way) is checked again.
pub const FAILED_RECHECK: Duration = Duration::from_secs(30);

/// Reconciles one env ConfigMap. Runs in a span carrying the env name, so every log line of
/// the reconcile names it.
pub async fn reconcile(config_map: Arc<ConfigMap>, ctx: Arc<Context>) -> Result<Action> {
    let name = config_map.name_any();
    let span = info_span!("reconcile", env = %name);
    async move {
        ctx.metrics.reconciled();
        let action = reconcile_env(&config_map, &ctx).await?;
        ctx.remember(&name, |memory| memory.failures = 0);
        Ok(action)
    }
    .instrument(span)
    .await
}

/// Counts and logs a failed reconcile and retries with a per-env exponential backoff (0.5 s
/// doubling up to 60 s), so a burst of API errors never turns into a hot loop.
pub fn error_policy(config_map: Arc<ConfigMap>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = config_map.name_any();
    ctx.metrics.failed(error.metric_label());
    let failures = ctx.remember(&name, |memory| {
        memory.failures = memory.failures.saturating_add(1);
        memory.failures
    });
    let delay = retry_delay(failures);
    warn!(env = %name, %error, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The backoff after `failures` consecutive failures.
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(7);
    Duration::from_millis(500 * (1u64 << exponent)).min(Duration::from_secs(60))
}

async fn reconcile_env(config_map: &ConfigMap, ctx: &Context) -> Result<Action> {
    if config_map.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = config_map.name_any();
    let uid = config_map.uid().ok_or_else(|| Error::MissingMetadata {
        kind: "ConfigMap",
        name: name.clone(),
        field: "metadata.uid",
    })?;
    debug!("reconciling");
    ctx.wait_for_child_stores().await;
    let previous = EnvStatus::from_meta(&config_map.metadata);

    let mut env = match Env::from_config_map(config_map) {
        Ok(env) => env,
        Err(error) if error.field == format!("data.{EXPIRATION_KEY}") => {
            // Never a reason to delete anything: the env keeps what it has and says why.
            let status = EnvStatus {
                phase: Phase::Failed,
                message: Some(format!("{error}; the env is kept until it is fixed")),
                ..previous.clone()
            };
            write_status(ctx, config_map, &previous, status).await?;
            return Ok(Action::await_change());
        }
        Err(error) => return reject(ctx, config_map, &previous, &uid, error.to_string()).await,
    };

    let now = Timestamp::now();
    let expiration = match env.expiration {
        Some(expiration) => expiration,
        None => fill_in_expiration(ctx, config_map, now).await?,
    };
    env.expiration = Some(expiration);
    let policy = ctx.config.expiration;
    let created = config_map.creation_timestamp().map(|time| time.0);
    // An expiration written past the allowed lifetime (by hand, say) is held to the lifetime.
    let deadline = created
        .and_then(|created| created.checked_add(policy.max_lifetime).ok())
        .map_or(expiration, |limit| expiration.min(limit));
    let schedule = expiry::schedule(created, deadline, Some(policy.warn_before));
    let memory = ctx.remembered(&name);
    let due = expiry::due(now, &schedule, memory.warned_for == Some(deadline));
    if due == Due::Expire {
        expire(ctx, config_map, &env, &uid).await?;
        return Ok(Action::await_change());
    }

    if !is_valid_env_name(&name) {
        let reason = "metadata.name: must be a DNS label of at most 63 characters (lowercase \
                      letters, digits and -, starting with a letter) without ---";
        return reject(ctx, config_map, &previous, &uid, reason.to_string()).await;
    }
    if let Err(errors) = ctx.config.validate_spec(&env.spec) {
        return reject(ctx, config_map, &previous, &uid, errors.to_string()).await;
    }
    if due == Due::Warn {
        ctx.notifier.send(Notice::ExpiresSoon {
            env: name.clone(),
            owner: env.owner.clone(),
            at: deadline,
            url: None,
        });
        ctx.remember(&name, |memory| memory.warned_for = Some(deadline));
        publish_event(
            ctx,
            config_map,
            EventType::Normal,
            "ExpiresSoon",
            format!("the env expires at {deadline}"),
        );
    }
    let mut deadlines = vec![schedule.expires_at];
    if due != Due::Warn && memory.warned_for != Some(deadline) {
        deadlines.extend(schedule.warn_at);
    }

    if let Some(conflict) = check_children(ctx, &name, &uid).await? {
        let status = EnvStatus {
            phase: Phase::Failed,
            message: Some(conflict),
            ports: Vec::new(),
            ready_at: previous.ready_at,
        };
        write_status(ctx, config_map, &previous, status).await?;
        // Re-checked now and then: the foreign object may be removed by its owner.
        return Ok(requeue(
            now,
            deadlines
                .into_iter()
                .chain([now.saturating_add(FAILED_RECHECK).unwrap_or(Timestamp::MAX)]),
        ));
    }

    let observed_deployment = ours(&ctx.deployments, &ctx.namespace, &name, &uid);
    let tilt_token = observed_deployment
        .as_deref()
        .and_then(desired::tilt_token_of);
    let template_hash = env.spec.fingerprint();
    let runner = observe::runner_state(observed_deployment.as_deref(), &template_hash);
    let (discovered_ports, next_poll) = discover_ports(
        ctx,
        &env,
        &memory,
        runner.phase == Phase::Ready,
        tilt_token.as_deref(),
        &template_hash,
        now,
    )
    .await;
    deadlines.extend(next_poll);

    let owner = desired::owner_reference(&name, &uid);
    let children = desired::desired_children(
        &env,
        &ctx.config,
        &ctx.namespace,
        &owner,
        &Observed {
            tilt_token,
            discovered_ports,
        },
        new_tilt_token,
    );
    let applied_deployment = apply_child(
        ctx,
        &name,
        "Deployment",
        &children.deployment,
        observed_deployment.as_deref(),
        |d: &Deployment| d.metadata.generation.map(|g| g.to_string()),
    )
    .await?;
    let observed_service = ours(&ctx.services, &ctx.namespace, &name, &uid);
    apply_child(
        ctx,
        &name,
        "Service",
        &children.service,
        observed_service.as_deref(),
        |s: &Service| s.metadata.resource_version.clone(),
    )
    .await?;
    let observed_ingress = ours(&ctx.ingresses, &ctx.namespace, &name, &uid);
    match &children.ingress {
        Some(ingress) => {
            apply_child(
                ctx,
                &name,
                "Ingress",
                ingress,
                observed_ingress.as_deref(),
                |i: &Ingress| i.metadata.resource_version.clone(),
            )
            .await?;
        }
        // Ingress mode was switched off: ours goes.
        None if observed_ingress.is_some() => {
            delete_child::<Ingress>(ctx, &name).await?;
        }
        None => {}
    }

    // The apply's answer is fresher than the store.
    let runner = match &applied_deployment {
        Some(deployment) => observe::runner_state(Some(deployment), &template_hash),
        None => runner,
    };
    let ready_at = previous
        .ready_at
        .or_else(|| (runner.phase == Phase::Ready).then_some(now));
    let first_ready = previous.ready_at.is_none() && ready_at.is_some();
    if let Some(latency) = created
        .filter(|_| first_ready)
        .and_then(|created| Duration::try_from(now.duration_since(created)).ok())
    {
        ctx.metrics.became_ready(latency);
    }
    let status = EnvStatus {
        phase: runner.phase,
        message: Some(runner.message),
        // In the order the status reads back (by port), so an unchanged status compares equal.
        ports: normalize_ports(children.ports),
        ready_at,
    };
    write_status(ctx, config_map, &previous, status).await?;
    Ok(requeue(now, deadlines))
}

fn requeue(now: Timestamp, deadlines: impl IntoIterator<Item = Timestamp>) -> Action {
    match expiry::until_next(now, deadlines) {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    }
}

/// A fresh Tilt token: 32 random bytes as hex.
fn new_tilt_token() -> String {
    let mut bytes = [0u8; 32];
    if let Err(error) = getrandom::fill(&mut bytes) {
        // Without randomness the token would be guessable; a later reconcile retries.
        warn!(%error, "no randomness for the Tilt token; using a time-based one for now");
        let nanos = Timestamp::now().as_nanosecond().to_be_bytes();
        bytes[..16].copy_from_slice(&nanos);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `now + defaultTTL` into a ConfigMap that has no expiration, as upstream did. A merge
/// patch guarded by the resourceVersion: if the user changed the ConfigMap meanwhile, the
/// patch fails and the reconcile retries with the new version.
async fn fill_in_expiration(
    ctx: &Context,
    config_map: &ConfigMap,
    now: Timestamp,
) -> Result<Timestamp> {
    let expiration = ctx.config.expiration.initial_expiration(now);
    let patch = json!({
        "metadata": { "resourceVersion": config_map.resource_version() },
        "data": { EXPIRATION_KEY: expiration.to_string() },
    });
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(&config_map.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    info!(%expiration, "set the default expiration");
    Ok(expiration)
}

/// Deletes an expired env ConfigMap; garbage collection removes its children.
async fn expire(ctx: &Context, config_map: &ConfigMap, env: &Env, uid: &str) -> Result<()> {
    let name = config_map.name_any();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = DeleteParams {
        // Only this ConfigMap: one re-created under the same name is a new env.
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            debug!("already gone or replaced");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    }
    info!(expiration = ?env.expiration, "env expired and was deleted");
    ctx.metrics.expired();
    ctx.notifier.send(Notice::Expired {
        env: name.clone(),
        owner: env.owner.clone(),
    });
    publish_event(
        ctx,
        config_map,
        EventType::Normal,
        "Expired",
        "the env expired and was deleted".to_string(),
    );
    ctx.forget_unless(|remembered| remembered != name);
    Ok(())
}

/// A rejected env: no children, phase `Rejected` and the reason.
async fn reject(
    ctx: &Context,
    config_map: &ConfigMap,
    previous: &EnvStatus,
    uid: &str,
    reason: String,
) -> Result<Action> {
    let name = config_map.name_any();
    info!(%reason, "env rejected");
    if ours(&ctx.deployments, &ctx.namespace, &name, uid).is_some() {
        delete_child::<Deployment>(ctx, &name).await?;
    }
    if ours(&ctx.services, &ctx.namespace, &name, uid).is_some() {
        delete_child::<Service>(ctx, &name).await?;
    }
    if ours(&ctx.ingresses, &ctx.namespace, &name, uid).is_some() {
        delete_child::<Ingress>(ctx, &name).await?;
    }
    let status = EnvStatus {
        phase: Phase::Rejected,
        message: Some(reason),
        ports: Vec::new(),
        ready_at: None,
    };
    write_status(ctx, config_map, previous, status).await?;
    Ok(Action::await_change())
}

/// Looks for objects in the way of the children. Returns why the env cannot proceed when a
/// foreign object holds a child's name; removes children left by an earlier ConfigMap of the
/// same name.
async fn check_children(ctx: &Context, name: &str, uid: &str) -> Result<Option<String>> {
    let mut foreign = Vec::new();
    match owner_of(&ctx.deployments, &ctx.namespace, name, uid) {
        Some(Ownership::Foreign) => foreign.push("Deployment"),
        Some(Ownership::PreviousEnv) => delete_child::<Deployment>(ctx, name).await?,
        _ => {}
    }
    match owner_of(&ctx.services, &ctx.namespace, name, uid) {
        Some(Ownership::Foreign) => foreign.push("Service"),
        Some(Ownership::PreviousEnv) => delete_child::<Service>(ctx, name).await?,
        _ => {}
    }
    match owner_of(&ctx.ingresses, &ctx.namespace, name, uid) {
        // Without Ingress mode a foreign Ingress of that name is none of our business.
        Some(Ownership::Foreign) if ctx.config.ingress.enabled => foreign.push("Ingress"),
        Some(Ownership::PreviousEnv) => delete_child::<Ingress>(ctx, name).await?,
        _ => {}
    }
    if foreign.is_empty() {
        return Ok(None);
    }
    let kinds = foreign.join(" and ");
    warn!(%kinds, "objects of the env's name exist and are not ephemerator's; left untouched");
    Ok(Some(format!(
        "a {kinds} named {name:?} already exists and is not managed by ephemerator; it was left \
         untouched. Delete or rename it, or choose another env name"
    )))
}

fn owner_of<K>(store: &Store<K>, namespace: &str, name: &str, uid: &str) -> Option<Ownership>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let object = store.get(&ObjectRef::new(name).within(namespace))?;
    Some(observe::ownership(object.meta(), name, uid))
}

/// The child of that name from `store`, if it is ours.
fn ours<K>(store: &Store<K>, namespace: &str, name: &str, uid: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let object = store.get(&ObjectRef::new(name).within(namespace))?;
    (observe::ownership(object.meta(), name, uid) == Ownership::Ours).then_some(object)
}

/// Deletes a child of ours. The delete is guarded by the child's uid, read just before, so a
/// foreign object created meanwhile under that name is never deleted.
async fn delete_child<K>(ctx: &Context, name: &str) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let child_uid = api
        .get_opt(name)
        .await?
        .filter(|child| has_ephemerator_labels(child.meta().labels.as_ref()))
        .and_then(|child| child.meta().uid.clone());
    let Some(child_uid) = child_uid else {
        return Ok(());
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(child_uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => {
            info!(
                kind = K::kind(&()).as_ref(),
                "deleted a child that is no longer desired"
            );
            ctx.remember(name, |memory| {
                memory.applied.remove(kind_key::<K>());
            });
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn kind_key<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Deployment" => "Deployment",
        "Service" => "Service",
        _ => "Ingress",
    }
}

/// Server-side applies a child with field manager `ephctrl`, forcing ownership of every field
/// it sets. Skipped (returns `None`) when the same object was applied before and nobody has
/// changed it since, which saves a write for every status change of the child.
async fn apply_child<K>(
    ctx: &Context,
    name: &str,
    kind: &'static str,
    desired: &K,
    observed: Option<&K>,
    version: fn(&K) -> Option<String>,
) -> Result<Option<K>>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let body = serde_json::to_vec(desired).map_err(|source| Error::Serialize {
        what: format!("{kind} {name}"),
        source,
    })?;
    let digest: String = Sha256::digest(&body)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let unchanged = |memory: &EnvMemory| {
        let (Some(record), Some(observed)) = (memory.applied.get(kind), observed) else {
            return false;
        };
        record.digest == digest
            && observed.meta().uid.as_deref() == Some(record.uid.as_str())
            && version(observed).as_deref() == Some(record.version.as_str())
    };
    if ctx.remember(name, |memory| unchanged(memory)) {
        return Ok(None);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api.patch(name, &params, &Patch::Apply(desired)).await?;
    debug!(kind, "applied");
    let record = AppliedChild {
        digest,
        uid: applied.meta().uid.clone().unwrap_or_default(),
        version: version(&applied).unwrap_or_default(),
    };
    ctx.remember(name, |memory| {
        memory.applied.insert(kind, record);
    });
    Ok(Some(applied))
}

/// Reads the env's ports from its Tilt when that is useful: once per runner after it is
/// ready, then every [`PORT_POLL_INTERVAL`] while Tilt reports pending resources. Returns the
/// ports to expose and when to ask again. Failures are logged and retried; they never fail the
/// reconcile (the env keeps Tilt's own port and whatever was found before).
async fn discover_ports(
    ctx: &Context,
    env: &Env,
    memory: &EnvMemory,
    runner_ready: bool,
    token: Option<&str>,
    template_hash: &str,
    now: Timestamp,
) -> (Vec<Port>, Option<Timestamp>) {
    if !ctx.config.static_ports(&env.spec.repo).is_empty() {
        return (Vec::new(), None);
    }
    let Some(token) = token else {
        return (Vec::new(), None);
    };
    let runner = format!("{template_hash}/{token}");
    let known = memory.ports_for_runner.as_deref() == Some(runner.as_str());
    let known_ports = if known {
        memory.discovered_ports.clone()
    } else {
        Vec::new()
    };
    if !runner_ready {
        return (known_ports, None);
    }
    let next_poll_after = |at: Timestamp| {
        at.saturating_add(PORT_POLL_INTERVAL)
            .unwrap_or(Timestamp::MAX)
    };
    if known && !memory.ports_pending {
        return (known_ports, None);
    }
    if let Some(polled_at) = memory.polled_at.filter(|_| known) {
        let next = next_poll_after(polled_at);
        if next > now {
            return (known_ports, Some(next));
        }
    }
    let base_url = ctx.tilt_base_url(&env.name);
    match ctx.tilt.discover_ports(&base_url, token).await {
        Ok(discovered) => {
            debug!(ports = ?discovered.ports, pending = discovered.pending, "asked Tilt for ports");
            ctx.remember(&env.name, |memory| {
                memory.ports_for_runner = Some(runner);
                memory.discovered_ports = discovered.ports.clone();
                memory.ports_pending = discovered.pending;
                memory.polled_at = Some(now);
            });
            let next = discovered.pending.then(|| next_poll_after(now));
            (discovered.ports, next)
        }
        Err(error) => {
            warn!(%error, %base_url, "asking Tilt for ports failed; trying again");
            ctx.remember(&env.name, |memory| {
                if !known {
                    memory.discovered_ports.clear();
                }
                memory.ports_for_runner = Some(runner);
                memory.ports_pending = true;
                memory.polled_at = Some(now);
            });
            (known_ports, Some(next_poll_after(now)))
        }
    }
}

/// Applies the status (phase label and status annotations only, never `data`) when it
/// changed, and records an Event when the phase changed.
async fn write_status(
    ctx: &Context,
    config_map: &ConfigMap,
    previous: &EnvStatus,
    status: EnvStatus,
) -> Result<()> {
    if status_is_current(&config_map.metadata, &status) {
        return Ok(());
    }
    let name = config_map.name_any();
    let patch = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": ctx.namespace,
            "labels": status.labels(),
            "annotations": status.annotations(),
        },
    });
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    if previous.phase != status.phase {
        info!(from = %previous.phase, to = %status.phase, message = ?status.message, "phase changed");
        let type_ = match status.phase {
            Phase::Failed | Phase::Rejected => EventType::Warning,
            _ => EventType::Normal,
        };
        publish_event(
            ctx,
            config_map,
            type_,
            status.phase.as_str(),
            status.message.clone().unwrap_or_default(),
        );
    }
    Ok(())
}

/// Whether `current` already shows `status` (as read back, so port order and formatting do not
/// matter), in which case no write is needed.
fn status_is_current(current: &ObjectMeta, status: &EnvStatus) -> bool {
    let labels_written = status
        .labels()
        .iter()
        .all(|(key, value)| current.labels.as_ref().and_then(|l| l.get(key)) == Some(value));
    let as_written = ObjectMeta {
        labels: Some(status.labels()),
        annotations: Some(status.annotations()),
        ..ObjectMeta::default()
    };
    labels_written && EnvStatus::from_meta(current) == EnvStatus::from_meta(&as_written)
}

/// Records an Event on the env ConfigMap without holding up the reconcile; a failure to
/// record is logged only.
fn publish_event(
    ctx: &Context,
    config_map: &ConfigMap,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let recorder = ctx.recorder.clone();
    let reference = config_map.object_ref(&());
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(cut(note, 1000)),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            if let Err(error) = recorder.publish(&event, &reference).await {
                warn!(%error, reason = %event.reason, "recording an event failed");
            }
        }
        .instrument(span),
    );
}

/// Cuts `text` to at most `max` bytes on a character boundary (Event notes are limited).
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_already_on_the_config_map_is_not_written_again() {
        let status = EnvStatus {
            phase: Phase::Ready,
            message: Some("runner ready".into()),
            // Tilt's port first, as the Service lists it; the annotation sorts by port.
            ports: vec![
                Port {
                    name: "tilt".into(),
                    port: 10350,
                },
                Port {
                    name: "web".into(),
                    port: 8000,
                },
            ],
            ready_at: Some("2030-01-01T00:00:00Z".parse().unwrap()),
        };
        let written = ObjectMeta {
            labels: Some(status.labels()),
            annotations: Some(status.annotations()),
            ..ObjectMeta::default()
        };
        assert!(status_is_current(&written, &status));
        assert!(!status_is_current(&ObjectMeta::default(), &status));
        // A missing phase label reads as Pending, but Pending must still be written.
        let pending = EnvStatus::default();
        assert!(!status_is_current(&ObjectMeta::default(), &pending));
        let moved_on = EnvStatus {
            message: Some("runner starting".into()),
            phase: Phase::Starting,
            ..status.clone()
        };
        assert!(!status_is_current(&written, &moved_on));
    }

    #[test]
    fn retry_delay_doubles_up_to_a_minute() {
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(2), Duration::from_secs(1));
        assert_eq!(retry_delay(4), Duration::from_secs(4));
        assert_eq!(retry_delay(100), Duration::from_secs(60));
    }

    #[test]
    fn event_notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(600);
        let cut_note = cut(note, 1000);
        assert_eq!(cut_note.len(), 1000);
        assert!(cut("short".into(), 1000) == "short");
        assert_eq!(cut("aé".into(), 2), "a");
    }
}
