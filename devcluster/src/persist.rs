//! Persistence of the store to a data directory, so state survives restarts: one JSON file
//! written atomically (temporary file + rename) shortly after changes (debounced).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resources;
use crate::store::Store;

/// The state file inside the data directory.
pub const STATE_FILE: &str = "devcluster-state.json";

/// How long after a change the state is written (more changes in between share the write).
pub const DEBOUNCE: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid devcluster state file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
struct StoredObject {
    #[serde(rename = "apiVersion")]
    api_version: String,
    resource: String,
    object: Value,
}

#[derive(Deserialize)]
struct StateFile {
    #[serde(rename = "resourceVersion")]
    resource_version: u64,
    objects: Vec<StoredObject>,
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Loads `dir`'s state into an empty store. Returns false when there is no state yet.
pub fn load(dir: &Path, store: &Store) -> Result<bool, PersistError> {
    let path = state_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    let corrupt = |reason: String| PersistError::Corrupt {
        path: path.clone(),
        reason,
    };
    let state: StateFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut objects = Vec::with_capacity(state.objects.len());
    for (i, o) in state.objects.into_iter().enumerate() {
        let (group, version) = match o.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", o.api_version.as_str()),
        };
        let rt = resources::lookup(group, version, &o.resource).ok_or_else(|| {
            corrupt(format!(
                "object {i} has a type this server does not serve: {}/{}",
                o.api_version, o.resource
            ))
        })?;
        if !o.object.is_object()
            || o.object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_none()
        {
            return Err(corrupt(format!("object {i} has no metadata.name")));
        }
        objects.push((rt, o.object));
    }
    store
        .restore(state.resource_version, objects)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(true)
}

/// The on-disk form of one object, borrowed from the store (no copy of the tree).
#[derive(Serialize)]
struct SavedObject<'a> {
    #[serde(rename = "apiVersion")]
    api_version: String,
    resource: &'static str,
    object: &'a Value,
}

#[derive(Serialize)]
struct SavedState<'a> {
    #[serde(rename = "resourceVersion")]
    resource_version: u64,
    objects: Vec<SavedObject<'a>>,
}

/// Writes the store's current state to `dir` atomically.
pub fn save(dir: &Path, store: &Store) -> Result<(), PersistError> {
    let path = state_path(dir);
    let (rv, objects) = store.snapshot();
    let state = SavedState {
        resource_version: rv,
        objects: objects
            .iter()
            .map(|(rt, obj)| SavedObject {
                api_version: rt.api_version(),
                resource: rt.plural,
                object: obj,
            })
            .collect(),
    };
    let write_err = |source| PersistError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let bytes = serde_json::to_vec(&state).map_err(|e| write_err(std::io::Error::other(e)))?;
    std::fs::write(&tmp, bytes).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(())
}

/// Writes the state after changes, debounced, until `shutdown` fires; then writes once more.
pub fn spawn_writer(
    dir: PathBuf,
    store: Store,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = store.changed().notified() => {
                    tokio::select! {
                        _ = tokio::time::sleep(DEBOUNCE) => {}
                        _ = &mut shutdown => break,
                    }
                    write_logged(&dir, &store).await;
                }
                _ = &mut shutdown => break,
            }
        }
        write_logged(&dir, &store).await;
    })
}

async fn write_logged(dir: &Path, store: &Store) {
    let (dir, store) = (dir.to_path_buf(), store.clone());
    let result = tokio::task::spawn_blocking(move || save(&dir, &store)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "persisting devcluster state"),
        Err(e) => tracing::error!(error = %e, "persisting devcluster state"),
    }
}
