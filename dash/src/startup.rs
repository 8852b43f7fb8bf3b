//! Builds the dashboard around bound listeners (port 0 in tests): the env watch, the state,
//! the app with its middleware and routes on the traffic listener, and `/healthz`, `/readyz`
//! and `/metrics` on the admin listener (`ephemerator_kit::admin`, as every server has:
//! never reachable through the gateway). [`start`] returns a handle with the addresses.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix_web::dev::{ServerHandle, Service};
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use ephemerator_core::labels::env_label_selector;
use ephemerator_kit::LiveConfig;
use ephemerator_kit::admin::AdminReport;
use ephemerator_kit::cluster::{ApiHealth, reflected_watch};
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
}

/// A running dashboard.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its admin listener (`/healthz`, `/readyz`, `/metrics`) is.
    pub admin_addr: SocketAddr,
    /// Stops it (gracefully: in-flight requests finish).
    pub handle: ServerHandle,
    /// Ends when the server has stopped.
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops serving, letting requests in flight finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        for watch in &self.watches {
            watch.abort();
        }
        let _ = self.server.await;
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

/// Starts the dashboard on `listener`, with its admin listener on `admin`.
pub fn start(
    settings: Settings,
    listener: TcpListener,
    admin: TcpListener,
) -> Result<Running, StartError> {
    let Settings {
        client,
        api_health,
        namespace,
        config,
        identity,
        identity_from,
        csrf,
        templates,
        assets,
        workers,
        discovery,
        shared_rows_max_bytes,
    } = settings;
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

    let state = web::Data::new(AppState {
        client,
        api_health,
        namespace,
        config: config.clone(),
        identity,
        identity_from,
        csrf,
        envs,
        events,
        listed,
        templates,
        metrics: {
            let mut metrics = Metrics::new();
            metrics.track_config(&config);
            metrics
        },
        discovery: Discovery::new(discovery),
        generation,
        rows: RowCache::new(shared_rows_max_bytes),
        snapshots: SnapshotCache::default(),
    });
    admin.set_nonblocking(true)?;
    let admin = tokio::net::TcpListener::from_std(admin)?;
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
                    let response = answer.await?;
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
    Ok(Running {
        addr,
        admin_addr,
        handle,
        server: tokio::spawn(server),
        watches: vec![watch, event_watch, config_watch, admin_task],
    })
}

/// What the admin listener reports: ready once the envs are listed and while the API server
/// answers.
struct Report(web::Data<AppState>);

impl AdminReport for Report {
    fn readiness(&self) -> Result<(), String> {
        self.0.is_ready().map_err(str::to_string)
    }

    fn metrics(&self) -> String {
        self.0.metrics.encode()
    }
}
