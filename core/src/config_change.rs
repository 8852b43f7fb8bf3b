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
        .map(|error| format!("{} no longer allowed: {}", error.field, error.message))
        .collect();
    Standing::NoLongerAllowed(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(repos: &str) -> Config {
        Config::from_yaml_str(
            &format!(
                "gatewayHost: preview.localhost\nallowlist:\n  repos:\n{repos}"
            ),
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
        assert_eq!(standing(&config, &spec(HTML, "main"), true), Standing::Allowed);
        assert_eq!(standing(&config, &spec(HTML, "main"), false), Standing::Allowed);
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
    fn a_restricted_branch_stops_an_env_on_another_branch() {
        let config = config(&format!("  - url: {HTML}\n    branches: [main]\n"));
        assert_eq!(standing(&config, &spec(HTML, "main"), true), Standing::Allowed);
        match standing(&config, &spec(HTML, "feature"), true) {
            Standing::NoLongerAllowed(reason) => {
                assert!(reason.starts_with("branch no longer allowed: "), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
