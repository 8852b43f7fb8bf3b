//! `kubectl get` output against a devcluster (and the same test against the real API server): the server prints Tables, so the columns are the
//! ones a real cluster shows, and label columns (`-L`, `--show-labels`) work.
//!
//! kubectl must be installed (as for tests/kubectl.rs): a missing one fails these tests.
//! Set `KUBECTL` to use another binary.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, config_map, kubectl_stdout as kubectl, on_both_servers};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

/// The whitespace-separated words of each output line.
fn words(output: &str) -> Vec<Vec<&str>> {
    output
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

on_both_servers!(kubectl_get_prints_type_columns_and_labels);

async fn kubectl_get_prints_type_columns_and_labels(c: Server) {
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
