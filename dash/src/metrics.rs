//! `/metrics`: requests by route and status, their latency, and ConfigMap writes by outcome.

use ephemerator_kit::LiveConfig;
use ephemerator_kit::cluster::ApiHealth;
use ephemerator_kit::metrics::BaseMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    action: &'static str,
    outcome: &'static str,
}

/// The dashboard's metrics.
pub struct Metrics {
    base: BaseMetrics,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    writes: Family<WriteLabels, Counter>,
    shared_rows: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric.
    pub fn new() -> Self {
        let mut base = BaseMetrics::new("ephdash");
        let registry = base.registry();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
        });
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by route and status",
            latency.clone(),
        );
        registry.register(
            "configmap_writes",
            "Env ConfigMap writes by action and outcome",
            writes.clone(),
        );
        let shared_rows = Gauge::default();
        registry.register(
            "shared_rows_bytes",
            "Bytes of rendered env rows kept for every viewer who sees them alike (bounded)",
            shared_rows.clone(),
        );
        Metrics {
            base,
            requests,
            latency,
            writes,
            shared_rows,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let labels = RequestLabels {
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// Counts one ConfigMap write (`action`: create, extend, delete, access, share_link, wake,
    /// keep_awake).
    pub fn write(&self, action: &'static str, outcome: &'static str) {
        self.writes
            .get_or_create(&WriteLabels { action, outcome })
            .inc();
    }

    /// Records the bytes the shared rows hold.
    pub fn shared_rows_bytes(&self, bytes: usize) {
        self.shared_rows
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Adds the series every server has: config reloads and `api_answering` (see
    /// [`BaseMetrics::track`]).
    pub fn track(&mut self, config: &LiveConfig, api_health: &ApiHealth) {
        self.base.track(config, api_health);
    }

    /// The Prometheus text exposition of every series, as of now.
    pub fn encode(&self) -> String {
        self.base.encode()
    }
}
