//! The real control plane starts, answers as Kubernetes v1.36.3 and enforces RBAC.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use realcluster::RealCluster;

#[tokio::test]
async fn it_serves_as_the_real_api_server() {
    let cluster = RealCluster::start().await.unwrap();
    let client = cluster.client().await.unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, realcluster::VERSION);
    let api = Api::<ConfigMap>::namespaced(client, "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hello"},
        "data": {"a": "b"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    assert_eq!(api.get("hello").await.unwrap().data.unwrap()["a"], "b");
}

#[tokio::test]
async fn the_api_server_restarts_on_the_same_port_with_its_data() {
    let mut cluster = RealCluster::start().await.unwrap();
    let client = cluster.client().await.unwrap();
    let api = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kept"},
        "data": {"k": "v"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    cluster.restart_apiserver().await.unwrap();
    // The same client (same address) works again, and etcd kept the object.
    assert_eq!(api.get("kept").await.unwrap().data.unwrap()["k"], "v");
}
