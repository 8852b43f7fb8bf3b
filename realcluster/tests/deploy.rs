//! deploy/ against the real API server: every overlay applies with `kubectl apply
//! --server-side`, and the real RBAC authorizer grants each binary's ServiceAccount exactly what
//! its Role says: what it needs and nothing more (no Secrets, no writes for the gateway, nothing
//! outside its namespace); the Deployments' pods are scheduled on the fake node and become
//! Ready.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use realcluster::RealCluster;

/// Runs kubectl as the cluster's admin; `(success, stdout + stderr)`.
async fn kubectl(cluster: &RealCluster, args: &[&str]) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("kubectl in time")
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Whether `account` (in namespace ephemerator) may `verb` `resource`, as the real authorizer
/// answers (`kubectl auth can-i` impersonating it).
async fn can(
    cluster: &RealCluster,
    account: &str,
    verb: &str,
    resource: &str,
    namespace: &str,
) -> bool {
    let user = format!("--as=system:serviceaccount:ephemerator:{account}");
    // `pods/log` and `pods/exec` are subresources; any other `kind/x` names an object (kubectl
    // reads `pods/log` as the pod named "log", which a `get pods` grant would answer).
    let (resource, subresource) = match resource.split_once('/') {
        Some((kind, sub @ ("log" | "exec"))) => (kind, Some(format!("--subresource={sub}"))),
        _ => (resource, None),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "-n", namespace, &user];
    if let Some(subresource) = &subresource {
        args.push(subresource);
    }
    let (_, answer) = kubectl(cluster, &args).await;
    match answer.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i {verb} {resource} as {account}: {other}"),
    }
}

#[tokio::test]
async fn the_overlays_apply_and_each_binary_gets_exactly_its_role() {
    let cluster = RealCluster::start().await.unwrap();
    for overlay in ["prod", "dev"] {
        let out = cluster.apply_overlay(overlay).await.unwrap();
        assert!(
            out.contains("deployment.apps/ephgateway serverside-applied"),
            "{overlay}: {out}"
        );
    }

    // Every Deployment rolls out: the scheduler places its pods on kwok's node, which reports
    // them Running and Ready, as a kubelet would.
    let out = cluster
        .kubectl(&[
            "rollout",
            "status",
            "deployment",
            "-n",
            "ephemerator",
            "--timeout=100s",
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}\nkwok: {}", cluster.log_tail("kwok.log")));
    for deployment in ["ephctrl", "ephdash", "ephgateway", "oauth2-proxy"] {
        assert!(
            out.contains(&format!(
                "deployment \"{deployment}\" successfully rolled out"
            )),
            "{deployment}: {out}"
        );
    }
    let pods = cluster
        .kubectl(&[
            "get",
            "pods",
            "-n",
            "ephemerator",
            "-o",
            "jsonpath={range .items[*]}{.metadata.labels.app\\.kubernetes\\.io/component} {.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ])
        .await
        .unwrap();
    for deployment in ["ephctrl", "ephdash", "ephgateway", "oauth2-proxy"] {
        let line = format!("{deployment} {} True", realcluster::NODE);
        assert!(
            pods.lines().any(|l| l == line),
            "no ready {deployment} pod: {pods}"
        );
    }

    // ephctrl: env ConfigMaps, its children, Events; never Secrets or pods/exec.
    for (verb, resource) in [
        ("watch", "configmaps"),
        ("patch", "configmaps"),
        ("delete", "configmaps"),
        ("create", "deployments.apps"),
        ("patch", "services"),
        ("create", "ingresses.networking.k8s.io"),
        ("create", "events.events.k8s.io"),
        ("create", "leases.coordination.k8s.io"),
        ("get", "leases.coordination.k8s.io/ephctrl"),
        ("update", "leases.coordination.k8s.io/ephctrl"),
        // The envs' activity Leases: when each was last used (sleep and wake).
        ("list", "leases.coordination.k8s.io"),
        ("watch", "leases.coordination.k8s.io"),
    ] {
        assert!(
            can(&cluster, "ephctrl", verb, resource, "ephemerator").await,
            "ephctrl {verb} {resource}"
        );
    }
    // Holds its own Lease only; reads the others, changes none.
    for (verb, resource) in [
        ("get", "leases.coordination.k8s.io/kube-scheduler"),
        ("update", "leases.coordination.k8s.io/another"),
        ("patch", "leases.coordination.k8s.io/nicks-activity"),
        ("delete", "leases.coordination.k8s.io/ephctrl"),
        ("get", "secrets"),
        ("create", "configmaps"),
        ("create", "pods/exec"),
        ("list", "pods"),
    ] {
        assert!(
            !can(&cluster, "ephctrl", verb, resource, "ephemerator").await,
            "ephctrl {verb} {resource}"
        );
    }

    // ephdash: ConfigMaps (no update), pods and logs read, Events read and created (its audit
    // trail of access changes and share links).
    for (verb, resource) in [
        ("create", "configmaps"),
        ("patch", "configmaps"),
        ("delete", "configmaps"),
        ("list", "pods"),
        ("get", "pods/log"),
        ("watch", "events.events.k8s.io"),
        ("create", "events.events.k8s.io"),
    ] {
        assert!(
            can(&cluster, "ephdash", verb, resource, "ephemerator").await,
            "ephdash {verb} {resource}"
        );
    }
    for (verb, resource) in [
        ("get", "secrets"),
        ("update", "configmaps"),
        ("create", "pods/exec"),
        ("delete", "pods"),
    ] {
        assert!(
            !can(&cluster, "ephdash", verb, resource, "ephemerator").await,
            "ephdash {verb} {resource}"
        );
    }

    // ephgateway: reads env ConfigMaps and the runners' setup logs, creates Events (a share
    // link's first use) and applies activity Leases; writes nothing else, reads no Secrets,
    // Services, Events or Leases.
    for verb in ["get", "list", "watch"] {
        assert!(can(&cluster, "ephgateway", verb, "configmaps", "ephemerator").await);
    }
    for (verb, resource) in [
        ("create", "events.events.k8s.io"),
        // The envs' activity Leases, by server-side apply.
        ("create", "leases.coordination.k8s.io"),
        ("patch", "leases.coordination.k8s.io"),
        // The waking and starting pages' setup logs.
        ("list", "pods"),
        ("get", "pods/log"),
    ] {
        assert!(
            can(&cluster, "ephgateway", verb, resource, "ephemerator").await,
            "ephgateway {verb} {resource}"
        );
    }
    for (verb, resource) in [
        ("create", "configmaps"),
        ("patch", "configmaps"),
        ("delete", "configmaps"),
        ("get", "secrets"),
        ("get", "services"),
        ("list", "events.events.k8s.io"),
        ("create", "events"),
        ("delete", "leases.coordination.k8s.io"),
        ("list", "leases.coordination.k8s.io"),
        ("update", "leases.coordination.k8s.io"),
        ("watch", "pods"),
        ("delete", "pods"),
        ("create", "pods/exec"),
        ("get", "secrets"),
    ] {
        assert!(
            !can(&cluster, "ephgateway", verb, resource, "ephemerator").await,
            "ephgateway {verb} {resource}"
        );
    }

    // Nobody reaches outside the namespace.
    for account in ["ephctrl", "ephdash", "ephgateway"] {
        assert!(
            !can(&cluster, account, "list", "configmaps", "default").await,
            "{account}"
        );
        assert!(
            !can(&cluster, account, "list", "configmaps", "kube-system").await,
            "{account}"
        );
    }
}
