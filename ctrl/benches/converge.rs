//! How fast ephctrl converges many envs, against the floor of the same writes issued directly,
//! and how much memory the real binary holds idle and with many envs. A benchmark, not a test:
//! it prints figures and checks nothing.
//!
//! ```text
//! cargo bench -p ephctrl --bench converge
//! ```
//!
//! Knobs (environment): `CONVERGE_ENVS` (default 1000; 0 skips to the memory part), `CONVERGE_REPEAT` (3; medians are
//! printed), `CONVERGE_MEMORY_ENVS` (10000; 0 skips the memory part), `CONVERGE_CONCURRENCY`
//! (ephctrl's default), `CONVERGE_POD_READY_MS` (100), `CONVERGE_CTRL_LOG` (a file the
//! controller's log is appended to; none by default). Everything runs against in-process devclusters on 127.0.0.1.
//!
//! - floor: per env the writes ephctrl makes for a new env (create the ConfigMap, apply the
//!   runner Deployment and the Service with ephctrl's field manager, apply the status), issued
//!   directly with kube-rs at the controller's concurrency; also with the Event ephctrl records
//!   for the env's first transition, a write the issue asks for;
//! - ephctrl: the same number of env ConfigMaps created at that concurrency with the controller
//!   running in-process, until every env has its Deployment, its Service and a phase label;
//!   then the same with a second replica standing by (watching everything, reconciling
//!   nothing), against one replica in the same run;
//! - memory: the `ephctrl` binary as a child process; VmRSS once ready with no envs, once the
//!   memory-run envs have converged, and in a restarted process once it has reconciled them all.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use devcluster::DevCluster;
use devcluster::measure::{knob, mib, proc_status_kib, settled_rss};
use ephctrl::context::FIELD_MANAGER;
use ephctrl::desired::{self, ChildrenInputs};
use ephctrl::{DEFAULT_CONCURRENCY, Settings};
use ephemerator_core::env::record_max_lifetime;
use ephemerator_core::labels::PHASE_LABEL;
use ephemerator_core::{Config, Env, EnvSpec, EnvStatus, Phase, env_config_map};
use futures::{StreamExt, TryStreamExt, stream};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use common::{http_get, median};

const NAMESPACE: &str = "default";
/// Simulated pods become ready quickly, so Ready transitions happen during the run
/// (`CONVERGE_POD_READY_MS` changes it).
fn pod_ready_delay() -> Duration {
    let millis = std::env::var("CONVERGE_POD_READY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(100);
    Duration::from_millis(millis)
}
/// Longest wait for any convergence before the run is declared stuck.
const CONVERGE_LIMIT: Duration = Duration::from_secs(300);

const CONFIG_YAML: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html]
"#;

/// [`CONFIG_YAML`], parsed (it is valid: the smoke run in the test command parses it).
static BENCH_CONFIG: std::sync::LazyLock<Config> = std::sync::LazyLock::new(|| {
    Config::from_yaml_str(CONFIG_YAML, "bench-config.yaml")
        .unwrap_or_else(|err| panic!("the bench config is invalid: {err}"))
});

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`) only smoke-runs.
    let full = std::env::args().any(|arg| arg == "--bench");
    let envs = if full {
        knob("CONVERGE_ENVS", 1000)?
    } else {
        20
    };
    let repeat = if full {
        knob("CONVERGE_REPEAT", 3)?.max(1)
    } else {
        1
    };
    let memory_envs = if full {
        knob("CONVERGE_MEMORY_ENVS", 10_000)?
    } else {
        0
    };
    let concurrency = knob("CONVERGE_CONCURRENCY", usize::from(DEFAULT_CONCURRENCY))?.max(1);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let config = BENCH_CONFIG.clone();
        println!(
            "converge: {envs} envs, concurrency {concurrency}, {repeat} run(s) each, pods ready after {:?}",
            pod_ready_delay()
        );

        if envs > 0 {
            let (mut floors, mut event_floors, mut ctrls) = (Vec::new(), Vec::new(), Vec::new());
            let (mut pairs, mut pair_ratios) = (Vec::new(), Vec::new());
            // Ratios are taken per run (floor and ephctrl side by side), then their median: the
            // machine's speed drifts between runs, so medians of separate runs don't compare.
            let (mut ratios, mut event_ratios) = (Vec::new(), Vec::new());
            for run in 1..=repeat {
                let floor = floor_run(envs, concurrency, &config, false).await?;
                let event_floor = floor_run(envs, concurrency, &config, true).await?;
                // One replica and two (a standby watching too), side by side, in turn first.
                let (ctrl, pair) = if run % 2 == 1 {
                    let ctrl = ctrl_run(envs, concurrency, &config, 1).await?;
                    (ctrl, ctrl_run(envs, concurrency, &config, 2).await?)
                } else {
                    let pair = ctrl_run(envs, concurrency, &config, 2).await?;
                    (ctrl_run(envs, concurrency, &config, 1).await?, pair)
                };
                println!(
                    "  run {run}: floor {:.3} s, with Events {:.3} s, ephctrl {:.3} s ({} reconciles): ratio {:.2}x; with a standby {:.3} s: {:.3}x one replica",
                    floor.as_secs_f64(),
                    event_floor.as_secs_f64(),
                    ctrl.elapsed.as_secs_f64(),
                    ctrl.reconciles.map_or("?".to_string(), |r| r.to_string()),
                    ctrl.elapsed.as_secs_f64() / floor.as_secs_f64(),
                    pair.elapsed.as_secs_f64(),
                    pair.elapsed.as_secs_f64() / ctrl.elapsed.as_secs_f64(),
                );
                pair_ratios.push(pair.elapsed.as_secs_f64() / ctrl.elapsed.as_secs_f64());
                pairs.push(pair.elapsed);
                ratios.push(ctrl.elapsed.as_secs_f64() / floor.as_secs_f64());
                event_ratios.push(ctrl.elapsed.as_secs_f64() / event_floor.as_secs_f64());
                floors.push(floor);
                event_floors.push(event_floor);
                ctrls.push(ctrl.elapsed);
            }
            let floor = median(&mut floors);
            let event_floor = median(&mut event_floors);
            let ctrl = median(&mut ctrls);
            let ratio = median_ratio(&mut ratios);
            let per_second = |d: Duration| envs as f64 / d.as_secs_f64();
            println!(
                "converge {envs} envs (median of {repeat}): floor {:.3} s ({:.0} env/s), ephctrl {:.3} s ({:.0} env/s): median per-run ratio {ratio:.2}x (aim <= 1.5x: {})",
                floor.as_secs_f64(),
                per_second(floor),
                ctrl.as_secs_f64(),
                per_second(ctrl),
                if ratio <= 1.5 { "met" } else { "missed" },
            );
            println!(
                "  floor plus the Event of the first transition: {:.3} s ({:.0} env/s): median per-run ratio {:.2}x",
                event_floor.as_secs_f64(),
                per_second(event_floor),
                median_ratio(&mut event_ratios),
            );
            let pair_ratio = median_ratio(&mut pair_ratios);
            println!(
                "  two replicas (the leader and a standby watching): {:.3} s: median per-run ratio {pair_ratio:.3}x one replica (aim <= 1.05x: {})",
                median(&mut pairs).as_secs_f64(),
                if pair_ratio <= 1.05 { "met" } else { "missed" },
            );
        }

        if memory_envs > 0 {
            memory_run(memory_envs, concurrency).await?;
        } else if !full {
            println!("smoke run only; run `cargo bench -p ephctrl --bench converge` for figures");
        }
        Ok(())
    })
}

fn median_ratio(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_name(i: usize) -> String {
    format!("bench-{i:05}")
}

fn spec() -> EnvSpec {
    EnvSpec {
        repo: "https://github.com/tilt-dev/tilt-example-html".to_string(),
        branch: "master".to_string(),
        path: "0-base".to_string(),
    }
}

/// Envs as the dashboard creates them: with an expiration and the maximum lifetime they were
/// created under, so the controller has no default to write in and both sides make the same
/// writes. (An env created with kubectl without them costs ephctrl one more write, to record
/// them.)
fn env_config_map_at(i: usize, expiration: Timestamp) -> ConfigMap {
    let name = env_name(i);
    let mut config_map = env_config_map(&name, &name, &spec(), Some(expiration));
    record_max_lifetime(&mut config_map, BENCH_CONFIG.expiration.max_lifetime);
    config_map
}

fn expiration() -> Timestamp {
    Timestamp::now()
        .checked_add(SignedDuration::from_mins(10))
        .unwrap_or(Timestamp::MAX)
}

async fn cluster() -> anyhow::Result<DevCluster> {
    DevCluster::builder()
        .pod_ready_delay(pod_ready_delay())
        .start()
        .await
}

/// The floor: ephctrl's writes for `envs` new envs, issued directly.
async fn floor_run(
    envs: usize,
    concurrency: usize,
    config: &Config,
    with_event: bool,
) -> anyhow::Result<Duration> {
    let cluster = cluster().await?;
    let client = cluster.client();
    let expiration = expiration();
    let started = Instant::now();
    stream::iter(0..envs)
        .map(|i| floor_env(&client, config, i, expiration, with_event))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let elapsed = started.elapsed();
    cluster.stop().await;
    Ok(elapsed)
}

async fn floor_env(
    client: &Client,
    config: &Config,
    i: usize,
    expiration: Timestamp,
    with_event: bool,
) -> anyhow::Result<()> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let created = config_maps
        .create(&PostParams::default(), &env_config_map_at(i, expiration))
        .await?;
    let name = created.name_any();
    let uid = created.uid().context("a created ConfigMap has a uid")?;
    let env = Env::from_config_map(&created).map_err(|err| anyhow::anyhow!("{err}"))?;
    let token = format!("{i:064x}");
    let inputs = ChildrenInputs {
        name: &name,
        namespace: NAMESPACE,
        config_map_uid: &uid,
        spec: &env.spec,
        tilt_token: &token,
        discovered_ports: &[],
        config,
        config_digest: ephctrl::desired::children_config_digest(config),
        asleep: false,
    };
    let children = desired::desired_children(&inputs);
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .patch(&name, &apply, &Patch::Apply(&children.deployment))
        .await?;
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .patch(&name, &apply, &Patch::Apply(&children.service))
        .await?;
    let status = EnvStatus {
        phase: Phase::Starting,
        message: Some("the runner is starting".to_string()),
        ports: inputs.ports(),
        ready_at: None,
        ..EnvStatus::default()
    };
    let patch = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": status.labels(),
            "annotations": status.annotations(),
        },
    });
    config_maps
        .patch(&name, &apply, &Patch::Apply(&patch))
        .await?;
    if with_event {
        // The Event ephctrl records for the env's first transition (Pending -> Starting).
        let event = Event {
            metadata: ObjectMeta {
                name: Some(ephctrl::events::event_name(&name, Timestamp::now())),
                namespace: Some(NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(Timestamp::now())),
            action: Some("Reconcile".to_string()),
            reason: Some("Starting".to_string()),
            note: Some("the runner is starting".to_string()),
            type_: Some("Normal".to_string()),
            regarding: Some(ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("ConfigMap".to_string()),
                name: Some(name.clone()),
                namespace: Some(NAMESPACE.to_string()),
                uid: Some(uid),
                ..ObjectReference::default()
            }),
            reporting_controller: Some(FIELD_MANAGER.to_string()),
            reporting_instance: Some(FIELD_MANAGER.to_string()),
            ..Event::default()
        };
        Api::<Event>::namespaced(client.clone(), NAMESPACE)
            .create(&PostParams::default(), &event)
            .await?;
    }
    Ok(())
}

struct CtrlRun {
    elapsed: Duration,
    reconciles: Option<u64>,
}

/// ephctrl in-process: `envs` env ConfigMaps created at once, until all have converged.
/// `replicas` ephctrls (one leads, any other stands by and watches) converging `envs` envs.
async fn ctrl_run(
    envs: usize,
    concurrency: usize,
    config: &Config,
    replicas: usize,
) -> anyhow::Result<CtrlRun> {
    let cluster = cluster().await?;
    let client = cluster.client();
    let start = || -> anyhow::Result<ephctrl::Running> {
        let mut settings = Settings::new(client.clone(), NAMESPACE, config.clone());
        settings.concurrency = u16::try_from(concurrency).unwrap_or(u16::MAX);
        settings.tilt_url_template = closed_tilt_url()?;
        Ok(ephctrl::start(
            settings,
            ephemerator_kit::Listeners::local(false)?,
        )?)
    };
    let controller = start()?;
    let listen = controller.admin_addr;
    wait_ready_as(listen, "leading").await?;
    let mut standbys = Vec::new();
    for _ in 1..replicas {
        let standby = start()?;
        wait_ready_as(standby.admin_addr, "standing by").await?;
        standbys.push(standby);
    }

    let converged = Convergence::track(client.clone(), envs);
    converged.wait_watching().await?;
    let expiration = expiration();
    let started = Instant::now();
    create_envs(&client, envs, concurrency, expiration).await?;
    converged.wait().await?;
    let elapsed = started.elapsed();

    let reconciles = metric(listen, "ephctrl_reconciles_total ").await;
    drop(standbys);
    drop(controller);
    cluster.stop().await;
    Ok(CtrlRun {
        elapsed,
        reconciles: reconciles.map(|r| r as u64),
    })
}

/// The real binary's resident memory, idle and with `envs` envs.
async fn memory_run(envs: usize, concurrency: usize) -> anyhow::Result<()> {
    let cluster = cluster().await?;
    let client = cluster.client();
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, CONFIG_YAML)?;
    let listen = free_local_addr()?;

    let mut child = spawn_ephctrl(&config_path, &kubeconfig, listen, concurrency)?;
    let pid = child.id().context("ephctrl has a pid")?;
    let outcome = async {
        wait_ready(listen).await?;
        let idle = settled_rss(pid).await?;
        println!("ephctrl resident memory idle: {} (aim <= 20 MiB)", mib(idle));

        let converged = Convergence::track(client.clone(), envs);
        converged.wait_watching().await?;
        let started = Instant::now();
        create_envs(&client, envs, concurrency, expiration()).await?;
        converged.wait().await?;
        let elapsed = started.elapsed();
        let loaded = settled_rss(pid).await?;
        let peak = proc_status_kib(pid, "VmHWM:")?;
        println!(
            "ephctrl resident memory at {envs} envs: {} (peak {}; aim <= 150 MiB), converged in {:.1} s",
            mib(loaded),
            mib(peak),
            elapsed.as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    // SIGTERM, as a rolling restart stops a pod: the Lease is given up, so the next process
    // leads at once instead of waiting for it to lapse.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    if tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    if outcome.is_err() {
        cluster.stop().await;
        return outcome;
    }

    // A fresh process over the same envs holds only what it lists and reconciles, without the
    // leftovers of the creation burst: the live set.
    let mut child = spawn_ephctrl(&config_path, &kubeconfig, listen, concurrency)?;
    let pid = child.id().context("ephctrl has a pid")?;
    let outcome = async {
        let started = Instant::now();
        wait_ready(listen).await?;
        wait_metric_at_least(listen, "ephctrl_reconciles_total ", envs as f64).await?;
        let elapsed = started.elapsed();
        let restarted = settled_rss(pid).await?;
        println!(
            "ephctrl resident memory after a restart over {envs} envs: {} (every env reconciled in {:.1} s)",
            mib(restarted),
            elapsed.as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill().await;
    cluster.stop().await;
    outcome
}

/// Waits until a counter of the controller's `/metrics` reaches `target`.
async fn wait_metric_at_least(
    addr: std::net::SocketAddr,
    prefix: &str,
    target: f64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + CONVERGE_LIMIT;
    loop {
        if metric(addr, prefix)
            .await
            .is_some_and(|value| value >= target)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{prefix} did not reach {target} within {CONVERGE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spawn_ephctrl(
    config: &Path,
    kubeconfig: &Path,
    listen: std::net::SocketAddr,
    concurrency: usize,
) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ephctrl"))
        .arg("--config")
        .arg(config)
        .args(["--namespace", NAMESPACE])
        .args(["--admin-listen", &listen.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--tilt-url-template", &closed_tilt_url()?])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(ctrl_log()?)
        .stderr(ctrl_log()?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the ephctrl binary")
}

/// Where the controller's log goes: the file `CONVERGE_CTRL_LOG` names (appended), else nowhere.
fn ctrl_log() -> anyhow::Result<Stdio> {
    match std::env::var_os("CONVERGE_CTRL_LOG") {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening CONVERGE_CTRL_LOG {}", path.to_string_lossy()))?;
            Ok(Stdio::from(file))
        }
        None => Ok(Stdio::null()),
    }
}

async fn create_envs(
    client: &Client,
    envs: usize,
    concurrency: usize,
    expiration: Timestamp,
) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..envs)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &env_config_map_at(i, expiration))
                    .await
                    .map(|_| ())
                    .with_context(|| format!("creating env {}", env_name(i)))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Watches env ConfigMaps, Deployments and Services until `envs` envs each have all three,
/// the ConfigMap with a phase label.
struct Convergence {
    watching: watch::Receiver<bool>,
    done: watch::Receiver<bool>,
    /// How many envs have a phase label, a Deployment, a Service so far.
    seen: Arc<[AtomicUsize; 3]>,
    task: tokio::task::JoinHandle<()>,
}

enum Observation {
    /// A watch finished its initial list.
    Listed,
    /// An object of this kind and name is there (and, for ConfigMaps, has a phase label).
    Object(Seen, String),
}

/// The watch of one kind as [`Observation`]s; watch errors are retried by the backoff.
fn observations<K>(
    client: Client,
    kind: Seen,
    counts: fn(&K) -> bool,
) -> futures::stream::BoxStream<'static, Observation>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    watcher(
        Api::<K>::namespaced(client, NAMESPACE),
        watcher::Config::default(),
    )
    .default_backoff()
    .filter_map(move |event| async move {
        match event.ok()? {
            watcher::Event::InitDone => Some(Observation::Listed),
            watcher::Event::Apply(object) | watcher::Event::InitApply(object)
                if counts(&object) =>
            {
                Some(Observation::Object(kind, object.name_any()))
            }
            _ => None,
        }
    })
    .boxed()
}

#[derive(Clone, Copy)]
enum Seen {
    Phased,
    Deployment,
    Service,
}

impl Convergence {
    fn track(client: Client, envs: usize) -> Convergence {
        let (watching_tx, watching) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        let config_maps = observations(client.clone(), Seen::Phased, |cm: &ConfigMap| {
            cm.labels().contains_key(PHASE_LABEL)
        });
        let deployments = observations(client.clone(), Seen::Deployment, |_: &Deployment| true);
        let services = observations(client, Seen::Service, |_: &Service| true);
        let seen: Arc<[AtomicUsize; 3]> = Arc::default();
        let counts = seen.clone();
        let task = tokio::spawn(async move {
            let mut listed = 0;
            let mut sets: [HashSet<String>; 3] = Default::default();
            let mut events = stream::select_all([config_maps, deployments, services]);
            while let Some(event) = events.next().await {
                match event {
                    Observation::Listed => {
                        listed += 1;
                        if listed == 3 {
                            let _ = watching_tx.send(true);
                        }
                    }
                    Observation::Object(kind, name) if name.starts_with("bench-") => {
                        let set = &mut sets[kind as usize];
                        set.insert(name);
                        counts[kind as usize].store(set.len(), Ordering::Relaxed);
                    }
                    Observation::Object(..) => {}
                }
                if sets.iter().all(|set| set.len() >= envs) {
                    let _ = done_tx.send(true);
                    return;
                }
            }
        });
        Convergence {
            watching,
            done,
            seen,
            task,
        }
    }

    async fn wait_watching(&self) -> anyhow::Result<()> {
        let mut watching = self.watching.clone();
        tokio::time::timeout(Duration::from_secs(30), watching.wait_for(|w| *w))
            .await
            .context("the convergence watches did not start")?
            .context("the convergence watches stopped")?;
        Ok(())
    }

    async fn wait(&self) -> anyhow::Result<()> {
        let mut done = self.done.clone();
        match tokio::time::timeout(CONVERGE_LIMIT, done.wait_for(|d| *d)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => bail!("the convergence watches ended early"),
            Err(_) => {
                let [phased, deployments, services] =
                    self.seen.each_ref().map(|n| n.load(Ordering::Relaxed));
                bail!(
                    "not converged within {CONVERGE_LIMIT:?}: {phased} envs with a phase, \
                     {deployments} Deployments, {services} Services"
                )
            }
        }
    }
}

impl Drop for Convergence {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn free_local_addr() -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Tilt at a port nobody listens on: discovery fails at once, as for a runner whose Tilt is
/// not up yet (the bench has no Tilts).
fn closed_tilt_url() -> anyhow::Result<String> {
    Ok(format!("http://{}/{{env}}", free_local_addr()?))
}

/// Waits until the controller's `/readyz` answers 200 (its env list is loaded).
async fn wait_ready(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    wait_ready_as(addr, "").await
}

/// Waits until the controller's `/readyz` answers 200 and names its role `role` ("leading",
/// "standing by").
async fn wait_ready_as(addr: std::net::SocketAddr, role: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, body)) = http_get(addr, "/readyz").await
            && body.contains(role)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("ephctrl at {addr} not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metric(addr: std::net::SocketAddr, prefix: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics").await?;
    body.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|value| value.trim().parse().ok())
}
