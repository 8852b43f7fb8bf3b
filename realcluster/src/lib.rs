//! The real Kubernetes control plane for tests: `testcluster/`'s etcd, kube-apiserver (RBAC
//! authorization, as on a real cluster), kube-controller-manager and kube-scheduler, plus kwok
//! as the kubelet of one fake node ([`NODE`]) so that pods get scheduled and become Ready. Each
//! runs as its own process on free loopback ports with its data in a temporary directory.
//! [`RealCluster::start`] builds the binary when needed (Go, cached by `go build`), makes the
//! certificates and service-account keys, starts the processes, waits for `/readyz` and for the
//! node to be Ready; everything stops on drop.

// Test support: a failed unwrap is a failed test (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rcgen::{CertificateParams, DnType, IsCa, KeyPair, SanType};
use tokio::process::{Child, Command};

/// The Kubernetes version testcluster pins.
pub const VERSION: &str = "v1.36.3";
/// Longest wait for the control plane to answer `/readyz`, and for the node to be Ready.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// The fake node kwok runs pods on.
pub const NODE: &str = "kwok-node";
/// The annotation kwok selects its nodes by.
const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// A running control plane.
pub struct RealCluster {
    dir: tempfile::TempDir,
    binary: PathBuf,
    etcd: Child,
    apiserver: Child,
    controller_manager: Child,
    scheduler: Child,
    kwok: Child,
    apiserver_port: u16,
    etcd_port: u16,
    kubeconfig: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    // Not from port 0's range, the kernel's ephemeral ports: a client dialing such a port before
    // its server listens can be connected to itself (TCP self-connect), as the API server once
    // was on etcd's port, and then never reached its storage.
    Ok(ephemerator_testkit::free_port())
}

/// `target/testcluster`, built by `scripts/build-testcluster.sh`. The test command runs the
/// script before the tests; here it runs only when the binary is missing, because rebuilding
/// over a binary another test is running fails. After changing `testcluster/`, run the script.
pub async fn build_binary() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target").join("testcluster");
    if binary.exists() {
        return Ok(binary);
    }
    let status = Command::new("bash")
        .arg(root.join("scripts/build-testcluster.sh"))
        .status()
        .await
        .context("running scripts/build-testcluster.sh")?;
    if !status.success() {
        bail!("building testcluster/ failed: {status}");
    }
    Ok(binary)
}

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    admin_cert: String,
    admin_key: String,
    sa_private: String,
    sa_public: String,
}

fn pki() -> anyhow::Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "realcluster-ca");
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    server_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    server_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let server = server_params.signed_by(&server_key, &issuer)?;

    let admin_key = KeyPair::generate()?;
    let mut admin_params = CertificateParams::new(Vec::<String>::new())?;
    admin_params
        .distinguished_name
        .push(DnType::CommonName, "admin");
    admin_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    let admin = admin_params.signed_by(&admin_key, &issuer)?;

    let sa = KeyPair::generate()?;
    Ok(Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        admin_cert: admin.pem(),
        admin_key: admin_key.serialize_pem(),
        sa_private: sa.serialize_pem(),
        sa_public: sa.public_key_pem(),
    })
}

impl RealCluster {
    /// Builds (if needed) and starts the control plane; ready to serve when it returns.
    pub async fn start() -> anyhow::Result<RealCluster> {
        let binary = build_binary().await?;
        let dir = tempfile::tempdir()?;
        let pki = pki()?;
        let file = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        file("ca.crt", &pki.ca)?;
        file("apiserver.crt", &pki.server_cert)?;
        file("apiserver.key", &pki.server_key)?;
        file("sa.key", &pki.sa_private)?;
        file("sa.pub", &pki.sa_public)?;
        let (etcd_port, apiserver_port) = (free_port()?, free_port()?);
        let kubeconfig = file(
            "admin.kubeconfig",
            &kubeconfig_yaml(apiserver_port, &pki.ca, &pki.admin_cert, &pki.admin_key),
        )?;
        let etcd = spawn_etcd(&binary, dir.path(), etcd_port)?;
        let apiserver = spawn_apiserver(&binary, dir.path(), etcd_port, apiserver_port)?;
        let controller_manager = Command::new(&binary)
            .arg("kube-controller-manager")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(["--leader-elect=false", "--secure-port=0"])
            .arg("--controllers=garbage-collector-controller,node-lifecycle-controller,deployment-controller,replicaset-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller")
            .arg(format!("--service-account-private-key-file={}", dir.path().join("sa.key").display()))
            .arg(format!("--root-ca-file={}", dir.path().join("ca.crt").display()))
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "kube-controller-manager.log")?)
            .kill_on_drop(true)
            .spawn()
            .context("starting kube-controller-manager")?;
        let scheduler = Command::new(&binary)
            .arg("kube-scheduler")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(["--leader-elect=false", "--secure-port=0"])
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "kube-scheduler.log")?)
            .kill_on_drop(true)
            .spawn()
            .context("starting kube-scheduler")?;
        let kwok = Command::new(&binary)
            .arg("kwok")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake"
            ))
            .arg("--node-lease-duration-seconds=40")
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "kwok.log")?)
            .kill_on_drop(true)
            .spawn()
            .context("starting kwok")?;
        let cluster = RealCluster {
            dir,
            binary,
            etcd,
            apiserver,
            controller_manager,
            scheduler,
            kwok,
            apiserver_port,
            etcd_port,
            kubeconfig,
        };
        cluster.wait_ready().await?;
        cluster.add_node().await?;
        Ok(cluster)
    }

    /// [`RealCluster::start`], then one overlay of `deploy/` applied (its namespace,
    /// ServiceAccounts, Roles and RoleBindings), as the servers' tests need.
    pub async fn start_with_overlay(overlay: &str) -> anyhow::Result<RealCluster> {
        let cluster = RealCluster::start().await?;
        cluster
            .apply_overlay(overlay)
            .await
            .with_context(|| format!("applying deploy/overlays/{overlay}"))?;
        Ok(cluster)
    }

    /// A kubeconfig of the cluster's admin (`system:masters`), for kubectl.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client as the cluster's admin.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let yaml = std::fs::read_to_string(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::from_yaml(&yaml)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A client authenticated as ServiceAccount `namespace/name`; see [`RealCluster::config_as`].
    pub async fn client_as(&self, namespace: &str, name: &str) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(
            self.config_as(namespace, name).await?,
        )?)
    }

    /// The client configuration of ServiceAccount `namespace/name`, with a token from the
    /// TokenRequest API, as a pod running under that account has: the real authorizer judges
    /// its requests by the account's RoleBindings alone.
    pub async fn config_as(&self, namespace: &str, name: &str) -> anyhow::Result<kube::Config> {
        let token = self.token_of(namespace, name).await?;
        let admin = Kubeconfig::from_yaml(&std::fs::read_to_string(&self.kubeconfig)?)?;
        let mut config =
            kube::Config::from_custom_kubeconfig(admin, &KubeConfigOptions::default()).await?;
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };
        config.default_namespace = namespace.to_string();
        Ok(config)
    }

    /// Writes to `path` a kubeconfig of ServiceAccount `namespace/name` (see
    /// [`RealCluster::config_as`]), its namespace the account's, for a server run as a process.
    pub async fn kubeconfig_as(
        &self,
        namespace: &str,
        name: &str,
        path: &Path,
    ) -> anyhow::Result<()> {
        let token = self.token_of(namespace, name).await?;
        let mut kubeconfig = Kubeconfig::from_yaml(&std::fs::read_to_string(&self.kubeconfig)?)?;
        for user in &mut kubeconfig.auth_infos {
            user.auth_info = Some(kube::config::AuthInfo {
                token: Some(token.clone().into()),
                ..Default::default()
            });
        }
        for context in &mut kubeconfig.contexts {
            if let Some(context) = context.context.as_mut() {
                context.namespace = Some(namespace.to_string());
            }
        }
        // JSON is YAML: every kubeconfig reader takes it.
        std::fs::write(path, serde_json::to_string(&kubeconfig)?)?;
        Ok(())
    }

    /// A token of ServiceAccount `namespace/name` from the TokenRequest API, valid for an hour.
    async fn token_of(&self, namespace: &str, name: &str) -> anyhow::Result<String> {
        let accounts = kube::Api::<ServiceAccount>::namespaced(self.client().await?, namespace);
        let request: TokenRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        }))?;
        let issued: TokenRequest = accounts
            .create_subresource("token", name, &kube::api::PostParams::default(), &request)
            .await
            .with_context(|| format!("a token for ServiceAccount {namespace}/{name}"))?;
        issued
            .status
            .map(|status| status.token)
            .context("the TokenRequest came back without a token")
    }

    /// Runs kubectl as the cluster's admin and returns its output, or fails with it.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let home = tempfile::tempdir()?;
        let run = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", home.path())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .with_context(|| format!("kubectl {args:?} took over two minutes"))?
            .context("running kubectl")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("kubectl {args:?} failed: {text}");
        }
        Ok(text)
    }

    /// Applies one overlay of `deploy/` (`dev`, `prod`, …) server-side, as an operator would.
    pub async fn apply_overlay(&self, overlay: &str) -> anyhow::Result<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/overlays")
            .join(overlay);
        self.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            &dir.to_string_lossy(),
        ])
        .await
    }

    /// Stops the API server (etcd keeps the data); [`RealCluster::start_apiserver`] brings it
    /// back on the same port.
    pub async fn stop_apiserver(&mut self) -> anyhow::Result<()> {
        self.apiserver.kill().await?;
        Ok(())
    }

    /// Starts the API server again after [`RealCluster::stop_apiserver`], and waits until it
    /// is ready.
    pub async fn start_apiserver(&mut self) -> anyhow::Result<()> {
        self.apiserver = spawn_apiserver(
            &self.binary,
            self.dir.path(),
            self.etcd_port,
            self.apiserver_port,
        )?;
        self.wait_ready().await
    }

    /// Stops the API server and starts it again on the same port and data.
    pub async fn restart_apiserver(&mut self) -> anyhow::Result<()> {
        self.stop_apiserver().await?;
        self.start_apiserver().await
    }

    /// Registers the fake node and waits until kwok reports it Ready.
    async fn add_node(&self) -> anyhow::Result<()> {
        let nodes = kube::Api::<Node>::all(self.client().await?);
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": NODE,
                "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "type": "kwok"},
            },
            "status": {
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }))?;
        nodes
            .create(&kube::api::PostParams::default(), &node)
            .await
            .context("registering the fake node")?;
        let started = Instant::now();
        loop {
            let node = nodes.get(NODE).await?;
            let ready = node
                .status
                .and_then(|status| status.conditions)
                .unwrap_or_default()
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True");
            if ready {
                return Ok(());
            }
            if started.elapsed() > READY_DEADLINE {
                bail!(
                    "kwok did not make node {NODE} Ready within {READY_DEADLINE:?}; its log ends:\n{}",
                    self.log_tail("kwok.log")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where each process writes its log (`etcd.log`, `kube-apiserver.log`, …).
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of one process's log, for error messages.
    pub fn log_tail(&self, name: &str) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = self.client().await?;
        let started = Instant::now();
        loop {
            let request = http::Request::get("/readyz").body(Vec::new())?;
            if let Ok(text) = client.request_text(request).await
                && text.trim() == "ok"
            {
                return Ok(());
            }
            if started.elapsed() > READY_DEADLINE {
                bail!(
                    "the API server was not ready within {READY_DEADLINE:?}; its log ends:\n{}",
                    self.log_tail("kube-apiserver.log")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        for child in [
            &mut self.kwok,
            &mut self.scheduler,
            &mut self.controller_manager,
            &mut self.apiserver,
            &mut self.etcd,
        ] {
            let _ = child.start_kill();
        }
    }
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    Ok(std::fs::File::create(dir.join(name))?)
}

fn spawn_etcd(binary: &Path, dir: &Path, port: u16) -> anyhow::Result<Child> {
    let peer = free_port()?;
    Command::new(binary)
        .arg("etcd")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls=http://127.0.0.1:{port}"))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{port}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
        .arg("--unsafe-no-fsync")
        .stdout(Stdio::null())
        .stderr(log_file(dir, "etcd.log")?)
        .kill_on_drop(true)
        .spawn()
        .context("starting etcd")
}

fn spawn_apiserver(binary: &Path, dir: &Path, etcd: u16, port: u16) -> anyhow::Result<Child> {
    let path = |name: &str| dir.join(name).display().to_string();
    Command::new(binary)
        .arg("kube-apiserver")
        .arg(format!("--etcd-servers=http://127.0.0.1:{etcd}"))
        .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
        .arg(format!("--secure-port={port}"))
        .arg(format!("--tls-cert-file={}", path("apiserver.crt")))
        .arg(format!("--tls-private-key-file={}", path("apiserver.key")))
        .arg(format!("--client-ca-file={}", path("ca.crt")))
        .arg("--service-account-issuer=https://kubernetes.default.svc")
        .arg(format!("--service-account-key-file={}", path("sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            path("sa.key")
        ))
        .args([
            "--service-cluster-ip-range=10.96.0.0/12",
            "--authorization-mode=RBAC",
        ])
        .arg("--allow-privileged=true")
        .stdout(Stdio::null())
        .stderr(log_file(dir, "kube-apiserver.log")?)
        .kill_on_drop(true)
        .spawn()
        .context("starting kube-apiserver")
}

fn kubeconfig_yaml(port: u16, ca: &str, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: realcluster\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: realcluster\n  context:\n    cluster: realcluster\n    user: admin\n    namespace: default\ncurrent-context: realcluster\n",
        BASE64.encode(ca),
        BASE64.encode(cert),
        BASE64.encode(key)
    )
}
