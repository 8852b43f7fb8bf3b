//! PATCH semantics: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch
//! and server-side apply, with `metadata.managedFields` kept the way the real server keeps it.
//!
//! Pure functions: the REST handlers parse the request, call [`apply_patch`] (or
//! [`record_update`] for create and update), then enforce identity, preconditions,
//! resourceVersion and generation themselves.

mod apply;
mod fieldset;
mod json_patch;
mod list_rules;
mod managed;
mod merge_patch;
mod strategic;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::resources::ResourceType;

pub use apply::record_update;
pub use list_rules::{KeyField, ListShape, MergeMode, list_shape};

/// Manager recorded for a non-apply patch that names none (the real server derives one from
/// the user agent; callers that know it pass it as `field_manager`).
pub const DEFAULT_MANAGER: &str = "unknown";

/// Deepest object a patch may produce; deeper ones are refused rather than risk the stack.
const MAX_DEPTH: usize = 200;

/// Longest field manager name the real server accepts.
const MAX_MANAGER_LEN: usize = 128;

/// The four patch types, by request content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchKind {
    /// The patch type of a `Content-Type` header value; parameters after `;` are ignored.
    pub fn from_content_type(content_type: &str) -> Option<PatchKind> {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        match media_type.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchKind::Apply),
            _ => None,
        }
    }

    /// Like [`PatchKind::from_content_type`], with the real server's 415 error otherwise.
    pub fn require(content_type: Option<&str>) -> Result<PatchKind, PatchError> {
        content_type
            .and_then(PatchKind::from_content_type)
            .ok_or_else(|| {
                PatchError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format ({}) - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, \
                     application/strategic-merge-patch+json, application/apply-patch+yaml",
                    content_type.unwrap_or("no content type")
                ))
            })
    }
}

/// One PATCH request, as the handler parsed it.
pub struct PatchRequest<'a> {
    pub resource: &'static ResourceType,
    pub kind: PatchKind,
    pub body: &'a [u8],
    /// Required for Apply (400 if missing).
    pub field_manager: Option<&'a str>,
    pub force: bool,
    /// `Some("status")` for the `/status` subresource.
    pub subresource: Option<&'a str>,
    /// RFC 3339, for managedFields `time`.
    pub now: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// 400: the patch is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the patch cannot be applied or produced an invalid object.
    #[error("{0}")]
    Invalid(String),
    /// 409: server-side apply conflicts.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<FieldConflict>),
}

impl PatchError {
    /// The HTTP status code the API server answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::UnsupportedMediaType(_) => 415,
            PatchError::Invalid(_) => 422,
            PatchError::Conflict(_) => 409,
        }
    }
}

/// A field another manager owns and an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The other manager's name.
    pub manager: String,
    /// The field, as the real server prints it: `.data.key`, `.spec.containers[name="app"].image`.
    pub field: String,
    /// The manager as conflict messages name it: `"kubectl-client-side-apply" using v1`.
    pub description: String,
}

impl FieldConflict {
    fn new(id: &managed::ManagerId, path: &[String]) -> FieldConflict {
        FieldConflict {
            manager: id.manager.clone(),
            field: fieldset::display_path(path),
            description: id.describe(),
        }
    }

    /// The message of this conflict's `Status` cause (type `FieldManagerConflict`).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.description)
    }
}

fn conflict_message(conflicts: &[FieldConflict]) -> String {
    let plural = if conflicts.len() == 1 { "" } else { "s" };
    let detail = match conflicts {
        [one] => format!("{}: {}", one.cause_message(), one.field),
        many => {
            let mut lines = Vec::new();
            let mut current: Option<&str> = None;
            for c in many {
                if current != Some(c.description.as_str()) {
                    lines.push(format!("conflicts with {}:", c.description));
                    current = Some(c.description.as_str());
                }
                lines.push(format!("- {}", c.field));
            }
            lines.join("\n")
        }
    };
    format!(
        "Apply failed with {} conflict{plural}: {detail}",
        conflicts.len()
    )
}

/// Applies a patch to `existing` (None when absent: only Apply may create, the others are 404
/// by the caller). Returns the patched object with metadata.managedFields updated (Apply
/// entries per manager; Update entries for the other patch kinds). The caller then enforces
/// identity, preconditions, resourceVersion, generation, status rules.
pub fn apply_patch(req: &PatchRequest, existing: Option<&Value>) -> Result<Value, PatchError> {
    check_subresource(req)?;
    if let Some(manager) = req.field_manager {
        check_manager(manager)?;
    }
    let body = parse_body(req.kind, req.body)?;
    if req.kind == PatchKind::Apply {
        return apply_configuration(req, body, existing);
    }
    let Some(existing) = existing else {
        return Err(PatchError::BadRequest(format!(
            "the {} does not exist; only an apply patch can create an object",
            req.resource.singular
        )));
    };
    if !existing.is_object() {
        return Err(PatchError::Invalid(format!(
            "the stored {} is not a JSON object",
            req.resource.singular
        )));
    }
    let patched = match req.kind {
        PatchKind::Json => json_patch::apply_json_patch(existing, &body)?,
        PatchKind::Merge => {
            if !body.is_object() {
                return Err(PatchError::BadRequest(
                    "a merge patch must be a JSON object".to_string(),
                ));
            }
            let mut target = existing.clone();
            merge_patch::merge_patch(&mut target, &body);
            target
        }
        PatchKind::StrategicMerge | PatchKind::Apply => {
            strategic::strategic_merge(req.resource.kind, existing, &body)?
        }
    };
    let mut result = finish(req, existing, patched)?;
    record_update(
        req.field_manager.unwrap_or(DEFAULT_MANAGER),
        Some(existing),
        &mut result,
        req.now,
        req.subresource,
    );
    Ok(result)
}

fn check_subresource(req: &PatchRequest) -> Result<(), PatchError> {
    match req.subresource {
        None => Ok(()),
        Some("status") if req.resource.status_subresource => Ok(()),
        Some(other) => Err(PatchError::BadRequest(format!(
            "{} have no {other:?} subresource that can be patched",
            req.resource.plural
        ))),
    }
}

fn check_manager(manager: &str) -> Result<(), PatchError> {
    if manager.len() > MAX_MANAGER_LEN {
        return Err(PatchError::BadRequest(format!(
            "fieldManager: Too long: may not be more than {MAX_MANAGER_LEN} bytes"
        )));
    }
    if manager.chars().any(char::is_control) {
        return Err(PatchError::BadRequest(
            "fieldManager: Invalid value: may only contain printable characters".to_string(),
        ));
    }
    Ok(())
}

fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, PatchError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(PatchError::BadRequest(
            "the patch body is empty".to_string(),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        // Apply configurations may be YAML (JSON is tried first: it is what most clients send).
        Err(_) if kind == PatchKind::Apply => {
            serde_saphyr::from_slice::<Value>(body).map_err(|e| {
                PatchError::BadRequest(format!(
                    "the apply configuration is not valid YAML or JSON: {e}"
                ))
            })
        }
        Err(e) => Err(PatchError::BadRequest(format!(
            "the patch body is not valid JSON: {e}"
        ))),
    }
}

fn apply_configuration(
    req: &PatchRequest,
    body: Value,
    existing: Option<&Value>,
) -> Result<Value, PatchError> {
    let manager = req.field_manager.filter(|m| !m.is_empty()).ok_or_else(|| {
        PatchError::BadRequest(
            "fieldManager is required for apply requests (set the fieldManager query parameter)"
                .to_string(),
        )
    })?;
    let Value::Object(mut config) = body else {
        return Err(PatchError::BadRequest(
            "the apply configuration must be an object".to_string(),
        ));
    };
    let api_version = required_text(&config, &["apiVersion"])?;
    let kind = required_text(&config, &["kind"])?;
    required_text(&config, &["metadata", "name"])?;
    let want_api_version = req.resource.api_version();
    if api_version != want_api_version || kind != req.resource.kind {
        return Err(PatchError::BadRequest(format!(
            "the apply configuration is a {kind} of {api_version}, but this endpoint serves {} of {want_api_version}",
            req.resource.kind
        )));
    }
    if existing.is_none() && req.subresource.is_some() {
        return Err(PatchError::BadRequest(
            "the status of an object that does not exist cannot be applied".to_string(),
        ));
    }
    if let Some(Value::Object(meta)) = config.get_mut("metadata") {
        meta.remove("managedFields");
    }
    let mut config = Value::Object(config);
    drop_nulls(&mut config);
    if req.resource.status_subresource {
        config = match req.subresource {
            Some(_) => status_only_config(config),
            None => {
                if let Value::Object(m) = &mut config {
                    m.remove("status");
                }
                config
            }
        };
    }
    let apply = apply::Apply {
        kind: req.resource.kind,
        manager,
        api_version: &api_version,
        subresource: req.subresource,
        force: req.force,
        now: req.now,
    };
    let result = apply.run(&config, existing)?;
    check_depth(&result)?;
    Ok(result)
}

/// A text field of the apply configuration that must be present.
fn required_text(config: &Map<String, Value>, path: &[&str]) -> Result<String, PatchError> {
    let mut at: Option<&Value> = None;
    for (i, name) in path.iter().enumerate() {
        at = if i == 0 {
            config.get(*name)
        } else {
            at.and_then(|v| v.get(*name))
        };
    }
    match at {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(PatchError::BadRequest(format!(
            "the apply configuration must set {}",
            path.join(".")
        ))),
    }
}

/// Null in an apply configuration means "not set".
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, child| !child.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// What a status apply may set: the status, plus the identity that says which object.
fn status_only_config(config: Value) -> Value {
    let Value::Object(mut m) = config else {
        return config;
    };
    let mut out = Map::new();
    for key in ["apiVersion", "kind", "status"] {
        if let Some(v) = m.remove(key) {
            out.insert(key.to_string(), v);
        }
    }
    if let Some(Value::Object(mut meta)) = m.remove("metadata") {
        let mut kept = Map::new();
        for key in ["name", "namespace", "uid", "resourceVersion"] {
            if let Some(v) = meta.remove(key) {
                kept.insert(key.to_string(), v);
            }
        }
        out.insert("metadata".to_string(), Value::Object(kept));
    }
    Value::Object(out)
}

/// Checks and completes a patched object: an object of the right type, at most
/// [`MAX_DEPTH`] deep, with the existing managedFields (a patch may not write them) and with
/// only the part this endpoint may change changed.
fn finish(req: &PatchRequest, existing: &Value, patched: Value) -> Result<Value, PatchError> {
    if !patched.is_object() {
        return Err(PatchError::Invalid(
            "the patch does not leave an object".to_string(),
        ));
    }
    let result = match (req.resource.status_subresource, req.subresource) {
        (true, Some(_)) => only_status_changed(existing, patched),
        (true, None) => {
            let mut result = patched;
            set_or_remove(&mut result, "status", existing.get("status"));
            result
        }
        (false, _) => patched,
    };
    let Value::Object(mut result) = result else {
        return Err(PatchError::Invalid(
            "the patch does not leave an object".to_string(),
        ));
    };
    for (field, want) in [
        ("apiVersion", req.resource.api_version()),
        ("kind", req.resource.kind.to_string()),
    ] {
        match result.get(field) {
            None => {
                result.insert(field.to_string(), Value::String(want));
            }
            Some(Value::String(s)) if *s == want => {}
            Some(other) => {
                return Err(PatchError::Invalid(format!(
                    "{field}: Invalid value: {other}: the patch may not change {field} (must be {want:?})"
                )));
            }
        }
    }
    let Some(Value::Object(meta)) = result.get_mut("metadata") else {
        return Err(PatchError::Invalid(
            "metadata: Invalid value: the patch must leave metadata an object".to_string(),
        ));
    };
    match existing
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
    {
        Some(fields) => meta.insert("managedFields".to_string(), fields.clone()),
        None => meta.remove("managedFields"),
    };
    let result = Value::Object(result);
    check_depth(&result)?;
    Ok(result)
}

/// A status write changes the status only: the rest comes from `existing`. Metadata follows
/// the real server's ResetObjectMetaForStatus: identity and resourceVersion as written (for
/// the caller's checks), labels, annotations, finalizers, owners and deletion state as before.
fn only_status_changed(existing: &Value, patched: Value) -> Value {
    let mut out = existing.clone();
    for key in ["apiVersion", "kind", "status"] {
        set_or_remove(&mut out, key, patched.get(key));
    }
    if let Some(Value::Object(patched_meta)) = patched.get("metadata") {
        let mut meta = patched_meta.clone();
        for key in [
            "labels",
            "annotations",
            "finalizers",
            "ownerReferences",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            match existing.get("metadata").and_then(|m| m.get(key)) {
                Some(v) => meta.insert(key.to_string(), v.clone()),
                None => meta.remove(key),
            };
        }
        set_or_remove(&mut out, "metadata", Some(&Value::Object(meta)));
    }
    out
}

fn set_or_remove(obj: &mut Value, key: &str, value: Option<&Value>) {
    let Value::Object(m) = obj else { return };
    match value {
        Some(v) => m.insert(key.to_string(), v.clone()),
        None => m.remove(key),
    };
}

fn check_depth(v: &Value) -> Result<(), PatchError> {
    if fieldset::depth(v) > MAX_DEPTH {
        return Err(PatchError::Invalid(format!(
            "the patched object is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    Ok(())
}
