//! The controller's one error type.

/// Everything that can fail in the controller. Problems with an env's own content (a rejected
/// spec, a malformed expiration, a foreign object in the way) are not errors: they become the
/// env's `Rejected` or `Failed` phase.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API request failed.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object from the API lacks metadata the controller needs.
    #[error("{kind} {name:?} has no {field}")]
    MissingMetadata {
        /// The object's kind.
        kind: &'static str,
        /// The object's name, as far as known.
        name: String,
        /// The missing field, e.g. `metadata.uid`.
        field: &'static str,
    },
    /// The operating system gave no randomness for a runner's Tilt token.
    #[error("no randomness for a Tilt token: {0}")]
    Randomness(String),
    /// This replica stopped leading during the reconcile; the leader does the rest.
    #[error("this replica no longer leads")]
    NotLeading,
}

impl Error {
    /// A short, fixed label for the `error` label of `ephctrl_reconcile_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "kube",
            Error::MissingMetadata { .. } => "metadata",
            Error::Randomness(_) => "randomness",
            Error::NotLeading => "not_leading",
        }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
