//! Events on env ConfigMaps (events.k8s.io/v1), written by one background writer so that
//! whoever records one (a reconcile, a request) never waits on it. ephctrl records phase
//! transitions; ephdash and ephgateway record what people do with share links.
//!
//! kube-runtime's `Recorder` keeps every Event it published for minutes (to merge repeats into
//! series) and scans that cache under a write lock on each publish; with thousands of envs that
//! is megabytes and a lock on the hot path. These Events rarely repeat, so each is simply
//! created under a name of its own and forgotten.

use std::future::Future;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;
use tracing::{Instrument, warn};

/// `reportingController` of every Event.
pub const REPORTING_CONTROLLER: &str = "ephemerator.tilt.dev/ephctrl";
/// The action of every Event (what the controller was doing).
pub const ACTION: &str = "Reconcile";
/// Events waiting to be written before new ones are dropped: a burst of transitions of
/// thousands of envs fits, and a stuck API server cannot grow the queue without bound.
pub const QUEUE_CAPACITY: usize = 1024;
/// Events written at once.
pub const WRITERS: usize = 4;
/// Longest `note` the API server accepts (bytes).
pub const MAX_NOTE_BYTES: usize = 1024;
/// Longest `reportingInstance` the API server accepts (bytes).
const MAX_INSTANCE_BYTES: usize = 128;

/// Whether an Event reports something normal or something the user should look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Progress.
    Normal,
    /// Rejections and failures.
    Warning,
}

impl EventType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Hands Events to the background writer. Cloning is cheap; all clones feed one writer.
#[derive(Clone, Debug)]
pub struct EventSink {
    sender: mpsc::Sender<(Event, tracing::Span)>,
    reporting_controller: &'static str,
    action: &'static str,
    reporting_instance: String,
}

/// The name of an Event about `regarding` at `at`: `<object>.<nanoseconds in hex>`, as
/// client-go's recorders name theirs. (Not `generateName: <object>.`: a real API server refuses
/// a prefix ending in a dot.)
pub fn event_name(regarding: &str, at: Timestamp) -> String {
    format!("{regarding}.{:x}", at.as_nanosecond())
}

/// The name of the one Event about `regarding` for `key` ([`EventSink::publish_once`]): the
/// object's name and 16 hex digits of a digest of the key (any key makes a valid name).
pub fn once_name(regarding: &str, key: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{regarding}.{hex}")
}

impl EventSink {
    /// The sink and its writer, which creates the Events in `namespace` until every sink is
    /// dropped. The writer must be polled (spawned or joined) for Events to be written.
    pub fn new(
        client: Client,
        namespace: &str,
        reporter: Reporter,
    ) -> (EventSink, impl Future<Output = ()> + Send + 'static) {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let api: Api<Event> = Api::namespaced(client, namespace);
        let writer = write_events(api, receiver);
        let sink = EventSink {
            sender,
            reporting_controller: reporter.controller,
            action: reporter.action,
            reporting_instance: cut(reporting_instance(reporter.server), MAX_INSTANCE_BYTES),
        };
        (sink, writer)
    }

    /// Queues an Event about `regarding`, stamped now so Events read back in the order they
    /// happened. Never waits: when the queue is full the Event is dropped with a warning.
    pub fn publish(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = self.event(regarding, type_, reason, note, Timestamp::now());
        self.queue(event);
    }

    /// Queues an Event about `regarding` that is recorded once, whichever replica (or restart)
    /// publishes it: named after `regarding` and `key`, so a second create of it is refused by
    /// the API server (and ignored). Once the API server has dropped it (Events live an hour by
    /// default), it may be recorded again.
    pub fn publish_once(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
        key: &str,
    ) {
        let mut event = self.event(regarding, type_, reason, note, Timestamp::now());
        let object = event
            .regarding
            .as_ref()
            .and_then(|regarding| regarding.name.clone())
            .unwrap_or_else(|| self.action.to_string());
        event.metadata.name = Some(once_name(&object, key));
        self.queue(event);
    }

    fn queue(&self, event: Event) {
        match self.sender.try_send((event, tracing::Span::current())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((event, _))) => {
                warn!(reason = ?event.reason, "the Event queue is full; an Event was dropped");
            }
            Err(mpsc::error::TrySendError::Closed((event, _))) => {
                warn!(reason = ?event.reason, "the Event writer has stopped; an Event was dropped");
            }
        }
    }

    /// The Event as it is created, named by [`event_name`].
    pub fn event(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
        at: Timestamp,
    ) -> Event {
        let name = event_name(regarding.name.as_deref().unwrap_or(self.action), at);
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(at)),
            action: Some(self.action.to_string()),
            reason: Some(reason.to_string()),
            note: Some(cut(note, MAX_NOTE_BYTES)),
            type_: Some(type_.as_str().to_string()),
            regarding: Some(regarding),
            reporting_controller: Some(self.reporting_controller.to_string()),
            reporting_instance: Some(self.reporting_instance.clone()),
            ..Event::default()
        }
    }
}

/// Who records Events, as the API has it.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    /// `reportingController`, e.g. `ephemerator.tilt.dev/ephctrl`.
    pub controller: &'static str,
    /// `action`, e.g. `Reconcile`.
    pub action: &'static str,
    /// The server's name, the instance's when no pod name is known.
    pub server: &'static str,
}

/// The name this process reports Events as: the pod's name (`POD_NAME`, else the `HOSTNAME`
/// Kubernetes sets to it), else `server`.
pub fn reporting_instance(server: &str) -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| server.to_string())
}

async fn write_events(api: Api<Event>, receiver: mpsc::Receiver<(Event, tracing::Span)>) {
    let queued = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    queued
        .for_each_concurrent(WRITERS, |(event, span)| {
            let api = api.clone();
            async move {
                match api.create(&PostParams::default(), &event).await {
                    Ok(_) => {}
                    // One of the Events recorded once, recorded already.
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        tracing::debug!(reason = ?event.reason, "the Event was recorded already");
                    }
                    Err(error) => {
                        warn!(%error, reason = ?event.reason, "recording an Event failed")
                    }
                }
            }
            .instrument(span)
        })
        .await;
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn cut(mut text: String, max: usize) -> String {
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
    fn notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(600);
        assert_eq!(cut(note, 1000).len(), 1000);
        assert_eq!(cut("short".into(), 1000), "short");
        assert_eq!(cut("aé".into(), 2), "a");
    }
}
