//! Prometheus metrics of the gateway, served on the admin listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<TargetLabels, Histogram>,
    env_latency: Histogram,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    websockets: Gauge,
    auth_latency: Family<AuthLabels, Histogram>,
    auth_cache_hits: Counter,
    connections: Gauge,
    envs: Gauge,
    api_answering: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ephgateway");
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
        let api_answering = Gauge::default();
        registry.register(
            "api_answering",
            "1 while the Kubernetes API server answers (routes are current), else 0",
            api_answering.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            env_latency,
            upstream_errors,
            websockets,
            auth_latency,
            auth_cache_hits,
            connections,
            envs,
            api_answering,
        }
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

    /// The text exposition, with the table size and API state as of now.
    /// Adds the config reload metrics (generation, failures) of `config`.
    pub fn track_config(&mut self, config: &ephemerator_kit::LiveConfig) {
        config.register_metrics(&mut self.registry);
    }

    pub fn encode(&self, envs: usize, api_answering: bool) -> String {
        self.envs.set(envs as i64);
        self.api_answering.set(i64::from(api_answering));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
