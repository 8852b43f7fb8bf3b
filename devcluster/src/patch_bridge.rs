//! Temporary stand-in for `patch.rs` (engineer B) with the agreed contract, so the spine builds
//! and can be tested before B lands: JSON merge patch only, no managedFields. Removed (replaced
//! by `pub use crate::patch::*`) once `patch.rs` implements the contract.

use serde_json::Value;

use crate::resources::ResourceType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Option<PatchKind> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

pub struct PatchRequest<'a> {
    pub resource: &'static ResourceType,
    pub kind: PatchKind,
    pub body: &'a [u8],
    pub field_manager: Option<&'a str>,
    pub force: bool,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    pub manager: String,
    pub field: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Invalid(String),
    #[error("apply conflicts")]
    Conflict(Vec<FieldConflict>),
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => {
            if let Value::Object(p) = p {
                let mut fresh = Value::Object(Default::default());
                merge(&mut fresh, &Value::Object(p.clone()));
                *t = fresh;
            } else {
                *t = p.clone();
            }
        }
    }
}

pub fn apply_patch(req: &PatchRequest, existing: Option<&Value>) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(req.body)
        .map_err(|e| PatchError::BadRequest(format!("the patch is not valid JSON: {e}")))?;
    let mut target = match existing {
        Some(e) => e.clone(),
        None if req.kind == PatchKind::Apply => Value::Object(Default::default()),
        None => return Err(PatchError::BadRequest("no object to patch".into())),
    };
    match req.kind {
        PatchKind::Json => {
            return Err(PatchError::UnsupportedMediaType(
                "JSON patch is not available in this build".into(),
            ));
        }
        _ => merge(&mut target, &patch),
    }
    Ok(target)
}

pub fn record_update(
    _manager: &str,
    _old: Option<&Value>,
    _new: &mut Value,
    _now: &str,
    _subresource: Option<&str>,
) {
}
