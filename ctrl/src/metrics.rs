//! Prometheus metrics of the controller, served as text by [`crate::http`].

use std::time::Duration;

use ephemerator_core::Phase;
use ephemerator_kit::LiveConfig;
use ephemerator_kit::cluster::ApiHealth;
use ephemerator_kit::metrics::BaseMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// The phases reported in `ephctrl_envs`, so every phase has a series (zero included).
pub const REPORTED_PHASES: [Phase; 6] = [
    Phase::Pending,
    Phase::Starting,
    Phase::Ready,
    Phase::Failed,
    Phase::Rejected,
    Phase::Sleeping,
];

/// Buckets (seconds) of a runner's start: from seconds (a runner that is already up) to half
/// an hour (cloning, building a cluster).
const RUNNER_START_BUCKETS: [f64; 10] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// All controller metrics, registered in one registry.
pub struct Metrics {
    base: BaseMetrics,
    reconciles: Counter,
    failures: Family<ErrorLabels, Counter>,
    envs: Family<PhaseLabels, Gauge>,
    ready_latency: Histogram,
    wake_duration: Histogram,
    sleeps: Counter,
    expirations: Counter,
    leading: Gauge,
    terms: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `ephctrl_` prefix.
    pub fn new() -> Self {
        let mut base = BaseMetrics::new("ephctrl");
        let registry = base.registry();
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        let failures = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by error kind",
            failures.clone(),
        );
        let envs = Family::<PhaseLabels, Gauge>::default();
        registry.register("envs", "Envs by phase", envs.clone());
        let ready_latency = Histogram::new(RUNNER_START_BUCKETS);
        registry.register(
            "ready_latency_seconds",
            "Time from an env's creation until its runner was first ready",
            ready_latency.clone(),
        );
        // A wake starts the runner from scratch, as a first start does.
        let wake_duration = Histogram::new(RUNNER_START_BUCKETS);
        registry.register(
            "wake_duration_seconds",
            "Time from the wake of a sleeping env until its runner was ready again",
            wake_duration.clone(),
        );
        let sleeps = Counter::default();
        registry.register(
            "sleeps",
            "Times an env fell asleep (its runner scaled to zero) for lack of use",
            sleeps.clone(),
        );
        let expirations = Counter::default();
        registry.register(
            "expirations",
            "Envs deleted because they expired",
            expirations.clone(),
        );
        let leading = Gauge::default();
        registry.register(
            "leading",
            "Whether this replica holds the Lease and acts (1) or stands by (0)",
            leading.clone(),
        );
        let terms = Counter::default();
        registry.register(
            "leader_terms",
            "Times this replica took the lead",
            terms.clone(),
        );
        Metrics {
            base,
            reconciles,
            failures,
            envs,
            ready_latency,
            wake_duration,
            sleeps,
            expirations,
            leading,
            terms,
        }
    }

    /// Counts one reconcile.
    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    /// Counts one failed reconcile; `error` is [`crate::Error::metric_label`].
    pub fn failed(&self, error: &'static str) {
        self.failures.get_or_create(&ErrorLabels { error }).inc();
    }

    /// Records how long an env took from creation to its first Ready.
    pub fn became_ready(&self, latency: Duration) {
        self.ready_latency.observe(latency.as_secs_f64());
    }

    /// Records how long a woken env took to be ready again.
    pub fn woke(&self, took: Duration) {
        self.wake_duration.observe(took.as_secs_f64());
    }

    /// Counts one env put to sleep.
    pub fn fell_asleep(&self) {
        self.sleeps.inc();
    }

    /// Counts one env deleted at its expiration.
    pub fn expired(&self) {
        self.expirations.inc();
    }

    /// Counts one term of this replica as the leader.
    pub fn took_the_lead(&self) {
        self.terms.inc();
    }

    /// Sets `ephctrl_leading`, at each scrape.
    pub fn set_leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
    }

    /// Sets `ephctrl_envs` from the phases of all envs currently known (one entry per env).
    pub fn set_env_phases(&self, phases: impl IntoIterator<Item = Phase>) {
        let mut counts = [0i64; REPORTED_PHASES.len()];
        for phase in phases {
            if let Some(index) = REPORTED_PHASES.iter().position(|p| *p == phase) {
                counts[index] += 1;
            }
        }
        for (phase, count) in REPORTED_PHASES.iter().zip(counts) {
            self.envs
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(count);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line_value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn counts_reconciles_failures_and_expirations() {
        let metrics = Metrics::new();
        metrics.reconciled();
        metrics.reconciled();
        metrics.failed("kube");
        metrics.expired();
        let text = metrics.encode();
        assert_eq!(line_value(&text, "ephctrl_reconciles_total "), Some(2.0));
        assert_eq!(
            line_value(&text, "ephctrl_reconcile_failures_total{error=\"kube\"}"),
            Some(1.0)
        );
        assert_eq!(line_value(&text, "ephctrl_expirations_total "), Some(1.0));
    }

    #[test]
    fn env_phases_replace_previous_counts_and_include_zeroes() {
        let metrics = Metrics::new();
        metrics.set_env_phases([Phase::Ready, Phase::Ready, Phase::Pending]);
        metrics.set_env_phases([Phase::Ready, Phase::Rejected, Phase::Unknown]);
        let text = metrics.encode();
        assert_eq!(
            line_value(&text, "ephctrl_envs{phase=\"Ready\"}"),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, "ephctrl_envs{phase=\"Rejected\"}"),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, "ephctrl_envs{phase=\"Pending\"}"),
            Some(0.0)
        );
        assert_eq!(
            line_value(&text, "ephctrl_envs{phase=\"Failed\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn ready_latency_lands_in_its_bucket() {
        let metrics = Metrics::new();
        metrics.became_ready(Duration::from_secs(20));
        let text = metrics.encode();
        assert_eq!(
            line_value(&text, "ephctrl_ready_latency_seconds_bucket{le=\"15.0\"}"),
            Some(0.0)
        );
        assert_eq!(
            line_value(&text, "ephctrl_ready_latency_seconds_bucket{le=\"30.0\"}"),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, "ephctrl_ready_latency_seconds_count "),
            Some(1.0)
        );
    }
}
