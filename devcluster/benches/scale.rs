//! Scale benchmark: how devcluster holds up with the object and watch counts a busy
//! ephemerator installation could reach. Run with `cargo bench -p devcluster --bench scale`.
//!
//! It starts a DevCluster in-process and, through kube-rs over HTTP like every real client,
//! - creates 10,000 ConfigMaps (5 batches of 2,000, 16 requests in flight): create throughput;
//! - opens 200 concurrent watches: resident memory before and after, and the time from one
//!   change being written to all 200 watches having received it (median of 7 changes);
//! - lists all 10,000 (median of 5, target < 200 ms), with the server-side and in-process
//!   parts timed separately so a slow list shows where its time goes.
//!
//! Every figure is a median of several runs; the whole program takes well under 3 minutes.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use devcluster::DevCluster;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;

/// The full run's sizes; `cargo test --benches` (no `--bench` argument) smoke-runs with
/// [`SMOKE_OBJECTS`] and [`SMOKE_WATCHES`].
const OBJECTS: usize = 10_000;
const SMOKE_OBJECTS: usize = 200;
const SMOKE_WATCHES: usize = 4;
const BATCHES: usize = 5;
const IN_FLIGHT: usize = 16;
const WATCHES: usize = 200;
const FAN_OUT_ROUNDS: usize = 7;
const LIST_ROUNDS: usize = 5;
/// No step may hang the benchmark: each wait fails after this long.
const STEP_DEADLINE: Duration = Duration::from_secs(60);
const LIST_TARGET: Duration = Duration::from_millis(200);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn median_f64(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Resident memory of this process in MiB (VmRSS from /proc/self/status), if readable.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn rss_text(rss: Option<f64>) -> String {
    rss.map_or_else(|| "unavailable".to_string(), |m| format!("{m:.1} MiB"))
}

fn config_map(i: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("bench-{i:05}")),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/part-of".to_string(),
                    "ephemerator.tilt.dev".to_string(),
                ),
                (
                    "app.kubernetes.io/name".to_string(),
                    "ephrunner".to_string(),
                ),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (
                "repo".to_string(),
                format!("https://github.com/tilt-dev/repo-{}", i % 50),
            ),
            ("branch".to_string(), format!("feature/branch-{i}")),
            ("path".to_string(), "Tiltfile".to_string()),
            ("expiration".to_string(), "2030-01-01T00:00:00Z".to_string()),
        ])),
        ..Default::default()
    }
}

/// Creates ConfigMaps `range` with `IN_FLIGHT` requests at a time; returns creates per second.
async fn create_batch(api: &Api<ConfigMap>, range: std::ops::Range<usize>) -> anyhow::Result<f64> {
    let count = range.len();
    let started = Instant::now();
    stream::iter(range)
        .map(|i| async move { api.create(&PostParams::default(), &config_map(i)).await })
        .buffer_unordered(IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// One watch from `resource_version`, reporting when it sees each change to `target`.
async fn watch_for_changes(
    api: Api<ConfigMap>,
    resource_version: String,
    target: String,
    id: usize,
    seen: mpsc::UnboundedSender<(usize, String, Instant)>,
) -> anyhow::Result<()> {
    let params = WatchParams::default().timeout(290);
    let mut events = api.watch(&params, &resource_version).await?.boxed();
    while let Some(event) = events.try_next().await? {
        if let WatchEvent::Modified(cm) = event
            && cm.metadata.name.as_deref() == Some(target.as_str())
        {
            let round = cm
                .data
                .as_ref()
                .and_then(|d| d.get("round"))
                .cloned()
                .unwrap_or_default();
            if seen.send((id, round, Instant::now())).is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// Writes one change and waits until every watch reported it; returns the time to the last.
async fn fan_out_once(
    api: &Api<ConfigMap>,
    target: &str,
    round: &str,
    seen: &mut mpsc::UnboundedReceiver<(usize, String, Instant)>,
    watches: usize,
) -> anyhow::Result<Duration> {
    let change = json!({"data": {"round": round}});
    let written = Instant::now();
    api.patch(target, &PatchParams::default(), &Patch::Merge(&change))
        .await?;
    let mut reached = vec![false; watches];
    let mut remaining = watches;
    let mut last = written;
    while remaining > 0 {
        let (id, seen_round, at) = tokio::time::timeout(STEP_DEADLINE, seen.recv())
            .await
            .map_err(|_| anyhow::anyhow!("{remaining} watches never saw change {round}"))?
            .ok_or_else(|| anyhow::anyhow!("every watch ended"))?;
        if seen_round == round && !reached[id] {
            reached[id] = true;
            remaining -= 1;
            last = last.max(at);
        }
    }
    Ok(last.duration_since(written))
}

async fn run(
    cluster: &DevCluster,
    client: Client,
    objects: usize,
    watches: usize,
) -> anyhow::Result<bool> {
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    println!("devcluster scale benchmark ({objects} ConfigMaps, {watches} watches)");
    let rss_start = rss_mib();

    // Creates.
    let per_batch = objects / BATCHES;
    let started = Instant::now();
    let mut rates = Vec::new();
    for b in 0..BATCHES {
        rates.push(create_batch(&api, b * per_batch..(b + 1) * per_batch).await?);
    }
    let total = started.elapsed();
    println!(
        "create: {:.0} ConfigMaps/s (median of {BATCHES} batches of {per_batch}, {IN_FLIGHT} in flight); all {objects} in {:.2} s",
        median_f64(rates),
        total.as_secs_f64()
    );
    let rss_objects = rss_mib();

    // Watches: from the current resourceVersion, so each sees changes only (no 10,000 ADDED replay).
    let rv = api
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let target = "bench-00000".to_string();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut watchers = Vec::new();
    for id in 0..watches {
        watchers.push(tokio::spawn(watch_for_changes(
            api.clone(),
            rv.clone(),
            target.clone(),
            id,
            seen_tx.clone(),
        )));
    }
    drop(seen_tx);
    // A first change proves every watch is established (and warms the path).
    let warm_up = fan_out_once(&api, &target, "warm-up", &mut seen, watches).await?;
    let rss_watches = rss_mib();
    let mut fan_outs = Vec::new();
    for round in 0..FAN_OUT_ROUNDS {
        fan_outs.push(
            fan_out_once(&api, &target, &format!("round-{round}"), &mut seen, watches).await?,
        );
    }
    println!(
        "watch fan-out: one change reaches all {watches} watches in {} (median of {FAN_OUT_ROUNDS}; fastest {}, slowest {}; first change {})",
        ms(median(fan_outs.clone())),
        ms(*fan_outs.iter().min().unwrap_or(&Duration::ZERO)),
        ms(*fan_outs.iter().max().unwrap_or(&Duration::ZERO)),
        ms(warm_up)
    );
    println!(
        "resident memory: {} at start, {} with {objects} ConfigMaps, {} with {watches} watches open",
        rss_text(rss_start),
        rss_text(rss_objects),
        rss_text(rss_watches)
    );
    for w in &watchers {
        w.abort();
    }

    // Lists: end to end through kube-rs, then its parts.
    let mut typed = Vec::new();
    let mut count = 0;
    for _ in 0..LIST_ROUNDS {
        let started = Instant::now();
        let list = api.list(&ListParams::default()).await?;
        typed.push(started.elapsed());
        count = list.items.len();
    }
    anyhow::ensure!(
        count == objects,
        "the list returned {count} ConfigMaps, not {objects}"
    );
    let mut raw = Vec::new();
    let mut bytes = 0;
    for _ in 0..LIST_ROUNDS {
        let request = kube::core::Request::new("/api/v1/namespaces/default/configmaps")
            .list(&ListParams::default())?;
        let started = Instant::now();
        let body = client.request_text(request).await?;
        raw.push(started.elapsed());
        bytes = body.len();
    }
    let rt = devcluster::resources::lookup("", "v1", "configmaps")
        .ok_or_else(|| anyhow::anyhow!("configmaps are not served"))?;
    let selectors = devcluster::selectors::Selectors::default();
    let mut in_store = Vec::new();
    let mut in_store_json = Vec::new();
    for _ in 0..LIST_ROUNDS {
        let started = Instant::now();
        let page = cluster
            .store()
            .list_page(rt, Some("default"), &selectors, None, None)?;
        in_store.push(started.elapsed());
        let started = Instant::now();
        // Serialised straight from the stored objects, as the server does (no copy into a new tree).
        let items: Vec<&serde_json::Value> = page.items.iter().map(|o| o.as_ref()).collect();
        let encoded = serde_json::to_vec(&items)?;
        in_store_json.push(started.elapsed());
        std::hint::black_box(encoded);
    }
    let list_median = median(typed);
    println!(
        "list {objects}: {} through kube-rs into typed ConfigMaps (median of {LIST_ROUNDS}; target < {})",
        ms(list_median),
        ms(LIST_TARGET)
    );
    println!(
        "  of which: HTTP round trip with the body as text {} ({:.1} MiB); in-process store read {}, JSON encoding {}",
        ms(median(raw)),
        bytes as f64 / (1024.0 * 1024.0),
        ms(median(in_store)),
        ms(median(in_store_json))
    );
    Ok(list_median < LIST_TARGET)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let cluster = DevCluster::start().await?;
        let client = cluster.client();
        // `cargo bench` passes `--bench`; anything else (`cargo test --benches`) only smoke-runs.
        let full = std::env::args().any(|arg| arg == "--bench");
        let (objects, watches) = if full {
            (OBJECTS, WATCHES)
        } else {
            (SMOKE_OBJECTS, SMOKE_WATCHES)
        };
        let within_target = run(&cluster, client, objects, watches).await?;
        println!(
            "total benchmark time: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        cluster.stop().await;
        if !within_target {
            println!(
                "NOTE: the list is slower than its {} target",
                ms(LIST_TARGET)
            );
        }
        Ok(())
    })
}
