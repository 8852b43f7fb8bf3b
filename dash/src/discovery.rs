//! Branches and Tiltfiles of an allow-listed repo, discovered from the git repository itself
//! (any git host), for the create form.
//!
//! Runs the `git` client, which speaks every host's protocol: `git ls-remote` lists the
//! branches; a blobless, depth-1, single-branch bare clone lists the chosen branch's tree
//! (file names only: no file content is fetched) for files named `Tiltfile` or `*.tiltfile`.
//! Every call is bounded in time and output, follows no redirect, uses only http(s), never
//! prompts for credentials and reads no user or system git config. Answers are cached for a
//! while (failures for less), so a busy form never hammers a git host.
//!
//! Only URLs on the allow-list reach this module: the routes look the repo up in the config
//! first and pass the entry's URL, never the text a user sent.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ephemerator_core::validate::{validate_branch, validate_path};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Limits of discovery.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// How long an answer is reused.
    pub ttl: Duration,
    /// How long a failure is remembered (shorter: the host may be back).
    pub failure_ttl: Duration,
    /// Longest time of one git command.
    pub timeout: Duration,
    /// Most bytes of git output read (more is an error).
    pub max_output: usize,
    /// Most branches or files listed.
    pub max_items: usize,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            max_output: 4 * 1024 * 1024,
            max_items: 500,
        }
    }
}

/// Why a repo could not be listed (shown to the user, who can still type a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the git host did not answer within {0:?}")]
    Timeout(Duration),
    #[error("git failed: {0}")]
    Git(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot run git: {0}")]
    Spawn(String),
}

type Cached = (Instant, Result<Vec<String>, DiscoveryError>);

/// Discovers and caches branches and Tiltfiles.
pub struct Discovery {
    settings: DiscoverySettings,
    cache: Mutex<HashMap<(String, Option<String>), Cached>>,
}

impl Discovery {
    /// A discovery with these limits.
    pub fn new(settings: DiscoverySettings) -> Self {
        Discovery {
            settings,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The branches of `repo` (an allow-listed URL), sorted, `main` and `master` first.
    pub async fn branches(&self, repo: &str) -> Result<Vec<String>, DiscoveryError> {
        let key = (repo.to_string(), None);
        if let Some(cached) = self.cached(&key) {
            return cached;
        }
        let result = self.list_branches(repo).await;
        self.remember(key, &result);
        result
    }

    /// The Tiltfiles on `branch` of `repo`, sorted by path.
    pub async fn tiltfiles(&self, repo: &str, branch: &str) -> Result<Vec<String>, DiscoveryError> {
        if validate_branch(branch).is_err() {
            return Ok(Vec::new());
        }
        let key = (repo.to_string(), Some(branch.to_string()));
        if let Some(cached) = self.cached(&key) {
            return cached;
        }
        let result = self.list_tiltfiles(repo, branch).await;
        self.remember(key, &result);
        result
    }

    fn cached(
        &self,
        key: &(String, Option<String>),
    ) -> Option<Result<Vec<String>, DiscoveryError>> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (at, result) = cache.get(key)?;
        let ttl = if result.is_ok() {
            self.settings.ttl
        } else {
            self.settings.failure_ttl
        };
        (at.elapsed() < ttl).then(|| result.clone())
    }

    fn remember(
        &self,
        key: (String, Option<String>),
        result: &Result<Vec<String>, DiscoveryError>,
    ) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A small bound: entries are per repo (and branch); old ones are dropped wholesale.
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), result.clone()));
    }

    async fn list_branches(&self, repo: &str) -> Result<Vec<String>, DiscoveryError> {
        let scratch = tempfile::tempdir().map_err(|e| DiscoveryError::Spawn(e.to_string()))?;
        let output = self
            .git(
                scratch.path(),
                &["ls-remote", "--heads", "--refs", "--", repo],
            )
            .await?;
        let mut branches: Vec<String> = output
            .lines()
            .filter_map(|line| line.split_once('\t')?.1.strip_prefix("refs/heads/"))
            .filter(|branch| validate_branch(branch).is_ok())
            .map(str::to_string)
            .take(self.settings.max_items)
            .collect();
        branches.sort_by_key(|branch| {
            (
                !matches!(branch.as_str(), "main" | "master"),
                branch.clone(),
            )
        });
        Ok(branches)
    }

    async fn list_tiltfiles(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Vec<String>, DiscoveryError> {
        let scratch = tempfile::tempdir().map_err(|e| DiscoveryError::Spawn(e.to_string()))?;
        let clone = scratch.path().join("repo.git");
        let clone_arg = clone.to_string_lossy().into_owned();
        // Blobless: the tree's file names come, no file content.
        self.git(
            scratch.path(),
            &[
                "clone",
                "--bare",
                "--quiet",
                "--filter=blob:none",
                "--depth=1",
                "--single-branch",
                "--no-tags",
                "--branch",
                branch,
                "--",
                repo,
                &clone_arg,
            ],
        )
        .await?;
        let listing = self
            .git(
                scratch.path(),
                &[
                    "--git-dir",
                    &clone_arg,
                    "ls-tree",
                    "-r",
                    "--name-only",
                    "HEAD",
                ],
            )
            .await?;
        let mut files: Vec<String> = listing
            .lines()
            .filter(|path| {
                let file = path.rsplit('/').next().unwrap_or(path);
                file == "Tiltfile" || file.ends_with(".tiltfile")
            })
            .filter(|path| validate_path(path).is_ok())
            .map(str::to_string)
            .take(self.settings.max_items)
            .collect();
        files.sort();
        Ok(files)
    }

    /// Runs git in `dir` with a locked-down configuration; its stdout, bounded.
    async fn git(&self, dir: &Path, args: &[&str]) -> Result<String, DiscoveryError> {
        let mut command = Command::new("git");
        command
            .current_dir(dir)
            // Nothing from the machine's or a user's git config; no prompts, no helpers.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("LC_ALL", "C")
            // Only http(s), no redirect to elsewhere, no credentials, no proxying via config.
            .args([
                "-c",
                "protocol.allow=never",
                "-c",
                "protocol.https.allow=always",
                "-c",
                "protocol.http.allow=always",
                "-c",
                "http.followRedirects=false",
                "-c",
                "credential.helper=",
                "-c",
                "core.askPass=true",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|error| DiscoveryError::Spawn(error.to_string()))?;
        let limit = self.settings.max_output;
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let run = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let read_out = async {
                (&mut stdout)
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .await
            };
            let read_err = async { (&mut stderr).take(64 * 1024).read_to_end(&mut err).await };
            let (read_out, _) = tokio::join!(read_out, read_err);
            read_out.map_err(|error| DiscoveryError::Git(error.to_string()))?;
            if out.len() > limit {
                return Err(DiscoveryError::TooLarge(limit));
            }
            let status = child
                .wait()
                .await
                .map_err(|error| DiscoveryError::Git(error.to_string()))?;
            if !status.success() {
                let message = String::from_utf8_lossy(&err);
                let message = message
                    .lines()
                    .rev()
                    .find(|line| !line.trim().is_empty())
                    .unwrap_or("no detail")
                    .trim()
                    .to_string();
                return Err(DiscoveryError::Git(message));
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        };
        match tokio::time::timeout(self.settings.timeout, run).await {
            Ok(result) => result,
            // Dropping the child (kill_on_drop) ends git.
            Err(_) => Err(DiscoveryError::Timeout(self.settings.timeout)),
        }
    }
}
