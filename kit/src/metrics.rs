//! What every server's `/metrics` has, so that the three `metrics.rs` hold only their own
//! series: one registry under the server's prefix, the config reload series of
//! [`LiveConfig::register_metrics`], `<prefix>_api_answering`, and the text encoding.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::LiveConfig;
use crate::cluster::ApiHealth;

/// The registry a server's metrics live in, with the series every server has.
pub struct BaseMetrics {
    registry: Registry,
    api: Option<(ApiHealth, Gauge)>,
}

impl BaseMetrics {
    /// An empty registry whose series are named `<prefix>_…`.
    pub fn new(prefix: &str) -> Self {
        BaseMetrics {
            registry: Registry::with_prefix(prefix),
            api: None,
        }
    }

    /// Where the server registers its own series.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Adds the reload series of `config` and `<prefix>_api_answering`, as `api_health` says
    /// at each scrape.
    pub fn track(&mut self, config: &LiveConfig, api_health: &ApiHealth) {
        config.register_metrics(&mut self.registry);
        let gauge = Gauge::default();
        self.registry.register(
            "api_answering",
            "1 while the Kubernetes API server answers (what this server shows and does is \
             current), else 0",
            gauge.clone(),
        );
        self.api = Some((api_health.clone(), gauge));
    }

    /// The Prometheus text exposition of every series, as of now.
    pub fn encode(&self) -> String {
        if let Some((health, gauge)) = &self.api {
            gauge.set(i64::from(health.is_answering()));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_prefixed_and_api_answering_follows_the_client() {
        let mut metrics = BaseMetrics::new("ephtest");
        let things = prometheus_client::metrics::counter::Counter::<u64>::default();
        metrics
            .registry()
            .register("things", "Things", things.clone());
        things.inc();
        let config = LiveConfig::fixed(
            ephemerator_core::Config::from_yaml_str(
                "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [tilt-example-html]\n",
                "test.yaml",
            )
            .unwrap(),
        );
        let health = ApiHealth::default();
        metrics.track(&config, &health);
        let text = metrics.encode();
        assert!(text.contains("ephtest_things_total 1"), "{text}");
        assert!(text.contains("ephtest_config_"), "{text}");
        assert!(text.contains("ephtest_api_answering 1"), "{text}");
        health.record(false);
        assert!(metrics.encode().contains("ephtest_api_answering 0"));
    }
}
