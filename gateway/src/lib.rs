//! ephgateway: the one entry point of an ephemerator. `PORT---ENV.<gatewayHost>` reaches port
//! PORT of env ENV (only a port that env publishes), the bare host reaches the dashboard, and
//! `/oauth2/...` there reaches oauth2-proxy, which checks every other request first.
//!
//! - [`route`]: the routing decision (pure); [`table`]: the route table the env watch keeps.
//! - [`proxy`]: one request end to end; [`headers`]: header hygiene (pure).
//! - [`auth`]: the oauth2-proxy check and its cache; [`pages`]: the status pages.
//! - [`env_access`]: who may open an env (pure); [`env_gate`]: the env cookie, the sign-in for
//!   env hosts and share links, carried out.
//! - [`activity`]: who uses an env, recorded on its activity Lease.
//! - [`server`]: connections, limits, TLS and draining; the admin listener is core's.
//! - [`startup`]: builds it all around bound listeners (port 0 in tests).

pub mod activity;
pub mod auth;
pub mod env_access;
pub mod env_gate;
pub mod headers;
pub mod metrics;
pub mod pages;
pub mod proxy;
pub mod route;
pub mod server;
pub mod setup_logs;
pub mod startup;
pub mod table;
pub mod timer;
pub mod tls;
pub mod upstream;

use std::sync::Arc;

use hyper::body::{Bytes, Incoming};
use hyper::http::uri::Authority;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

pub use startup::{Limits, Running, Settings, default_workers, start};

/// The body of every answer: an upstream's streamed body or a page.
pub type Body =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    /// The config in force: its `gatewayHost` is the dashboard's bare host, and envs are
    /// `PORT---ENV.<gatewayHost>` (reloaded when the file changes).
    pub config: ephemerator_kit::LiveConfig,
    /// The scheme clients use (`https` behind TLS), for links, redirects and
    /// `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// The namespace of the envs.
    pub namespace: String,
    /// The dashboard's address.
    pub dashboard: Authority,
    /// Where env ports are reached.
    pub env_upstream: upstream::UpstreamTemplate,
    /// The route table.
    pub table: Arc<table::RouteTable>,
    /// Checks requests.
    pub auth: auth::Authenticator,
    /// Which of oauth2-proxy's headers name a person (`--identity-from`, as the dashboard's).
    pub identity_from: ephemerator_core::identity::NameFields,
    /// The keys of env cookies, codes and share links (required with oauth2-proxy).
    pub keys: Option<ephemerator_kit::signing::LiveKeys>,
    /// One-time codes already taken.
    pub used_codes: env_gate::UsedCodes,
    /// Records the first use of each share link as an Event on its env (the audit trail).
    pub audit: ephemerator_kit::events::EventSink,
    /// The share links this replica has seen used, so each first use is recorded once.
    pub links_used: env_gate::LinksUsed,
    /// Timeouts and limits.
    pub limits: Limits,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Set on SIGTERM: responses close their connections while the pod leaves its Service.
    pub draining: ephemerator_kit::running::Draining,
    /// Notes a person's use of an env, for its activity Lease.
    pub activity: activity::Activity,
    /// The runners' setup logs, for the waking and starting pages.
    pub setup_logs: setup_logs::SetupLogs,
}

/// The clients of one worker thread: its pool of upstream connections and its auth client.
/// Each worker has its own, so that a request, its upstream connection and the tasks that
/// drive them stay on one thread (no cross-thread wake-ups per request).
#[derive(Clone)]
pub struct Upstreams {
    /// Proxied requests.
    pub proxy: Client<HttpConnector, Incoming>,
    /// oauth2-proxy subrequests.
    pub auth: auth::AuthClient,
}

impl Upstreams {
    /// New clients, with the connect and idle timeouts of `limits`.
    pub fn new(limits: &Limits) -> Self {
        let connector = |timeout| {
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(timeout));
            connector.set_nodelay(true);
            connector
        };
        let builder = || {
            let mut builder = Client::builder(hyper_util::rt::TokioExecutor::new());
            builder
                .pool_idle_timeout(limits.upstream_idle_timeout)
                .pool_timer(hyper_util::rt::TokioTimer::new());
            builder
        };
        Upstreams {
            proxy: builder().build(connector(limits.upstream_connect_timeout)),
            auth: builder().build(connector(limits.auth_timeout)),
        }
    }
}

impl Gateway {
    /// The upstream address of `port` of env `env`.
    pub fn env_authority(&self, env: &str, port: u16) -> Result<Authority, String> {
        self.env_upstream.authority(env, &self.namespace, port)
    }
}
