//! The `ephctrl` binary as an operator runs it: config file, kubeconfig, listener.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use ephemerator_core::Phase;
use tokio::process::Command;

#[tokio::test]
async fn the_binary_reads_its_config_and_kubeconfig_and_runs_envs() {
    let cluster = cluster().await;
    let client = cluster.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let config = dir.path().join("ephemerator.yaml");
    std::fs::write(&config, CONFIG_YAML).unwrap();
    let port = free_port();

    let mut child = Command::new(env!("CARGO_BIN_EXE_ephctrl"))
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ephctrl starts");

    wait_for("/readyz to answer 200", || async {
        let (status, _) = http_get(port, "/readyz").await?;
        status.contains("200").then_some(())
    })
    .await;
    // The namespace came from the kubeconfig (`default`).
    create_env(&client, "olga", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "olga", Phase::Ready).await;
    let (_, metrics) = http_get(port, "/metrics").await.unwrap();
    assert!(
        metrics.contains("ephctrl_envs{phase=\"Ready\"} 1"),
        "{metrics}"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_broken_config_file_stops_the_binary_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.yaml");
    std::fs::write(
        &config,
        "gatewayHost: preview.localhost\nexpiration:\n  defaultTTL: soon\n",
    )
    .unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_ephctrl"))
            .arg("--config")
            .arg(&config)
            .env("KUBECONFIG", dir.path().join("missing"))
            .output(),
    )
    .await
    .expect("ephctrl exits")
    .expect("ephctrl runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.yaml"), "{stderr}");
    assert!(stderr.contains("expiration.defaultTTL"), "{stderr}");
}
