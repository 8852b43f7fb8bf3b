//! Field-level errors shared by ConfigMap parsing and spec validation.

use std::fmt;

/// One problem with one field: `field` names it the way the caller knows it (`data.branch` for a
/// ConfigMap, `branch` for a form), `message` says what is wrong. Displays as
/// `data.branch: must not be empty`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field, e.g. `data.branch` or `branch`.
    pub field: String,
    /// What is wrong, e.g. `must not be empty`.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every field error found at once, in field order, so a form can show each next to its field.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ValidationErrors {
    /// Never empty when returned as an error.
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// The first message for `field`, if any (for rendering next to a form field).
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
