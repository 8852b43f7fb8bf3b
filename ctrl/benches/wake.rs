//! How long ephctrl takes to act on a visit to a sleeping env: from the activity Lease's renewal
//! (what the gateway writes when a person opens the env) to the runner Deployment scaled back to
//! one replica, and to the env's phase Ready again, with the runner's own start taken out
//! (devcluster's pods are ready at once). What a waking visitor waits for on top of their
//! runner's start. A benchmark, not a test: it prints figures and checks nothing.
//!
//! ```text
//! cargo bench -p ephctrl --bench wake
//! ```
//!
//! Knobs (environment): `WAKE_ENVS` (20: envs asleep at once, each woken in turn; medians are
//! printed), `WAKE_ASLEEP` (200: more envs that sleep on meanwhile, so the controller has
//! company). The controller runs in-process against a devcluster on 127.0.0.1; envs sleep after
//! 2 s; times are polled every 2 ms.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use devcluster::DevCluster;
use devcluster::measure::knob;
use ephemerator_core::activity::{lease_name, renewal};
use ephemerator_core::{Config, EnvSpec, EnvStatus, Phase, env_config_map};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};

use common::{http_get, median};

const NAMESPACE: &str = "default";
const CONFIG_YAML: &str = "gatewayHost: preview.localhost\nsleepAfter: 2s\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [tilt-example-html]\n";
/// Longest wait for any change before the run is declared stuck.
const LIMIT: Duration = Duration::from_secs(120);

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`) smoke-runs it tiny.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (woken, company) = if full {
        (knob("WAKE_ENVS", 20)?.max(1), knob("WAKE_ASLEEP", 200)?)
    } else {
        (2, 2)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(run(woken, company))
}

async fn run(woken: usize, company: usize) -> anyhow::Result<()> {
    println!("wake: {woken} env(s) woken one by one, {company} more asleep meanwhile");
    let cluster = DevCluster::builder()
        .pod_ready_delay(Duration::ZERO)
        .start()
        .await?;
    let client = cluster.client();
    let config = Config::from_yaml_str(CONFIG_YAML, "bench.yaml")?;
    let ctrl = ephctrl::testing::start(ephctrl::testing::settings(
        client.clone(),
        NAMESPACE,
        config,
    ));
    let envs: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let spec = EnvSpec {
        repo: "https://github.com/tilt-dev/tilt-example-html".into(),
        branch: "master".into(),
        path: "0-base/Tiltfile".into(),
    };
    let names: Vec<String> = (0..woken + company).map(|i| format!("wake-{i}")).collect();
    for name in &names {
        envs.create(
            &PostParams::default(),
            &env_config_map(name, name, &spec, None),
        )
        .await?;
    }
    for name in &names {
        until(|| async { phase(&envs, name).await == Some(Phase::Sleeping) }).await?;
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let (mut scaled, mut ready) = (Vec::new(), Vec::new());
    for name in names.iter().take(woken) {
        let config_map = envs.get(name).await?;
        let started = Instant::now();
        visit(&leases, &config_map).await?;
        until(|| async {
            deployments
                .get(name)
                .await
                .ok()
                .and_then(|d| d.spec?.replicas)
                == Some(1)
        })
        .await?;
        scaled.push(started.elapsed());
        until(|| async { phase(&envs, name).await == Some(Phase::Ready) }).await?;
        ready.push(started.elapsed());
    }
    println!(
        "visit -> runner scaled up: median {:.1} ms (of {woken})",
        median(&mut scaled).as_secs_f64() * 1e3
    );
    println!(
        "visit -> phase Ready (pods ready at once): median {:.1} ms (of {woken})",
        median(&mut ready).as_secs_f64() * 1e3
    );
    // ephctrl's own histogram of the same wakes (from its wake to the runner ready again).
    let (_, metrics) = http_get(ctrl.admin_addr, "/metrics")
        .await
        .context("ephctrl's /metrics")?;
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let (count, sum) = (
        value("ephctrl_wake_duration_seconds_count"),
        value("ephctrl_wake_duration_seconds_sum"),
    );
    println!(
        "ephctrl_wake_duration_seconds: {count} wakes, mean {:.1} ms",
        if count > 0.0 { sum / count * 1e3 } else { 0.0 }
    );
    Ok(())
}

async fn phase(envs: &Api<ConfigMap>, name: &str) -> Option<Phase> {
    let cm = envs.get_opt(name).await.ok()??;
    Some(EnvStatus::from_meta(&cm.metadata).phase)
}

/// What the gateway writes when a person opens a sleeping env.
async fn visit(leases: &Api<Lease>, config_map: &ConfigMap) -> anyhow::Result<()> {
    let name = config_map.name_any();
    let lease = renewal(
        &name,
        &config_map.uid().unwrap_or_default(),
        "bench",
        jiff::Timestamp::now(),
    );
    leases
        .patch(
            &lease_name(&name),
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&lease),
        )
        .await?;
    Ok(())
}

/// Polls `check` every 2 ms until it holds; an error past [`LIMIT`].
async fn until<F, Fut>(mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while !check().await {
        if Instant::now() > deadline {
            bail!("no change within {LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}
