//! The reconcile loop of one env ConfigMap: parse and expire, validate, check for foreign
//! objects, apply the children, and report the status back on the ConfigMap.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
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
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cached::{ChildMeta, RunnerDeployment};
use crate::context::{AppliedChild, ChildKind, Context, FIELD_MANAGER, PortMemory, StatusWrite};
use crate::desired::{self, Observed};
use crate::error::{Error, Result};
use crate::events::EventType;
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
    let mut shown = ShownStatus::of(ctx, config_map);

    let mut env = match Env::from_config_map(config_map) {
        Ok(env) => env,
        Err(error) if error.field == format!("data.{EXPIRATION_KEY}") => {
            // Never a reason to delete anything: the env keeps what it has and says why.
            let status = EnvStatus {
                phase: Phase::Failed,
                message: Some(format!("{error}; the env is kept until it is fixed")),
                ..shown.status.clone()
            };
            write_status(ctx, config_map, &shown, status).await?;
            return Ok(Action::await_change());
        }
        Err(error) => return reject(ctx, config_map, &shown, &uid, error.to_string()).await,
    };

    let now = Timestamp::now();
    let expiration = match env.expiration {
        Some(expiration) => expiration,
        None => {
            let (expiration, version) = fill_in_expiration(ctx, config_map, now).await?;
            // The cache may show the ConfigMap before or after the fill-in for a while.
            shown.versions.push(version);
            expiration
        }
    };
    env.expiration = Some(expiration);
    let policy = ctx.config.expiration;
    let created = config_map.creation_timestamp().map(|time| time.0);
    // An expiration written past the allowed lifetime (by hand, say) is held to the lifetime.
    let deadline = created
        .and_then(|created| created.checked_add(policy.max_lifetime).ok())
        .map_or(expiration, |limit| expiration.min(limit));
    let schedule = expiry::schedule(created, deadline, Some(policy.warn_before));
    let (warned, port_memory) = ctx.recall(&name, |memory| {
        (memory.warned_for == Some(deadline), memory.ports.clone())
    });
    let due = expiry::due(now, &schedule, warned);
    if due == Due::Expire {
        expire(ctx, config_map, &env, &uid).await?;
        return Ok(Action::await_change());
    }

    if !is_valid_env_name(&name) {
        let reason = "metadata.name: must be a DNS label of at most 63 characters (lowercase \
                      letters, digits and -, starting with a letter) without ---";
        return reject(ctx, config_map, &shown, &uid, reason.to_string()).await;
    }
    if let Err(errors) = ctx.config.validate_spec(&env.spec) {
        return reject(ctx, config_map, &shown, &uid, errors.to_string()).await;
    }
    if due == Due::Warn {
        ctx.notifier.send(Notice::ExpiresSoon {
            env: name.clone(),
            owner: env.owner.clone(),
            at: deadline,
            // The dashboard, where the env is extended.
            url: Some(format!("http://{}/", ctx.config.gateway_host)),
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
    if due != Due::Warn && !warned {
        deadlines.extend(schedule.warn_at);
    }

    if let Some(conflict) = check_children(ctx, &name, &uid).await? {
        let status = EnvStatus {
            phase: Phase::Failed,
            message: Some(conflict),
            ports: Vec::new(),
            ready_at: shown.status.ready_at,
        };
        write_status(ctx, config_map, &shown, status).await?;
        // Re-checked now and then: the foreign object may be removed by its owner.
        return Ok(requeue(
            now,
            deadlines
                .into_iter()
                .chain([now.saturating_add(FAILED_RECHECK).unwrap_or(Timestamp::MAX)]),
        ));
    }

    let observed_deployment = ours(&ctx.deployments, &ctx.namespace, &name, &uid);
    let observed_token = match observed_deployment.as_ref() {
        Some(deployment) => deployment.tilt_token.clone(),
        // Not in the cache (yet): the token this env's runner was last given, if any.
        None => ctx.recall(&name, |memory| {
            memory
                .runner_token
                .as_ref()
                .filter(|(for_uid, _)| *for_uid == uid)
                .map(|(_, token)| token.clone())
        }),
    };
    let template_hash = env.spec.fingerprint();
    let runner = observe::runner_state(observed_deployment.as_deref(), &template_hash);
    let (discovered_ports, next_poll) = discover_ports(
        ctx,
        &env,
        &port_memory,
        runner.phase == Phase::Ready,
        observed_token.as_deref(),
        &template_hash,
        now,
    )
    .await;
    deadlines.extend(next_poll);
    // Tilt's own port is the config's `tiltPort`, which discovery (knowing only Tilt's
    // default) may have reported as an app port; `exposed_ports` keeps it once, as `tilt`.
    let ports = desired::exposed_ports(&env, &ctx.config, &discovered_ports);
    let tilt_token = observed_token.unwrap_or_else(new_tilt_token);
    let inputs = children_inputs(&env, &uid, &tilt_token, &ports);

    let observed_service = ours(&ctx.services, &ctx.namespace, &name, &uid);
    let observed_ingress = ours(&ctx.ingresses, &ctx.namespace, &name, &uid);
    let needs_apply = |kind: ChildKind, observed: Option<&ObjectMeta>| {
        !ctx.recall(&name, |memory| {
            is_applied(
                memory.applied[kind as usize].as_ref(),
                kind,
                inputs,
                observed,
            )
        })
    };
    let apply_deployment = needs_apply(
        ChildKind::Deployment,
        observed_deployment.as_deref().map(|d| &d.metadata),
    );
    let apply_service = needs_apply(
        ChildKind::Service,
        observed_service.as_deref().map(|s| &s.metadata),
    );
    let apply_ingress = ctx.config.ingress.enabled
        && needs_apply(
            ChildKind::Ingress,
            observed_ingress.as_deref().map(|i| &i.metadata),
        );
    // Ingress mode was switched off: ours goes.
    let delete_ingress = !ctx.config.ingress.enabled && observed_ingress.is_some();

    let mut applied_deployment = None;
    if apply_deployment || apply_service || apply_ingress || delete_ingress {
        // Built only when something is written: an env whose children are in place costs no
        // more than the lookups above.
        let owner = desired::owner_reference(&name, &uid);
        let children = desired::desired_children(
            &env,
            &ctx.config,
            &ctx.namespace,
            &owner,
            &Observed {
                tilt_token: Some(tilt_token.clone()),
                discovered_ports,
            },
            String::new,
        );
        if apply_deployment {
            ctx.remember(&name, |memory| {
                memory.runner_token = Some((uid.clone(), tilt_token.clone()));
            });
        }
        // The children do not depend on each other: written at once.
        let deployment = async {
            if apply_deployment {
                apply_child::<RunnerDeployment, _>(
                    ctx,
                    &name,
                    ChildKind::Deployment,
                    inputs,
                    &children.deployment,
                )
                .await
                .map(Some)
            } else {
                Ok(None)
            }
        };
        let service = async {
            if apply_service {
                apply_child::<ChildMeta<Service>, _>(
                    ctx,
                    &name,
                    ChildKind::Service,
                    inputs,
                    &children.service,
                )
                .await?;
            }
            Ok(())
        };
        let ingress = async {
            match &children.ingress {
                Some(ingress) if apply_ingress => {
                    apply_child::<ChildMeta<Ingress>, _>(
                        ctx,
                        &name,
                        ChildKind::Ingress,
                        inputs,
                        ingress,
                    )
                    .await?;
                }
                None if delete_ingress => delete_child::<Ingress>(ctx, &name).await?,
                _ => {}
            }
            Ok::<_, Error>(())
        };
        let (deployment, (), ()) = futures::try_join!(deployment, service, ingress)?;
        applied_deployment = deployment;
    }

    // The apply's answer is fresher than the store.
    let runner = match &applied_deployment {
        Some(deployment) => observe::runner_state(Some(deployment), &template_hash),
        None => runner,
    };
    let ready_at = shown
        .status
        .ready_at
        .or_else(|| (runner.phase == Phase::Ready).then_some(now));
    let first_ready = shown.status.ready_at.is_none() && ready_at.is_some();
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
        ports: normalize_ports(ports),
        ready_at,
    };
    write_status(ctx, config_map, &shown, status).await?;
    Ok(requeue(now, deadlines))
}

/// The env's status as the controller knows it: the cached ConfigMap's, unless the cache still
/// shows the ConfigMap from before the controller's last status write (watch events of
/// different kinds can arrive in any order), in which case that write's status.
#[derive(Debug, Clone)]
struct ShownStatus {
    status: EnvStatus,
    /// Whether `status` is what the cached ConfigMap shows (else it is the last write's).
    cached: bool,
    /// The resourceVersions of the ConfigMap a status write now builds on.
    versions: Vec<String>,
}

impl ShownStatus {
    fn of(ctx: &Context, config_map: &ConfigMap) -> ShownStatus {
        let version = config_map.resource_version().unwrap_or_default();
        let last_write = ctx.recall(&config_map.name_any(), |memory| {
            memory
                .status_written
                .as_ref()
                .filter(|write| write.from_versions.contains(&version))
                .cloned()
        });
        match last_write {
            Some(write) => {
                // Still lagging: every version before that write, and the write's own, is
                // older than a write made now.
                let mut versions = write.from_versions;
                versions.push(write.to_version);
                let excess = versions.len().saturating_sub(MAX_LAGGING_VERSIONS);
                versions.drain(..excess);
                ShownStatus {
                    status: write.status,
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
}

/// Most ConfigMap versions remembered as older than the last status write (the cache lags by
/// a few events at most; the bound keeps a stuck watch from growing the memory).
const MAX_LAGGING_VERSIONS: usize = 8;

/// A digest of everything the desired children are built from besides the config (fixed for
/// the life of the process): an unchanged digest means unchanged children, found without
/// building or serializing them.
fn children_inputs(env: &Env, config_map_uid: &str, tilt_token: &str, ports: &[Port]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    (
        &env.name,
        config_map_uid,
        &env.spec.repo,
        &env.spec.branch,
        &env.spec.path,
        tilt_token,
        ports,
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// Whether the child `observed` is exactly what the controller last applied from `inputs`,
/// untouched since.
fn is_applied(
    record: Option<&AppliedChild>,
    kind: ChildKind,
    inputs: u64,
    observed: Option<&ObjectMeta>,
) -> bool {
    let (Some(record), Some(observed)) = (record, observed) else {
        return false;
    };
    record.inputs == inputs
        && observed.uid.as_deref() == Some(record.uid.as_str())
        && spec_version(kind, observed).as_deref() == Some(record.spec_version.as_str())
}

/// What changes when a child's spec changes: a Deployment's generation (its status writes
/// leave it alone), the resourceVersion of the others.
fn spec_version(kind: ChildKind, meta: &ObjectMeta) -> Option<String> {
    match kind {
        ChildKind::Deployment => meta.generation.map(|generation| generation.to_string()),
        ChildKind::Service | ChildKind::Ingress => meta.resource_version.clone(),
    }
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
/// Returns the expiration and the ConfigMap's new resourceVersion.
async fn fill_in_expiration(
    ctx: &Context,
    config_map: &ConfigMap,
    now: Timestamp,
) -> Result<(Timestamp, String)> {
    let expiration = ctx.config.expiration.initial_expiration(now);
    let patch = json!({
        "metadata": { "resourceVersion": config_map.resource_version() },
        "data": { EXPIRATION_KEY: expiration.to_string() },
    });
    let api: Api<ChildMeta<ConfigMap>> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patched = api
        .patch(&config_map.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    info!(%expiration, "set the default expiration");
    Ok((expiration, patched.resource_version().unwrap_or_default()))
}

/// Deletes an expired env ConfigMap; garbage collection removes its children.
async fn expire(ctx: &Context, config_map: &ConfigMap, env: &Env, uid: &str) -> Result<()> {
    let name = config_map.name_any();
    let api: Api<ChildMeta<ConfigMap>> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
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
    shown: &ShownStatus,
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
    write_status(ctx, config_map, shown, status).await?;
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
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let object = store.get(&ObjectRef::new(name).within(namespace))?;
    Some(observe::ownership(object.meta(), name, uid))
}

/// The child of that name from `store`, if it is ours.
fn ours<K>(store: &Store<K>, namespace: &str, name: &str, uid: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let object = store.get(&ObjectRef::new(name).within(namespace))?;
    (observe::ownership(object.meta(), name, uid) == Ownership::Ours).then_some(object)
}

/// Deletes a child of ours. The delete is guarded by the child's uid, read just before, so a
/// foreign object created meanwhile under that name is never deleted.
async fn delete_child<K>(ctx: &Context, name: &str) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    let api: Api<ChildMeta<K>> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let child_uid = api
        .get_opt(name)
        .await?
        .filter(|child| has_ephemerator_labels(child.metadata.labels.as_ref()))
        .and_then(|child| child.metadata.uid);
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
            let kind = K::kind(&());
            info!(
                kind = kind.as_ref(),
                "deleted a child that is no longer desired"
            );
            let index = match kind.as_ref() {
                "Deployment" => ChildKind::Deployment,
                "Service" => ChildKind::Service,
                _ => ChildKind::Ingress,
            };
            ctx.remember(name, |memory| memory.applied[index as usize] = None);
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Server-side applies a child with field manager `ephctrl`, forcing ownership of every field
/// it sets, and remembers what it applied (see [`is_applied`]). The answer is read as `O`, the
/// slim form the controller caches.
async fn apply_child<O, D>(
    ctx: &Context,
    name: &str,
    kind: ChildKind,
    inputs: u64,
    desired: &D,
) -> Result<O>
where
    O: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    D: Serialize + Debug,
{
    let api: Api<O> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api.patch(name, &params, &Patch::Apply(desired)).await?;
    debug!(kind = kind.as_str(), "applied");
    let meta = applied.meta();
    let record = AppliedChild {
        inputs,
        uid: meta.uid.clone().unwrap_or_default(),
        spec_version: spec_version(kind, meta).unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
    };
    ctx.remember(name, |memory| memory.applied[kind as usize] = Some(record));
    Ok(applied)
}

/// Reads the env's ports from its Tilt when that is useful: once per runner after it is
/// ready, then every [`PORT_POLL_INTERVAL`] while Tilt reports pending resources. Returns the
/// ports to expose and when to ask again. Failures are logged and retried; they never fail the
/// reconcile (the env keeps Tilt's own port and whatever was found before).
async fn discover_ports(
    ctx: &Context,
    env: &Env,
    memory: &PortMemory,
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
    let known = memory.for_runner.as_deref() == Some(runner.as_str());
    let known_ports = if known {
        memory.discovered.clone()
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
    if known && !memory.pending {
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
                memory.ports = PortMemory {
                    discovered: discovered.ports.clone(),
                    for_runner: Some(runner),
                    pending: discovered.pending,
                    polled_at: Some(now),
                };
            });
            let next = discovered.pending.then(|| next_poll_after(now));
            (discovered.ports, next)
        }
        Err(error) => {
            warn!(%error, %base_url, "asking Tilt for ports failed; trying again");
            ctx.remember(&env.name, |memory| {
                if !known {
                    memory.ports.discovered.clear();
                }
                memory.ports.for_runner = Some(runner);
                memory.ports.pending = true;
                memory.ports.polled_at = Some(now);
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
    shown: &ShownStatus,
    status: EnvStatus,
) -> Result<()> {
    let current = if shown.cached {
        status_is_current(&config_map.metadata, &status)
    } else {
        shown.status == read_back(&status)
    };
    if current {
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
    let api: Api<ChildMeta<ConfigMap>> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let written = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    let phase_changed = shown.status.phase != status.phase;
    if phase_changed {
        info!(from = %shown.status.phase, to = %status.phase, message = ?status.message, "phase changed");
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
    let write = StatusWrite {
        from_versions: shown.versions.clone(),
        to_version: written.resource_version().unwrap_or_default(),
        // As it reads back, so the next comparison is like for like.
        status: read_back(&status),
    };
    ctx.remember(&name, |memory| memory.status_written = Some(write));
    Ok(())
}

/// Whether `current` already shows `status` (as read back, so port order and formatting do not
/// matter), in which case no write is needed.
fn status_is_current(current: &ObjectMeta, status: &EnvStatus) -> bool {
    let labels_written = status
        .labels()
        .iter()
        .all(|(key, value)| current.labels.as_ref().and_then(|l| l.get(key)) == Some(value));
    labels_written && EnvStatus::from_meta(current) == read_back(status)
}

/// `status` as it reads back from the ConfigMap once written.
fn read_back(status: &EnvStatus) -> EnvStatus {
    EnvStatus::from_meta(&ObjectMeta {
        labels: Some(status.labels()),
        annotations: Some(status.annotations()),
        ..ObjectMeta::default()
    })
}

/// Queues an Event on the env ConfigMap; never holds up the reconcile.
fn publish_event(
    ctx: &Context,
    config_map: &ConfigMap,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.events
        .publish(config_map.object_ref(&()), type_, reason, note);
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
}
