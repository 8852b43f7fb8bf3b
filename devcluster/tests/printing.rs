//! `kubectl get` output against a devcluster: the server prints Tables, so the columns are the
//! ones a real cluster shows, and label columns (`-L`, `--show-labels`) work.
//!
//! kubectl must be installed (as for tests/kubectl.rs): a missing one fails these tests.
//! Set `KUBECTL` to use another binary.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::config_map;
use devcluster::DevCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

/// Runs kubectl against `c` and returns its stdout, failing the test on error or timeout.
async fn kubectl(c: &DevCluster, args: &[&str]) -> String {
    let binary = std::env::var_os("KUBECTL").unwrap_or_else(|| "/usr/bin/kubectl".into());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    c.write_kubeconfig(&kubeconfig).unwrap();
    let run = tokio::process::Command::new(&binary)
        .args(args)
        .arg(format!(
            "--cache-dir={}",
            dir.path().join("cache").display()
        ))
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} took over a minute"))
        .unwrap_or_else(|e| panic!("running {binary:?}: {e}"));
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The whitespace-separated words of each output line.
fn words(output: &str) -> Vec<Vec<&str>> {
    output
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[tokio::test]
async fn kubectl_get_prints_type_columns_and_labels() {
    let c = DevCluster::start().await.expect("devcluster starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    cms.create(
        &PostParams::default(),
        &config_map(
            "env-a",
            &[("tier", "web")],
            &[("repo", "r"), ("branch", "main")],
        ),
    )
    .await
    .unwrap();
    cms.create(&PostParams::default(), &config_map("env-b", &[], &[]))
        .await
        .unwrap();

    let out = kubectl(&c, &["get", "configmaps", "-L", "tier"]).await;
    let lines = words(&out);
    assert_eq!(lines[0], ["NAME", "DATA", "AGE", "TIER"], "{out}");
    assert_eq!(lines[1][..2], ["env-a", "2"], "{out}");
    assert_eq!(lines[1][3], "web", "{out}");
    // An object without the label shows an empty cell, so the row has one word fewer.
    assert_eq!(lines[2][..2], ["env-b", "0"], "{out}");
    assert_eq!(lines[2].len(), 3, "{out}");

    let out = kubectl(&c, &["get", "configmap", "env-a", "--show-labels"]).await;
    let lines = words(&out);
    assert_eq!(lines[0], ["NAME", "DATA", "AGE", "LABELS"], "{out}");
    assert_eq!(lines[1][3], "tier=web", "{out}");

    let out = kubectl(&c, &["get", "namespaces"]).await;
    let lines = words(&out);
    assert_eq!(lines[0], ["NAME", "STATUS", "AGE"], "{out}");
    assert!(
        lines.iter().any(|l| l[..2] == ["default", "Active"]),
        "{out}"
    );
}
