//! The config file, reloaded while the server runs: team leads edit the allow-list (in a
//! cluster, the ConfigMap mounted into each pod) and every server follows within seconds,
//! without a restart.
//!
//! The file is read again every [`CHECK_EVERY`] and compared by content. Reading the path
//! follows symlinks, so this sees every way a file changes: an in-place write, an editor's
//! write-and-rename, and kubelet's update of a mounted ConfigMap (the file is a symlink through
//! `..data`, itself a symlink swapped atomically to a new timestamped directory). inotify on the
//! file would miss that swap. Polling a few-kilobyte file once a second costs nothing measurable.
//!
//! A file that does not load never takes effect: the last good config stays in force, the
//! error is logged once per distinct content, counted, and kept for the dashboard's banner.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use ephemerator_core::config::{Config, ConfigError};

/// How often the file is read again.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The config a server runs on: the last good one. Cheap to clone; every clone sees reloads.
#[derive(Clone)]
pub struct LiveConfig {
    current: watch::Receiver<InForce>,
    state: Arc<ReloadState>,
    /// A fixed config's sender, kept so that the channel never closes.
    _fixed: Option<Arc<watch::Sender<InForce>>>,
}

/// One config and its [`Config::digest`], swapped together.
#[derive(Clone)]
struct InForce {
    config: Arc<Config>,
    digest: u64,
}

impl InForce {
    fn new(config: Config) -> InForce {
        InForce {
            digest: config.digest(),
            config: Arc::new(config),
        }
    }
}

/// What the reloads did, for `/metrics` and the dashboard.
struct ReloadState {
    /// Why the file's current content is not in force; `None` when it is.
    error: Mutex<Option<String>>,
    failures: Counter,
    /// Which config is in force: 1 at start, bumped on every change that took effect.
    generation: Gauge,
    last_reload_ok: Gauge,
}

/// The config in force and how it got there, as the dashboard's admin banner shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Which config is in force: 1 at start, one more per change that took effect.
    pub generation: u64,
    /// Why the file's current content was refused (file:line:column: field: message, one
    /// problem per line); `None` when the file is what runs.
    pub error: Option<String>,
}

impl LiveConfig {
    /// A config that never changes (tests, tools).
    pub fn fixed(config: Config) -> LiveConfig {
        let (sender, current) = watch::channel(InForce::new(config));
        LiveConfig {
            current,
            state: Arc::new(ReloadState::new()),
            _fixed: Some(Arc::new(sender)),
        }
    }

    /// Follows the file at `path`, whose content at start gave `initial`, reading it every
    /// `check_every` until every clone of the returned value is dropped. Needs a Tokio runtime.
    pub fn watch(path: impl Into<PathBuf>, initial: Config, check_every: Duration) -> LiveConfig {
        let path = path.into();
        let (sender, current) = watch::channel(InForce::new(initial));
        let state = Arc::new(ReloadState::new());
        let seen = std::fs::read(&path).map(|bytes| sha256(&bytes)).ok();
        let mut watcher = FileWatcher {
            path,
            seen,
            sender,
            state: state.clone(),
        };
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(check_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = watcher.sender.closed() => return,
                    _ = ticks.tick() => watcher.check().await,
                }
            }
        });
        LiveConfig {
            current,
            state,
            _fixed: None,
        }
    }

    /// The config in force now. Hold the `Arc` for one request or one reconcile, so that it
    /// sees one config throughout.
    pub fn current(&self) -> Arc<Config> {
        self.current.borrow().config.clone()
    }

    /// One item each time a new config takes effect (after this call).
    pub fn changes(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let mut receiver = self.current.clone();
        receiver.mark_unchanged();
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.changed().await.ok()?;
            Some(((), receiver))
        })
    }

    /// Which config is in force and whether the file's content was refused.
    pub fn report(&self) -> ReloadReport {
        ReloadReport {
            generation: u64::try_from(self.state.generation.get()).unwrap_or(0),
            error: self.state.error.lock().map(|e| e.clone()).unwrap_or(None),
        }
    }

    /// Registers `config_generation`, `config_reload_failures` and
    /// `config_last_reload_successful` in a server's registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "config_generation",
            "Which config is in force: 1 at start, one more per reload that took effect",
            self.state.generation.clone(),
        );
        registry.register(
            "config_reload_failures",
            "Config file contents that failed to load (the last good config stayed in force)",
            self.state.failures.clone(),
        );
        registry.register(
            "config_last_reload_successful",
            "1 when the config file's current content is in force, 0 when it was refused",
            self.state.last_reload_ok.clone(),
        );
    }
}

impl ReloadState {
    fn new() -> ReloadState {
        let state = ReloadState {
            error: Mutex::new(None),
            failures: Counter::default(),
            generation: Gauge::default(),
            last_reload_ok: Gauge::default(),
        };
        state.generation.set(1);
        state.last_reload_ok.set(1);
        state
    }

    fn set_error(&self, error: Option<String>) {
        self.last_reload_ok.set(i64::from(error.is_none()));
        if let Ok(mut slot) = self.error.lock() {
            *slot = error;
        }
    }
}

struct FileWatcher {
    path: PathBuf,
    /// The digest of the content last judged, so a refused file is reported once.
    seen: Option<[u8; 32]>,
    sender: watch::Sender<InForce>,
    state: Arc<ReloadState>,
}

impl FileWatcher {
    async fn check(&mut self) {
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(source) => {
                let error = ConfigError::Read {
                    path: self.path.display().to_string(),
                    source,
                };
                // Reported once until the file is back.
                if self.seen.take().is_some() {
                    self.refuse(error.to_string());
                }
                return;
            }
        };
        let digest = sha256(&bytes);
        if self.seen == Some(digest) {
            return;
        }
        self.seen = Some(digest);
        match load(&self.path, &bytes) {
            Ok(config) => self.accept(config),
            Err(error) => self.refuse(error.to_string()),
        }
    }

    fn accept(&mut self, config: Config) {
        self.state.set_error(None);
        let in_force = InForce::new(config);
        if self.sender.borrow().digest == in_force.digest {
            tracing::info!(path = %self.path.display(), "config file changed, settings the same");
            return;
        }
        let generation = self.state.generation.inc() + 1;
        self.sender.send_replace(in_force);
        tracing::info!(path = %self.path.display(), generation, "config reloaded");
    }

    fn refuse(&mut self, error: String) {
        self.state.failures.inc();
        tracing::error!(
            path = %self.path.display(),
            %error,
            "config file refused; the last good config stays in force"
        );
        self.state.set_error(Some(error));
    }
}

fn load(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::str::from_utf8(bytes).map_err(|error| {
        ConfigError::Invalid(vec![ephemerator_core::config::ConfigProblem {
            source_name: name.clone(),
            position: None,
            field: None,
            message: format!("not UTF-8 text: {error}"),
        }])
    })?;
    Config::from_yaml_str(text, &name)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [tilt-example-html]\n";
    const MORE: &str = "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [tilt-example-html, tilt-example-go]\n";
    const BROKEN: &str = "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [tilt-example-html]\nexpiration:\n  defaultTTL: 15 mins\n";

    const FAST: Duration = Duration::from_millis(20);

    fn allowed(live: &LiveConfig) -> Vec<String> {
        live.current()
            .allowed_repo_urls()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Waits (with a deadline) until `check` holds.
    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A whole-file replacement (a new file renamed over it), so no half-written file is read.
    fn replace(path: &Path, text: &str) {
        let next = path.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, path).unwrap();
    }

    fn start(path: &Path) -> LiveConfig {
        let initial = Config::load(path).unwrap();
        LiveConfig::watch(path, initial, FAST)
    }

    /// (An in-place write may be read half done: refused, then taken when whole.)
    #[tokio::test]
    async fn an_in_place_edit_takes_effect_and_bumps_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ephemerator.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let live = start(&path);
        let mut changes = Box::pin(live.changes());
        assert_eq!(live.report().generation, 1);

        std::fs::write(&path, MORE).unwrap();
        tokio::time::timeout(
            Duration::from_secs(20),
            futures::StreamExt::next(&mut changes),
        )
        .await
        .expect("a change within the deadline")
        .unwrap();
        assert_eq!(
            allowed(&live),
            [
                "https://github.com/tilt-dev/tilt-example-html",
                "https://github.com/tilt-dev/tilt-example-go"
            ]
        );
        assert_eq!(
            live.report(),
            ReloadReport {
                generation: 2,
                error: None
            }
        );
    }

    #[tokio::test]
    async fn a_broken_edit_keeps_the_last_good_config_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ephemerator.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let live = start(&path);
        let mut registry = Registry::with_prefix("test");
        live.register_metrics(&mut registry);

        replace(&path, BROKEN);
        until("the refusal", || live.report().error.is_some()).await;
        let report = live.report();
        assert_eq!(
            report.error.as_deref(),
            Some(
                format!(
                    "{}:6:15: expiration.defaultTTL: invalid duration \"15 mins\" (use e.g. 15m, 1h30m, 90s)",
                    path.display()
                )
                .as_str()
            )
        );
        assert_eq!(report.generation, 1);
        assert_eq!(
            allowed(&live),
            ["https://github.com/tilt-dev/tilt-example-html"]
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("test_config_reload_failures_total 1"),
            "{text}"
        );
        assert!(
            text.contains("test_config_last_reload_successful 0"),
            "{text}"
        );
        assert!(text.contains("test_config_generation 1"), "{text}");

        // Fixed: the new content takes effect and the error is gone.
        replace(&path, MORE);
        until("the fix", || live.report().generation == 2).await;
        assert_eq!(live.report().error, None);
        assert_eq!(allowed(&live).len(), 2);
    }

    /// kubelet's update of a mounted ConfigMap: `ephemerator.yaml -> ..data/ephemerator.yaml`,
    /// `..data -> ..<timestamp>`, and an update swaps `..data` by renaming a new symlink over it.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_kubelet_style_symlink_swap_is_seen() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("..2026_11_30_01_00_00.000000001");
        std::fs::create_dir(&first).unwrap();
        std::fs::write(first.join("ephemerator.yaml"), GOOD).unwrap();
        symlink(first.file_name().unwrap(), dir.path().join("..data")).unwrap();
        let path = dir.path().join("ephemerator.yaml");
        symlink("..data/ephemerator.yaml", &path).unwrap();
        let live = start(&path);

        let second = dir.path().join("..2026_11_30_01_05_00.000000002");
        std::fs::create_dir(&second).unwrap();
        std::fs::write(second.join("ephemerator.yaml"), MORE).unwrap();
        symlink(second.file_name().unwrap(), dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        std::fs::remove_dir_all(&first).unwrap();

        until("the swapped content", || live.report().generation == 2).await;
        assert_eq!(allowed(&live).len(), 2);
    }

    #[tokio::test]
    async fn a_missing_file_is_reported_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ephemerator.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let live = start(&path);
        std::fs::remove_file(&path).unwrap();
        until("the read error", || live.report().error.is_some()).await;
        assert!(
            live.report()
                .error
                .unwrap()
                .contains("cannot read config file"),
        );
        assert_eq!(allowed(&live).len(), 1);
        std::fs::write(&path, GOOD).unwrap();
        until("the file back", || live.report().error.is_none()).await;
        assert_eq!(
            live.report().generation,
            1,
            "the same settings: no new generation"
        );
    }
}
