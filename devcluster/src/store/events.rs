//! Events are stored once and served as two API views, as the real API server does:
//! `core/v1` Events are the stored form and `events.k8s.io/v1` Events are converted to and
//! from it on every read, write, watch and field selector. So `kubectl describe` (core/v1)
//! sees what kube-runtime's `Recorder` (events.k8s.io/v1) writes, and the other way round.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::resources::{RESOURCES, ResourceType};

/// Fields of the two views: (core/v1 name, events.k8s.io/v1 name). Metadata is shared.
const FIELD_NAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("series", "series"),
];

/// Field selectors core/v1 Events support, and the stored field each one reads.
const CORE_FIELD_LABELS: &[(&str, &str)] = &[
    ("metadata.name", "metadata.name"),
    ("metadata.namespace", "metadata.namespace"),
    ("involvedObject.kind", "involvedObject.kind"),
    ("involvedObject.namespace", "involvedObject.namespace"),
    ("involvedObject.name", "involvedObject.name"),
    ("involvedObject.uid", "involvedObject.uid"),
    ("involvedObject.apiVersion", "involvedObject.apiVersion"),
    (
        "involvedObject.resourceVersion",
        "involvedObject.resourceVersion",
    ),
    ("involvedObject.fieldPath", "involvedObject.fieldPath"),
    ("reason", "reason"),
    ("reportingComponent", "reportingComponent"),
    ("source", "source.component"),
    ("type", "type"),
];

/// Field selectors events.k8s.io/v1 Events support, and the stored (core/v1) field each reads.
const EVENTS_FIELD_LABELS: &[(&str, &str)] = &[
    ("metadata.name", "metadata.name"),
    ("metadata.namespace", "metadata.namespace"),
    ("regarding.kind", "involvedObject.kind"),
    ("regarding.namespace", "involvedObject.namespace"),
    ("regarding.name", "involvedObject.name"),
    ("regarding.uid", "involvedObject.uid"),
    ("regarding.apiVersion", "involvedObject.apiVersion"),
    (
        "regarding.resourceVersion",
        "involvedObject.resourceVersion",
    ),
    ("regarding.fieldPath", "involvedObject.fieldPath"),
    ("reason", "reason"),
    ("reportingController", "reportingComponent"),
    ("type", "type"),
];

fn is_core_event(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.version == "v1" && rt.kind == "Event"
}

/// Whether `rt` is the events.k8s.io/v1 view, kept in the core/v1 Event table.
pub fn is_events_view(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.version == "v1" && rt.kind == "Event"
}

/// The type whose table holds `rt`'s objects: core/v1 Event for the events.k8s.io view,
/// otherwise `rt` itself.
pub fn storage_type(rt: &'static ResourceType) -> &'static ResourceType {
    if is_events_view(rt) {
        RESOURCES.iter().find(|r| is_core_event(r)).unwrap_or(rt)
    } else {
        rt
    }
}

/// Renames the listed fields of `obj` (`from` side to `to` side), keeping metadata and
/// dropping anything the target version does not have.
fn convert(obj: &Value, api_version: &str, to_events: bool) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), Value::from("Event"));
    out.insert("apiVersion".into(), Value::from(api_version));
    if let Some(m) = obj.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    for (core, events) in FIELD_NAMES {
        let (from, to) = if to_events {
            (core, events)
        } else {
            (events, core)
        };
        if let Some(v) = obj.get(*from) {
            out.insert((*to).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// The stored (core/v1) form of an object written through `rt`.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if is_events_view(rt) {
        convert(&obj, "v1", false)
    } else {
        obj
    }
}

/// A stored object as `rt` serves it (shared, not copied, when no conversion is needed).
pub fn present(rt: &ResourceType, stored: &Arc<Value>) -> Arc<Value> {
    if is_events_view(rt) {
        Arc::new(convert(stored, &rt.api_version(), true))
    } else {
        stored.clone()
    }
}

/// The stored field a field selector label of `rt` reads. Event types accept only the labels
/// the real server supports (400 otherwise); other types read the label's own path.
pub fn field_label(rt: &ResourceType, label: &str) -> Result<String, ApiError> {
    let table = if is_events_view(rt) {
        EVENTS_FIELD_LABELS
    } else if is_core_event(rt) {
        CORE_FIELD_LABELS
    } else {
        return Ok(label.to_string());
    };
    table
        .iter()
        .find(|(name, _)| *name == label)
        .map(|(_, stored)| (*stored).to_string())
        .ok_or_else(|| ApiError::bad_request(format!("field label not supported: {label}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;
    use serde_json::json;

    fn events_view() -> &'static ResourceType {
        lookup("events.k8s.io", "v1", "events").expect("served")
    }

    #[test]
    fn both_views_round_trip_every_field() {
        let view = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "regarding": {"kind": "ConfigMap", "name": "cm"},
            "related": {"kind": "Pod", "name": "p"},
            "note": "hello", "reason": "Seen", "type": "Normal", "action": "Look",
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "ctl", "reportingInstance": "ctl-1",
            "deprecatedSource": {"component": "ctl"},
            "deprecatedFirstTimestamp": "2025-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2025-01-01T00:00:01Z",
            "deprecatedCount": 2,
            "series": {"count": 3, "lastObservedTime": "2025-01-01T00:00:02.000000Z"},
        });
        let stored = to_storage(events_view(), view.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "cm");
        assert_eq!(stored["message"], "hello");
        assert_eq!(stored["reportingComponent"], "ctl");
        assert_eq!(stored["source"]["component"], "ctl");
        assert_eq!(stored["count"], 2);
        assert_eq!(stored["firstTimestamp"], "2025-01-01T00:00:00Z");
        assert!(stored.get("note").is_none() && stored.get("regarding").is_none());
        let back = present(events_view(), &Arc::new(stored));
        assert_eq!(*back, view);
    }

    #[test]
    fn field_labels_map_to_the_stored_form_and_unknown_ones_are_refused() {
        let core = lookup("", "v1", "events").expect("served");
        assert_eq!(
            field_label(events_view(), "regarding.uid").unwrap(),
            "involvedObject.uid"
        );
        assert_eq!(
            field_label(events_view(), "reportingController").unwrap(),
            "reportingComponent"
        );
        assert_eq!(field_label(core, "source").unwrap(), "source.component");
        assert_eq!(field_label(events_view(), "note").unwrap_err().code, 400);
        assert_eq!(field_label(core, "regarding.name").unwrap_err().code, 400);
        let cm = lookup("", "v1", "configmaps").expect("served");
        assert_eq!(field_label(cm, "data.x").unwrap(), "data.x");
    }
}
