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
    /// A desired object could not be serialized for an apply.
    #[error("serializing {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The config file could not be loaded.
    #[error("loading the config file: {0}")]
    Config(String),
    /// The Kubernetes client could not be set up (no in-cluster config, no usable kubeconfig).
    #[error("connecting to Kubernetes: {0}")]
    Connect(String),
    /// The metrics/health listener could not bind its address.
    #[error("binding the metrics/health listener on {addr}: {source}")]
    Listen {
        /// The address from `--listen`.
        addr: std::net::SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The Tilt URL template has no `{env}` or is otherwise unusable.
    #[error("--tilt-url-template {0:?}: {1}")]
    TiltUrlTemplate(String, &'static str),
}

impl Error {
    /// A short, fixed label for the `error` label of `ephctrl_reconcile_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "kube",
            Error::MissingMetadata { .. } => "metadata",
            Error::Serialize { .. } => "serialize",
            Error::Config(_) => "config",
            Error::Connect(_) => "connect",
            Error::Listen { .. } => "listen",
            Error::TiltUrlTemplate(..) => "tilt_url_template",
        }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
