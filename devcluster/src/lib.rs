//! devcluster: an in-memory Kubernetes API server, a faithful subset of the real API for
//! ephemerator's tests and local run.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cluster = devcluster::DevCluster::start().await?;
//! let client = cluster.client(); // a kube::Client, default namespace `default`
//! # Ok(()) }
//! ```

pub mod api;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod field_validation;
pub mod gc;
pub mod measure;
pub mod openapi;
pub mod patch;
pub mod persist;
pub mod representation;
pub mod resources;
pub mod scale;
pub mod selectors;
pub mod serviceaccounts;
pub mod store;
pub mod table;
pub mod watch;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpServer, ResponseError, web};
use anyhow::Context;

use crate::error::ApiError;
use crate::faults::Faults;
use crate::store::{Store, StoreSettings};
use crate::watch::WatchSettings;

/// Options for [`DevCluster`]; see [`DevCluster::builder`].
#[derive(Debug, Clone)]
pub struct DevClusterBuilder {
    data_dir: Option<PathBuf>,
    listen: SocketAddr,
    watch_history_size: usize,
    bookmark_interval: Duration,
    workers: usize,
    pod_ready_delay: Duration,
}

impl Default for DevClusterBuilder {
    fn default() -> Self {
        DevClusterBuilder {
            data_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            watch_history_size: StoreSettings::default().history_size,
            bookmark_interval: Duration::from_secs(30),
            workers: 2,
            pod_ready_delay: workloads::WorkloadSettings::default().pod_ready_delay,
        }
    }
}

impl DevClusterBuilder {
    /// Keep state in `dir` (loaded at start, written shortly after every change).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Address to listen on (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Changes kept for watch resumption; resuming from older versions gets 410 Expired.
    pub fn watch_history_size(mut self, size: usize) -> Self {
        self.watch_history_size = size;
        self
    }

    /// How often watches that allow bookmarks get one.
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// HTTP worker threads (default 2).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// How long simulated pods take to become ready (default 1s; running from half of it).
    pub fn pod_ready_delay(mut self, delay: Duration) -> Self {
        self.pod_ready_delay = delay;
        self
    }

    pub async fn start(self) -> anyhow::Result<DevCluster> {
        let settings = StoreSettings {
            history_size: self.watch_history_size,
        };
        let store = Store::empty(settings);
        if let Some(dir) = &self.data_dir {
            persist::load(dir, &store)?;
        }
        store.ensure_system_namespaces();
        let faults = Faults::default();
        let output = workloads::ContainerOutput::default();
        let api_state = api::ApiState {
            store: store.clone(),
            faults: faults.clone(),
            watch: WatchSettings {
                bookmark_interval: self.bookmark_interval,
            },
            output: output.clone(),
        };
        let mut tasks = vec![
            gc::spawn(store.clone()),
            serviceaccounts::spawn(store.clone()),
        ];
        tasks.push(workloads::spawn(
            store.clone(),
            workloads::WorkloadSettings {
                pod_ready_delay: self.pod_ready_delay,
            },
        ));
        let persist = self.data_dir.as_ref().map(|dir| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (tx, persist::spawn_writer(dir.clone(), store.clone(), rx))
        });
        let (app_store, app_faults) = (store.clone(), faults.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(api_state.clone()))
                .app_data(web::Data::new(app_store.clone()))
                .app_data(web::Data::new(app_faults.clone()))
                .wrap(actix_web::middleware::from_fn(faults::middleware))
                .configure(discovery::configure)
                .configure(openapi::configure)
                .configure(faults::configure)
                .configure(api::configure)
                .default_service(web::to(|req: HttpRequest| async move {
                    ApiError::unknown_path(req.path()).error_response()
                }))
        })
        .workers(self.workers)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(self.listen)
        .with_context(|| format!("binding {}", self.listen))?;
        let addr = *server
            .addrs()
            .first()
            .context("the server is bound to no address")?;
        let server = server.run();
        let handle = server.handle();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "devcluster server stopped");
            }
        }));
        let url = format!("http://{addr}");
        tracing::info!(%url, "devcluster serving");
        Ok(DevCluster {
            url,
            addr,
            store,
            faults,
            output,
            server: handle,
            persist,
            tasks,
        })
    }
}

/// A running devcluster. Dropping it shuts the server down; [`DevCluster::stop`] also waits
/// for the last state write.
pub struct DevCluster {
    url: String,
    addr: SocketAddr,
    store: Store,
    faults: Faults,
    output: workloads::ContainerOutput,
    server: actix_web::dev::ServerHandle,
    persist: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DevCluster {
    /// Starts a devcluster on a free port of 127.0.0.1 with default settings.
    pub async fn start() -> anyhow::Result<DevCluster> {
        DevClusterBuilder::default().start().await
    }

    pub fn builder() -> DevClusterBuilder {
        DevClusterBuilder::default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this server, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        let url = self.url.parse().expect("the server URL is a valid URI");
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".to_string();
        kube::Client::try_from(config).expect("a client for a plain-HTTP URL needs no TLS setup")
    }

    /// Writes a kubeconfig for this server that kubectl and kube-rs accept.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, kubeconfig_yaml(&self.url))
            .with_context(|| format!("writing kubeconfig {}", path.display()))
    }

    /// The store, for in-process users (no HTTP).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Ends every open watch; clients see the stream close and re-watch.
    pub fn drop_watches(&self) {
        self.faults.drop_watches();
    }

    /// Forgets the change history: resuming a watch or list from before now gets 410.
    pub fn compact_history(&self) {
        self.store.compact_history();
    }

    /// Fails the next `count` requests with `status` (500, 429 with Retry-After, ...).
    pub fn fail_next_requests(&self, count: u32, status: u16) {
        self.faults.fail_next_requests(count, status);
    }

    /// Makes container `container` of pod `pod` crash and restart, as a kubelet reports it:
    /// `restartCount` one higher, the terminated run in `lastState`, its output behind
    /// `pods/log?previous=true`.
    pub fn restart_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> anyhow::Result<()> {
        let pods = resources::lookup("", "v1", "pods").context("the pods resource")?;
        let current = self.store.get(pods, Some(namespace), pod)?;
        let restarted =
            workloads::restart_container(&current, container, &store::ids::now_rfc3339())
                .with_context(|| format!("pod {pod} has no running container {container}"))?;
        self.store
            .update_status(pods, Some(namespace), restarted, workloads::KUBELET_MANAGER)?;
        Ok(())
    }

    /// Writes `text` (lines ending in newlines) as output of `container` in the pod whose uid is
    /// `pod_uid`, after the simulated kubelet's lines in its `pods/log`: in-process programs
    /// standing in for a container (a local run's simulated runner) print there. Kept in
    /// memory only, and per pod uid, so a new pod starts with empty output.
    pub fn write_container_output(&self, pod_uid: &str, container: &str, text: &str) {
        self.output.append(pod_uid, container, text);
    }

    /// A handle to [`DevCluster::write_container_output`] that can be moved into tasks.
    pub fn container_output(&self) -> workloads::ContainerOutput {
        self.output.clone()
    }

    /// Delays every request by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.faults.set_latency(latency);
    }

    /// Stops serving and writes the state one last time (with a data directory).
    pub async fn stop(mut self) {
        self.server.stop(false).await;
        if let Some((tx, writer)) = self.persist.take() {
            let _ = tx.send(());
            let _ = writer.await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        // Sends the stop command now; the returned future only reports completion.
        drop(self.server.stop(false));
        if let Some((tx, _)) = self.persist.take() {
            let _ = tx.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A kubeconfig pointing at `url` with a credential-less user and namespace `default`.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: devcluster
  cluster:
    server: {url}
users:
- name: devcluster
  user: {{}}
contexts:
- name: devcluster
  context:
    cluster: devcluster
    user: devcluster
    namespace: default
current-context: devcluster
preferences: {{}}
"
    )
}
