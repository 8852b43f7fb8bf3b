//! The real kubectl (1.32, `/usr/bin/kubectl`) against a devcluster: what a newcomer types must
//! work as it does against a real cluster. Every kubectl run has a timeout, and its stderr is
//! printed when it fails.
//!
//! kubectl must be installed (`scripts/test.sh` installs it): a missing kubectl fails the tests
//! rather than skipping them. Set `KUBECTL` to use another binary.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{Server, on_both_servers, wait_for_within};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// How long one kubectl command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// kubectl configured for one devcluster, with its own kubeconfig, cache and home directory.
struct Kubectl {
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl {
    /// Panics when kubectl is not installed: these tests must not pass by testing nothing.
    fn new(cluster: &Server) -> Kubectl {
        let binary = std::env::var_os("KUBECTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
        assert!(
            binary.exists(),
            "{} not found: install kubectl (scripts/test.sh does) or set KUBECTL",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        cluster
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("kubeconfig written");
        Kubectl { binary, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("cache").display()
            ))
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl with `args` and `stdin`, within the timeout.
    async fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self.command(args).spawn().expect("kubectl starts");
        let mut input = child.stdin.take().expect("stdin piped");
        input
            .write_all(stdin.as_bytes())
            .await
            .expect("stdin written");
        drop(input);
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} took longer than {COMMAND_TIMEOUT:?}"))
            .expect("kubectl runs");
        Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and returns its stdout; panics with its stderr when it fails.
    async fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, "").await
    }

    async fn ok_with_input(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with_input(args, stdin).await;
        assert!(
            out.success,
            "kubectl {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        // kubectl warns on stderr when it cannot use the server's discovery or OpenAPI.
        assert!(
            !out.stderr.to_lowercase().contains("warning"),
            "kubectl {args:?} warned:\n{}",
            out.stderr
        );
        out.stdout
    }

    /// Runs kubectl, expecting it to fail; returns its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        self.fails_with_input(args, "").await
    }

    async fn fails_with_input(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with_input(args, stdin).await;
        assert!(
            !out.success,
            "kubectl {args:?} succeeded unexpectedly\nstdout:\n{}",
            out.stdout
        );
        out.stderr
    }

    async fn get_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.ok(&all).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}\n{text}"))
    }
}

/// Starts a devcluster and kubectl for it (for the tests of devcluster only).
async fn setup() -> (Server, Kubectl) {
    let cluster = Server::start_dev().await;
    let kubectl = Kubectl::new(&cluster);
    (cluster, kubectl)
}

on_both_servers!(
    api_resources_and_versions_list_the_served_types,
    apply_creates_then_updates_a_configmap_and_get_shows_it,
    reapplying_a_deployment_removes_the_dropped_container,
    server_side_apply_conflicts_between_managers_unless_forced,
    delete_waits_until_the_object_is_gone,
    get_watch_streams_a_change_made_meanwhile,
    describe_shows_the_events_of_a_configmap,
    explain_describes_configmap_fields_from_the_openapi,
    apply_of_an_unknown_field_fails_naming_it,
    scale_adds_a_pod_to_a_deployment,
);

/// The next line of a running command's output, before `deadline`.
async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    deadline: tokio::time::Instant,
) -> String {
    tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("output before the deadline")
        .expect("output readable")
        .expect("command still running")
}

fn container_names(deploy: &Value) -> Vec<String> {
    deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_reports_a_1_33_server() {
    let (_cluster, kubectl) = setup().await;
    let version = kubectl.get_json(&["version"]).await;
    let server = &version["serverVersion"];
    assert_eq!(server["major"], "1");
    assert_eq!(server["minor"], "33");
    assert!(
        server["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.33.")),
        "{server}"
    );
}

async fn api_resources_and_versions_list_the_served_types(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    let resources = kubectl.ok(&["api-resources", "--no-headers"]).await;
    let row = |name: &str| -> Vec<String> {
        resources
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|cols| cols.first().map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from api-resources:\n{resources}"))
    };
    assert_eq!(
        row("configmaps"),
        ["configmaps", "cm", "v1", "true", "ConfigMap"]
    );
    assert_eq!(
        row("deployments"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(
        row("namespaces"),
        ["namespaces", "ns", "v1", "false", "Namespace"]
    );
    assert_eq!(
        row("leases"),
        ["leases", "coordination.k8s.io/v1", "true", "Lease"]
    );
    assert!(
        !resources.contains("pods/log"),
        "subresources are not listed"
    );

    let versions = kubectl.ok(&["api-versions"]).await;
    let versions: Vec<&str> = versions.lines().collect();
    for expected in [
        "v1",
        "apps/v1",
        "networking.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
        "coordination.k8s.io/v1",
        "events.k8s.io/v1",
    ] {
        assert!(versions.contains(&expected), "{expected} in {versions:?}");
    }
}

const CONFIGMAP_V1: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels:
    app: web
data:
  color: blue
  size: large
";

const CONFIGMAP_V2: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels:
    app: web
data:
  color: green
";

async fn apply_creates_then_updates_a_configmap_and_get_shows_it(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    let created = kubectl
        .ok_with_input(&["apply", "-f", "-"], CONFIGMAP_V1)
        .await;
    assert_eq!(created.trim(), "configmap/settings created");
    let changed = kubectl
        .ok_with_input(&["apply", "-f", "-"], CONFIGMAP_V2)
        .await;
    assert_eq!(changed.trim(), "configmap/settings configured");
    let unchanged = kubectl
        .ok_with_input(&["apply", "-f", "-"], CONFIGMAP_V2)
        .await;
    assert_eq!(unchanged.trim(), "configmap/settings unchanged");

    let cm = kubectl.get_json(&["get", "configmap", "settings"]).await;
    // The key dropped from the file is removed: the three-way patch saw it in last-applied.
    assert_eq!(cm["data"], json!({"color": "green"}));
    assert!(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|a| a.contains("green"))
    );

    // Label selection and label columns.
    kubectl
        .ok_with_input(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  labels:\n    app: db\n",
        )
        .await;
    let selected = kubectl
        .ok(&["get", "cm", "-l", "app=web", "-o", "name"])
        .await;
    assert_eq!(selected.trim(), "configmap/settings");
    let table = kubectl.ok(&["get", "cm", "-L", "app"]).await;
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("NAME") && header.contains("APP"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("other") && l.trim_end().ends_with("db")),
        "{table}"
    );
    let missing = kubectl.fails(&["get", "cm", "nope"]).await;
    assert!(
        missing.contains("configmaps \"nope\" not found"),
        "{missing}"
    );
}

/// The Deployment `web` with an `app` container whose `MODE` env is `mode`, and a busybox
/// sidecar container when `sidecar` is set.
fn web_deployment_yaml(mode: &str, sidecar: bool) -> String {
    let mut yaml = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: {mode}
"
    );
    if sidecar {
        yaml.push_str(
            "      - name: sidecar
        image: busybox:1.36
        command: [sleep, infinity]
",
        );
    }
    yaml
}

async fn reapplying_a_deployment_removes_the_dropped_container(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    kubectl
        .ok_with_input(&["apply", "-f", "-"], &web_deployment_yaml("one", true))
        .await;
    let deploy = kubectl.get_json(&["get", "deployment", "web"]).await;
    assert_eq!(container_names(&deploy), ["app", "sidecar"]);

    let out = kubectl
        .ok_with_input(&["apply", "-f", "-"], &web_deployment_yaml("two", false))
        .await;
    assert_eq!(out.trim(), "deployment.apps/web configured");
    let deploy = kubectl.get_json(&["get", "deploy", "web"]).await;
    assert_eq!(container_names(&deploy), ["app"]);
    let app = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(app["env"], json!([{"name": "MODE", "value": "two"}]));
    assert_eq!(app["ports"][0]["containerPort"], 80);
}

async fn server_side_apply_conflicts_between_managers_unless_forced(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    let first = kubectl
        .ok_with_input(
            &["apply", "--server-side", "--field-manager=alice", "-f", "-"],
            CONFIGMAP_V1,
        )
        .await;
    assert_eq!(first.trim(), "configmap/settings serverside-applied");

    let conflict = kubectl
        .fails_with_input(
            &["apply", "--server-side", "--field-manager=bob", "-f", "-"],
            CONFIGMAP_V2,
        )
        .await;
    assert!(conflict.contains("conflict"), "{conflict}");
    assert!(conflict.contains("alice"), "{conflict}");
    assert!(conflict.contains(".data.color"), "{conflict}");
    let cm = kubectl.get_json(&["get", "cm", "settings"]).await;
    assert_eq!(cm["data"]["color"], "blue", "a conflict changes nothing");

    kubectl
        .ok_with_input(
            &[
                "apply",
                "--server-side",
                "--field-manager=bob",
                "--force-conflicts",
                "-f",
                "-",
            ],
            CONFIGMAP_V2,
        )
        .await;
    let cm = kubectl
        .get_json(&["get", "cm", "settings", "--show-managed-fields"])
        .await;
    assert_eq!(cm["data"]["color"], "green");
    // alice still owns `size`, which bob's configuration does not mention.
    assert_eq!(cm["data"]["size"], "large");
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"alice") && managers.contains(&"bob"),
        "{managers:?}"
    );
}

async fn delete_waits_until_the_object_is_gone(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    kubectl
        .ok_with_input(&["apply", "-f", "-"], CONFIGMAP_V1)
        .await;
    let out = kubectl.ok(&["delete", "configmap", "settings"]).await;
    assert_eq!(out.trim(), "configmap \"settings\" deleted");
    let gone = kubectl.fails(&["get", "configmap", "settings"]).await;
    assert!(gone.contains("not found"), "{gone}");
    let again = kubectl.fails(&["delete", "configmap", "settings"]).await;
    assert!(again.contains("not found"), "{again}");
}

async fn get_watch_streams_a_change_made_meanwhile(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    kubectl
        .ok_with_input(&["apply", "-f", "-"], CONFIGMAP_V1)
        .await;
    let mut watch = kubectl
        .command(&["get", "configmaps", "-w", "-o", "name"])
        .spawn()
        .expect("kubectl get -w starts");
    let stdout = watch.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = tokio::time::Instant::now() + COMMAND_TIMEOUT;
    // The initial list comes first; the change only after it, so the watch is established.
    assert_eq!(next_line(&mut lines, deadline).await, "configmap/settings");
    kubectl
        .ok_with_input(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\n",
        )
        .await;
    assert_eq!(next_line(&mut lines, deadline).await, "configmap/later");
    watch.kill().await.expect("watch stopped");
}

async fn describe_shows_the_events_of_a_configmap(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    kubectl
        .ok_with_input(&["apply", "-f", "-"], CONFIGMAP_V1)
        .await;
    let cm = kubectl.get_json(&["get", "cm", "settings"]).await;
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(cluster.client(), "default");
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "settings.1", "namespace": "default"},
        "involvedObject": {
            "apiVersion": "v1", "kind": "ConfigMap", "name": "settings", "namespace": "default",
            "uid": cm["metadata"]["uid"],
        },
        "reason": "Checked",
        "message": "the settings look fine",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": "2025-01-01T00:00:00Z",
        "lastTimestamp": "2025-01-01T00:00:00Z",
        "source": {"component": "kubectl-test"},
    }))
    .expect("an Event");
    events
        .create(&Default::default(), &event)
        .await
        .expect("event created");

    let described = kubectl.ok(&["describe", "cm", "settings"]).await;
    assert!(described.contains("Name:         settings"), "{described}");
    assert!(described.contains("color"), "{described}");
    let events_section = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section:\n{described}"));
    assert!(events_section.contains("Checked"), "{described}");
    assert!(
        events_section.contains("the settings look fine"),
        "{described}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_running_pod_are_shown() {
    let (cluster, kubectl) = setup().await;
    kubectl
        .ok_with_input(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: runner\nspec:\n  containers:\n  - name: main\n    image: busybox:1.36\n    args: [echo, hello]\n",
        )
        .await;
    // Wait (with a deadline) until the simulator reports the container running.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(cluster.client(), "default");
    wait_for_within(COMMAND_TIMEOUT, "the pod to run", || async {
        let pod = pods.get("runner").await.expect("pod readable");
        pod.status
            .and_then(|s| s.container_statuses)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            })
            .then_some(())
    })
    .await;
    let logs = kubectl.ok(&["logs", "runner"]).await;
    assert!(logs.contains("main"), "{logs}");
    // The same log by container name. (The simulator may append its "ready" line between two
    // reads, so they are compared until they agree.)
    wait_for_within(COMMAND_TIMEOUT, "the same log by container", || async {
        let logs = kubectl.ok(&["logs", "runner"]).await;
        let by_container = kubectl.ok(&["logs", "runner", "-c", "main"]).await;
        (logs == by_container).then_some(())
    })
    .await;
    let bad = kubectl.fails(&["logs", "runner", "-c", "nope"]).await;
    assert!(bad.contains("nope"), "{bad}");
}

async fn explain_describes_configmap_fields_from_the_openapi(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    let explained = kubectl.ok(&["explain", "configmap"]).await;
    assert!(explained.contains("KIND:       ConfigMap"), "{explained}");
    assert!(explained.contains("VERSION:    v1"), "{explained}");
    assert!(
        explained.contains("data\t<map[string]string>"),
        "{explained}"
    );
    let nested = kubectl
        .ok(&["explain", "deployment.spec.template.spec.containers.ports"])
        .await;
    assert!(
        nested.contains("containerPort\t<integer> -required-"),
        "{nested}"
    );
}

async fn apply_of_an_unknown_field_fails_naming_it(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  k: v\nfoo: bar\n";
    let err = kubectl
        .fails_with_input(&["apply", "-f", "-"], manifest)
        .await;
    assert!(
        err.contains(r#"strict decoding error: unknown field "foo""#),
        "{err}"
    );
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::default_namespaced(cluster.client());
    assert!(
        cms.get_opt("typo").await.unwrap().is_none(),
        "nothing created"
    );
    // --validate=false sends fieldValidation=Ignore: created, without the field.
    kubectl
        .ok_with_input(&["apply", "--validate=false", "-f", "-"], manifest)
        .await;
    let cm = kubectl.get_json(&["get", "configmap", "typo"]).await;
    assert!(cm.get("foo").is_none(), "{cm}");
    assert_eq!(cm["data"], json!({"k": "v"}));
}

async fn scale_adds_a_pod_to_a_deployment(cluster: Server) {
    let kubectl = Kubectl::new(&cluster);
    kubectl
        .ok_with_input(&["apply", "-f", "-"], &web_deployment_yaml("two", false))
        .await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::default_namespaced(cluster.client());
    let count = || async {
        pods.list(&kube::api::ListParams::default())
            .await
            .expect("pods listed")
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count()
    };
    wait_for_within(COMMAND_TIMEOUT, "the first pod", || async {
        (count().await == 1).then_some(())
    })
    .await;
    let out = kubectl
        .ok(&["scale", "deploy", "web", "--replicas=2"])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let deploy = kubectl.get_json(&["get", "deploy", "web"]).await;
    assert_eq!(deploy["spec"]["replicas"], 2);
    wait_for_within(COMMAND_TIMEOUT, "the second pod", || async {
        (count().await == 2).then_some(())
    })
    .await;
    // A precondition that does not hold is refused.
    let err = kubectl
        .fails(&[
            "scale",
            "deploy",
            "web",
            "--current-replicas=5",
            "--replicas=3",
        ])
        .await;
    assert!(
        err.contains("precondition") || err.contains("Expected replicas"),
        "{err}"
    );
}
