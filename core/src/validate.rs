//! Validation of an env spec (repo, branch, path) and of owner identities.
//!
//! At least as strict as upstream's `ephconfig/types.go`; see each function for its rules.
//! Every check works on any string without panicking, including huge or non-ASCII ones.

use std::sync::LazyLock;

use regex::Regex;
use url::Url;

use crate::allowlist::Allowlist;
use crate::env::EnvSpec;
use crate::errors::{FieldError, ValidationErrors};

/// Longest accepted repo URL, in characters.
pub const MAX_REPO_LEN: usize = 512;
/// Longest accepted branch name, in characters.
pub const MAX_BRANCH_LEN: usize = 200;
/// Longest accepted Tiltfile path, in characters.
pub const MAX_PATH_LEN: usize = 256;
/// Longest accepted owner identity (login or e-mail), in characters.
pub const MAX_IDENTITY_LEN: usize = 256;

/// Form field names used in [`FieldError::field`] by [`validate_spec`].
pub const REPO_FIELD: &str = "repo";
/// See [`REPO_FIELD`].
pub const BRANCH_FIELD: &str = "branch";
/// See [`REPO_FIELD`].
pub const PATH_FIELD: &str = "path";
/// Field name used by [`validate_identity`].
pub const OWNER_FIELD: &str = "owner";

static BRANCH_CHARS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$").expect("static regex"));
static PATH_CHARS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_/.-]*$").expect("static regex"));

/// Checks a whole spec against the allow-list and returns every field error at once.
///
/// Fields are checked independently (`repo`, `branch`, `path`); when the repo is allow-listed
/// with a list of allowed branches or paths, the branch or path must also be one of them.
pub fn validate_spec(spec: &EnvSpec, allowlist: &Allowlist) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    let mut push = |field: &str, result: Result<(), String>| {
        if let Err(message) = result {
            errors.push(FieldError::new(field, message));
        }
    };
    let repo_result = validate_repo_url(&spec.repo).and_then(|()| {
        if allowlist.entry(&spec.repo).is_some() {
            Ok(())
        } else {
            Err("is not on the allow-list".to_string())
        }
    });
    let repo_ok = repo_result.is_ok();
    push(REPO_FIELD, repo_result);

    let entry = repo_ok.then(|| allowlist.entry(&spec.repo)).flatten();
    push(
        BRANCH_FIELD,
        validate_branch(&spec.branch).and_then(|()| match entry {
            Some(entry) if !entry.branches.is_empty() && !entry.branches.contains(&spec.branch) => {
                Err(format!("must be one of: {}", entry.branches.join(", ")))
            }
            _ => Ok(()),
        }),
    );
    push(
        PATH_FIELD,
        validate_path(&spec.path).and_then(|()| match entry {
            Some(entry) if !entry.paths.is_empty() && !entry.paths.contains(&spec.path) => {
                Err(format!("must be one of: {}", entry.paths.join(", ")))
            }
            _ => Ok(()),
        }),
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors { errors })
    }
}

/// Checks the shape of a repo URL (not the allow-list): at most [`MAX_REPO_LEN`] characters, no
/// control characters, an absolute `http` or `https` URL with a host, and no user name,
/// password, query or fragment (credentials must never sit in a ConfigMap).
pub fn validate_repo_url(repo: &str) -> Result<(), String> {
    check_common(repo, MAX_REPO_LEN)?;
    let url = Url::parse(repo).map_err(|e| format!("must be an http(s) URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http(s) URL".to_string());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_string());
    }
    Ok(())
}

/// Checks a branch name.
///
/// A branch is accepted when it is at most [`MAX_BRANCH_LEN`] characters long and:
/// - matches `^[A-Za-z0-9_][A-Za-z0-9_./-]*$`: letters, digits, `_`, `.`, `/` and `-` only, so no
///   spaces, control characters, `~ ^ : ? * [ \` or `@{`; and it does not start with `-`, `/`
///   or `.` (unlike upstream's `^[a-zA-Z][a-zA-Z_/0-9-]*$`, dots are allowed: `release-1.2`);
/// - keeps the rules of `git check-ref-format` that remain: no `..`, no `//`, no `/`-separated
///   part starting with `.` or ending with `.lock`, and the name does not end with `/` or `.`.
pub fn validate_branch(branch: &str) -> Result<(), String> {
    check_common(branch, MAX_BRANCH_LEN)?;
    if !BRANCH_CHARS.is_match(branch) {
        return Err(
            "must start with a letter, digit or _ and contain only letters, digits, _ . / -"
                .to_string(),
        );
    }
    if branch.contains("..") {
        return Err("must not contain ..".to_string());
    }
    if branch.contains("//") {
        return Err("must not contain //".to_string());
    }
    if branch.ends_with('/') || branch.ends_with('.') {
        return Err("must not end with / or .".to_string());
    }
    for part in branch.split('/') {
        if part.starts_with('.') {
            return Err("no part between slashes may start with .".to_string());
        }
        if part.ends_with(".lock") {
            return Err("no part between slashes may end with .lock".to_string());
        }
    }
    Ok(())
}

/// Checks a Tiltfile path, relative to the repo root.
///
/// Accepted when at most [`MAX_PATH_LEN`] characters, matching upstream's
/// `^[a-zA-Z0-9][a-zA-Z_/0-9.-]*$` (so relative: it cannot start with `/`), with no empty, `.`
/// or `..` part between slashes and no trailing `/`.
pub fn validate_path(path: &str) -> Result<(), String> {
    check_common(path, MAX_PATH_LEN)?;
    if path.starts_with('/') {
        return Err("must be relative to the repo root".to_string());
    }
    for part in path.split('/') {
        match part {
            ".." => return Err("must not contain a .. part".to_string()),
            "." | "" => return Err("must not contain empty or . parts".to_string()),
            _ => {}
        }
    }
    if !PATH_CHARS.is_match(path) {
        return Err(
            "must start with a letter or digit and contain only letters, digits, _ . / -"
                .to_string(),
        );
    }
    Ok(())
}

/// Checks an owner identity (a login or e-mail from oauth2-proxy): not empty, at most
/// [`MAX_IDENTITY_LEN`] characters, no control characters. Any other Unicode is fine: env names
/// derive from identities through [`crate::names`], which handles it.
pub fn validate_identity(identity: &str) -> Result<(), FieldError> {
    check_common(identity, MAX_IDENTITY_LEN)
        .map_err(|message| FieldError::new(OWNER_FIELD, message))
}

/// Rules every field shares: not empty, bounded, no control characters.
fn check_common(value: &str, max_len: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_string());
    }
    // Counting stops early so a huge value costs no more than needed.
    if value.chars().nth(max_len).is_some() {
        return Err(format!("must be at most {max_len} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".to_string());
    }
    Ok(())
}
