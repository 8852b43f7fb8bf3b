//! Builds the dashboard around bound listeners (port 0 in tests): the env watch, the state,
//! the app with its middleware and routes on the traffic listener, and `/healthz`, `/readyz`
//! and `/metrics` on the admin listener (`ephemerator_kit::admin`, as every server has:
//! never reachable through the gateway). [`start`] returns a handle with the addresses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::{ServerHandle, Service};
use actix_web::http::ConnectionType;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use ephemerator_core::labels::env_label_selector;
use ephemerator_kit::admin::{AdminReport, Job, Readiness, serving_readiness};
use ephemerator_kit::cluster::{ApiHealth, reflected_watch};
use ephemerator_kit::events::{EventSink, Reporter};
use ephemerator_kit::running::{Draining, Tasks, drain, leave_then_stop};
use ephemerator_kit::signing::LiveKeys;
use ephemerator_kit::{Listeners, LiveConfig};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use kube::runtime::{reflector, watcher};

use crate::csrf::CsrfKey;
use crate::discovery::{Discovery, DiscoverySettings};
use crate::fragment_cache::{Generation, RowCache, SnapshotCache};
use crate::identity::{IdentitySource, NameFields};
use crate::metrics::Metrics;
use crate::routes;
use crate::state::AppState;
use crate::telemetry::DashRootSpan;

/// The Content-Security-Policy of every answer: nothing but the dashboard's own files, no
/// inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Who the dashboard's Events say recorded them.
pub const AUDIT_REPORTER: Reporter = Reporter {
    controller: "ephemerator.tilt.dev/ephdash",
    action: "Change",
    server: "ephdash",
};

/// Everything [`start`] needs.
pub struct Settings {
    /// The cluster (see `ephemerator_kit::cluster::bounded_client`).
    pub client: kube::Client,
    /// Whether the API server answers, as the client reports it.
    pub api_health: ApiHealth,
    /// The namespace of the envs.
    pub namespace: String,
    /// The config file, as it is reloaded (see [`LiveConfig`]).
    pub config: LiveConfig,
    /// Where identities come from.
    pub identity: IdentitySource,
    /// Which of its headers name a person (`--identity-from`).
    pub identity_from: NameFields,
    /// Signs CSRF tokens; every replica needs the same.
    pub csrf: CsrfKey,
    /// The keys share links are signed with, the gateway's (`--signing-keys`); without them no
    /// link can be made.
    pub signing_keys: Option<LiveKeys>,
    /// The tera templates (`templates/` at the top of the repo).
    pub templates: PathBuf,
    /// The static files (`assets/`).
    pub assets: PathBuf,
    /// HTTP worker threads.
    pub workers: usize,
    /// Limits of branch and Tiltfile discovery.
    pub discovery: DiscoverySettings,
    /// Most bytes of env rows kept rendered for all viewers (see [`RowCache`]).
    pub shared_rows_max_bytes: usize,
    /// How long requests in flight get to finish on [`Running::stop`] (`--drain-timeout`).
    pub drain_timeout: Duration,
}

/// A running dashboard.
pub struct Running {
    /// Where the traffic listener is.
    pub addr: SocketAddr,
    /// Where its admin listener (`/healthz`, `/readyz`, `/metrics`) is.
    pub admin_addr: SocketAddr,
    handle: ServerHandle,
    drain_timeout: Duration,
    draining: Draining,
    // Owned: aborted when the handle goes.
    _tasks: Tasks,
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to the drain timeout), then stops.
    pub async fn stop(self) {
        drain(self.drain_timeout, self.handle.stop(true)).await;
    }

    /// Leaves as on SIGTERM: not ready and closing every connection after its response for
    /// `delay` (while the pod leaves its Service), then [`Running::stop`].
    pub async fn leave_then_stop(self, delay: Duration) {
        let draining = self.draining.clone();
        leave_then_stop(&draining, delay, self.stop()).await;
    }
}

impl Drop for Running {
    /// The server stops with the handle (its workers at once); the watches and the admin
    /// listener too (`tasks`).
    fn drop(&mut self) {
        // Sent now; the returned future only waits for the stop to be done.
        drop(self.handle.stop(false));
    }
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The templates are missing or do not parse.
    #[error("loading the templates from {path}: {source}")]
    Templates {
        /// The directory.
        path: String,
        /// What tera said.
        #[source]
        source: tera::Error,
    },
    /// The listener cannot be served.
    #[error("serving on the listener: {0}")]
    Listen(#[from] std::io::Error),
}

/// Starts the dashboard on the current runtime, serving on `listeners.traffic` with its admin
/// listener on `listeners.admin`.
pub fn start(settings: Settings, mut listeners: Listeners) -> Result<Running, StartError> {
    let Settings {
        client,
        api_health,
        namespace,
        config,
        identity,
        identity_from,
        csrf,
        signing_keys,
        templates,
        assets,
        workers,
        discovery,
        shared_rows_max_bytes,
        drain_timeout,
    } = settings;
    let listener = listeners.take_traffic()?;
    let pattern = templates.join("**").join("*.html");
    let templates =
        tera::Tera::new(&pattern.to_string_lossy()).map_err(|source| StartError::Templates {
            path: templates.display().to_string(),
            source,
        })?;

    let (envs, writer) = reflector::store::<ConfigMap>();
    let listed = Arc::new(AtomicBool::new(false));
    let generation = Arc::new(Generation::default());
    // A new config changes what pages show (admins, the form's repos): rendered fragments go.
    let config_watch = {
        let generation = generation.clone();
        tokio::spawn(config.changes().for_each(move |()| {
            generation.bump();
            futures::future::ready(())
        }))
    };
    let watch = {
        let (listed, generation) = (listed.clone(), generation.clone());
        let events = reflected_watch(
            Api::<ConfigMap>::namespaced(client.clone(), &namespace),
            watcher::Config::default().labels(&env_label_selector()),
            writer,
            |cm| cm.metadata.managed_fields = None,
        );
        tokio::spawn(events.for_each(move |event| {
            generation.bump();
            if matches!(event, watcher::Event::InitDone) {
                listed.store(true, Ordering::Release);
            }
            futures::future::ready(())
        }))
    };

    // Events about ConfigMaps (ephctrl's): shown on the page, never required to be ready.
    let (events, event_writer) = reflector::store::<Event>();
    let event_watch = {
        let generation = generation.clone();
        tokio::spawn(
            reflected_watch(
                Api::<Event>::namespaced(client.clone(), &namespace),
                watcher::Config::default().fields("regarding.kind=ConfigMap"),
                event_writer,
                |event| event.metadata.managed_fields = None,
            )
            .for_each(move |_| {
                generation.bump();
                futures::future::ready(())
            }),
        )
    };

    let (audit, audit_writer) = EventSink::new(client.clone(), &namespace, AUDIT_REPORTER);
    let audit_writer = tokio::spawn(audit_writer);
    let mut metrics = Metrics::new();
    metrics.track(&config, &api_health);
    let draining = Draining::default();
    let state = web::Data::new(AppState {
        client,
        api_health,
        namespace,
        config: config.clone(),
        identity,
        identity_from,
        csrf,
        signing_keys: signing_keys.clone(),
        audit,
        envs,
        events,
        listed,
        draining: draining.clone(),
        templates,
        metrics,
        discovery: Discovery::new(discovery),
        generation,
        rows: RowCache::new(shared_rows_max_bytes),
        snapshots: SnapshotCache::default(),
    });
    let admin = tokio::net::TcpListener::from_std(listeners.admin)?;
    let admin_addr = admin.local_addr()?;
    let admin_report: Arc<dyn AdminReport> = Arc::new(Report(state.clone()));
    let admin_task = tokio::spawn(ephemerator_kit::admin::serve(admin, admin_report));
    let server = HttpServer::new(move || {
        let metrics_state = state.clone();
        App::new()
            .app_data(state.clone())
            .app_data(web::FormConfig::default().limit(16 * 1024))
            .wrap(
                DefaultHeaders::new()
                    .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "same-origin"))
                    .add(("X-Frame-Options", "DENY")),
            )
            .wrap_fn(move |request, service| {
                let started = Instant::now();
                let route = request
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".into());
                let metrics = metrics_state.clone();
                let answer = service.call(request);
                async move {
                    let mut response = answer.await?;
                    // On the way out: the client's next request goes on a new connection, to
                    // another replica.
                    if metrics.draining.is_draining() {
                        response
                            .response_mut()
                            .head_mut()
                            .set_connection_type(ConnectionType::Close);
                    }
                    metrics.metrics.request(
                        &route,
                        response.status().as_u16(),
                        started.elapsed().as_secs_f64(),
                    );
                    Ok(response)
                }
            })
            .wrap(tracing_actix_web::TracingLogger::<DashRootSpan>::new())
            .configure(routes::configure)
            .service(actix_files::Files::new("/assets", &assets).prefer_utf8(true))
    })
    .workers(workers.max(1))
    .shutdown_timeout(drain_timeout.as_secs())
    // The list goes out in 32 KiB writes (see `chunked.rs`): without this its last short
    // segment waits for the client's delayed ACK, 40 ms on Linux.
    .tcp_nodelay(true)
    .disable_signals()
    .listen(listener)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("the server has no address"))?;
    let server = server.run();
    let handle = server.handle();
    let mut tasks = Tasks::default();
    tasks.spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "the dashboard stopped serving");
        }
    });
    for task in [watch, event_watch, config_watch, admin_task, audit_writer] {
        tasks.adopt(task);
    }
    if let Some(keys) = signing_keys {
        tasks.spawn(keys.watch());
    }
    Ok(Running {
        addr,
        admin_addr,
        handle,
        drain_timeout,
        draining,
        _tasks: tasks,
    })
}

/// What the admin listener reports.
struct Report(web::Data<AppState>);

impl AdminReport for Report {
    /// Ready once the envs are listed. An API server that stops answering does not make the
    /// dashboard unready: it keeps showing the envs it has (and says why a create or delete
    /// fails), which beats every replica leaving the Service at once and the gateway answering
    /// 502 for the whole dashboard.
    fn readiness(&self) -> Readiness {
        serving_readiness(
            &self.0.draining,
            self.0.listed.load(Ordering::Acquire),
            self.0.api_health.is_answering(),
            Job::ServeFromCache,
        )
    }

    fn metrics(&self) -> String {
        self.0.metrics.encode()
    }
}
