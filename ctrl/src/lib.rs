//! ephctrl: keeps a runner Deployment, Service and (optionally) Ingress for every env ConfigMap
//! in its namespace, expires envs, and reports their status back on the ConfigMap.
//!
//! [`start`] starts the whole controller and returns its [`Running`] handle, as every server's
//! `start` does; `main.rs` only parses flags and boots (`ephemerator_kit::boot`), so tests run
//! the controller in-process against a devcluster. Per env: [`reconcile`] gathers, [`plan`]
//! decides, [`execute`] writes.

pub mod cached;
pub mod context;
pub mod desired;
pub mod error;
pub mod events;
pub mod execute;
pub mod http;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod outbound;
pub mod plan;
pub mod reconcile;
pub mod sleep;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod tilt;
pub mod watches;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ephemerator_core::{Config, EnvStatus};
use ephemerator_kit::cluster::ApiHealth;
use ephemerator_kit::flags::DEFAULT_DRAIN_TIMEOUT;
use ephemerator_kit::{Listeners, LiveConfig};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use context::DEFAULT_TILT_URL_TEMPLATE;
pub use error::{Error, Result};

use crate::cached::{ChildMeta, RunnerDeployment};
use crate::context::{Context, Synced};
use crate::http::HealthState;
use crate::leader::Leadership;
use crate::memory::Memory;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::observe::ChildKind;
use crate::tilt::TiltClient;

/// Most reconciles running at once: enough to keep the API server busy, few enough that a
/// thousand new envs do not open a thousand connections.
pub const DEFAULT_CONCURRENCY: u16 = 64;

/// Everything [`start`] needs.
pub struct Settings {
    /// The cluster; see [`ephemerator_kit::cluster::bounded_client`].
    pub client: Client,
    /// Whether the API server answers, as the client reports it (for `/readyz`).
    pub api_health: ApiHealth,
    /// The namespace of the env ConfigMaps and their children.
    pub namespace: String,
    /// The config file, as it is reloaded (see [`LiveConfig`]).
    pub config: LiveConfig,
    /// The webhook for notices: the config's `notifications.webhookUrl` unless a secret gives
    /// another.
    pub webhook_url: Option<ephemerator_core::SecretUrl>,
    /// Where Tilt is reached, with `{env}`, `{namespace}` and `{port}` filled in; see
    /// [`DEFAULT_TILT_URL_TEMPLATE`].
    pub tilt_url_template: String,
    /// Most reconciles at once; see [`DEFAULT_CONCURRENCY`].
    pub concurrency: u16,
    /// How often the Tilt of a ready runner is asked for its ports.
    pub tilt_polls: plan::TiltPolls,
    /// How long reconciles in flight get to finish on [`Running::stop`] (`--drain-timeout`).
    pub drain_timeout: Duration,
    /// The Lease through which one of several replicas leads, and this replica's identity.
    pub lease: leader::LeaseSettings,
}

impl Settings {
    /// Settings with the defaults: the config's webhook, the in-cluster Tilt URL, default
    /// concurrency, polls and drain time.
    pub fn new(client: Client, namespace: impl Into<String>, config: Config) -> Self {
        Settings {
            client,
            api_health: ApiHealth::default(),
            namespace: namespace.into(),
            webhook_url: config.notifications.webhook_url.clone(),
            config: LiveConfig::fixed(config),
            tilt_url_template: DEFAULT_TILT_URL_TEMPLATE.to_string(),
            concurrency: DEFAULT_CONCURRENCY,
            tilt_polls: plan::TiltPolls::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            lease: leader::LeaseSettings::new("ephctrl"),
        }
    }
}

/// A running controller.
pub struct Running {
    /// Where its admin listener (`/healthz`, `/readyz`, `/metrics`) is.
    pub admin_addr: SocketAddr,
    stop: CancellationToken,
    controller: Option<tokio::task::JoinHandle<()>>,
    drain_timeout: Duration,
}

impl Running {
    /// Starts no new reconciles, lets those in flight finish (up to the drain timeout), then
    /// stops.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(controller) = self.controller.as_mut() {
            ephemerator_kit::running::drain(self.drain_timeout, controller).await;
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Running {
    /// Stops at once, wherever the controller is, as a crash would; returns once it has.
    pub async fn kill(mut self) {
        if let Some(controller) = self.controller.take() {
            controller.abort();
            let _ = controller.await;
        }
    }
}

impl Drop for Running {
    /// The controller, its watches and its admin listener stop with the handle.
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(controller) = self.controller.take() {
            controller.abort();
        }
    }
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Tilt URL template cannot work.
    #[error("--tilt-url-template {template:?}: {reason}")]
    TiltUrlTemplate {
        /// The template given.
        template: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A listener cannot be used.
    #[error("listener: {0}")]
    Listen(#[from] std::io::Error),
}

/// Starts the controller on the current runtime, with its admin listener on
/// `listeners.admin` (ephctrl has no traffic listener). Fails only on a Tilt URL template that
/// cannot work or an unusable listener; everything later is retried.
pub fn start(settings: Settings, listeners: Listeners) -> Result<Running, StartError> {
    context::check_tilt_url_template(&settings.tilt_url_template).map_err(|reason| {
        StartError::TiltUrlTemplate {
            template: settings.tilt_url_template.clone(),
            reason,
        }
    })?;
    let admin = TcpListener::from_std(listeners.admin)?;
    let admin_addr = admin.local_addr()?;
    let stop = CancellationToken::new();
    let drain_timeout = settings.drain_timeout;
    let controller = tokio::spawn(run(settings, admin, stop.clone()));
    Ok(Running {
        admin_addr,
        stop,
        controller: Some(controller),
        drain_timeout,
    })
}

/// The controller, until `stop` is cancelled and the reconciles in flight are done (or until
/// it is dropped).
async fn run(settings: Settings, admin: TcpListener, stop: CancellationToken) {
    let Settings {
        client,
        api_health,
        namespace,
        config,
        webhook_url,
        tilt_url_template,
        concurrency,
        tilt_polls,
        drain_timeout: _,
        lease,
    } = settings;

    let synced = Synced::default();
    let (config_maps, config_map_writer) = reflector::store::<ConfigMap>();
    let (deployments, deployment_writer) = reflector::store::<RunnerDeployment>();
    let (services, service_writer) = reflector::store::<ChildMeta<Service>>();
    let (ingresses, ingress_writer) = reflector::store::<ChildMeta<Ingress>>();
    let (leases, lease_writer) = reflector::store::<Lease>();

    let mut metrics = Metrics::new();
    metrics.track(&config, &api_health);
    let metrics = Arc::new(metrics);
    let config_changes = config.changes();
    let leadership = Leadership::new(&lease.identity);
    let (events, event_writer) = events::sink(client.clone(), &namespace);
    let ctx = Arc::new(Context {
        client: client.clone(),
        api_health: api_health.clone(),
        namespace: namespace.clone(),
        config,
        events,
        metrics: metrics.clone(),
        notifier: Notifier::new(webhook_url.map(|url| url.expose().clone())),
        tilt: TiltClient::new(),
        tilt_url_template,
        tilt_polls,
        deployments,
        services,
        ingresses,
        leases,
        synced: synced.clone(),
        memory: Memory::default(),
        leadership: leadership.clone(),
    });
    // A replica that takes the lead starts from the cluster alone: what it remembers from an
    // earlier term may be out of date, and every env is reconciled (the standby did nothing).
    let took_the_lead = {
        let ctx = ctx.clone();
        leadership.gained().map(move |()| {
            ctx.memory.forget_unless(|_| false);
            ctx.metrics.took_the_lead();
        })
    };

    // Each watch retries on its own (see ephemerator_kit::cluster) and yields no errors, so
    // the Controller's joint trigger backoff never pauses every watch at once.
    let config_map_stream = watches::env_watch(&client, &namespace, config_map_writer, &ctx);
    let deployment_stream = watches::child_watch(
        &client,
        &namespace,
        deployment_writer,
        &ctx,
        ChildKind::Deployment,
        Synced::DEPLOYMENTS,
    );
    let service_stream = watches::child_watch(
        &client,
        &namespace,
        service_writer,
        &ctx,
        ChildKind::Service,
        Synced::SERVICES,
    );
    let ingress_stream = watches::child_watch(
        &client,
        &namespace,
        ingress_writer,
        &ctx,
        ChildKind::Ingress,
        Synced::INGRESSES,
    );

    let activity_stream =
        watches::activity_watch(&client, &namespace, lease_writer, &ctx, &config_maps);

    // A standby's watches fill its stores and trigger nothing: it reconciles every env from
    // them when it takes the lead (`took_the_lead`), and meanwhile costs no scheduling.
    let config_map_stream = watches::while_leading(config_map_stream, &leadership);
    let deployment_stream = watches::while_leading(deployment_stream, &leadership);
    let service_stream = watches::while_leading(service_stream, &leadership);
    let ingress_stream = watches::while_leading(ingress_stream, &leadership);
    let activity_stream = watches::while_leading(activity_stream, &leadership);
    let controller = Controller::for_stream(config_map_stream, config_maps.clone())
        .watches_stream(deployment_stream, watches::env_of(&config_maps, &namespace))
        .watches_stream(service_stream, watches::env_of(&config_maps, &namespace))
        .watches_stream(ingress_stream, watches::env_of(&config_maps, &namespace))
        .watches_stream(activity_stream, watches::env_of_activity(&namespace))
        // A new config is judged against every env at once: a repo taken off the allow-list
        // stops its envs without waiting for them to change.
        .reconcile_all_on(config_changes)
        .reconcile_all_on(took_the_lead)
        .with_config(controller::Config::default().concurrency(concurrency))
        // On stop: no new reconciles; the stream ends once those running are done.
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((env, _)) => tracing::trace!(env = %env.name, "reconciled"),
                // The env was deleted before its turn (the reconcile's own errors are logged
                // by the error policy).
                Err(error) => tracing::debug!(%error, "controller event"),
            }
        });

    let ready = Arc::new(AtomicBool::new(false));
    let readiness = {
        let (config_maps, ready, synced) = (config_maps.clone(), ready.clone(), synced.clone());
        async move {
            synced.wait_for(Synced::CONFIG_MAPS).await;
            ready.store(true, Ordering::Release);
            tracing::info!(envs = config_maps.len(), "env ConfigMaps listed; ready");
            futures::future::pending::<()>().await
        }
    };
    let phases_from = config_maps.clone();
    let health_leadership = leadership.clone();
    let health = async move {
        let state = Arc::new(HealthState {
            metrics,
            ready,
            api_health,
            leadership: health_leadership,
            env_phases: Box::new(move || {
                phases_from
                    .state()
                    .iter()
                    .map(|cm| EnvStatus::from_meta(&cm.metadata).phase)
                    .collect()
            }),
        });
        ephemerator_kit::admin::serve(admin, state).await
    };
    let sweeper = sweep_memory(ctx.clone(), config_maps.clone());
    tracing::info!(%namespace, "ephctrl started");
    // The writer ends only when every sink is gone, which the context outlives.
    let event_writer = async move {
        event_writer.await;
        futures::future::pending::<()>().await
    };
    let election = leader::run(client.clone(), namespace.clone(), lease.clone(), leadership);
    tokio::select! {
        () = controller => {
            tracing::info!("controller stopped");
            // Nothing acts any more: a standby may take over at once.
            leader::release(client, &namespace, &lease).await;
        }
        () = election => {}
        () = readiness => {}
        () = health => {}
        () = sweeper => {}
        () = event_writer => {}
    }
}

/// Deleted envs get no reconcile: their memory is dropped here, once a minute.
async fn sweep_memory(ctx: Arc<Context>, config_maps: Store<ConfigMap>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    loop {
        interval.tick().await;
        if !ctx.synced.is(Synced::CONFIG_MAPS) {
            continue;
        }
        ctx.memory.forget_unless(|name| {
            config_maps
                .get(&ObjectRef::new(name).within(&ctx.namespace))
                .is_some()
        });
    }
}
