//! The env model and its ConfigMap form (upstream's public surface).
//!
//! An env ConfigMap carries the [env labels](crate::labels::env_labels), the owner annotation,
//! and data keys `repo`, `branch`, `path` and (once the controller set it) `expiration`.
//! Parsing checks structure only; [`crate::validate::validate_spec`] applies the rules.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::access::Access;
use crate::errors::FieldError;
use crate::labels::{
    ACCESS_ANNOTATION, MAX_LIFETIME_ANNOTATION, OWNER_ANNOTATION, SHARE_LINKS_ANNOTATION,
    env_labels, has_ephemerator_labels,
};
use crate::names::is_valid_env_name;
use crate::share::{ShareLink, parse_share_links, share_links_json};
use crate::status::EnvStatus;

/// Data key of the git repo URL.
pub const REPO_KEY: &str = "repo";
/// Data key of the branch to check out.
pub const BRANCH_KEY: &str = "branch";
/// Data key of the Tiltfile path, relative to the repo root.
pub const PATH_KEY: &str = "path";
/// Data key of the RFC 3339 time after which the controller deletes the env.
pub const EXPIRATION_KEY: &str = "expiration";

/// What to run: the user's choice in the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvSpec {
    /// Git repo URL, e.g. `https://github.com/tilt-dev/tilt-example-html`.
    pub repo: String,
    /// Branch to check out, e.g. `master`.
    pub branch: String,
    /// Tiltfile path relative to the repo root, e.g. `0-base/Tiltfile`.
    pub path: String,
}

impl EnvSpec {
    /// A short stable digest of the spec (16 hex characters). The controller puts it on the pod
    /// template so a changed spec rolls the runner, as upstream's config annotation did.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [&self.repo, &self.branch, &self.path] {
            // Length-prefixed so ("ab", "c") and ("a", "bc") differ.
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One env, as read from its ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// The ConfigMap's name; children are named alike.
    pub name: String,
    /// The ConfigMap's namespace, when known.
    pub namespace: Option<String>,
    /// Full owner identity: the owner annotation, or the name when that is absent (upstream).
    pub owner: String,
    /// What runs.
    pub spec: EnvSpec,
    /// When the env expires; `None` until the controller sets it.
    pub expiration: Option<Timestamp>,
    /// Controller-written status, read leniently.
    pub status: EnvStatus,
    /// The access level its annotation asks for; `None`: the config's default. What is in
    /// force is [`crate::access::AccessPolicy::effective`] of it.
    pub access: Option<Access>,
    /// Its share links (see [`crate::share`]), live or expired.
    pub share_links: Vec<ShareLink>,
}

impl Env {
    /// Parses an env ConfigMap. Never panics; on failure says which key is wrong and why, e.g.
    /// `data.branch: must not be empty`.
    ///
    /// Requires a valid env name ([`is_valid_env_name`]), both env labels, non-empty `repo`, `branch` and `path`, a non-empty owner
    /// annotation if one is present, and a valid RFC 3339 `expiration` if one is present. The
    /// status is read with [`EnvStatus::from_meta`] and never causes an error.
    pub fn from_config_map(config_map: &ConfigMap) -> Result<Env, FieldError> {
        let meta = &config_map.metadata;
        let name = meta
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| FieldError::new("metadata.name", "missing"))?;
        if !is_valid_env_name(name) {
            // Children (Service in particular) are named after the env, so the name must suit them.
            return Err(FieldError::new(
                "metadata.name",
                "must be a lowercase DNS label starting with a letter, at most 63 characters",
            ));
        }
        if !has_ephemerator_labels(meta.labels.as_ref()) {
            return Err(FieldError::new(
                "metadata.labels",
                format!(
                    "must include {}",
                    crate::labels::env_label_selector().replace(',', " and ")
                ),
            ));
        }
        let owner = match meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(OWNER_ANNOTATION))
        {
            Some(owner) if owner.is_empty() => {
                return Err(FieldError::new(
                    format!("metadata.annotations[{OWNER_ANNOTATION}]"),
                    "must not be empty",
                ));
            }
            Some(owner) => owner.clone(),
            None => name.to_string(),
        };
        let data = config_map
            .data
            .as_ref()
            .ok_or_else(|| FieldError::new("data", "missing"))?;
        let required = |key: &str| -> Result<String, FieldError> {
            match data.get(key) {
                None => Err(FieldError::new(format!("data.{key}"), "missing")),
                Some(value) if value.is_empty() => {
                    Err(FieldError::new(format!("data.{key}"), "must not be empty"))
                }
                Some(value) => Ok(value.clone()),
            }
        };
        let spec = EnvSpec {
            repo: required(REPO_KEY)?,
            branch: required(BRANCH_KEY)?,
            path: required(PATH_KEY)?,
        };
        let expiration = data
            .get(EXPIRATION_KEY)
            .map(|value| {
                value.parse::<Timestamp>().map_err(|_| {
                    FieldError::new(
                        format!("data.{EXPIRATION_KEY}"),
                        format!("must be an RFC 3339 timestamp, got {}", quote_cut(value)),
                    )
                })
            })
            .transpose()?;
        let access = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(ACCESS_ANNOTATION))
            .map(|value| {
                value.parse::<Access>().map_err(|problem| {
                    FieldError::new(
                        format!("metadata.annotations[{ACCESS_ANNOTATION}]"),
                        problem,
                    )
                })
            })
            .transpose()?;
        let share_links = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(SHARE_LINKS_ANNOTATION))
            .map(|value| {
                parse_share_links(value).map_err(|problem| {
                    FieldError::new(
                        format!("metadata.annotations[{SHARE_LINKS_ANNOTATION}]"),
                        problem,
                    )
                })
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Env {
            name: name.to_string(),
            namespace: meta.namespace.clone(),
            owner,
            spec,
            expiration,
            status: EnvStatus::from_meta(meta),
            access,
            share_links,
        })
    }

    /// The desired ConfigMap of this env: name, namespace, env labels, owner and access
    /// annotations and data. Status is not included: the controller applies it separately.
    pub fn to_config_map(&self) -> ConfigMap {
        let mut config_map = env_config_map(&self.name, &self.owner, &self.spec, self.expiration);
        config_map.metadata.namespace = self.namespace.clone();
        if let Some(access) = self.access {
            set_access(&mut config_map, access);
        }
        if !self.share_links.is_empty() {
            set_share_links(&mut config_map, &self.share_links);
        }
        config_map
    }

    /// Whether the env's expiration has passed at `now` (never, while it has none).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expiration.is_some_and(|expiration| expiration <= now)
    }
}

/// Sets the access annotation of `config_map` to `access`.
pub fn set_access(config_map: &mut ConfigMap, access: Access) {
    config_map
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ACCESS_ANNOTATION.to_string(), access.as_str().to_string());
}

/// Sets the share links annotation of `config_map` to `links`.
pub fn set_share_links(config_map: &mut ConfigMap, links: &[ShareLink]) {
    config_map
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SHARE_LINKS_ANNOTATION.to_string(), share_links_json(links));
}

/// The merge patch that writes `data.expiration`, guarded by `resource_version`: the API server
/// refuses it (409 Conflict) if the ConfigMap changed since it was read, so a writer never
/// overwrites a value it has not seen. The one way ephctrl (a missing or capped expiration)
/// and ephdash (an extend) write the expiration; see the README's ConfigMap section.
pub fn expiration_patch(resource_version: &str, expiration: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "data": { EXPIRATION_KEY: expiration.to_string() },
    })
}

/// Like [`expiration_patch`], and records the `maxLifetime` the expiration was set under
/// ([`MAX_LIFETIME_ANNOTATION`]); without an expiration, records only that.
pub fn lifetime_patch(
    resource_version: &str,
    expiration: Option<Timestamp>,
    max_lifetime: SignedDuration,
) -> serde_json::Value {
    let mut patch = serde_json::json!({
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": { MAX_LIFETIME_ANNOTATION: format_lifetime(max_lifetime) },
        },
    });
    if let Some(expiration) = expiration {
        patch["data"] = serde_json::json!({ EXPIRATION_KEY: expiration.to_string() });
    }
    patch
}

/// The `maxLifetime` recorded on an env ([`MAX_LIFETIME_ANNOTATION`]); `None` when absent or
/// unreadable (the config's then applies, and ephctrl records it).
pub fn recorded_max_lifetime(meta: &ObjectMeta) -> Option<SignedDuration> {
    let text = meta.annotations.as_ref()?.get(MAX_LIFETIME_ANNOTATION)?;
    crate::duration::parse_duration(text)
        .ok()
        .filter(|lifetime| lifetime.is_positive())
}

/// Records `max_lifetime` on a ConfigMap about to be created.
pub fn record_max_lifetime(config_map: &mut ConfigMap, max_lifetime: SignedDuration) {
    config_map
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            MAX_LIFETIME_ANNOTATION.to_string(),
            format_lifetime(max_lifetime),
        );
}

fn format_lifetime(lifetime: SignedDuration) -> String {
    format!("{}s", lifetime.as_secs())
}

/// Builds an env ConfigMap named `name` owned by `owner` (a full identity) for `spec`, with an
/// optional expiration. Namespace is left unset (the API call decides it).
pub fn env_config_map(
    name: &str,
    owner: &str,
    spec: &EnvSpec,
    expiration: Option<Timestamp>,
) -> ConfigMap {
    let mut data = BTreeMap::from([
        (REPO_KEY.to_string(), spec.repo.clone()),
        (BRANCH_KEY.to_string(), spec.branch.clone()),
        (PATH_KEY.to_string(), spec.path.clone()),
    ]);
    if let Some(expiration) = expiration {
        data.insert(EXPIRATION_KEY.to_string(), expiration.to_string());
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(env_labels()),
            annotations: Some(BTreeMap::from([(
                OWNER_ANNOTATION.to_string(),
                owner.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// Quotes a value for an error message, escaped and cut to a readable length.
fn quote_cut(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().nth(MAX).is_some() {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{NAME_KEY, PHASE_LABEL};
    use crate::status::Phase;

    fn spec() -> EnvSpec {
        EnvSpec {
            repo: "https://github.com/tilt-dev/tilt-example-html".to_string(),
            branch: "master".to_string(),
            path: "0-base/Tiltfile".to_string(),
        }
    }

    fn with_data(key: &str, value: Option<&str>) -> ConfigMap {
        let mut cm = env_config_map("alice", "alice", &spec(), None);
        let data = cm.data.as_mut().unwrap();
        match value {
            Some(value) => data.insert(key.to_string(), value.to_string()),
            None => data.remove(key),
        };
        cm
    }

    #[test]
    fn built_config_map_parses_back() {
        let expiration: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let cm = env_config_map("alice--abc", "Alice@Example.com", &spec(), Some(expiration));
        let env = Env::from_config_map(&cm).unwrap();
        assert_eq!(env.name, "alice--abc");
        assert_eq!(env.owner, "Alice@Example.com");
        assert_eq!(env.spec, spec());
        assert_eq!(env.expiration, Some(expiration));
        assert_eq!(env.to_config_map(), cm);
        assert_eq!(
            cm.data.unwrap().get(EXPIRATION_KEY).map(String::as_str),
            Some("2030-01-01T00:00:00Z")
        );
    }

    #[test]
    fn errors_name_the_key_and_reason() {
        let err = Env::from_config_map(&with_data(BRANCH_KEY, Some(""))).unwrap_err();
        assert_eq!(err.to_string(), "data.branch: must not be empty");
        let err = Env::from_config_map(&with_data(PATH_KEY, None)).unwrap_err();
        assert_eq!(err.to_string(), "data.path: missing");
        let err = Env::from_config_map(&with_data(EXPIRATION_KEY, Some("tomorrow"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data.expiration: must be an RFC 3339 timestamp, got \"tomorrow\""
        );
    }

    #[test]
    fn missing_metadata_is_reported() {
        let mut cm = with_data(REPO_KEY, Some("x"));
        cm.metadata.name = None;
        assert_eq!(
            Env::from_config_map(&cm).unwrap_err().field,
            "metadata.name"
        );

        let mut cm = with_data(REPO_KEY, Some("x"));
        cm.metadata.name = Some("a.b".to_string());
        assert_eq!(
            Env::from_config_map(&cm).unwrap_err().field,
            "metadata.name"
        );

        let mut cm = with_data(REPO_KEY, Some("x"));
        cm.metadata.labels.as_mut().unwrap().remove(NAME_KEY);
        assert_eq!(
            Env::from_config_map(&cm).unwrap_err().field,
            "metadata.labels"
        );

        let mut cm = with_data(REPO_KEY, Some("x"));
        cm.data = None;
        assert_eq!(
            Env::from_config_map(&cm).unwrap_err().to_string(),
            "data: missing"
        );

        let mut cm = with_data(REPO_KEY, Some("x"));
        cm.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(OWNER_ANNOTATION.into(), String::new());
        assert_eq!(
            Env::from_config_map(&cm).unwrap_err().to_string(),
            "metadata.annotations[ephemerator.tilt.dev/owner]: must not be empty"
        );
    }

    #[test]
    fn owner_defaults_to_the_name_without_annotation() {
        let mut cm = env_config_map("nicks", "ignored", &spec(), None);
        cm.metadata.annotations = None;
        assert_eq!(Env::from_config_map(&cm).unwrap().owner, "nicks");
    }

    #[test]
    fn damaged_status_does_not_block_the_spec() {
        let mut cm = env_config_map("a", "a", &spec(), None);
        cm.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(PHASE_LABEL.into(), "???".into());
        let env = Env::from_config_map(&cm).unwrap();
        assert_eq!(env.status.phase, Phase::Unknown);
        assert_eq!(env.spec, spec());
    }

    #[test]
    fn long_bad_expiration_is_cut_in_the_message() {
        let value = "9".repeat(10_000);
        let err = Env::from_config_map(&with_data(EXPIRATION_KEY, Some(&value))).unwrap_err();
        assert!(err.message.len() < 200, "{}", err.message);
    }

    #[test]
    fn expiry_compares_with_now() {
        let mut env = Env::from_config_map(&with_data(REPO_KEY, Some("x"))).unwrap();
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(!env.is_expired(now));
        env.expiration = Some(now);
        assert!(env.is_expired(now));
        env.expiration = Some("2030-01-01T00:00:01Z".parse().unwrap());
        assert!(!env.is_expired(now));
    }

    #[test]
    fn fingerprint_changes_with_the_spec() {
        let mut other = spec();
        other.branch = "main".to_string();
        assert_ne!(spec().fingerprint(), other.fingerprint());
        assert_eq!(spec().fingerprint(), spec().fingerprint());
        assert_eq!(spec().fingerprint().len(), 16);
    }
}
