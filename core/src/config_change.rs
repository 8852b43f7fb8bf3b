//! What a change of the config file means for envs that already run, decided once here for
//! every server (the README's "Changing the config" section says the same in words):
//!
//! - The allow-list is a security boundary: an env that was accepted and whose repo (or
//!   branch, or path) the config in force no longer allows is stopped. It turns `Rejected`
//!   with a reason saying so (`repo no longer allowed: ...`) and loses its children; ephctrl
//!   records an Event and sends a notification.
//! - Lifetimes and quotas apply to new actions only (a create, an extend): a shorter
//!   `defaultTTL`, `extendBy` or `maxLifetime`, or a lower `maxEnvsPerUser`, never deletes or
//!   shortens an env that exists. See [`crate::lifecycle`] for how the lifetime cap is kept.
//! - New repos, branches and paths are offered at once: the dashboard's form and every check
//!   read the config in force.

use crate::config::Config;
use crate::env::EnvSpec;
use crate::status::{EnvStatus, Phase};

/// What every "no longer allowed" reason contains, so that a stopped env stays stopped with
/// the same reason on later reconciles.
const NO_LONGER_ALLOWED: &str = " no longer allowed: ";

/// Whether an env was accepted under an earlier config: it has children, or a status other
/// than `Rejected` was written for it, or it was stopped by a config change (and so keeps
/// that reason).
pub fn accepted_before(status: &EnvStatus, status_written: bool, has_children: bool) -> bool {
    has_children
        || (status_written && status.phase != Phase::Rejected)
        || (status.phase == Phase::Rejected
            && status
                .message
                .as_deref()
                .is_some_and(|message| message.contains(NO_LONGER_ALLOWED)))
}

/// Whether the config in force lets an env with `spec` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It may run.
    Allowed,
    /// It was never accepted: the reason, as validation says it.
    Refused(String),
    /// It was accepted, and a config change took that back: why, to show and to notify.
    NoLongerAllowed(String),
}

/// Judges `spec` by `config`. `accepted_before` says whether the env ran (or was being made)
/// under an earlier config: only then is a refusal a change that stops it.
pub fn standing(config: &Config, spec: &EnvSpec, accepted_before: bool) -> Standing {
    let Err(errors) = config.validate_spec(spec) else {
        return Standing::Allowed;
    };
    if !accepted_before {
        return Standing::Refused(errors.to_string());
    }
    let reasons: Vec<String> = errors
        .errors
        .iter()
        .map(|error| format!("{}{NO_LONGER_ALLOWED}{}", error.field, error.message))
        .collect();
    Standing::NoLongerAllowed(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(repos: &str) -> Config {
        Config::from_yaml_str(
            &format!("gatewayHost: preview.localhost\nallowlist:\n  repos:\n{repos}"),
            "test.yaml",
        )
        .unwrap()
    }

    fn spec(repo: &str, branch: &str) -> EnvSpec {
        EnvSpec {
            repo: repo.into(),
            branch: branch.into(),
            path: "Tiltfile".into(),
        }
    }

    const HTML: &str = "https://github.com/tilt-dev/tilt-example-html";

    #[test]
    fn an_allowed_spec_stands_whatever_its_history() {
        let config = config(&format!("  - url: {HTML}\n"));
        assert_eq!(
            standing(&config, &spec(HTML, "main"), true),
            Standing::Allowed
        );
        assert_eq!(
            standing(&config, &spec(HTML, "main"), false),
            Standing::Allowed
        );
    }

    #[test]
    fn a_removed_repo_stops_an_env_that_ran_and_refuses_a_new_one() {
        let config = config("  - url: https://github.com/tilt-dev/tilt-example-go\n");
        match standing(&config, &spec(HTML, "main"), true) {
            Standing::NoLongerAllowed(reason) => {
                assert!(reason.starts_with("repo no longer allowed: "), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        match standing(&config, &spec(HTML, "main"), false) {
            Standing::Refused(reason) => assert!(!reason.contains("no longer"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stopped_env_stays_stopped_and_a_never_accepted_one_is_not_stopped() {
        let stopped = EnvStatus {
            phase: Phase::Rejected,
            message: Some("repo no longer allowed: not in the allow-list".into()),
            ..EnvStatus::default()
        };
        assert!(accepted_before(&stopped, true, false));
        let refused = EnvStatus {
            phase: Phase::Rejected,
            message: Some("repo: not in the allow-list".into()),
            ..EnvStatus::default()
        };
        assert!(!accepted_before(&refused, true, false));
        assert!(!accepted_before(&EnvStatus::default(), false, false));
        let ready = EnvStatus {
            phase: Phase::Ready,
            ..EnvStatus::default()
        };
        assert!(accepted_before(&ready, true, false));
        assert!(accepted_before(&EnvStatus::default(), false, true));
    }

    #[test]
    fn a_restricted_branch_stops_an_env_on_another_branch() {
        let config = config(&format!("  - url: {HTML}\n    branches: [main]\n"));
        assert_eq!(
            standing(&config, &spec(HTML, "main"), true),
            Standing::Allowed
        );
        match standing(&config, &spec(HTML, "feature"), true) {
            Standing::NoLongerAllowed(reason) => {
                assert!(reason.starts_with("branch no longer allowed: "), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
