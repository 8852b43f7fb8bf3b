//! API errors, rendered as Kubernetes `Status` objects like the real API server.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Which object an error is about (`Status.details`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    pub name: String,
    pub group: String,
    pub kind: String,
    /// `details.causes`: the individual problems (omitted when empty, as the real server does).
    pub causes: Vec<StatusCause>,
}

/// One entry of `Status.details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCause {
    /// Machine-readable, e.g. `FieldManagerConflict`, `FieldValueInvalid`.
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// An error the API answers with: HTTP code, Kubernetes reason, message and details.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `Expired`, ...
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel in every `Result` and are rare, so they stay small.
    pub details: Option<Box<ErrorDetails>>,
}

fn details_of(rt: &ResourceType, name: &str) -> Option<Box<ErrorDetails>> {
    Some(Box::new(ErrorDetails {
        name: name.to_string(),
        group: rt.group.to_string(),
        kind: rt.plural.to_string(),
        causes: Vec::new(),
    }))
}

/// The `plural.group` form the real server uses in messages (`deployments.apps`, `configmaps`).
pub fn qualified_resource(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.to_string()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        ApiError {
            details: details_of(rt, name),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", qualified_resource(rt), name),
            )
        }
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        ApiError {
            details: details_of(rt, name),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", qualified_resource(rt), name),
            )
        }
    }

    /// Optimistic-concurrency failure: the message clients (and humans) know.
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        ApiError {
            details: details_of(rt, name),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {}",
                    qualified_resource(rt),
                    name,
                    why
                ),
            )
        }
    }

    pub fn stale_resource_version(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422: the object is invalid; `field` and `problem` as the real validation messages.
    pub fn invalid(rt: &ResourceType, name: &str, field: &str, problem: &str) -> Self {
        ApiError {
            details: Some(Box::new(ErrorDetails {
                name: name.to_string(),
                group: rt.group.to_string(),
                kind: rt.kind.to_string(),
                causes: Vec::new(),
            })),
            ..Self::new(
                422,
                "Invalid",
                format!(
                    "{} \"{}\" is invalid: {}: {}",
                    rt.kind, name, field, problem
                ),
            )
        }
    }

    /// 422: a patch's result failed strict decoding. The real server names neither kind nor
    /// object, and quotes the whole patched object (before unknown fields were dropped).
    pub fn invalid_patch_result(patched: &str, problem: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!(" \"\" is invalid: patch: Invalid value: {patched:?}: {problem}"),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// Page not found: an unknown path or type (the real server answers 404 with an empty reason).
    pub fn unknown_path(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// The `Status` object (kind Status, apiVersion v1) describing this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // StatusReasonUnknown is the empty string, which the real server omits.
        if self.reason.is_empty()
            && let Some(fields) = status.as_object_mut()
        {
            fields.remove("reason");
        }
        if let Some(d) = &self.details {
            // Every StatusDetails field is omitempty in the real API.
            let mut details = serde_json::Map::new();
            for (key, value) in [("name", &d.name), ("group", &d.group), ("kind", &d.kind)] {
                if !value.is_empty() {
                    details.insert(key.into(), json!(value));
                }
            }
            if !d.causes.is_empty() {
                let causes = d
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        if self.code == 429 {
            resp.insert_header(("Retry-After", "1"));
        }
        resp.content_type("application/json")
            .body(self.to_status().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn not_found_renders_like_the_real_server() {
        let deploy = lookup("apps", "v1", "deployments").expect("served");
        let status = ApiError::not_found(deploy, "web").to_status();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["details"]["kind"], "deployments");
        assert_eq!(status["details"]["group"], "apps");
        let cm = lookup("", "v1", "configmaps").expect("served");
        let status = ApiError::not_found(cm, "x").to_status();
        assert!(
            status["details"].get("group").is_none(),
            "empty group omitted"
        );
    }
}
