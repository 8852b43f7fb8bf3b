//! The real runners of local runs: for each env whose runner pod is Ready, what the runner
//! image's tilt-upper does, on this machine: the env's repo cloned at its branch into a
//! directory of its own, the runner's token written where Tilt reuses it, and `tilt up` of the
//! env's Tiltfile, its output the pod's `tilt-upper` output. There is no cluster and no Docker
//! here (Tilt is told of none), so a Tiltfile of `local_resource`s runs (the sample
//! repository's does) and one that needs Kubernetes shows Tilt's own error on its page.
//!
//! Each Tilt listens on a port of its own on 127.0.0.1; the runners' one Tilt port forwards
//! every request to the Tilt of the env it names (WebSockets included), with its `Host`
//! unchanged, so Tilt's origin check sees the env host the browser used. An app listens where
//! its Tiltfile says, on 127.0.0.1; `EPH_APP_PORT` in Tilt's environment is a free port for
//! the env, so the sample Tiltfile serves each env on a port of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use devcluster::workloads::ContainerOutput;
use futures::{Stream, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::oneshot;

use super::{RunnerPorts, RunningEnv, TILT_UPPER, env_of_request};

/// How long a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long Tilt has to stop (and stop its servers) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

type Body = BoxBody<Bytes, hyper::Error>;
/// Each env's Tilt port, by env name.
type Routes = Arc<RwLock<BTreeMap<String, u16>>>;

/// The real runners; they stop when this is dropped.
pub struct TiltRunners {
    routes: Routes,
    /// The pids of the Tilts running, so that a drop without [`TiltRunners::stop`] still lets
    /// each stop its own servers (they run in sessions of their own).
    pids: Arc<Mutex<BTreeSet<u32>>>,
    listener: tokio::task::JoinHandle<()>,
    supervisor: tokio::task::JoinHandle<()>,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

impl TiltRunners {
    /// Whether env `name`'s runner is up.
    pub fn is_running(&self, name: &str) -> bool {
        read(&self.routes).contains_key(name)
    }

    /// Stops every Tilt (each stops the servers it started), then the listener.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let (done, stopped) = oneshot::channel();
            if stop.send(done).is_ok() {
                let _ = stopped.await;
            }
        }
        self.listener.abort();
        let _ = (&mut self.listener).await;
    }
}

impl Drop for TiltRunners {
    fn drop(&mut self) {
        self.listener.abort();
        self.supervisor.abort();
        let pids = self.pids.lock().unwrap_or_else(|p| p.into_inner());
        for pid in pids.iter() {
            terminate(*pid);
        }
    }
}

/// Sends SIGTERM to `pid`, with the shell's own `kill` (every Debian has /bin/sh).
fn terminate(pid: u32) {
    let _ = std::process::Command::new("/bin/sh")
        .args(["-c", "kill -s TERM \"$0\"", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Starts the runners' Tilt port and follows `running`, starting and stopping a Tilt per env.
pub(super) async fn start(
    running: impl Stream<Item = BTreeMap<String, RunningEnv>> + Send + 'static,
    binary: &Path,
    ports: RunnerPorts,
    gateway_host: &str,
    output: ContainerOutput,
    work_dir: &Path,
) -> anyhow::Result<TiltRunners> {
    let listener = TcpListener::bind(("127.0.0.1", ports.tilt))
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "the runners' Tilt port 127.0.0.1:{} is not free: {error}",
                ports.tilt
            )
        })?;
    std::fs::create_dir_all(work_dir)?;
    let routes: Routes = Arc::default();
    let pids: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
    let (stop, stopping) = oneshot::channel();
    let supervisor = tokio::spawn(supervise(
        Box::pin(running),
        Supervisor {
            binary: binary.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            output,
            routes: routes.clone(),
            pids: pids.clone(),
        },
        stopping,
    ));
    let listener = tokio::spawn(serve(
        listener,
        routes.clone(),
        gateway_host.to_ascii_lowercase(),
    ));
    Ok(TiltRunners {
        routes,
        pids,
        listener,
        supervisor,
        stop: Some(stop),
    })
}

/// What every runner needs.
#[derive(Clone)]
struct Supervisor {
    binary: PathBuf,
    work_dir: PathBuf,
    output: ContainerOutput,
    routes: Routes,
    pids: Arc<Mutex<BTreeSet<u32>>>,
}

/// One env's runner: its pod, and how to stop it.
struct Runner {
    pod_uid: String,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Runner {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

async fn supervise(
    mut running: std::pin::Pin<Box<dyn Stream<Item = BTreeMap<String, RunningEnv>> + Send>>,
    supervisor: Supervisor,
    mut stopping: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let mut runners: BTreeMap<String, Runner> = BTreeMap::new();
    let done = loop {
        let envs = tokio::select! {
            done = &mut stopping => break done.ok(),
            next = running.next() => match next {
                Some(envs) => envs,
                None => break None,
            },
        };
        // Gone, or replaced by a newer pod: stopped first (the new one may reuse its port).
        let stale: Vec<String> = runners
            .iter()
            .filter(|(name, runner)| {
                envs.get(*name)
                    .is_none_or(|env| env.pod_uid != runner.pod_uid)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(runner) = runners.remove(&name) {
                write(&supervisor.routes).remove(&name);
                runner.stop().await;
            }
        }
        for (name, env) in envs {
            if runners.contains_key(&name) {
                continue;
            }
            match start_runner(&supervisor, &name, env.clone()) {
                Ok(runner) => {
                    runners.insert(name, runner);
                }
                Err(error) => supervisor.output.append(
                    &env.pod_uid,
                    TILT_UPPER,
                    &format!("cannot start the runner: {error}\n"),
                ),
            }
        }
    };
    for (name, runner) in std::mem::take(&mut runners) {
        write(&supervisor.routes).remove(&name);
        runner.stop().await;
    }
    if let Some(done) = done {
        let _ = done.send(());
    }
}

fn start_runner(supervisor: &Supervisor, name: &str, env: RunningEnv) -> anyhow::Result<Runner> {
    let tilt_port = free_port()?;
    let app_port = free_port()?;
    let dir = supervisor.work_dir.join(&env.pod_uid);
    write(&supervisor.routes).insert(name.to_string(), tilt_port);
    let (stop, stopped) = oneshot::channel();
    let pod_uid = env.pod_uid.clone();
    let done = tokio::spawn(run(
        supervisor.clone(),
        env,
        dir,
        (tilt_port, app_port),
        stopped,
    ));
    Ok(Runner {
        pod_uid,
        stop,
        done,
    })
}

/// One runner from clone to stop; what it does goes to its pod's output.
async fn run(
    supervisor: Supervisor,
    env: RunningEnv,
    dir: PathBuf,
    (tilt_port, app_port): (u16, u16),
    mut stop: oneshot::Receiver<()>,
) {
    let log = |text: &str| {
        supervisor
            .output
            .append(&env.pod_uid, TILT_UPPER, &format!("{text}\n"))
    };
    let _ = std::fs::remove_dir_all(&dir);
    let (home, source) = (dir.join("home"), dir.join("src"));
    if let Err(error) = std::fs::create_dir_all(home.join(".tilt-dev")) {
        log(&format!("cannot make {}: {error}", dir.display()));
        return;
    }
    log(&format!("cloning {} at {}", env.repo, env.branch));
    let mut clone = Command::new("git");
    clone
        .args([
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--branch",
            &env.branch,
            "--",
        ])
        .arg(&env.repo)
        .arg(&source)
        .env("HOME", &home)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let cloned = tokio::select! {
        _ = &mut stop => return remove(&dir),
        cloned = tokio::time::timeout(CLONE_TIMEOUT, clone.output()) => cloned,
    };
    match cloned {
        Ok(Ok(out)) if out.status.success() => {}
        Ok(Ok(out)) => {
            log(&format!(
                "git clone failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            let _ = stop.await;
            return remove(&dir);
        }
        Ok(Err(error)) => {
            log(&format!("git clone did not run: {error}"));
            let _ = stop.await;
            return remove(&dir);
        }
        Err(_) => {
            log(&format!("git clone took over {CLONE_TIMEOUT:?}"));
            let _ = stop.await;
            return remove(&dir);
        }
    }
    // ephctrl asks with this token; Tilt reuses the file.
    if let Err(error) = std::fs::write(home.join(".tilt-dev").join("token"), &env.token) {
        log(&format!("cannot write Tilt's token: {error}"));
        let _ = stop.await;
        return remove(&dir);
    }
    log(&format!("tilt up -f {}", env.path));
    let mut tilt = Command::new(&supervisor.binary);
    tilt.args([
        "up",
        "--host",
        "127.0.0.1",
        "--port",
        &tilt_port.to_string(),
    ])
    .args(["-f", &env.path, "--legacy=false", "--stream"])
    .current_dir(&source)
    .env("HOME", &home)
    .env("TILT_DISABLE_ANALYTICS", "1")
    .env("KUBECONFIG", home.join("no-cluster"))
    .env("EPH_APP_PORT", app_port.to_string())
    .env_remove("KUBERNETES_SERVICE_HOST")
    .env_remove("DOCKER_HOST")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = match tilt.spawn() {
        Ok(child) => child,
        Err(error) => {
            log(&format!("tilt did not start: {error}"));
            let _ = stop.await;
            return remove(&dir);
        }
    };
    let pid = child.id();
    if let Some(pid) = pid {
        lock(&supervisor.pids).insert(pid);
    }
    for output in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (written, uid) = (supervisor.output.clone(), env.pod_uid.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(output).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                written.append(&uid, TILT_UPPER, &format!("{line}\n"));
            }
        });
    }
    tokio::select! {
        exited = child.wait() => {
            log(&format!("tilt exited: {}", exited.map_or_else(|e| e.to_string(), |s| s.to_string())));
            let _ = stop.await;
        }
        _ = &mut stop => {
            // Tilt stops the servers it started (in sessions of their own) on SIGTERM.
            if let Some(pid) = pid {
                terminate(pid);
            }
            if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
    if let Some(pid) = pid {
        lock(&supervisor.pids).remove(&pid);
    }
    remove(&dir);
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn serve(listener: TcpListener, routes: Routes, gateway_host: String) {
    let gateway_host = Arc::new(gateway_host);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (routes, gateway_host) = (routes.clone(), gateway_host.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (routes, gateway_host) = (routes.clone(), gateway_host.clone());
                async move { Ok::<_, Infallible>(forward(&routes, &gateway_host, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Forwards one request to the Tilt of the env it names; an upgrade becomes a tunnel.
async fn forward(
    routes: &Routes,
    gateway_host: &str,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (name, path) = env_of_request(&host, request.uri().path(), gateway_host);
    let Some(port) = read(routes).get(&name).copied() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no runner is up for env {name:?}\n"),
        );
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let Ok(uri) = path_and_query.parse::<Uri>() else {
        return text(StatusCode::BAD_REQUEST, "a path Tilt cannot take\n".into());
    };
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the Tilt of env {name:?} is not up yet\n"),
        );
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(stream)).await
    else {
        return text(StatusCode::BAD_GATEWAY, "Tilt did not answer\n".into());
    };
    tokio::spawn(connection.with_upgrades());
    let upgrading = request
        .headers()
        .contains_key(UPGRADE)
        .then(|| hyper::upgrade::on(&mut request));
    *request.uri_mut() = uri;
    let mut response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(error) => return text(StatusCode::BAD_GATEWAY, format!("Tilt failed: {error}\n")),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client) = upgrading
    {
        let tilt = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let Ok((client, tilt)) = tokio::try_join!(client, tilt) {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(tilt),
                )
                .await;
            }
        });
    }
    response.map(BodyExt::boxed)
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

// Each lock guards a small map swapped in whole; a poisoned one holds a consistent value.
fn read(routes: &Routes) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, u16>> {
    routes.read().unwrap_or_else(|p| p.into_inner())
}

fn write(routes: &Routes) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, u16>> {
    routes.write().unwrap_or_else(|p| p.into_inner())
}

fn lock(pids: &Mutex<BTreeSet<u32>>) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
    pids.lock().unwrap_or_else(|p| p.into_inner())
}
