//! The runners of local runs: what a runner pod does in a cluster, for every env whose runner
//! pod devcluster reports Ready (devcluster's kubelet runs no containers).
//!
//! - [`RunnerKind::Tilt`]: the real Tilt ([`tilt`]): the env's repo cloned at its branch and
//!   `tilt up` of its Tiltfile, with no cluster (a Tiltfile of `local_resource`s runs; one
//!   that needs Kubernetes or Docker shows Tilt's own error).
//! - [`RunnerKind::Simulated`]: a stand-in ([`simulated`]) that answers as a runner's Tilt
//!   would, with one app page per env.
//!
//! Either way one listener on loopback, Tilt's port (the config's `runner.tiltPort`), answers
//! for every env: a request names its env by its `Host` (`PORT---ENV.<gatewayHost>`, as the
//! gateway forwards it) or, from ephctrl, by a path prefix `/ENV` (ephctrl's Tilt URL template
//! is `http://127.0.0.1:TILT/{env}`). What a runner prints goes to its pod's `tilt-upper`
//! output, so the dashboard's setup logs read as they would in a cluster.

pub mod simulated;
pub mod tilt;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ephemerator_core::hosts::parse_env_port_host;
use ephemerator_core::labels::OWNER_NAME_LABEL;
use ephemerator_kit::cluster::reflected_watch;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{reflector, watcher};

/// The loopback ports of the runners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerPorts {
    /// Tilt's web port (the config's `runner.tiltPort`).
    pub tilt: u16,
    /// The port of the simulated runners' app, published as `web` (the real Tilt's apps
    /// listen where their Tiltfiles say).
    pub web: u16,
}

/// Which runners a local run has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerKind {
    /// The stand-in.
    Simulated,
    /// The real Tilt, this binary.
    Tilt(PathBuf),
}

impl RunnerKind {
    /// The real Tilt if there is one: `tilt` on the `PATH`, else the one
    /// `scripts/build-testprograms.sh` builds into `target/testprograms/`; else the stand-in.
    pub fn detect(repo_root: &Path) -> RunnerKind {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("tilt"))
                .find(|candidate| candidate.is_file())
        });
        let built = repo_root.join("target/testprograms/tilt");
        match on_path.or_else(|| built.is_file().then_some(built)) {
            Some(binary) => RunnerKind::Tilt(binary),
            None => RunnerKind::Simulated,
        }
    }

    /// For the start-up message.
    pub fn describe(&self) -> String {
        match self {
            RunnerKind::Simulated => "simulated runners (no Tilt found)".to_string(),
            RunnerKind::Tilt(binary) => format!("the real Tilt at {}", binary.display()),
        }
    }
}

/// The runner container whose environment names the env's spec.
const TILT_UPPER: &str = "tilt-upper";

/// What a running env's runner was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningEnv {
    /// The runner pod's uid.
    pub pod_uid: String,
    pub repo: String,
    pub branch: String,
    pub path: String,
    /// The Tilt token ephctrl gave the runner.
    pub token: String,
}

/// The env of a Ready, not terminating runner pod, from its labels and tilt-upper's
/// environment.
fn running_env(pod: &Pod) -> Option<(String, RunningEnv)> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    let name = pod.metadata.labels.as_ref()?.get(OWNER_NAME_LABEL)?.clone();
    let container = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == TILT_UPPER)?;
    let var = |key: &str| {
        container
            .env
            .as_ref()?
            .iter()
            .find(|v| v.name == key)?
            .value
            .clone()
    };
    Some((
        name,
        RunningEnv {
            pod_uid: pod.metadata.uid.clone()?,
            repo: var("TILT_UPPER_REPO")?,
            branch: var("TILT_UPPER_BRANCH")?,
            path: var("TILT_UPPER_PATH")?,
            token: var("TILT_UPPER_TOKEN").unwrap_or_default(),
        },
    ))
}

/// The envs whose runner pods are Ready, by env name, after every change of the runner pods
/// of `namespace` (the newest pod of an env wins while a rollout replaces it).
fn running_envs(
    client: kube::Client,
    namespace: &str,
) -> impl Stream<Item = BTreeMap<String, RunningEnv>> + Send + 'static {
    let (store, writer) = reflector::store::<Pod>();
    reflected_watch(
        Api::<Pod>::namespaced(client, namespace),
        watcher::Config::default().labels("app.kubernetes.io/name=ephrunner"),
        writer,
        |pod| pod.metadata.managed_fields = None,
    )
    .map(move |_| {
        let mut pods = store.state();
        pods.sort_by_key(|pod| pod.metadata.creation_timestamp.clone());
        pods.iter().filter_map(|pod| running_env(pod)).collect()
    })
}

/// The env a request to Tilt's port is for, and the path it asks for there: from the gateway's
/// `Host`, else from ephctrl's path prefix.
fn env_of_request(host: &str, path: &str, gateway_host: &str) -> (String, String) {
    match parse_env_port_host(host, gateway_host) {
        Some(env_host) => (env_host.env_name.to_string(), path.to_string()),
        None => {
            let trimmed = path.trim_start_matches('/');
            let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
            (first.to_string(), format!("/{rest}"))
        }
    }
}

/// The runners; they stop when this is dropped.
pub struct Runners {
    inner: Inner,
}

enum Inner {
    Simulated(simulated::SimulatedRunners),
    Tilt(tilt::TiltRunners),
}

impl Runners {
    /// Starts the runners of `kind`: Tilt's listener on `ports.tilt` (and the simulated app's
    /// on `ports.web`), following the runner pods of `namespace` and writing what the runners
    /// print to `output`. Real runners keep their checkouts under `work_dir`.
    pub async fn start(
        kind: &RunnerKind,
        client: kube::Client,
        namespace: &str,
        ports: RunnerPorts,
        gateway_host: &str,
        output: devcluster::workloads::ContainerOutput,
        work_dir: &Path,
    ) -> anyhow::Result<Runners> {
        let envs = running_envs(client, namespace);
        let inner = match kind {
            RunnerKind::Simulated => {
                Inner::Simulated(simulated::start(envs, ports, gateway_host, output).await?)
            }
            RunnerKind::Tilt(binary) => {
                Inner::Tilt(tilt::start(envs, binary, ports, gateway_host, output, work_dir).await?)
            }
        };
        Ok(Runners { inner })
    }

    /// Whether env `name`'s runner is up.
    pub fn is_running(&self, name: &str) -> bool {
        match &self.inner {
            Inner::Simulated(runners) => runners.is_running(name),
            Inner::Tilt(runners) => runners.is_running(name),
        }
    }

    /// Stops the listeners and every runner, and returns once their ports are closed.
    pub async fn stop(self) {
        match self.inner {
            Inner::Simulated(runners) => runners.stop().await,
            Inner::Tilt(runners) => runners.stop().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_their_env_by_host_or_path() {
        assert_eq!(
            env_of_request(
                "20350---nicks.preview.localhost:8080",
                "/ws/view",
                "preview.localhost"
            ),
            ("nicks".to_string(), "/ws/view".to_string())
        );
        assert_eq!(
            env_of_request("127.0.0.1:20350", "/nicks/api/view", "preview.localhost"),
            ("nicks".to_string(), "/api/view".to_string())
        );
        assert_eq!(
            env_of_request("127.0.0.1:20350", "/nicks", "preview.localhost"),
            ("nicks".to_string(), "/".to_string())
        );
    }
}
