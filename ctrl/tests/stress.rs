//! ephctrl under a backlog and crashes, the way it once lost envs: 200 env ConfigMaps applied
//! while the binary is killed (SIGKILL) twice, its pods turning Ready while it applies. Every
//! env must reach Ready soon after the last start, none left `Starting` behind a Deployment
//! that is ready (the envs have no timed requeue before their expiry warning, so an env whose
//! Ready was missed stays `Starting` for an hour). Several rounds, because the loss depended on
//! timing (before the fix, 2 of 4 runs lost envs).

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use ephemerator_core::labels::PHASE_LABEL;
use ephemerator_core::{EnvStatus, Phase, env_config_map};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::process::Command;

const ENVS: usize = 200;
const ROUNDS: usize = 3;
/// How long 200 envs may take to be Ready after the last start: generous for a loaded 2-core
/// machine, and far below the hour a missed Ready used to cost.
const CONVERGE: Duration = Duration::from_secs(150);

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(cluster: &devcluster::DevCluster) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = devcluster::kubeconfig_yaml(cluster.url())
            .replace("namespace: default", &format!("namespace: {NAMESPACE}"));
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        std::fs::write(dir.path().join("ephemerator.yaml"), CONFIG_YAML).unwrap();
        Setup { dir }
    }

    async fn start(&self) -> tokio::process::Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ephctrl"));
        command
            .arg("--config")
            .arg(self.dir.path().join("ephemerator.yaml"))
            .args(["--admin-listen", "127.0.0.1:0", "--log-format", "json"])
            .args([
                "--tilt-url-template",
                ephctrl::testing::NO_TILT_URL_TEMPLATE,
            ])
            // A killed process's Lease lapses in 3 s (ephctrl::testing's timings), not 15.
            .args(["--lease-duration", "3s", "--lease-renew-deadline", "2s"])
            .args(["--lease-retry-period", "250ms"])
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST");
        spawn_with_listener(command).await.0
    }
}

/// SIGKILL, as the OOM killer or a lost node would.
async fn kill_9(mut child: tokio::process::Child) {
    child.start_kill().expect("SIGKILL sent");
    child.wait().await.expect("ephctrl reaped");
}

async fn deployments(client: &Client) -> usize {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    api.list(&ListParams::default())
        .await
        .map_or(0, |list| list.items.len())
}

/// Waits, polling less often than `wait_for` (the lists are large), until `check` holds.
async fn poll_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + CONVERGE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {CONVERGE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The envs not Ready, each with its phase and whether its Deployment is ready.
async fn not_ready(client: &Client) -> Vec<String> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let Ok(list) = config_maps.list(&ListParams::default()).await else {
        return vec!["(the list failed)".to_string()];
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let mut stuck = Vec::new();
    for cm in list.items {
        let status = EnvStatus::from_meta(&cm.metadata);
        if status.phase == Phase::Ready {
            continue;
        }
        let ready_replicas = deployments
            .get_opt(&cm.name_any())
            .await
            .ok()
            .flatten()
            .and_then(|d| d.status)
            .and_then(|s| s.ready_replicas);
        stuck.push(format!(
            "{} {} ({:?}), deployment ready replicas {ready_replicas:?}",
            cm.name_any(),
            status.phase,
            status.message
        ));
    }
    stuck
}

async fn ready_count(client: &Client) -> usize {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    api.list(&ListParams::default().labels(&format!("{PHASE_LABEL}=Ready")))
        .await
        .map_or(0, |list| list.items.len())
}

async fn round(round: usize) {
    let cluster = cluster().await;
    let client = cluster.client();
    let setup = Setup::new(&cluster);
    let ctrl = setup.start().await;

    // The backlog: every env at once, while the controller works through the first ones.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let creates = (0..ENVS).map(|i| {
        let api = api.clone();
        async move {
            let name = format!("env-{i}");
            let env = spec(HTML_REPO, "master", "0-base");
            api.create(
                &PostParams::default(),
                &env_config_map(&name, "olga", &env, None),
            )
            .await
            .expect("creating an env");
        }
    });
    futures::future::join_all(creates).await;

    // Killed in the middle of creating the runners, and again while they turn Ready.
    poll_until("a third of the runners", || async {
        deployments(&client).await >= ENVS / 3
    })
    .await;
    kill_9(ctrl).await;
    let ctrl = setup.start().await;
    poll_until("two thirds of the runners", || async {
        deployments(&client).await >= 2 * ENVS / 3
    })
    .await;
    kill_9(ctrl).await;
    let ctrl = setup.start().await;

    let until = tokio::time::Instant::now() + CONVERGE;
    while ready_count(&client).await < ENVS {
        if tokio::time::Instant::now() >= until {
            let stuck = not_ready(&client).await;
            panic!(
                "round {round}: {} envs not Ready {CONVERGE:?} after the last start:\n{}",
                stuck.len(),
                stuck.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    kill_9(ctrl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_env_gets_ready_after_a_backlog_and_two_sigkills() {
    for i in 0..ROUNDS {
        round(i).await;
    }
}
