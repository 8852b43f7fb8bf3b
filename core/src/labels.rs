//! Label and annotation keys, and the label sets that mark ephemerator objects.
//!
//! The env labels are upstream's public surface: ConfigMaps written by other tools (or by the Go
//! version) keep working as long as they carry them.

use std::collections::BTreeMap;

/// `app.kubernetes.io/part-of`, set to [`PART_OF_VALUE`] on env ConfigMaps and their children.
pub const PART_OF_KEY: &str = "app.kubernetes.io/part-of";
/// The value of [`PART_OF_KEY`].
pub const PART_OF_VALUE: &str = "ephemerator.tilt.dev";
/// `app.kubernetes.io/name`, set to [`NAME_VALUE`] on env ConfigMaps and their children.
pub const NAME_KEY: &str = "app.kubernetes.io/name";
/// The value of [`NAME_KEY`].
pub const NAME_VALUE: &str = "ephrunner";

/// Label on every child (Deployment, Service, Ingress) naming the env ConfigMap that owns it.
pub const OWNER_NAME_LABEL: &str = "ephemerator.tilt.dev/owner-name";
/// Annotation on an env ConfigMap holding the full owner identity (login or e-mail, as
/// oauth2-proxy sends it). Absent: the owner is the ConfigMap's name (upstream's rule).
pub const OWNER_ANNOTATION: &str = "ephemerator.tilt.dev/owner";

/// Label the controller writes with the env's [`crate::Phase`]. A label (not an annotation) so
/// that envs can be listed by phase with a label selector.
pub const PHASE_LABEL: &str = "ephemerator.tilt.dev/phase";
/// Annotation with a human-readable reason for the current phase.
pub const MESSAGE_ANNOTATION: &str = "ephemerator.tilt.dev/message";
/// Annotation with the exposed ports: a JSON list of `{"name": ..., "port": ...}` sorted by port.
pub const PORTS_ANNOTATION: &str = "ephemerator.tilt.dev/ports";
/// Annotation with the RFC 3339 time the env first became Ready.
pub const READY_AT_ANNOTATION: &str = "ephemerator.tilt.dev/ready-at";
/// Annotation with the RFC 3339 time the env fell asleep (only while it sleeps).
pub const ASLEEP_SINCE_ANNOTATION: &str = "ephemerator.tilt.dev/asleep-since";
/// Annotation with the RFC 3339 time the env was last woken.
pub const WOKE_AT_ANNOTATION: &str = "ephemerator.tilt.dev/woke-at";
/// Annotation anyone who may manage an env sets to wake it (the dashboard's Wake button, or
/// `kubectl annotate configmap NAME ephemerator.tilt.dev/wake=yes`). Its value says who asked;
/// ephctrl wakes the env (or, awake, restarts its idle time) and removes the annotation.
pub const WAKE_ANNOTATION: &str = "ephemerator.tilt.dev/wake";
/// Annotation the owner sets to `"true"` to keep an env from sleeping (any other value, or
/// none: it sleeps after the config's `sleepAfter`).
pub const KEEP_AWAKE_ANNOTATION: &str = "ephemerator.tilt.dev/keep-awake";
/// Annotation with the `maxLifetime` in force when the env's expiration was last set (by a
/// create, an extend, or ephctrl), as seconds like `28800s`. The env's cap is its creation
/// plus this, so that a shorter `maxLifetime` in a new config never cuts a running env short.
pub const MAX_LIFETIME_ANNOTATION: &str = "ephemerator.tilt.dev/max-lifetime";
/// Annotation on an env ConfigMap: who may open the env (`owner`, `team` or `public`; see
/// [`crate::access`]). Set by its creator, its owner or an admin; absent, the config's default.
pub const ACCESS_ANNOTATION: &str = "ephemerator.tilt.dev/access";
/// Annotation on an env ConfigMap: its share links, a JSON list (see [`crate::share`]).
pub const SHARE_LINKS_ANNOTATION: &str = "ephemerator.tilt.dev/share-links";
/// The expiry deadline (RFC 3339) the owner was warned about. ephctrl writes it before it
/// sends the warning, guarded by the ConfigMap's resourceVersion, so a warning is sent once even
/// when the controller restarts or another replica takes the lead; an extension moves the
/// deadline and re-arms the warning.
pub const WARNED_FOR_ANNOTATION: &str = "ephemerator.tilt.dev/warned-for";

/// The labels every env ConfigMap carries.
pub fn env_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (PART_OF_KEY.to_string(), PART_OF_VALUE.to_string()),
        (NAME_KEY.to_string(), NAME_VALUE.to_string()),
    ])
}

/// The labels of the children (Deployment, Service, Ingress) of the env named `env_name`:
/// the env labels plus [`OWNER_NAME_LABEL`].
pub fn child_labels(env_name: &str) -> BTreeMap<String, String> {
    let mut labels = env_labels();
    labels.insert(OWNER_NAME_LABEL.to_string(), env_name.to_string());
    labels
}

/// Label selector matching env ConfigMaps (and their children), for list and watch calls:
/// `app.kubernetes.io/part-of=ephemerator.tilt.dev,app.kubernetes.io/name=ephrunner`.
pub fn env_label_selector() -> String {
    format!("{PART_OF_KEY}={PART_OF_VALUE},{NAME_KEY}={NAME_VALUE}")
}

/// Label selector matching the children of one env.
pub fn child_label_selector(env_name: &str) -> String {
    format!("{},{OWNER_NAME_LABEL}={env_name}", env_label_selector())
}

/// Whether `labels` carry both env labels. The dashboard must refuse to overwrite or delete a
/// ConfigMap for which this is false: it belongs to someone else.
pub fn has_ephemerator_labels(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels.is_some_and(|labels| {
        labels.get(PART_OF_KEY).map(String::as_str) == Some(PART_OF_VALUE)
            && labels.get(NAME_KEY).map(String::as_str) == Some(NAME_VALUE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_labels_extend_env_labels_with_owner() {
        let labels = child_labels("nicks");
        assert!(has_ephemerator_labels(Some(&labels)));
        assert_eq!(
            labels.get(OWNER_NAME_LABEL).map(String::as_str),
            Some("nicks")
        );
        assert_eq!(labels.len(), 3);
    }

    #[test]
    fn selector_names_both_labels() {
        assert_eq!(
            env_label_selector(),
            "app.kubernetes.io/part-of=ephemerator.tilt.dev,app.kubernetes.io/name=ephrunner"
        );
        assert_eq!(
            child_label_selector("a"),
            "app.kubernetes.io/part-of=ephemerator.tilt.dev,app.kubernetes.io/name=ephrunner,ephemerator.tilt.dev/owner-name=a"
        );
    }

    #[test]
    fn predicate_needs_both_labels_with_exact_values() {
        assert!(!has_ephemerator_labels(None));
        let mut labels = env_labels();
        assert!(has_ephemerator_labels(Some(&labels)));
        labels.insert(NAME_KEY.to_string(), "other".to_string());
        assert!(!has_ephemerator_labels(Some(&labels)));
        labels.remove(NAME_KEY);
        assert!(!has_ephemerator_labels(Some(&labels)));
    }
}
