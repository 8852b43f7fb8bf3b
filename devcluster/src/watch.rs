//! Watch streams: newline-delimited JSON events, as the real API server sends them.
//!
//! Each watch runs as a task that reads the store's per-type change channel, filters by
//! namespace and selectors (turning selector transitions into ADDED/DELETED as the real watch
//! cache does), adds bookmarks, and writes into a small bounded channel the HTTP body drains.
//! A watcher whose client stops reading falls behind the change channel and is closed; writers
//! never wait for it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::representation::Representation;
use crate::resources::ResourceType;
use crate::selectors::Selectors;
use crate::store::{EventKind, Store, StoreEvent, events, meta};

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub resource: &'static ResourceType,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    /// `resourceVersion`: None (unset or "0") starts with the current objects.
    pub resource_version: Option<u64>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    /// Objects as they are, or Tables / PartialObjectMetadata (from the Accept header).
    pub representation: Representation,
}

/// Server-wide watch settings.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub bookmark_interval: Duration,
}

/// Events buffered between the watch task and the HTTP body.
const OUTPUT_BUFFER: usize = 256;

fn encode_event(event_type: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        event_type: &'a str,
        object: &'a Value,
    }
    let mut line = serde_json::to_vec(&Event { event_type, object }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata});
    encode_event("BOOKMARK", &object)
}

/// One change in the watch's representation; `first` is cleared once a change is sent.
fn encode_change(
    req: &WatchRequest,
    event_type: &str,
    obj: &Arc<Value>,
    first: &mut bool,
) -> Bytes {
    let rendered = req.representation.watch_object(req.resource, obj, *first);
    *first = false;
    match rendered {
        Some(rendered) => encode_event(event_type, &rendered),
        None => encode_event(event_type, obj),
    }
}

/// An ERROR event carrying a Status (e.g. 410 Expired), sent with HTTP 200 like the real server.
pub fn error_event(err: &ApiError) -> Bytes {
    encode_event("ERROR", &err.to_status())
}

/// The watch event (if any) this change means for a watcher with `selectors`, with the
/// object in the watched type's form (selectors match the stored form).
fn translate(req: &WatchRequest, ev: &StoreEvent) -> Option<(&'static str, Arc<Value>)> {
    let (event_type, stored) = select(req, ev)?;
    Some((event_type, events::present(req.resource, &stored)))
}

fn select(req: &WatchRequest, ev: &StoreEvent) -> Option<(&'static str, Arc<Value>)> {
    if let Some(ns) = &req.namespace
        && req.resource.namespaced
        && meta::namespace(&ev.object) != ns
    {
        return None;
    }
    let now = req.selectors.matches(&ev.object);
    match ev.kind {
        EventKind::Added => now.then(|| ("ADDED", ev.object.clone())),
        EventKind::Deleted => now.then(|| ("DELETED", ev.object.clone())),
        EventKind::Modified => {
            let before = ev
                .previous
                .as_deref()
                .is_some_and(|p| req.selectors.matches(p));
            match (before, now) {
                (true, true) => Some(("MODIFIED", ev.object.clone())),
                (false, true) => Some(("ADDED", ev.object.clone())),
                (true, false) => Some(("DELETED", ev.object.clone())),
                (false, false) => None,
            }
        }
    }
}

/// Starts a watch; the receiver yields the encoded events until the watch ends.
/// `drop_signal` changes when the fault injector drops every watch.
pub fn start(
    store: &Store,
    req: WatchRequest,
    settings: &WatchSettings,
    mut drop_signal: tokio::sync::watch::Receiver<u64>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(OUTPUT_BUFFER);
    let after = if req.send_initial_events {
        None
    } else {
        req.resource_version
    };
    let started = store.watch(req.resource, req.namespace.as_deref(), after);
    let store = store.clone();
    let bookmark_interval = settings.bookmark_interval;
    drop_signal.mark_unchanged();
    actix_web::rt::spawn(async move {
        let (initial, start_rv, mut changes) = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(error_event(&e)).await;
                return;
            }
        };
        // Whether the next change is the watch's first (Tables carry their columns once).
        let mut first = true;
        for ev in &initial {
            if let Some((t, obj)) = translate(&req, ev)
                && tx
                    .send(encode_change(&req, t, &obj, &mut first))
                    .await
                    .is_err()
            {
                return;
            }
        }
        if req.send_initial_events
            && req.allow_bookmarks
            && tx
                .send(bookmark(req.resource, start_rv, true))
                .await
                .is_err()
        {
            return;
        }
        let deadline = req.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(bookmark_interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(ev) => {
                        if let Some((t, obj)) = translate(&req, &ev) && tx.send(encode_change(&req, t, &obj, &mut first)).await.is_err() {
                            return;
                        }
                    }
                    // Too slow: close, the client resumes from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::info!(resource = req.resource.plural, missed = n, "closing a watch that fell behind");
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if req.allow_bookmarks => {
                    if let Some(rv) = store.bookmark_version(&changes) && tx.send(bookmark(req.resource, rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = drop_signal.changed() => return,
                _ = timeout => return,
                _ = tx.closed() => return,
            }
        }
    });
    rx
}
