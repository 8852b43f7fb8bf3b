//! Carries out a [`Plan`]: the writes, in order, and what the controller remembers of them.
//! Nothing here decides anything.

use std::fmt::Debug;

use ephemerator_core::env::{lifetime_patch, recorded_max_lifetime};
use ephemerator_core::labels::{WAKE_ANNOTATION, WARNED_FOR_ANNOTATION};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info};

use crate::cached::{ChildMeta, RunnerDeployment};
use crate::context::{Context, FIELD_MANAGER};
use crate::error::Result;
use crate::memory::{AppliedChild, StatusWrite};
use crate::observe::{AnswerNews, ChildKind};
use crate::plan::{Plan, PlannedEvent, read_back};

/// Carries out `plan` for `config_map`.
///
/// `seen_runner` is the runner Deployment the plan was made from (as cached): an apply whose
/// answer shows more is remembered as no echo.
pub async fn execute(
    ctx: &Context,
    config_map: &ConfigMap,
    seen_runner: Option<&RunnerDeployment>,
    tilt_token: &str,
    plan: Plan,
) -> Result<()> {
    let name = config_map.name_any();
    let shown = &plan.shown;
    let mut versions = shown.versions.clone();
    if plan.write_expiration.is_some() || plan.record_max_lifetime.is_some() {
        // The cache may show the ConfigMap before or after this write for a while.
        versions.push(write_lifetime(ctx, config_map, &plan).await?);
    }
    if let Some(expiry) = plan.expire {
        // Before the delete: its watch event must not read as someone else's deletion.
        ctx.memory.expiring(&name, true);
        let expired = expire(ctx, config_map).await;
        if !matches!(expired, Ok(true)) {
            ctx.memory.expiring(&name, false);
        }
        if expired? {
            ctx.metrics.expired();
            ctx.notifier.send(expiry.notice);
            publish(
                ctx,
                config_map,
                &PlannedEvent {
                    type_: crate::events::EventType::Normal,
                    reason: "Expired".to_string(),
                    note: "the env expired and was deleted".to_string(),
                },
            );
        }
        return Ok(());
    }
    if let Some(warning) = plan.warn {
        // Claimed on the ConfigMap first: of two replicas that both planned it (one that lost
        // the lead mid-reconcile, say), only the one whose claim lands sends it.
        let builds_on = versions.last().cloned().unwrap_or_default();
        let Some(claimed) = claim_warning(ctx, config_map, &builds_on, warning.deadline).await?
        else {
            debug!(
                "the env changed since it was read; the warning is planned again from the change"
            );
            return Ok(());
        };
        versions.push(claimed);
        ctx.memory.warned(&name, warning.deadline);
        ctx.notifier.send(warning.notice);
        publish(ctx, config_map, &warning.event);
    }
    for kind in &plan.delete {
        match kind {
            ChildKind::Deployment => delete_child::<Deployment>(ctx, &name, *kind).await?,
            ChildKind::Service => delete_child::<Service>(ctx, &name, *kind).await?,
            ChildKind::Ingress => delete_child::<Ingress>(ctx, &name, *kind).await?,
        }
    }
    if let Some(children) = &plan.children {
        let digest = plan.children_digest;
        let applies = |kind| plan.apply.contains(&kind);
        if applies(ChildKind::Deployment) {
            let uid = config_map.uid().unwrap_or_default();
            ctx.memory.gave_token(&name, &uid, tilt_token);
        }
        // The children do not depend on each other: written at once.
        let deployment = async {
            if applies(ChildKind::Deployment) {
                apply_child::<RunnerDeployment, _>(
                    ctx,
                    &name,
                    ChildKind::Deployment,
                    digest,
                    &children.deployment,
                    seen_runner,
                )
                .await?;
            }
            Ok::<_, crate::error::Error>(())
        };
        let service = async {
            if applies(ChildKind::Service) {
                apply_child::<ChildMeta<Service>, _>(
                    ctx,
                    &name,
                    ChildKind::Service,
                    digest,
                    &children.service,
                    None,
                )
                .await?;
            }
            Ok(())
        };
        let ingress = async {
            if let Some(ingress) = children
                .ingress
                .as_ref()
                .filter(|_| applies(ChildKind::Ingress))
            {
                apply_child::<ChildMeta<Ingress>, _>(
                    ctx,
                    &name,
                    ChildKind::Ingress,
                    digest,
                    ingress,
                    None,
                )
                .await?;
            }
            Ok(())
        };
        futures::try_join!(deployment, service, ingress)?;
    }
    if let Some(change) = plan.status {
        let builds_on = versions.last().cloned().unwrap_or_default();
        let Some(to_version) = write_status(ctx, config_map, &builds_on, &change.status).await?
        else {
            // Someone wrote the ConfigMap since: its watch event reconciles again, with it.
            debug!("the env changed since it was read; its status is written from the change");
            return Ok(());
        };
        if let Some(event) = &change.event {
            info!(from = %shown.status.phase, to = %change.status.phase, message = ?change.status.message, "phase changed");
            publish(ctx, config_map, event);
        }
        if let Some(latency) = change.first_ready_after {
            ctx.metrics.became_ready(latency);
        }
        if let Some(took) = change.woke_after {
            info!(took = ?took, "woke up");
            ctx.metrics.woke(took);
        }
        if change.falls_asleep {
            ctx.metrics.fell_asleep();
        }
        if let Some(notice) = change.notice {
            ctx.notifier.send(notice);
        }
        ctx.memory.wrote_status(
            &name,
            StatusWrite {
                from_versions: versions,
                to_version: to_version.clone(),
                // As it reads back, so the next comparison is like for like.
                status: read_back(&change.status),
            },
        );
        if plan.clear_wake {
            clear_wake(ctx, config_map, &to_version).await?;
        }
    } else if plan.clear_wake {
        let builds_on = versions.last().cloned().unwrap_or_default();
        clear_wake(ctx, config_map, &builds_on).await?;
    }
    Ok(())
}

/// Removes the wake annotation, which the status just written acted on, guarded by
/// `builds_on`: a wake asked for since is seen by the next reconcile, never lost (a conflict
/// leaves the annotation for it).
async fn clear_wake(ctx: &Context, config_map: &ConfigMap, builds_on: &str) -> Result<()> {
    patch_annotations(ctx, config_map, builds_on, json!({ WAKE_ANNOTATION: null }))
        .await
        .map(drop)
}

/// Writes `data.expiration` and the `maxLifetime` it was set under, guarded by the cached
/// resourceVersion: if anyone changed the ConfigMap meanwhile (an extend, say) the write fails
/// with a conflict and the next reconcile sees their value, which is never overwritten.
/// Returns the new resourceVersion.
async fn write_lifetime(ctx: &Context, config_map: &ConfigMap, plan: &Plan) -> Result<String> {
    ctx.check_leading()?;
    let api: Api<ChildMeta<ConfigMap>> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let max_lifetime = plan
        .record_max_lifetime
        .or_else(|| recorded_max_lifetime(&config_map.metadata))
        .unwrap_or_else(|| ctx.config.current().expiration.max_lifetime);
    let patch = lifetime_patch(
        &config_map.resource_version().unwrap_or_default(),
        plan.write_expiration,
        max_lifetime,
    );
    let patched = api
        .patch(&config_map.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    match plan.write_expiration {
        Some(expiration) => info!(%expiration, "wrote the expiration"),
        None => info!(?max_lifetime, "recorded the env's maximum lifetime"),
    }
    Ok(patched.resource_version().unwrap_or_default())
}

/// Deletes an expired env ConfigMap (only this one: a ConfigMap re-created under the same name
/// is a new env); garbage collection removes its children. Whether it was deleted now.
async fn expire(ctx: &Context, config_map: &ConfigMap) -> Result<bool> {
    ctx.check_leading()?;
    let api: Api<ChildMeta<ConfigMap>> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: config_map.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&config_map.name_any(), &params).await {
        Ok(_) => {
            info!("env expired and was deleted");
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            debug!("already gone or replaced");
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// Deletes a child of ours. The delete is guarded by the child's uid, read just before, so a
/// foreign object created meanwhile under that name is never deleted.
async fn delete_child<K>(ctx: &Context, name: &str, kind: ChildKind) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    ctx.check_leading()?;
    let api: Api<ChildMeta<K>> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let child_uid = api
        .get_opt(name)
        .await?
        .filter(|child| {
            ephemerator_core::labels::has_ephemerator_labels(child.metadata.labels.as_ref())
        })
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
        Ok(_) => info!(
            kind = kind.as_str(),
            "deleted a child that is no longer desired"
        ),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(error) => return Err(error.into()),
    }
    ctx.memory.deleted(name, kind);
    Ok(())
}

/// Server-side applies a child with field manager `ephctrl`, forcing ownership of every field
/// it sets, and remembers the apply. The answer is read as `O`, the slim form the controller
/// caches; `seen` is the cached child the plan was made from.
async fn apply_child<O, D>(
    ctx: &Context,
    name: &str,
    kind: ChildKind,
    digest: u64,
    desired: &D,
    seen: Option<&O>,
) -> Result<()>
where
    O: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + AnswerNews
        + Clone
        + DeserializeOwned
        + Debug,
    D: Serialize + Debug,
{
    ctx.check_leading()?;
    let api: Api<O> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api.patch(name, &params, &Patch::Apply(desired)).await?;
    let echo = !applied.shows_news_since(seen);
    debug!(kind = kind.as_str(), echo, "applied");
    ctx.memory.applied(
        name,
        kind,
        AppliedChild::new(kind, digest, applied.meta(), echo),
    );
    Ok(())
}

/// Applies the status: the phase label and the status annotations, never `data` (those are
/// ephctrl's alone, so the forced apply takes nothing from anyone). Returns the new
/// resourceVersion, or `None` when the ConfigMap is no longer at `builds_on`.
///
/// The apply is guarded by `builds_on`, the version the status was planned from: an apply
/// that changes nothing answers with the version of the last write, whoever made it, and the
/// controller would take that write's event (an extend, say) for the echo of its own.
async fn write_status(
    ctx: &Context,
    config_map: &ConfigMap,
    builds_on: &str,
    status: &ephemerator_core::EnvStatus,
) -> Result<Option<String>> {
    ctx.check_leading()?;
    let name = config_map.name_any();
    let patch = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": ctx.namespace,
            "uid": config_map.uid(),
            "resourceVersion": builds_on,
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
        .await;
    match written {
        Ok(written) => Ok(Some(written.resource_version().unwrap_or_default())),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Records on the ConfigMap that the owner is warned about `deadline`
/// ([`WARNED_FOR_ANNOTATION`]), guarded by `builds_on`. Returns the new resourceVersion, or
/// `None` when the ConfigMap is no longer at `builds_on` (someone else's write, or another
/// replica's claim, landed first).
async fn claim_warning(
    ctx: &Context,
    config_map: &ConfigMap,
    builds_on: &str,
    deadline: jiff::Timestamp,
) -> Result<Option<String>> {
    patch_annotations(
        ctx,
        config_map,
        builds_on,
        json!({ WARNED_FOR_ANNOTATION: deadline.to_string() }),
    )
    .await
}

/// Merge-patches `annotations` (`null` removes one) onto the ConfigMap, guarded by
/// `builds_on`. Returns the new resourceVersion, or `None` when the ConfigMap is no longer at
/// `builds_on`.
async fn patch_annotations(
    ctx: &Context,
    config_map: &ConfigMap,
    builds_on: &str,
    annotations: serde_json::Value,
) -> Result<Option<String>> {
    ctx.check_leading()?;
    let api: Api<ChildMeta<ConfigMap>> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patch = json!({
        "metadata": { "resourceVersion": builds_on, "annotations": annotations },
    });
    match api
        .patch(&config_map.name_any(), &params, &Patch::Merge(&patch))
        .await
    {
        Ok(written) => Ok(Some(written.resource_version().unwrap_or_default())),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Queues an Event on the env ConfigMap; never holds up the reconcile.
fn publish(ctx: &Context, config_map: &ConfigMap, event: &PlannedEvent) {
    ctx.events.publish(
        config_map.object_ref(&()),
        event.type_,
        &event.reason,
        event.note.clone(),
    );
}
