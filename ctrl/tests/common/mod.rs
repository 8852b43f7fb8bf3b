//! Helpers shared by ephctrl's integration tests: a devcluster, the controller running
//! in-process, and waiting for conditions with a deadline.
#![allow(dead_code, unused_imports, unused_macros)]

use std::future::Future;
use std::time::Duration;

use devcluster::DevCluster;
use ephctrl::Settings;
use ephemerator_core::labels::child_label_selector;
use ephemerator_core::{Config, EnvSpec, EnvStatus, Phase, env_config_map};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

/// The namespace the tests use: `deploy/`'s, so that on the real API server the controller
/// runs as its ServiceAccount with exactly its Role.
pub const NAMESPACE: &str = "ephemerator";
/// An allow-listed repo (upstream's `nicks` example).
pub const HTML_REPO: &str = "https://github.com/tilt-dev/tilt-example-html";
/// How long any awaited condition may take before the test fails. Generous: the machine is
/// shared by several builds.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The message of a Ready env whose runner's Tilt does not answer (the tests point ephctrl at
/// a closed port for Tilt, see `ephctrl::testing::NO_TILT_URL_TEMPLATE`).
pub const READY_WITHOUT_TILT: &str =
    "runner ready; the app's ports are not known yet: Tilt does not answer yet (no connection)";

/// The test config: upstream's allow-list, the default lifetimes.
pub const CONFIG_YAML: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html, tilt-example-python]
"#;

pub fn config() -> Config {
    Config::from_yaml_str(CONFIG_YAML, "test-config.yaml").expect("the test config is valid")
}

/// A devcluster whose simulated pods become ready quickly. Set `RUST_LOG` to see the
/// controller's logs.
pub async fn cluster() -> DevCluster {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let cluster = DevCluster::builder()
        .pod_ready_delay(Duration::from_millis(200))
        .start()
        .await
        .expect("devcluster starts");
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}})).unwrap();
    Api::all(cluster.client())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the test namespace");
    cluster
}

/// The API server a test runs against: devcluster, or the real control plane with `deploy/`'s
/// dev overlay applied. [`on_both_clusters!`] runs a test on each.
pub struct TestCluster {
    admin: Client,
    ctrl: Client,
    kind: Kind,
}

enum Kind {
    Dev(DevCluster),
    Real(Box<realcluster::RealCluster>),
}

impl TestCluster {
    pub async fn dev() -> TestCluster {
        let cluster = cluster().await;
        TestCluster {
            admin: cluster.client(),
            ctrl: cluster.client(),
            kind: Kind::Dev(cluster),
        }
    }

    pub async fn real() -> TestCluster {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let cluster = realcluster::RealCluster::start_with_overlay("dev")
            .await
            .expect("the real control plane with deploy/'s dev overlay");
        TestCluster {
            admin: cluster.client().await.expect("an admin client"),
            ctrl: cluster
                .client_as(NAMESPACE, "ephctrl")
                .await
                .expect("ephctrl's ServiceAccount"),
            kind: Kind::Real(Box::new(cluster)),
        }
    }

    /// The cluster's admin: the test's own reads and writes (as a user's kubectl).
    pub fn client(&self) -> Client {
        self.admin.clone()
    }

    /// What the controller runs as: on the real server, its ServiceAccount.
    pub fn ctrl_client(&self) -> Client {
        self.ctrl.clone()
    }
}

impl WriteKubeconfig for TestCluster {
    fn write_kubeconfig(&self, path: &std::path::Path) -> anyhow::Result<()> {
        match &self.kind {
            Kind::Dev(cluster) => cluster.write_kubeconfig(path),
            Kind::Real(cluster) => Ok(std::fs::copy(cluster.kubeconfig(), path).map(drop)?),
        }
    }
}

impl WriteKubeconfig for DevCluster {
    fn write_kubeconfig(&self, path: &std::path::Path) -> anyhow::Result<()> {
        DevCluster::write_kubeconfig(self, path)
    }
}

/// A cluster kubectl can be pointed at.
pub trait WriteKubeconfig {
    fn write_kubeconfig(&self, path: &std::path::Path) -> anyhow::Result<()>;
}

/// `on_both_clusters!(a, b)`: each `async fn` named runs on devcluster and on the real API server
/// (see `ephemerator_testkit::on_devcluster_and_real_apiserver`).
macro_rules! on_both_clusters {
    ($($test:ident),* $(,)?) => {
        ephemerator_testkit::on_devcluster_and_real_apiserver!(
            dev: crate::common::TestCluster::dev().await,
            real: crate::common::TestCluster::real().await;
            $($test),*
        );
    };
}
pub(crate) use on_both_clusters;

/// The controller running in-process, its admin listener on a free port; stopped when dropped.
pub struct Ctrl {
    running: Option<ephctrl::Running>,
    /// The port of its `/healthz`, `/readyz` and `/metrics`.
    pub admin_port: u16,
}

impl Ctrl {
    pub fn start(settings: Settings) -> Ctrl {
        let listeners = ephemerator_kit::Listeners::local(false).expect("a local listener");
        let running = ephctrl::start(settings, listeners).expect("the controller starts");
        Ctrl {
            admin_port: running.admin_addr.port(),
            running: Some(running),
        }
    }

    /// The controller against `client` with `config` and default settings otherwise.
    pub fn with_config(client: Client, config: Config) -> Ctrl {
        Ctrl::start(ephctrl::testing::settings(client, NAMESPACE, config))
    }

    /// Stops the controller as SIGTERM does: drains, then gives the Lease up.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Kills the controller wherever it is, as a crash would.
    pub async fn kill(mut self) {
        if let Some(running) = self.running.take() {
            running.kill().await;
        }
    }
}

/// Polls `check` until it yields a value; fails the test after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_within(DEADLINE, what, check).await
}

/// Polls `check` until it yields a value; fails the test after `deadline`.
pub async fn wait_for_within<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn spec(repo: &str, branch: &str, path: &str) -> EnvSpec {
    EnvSpec {
        repo: repo.to_string(),
        branch: branch.to_string(),
        path: path.to_string(),
    }
}

/// Creates env `name` through kube-rs, as the dashboard does.
pub async fn create_env(client: &Client, name: &str, spec: &EnvSpec) -> ConfigMap {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    api.create(
        &PostParams::default(),
        &env_config_map(name, name, spec, None),
    )
    .await
    .expect("creating the env ConfigMap")
}

pub async fn get<K>(client: &Client, name: &str) -> Option<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), NAMESPACE);
    // Transient API errors (fault injection) read as "not yet".
    api.get_opt(name).await.ok().flatten()
}

pub async fn status(client: &Client, name: &str) -> Option<EnvStatus> {
    get::<ConfigMap>(client, name)
        .await
        .map(|cm| EnvStatus::from_meta(&cm.metadata))
}

/// Waits until env `name` reports `phase`, and returns its status.
pub async fn wait_for_phase(client: &Client, name: &str, phase: Phase) -> EnvStatus {
    wait_for(&format!("env {name} to be {phase}"), || async {
        status(client, name).await.filter(|s| s.phase == phase)
    })
    .await
}

/// The (name, port) pairs of a Service, in its order.
pub fn service_ports(service: &Service) -> Vec<(String, i32)> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect()
}

/// Waits until the runner Deployment and the Service of env `name` exist.
pub async fn wait_for_children(client: &Client, name: &str) -> (Deployment, Service) {
    wait_for(&format!("the children of {name}"), || async {
        Some((get(client, name).await?, get(client, name).await?))
    })
    .await
}

/// The value of environment variable `name` of a runner's `tilt-upper` container.
#[allow(unused_imports)]
pub use ephctrl::desired::tilt_upper_env as env_var;

/// Every Deployment labelled as a child of env `name`.
pub async fn labelled_deployments(client: &Client, name: &str) -> Vec<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    api.list(&ListParams::default().labels(&child_label_selector(name)))
        .await
        .expect("listing deployments")
        .items
}

/// Reasons of the Events recorded on env ConfigMap `name`, oldest first.
pub async fn event_reasons(client: &Client, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let Ok(events) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    let mut events: Vec<Event> = events
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ConfigMap")
        })
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events.into_iter().filter_map(|e| e.reason).collect()
}

/// The controller owner reference of `object`, as (kind, name, uid).
pub fn controller_of(object: &impl kube::Resource) -> Option<(String, String, String)> {
    object
        .owner_references()
        .iter()
        .find(|owner| owner.controller == Some(true))
        .map(|owner| (owner.kind.clone(), owner.name.clone(), owner.uid.clone()))
}

/// A plain HTTP GET against the metrics/health listener: (status line, body).
pub async fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// The name of `object`, for messages.
pub fn name_of(object: &impl kube::Resource) -> String {
    object.name_any()
}

/// Runs the real kubectl (1.32; `KUBECTL` names another) against `cluster` with its own
/// kubeconfig, cache and home, `files` written next to the kubeconfig first (name, content).
/// Fails the test when kubectl is missing, hangs past a minute, or exits non-zero.
pub async fn kubectl(
    cluster: &impl WriteKubeconfig,
    args: &[&str],
    files: &[(&str, &str)],
) -> String {
    let binary = std::env::var_os("KUBECTL").unwrap_or_else(|| "/usr/bin/kubectl".into());
    assert!(
        std::path::Path::new(&binary).exists(),
        "{binary:?} not found: install kubectl (scripts/test.sh does) or set KUBECTL"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    cluster
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("file written");
    }
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&binary)
            .arg(format!("--namespace={NAMESPACE}"))
            .args(args)
            .current_dir(dir.path())
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .env("KUBECACHEDIR", dir.path().join("cache"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("kubectl {args:?} finishes within a minute"))
    .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts `command` (the ephctrl binary with `--admin-listen 127.0.0.1:0 --log-format json`) and returns
/// it with the port its listener got, read from its log; the rest of its output is drained.
pub async fn spawn_with_listener(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let port = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(addr) = entry["fields"]["admin"].as_str() {
                let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
                return addr.port();
            }
        }
        panic!("the binary exited before logging its listener");
    })
    .await
    .expect("the binary logs its listener");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}
