//! What ephctrl reports on the admin listener (`ephemerator_kit::admin`): ready once the env
//! ConfigMaps are listed and while the API server answers, saying whether this replica leads;
//! the controller's metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ephemerator_core::Phase;
use ephemerator_kit::admin::{AdminReport, Job, Readiness, readiness};
use ephemerator_kit::cluster::ApiHealth;

use crate::leader::Leadership;
use crate::metrics::Metrics;

/// What the listener reports on.
pub struct HealthState {
    /// Metrics to encode on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Set once the controller's first list of env ConfigMaps has synced.
    pub ready: Arc<AtomicBool>,
    /// Whether the API server answers: while it does not, nothing the controller does lands.
    pub api_health: ApiHealth,
    /// Whether this replica leads.
    pub leadership: Leadership,
    /// The phases of all known envs, counted into `ephctrl_envs` at each scrape so the gauge is
    /// always the cluster's truth (deleted envs drop out by themselves).
    pub env_phases: Box<dyn Fn() -> Vec<Phase> + Send + Sync>,
}

impl AdminReport for HealthState {
    /// Nothing the controller writes lands while the API server is away: not ready then. A
    /// standby is ready (its caches are warm, it can take over at once) and says who leads.
    fn readiness(&self) -> Readiness {
        match readiness(
            self.ready.load(Ordering::Acquire),
            self.api_health.is_answering(),
            Job::WriteToApiServer,
        ) {
            Readiness::Ready => Readiness::ReadyAs(role(&self.leadership)),
            other => other,
        }
    }

    fn metrics(&self) -> String {
        self.metrics.set_leading(self.leadership.is_leading());
        self.metrics.set_env_phases((self.env_phases)());
        self.metrics.encode()
    }
}

/// What `/readyz` says of this replica's role.
fn role(leadership: &Leadership) -> String {
    if leadership.is_leading() {
        return format!("leading as {}", leadership.identity());
    }
    let me = leadership.identity();
    match leadership.holder() {
        Some(holder) => format!("standing by as {me}; {holder} leads"),
        None if leadership.has_looked() => format!("standing by as {me}; nobody leads"),
        None => format!("standing by as {me}; who leads is not known yet"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ready: bool) -> HealthState {
        HealthState {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(ready)),
            api_health: ApiHealth::default(),
            leadership: Leadership::new("ephctrl-0_1234"),
            env_phases: Box::new(|| vec![Phase::Ready, Phase::Ready, Phase::Failed]),
        }
    }

    #[test]
    fn ready_once_listed() {
        assert_eq!(
            state(false).readiness(),
            Readiness::NotReady("env ConfigMaps not listed yet")
        );
        assert_eq!(
            state(true).readiness(),
            Readiness::ReadyAs(
                "standing by as ephctrl-0_1234; who leads is not known yet".to_string()
            )
        );
    }

    #[test]
    fn metrics_count_envs_by_phase_at_scrape_time() {
        let text = state(true).metrics();
        assert!(text.contains("ephctrl_envs{phase=\"Ready\"} 2"), "{text}");
        assert!(text.contains("ephctrl_envs{phase=\"Failed\"} 1"), "{text}");
        assert!(
            text.lines().any(|line| line == "ephctrl_leading 0"),
            "{text}"
        );
    }
}
