//! How fast the real `ephdash` binary answers the env-list fragment (`GET /envs`, what htmx
//! polls every 2 s) with many envs under concurrent load, and how much memory it holds idle
//! and with those envs cached. A benchmark, not a test: it prints figures and checks nothing.
//!
//! ```text
//! cargo bench -p ephdash --bench envlist
//! ```
//!
//! Knobs (environment): `ENVLIST_ENVS` (default 1000), `ENVLIST_OWNERS` (20), `ENVLIST_EVENTS`
//! (Events per env, at most 3: ephctrl's Pending, Starting and Ready transitions; default 3),
//! `ENVLIST_CONNECTIONS` (16), `ENVLIST_TABS` (100; 0 skips the polling runs),
//! `ENVLIST_SECONDS` (10, per run), `ENVLIST_MAX_REQUESTS` (50000, per run), `ENVLIST_REPEAT`
//! (3; medians are printed), `ENVLIST_WORKERS_ONE` (1; 0 skips the runs with `--workers 1`),
//! `ENVLIST_VIEWERS` (300; 0 skips the many-viewers part).
//! Everything runs against an in-process devcluster on 127.0.0.1.
//!
//! - the dashboard is the `ephdash` binary as a child process (so the load generator shares
//!   no threads with it), every request signed in as `user-3` (`--auth-fake-user`);
//! - envs: env ConfigMaps as the dashboard writes them, spread over `ENVLIST_OWNERS` users
//!   (`user-3` among them, so its rows carry the Extend and Delete forms), with the status
//!   ephctrl applies (Ready, a message, ports `web` and `tilt`, ready-at) and its transition
//!   Events;
//! - latency, every answer read in full: one connection back to back (the time of one answer
//!   without queueing); then `ENVLIST_CONNECTIONS` keep-alive HTTP/1 connections each GETting
//!   `/envs` back to back (a closed loop: the throughput, and the queueing it costs); then
//!   `ENVLIST_TABS` tabs each polling every 2 s as htmx does (an open loop at a team's rate);
//! - memory: the binary's VmRSS, settled, before any env exists, once it lists every env, and
//!   after the load runs;
//! - many viewers: a process naming people by the `X-Auth-Request-User` header; `ENVLIST_VIEWERS`
//!   distinct people (none of them an owner) each GET `/envs` once, then one person GETs it with
//!   as many distinct ports in `Host` (each a link base of its own): VmRSS before and after
//!   each, and the median time of those requests.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use devcluster::DevCluster;
use devcluster::measure::{knob, mib, proc_status_kib, settled_rss};
use ephctrl::context::FIELD_MANAGER;
use ephemerator_core::names::nth_env_name;
use ephemerator_core::{EnvSpec, EnvStatus, Phase, Port, env_config_map};
use futures::{StreamExt, TryStreamExt, stream};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const NAMESPACE: &str = "default";
/// The signed-in user of every request (`--auth-fake-user`); owns one env in `ENVLIST_OWNERS`.
const USER: &str = "user-3";
const HOST: &str = "preview.localhost";
const REPO: &str = "https://github.com/tilt-dev/tilt-example-html";
/// Writes to the cluster in flight while seeding.
const SEED_CONCURRENCY: usize = 16;
/// Longest wait for the dashboard to start or to list the envs.
const WAIT_LIMIT: Duration = Duration::from_secs(120);
/// Longest time of one measured request before the run is declared stuck.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

const CONFIG_YAML: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html]
maxEnvsPerUser: 100
"#;

struct Knobs {
    envs: usize,
    owners: usize,
    events: usize,
    connections: usize,
    tabs: usize,
    seconds: u64,
    max_requests: usize,
    repeat: usize,
    workers_one: bool,
    viewers: usize,
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`) only smoke-runs.
    let full = std::env::args().any(|arg| arg == "--bench");
    let knobs = if full {
        Knobs {
            envs: knob("ENVLIST_ENVS", 1000)?,
            owners: knob("ENVLIST_OWNERS", 20)?.max(1),
            events: knob("ENVLIST_EVENTS", 3)?.min(3),
            connections: knob("ENVLIST_CONNECTIONS", 16)?.max(1),
            tabs: knob("ENVLIST_TABS", 100)?,
            seconds: knob("ENVLIST_SECONDS", 10)?.max(1) as u64,
            max_requests: knob("ENVLIST_MAX_REQUESTS", 50_000)?.max(1),
            repeat: knob("ENVLIST_REPEAT", 3)?.max(1),
            workers_one: knob("ENVLIST_WORKERS_ONE", 1)? != 0,
            viewers: knob("ENVLIST_VIEWERS", 300)?,
        }
    } else {
        Knobs {
            envs: 20,
            owners: 4,
            events: 3,
            connections: 2,
            tabs: 4,
            seconds: 1,
            max_requests: 1000,
            repeat: 1,
            workers_one: false,
            viewers: 5,
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let started = Instant::now();
        let cluster = DevCluster::builder()
            .start()
            .await
            .context("starting devcluster")?;
        let outcome = run(&cluster, &knobs).await;
        cluster.stop().await;
        println!(
            "envlist bench took {:.0} s",
            started.elapsed().as_secs_f64()
        );
        if !full {
            println!("smoke run only; run `cargo bench -p ephdash --bench envlist` for figures");
        }
        outcome
    })
}

async fn run(cluster: &DevCluster, knobs: &Knobs) -> anyhow::Result<()> {
    let client = cluster.client();
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, CONFIG_YAML)?;
    let envs = knobs.envs;
    let closed = Pattern::Closed(knobs.connections);
    let tabs = Pattern::Tabs(knobs.tabs);
    println!(
        "envlist: {envs} envs of {} owners ({} Events each), signed in as {USER}; {} s per run, {} run(s)",
        knobs.owners, knobs.events, knobs.seconds, knobs.repeat
    );

    let first = Dash::spawn(&config, &kubeconfig, 2).await?;
    let idle = first.settled_rss().await?;
    println!("  idle (no env): {}", mib(idle));

    let seeding = Instant::now();
    seed(&client, knobs).await?;
    let seeded = seeding.elapsed();
    let listed = first.wait_rows(envs).await?;
    println!(
        "  {envs} envs and {} Events written in {:.1} s, all listed {:.1} s later; fragment {} KiB",
        envs * knobs.events,
        seeded.as_secs_f64(),
        listed.as_secs_f64(),
        first.fragment().await?.len() / 1024
    );
    let watched = first.settled_rss().await?;
    println!(
        "  the process that watched them arrive, after a few renders: {}",
        mib(watched)
    );
    first.stop().await;

    // A fresh process: once ready it has listed every env; measured before its first render.
    let dash = Dash::spawn(&config, &kubeconfig, 2).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cached = dash.settled_rss().await?;
    println!(
        "  {envs} envs cached (a fresh process, before any render): {}",
        mib(cached)
    );
    dash.wait_rows(envs).await?;

    let single = load(
        dash.addr,
        Pattern::Closed(1),
        Duration::from_secs(2),
        knobs.max_requests,
    )
    .await?;
    println!("  one connection, back to back: {}", single.summary());
    let closed_runs = load_runs(&dash, closed, knobs).await?;
    let tab_runs = if knobs.tabs > 0 {
        load_runs(&dash, tabs, knobs).await?
    } else {
        Vec::new()
    };
    let after = dash.settled_rss().await?;
    let peak = proc_status_kib(dash.pid, "VmHWM:")?;
    let two = Median::of(&closed_runs);
    println!(
        "ephdash /envs with {envs} envs, {closed}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {:.0} req/s (median of {}) (aim p99 <= 10 ms: {}); one connection alone: p50 {:.2} ms, p99 {:.2} ms",
        two.p50,
        two.p90,
        two.p99,
        two.per_second,
        closed_runs.len(),
        if two.p99 <= 10.0 { "met" } else { "missed" },
        single.percentile(0.50),
        single.percentile(0.99),
    );
    if !tab_runs.is_empty() {
        let polled = Median::of(&tab_runs);
        println!(
            "ephdash /envs with {envs} envs, {tabs}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {:.0} req/s (median of {})",
            polled.p50,
            polled.p90,
            polled.p99,
            polled.per_second,
            tab_runs.len(),
        );
    }
    println!(
        "ephdash resident memory: idle {} (aim <= 20 MiB: {}), {envs} envs cached {}, after load {} (peak {}; VmHWM)",
        mib(idle),
        if idle <= 20 * 1024 { "met" } else { "missed" },
        mib(cached),
        mib(after),
        mib(peak),
    );
    dash.stop().await;

    if knobs.viewers > 0 {
        many_viewers(&config, &kubeconfig, knobs).await?;
    }

    if knobs.workers_one {
        let dash = Dash::spawn(&config, &kubeconfig, 1).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cached = dash.settled_rss().await?;
        dash.wait_rows(envs).await?;
        let closed_runs = load_runs(&dash, closed, knobs).await?;
        let tab_runs = if knobs.tabs > 0 {
            load_runs(&dash, tabs, knobs).await?
        } else {
            Vec::new()
        };
        let after = dash.settled_rss().await?;
        let one = Median::of(&closed_runs);
        println!(
            "ephdash --workers 1, /envs with {envs} envs, {closed}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {:.0} req/s (median of {}); resident memory {envs} envs cached {}, after load {}",
            one.p50,
            one.p90,
            one.p99,
            one.per_second,
            closed_runs.len(),
            mib(cached),
            mib(after),
        );
        if !tab_runs.is_empty() {
            let polled = Median::of(&tab_runs);
            println!(
                "ephdash --workers 1, /envs with {envs} envs, {tabs}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {:.0} req/s (median of {})",
                polled.p50,
                polled.p90,
                polled.p99,
                polled.per_second,
                tab_runs.len(),
            );
        }
        dash.stop().await;
    }
    Ok(())
}

/// Many distinct people polling once each, then one client naming many ports in `Host`: what
/// the dashboard keeps for each (its resident memory before and after) and what each costs.
async fn many_viewers(config: &Path, kubeconfig: &Path, knobs: &Knobs) -> anyhow::Result<()> {
    let (envs, viewers) = (knobs.envs, knobs.viewers);
    let dash = Dash::spawn_as(config, kubeconfig, 2, false).await?;
    dash.wait_rows(envs).await?;
    let before = dash.settled_rss().await?;
    let mut sender = connect(dash.addr).await?;
    let mut times = Vec::new();
    for i in 0..viewers {
        let started = Instant::now();
        let viewer = format!("viewer-{i}");
        let (status, body) = send_as(&mut sender, dash.addr, "/envs", HOST, &viewer).await?;
        if status != 200 || count(&body, b"id=\"env-") < envs {
            bail!("{viewer} got {status} without the {envs} envs");
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let viewed = dash.settled_rss().await?;
    let mut port_times = Vec::new();
    for i in 0..viewers {
        let host = format!("{HOST}:{}", 10_000 + i);
        let started = Instant::now();
        let (status, _) = send_as(&mut sender, dash.addr, "/envs", &host, USER).await?;
        if status != 200 {
            bail!("Host {host} got {status}");
        }
        port_times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let ported = dash.settled_rss().await?;
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let per_viewer = (viewed as f64 - before as f64) / viewers as f64;
    println!(
        "ephdash with {envs} envs, {viewers} distinct viewers GETting /envs once each: resident memory {} before, {} after ({per_viewer:+.1} KiB per viewer), median {:.2} ms per request; then one person with {viewers} distinct Host ports: {} after, median {:.2} ms per request",
        mib(before),
        mib(viewed),
        median(times),
        mib(ported),
        median(port_times),
    );
    dash.stop().await;
    Ok(())
}

/// A warm-up, then `knobs.repeat` measured runs of `pattern`.
async fn load_runs(dash: &Dash, pattern: Pattern, knobs: &Knobs) -> anyhow::Result<Vec<Latencies>> {
    load(
        dash.addr,
        Pattern::Closed(knobs.connections),
        Duration::from_secs(1),
        knobs.max_requests,
    )
    .await?;
    let mut runs = Vec::new();
    for run in 1..=knobs.repeat {
        let latencies = load(
            dash.addr,
            pattern,
            Duration::from_secs(knobs.seconds),
            knobs.max_requests,
        )
        .await?;
        println!("  run {run} ({pattern}): {}", latencies.summary());
        runs.push(latencies);
    }
    Ok(runs)
}

// ---------------------------------------------------------------------------------------------
// The envs.

fn owner(i: usize, owners: usize) -> String {
    format!("user-{}", i % owners)
}

/// Env `i`: the `n`th env of its owner, named by core's rules (`user-3`, `user-3--2`, ...).
fn env_name(i: usize, owners: usize) -> anyhow::Result<String> {
    let n = u32::try_from(i / owners + 1)?;
    Ok(nth_env_name(&owner(i, owners), n)?)
}

fn spec(i: usize) -> EnvSpec {
    EnvSpec {
        repo: REPO.to_string(),
        branch: if i.is_multiple_of(3) {
            "master".to_string()
        } else {
            format!("feature/change-{i}")
        },
        path: [
            "0-base/Tiltfile",
            "1-measured/Tiltfile",
            "2-live-update/Tiltfile",
        ][i % 3]
            .to_string(),
    }
}

/// What ephctrl applies once the runner is ready.
fn ready_status(ready_at: Timestamp) -> EnvStatus {
    EnvStatus {
        phase: Phase::Ready,
        message: Some("runner ready".to_string()),
        ports: vec![
            Port {
                name: "web".to_string(),
                port: 8000,
            },
            Port {
                name: "tilt".to_string(),
                port: 10350,
            },
        ],
        ready_at: Some(ready_at),
        ..EnvStatus::default()
    }
}

/// Creates every env ConfigMap, applies its status as ephctrl does and records its Events.
async fn seed(client: &Client, knobs: &Knobs) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..knobs.envs)
        .map(|i| {
            let (config_maps, events) = (config_maps.clone(), events.clone());
            async move {
                let name = env_name(i, knobs.owners)?;
                // Deadlines spread over the next hour, so the rows' countdowns differ.
                let expiration = now + SignedDuration::from_secs(300 + (i as i64 * 37) % 3300);
                let created = config_maps
                    .create(
                        &PostParams::default(),
                        &env_config_map(&name, &owner(i, knobs.owners), &spec(i), Some(expiration)),
                    )
                    .await
                    .with_context(|| format!("creating env {name}"))?;
                let ready_at = now - SignedDuration::from_secs(60 + (i as i64 * 13) % 600);
                let status = ready_status(ready_at);
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
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&patch),
                    )
                    .await
                    .with_context(|| format!("applying the status of env {name}"))?;
                let uid = created.uid().unwrap_or_default();
                let transitions = [
                    ("Pending", "waiting for the runner to be created", 90),
                    ("Starting", "runner starting", 80),
                    ("Ready", "runner ready", 0),
                ];
                for (reason, note, before) in transitions.into_iter().take(knobs.events) {
                    let at = ready_at - SignedDuration::from_secs(before);
                    events
                        .create(
                            &PostParams::default(),
                            &transition_event(&name, &uid, reason, note, at),
                        )
                        .await
                        .with_context(|| format!("recording an Event of env {name}"))?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// An Event like those ephctrl records for a phase transition.
fn transition_event(name: &str, uid: &str, reason: &str, note: &str, at: Timestamp) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(ephctrl::events::event_name(name, at)),
            namespace: Some(NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(at)),
        action: Some("Reconcile".to_string()),
        reason: Some(reason.to_string()),
        note: Some(note.to_string()),
        type_: Some("Normal".to_string()),
        regarding: Some(ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("ConfigMap".to_string()),
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            uid: Some(uid.to_string()),
            ..ObjectReference::default()
        }),
        reporting_controller: Some(FIELD_MANAGER.to_string()),
        reporting_instance: Some(FIELD_MANAGER.to_string()),
        ..Event::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The dashboard binary.

struct Dash {
    child: tokio::process::Child,
    pid: u32,
    addr: std::net::SocketAddr,
    drain: tokio::task::JoinHandle<()>,
}

impl Dash {
    /// Starts `ephdash` on free ports and waits until its admin `/readyz` answers 200.
    async fn spawn(config: &Path, kubeconfig: &Path, workers: usize) -> anyhow::Result<Dash> {
        Dash::spawn_as(config, kubeconfig, workers, true).await
    }

    /// As [`Dash::spawn`]; with `fake_user` false, people are named by the
    /// `X-Auth-Request-User` header of each request (as behind the gateway).
    async fn spawn_as(
        config: &Path,
        kubeconfig: &Path,
        workers: usize,
        fake_user: bool,
    ) -> anyhow::Result<Dash> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ephdash"));
        if fake_user {
            command.args(["--auth-fake-user", USER]);
        }
        let mut child = command
            .arg("--config")
            .arg(config)
            .args(["--namespace", NAMESPACE])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--templates")
            .arg(root.join("templates"))
            .arg("--assets")
            .arg(root.join("assets"))
            .args(["--workers", &workers.to_string()])
            .args(["--log-format", "json"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the ephdash binary")?;
        let pid = child.id().context("ephdash has a pid")?;
        let stdout = child.stdout.take().context("ephdash's stdout")?;
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        // Reads the address off the log, then keeps draining it so the pipe never fills.
        let drain = tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = serving_addr(&line)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let (addr, admin) = match tokio::time::timeout(WAIT_LIMIT, addr_rx).await {
            Ok(Ok(addrs)) => addrs,
            _ => bail!("ephdash logged no \"serving the dashboard\" line within {WAIT_LIMIT:?}"),
        };
        let dash = Dash {
            child,
            pid,
            addr,
            drain,
        };
        let deadline = Instant::now() + WAIT_LIMIT;
        while !matches!(get(admin, "/readyz").await, Ok((200, _))) {
            if Instant::now() > deadline {
                bail!("ephdash at {addr} not ready within {WAIT_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(dash)
    }

    async fn fragment(&self) -> anyhow::Result<Bytes> {
        match get(self.addr, "/envs").await? {
            (200, body) => Ok(body),
            (status, _) => bail!("GET /envs answered {status}"),
        }
    }

    /// Waits until the fragment lists `envs` envs; how long that took.
    async fn wait_rows(&self, envs: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let body = self.fragment().await?;
            let rows = count(&body, b"id=\"env-");
            if rows >= envs {
                return Ok(started.elapsed());
            }
            if started.elapsed() > WAIT_LIMIT {
                bail!("ephdash lists {rows} of {envs} envs after {WAIT_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn settled_rss(&self) -> anyhow::Result<u64> {
        settled_rss(self.pid).await
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.drain.abort();
    }
}

/// The `addr` of ephdash's JSON "serving the dashboard" log line.
/// The traffic and admin addresses of a "serving the dashboard" log line.
fn serving_addr(line: &str) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
    let line: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = line.get("fields")?;
    if fields.get("message")?.as_str()? != "serving the dashboard" {
        return None;
    }
    let addr = |key: &str| fields.get(key)?.as_str()?.parse().ok();
    Some((addr("addr")?, addr("admin")?))
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| *window == needle)
        .count()
}

// ---------------------------------------------------------------------------------------------
// HTTP.

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A keep-alive HTTP/1 connection to `addr`.
async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One GET on `sender` as [`USER`]: the status and the whole body.
async fn send(
    sender: &mut Sender,
    addr: std::net::SocketAddr,
    path: &str,
) -> anyhow::Result<(u16, Bytes)> {
    send_as(sender, addr, path, HOST, USER).await
}

/// One GET on `sender` with `Host: host`, as `user` (when people are named by the header).
async fn send_as(
    sender: &mut Sender,
    addr: std::net::SocketAddr,
    path: &str,
    host: &str,
    user: &str,
) -> anyhow::Result<(u16, Bytes)> {
    let request = hyper::Request::get(format!("http://{addr}{path}"))
        .header("host", host)
        .header("x-auth-request-user", user)
        .header("hx-request", "true")
        .body(Empty::new())?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One GET on a fresh connection.
async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let mut sender = connect(addr).await?;
    tokio::time::timeout(REQUEST_LIMIT, send(&mut sender, addr, path))
        .await
        .with_context(|| format!("GET {path} took over {REQUEST_LIMIT:?}"))?
}

/// Every answer's latency of one run.
struct Latencies {
    /// Sorted, in milliseconds.
    millis: Vec<f64>,
    elapsed: Duration,
    bytes: usize,
}

impl Latencies {
    /// The nearest-rank percentile, in milliseconds.
    fn percentile(&self, q: f64) -> f64 {
        let rank = (q * self.millis.len() as f64).ceil() as usize;
        self.millis[rank.clamp(1, self.millis.len()) - 1]
    }

    fn per_second(&self) -> f64 {
        self.millis.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn summary(&self) -> String {
        format!(
            "{} requests in {:.1} s, {:.0} req/s ({:.0} MiB/s): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.millis.len(),
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.bytes as f64 / 1024.0 / 1024.0 / self.elapsed.as_secs_f64(),
            self.percentile(0.50),
            self.percentile(0.90),
            self.percentile(0.99),
            self.millis.last().copied().unwrap_or_default(),
        )
    }
}

/// The medians over runs of each figure.
struct Median {
    p50: f64,
    p90: f64,
    p99: f64,
    per_second: f64,
}

impl Median {
    fn of(runs: &[Latencies]) -> Median {
        let median = |figure: &dyn Fn(&Latencies) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(figure).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Median {
            p50: median(&|run| run.percentile(0.50)),
            p90: median(&|run| run.percentile(0.90)),
            p99: median(&|run| run.percentile(0.99)),
            per_second: median(&Latencies::per_second),
        }
    }
}

/// How the load comes.
#[derive(Clone, Copy)]
enum Pattern {
    /// This many keep-alive connections, each sending its next request as soon as the last
    /// answer is read: the most the dashboard can serve, and its queueing.
    Closed(usize),
    /// This many browser tabs, each on its own keep-alive connection polling every
    /// [`POLL_PERIOD`] as htmx does (`every 2s`) from a random start: the rate a team's open
    /// pages make. Latency counts from when the poll was due, so a late answer also counts
    /// against the polls it delays.
    Tabs(usize),
}

/// htmx's polling period of the env list (`hx-trigger="every 2s"` in `templates/page.html`).
const POLL_PERIOD: Duration = Duration::from_secs(2);

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Closed(1) => write!(f, "1 connection"),
            Pattern::Closed(connections) => write!(f, "{connections} connections"),
            Pattern::Tabs(tabs) => write!(
                f,
                "{tabs} tabs polling every {} s ({:.0} req/s offered)",
                POLL_PERIOD.as_secs(),
                *tabs as f64 / POLL_PERIOD.as_secs_f64()
            ),
        }
    }
}

/// `pattern` against `/envs` for `duration` (at most `max_requests` in all); every answer must
/// be a 200.
async fn load(
    addr: std::net::SocketAddr,
    pattern: Pattern,
    duration: Duration,
    max_requests: usize,
) -> anyhow::Result<Latencies> {
    let (connections, polling) = match pattern {
        Pattern::Closed(connections) => (connections, false),
        Pattern::Tabs(tabs) => (tabs, true),
    };
    let mut senders = Vec::new();
    for _ in 0..connections {
        senders.push(connect(addr).await?);
    }
    let issued = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let until = started + duration;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let issued = issued.clone();
            // A tab's first poll: spread over one period, in an order of no pattern.
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let offset = POLL_PERIOD.mul_f64((seed >> 11) as f64 / (1u64 << 53) as f64);
            tokio::spawn(async move {
                let (mut millis, mut bytes) = (Vec::new(), 0);
                let mut due = started + offset;
                loop {
                    if !polling {
                        due = tokio::time::Instant::now();
                    }
                    if due >= until || issued.fetch_add(1, Ordering::Relaxed) >= max_requests {
                        break;
                    }
                    tokio::time::sleep_until(due).await;
                    let (status, body) =
                        tokio::time::timeout(REQUEST_LIMIT, send(&mut sender, addr, "/envs"))
                            .await
                            .context("GET /envs took too long")??;
                    millis.push(due.elapsed().as_secs_f64() * 1000.0);
                    if status != 200 {
                        bail!("GET /envs answered {status}");
                    }
                    bytes += body.len();
                    due += POLL_PERIOD;
                }
                anyhow::Ok((millis, bytes))
            })
        })
        .collect();
    let mut latencies = Latencies {
        millis: Vec::new(),
        elapsed: Duration::ZERO,
        bytes: 0,
    };
    for task in tasks {
        let (millis, bytes) = task.await??;
        latencies.millis.extend(millis);
        latencies.bytes += bytes;
    }
    latencies.elapsed = started.elapsed();
    if latencies.millis.is_empty() {
        bail!("no request finished");
    }
    latencies.millis.sort_by(f64::total_cmp);
    Ok(latencies)
}
