//! Every validation rule, with accepted and rejected examples, and a no-panic property.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use ephemerator_core::validate::{
    MAX_BRANCH_LEN, MAX_IDENTITY_LEN, MAX_PATH_LEN, MAX_REPO_LEN, validate_branch,
    validate_identity, validate_path, validate_repo_url, validate_spec,
};
use ephemerator_core::{Config, EnvSpec};
use proptest::prelude::*;

const CONFIG: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html, tilt]
  repos:
    - url: https://git.example.com/team/app
      branches: [main, release-1.2]
      paths: [Tiltfile, deploy/Tiltfile]
"#;

fn config() -> Config {
    Config::from_yaml_str(CONFIG, "test.yaml").unwrap()
}

fn spec(repo: &str, branch: &str, path: &str) -> EnvSpec {
    EnvSpec {
        repo: repo.to_string(),
        branch: branch.to_string(),
        path: path.to_string(),
    }
}

const HTML: &str = "https://github.com/tilt-dev/tilt-example-html";

#[test]
fn branches_like_git_accepts() {
    for branch in [
        "master",
        "main",
        "release-1.2",
        "feature/x_y",
        "v1.2.3",
        "2024-fix",
        "_tmp",
        "a/b.c/d",
    ] {
        assert_eq!(validate_branch(branch), Ok(()), "{branch}");
    }
}

#[test]
fn branches_git_refuses_are_rejected() {
    let too_long = "b".repeat(MAX_BRANCH_LEN + 1);
    for branch in [
        "",
        "a..b",
        "a//b",
        "-x",
        "/x",
        ".x",
        "x/",
        "x.",
        "x.lock",
        "a/x.lock/b",
        "a/.hidden",
        "a@{1}",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a\tb",
        "a\nb",
        "a\u{7f}",
        "ümlaut",
        &too_long,
    ] {
        assert!(
            validate_branch(branch).is_err(),
            "{branch:?} should be rejected"
        );
    }
    assert_eq!(validate_branch(&"b".repeat(MAX_BRANCH_LEN)), Ok(()));
}

#[test]
fn paths_must_be_relative_and_plain() {
    for path in [
        "Tiltfile",
        "0-base/Tiltfile",
        "deploy/dev.Tiltfile",
        "a_b/Tiltfile",
    ] {
        assert_eq!(validate_path(path), Ok(()), "{path}");
    }
    let too_long = "p".repeat(MAX_PATH_LEN + 1);
    for path in [
        "",
        "../x",
        "a/../b",
        "..",
        "/etc/Tiltfile",
        "./Tiltfile",
        "a//b",
        "a/./b",
        "a/",
        "-x",
        "a b",
        "a\0b",
        "a\u{1b}[31m",
        "Tiltfile?",
        "é/Tiltfile",
        &too_long,
    ] {
        assert!(validate_path(path).is_err(), "{path:?} should be rejected");
    }
    assert_eq!(
        validate_path("/etc/Tiltfile"),
        Err("must be relative to the repo root".to_string())
    );
}

#[test]
fn repo_urls_must_be_plain_http_urls() {
    assert_eq!(validate_repo_url(HTML), Ok(()));
    assert_eq!(validate_repo_url("http://git.local/x"), Ok(()));
    let too_long = format!("https://x.com/{}", "r".repeat(MAX_REPO_LEN));
    for repo in [
        "",
        "git@github.com:tilt-dev/tilt.git",
        "ssh://github.com/tilt-dev/tilt",
        "file:///etc/passwd",
        "https://user:secret@github.com/x",
        "https://github.com/x?ref=y",
        "https://github.com/x#y",
        "https://github.com/x\n",
        "not a url",
        &too_long,
    ] {
        assert!(
            validate_repo_url(repo).is_err(),
            "{repo:?} should be rejected"
        );
    }
}

#[test]
fn identities_are_bounded_and_printable() {
    assert_eq!(validate_identity("nick@example.com"), Ok(()));
    assert_eq!(validate_identity("Ünïcödé"), Ok(()));
    let error = validate_identity("").unwrap_err();
    assert_eq!(error.to_string(), "owner: must not be empty");
    assert!(validate_identity("a\u{0}b").is_err());
    assert!(validate_identity(&"i".repeat(MAX_IDENTITY_LEN + 1)).is_err());
    assert!(validate_identity(&"i".repeat(MAX_IDENTITY_LEN)).is_ok());
}

#[test]
fn upstream_allow_list_rule_and_exact_entries() {
    let config = config();
    assert_eq!(
        config.validate_spec(&spec(HTML, "master", "0-base/Tiltfile")),
        Ok(())
    );
    assert_eq!(
        config.validate_spec(&spec(
            "https://github.com/tilt-dev/tilt",
            "master",
            "Tiltfile"
        )),
        Ok(())
    );
    for repo in [
        "https://github.com/tilt-dev/tilt-example-rust",
        "https://github.com/evil/tilt-example-html",
        "https://github.com/tilt-dev/tilt-example-html.git",
        "https://github.com/tilt-dev/tilt-example-html/",
        "https://github.com/tilt-dev/x/tilt-example-html",
        "http://github.com/tilt-dev/tilt-example-html",
    ] {
        let errors = config
            .validate_spec(&spec(repo, "master", "Tiltfile"))
            .unwrap_err();
        assert_eq!(
            errors.for_field("repo"),
            Some("is not on the allow-list"),
            "{repo}"
        );
    }
}

#[test]
fn entry_branch_and_path_lists_restrict() {
    let config = config();
    let app = "https://git.example.com/team/app";
    assert_eq!(
        config.validate_spec(&spec(app, "release-1.2", "deploy/Tiltfile")),
        Ok(())
    );
    let errors = config
        .validate_spec(&spec(app, "dev", "other/Tiltfile"))
        .unwrap_err();
    assert_eq!(
        errors.for_field("branch"),
        Some("must be one of: main, release-1.2")
    );
    assert_eq!(
        errors.for_field("path"),
        Some("must be one of: Tiltfile, deploy/Tiltfile")
    );
    assert_eq!(errors.for_field("repo"), None);
}

#[test]
fn all_field_errors_are_returned_together() {
    let errors = config()
        .validate_spec(&spec("https://evil.example/x", "a..b", "../x"))
        .unwrap_err();
    let fields: Vec<&str> = errors.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["repo", "branch", "path"]);
    assert_eq!(errors.for_field("branch"), Some("must not contain .."));
    assert_eq!(errors.for_field("path"), Some("must not contain a .. part"));
    assert_eq!(
        errors.to_string(),
        "repo: is not on the allow-list; branch: must not contain ..; path: must not contain a .. part"
    );
}

proptest! {
    #[test]
    fn validation_never_panics(repo in any::<String>(), branch in any::<String>(), path in any::<String>()) {
        let config = config();
        let result = validate_spec(&spec(&repo, &branch, &path), &config.allowlist);
        if let Err(errors) = result {
            prop_assert!(!errors.errors.is_empty());
        }
        let _ = validate_identity(&repo);
    }

    #[test]
    fn accepted_branches_never_contain_forbidden_sequences(branch in "[a-zA-Z0-9._/@{}~^: -]{1,20}") {
        if validate_branch(&branch).is_ok() {
            for forbidden in ["..", "//", "@{", " ", "~", "^", ":"] {
                prop_assert!(!branch.contains(forbidden), "{branch}");
            }
            prop_assert!(!branch.ends_with('/') && !branch.ends_with('.') && !branch.ends_with(".lock"));
            prop_assert!(!branch.starts_with(['-', '/', '.']));
        }
    }

    #[test]
    fn accepted_paths_stay_inside_the_repo(path in "[a-zA-Z0-9._/-]{1,20}") {
        if validate_path(&path).is_ok() {
            prop_assert!(!path.starts_with('/'));
            prop_assert!(path.split('/').all(|part| part != ".." && part != "." && !part.is_empty()));
        }
    }
}
