//! The `/scale` subresource (deployments): an `autoscaling/v1` `Scale` view of the object's
//! replica count, read and written through get, update and patch, as `kubectl scale` and
//! autoscalers use it. Writing it changes only `spec.replicas` of the object.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::patch::{self, PatchKind, PatchRequest};
use crate::resources::ResourceType;
use crate::store::{Store, WriteOptions, ids, meta};

/// The `Scale` type, for patching a scale view with the patch module.
static SCALE: ResourceType = ResourceType {
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    plural: "scale",
    singular: "scale",
    namespaced: true,
    short_names: &[],
    status_subresource: false,
    log_subresource: false,
    scale_subresource: false,
    categories: &[],
};

/// The `Scale` of a stored object (a Deployment).
pub fn scale_of(obj: &Value) -> Value {
    let meta_in = obj.get("metadata").and_then(Value::as_object);
    let mut metadata = Map::new();
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta_in.and_then(|m| m.get(field)) {
            metadata.insert(field.into(), v.clone());
        }
    }
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut spec = Map::new();
    // ScaleSpec.replicas is omitempty.
    if replicas != 0 {
        spec.insert("replicas".into(), json!(replicas));
    }
    let mut status = json!({
        "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
    });
    let selector = obj
        .pointer("/spec/selector")
        .map(selector_string)
        .unwrap_or_default();
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": spec,
        "status": status,
    })
}

/// A `LabelSelector` in its string form (`app=web,tier in (a,b)`), requirements sorted by key
/// as the real server prints them.
pub fn selector_string(selector: &Value) -> String {
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            requirements.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let mut values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match expr.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_string(),
            Some("DoesNotExist") => format!("!{key}"),
            _ => continue,
        };
        requirements.push((key.to_string(), text));
    }
    requirements.sort();
    requirements
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

/// GET `.../NAME/scale`.
pub fn get(
    store: &Store,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    Ok(scale_of(&*store.get_arc(rt, ns, name)?))
}

/// PUT `.../NAME/scale` with a `Scale` body.
pub fn update(
    store: &Store,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    scale: &Value,
    opts: &WriteOptions,
) -> Result<Value, ApiError> {
    let api_version = scale
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = scale.get("kind").and_then(Value::as_str).unwrap_or("");
    if (!api_version.is_empty() && api_version != "autoscaling/v1")
        || (!kind.is_empty() && kind != "Scale")
    {
        return Err(ApiError::bad_request(format!(
            "the body of a scale request must be an autoscaling/v1 Scale, not {kind} of {api_version}"
        )));
    }
    let body_name = meta::name(scale);
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    write_replicas(store, rt, ns, name, scale, opts)
}

/// PATCH `.../NAME/scale`: the patch applies to the `Scale` view.
pub fn patch(
    store: &Store,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    opts: &WriteOptions,
) -> Result<Value, ApiError> {
    let current = scale_of(&*store.get_arc(rt, ns, name)?);
    let now = ids::now_rfc3339();
    let request = PatchRequest {
        resource: &SCALE,
        kind,
        body,
        field_manager: Some(opts.manager),
        force: false,
        subresource: None,
        now: &now,
    };
    let patched = patch::apply_patch(&request, Some(&current)).map_err(|e| {
        let reason = match e.status_code() {
            400 => "BadRequest",
            409 => "Conflict",
            415 => "UnsupportedMediaType",
            _ => "Invalid",
        };
        ApiError::new(e.status_code(), reason, e.to_string())
    })?;
    if meta::name(&patched) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta::name(&patched)
        )));
    }
    write_replicas(store, rt, ns, name, &patched, opts)
}

/// Sets the object's `spec.replicas` from `scale`, honouring its resourceVersion if set.
fn write_replicas(
    store: &Store,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    scale: &Value,
    opts: &WriteOptions,
) -> Result<Value, ApiError> {
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {v}: must be greater than or equal to 0"
                    ),
                )
            })?,
    };
    let mut obj = store.get(rt, ns, name)?;
    let wanted_rv = meta::resource_version(scale);
    if !wanted_rv.is_empty() && wanted_rv != meta::resource_version(&obj) {
        return Err(ApiError::stale_resource_version(rt, name));
    }
    match obj.get_mut("spec").and_then(Value::as_object_mut) {
        Some(spec) => {
            spec.insert("replicas".into(), json!(replicas));
        }
        None => obj["spec"] = json!({"replicas": replicas}),
    }
    // The update keeps the resourceVersion read above: a concurrent write makes it a 409.
    let updated = store.update_with(rt, ns, obj, opts, false)?;
    Ok(scale_of(&updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_views_replicas_and_the_selector_as_a_string() {
        let deploy = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "7",
                "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                    {"key": "legacy", "operator": "DoesNotExist"}]}},
            "status": {"replicas": 2},
        });
        let scale = scale_of(&deploy);
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["replicas"], 2);
        assert_eq!(scale["status"]["selector"], "app=web,!legacy,tier in (a,b)");
        assert_eq!(scale["metadata"]["resourceVersion"], "7");
        assert!(scale["metadata"].get("labels").is_none());
        let empty = scale_of(&json!({"metadata": {"name": "x"}, "spec": {"replicas": 0}}));
        assert_eq!(empty["spec"], json!({}));
        assert_eq!(empty["status"], json!({"replicas": 0}));
    }
}
