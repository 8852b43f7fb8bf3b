//! Prometheus metrics of the gateway, served on the admin listener.

use ephemerator_kit::LiveConfig;
use ephemerator_kit::cluster::ApiHealth;
use ephemerator_kit::metrics::BaseMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `dashboard`, `oauth2-proxy`, `env`, `page` (a status page answered) or `refused` (a
    /// request refused before routing).
    target: &'static str,
    /// The env name for `env` and the status pages of envs in the route table, else empty:
    /// the `Host` header alone never makes a series.
    env: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    target: &'static str,
    /// `connect`, `timeout` or `other`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    verdict: &'static str,
}

/// All gateway metrics, in one registry under the `ephgateway_` prefix.
pub struct Metrics {
    base: BaseMetrics,
    requests: Family<RequestLabels, Counter>,
    latency: Family<TargetLabels, Histogram>,
    env_latency: Histogram,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    websockets: Gauge,
    auth_latency: Family<AuthLabels, Histogram>,
    auth_cache_hits: Counter,
    connections: Gauge,
    envs: Gauge,
    wakes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut base = BaseMetrics::new("ephgateway");
        let registry = base.registry();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by target, env and status",
            requests.clone(),
        );
        let latency = Family::<TargetLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "response_seconds",
            "Time to the response headers, by target",
            latency.clone(),
        );
        let env_latency = latency
            .get_or_create(&TargetLabels { target: "env" })
            .clone();
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstreams that refused, timed out or broke, by target and kind",
            upstream_errors.clone(),
        );
        let websockets = Gauge::default();
        registry.register(
            "websockets_open",
            "Upgraded connections open",
            websockets.clone(),
        );
        let auth_latency = Family::<AuthLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        registry.register(
            "auth_subrequest_seconds",
            "oauth2-proxy /oauth2/auth subrequests, by verdict",
            auth_latency.clone(),
        );
        let auth_cache_hits = Counter::default();
        registry.register(
            "auth_cache_hits",
            "Requests allowed from the auth cache without a subrequest",
            auth_cache_hits.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections open",
            connections.clone(),
        );
        let envs = Gauge::default();
        registry.register("envs", "Envs in the route table", envs.clone());
        let wakes = Counter::default();
        registry.register(
            "wakes",
            "Sleeping envs this replica woke for a visitor (one per sleep at most)",
            wakes.clone(),
        );
        Metrics {
            base,
            requests,
            latency,
            env_latency,
            upstream_errors,
            websockets,
            auth_latency,
            auth_cache_hits,
            connections,
            envs,
            wakes,
        }
    }

    /// Counts one wake sent for a visitor.
    pub fn woke_env(&self) {
        self.wakes.inc();
    }

    /// Drops the request series of env `name` (it left the route table), so that series never
    /// outlive their env. Every status a response can have is tried: removing an absent series
    /// costs a hash lookup, and envs go rarely.
    pub fn forget_env(&self, name: &str) {
        for target in ["env", "page"] {
            for status in 100..=999 {
                self.requests.remove(&RequestLabels {
                    target,
                    env: name.to_string(),
                    status,
                });
            }
        }
    }

    /// Counts one answered request and its time to headers.
    pub fn request(&self, target: &'static str, env: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                target,
                env: env.to_string(),
                status,
            })
            .inc();
        if target == "env" {
            // Held, sparing the family lookup on the hot path.
            self.env_latency.observe(seconds);
        } else {
            self.latency
                .get_or_create(&TargetLabels { target })
                .observe(seconds);
        }
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, target: &'static str, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels { target, kind })
            .inc();
    }

    /// The open WebSocket gauge.
    pub fn websockets(&self) -> &Gauge {
        &self.websockets
    }

    /// The open client connection gauge.
    pub fn connections(&self) -> &Gauge {
        &self.connections
    }

    /// Records one auth subrequest.
    pub fn auth_subrequest(&self, seconds: f64, verdict: &'static str) {
        self.auth_latency
            .get_or_create(&AuthLabels { verdict })
            .observe(seconds);
    }

    /// Counts one request allowed from the cache.
    pub fn auth_cache_hit(&self) {
        self.auth_cache_hits.inc();
    }

    /// Adds the series every server has: config reloads and `api_answering` (see
    /// [`BaseMetrics::track`]).
    pub fn track(&mut self, config: &LiveConfig, api_health: &ApiHealth) {
        self.base.track(config, api_health);
    }

    /// The Prometheus text exposition of every series, with the table size as of now.
    pub fn encode(&self, envs: usize) -> String {
        self.envs.set(i64::try_from(envs).unwrap_or(i64::MAX));
        self.base.encode()
    }
}
