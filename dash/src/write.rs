//! Every write the dashboard makes to the cluster, and the reads right before them. Nothing here
//! decides anything: the decisions are [`crate::decide`]'s, passed in, and are made again on
//! what the API server has when someone wrote meanwhile.
//!
//! Each write is counted in `ephdash_configmap_writes_total` by action and outcome, and waits
//! (briefly) for the cache to show it, so the answer shows what was done.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};

use crate::decide::Refusal;
use crate::state::AppState;

/// Field manager of the dashboard's writes.
pub const FIELD_MANAGER: &str = "ephdash";
/// Attempts of an extend whose precondition failed (someone wrote meanwhile).
const EXTEND_ATTEMPTS: usize = 3;
/// Longest wait for the env cache to show a write the user just made.
const CACHE_CATCH_UP: Duration = Duration::from_secs(2);

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// The cluster's state refuses it (the name is taken, the env is gone, it kept changing).
    Refused(Refusal),
    /// The API server failed or did not answer.
    Cluster(kube::Error),
}

impl From<kube::Error> for WriteError {
    fn from(error: kube::Error) -> Self {
        WriteError::Cluster(error)
    }
}

fn api(state: &AppState) -> Api<ConfigMap> {
    Api::namespaced(state.client.clone(), &state.namespace)
}

/// Creates `config_map`, never over an existing one.
pub async fn create(state: &AppState, config_map: &ConfigMap) -> Result<(), WriteError> {
    let name = config_map.metadata.name.clone().unwrap_or_default();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    match api(state).create(&params, config_map).await {
        Ok(_) => {
            state.metrics.write("create", "ok");
            cache_catches_up(state, &name, true).await;
            Ok(())
        }
        // AlreadyExists: never an overwrite.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            state.metrics.write("create", "conflict");
            Err(WriteError::Refused(Refusal::Conflict(name)))
        }
        Err(error) => {
            state.metrics.write("create", "error");
            Err(error.into())
        }
    }
}

/// Extends env `name` with the patch `decide` makes of what is there (see [`patch`]). Returns
/// the new deadline.
pub async fn extend(
    state: &AppState,
    name: &str,
    decide: impl Fn(Option<&ConfigMap>) -> Result<(serde_json::Value, Timestamp), Refusal>,
) -> Result<Timestamp, WriteError> {
    patch(state, name, "extend", decide).await
}

/// Patches env `name` with the merge patch `decide` makes of what is there: first the cached
/// ConfigMap, then, each time someone wrote meanwhile (the patch's `resourceVersion` is a
/// precondition: ephctrl's fill-in, another click), what the API server has now. Returns what
/// `decide` said beside the patch; counted under `action`.
pub async fn patch<T>(
    state: &AppState,
    name: &str,
    action: &'static str,
    decide: impl Fn(Option<&ConfigMap>) -> Result<(serde_json::Value, T), Refusal>,
) -> Result<T, WriteError> {
    let api = api(state);
    let mut config_map = state.cached(name).map(|cm| (*cm).clone());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    for _ in 0..EXTEND_ATTEMPTS {
        let (patch, to) = decide(config_map.as_ref()).map_err(WriteError::Refused)?;
        match api.patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(patched) => {
                state.metrics.write(action, "ok");
                let before = config_map.as_ref().and_then(|cm| cm.resource_version());
                // A patch that changed nothing leaves the resourceVersion: nothing to wait for.
                if patched.resource_version() != before {
                    cache_moves_on(state, name, before.as_deref()).await;
                }
                return Ok(to);
            }
            // Decide again on what is there now, never over it.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                state.metrics.write(action, "conflict");
                config_map = api.get_opt(name).await?;
            }
            Err(error) => {
                state.metrics.write(action, "error");
                return Err(error.into());
            }
        }
    }
    Err(WriteError::Refused(Refusal::Broken {
        env: name.to_string(),
        reason: "it kept changing meanwhile; try again".to_string(),
    }))
}

/// Deletes env `name` if `decide` allows it on what the API server has now (read fresh: the
/// labels and the owner are checked on what is deleted, not on a cache); `decide` gives the
/// uid that must still be the one deleted.
pub async fn delete(
    state: &AppState,
    name: &str,
    decide: impl FnOnce(Option<&ConfigMap>) -> Result<String, Refusal>,
) -> Result<(), WriteError> {
    let api = api(state);
    let current = api.get_opt(name).await?;
    let uid = decide(current.as_ref()).map_err(WriteError::Refused)?;
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => {
            state.metrics.write("delete", "ok");
            cache_catches_up(state, name, false).await;
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            state.metrics.write("delete", "gone");
            Err(WriteError::Refused(Refusal::NoSuchEnv(name.to_string())))
        }
        Err(error) => {
            state.metrics.write("delete", "error");
            Err(error.into())
        }
    }
}

/// Records an Event about env ConfigMap `config_map` (never waits: see
/// `ephemerator_kit::events`).
pub fn record(state: &AppState, config_map: &ConfigMap, reason: &str, note: String) {
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: config_map.metadata.name.clone(),
        namespace: Some(state.namespace.clone()),
        uid: config_map.metadata.uid.clone(),
        ..Default::default()
    };
    state.audit.publish(
        regarding,
        ephemerator_kit::events::EventType::Normal,
        reason,
        note,
    );
}

/// Waits until the cache shows env `name` (`present`) or not, at most [`CACHE_CATCH_UP`]
/// (the watch event usually arrives within milliseconds).
async fn cache_catches_up(state: &AppState, name: &str, present: bool) {
    let until = tokio::time::Instant::now() + CACHE_CATCH_UP;
    while state.cached(name).is_some() != present && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the cache shows env `name` at another resourceVersion than `before` (the one a
/// patch was decided on), at most [`CACHE_CATCH_UP`]: a page rendered right after a patch shows
/// it (the keep-awake button turned, the share link listed).
async fn cache_moves_on(state: &AppState, name: &str, before: Option<&str>) {
    let until = tokio::time::Instant::now() + CACHE_CATCH_UP;
    while state
        .cached(name)
        .is_some_and(|cm| cm.resource_version().as_deref() == before)
        && tokio::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
