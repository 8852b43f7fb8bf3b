//! The real control plane starts, answers as Kubernetes v1.36.3 and enforces RBAC.

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
