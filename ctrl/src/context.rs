//! What every reconcile shares: the client, the config, the child stores, metrics, the Event
//! sink, the notifier, the Tilt client, and the per-env [`Memory`].

use std::sync::Arc;

use ephemerator_kit::LiveConfig;
use ephemerator_kit::cluster::ApiHealth;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::runtime::reflector::Store;

use crate::cached::{ChildMeta, RunnerDeployment};
use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::leader::Leadership;
use crate::memory::Memory;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::plan::TiltPolls;
use crate::tilt::TiltClient;

/// Field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "ephctrl";

/// Shared state of the controller.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Whether the API server answers.
    pub api_health: ApiHealth,
    /// The namespace the controller works in.
    pub namespace: String,
    /// The config in force (reloaded when its file changes).
    pub config: LiveConfig,
    /// Events on env ConfigMaps.
    pub events: EventSink,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Webhook notifications.
    pub notifier: Notifier,
    /// Reads ports from running Tilts.
    pub tilt: TiltClient,
    /// Where Tilt is reached, see [`tilt_base_url`].
    pub tilt_url_template: String,
    /// How often Tilt is asked.
    pub tilt_polls: TiltPolls,
    /// Every Deployment in the namespace (ours and others', for the foreign-object check).
    pub deployments: Store<RunnerDeployment>,
    /// Every Service in the namespace (metadata only).
    pub services: Store<ChildMeta<Service>>,
    /// Every Ingress in the namespace (metadata only).
    pub ingresses: Store<ChildMeta<Ingress>>,
    /// The envs' activity Leases (`ephemerator_core::activity`), renewed by the gateway.
    pub leases: Store<Lease>,
    /// Which watches have listed once; see [`Synced`].
    pub synced: Synced,
    /// What the controller remembers of each env.
    pub memory: Memory,
    /// Whether this replica leads: only the leader writes.
    pub leadership: Leadership,
}

impl Context {
    /// Waits until the child and activity stores have listed once, so a missing child really
    /// is missing and an env in use is never taken for idle.
    pub async fn wait_for_child_stores(&self) {
        self.synced
            .wait_for(Synced::CHILDREN | Synced::ACTIVITY)
            .await;
    }

    /// Fails unless this replica leads now: checked before every write, so a replica that lost
    /// the lead (or was paused past its deadline) stops before its next one.
    pub fn check_leading(&self) -> Result<()> {
        if self.leadership.is_leading() {
            Ok(())
        } else {
            Err(Error::NotLeading)
        }
    }

    /// Tilt's base URL for env `env`, from [`Context::tilt_url_template`].
    pub fn tilt_base_url(&self, env: &str) -> String {
        tilt_base_url(
            &self.tilt_url_template,
            env,
            &self.namespace,
            self.config.current().runner.tilt_port,
        )
    }

    /// The dashboard's address, where envs are extended.
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/", self.config.current().gateway_host)
    }
}

/// Which watches have completed their first list, as bits. Stores' own `wait_until_ready`
/// wakes only one of several concurrent waiters (it polls a shared oneshot receiver), so every
/// waiter here uses this watch channel instead, which wakes them all.
#[derive(Clone, Debug)]
pub struct Synced {
    sender: Arc<tokio::sync::watch::Sender<u8>>,
}

impl Default for Synced {
    fn default() -> Self {
        Synced {
            sender: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Synced {
    /// The env ConfigMaps.
    pub const CONFIG_MAPS: u8 = 1;
    /// Deployments.
    pub const DEPLOYMENTS: u8 = 2;
    /// Services.
    pub const SERVICES: u8 = 4;
    /// Ingresses.
    pub const INGRESSES: u8 = 8;
    /// The activity Leases.
    pub const ACTIVITY: u8 = 16;
    /// Every child kind.
    pub const CHILDREN: u8 = Self::DEPLOYMENTS | Self::SERVICES | Self::INGRESSES;

    /// Marks the watches in `bits` as listed.
    pub fn mark(&self, bits: u8) {
        self.sender.send_if_modified(|current| {
            let before = *current;
            *current |= bits;
            *current != before
        });
    }

    /// Whether all watches in `bits` have listed.
    pub fn is(&self, bits: u8) -> bool {
        *self.sender.borrow() & bits == bits
    }

    /// Waits until all watches in `bits` have listed.
    pub async fn wait_for(&self, bits: u8) {
        let mut receiver = self.sender.subscribe();
        // The sender lives in `self`, so the channel cannot close while waiting.
        let _ = receiver.wait_for(|current| current & bits == bits).await;
    }
}

/// Default of `--tilt-url-template`: the env's Service in the cluster's DNS.
pub const DEFAULT_TILT_URL_TEMPLATE: &str = "http://{env}.{namespace}.svc:{port}";

/// Checks a Tilt URL template at start: it must name the env (every env has its own Tilt)
/// and, filled in, be a plain `http://` URL.
pub fn check_tilt_url_template(template: &str) -> Result<(), &'static str> {
    if !template.contains("{env}") {
        return Err("must contain {env}: every env has its own Tilt");
    }
    let example = tilt_base_url(template, "env", "namespace", 10350);
    match example.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => Ok(()),
        _ => Err("must be an http:// URL once {env}, {namespace} and {port} are filled in"),
    }
}

/// Fills `{env}`, `{namespace}` and `{port}` into a Tilt URL template.
pub fn tilt_base_url(template: &str, env: &str, namespace: &str, port: u16) -> String {
    template
        .replace("{env}", env)
        .replace("{namespace}", namespace)
        .replace("{port}", &port.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_when_the_watches_have_listed() {
        let synced = Synced::default();
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let synced = synced.clone();
                tokio::spawn(async move { synced.wait_for(Synced::CHILDREN).await })
            })
            .collect();
        synced.mark(Synced::DEPLOYMENTS | Synced::SERVICES);
        assert!(!synced.is(Synced::CHILDREN));
        synced.mark(Synced::INGRESSES);
        assert!(synced.is(Synced::CHILDREN));
        assert!(!synced.is(Synced::CONFIG_MAPS));
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("every waiter wakes")
                .unwrap();
        }
    }

    #[test]
    fn tilt_url_templates_must_name_the_env_and_be_http() {
        assert!(check_tilt_url_template(DEFAULT_TILT_URL_TEMPLATE).is_ok());
        assert!(check_tilt_url_template("http://127.0.0.1:4000/{env}").is_ok());
        assert!(check_tilt_url_template("http://127.0.0.1:4000").is_err());
        assert!(check_tilt_url_template("https://{env}.svc:{port}").is_err());
        assert!(check_tilt_url_template("{env}").is_err());
    }

    #[test]
    fn default_tilt_url_is_the_env_service() {
        assert_eq!(
            tilt_base_url(DEFAULT_TILT_URL_TEMPLATE, "nicks", "eph", 10350),
            "http://nicks.eph.svc:10350"
        );
        assert_eq!(
            tilt_base_url("http://127.0.0.1:4000", "nicks", "eph", 10350),
            "http://127.0.0.1:4000"
        );
    }
}
