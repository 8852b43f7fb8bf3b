//! The manifests in `deploy/`, applied as an operator applies them: every overlay, rendered by
//! kubectl's own kustomize, goes in with `kubectl apply --server-side` and every object is
//! there afterwards. (Rendering, schema validation and the security lint of the same overlays
//! are `scripts/check-deploy.sh`, which the test command runs.)

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::kubectl_stdout;

#[tokio::test]
async fn every_overlay_applies_server_side() {
    let overlays = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/overlays");
    let mut names: Vec<String> = std::fs::read_dir(&overlays)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["dev", "prod", "prod-tls"],
        "a new overlay needs a look here"
    );
    for name in names {
        // A fresh cluster for each overlay, as a fresh team would have.
        let cluster = common::Server::start_dev().await;
        let overlay = overlays.join(&name);
        let applied = kubectl_stdout(
            &cluster,
            &["apply", "--server-side", "-k", &overlay.to_string_lossy()],
        )
        .await;
        for object in [
            "namespace/ephemerator",
            "deployment.apps/ephctrl",
            "deployment.apps/ephdash",
            "deployment.apps/ephgateway",
            "service/ephgateway",
            "configmap/ephconfig",
            "networkpolicy.networking.k8s.io/ephdash-from-gateway",
            "networkpolicy.networking.k8s.io/runners-from-gateway-and-ctrl",
        ] {
            assert!(
                applied.contains(&format!("{object} serverside-applied")),
                "{name}: {object} not applied:\n{applied}"
            );
        }
        let with_oauth2_proxy = name != "dev";
        assert_eq!(
            applied.contains("deployment.apps/oauth2-proxy serverside-applied"),
            with_oauth2_proxy,
            "{name}:\n{applied}"
        );
        let roles = kubectl_stdout(
            &cluster,
            &["get", "roles", "-n", "ephemerator", "-o", "name"],
        )
        .await;
        assert_eq!(
            roles.lines().collect::<Vec<_>>(),
            [
                "role.rbac.authorization.k8s.io/ephctrl",
                "role.rbac.authorization.k8s.io/ephdash",
                "role.rbac.authorization.k8s.io/ephgateway"
            ],
            "{name}"
        );
        // The gateway's config says what the overlay is for.
        let gateway = kubectl_stdout(
            &cluster,
            &[
                "get",
                "deployment",
                "ephgateway",
                "-n",
                "ephemerator",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].args}",
            ],
        )
        .await;
        let expected_auth = if name == "dev" {
            "--auth=none"
        } else {
            "--auth=oauth2-proxy"
        };
        assert!(gateway.contains(expected_auth), "{name}: {gateway}");
        assert_eq!(
            gateway.contains("--tls-cert"),
            name == "prod-tls",
            "{name}: {gateway}"
        );
    }
}
