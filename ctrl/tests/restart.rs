//! ephctrl through an API server restart (same address, same data): what was created, changed
//! or deleted while the server was down, and what is created after it is back, all converge.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use devcluster::DevCluster;
use ephemerator_core::Phase;
use ephemerator_kit::cluster::{ApiHealth, bounded_client};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams};

async fn devcluster(data: &std::path::Path, listen: Option<std::net::SocketAddr>) -> DevCluster {
    let mut builder = DevCluster::builder()
        .data_dir(data)
        .pod_ready_delay(Duration::from_millis(200));
    if let Some(addr) = listen {
        builder = builder.listen(addr);
    }
    let cluster = builder.start().await.expect("devcluster starts");
    // The tests' namespace, kept in the data from the first start on.
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}})).unwrap();
    let _ = Api::all(cluster.client())
        .create(&Default::default(), &namespace)
        .await;
    cluster
}

async fn readyz(port: u16) -> Option<String> {
    Some(http_get(port, "/readyz").await?.0)
}

#[tokio::test]
async fn envs_converge_after_the_api_server_restarts() {
    let data = tempfile::tempdir().unwrap();
    let cluster = devcluster(data.path(), None).await;
    let addr = cluster.addr();
    let client = cluster.client();

    // The controller as the binary runs it: every request bounded, health reported.
    let health = ApiHealth::default();
    let ctrl_client = bounded_client(
        kube::Config::new(cluster.url().parse().unwrap()),
        Duration::from_secs(5),
        health.clone(),
    )
    .unwrap();
    let mut settings = ephctrl::testing::settings(ctrl_client, NAMESPACE, config());
    settings.api_health = health;
    let ctrl = Ctrl::start(settings);
    let port = ctrl.admin_port;

    for name in ["kept", "gone"] {
        create_env(&client, name, &spec(HTML_REPO, "master", "0-base")).await;
    }
    for name in ["kept", "gone"] {
        wait_for_phase(&client, name, Phase::Ready).await;
        wait_for_children(&client, name).await;
    }
    wait_for("/readyz 200", || async {
        readyz(port).await.filter(|s| s.contains("200"))
    })
    .await;

    // The API server goes down: the controller says so.
    cluster.stop().await;
    wait_for("/readyz 503 while the API server is down", || async {
        readyz(port).await.filter(|s| s.contains("503"))
    })
    .await;

    // Meanwhile (another server of the same data, as in a highly available control plane):
    // `kept` moves to another branch and `gone` is deleted, its children collected.
    let other = devcluster(data.path(), None).await;
    let other_client = other.client();
    let config_maps: Api<ConfigMap> = Api::namespaced(other_client.clone(), NAMESPACE);
    config_maps
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"branch": "main"}})),
        )
        .await
        .unwrap();
    config_maps
        .delete("gone", &Default::default())
        .await
        .unwrap();
    wait_for("gone's children to be collected", || async {
        let deployment: Option<Deployment> = get(&other_client, "gone").await;
        let service: Option<Service> = get(&other_client, "gone").await;
        (deployment.is_none() && service.is_none()).then_some(())
    })
    .await;
    other.stop().await;

    // Back on the same address, with a history that starts after what the controller saw.
    let restarted = devcluster(data.path(), Some(addr)).await;
    let client = restarted.client();
    create_env(&client, "late", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_children(&client, "late").await;
    wait_for_phase(&client, "late", Phase::Ready).await;
    let rolled = wait_for("kept to roll out the new branch", || async {
        let deployment: Deployment = get(&client, "kept").await?;
        (env_var(&deployment, "TILT_UPPER_BRANCH").as_deref() == Some("main")).then_some(deployment)
    })
    .await;
    assert_eq!(rolled.metadata.generation, Some(2), "rolled out once");
    wait_for_phase(&client, "kept", Phase::Ready).await;
    wait_for("/readyz 200 again", || async {
        readyz(port).await.filter(|s| s.contains("200"))
    })
    .await;
    // The deleted env stays deleted: nothing re-created from a stale cache.
    let deployment: Option<Deployment> = get(&client, "gone").await;
    let service: Option<Service> = get(&client, "gone").await;
    assert!(deployment.is_none() && service.is_none());
    let (_, metrics) = http_get(port, "/metrics").await.expect("/metrics answers");
    assert!(
        metrics.contains("ephctrl_envs{phase=\"Ready\"} 2"),
        "{metrics}"
    );
}
