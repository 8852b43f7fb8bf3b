//! Builds the gateway around bound listeners (port 0 in tests): the env watch feeding the route
//! table, the clients, the traffic listener and the admin listener. [`start`] returns a handle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ephemerator_core::identity::NameFields;
use ephemerator_core::labels::env_label_selector;
use ephemerator_kit::admin::{AdminReport, Job, Readiness, serving_readiness};
use ephemerator_kit::cluster::{ApiHealth, event_watch};
use ephemerator_kit::events::{EventSink, Reporter};
use ephemerator_kit::running::{Draining, Tasks, drain, leave_then_stop};
use ephemerator_kit::signing::LiveKeys;
use ephemerator_kit::{Listeners, LiveConfig};
use futures::StreamExt;
use hyper::http::uri::Authority;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthMode, Authenticator};
use crate::metrics::Metrics;
use crate::table::RouteTable;
use crate::tls::{ReloadingCert, TlsFiles};
use crate::upstream::UpstreamTemplate;
use crate::{Gateway, server};

/// Who the gateway's Events say recorded them.
pub const AUDIT_REPORTER: Reporter = Reporter {
    controller: "ephemerator.tilt.dev/ephgateway",
    action: "ShareLink",
    server: "ephgateway",
};

/// Timeouts and limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most client connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Longest wait for a request's headers (and a TLS handshake); also how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes (at least 8 KiB); larger gets 431.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// Longest wait for an upstream connection.
    pub upstream_connect_timeout: Duration,
    /// Longest wait for an upstream's response headers. Bodies (server-sent events, long
    /// downloads) and WebSockets are not limited.
    pub upstream_timeout: Duration,
    /// How long idle upstream connections are kept for reuse.
    pub upstream_idle_timeout: Duration,
    /// Longest wait for oauth2-proxy's answer.
    pub auth_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(90),
            auth_timeout: Duration::from_secs(5),
        }
    }
}

/// Everything [`start`] needs.
pub struct Settings {
    /// The cluster (see `ephemerator_kit::cluster::bounded_client`).
    pub client: kube::Client,
    /// Whether the API server answers, as the client reports it.
    pub api_health: ApiHealth,
    /// The namespace of the envs.
    pub namespace: String,
    /// The config file, as it is reloaded: the gateway serves its `gatewayHost`.
    pub config: LiveConfig,
    /// The dashboard's address (`host:port`).
    pub dashboard: Authority,
    /// Where env ports are reached.
    pub env_upstream: UpstreamTemplate,
    /// How requests are authenticated.
    pub auth: AuthMode,
    /// Which of oauth2-proxy's headers name a person (as the dashboard's `--identity-from`).
    pub identity_from: NameFields,
    /// The keys of env cookies, codes and share links: required with oauth2-proxy.
    pub signing_keys: Option<LiveKeys>,
    /// TLS termination, if the gateway does it.
    pub tls: Option<TlsFiles>,
    /// The scheme clients use; `None`: `https` with TLS, else `http`. Set `https` behind a
    /// load balancer that terminates TLS.
    pub public_https: Option<bool>,
    /// Timeouts and limits.
    pub limits: Limits,
    /// Threads serving connections (default: one per core).
    pub workers: usize,
    /// How long requests in flight get to finish on [`Running::stop`] (`--drain-timeout`).
    pub drain_timeout: Duration,
}

impl Settings {
    /// A gateway on one machine (the local run, tests): every env port on loopback
    /// (`127.0.0.1:{port}`), nobody signing in, no TLS, one worker, the default limits.
    pub fn on_loopback(
        client: kube::Client,
        namespace: &str,
        config: LiveConfig,
        dashboard: SocketAddr,
    ) -> Settings {
        Settings {
            client,
            api_health: ApiHealth::default(),
            namespace: namespace.to_string(),
            config,
            dashboard: Authority::try_from(dashboard.to_string().as_str())
                .unwrap_or_else(|_| Authority::from_static("127.0.0.1")),
            env_upstream: UpstreamTemplate::loopback(),
            auth: AuthMode::None,
            identity_from: NameFields::default(),
            signing_keys: None,
            tls: None,
            public_https: None,
            limits: Limits::default(),
            workers: 1,
            drain_timeout: ephemerator_kit::flags::DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// One worker per core the process may use.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A running gateway.
pub struct Running {
    /// Where the traffic listener is.
    pub addr: SocketAddr,
    /// Where the admin listener (`/healthz`, `/readyz`, `/metrics`) is.
    pub admin_addr: SocketAddr,
    /// The route table (tests wait on it).
    pub table: Arc<RouteTable>,
    stop: CancellationToken,
    workers: TaskTracker,
    drain_timeout: Duration,
    draining: Draining,
    // Owned: aborted when the handle goes.
    _tasks: Tasks,
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to the drain timeout), then stops.
    /// WebSockets end with it.
    pub async fn stop(self) {
        self.stop.cancel();
        drain(self.drain_timeout, self.workers.wait()).await;
    }

    /// Leaves as on SIGTERM: not ready and closing every connection after its response for
    /// `delay` (while the pod leaves its Service), then [`Running::stop`].
    pub async fn leave_then_stop(self, delay: Duration) {
        let draining = self.draining.clone();
        leave_then_stop(&draining, delay, self.stop()).await;
    }
}

impl Drop for Running {
    /// The worker threads stop with the handle; the watch and the admin listener too
    /// (`tasks`).
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The TLS files are unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// oauth2-proxy authenticates but there are no signing keys for env cookies.
    #[error("--auth oauth2-proxy needs signing keys (--signing-keys)")]
    NoKeys,
    /// A listener cannot be used.
    #[error("listener: {0}")]
    Listen(#[from] std::io::Error),
}

/// Starts the gateway on the current runtime, serving on `listeners.traffic` with its admin
/// listener on `listeners.admin`.
pub fn start(settings: Settings, mut listeners: Listeners) -> Result<Running, StartError> {
    let Settings {
        client,
        api_health,
        namespace,
        config,
        dashboard,
        env_upstream,
        auth,
        identity_from,
        signing_keys,
        tls,
        public_https,
        limits,
        workers,
        drain_timeout,
    } = settings;
    if matches!(auth, AuthMode::OAuth2Proxy { .. }) && signing_keys.is_none() {
        return Err(StartError::NoKeys);
    }
    let listener = TcpListener::from_std(listeners.take_traffic()?)?;
    let admin = TcpListener::from_std(listeners.admin)?;
    let addr = listener.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let mut tasks = Tasks::default();

    let tls = match tls {
        Some(files) => {
            let cert = ReloadingCert::load(files).map_err(StartError::Tls)?;
            let acceptor = cert.acceptor().map_err(StartError::Tls)?;
            tasks.spawn(cert.watch());
            Some(acceptor)
        }
        None => None,
    };
    let proto = match public_https.unwrap_or(tls.is_some()) {
        true => "https",
        false => "http",
    };

    let mut metrics = Metrics::new();
    metrics.track(&config, &api_health);
    let metrics = Arc::new(metrics);
    let table = Arc::new(RouteTable::default());
    {
        let (table, metrics) = (table.clone(), metrics.clone());
        // No store: the table is the gateway's only index of the envs.
        let events = event_watch(
            Api::<ConfigMap>::namespaced(client.clone(), &namespace),
            watcher::Config::default().labels(&env_label_selector()),
            // The table needs the status in metadata only.
            |cm| {
                cm.metadata.managed_fields = None;
                cm.data = None;
                cm.binary_data = None;
            },
        );
        tasks.spawn(events.for_each(move |event| {
            // An env's series go with it: only envs in the table label any.
            for gone in table.apply(&event) {
                metrics.forget_env(&gone);
            }
            futures::future::ready(())
        }));
    }

    if let Some(keys) = signing_keys.clone() {
        tasks.spawn(keys.watch());
    }
    let draining = Draining::default();
    let (audit, audit_writer) = EventSink::new(client.clone(), &namespace, AUDIT_REPORTER);
    tasks.spawn(audit_writer);
    let (activity, activity_writer) = crate::activity::Activity::new(
        client.clone(),
        &namespace,
        ephemerator_kit::events::reporting_instance("ephgateway"),
    );
    tasks.spawn(activity_writer);
    let setup_logs = crate::setup_logs::SetupLogs::new(Some(client.clone()), &namespace);
    let gateway = Arc::new(Gateway {
        config,
        proto,
        namespace,
        dashboard,
        env_upstream,
        table: table.clone(),
        auth: Authenticator::new(auth, limits.auth_timeout, metrics.clone()),
        identity_from,
        keys: signing_keys.clone(),
        used_codes: crate::env_gate::UsedCodes::default(),
        audit,
        links_used: crate::env_gate::LinksUsed::default(),
        limits: limits.clone(),
        metrics: metrics.clone(),
        draining: draining.clone(),
        activity,
        setup_logs,
    });

    let report = Arc::new(GatewayReport {
        table: table.clone(),
        api_health,
        metrics,
        draining: draining.clone(),
    });
    tasks.spawn(ephemerator_kit::admin::serve(admin, report));

    let stop = CancellationToken::new();
    let workers_done = TaskTracker::new();
    server::spawn_workers(
        listener,
        gateway,
        tls,
        stop.clone(),
        workers_done.clone(),
        workers,
    )?;
    workers_done.close();
    Ok(Running {
        addr,
        admin_addr,
        table,
        stop,
        workers: workers_done,
        drain_timeout,
        draining,
        _tasks: tasks,
    })
}

/// What the admin listener reports.
struct GatewayReport {
    table: Arc<RouteTable>,
    api_health: ApiHealth,
    metrics: Arc<Metrics>,
    draining: Draining,
}

impl AdminReport for GatewayReport {
    /// Ready once the envs are listed. An API server that stops answering does not make the
    /// gateway unready: it keeps routing with the table it has (a few seconds stale at worst
    /// for new or deleted envs), which beats every replica leaving the load balancer at once.
    fn readiness(&self) -> Readiness {
        serving_readiness(
            &self.draining,
            self.table.is_listed(),
            self.api_health.is_answering(),
            Job::ServeFromCache,
        )
    }

    fn metrics(&self) -> String {
        self.metrics.encode(self.table.len())
    }
}
