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
//!
//! Lookups are bounded too: identical lookups in flight share one git call, and at most
//! [`DiscoverySettings::max_running`] git calls run at once in the server, at most
//! [`DiscoverySettings::max_per_user`] started by one person. A lookup past a bound is not
//! queued: it answers [`DiscoveryError::Busy`] at once, and the form says so (the person can
//! type the value, or pick again in a moment).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// Most git calls running at once in this server.
    pub max_running: usize,
    /// Most git calls running at once started by one person.
    pub max_per_user: usize,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            max_output: 4 * 1024 * 1024,
            max_items: 500,
            max_running: 4,
            max_per_user: 2,
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
    #[error("{0}; try again in a moment")]
    Busy(&'static str),
}

type Answer = Result<Vec<String>, DiscoveryError>;
type Cached = (Instant, Answer);
/// A repo, and the branch for a Tiltfile lookup.
type Key = (String, Option<String>);

/// Most distinct lookups in flight (and abandoned by every asker) kept at once.
const MAX_IN_FLIGHT: usize = 1024;

/// Discovers and caches branches and Tiltfiles.
pub struct Discovery {
    settings: DiscoverySettings,
    cache: Mutex<HashMap<Key, Cached>>,
    /// Lookups being made: an identical one waits for the same answer.
    in_flight: Mutex<HashMap<Key, Arc<tokio::sync::OnceCell<Answer>>>>,
    /// Git calls running in the server, and by whom.
    running: Mutex<Running>,
}

#[derive(Debug, Default)]
struct Running {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// A running git call's place in the bounds, given back when dropped (also when the person
/// who started it went away and the call was cancelled).
struct Slot<'a> {
    discovery: &'a Discovery,
    user: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.discovery.running);
        running.total = running.total.saturating_sub(1);
        if let Some(count) = running.by_user.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.by_user.remove(&self.user);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Discovery {
    /// A discovery with these limits.
    pub fn new(settings: DiscoverySettings) -> Self {
        Discovery {
            settings,
            cache: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            running: Mutex::new(Running::default()),
        }
    }

    /// The branches of `repo` (an allow-listed URL), sorted, `main` and `master` first, as
    /// `user` asks.
    pub async fn branches(&self, repo: &str, user: &str) -> Answer {
        let key = (repo.to_string(), None);
        self.look_up(key, user, || self.list_branches(repo)).await
    }

    /// The Tiltfiles on `branch` of `repo`, sorted by path, as `user` asks.
    pub async fn tiltfiles(&self, repo: &str, branch: &str, user: &str) -> Answer {
        if validate_branch(branch).is_err() {
            return Ok(Vec::new());
        }
        let key = (repo.to_string(), Some(branch.to_string()));
        self.look_up(key, user, || self.list_tiltfiles(repo, branch))
            .await
    }

    /// The cached answer for `key`, else the answer of the identical lookup in flight, else
    /// a new lookup, if the bounds allow one.
    async fn look_up<F, Fut>(&self, key: Key, user: &str, list: F) -> Answer
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Answer>,
    {
        if let Some(cached) = self.cached(&key) {
            return cached;
        }
        let cell = {
            let mut in_flight = lock(&self.in_flight);
            if !in_flight.contains_key(&key) && in_flight.len() >= MAX_IN_FLIGHT {
                return Err(DiscoveryError::Busy("too many lookups are waiting"));
            }
            in_flight.entry(key.clone()).or_default().clone()
        };
        let for_cache = key.clone();
        let answer = cell
            .get_or_init(move || async move {
                let _slot = self.take_slot(user)?;
                let answer = list().await;
                // Kept before the lookup leaves the in-flight table, so no asker in between
                // starts it again.
                self.remember(for_cache, &answer);
                answer
            })
            .await
            .clone();
        let mut in_flight = lock(&self.in_flight);
        if in_flight
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            in_flight.remove(&key);
        }
        answer
    }

    /// A place for one more git call started by `user`, if the bounds allow it.
    fn take_slot(&self, user: &str) -> Result<Slot<'_>, DiscoveryError> {
        let mut running = lock(&self.running);
        if running.total >= self.settings.max_running {
            return Err(DiscoveryError::Busy(
                "the server is running its most lookups at once",
            ));
        }
        let by_user = running.by_user.get(user).copied().unwrap_or(0);
        if by_user >= self.settings.max_per_user {
            return Err(DiscoveryError::Busy(
                "you are running your most lookups at once",
            ));
        }
        running.total += 1;
        *running.by_user.entry(user.to_string()).or_default() += 1;
        Ok(Slot {
            discovery: self,
            user: user.to_string(),
        })
    }

    fn cached(&self, key: &Key) -> Option<Answer> {
        let cache = lock(&self.cache);
        let (at, result) = cache.get(key)?;
        let ttl = if result.is_ok() {
            self.settings.ttl
        } else {
            self.settings.failure_ttl
        };
        (at.elapsed() < ttl).then(|| result.clone())
    }

    fn remember(&self, key: Key, result: &Answer) {
        // A refusal at a bound says nothing about the repo.
        if matches!(result, Err(DiscoveryError::Busy(_))) {
            return;
        }
        let mut cache = lock(&self.cache);
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
