//! What every request shares: the client, the config, the env cache, templates, the CSRF key
//! and metrics.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ephemerator_core::Env;
use ephemerator_kit::LiveConfig;
use ephemerator_kit::cluster::ApiHealth;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::csrf::CsrfKey;
use crate::discovery::Discovery;
use crate::fragment_cache::{Generation, RowCache, Snapshot, SnapshotCache};
use crate::identity::{IdentitySource, NameFields};
use crate::metrics::Metrics;

/// Shared state of the dashboard (one per process, behind `web::Data`).
pub struct AppState {
    /// The Kubernetes client, for writes.
    pub client: kube::Client,
    /// Whether the API server answers.
    pub api_health: ApiHealth,
    /// The namespace of the envs.
    pub namespace: String,
    /// The config in force (reloaded when its file changes): read it once per request with
    /// `config.current()`.
    pub config: LiveConfig,
    /// Where identities come from.
    pub identity: IdentitySource,
    /// Which of its headers name a person.
    pub identity_from: NameFields,
    /// Signs CSRF tokens.
    pub csrf: CsrfKey,
    /// Sign share links (shared with the gateway), if given.
    pub signing_keys: Option<ephemerator_kit::signing::LiveKeys>,
    /// Records Events of what people do (access changes, share links, keep-awake) on their env.
    pub audit: ephemerator_kit::events::EventSink,
    /// Every env ConfigMap, kept by a watch: pages make no API call.
    pub envs: Store<ConfigMap>,
    /// Events about ConfigMaps, kept by a watch.
    pub events: Store<Event>,
    /// Set once the env ConfigMaps have been listed.
    pub listed: Arc<AtomicBool>,
    /// Set on SIGTERM: responses close their connections while the pod leaves its Service.
    pub draining: ephemerator_kit::running::Draining,
    /// The page and fragment templates.
    pub templates: tera::Tera,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Branches and Tiltfiles of allow-listed repos.
    pub discovery: Discovery,
    /// Bumped by every watch event of the env and Event caches.
    pub generation: Arc<Generation>,
    /// Rendered env rows every viewer who cannot change them shares.
    pub rows: RowCache,
    /// The envs parsed at the current generation.
    pub snapshots: SnapshotCache,
}

impl AppState {
    /// Every env that parses, as cached.
    pub fn env_list(&self) -> Vec<(Arc<ConfigMap>, Env)> {
        self.envs
            .state()
            .into_iter()
            .filter_map(|cm| {
                let env = Env::from_config_map(&cm).ok()?;
                Some((cm, env))
            })
            .collect()
    }

    /// The envs (sorted by name) and their recent Events as cached now, parsed once per
    /// generation of the caches.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot_at(self.generation.current())
    }

    /// The snapshot of `generation` if it is the one kept, or else one made now under that
    /// generation's name (everything rendered from it is kept under that generation, so it
    /// never is newer than what it is kept as).
    pub fn snapshot_at(&self, generation: u64) -> Arc<Snapshot> {
        self.snapshots.get_or_make(generation, || {
            let mut envs = self.env_list();
            envs.sort_by(|(_, a), (_, b)| a.name.cmp(&b.name));
            Snapshot {
                generation,
                envs,
                events: crate::views::events_by_env(&self.events.state()),
            }
        })
    }

    /// The cached ConfigMap of env `name`.
    pub fn cached(&self, name: &str) -> Option<Arc<ConfigMap>> {
        self.envs.get(&ObjectRef::new(name).within(&self.namespace))
    }
}
