//! The gateway follows its config file while it runs: a new `gatewayHost` is served within
//! seconds (the old one no longer is), and a broken edit changes nothing but is counted.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use ephemerator_core::Config;
use ephemerator_kit::LiveConfig;
use hyper::Response;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_gateway_host_is_served_and_a_broken_edit_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ephemerator.yaml");
    std::fs::write(&path, "gatewayHost: old.localhost\n").unwrap();
    let live = LiveConfig::watch(
        &path,
        Config::load(&path).unwrap(),
        Duration::from_millis(50),
    );
    let cluster = devcluster().await;
    let dashboard = serve(|_| async { Response::new(body("the dashboard")) }).await;
    let mut settings = settings(cluster.client(), Auth::None, dashboard);
    settings.config = live;
    let gateway = Gateway::start(settings).await;

    let old = gateway.get("old.localhost", "/", &[]).await;
    assert_eq!((old.status, old.body.as_str()), (200, "the dashboard"));
    assert_eq!(gateway.get("new.localhost", "/", &[]).await.status, 404);

    ephemerator_testkit::replace_file(&path, "gatewayHost: new.localhost\n").unwrap();
    wait_for("the new host served", || async {
        let answer = gateway.get("new.localhost", "/", &[]).await;
        (answer.status == 200 && answer.body == "the dashboard").then_some(())
    })
    .await;
    assert_eq!(gateway.get("old.localhost", "/", &[]).await.status, 404);

    // A broken edit: the new host stays, the refusal is counted.
    ephemerator_testkit::replace_file(&path, "gatewayHost: NOT A HOST\n").unwrap();
    let metrics = wait_for("the refusal counted", || async {
        let metrics = gateway.admin("/metrics").await.body;
        metrics
            .contains("ephgateway_config_reload_failures_total 1")
            .then_some(metrics)
    })
    .await;
    assert!(
        metrics.contains("ephgateway_config_generation 2"),
        "{metrics}"
    );
    assert_eq!(gateway.get("new.localhost", "/", &[]).await.status, 200);
    // Still ready: it works on the last good config.
    assert_eq!(gateway.admin("/readyz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_the_config_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ephemerator.yaml");
    let version = |n: u32| {
        format!(
            "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [repo-{n}]\n"
        )
    };
    std::fs::write(&path, version(0)).unwrap();
    let live = LiveConfig::watch(
        &path,
        Config::load(&path).unwrap(),
        Duration::from_millis(20),
    );
    let cluster = devcluster().await;
    let dashboard = serve(|_| async { Response::new(body("the dashboard")) }).await;
    let mut settings = settings(cluster.client(), Auth::None, dashboard);
    settings.config = live;
    let gateway = std::sync::Arc::new(Gateway::start(settings).await);

    // Requests without a pause, while the file changes ten times under them.
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load = {
        let (gateway, running) = (gateway.clone(), running.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(gateway.get("preview.localhost", "/", &[]).await.status);
            }
            statuses
        })
    };
    for n in 1..=10u32 {
        // Written whole, as editors and kubelet do, so no half-written file is ever read.
        ephemerator_testkit::replace_file(&path, version(n)).unwrap();

        let generation = format!("ephgateway_config_generation {}", n + 1);
        wait_for("the reload", || async {
            gateway
                .admin("/metrics")
                .await
                .body
                .contains(&generation)
                .then_some(())
        })
        .await;
    }
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.await.unwrap();
    assert!(statuses.len() > 10, "{} requests", statuses.len());
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
}
