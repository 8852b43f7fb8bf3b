//! What every reconcile shares: the client, the config, the child stores, metrics, the Event
//! sink, the notifier, the Tilt client, and a little per-env memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ephemerator_core::EnvStatus;
use ephemerator_core::{Config, Port};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::runtime::reflector::Store;

use crate::cached::{ChildMeta, RunnerDeployment};
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::tilt::TiltClient;

/// Field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "ephctrl";

/// Shared state of the controller.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The namespace the controller works in.
    pub namespace: String,
    /// The loaded config file.
    pub config: Arc<Config>,
    /// Events on env ConfigMaps.
    pub events: EventSink,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Webhook notifications.
    pub notifier: Notifier,
    /// Reads ports from running Tilts.
    pub tilt: TiltClient,
    /// Where Tilt is reached, see [`tilt_base_url`].
    pub tilt_url_template: String,
    /// Every Deployment in the namespace (ours and others', for the foreign-object check).
    pub deployments: Store<RunnerDeployment>,
    /// Every Service in the namespace (metadata only).
    pub services: Store<ChildMeta<Service>>,
    /// Every Ingress in the namespace (metadata only).
    pub ingresses: Store<ChildMeta<Ingress>>,
    /// Which watches have listed once; see [`Synced`].
    pub synced: Synced,
    memory: Mutex<HashMap<String, EnvMemory>>,
}

/// What the controller remembers about one env between reconciles. Losing it (a restart) costs
/// at most a repeated warning, one Tilt poll and one re-apply per child.
#[derive(Debug, Clone, Default)]
pub struct EnvMemory {
    /// The expiration a warning was sent for (an extension re-arms the warning).
    pub warned_for: Option<Timestamp>,
    /// What Tilt said about the env's ports.
    pub ports: PortMemory,
    /// Children as last applied, by [`ChildKind`]: skipping an identical apply saves a write
    /// per child event.
    pub applied: [Option<AppliedChild>; 3],
    /// The Tilt token the runner was last given, with the uid of the env ConfigMap it was made
    /// for: reused while the Deployment is not in the cache yet, so a lagging cache never
    /// restarts a runner with a new token.
    pub runner_token: Option<(String, String)>,
    /// The controller's last status write on the env ConfigMap.
    pub status_written: Option<StatusWrite>,
    /// Consecutive failed reconciles, for the error backoff.
    pub failures: u32,
}

/// What Tilt said about an env's ports.
#[derive(Debug, Clone, Default)]
pub struct PortMemory {
    /// Ports last discovered from Tilt, for the runner with [`PortMemory::for_runner`].
    pub discovered: Vec<Port>,
    /// The runner (template hash and Tilt token) the discovered ports belong to.
    pub for_runner: Option<String>,
    /// Whether Tilt still had pending resources at the last poll.
    pub pending: bool,
    /// When Tilt was last asked.
    pub polled_at: Option<Timestamp>,
}

/// The children of an env, as indexes of [`EnvMemory::applied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// The runner Deployment.
    Deployment = 0,
    /// Its Service.
    Service = 1,
    /// Its Ingress (Ingress mode).
    Ingress = 2,
}

impl ChildKind {
    /// The API kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::Deployment => "Deployment",
            ChildKind::Service => "Service",
            ChildKind::Ingress => "Ingress",
        }
    }
}

/// A child as the controller last applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedChild {
    /// Digest of everything the desired child was built from (see `reconcile`).
    pub inputs: u64,
    /// `metadata.uid` of the object the apply returned.
    pub uid: String,
    /// Its `metadata.generation` (Deployments) or `metadata.resourceVersion` (others): a change
    /// means someone else touched the spec.
    pub spec_version: String,
    /// Its `metadata.resourceVersion`: the watch event of exactly this version is the echo of
    /// the apply and needs no reconcile.
    pub resource_version: String,
}

/// A status write of the controller on an env ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite {
    /// The ConfigMap's resourceVersions before the write (as cached, and after the
    /// controller's own fill-in of the expiration, if any): a cache still showing one of them
    /// lags behind the write.
    pub from_versions: Vec<String>,
    /// The resourceVersion the write produced (its watch event is an echo).
    pub to_version: String,
    /// The status written.
    pub status: EnvStatus,
}

impl Context {
    /// Builds the shared context.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        namespace: String,
        config: Arc<Config>,
        events: EventSink,
        metrics: Arc<Metrics>,
        notifier: Notifier,
        tilt: TiltClient,
        tilt_url_template: String,
        stores: (
            Store<RunnerDeployment>,
            Store<ChildMeta<Service>>,
            Store<ChildMeta<Ingress>>,
        ),
        synced: Synced,
    ) -> Self {
        let (deployments, services, ingresses) = stores;
        Context {
            client,
            namespace,
            config,
            events,
            metrics,
            notifier,
            tilt,
            tilt_url_template,
            deployments,
            services,
            ingresses,
            synced,
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// The per-env memory map. A poisoned lock is recovered: the memory is only a cache.
    pub fn memory(&self) -> MutexGuard<'_, HashMap<String, EnvMemory>> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the memory of env `name`.
    pub fn remember<T>(&self, name: &str, change: impl FnOnce(&mut EnvMemory) -> T) -> T {
        let mut memory = self.memory();
        // Looked up first: the key is copied only for an env seen for the first time.
        if let Some(env) = memory.get_mut(name) {
            return change(env);
        }
        change(memory.entry(name.to_string()).or_default())
    }

    /// Reads the memory of env `name` (a default one if there is none).
    pub fn recall<T>(&self, name: &str, read: impl FnOnce(&EnvMemory) -> T) -> T {
        match self.memory().get(name) {
            Some(env) => read(env),
            None => read(&EnvMemory::default()),
        }
    }

    /// Whether a child event shows the very version the controller's last apply of that child
    /// returned: the echo of its own write, which needs no reconcile.
    pub fn is_own_apply(
        &self,
        name: &str,
        kind: ChildKind,
        resource_version: Option<&str>,
    ) -> bool {
        let Some(version) = resource_version else {
            return false;
        };
        self.memory().get(name).is_some_and(|env| {
            env.applied[kind as usize]
                .as_ref()
                .is_some_and(|applied| applied.resource_version == version)
        })
    }

    /// Whether a ConfigMap event shows the very version the controller's last status write
    /// returned.
    pub fn is_own_status_write(&self, name: &str, resource_version: Option<&str>) -> bool {
        let Some(version) = resource_version else {
            return false;
        };
        self.memory().get(name).is_some_and(|env| {
            env.status_written
                .as_ref()
                .is_some_and(|write| write.to_version == version)
        })
    }

    /// Forgets envs for which `keep` is false (deleted ConfigMaps).
    pub fn forget_unless(&self, keep: impl Fn(&str) -> bool) {
        self.memory().retain(|name, _| keep(name));
    }

    /// Waits until the child stores have listed once, so a missing child really is missing.
    pub async fn wait_for_child_stores(&self) {
        self.synced.wait_for(Synced::CHILDREN).await;
    }

    /// Tilt's base URL for env `env`, from [`Context::tilt_url_template`].
    pub fn tilt_base_url(&self, env: &str) -> String {
        tilt_base_url(
            &self.tilt_url_template,
            env,
            &self.namespace,
            self.config.runner.tilt_port,
        )
    }
}

/// Which watches have completed their first list, as bits. Stores' own `wait_until_ready`
/// wakes only one of several concurrent waiters (it polls a shared oneshot receiver), so every
/// waiter here uses this watch channel instead, which wakes them all.
#[derive(Clone, Debug)]
pub struct Synced {
    sender: Arc<tokio::sync::watch::Sender<u8>>,
}

impl Default for Synced {
    fn default() -> Self {
        Synced {
            sender: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Synced {
    /// The env ConfigMaps.
    pub const CONFIG_MAPS: u8 = 1;
    /// Deployments.
    pub const DEPLOYMENTS: u8 = 2;
    /// Services.
    pub const SERVICES: u8 = 4;
    /// Ingresses.
    pub const INGRESSES: u8 = 8;
    /// Every child kind.
    pub const CHILDREN: u8 = Self::DEPLOYMENTS | Self::SERVICES | Self::INGRESSES;

    /// Marks the watches in `bits` as listed.
    pub fn mark(&self, bits: u8) {
        self.sender.send_if_modified(|current| {
            let before = *current;
            *current |= bits;
            *current != before
        });
    }

    /// Whether all watches in `bits` have listed.
    pub fn is(&self, bits: u8) -> bool {
        *self.sender.borrow() & bits == bits
    }

    /// Waits until all watches in `bits` have listed.
    pub async fn wait_for(&self, bits: u8) {
        let mut receiver = self.sender.subscribe();
        // The sender lives in `self`, so the channel cannot close while waiting.
        let _ = receiver.wait_for(|current| current & bits == bits).await;
    }
}

/// Default of `--tilt-url-template`: the env's Service in the cluster's DNS.
pub const DEFAULT_TILT_URL_TEMPLATE: &str = "http://{env}.{namespace}.svc:{port}";

/// Fills `{env}`, `{namespace}` and `{port}` into a Tilt URL template.
pub fn tilt_base_url(template: &str, env: &str, namespace: &str, port: u16) -> String {
    template
        .replace("{env}", env)
        .replace("{namespace}", namespace)
        .replace("{port}", &port.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_when_the_watches_have_listed() {
        let synced = Synced::default();
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let synced = synced.clone();
                tokio::spawn(async move { synced.wait_for(Synced::CHILDREN).await })
            })
            .collect();
        synced.mark(Synced::DEPLOYMENTS | Synced::SERVICES);
        assert!(!synced.is(Synced::CHILDREN));
        synced.mark(Synced::INGRESSES);
        assert!(synced.is(Synced::CHILDREN));
        assert!(!synced.is(Synced::CONFIG_MAPS));
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("every waiter wakes")
                .unwrap();
        }
    }

    #[test]
    fn default_tilt_url_is_the_env_service() {
        assert_eq!(
            tilt_base_url(DEFAULT_TILT_URL_TEMPLATE, "nicks", "eph", 10350),
            "http://nicks.eph.svc:10350"
        );
        assert_eq!(
            tilt_base_url("http://127.0.0.1:4000", "nicks", "eph", 10350),
            "http://127.0.0.1:4000"
        );
    }
}
