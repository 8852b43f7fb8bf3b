//! The reconcile loop of one env ConfigMap: gather what the plan needs (caches, memory, Tilt),
//! [`plan`](crate::plan::plan) it, [`execute`](crate::execute::execute) the plan.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracing::{Instrument, debug, info_span, warn};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::execute::execute;
use crate::memory::{EnvMemory, PortMemory};
use crate::observe::{self, Ownership};
use crate::plan::{self, Inputs, Observed, Plan};

/// Reconciles one env ConfigMap. Runs in a span carrying the env name, so every log line of
/// the reconcile names it.
pub async fn reconcile(config_map: Arc<ConfigMap>, ctx: Arc<Context>) -> Result<Action> {
    // A standby keeps its caches warm and does nothing else; it reconciles every env when it
    // takes the lead.
    if !ctx.leadership.is_leading() {
        return Ok(Action::await_change());
    }
    let name = config_map.name_any();
    let span = info_span!("reconcile", env = %name);
    async move {
        ctx.metrics.reconciled();
        let action = reconcile_env(&config_map, &ctx).await?;
        ctx.memory.succeeded(&name);
        Ok(action)
    }
    .instrument(span)
    .await
}

/// Counts and logs a failed reconcile and retries with a per-env exponential backoff (0.5 s
/// doubling up to 60 s), so a burst of API errors never turns into a hot loop.
pub fn error_policy(config_map: Arc<ConfigMap>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = config_map.name_any();
    if matches!(error, Error::NotLeading) {
        debug!(env = %name, "stopped leading mid-reconcile; the leader takes it from here");
        return Action::await_change();
    }
    ctx.metrics.failed(error.metric_label());
    let failures = ctx.memory.failed(&name);
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
    let name = config_map.name_any();
    let uid = config_map.uid().ok_or_else(|| Error::MissingMetadata {
        kind: "ConfigMap",
        name: name.clone(),
        field: "metadata.uid",
    })?;
    debug!("reconciling");
    ctx.wait_for_child_stores().await;
    let deployment = cached(&ctx.deployments, &ctx.namespace, &name);
    let service = cached(&ctx.services, &ctx.namespace, &name);
    let ingress = cached(&ctx.ingresses, &ctx.namespace, &name);
    let ownership = |meta| observe::ownership(meta, &name, &uid);
    let observed = Observed {
        deployment: deployment.as_deref().map(|d| (ownership(&d.metadata), d)),
        service: service
            .as_deref()
            .map(|s| (ownership(&s.metadata), &s.metadata)),
        ingress: ingress
            .as_deref()
            .map(|i| (ownership(&i.metadata), &i.metadata)),
    };
    let mut memory = ctx.memory.of(&name);
    let tilt_token = match observed.deployment {
        Some((Ownership::Ours, deployment)) if deployment.tilt_token.is_some() => {
            deployment.tilt_token.clone().unwrap_or_default()
        }
        // Not in the cache (yet): the token this env's runner was last given, else a new one.
        _ => match memory.runner_token_for(&uid) {
            Some(token) => token.to_string(),
            None => new_tilt_token()?,
        },
    };
    let dashboard_url = ctx.dashboard_url();
    let mut plan = make_plan(
        ctx,
        config_map,
        &memory,
        observed,
        &tilt_token,
        &dashboard_url,
        false,
    );
    if let Some(runner) = plan.ask_tilt.take() {
        ask_tilt(ctx, &name, &tilt_token, runner, memory.ports()).await;
        memory = ctx.memory.of(&name);
        plan = make_plan(
            ctx,
            config_map,
            &memory,
            observed,
            &tilt_token,
            &dashboard_url,
            true,
        );
    }
    let requeue = plan.requeue;
    let seen_runner = observed.deployment.map(|(_, deployment)| deployment);
    execute(ctx, config_map, seen_runner, &tilt_token, plan).await?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn make_plan(
    ctx: &Context,
    config_map: &ConfigMap,
    memory: &EnvMemory,
    observed: Observed,
    tilt_token: &str,
    dashboard_url: &str,
    tilt_answered: bool,
) -> Plan {
    let name = config_map.name_any();
    let last_activity = last_activity(ctx, &name, config_map.uid().as_deref().unwrap_or_default());
    // One config for the whole plan, even if a reload lands meanwhile.
    let config = ctx.config.current();
    let config_digest = crate::desired::children_config_digest(&config);
    plan::plan(&Inputs {
        config: &config,
        config_digest,
        namespace: &ctx.namespace,
        now: Timestamp::now(),
        config_map,
        memory,
        observed,
        tilt_token,
        dashboard_url,
        tilt_polls: ctx.tilt_polls,
        tilt_answered,
        last_activity,
    })
}

/// When a person last used env `name` (the ConfigMap with `uid`), as its activity Lease says.
/// A Lease of an earlier env of the name, or one that is not the gateway's, says nothing.
fn last_activity(ctx: &Context, name: &str, uid: &str) -> Option<Timestamp> {
    let lease = cached(
        &ctx.leases,
        &ctx.namespace,
        &ephemerator_core::activity::lease_name(name),
    )?;
    let of_this_env = crate::watches::activity_of(&lease) == Some(name)
        && lease
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| owner.kind == "ConfigMap" && owner.uid == uid);
    of_this_env
        .then(|| lease.spec.as_ref()?.renew_time.as_ref().map(|time| time.0))
        .flatten()
}

/// Asks the runner's Tilt for its view and remembers the answer. Failures are remembered too,
/// for the env's message, and asked about again later; they never fail the reconcile (the env
/// keeps Tilt's own port and whatever was found before).
async fn ask_tilt(ctx: &Context, name: &str, token: &str, runner: String, known: &PortMemory) {
    let now = Timestamp::now();
    let base_url = ctx.tilt_base_url(name);
    let ports = match ctx.tilt.ask(&base_url, token).await {
        Ok(state) => {
            debug!(ports = ?state.ports, pending = state.pending(), "asked Tilt for ports");
            PortMemory {
                pending: state.pending(),
                note: state.summary(),
                discovered: state.ports,
                for_runner: Some(runner),
                polled_at: Some(now),
            }
        }
        Err(error) => {
            warn!(%error, "asking Tilt for its view failed; asking again later");
            let same_runner = known.for_runner.as_deref() == Some(runner.as_str());
            PortMemory {
                discovered: if same_runner {
                    known.discovered.clone()
                } else {
                    Vec::new()
                },
                for_runner: Some(runner),
                pending: true,
                polled_at: Some(now),
                note: Some(format!(
                    "the app's ports are not known yet: {}",
                    error.summary()
                )),
            }
        }
    };
    ctx.memory.polled_ports(name, ports);
}

/// The object named `name` in `store`, if any.
fn cached<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

/// A fresh Tilt token: 32 random bytes as hex. Without randomness the reconcile fails (and is
/// retried) rather than give a runner a guessable token it would keep for ever.
fn new_tilt_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| Error::Randomness(error.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_a_minute() {
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(2), Duration::from_secs(1));
        assert_eq!(retry_delay(4), Duration::from_secs(4));
        assert_eq!(retry_delay(100), Duration::from_secs(60));
    }

    #[test]
    fn tilt_tokens_are_random_hex() {
        let (a, b) = (new_tilt_token().unwrap(), new_tilt_token().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
