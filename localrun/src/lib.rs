//! ephemerator on one machine: devcluster (with a data directory, so envs survive a restart),
//! ephctrl, ephdash and ephgateway, wired together in one process, with a fake signed-in user
//! (or oauth2-proxy, [`LocalAuth`]) and runners ([`runner`]: the real Tilt when there is one,
//! else a stand-in), so that everything after "Create" really happens. [`start`] returns the
//! running stack and the URL to open.

pub mod git_host;
pub mod runner;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use devcluster::DevCluster;
use ephemerator_core::Config;
use ephemerator_kit::Listeners;
use ephemerator_kit::cluster::ApiHealth;
use ephemerator_kit::flags::DEFAULT_DRAIN_TIMEOUT;
use ephemerator_kit::live_config::{self, LiveConfig};
use ephgateway::auth::AuthMode;

pub use runner::{RunnerKind, RunnerPorts};

/// The host of the local dashboard; env ports are `PORT---ENV.preview.localhost`, which
/// browsers and curl resolve to loopback.
pub const GATEWAY_HOST: &str = "preview.localhost";
/// The signed-in user of local runs.
pub const USER: &str = "dev@example.com";
/// The namespace of the envs.
pub const NAMESPACE: &str = "default";

/// What [`start`] needs.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Where devcluster keeps its objects (envs survive a restart).
    pub data_dir: PathBuf,
    /// The gateway's port on 127.0.0.1 (0 picks one).
    pub port: u16,
    /// The simulated runners' ports.
    pub runner_ports: RunnerPorts,
    /// The repo checkout (for the dashboard's templates and static files).
    pub repo_root: PathBuf,
    /// How long a new runner pod takes to become Ready.
    pub pod_ready_delay: Duration,
    /// The sample git host's port on 127.0.0.1 (the allow-list names it: keep it stable).
    pub git_port: u16,
    /// What runs an env.
    pub runners: RunnerKind,
    /// Who is signed in.
    pub auth: LocalAuth,
}

/// How people sign in to a local run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAuth {
    /// Everyone is [`USER`].
    Fake,
    /// oauth2-proxy at this address checks every request, as in a cluster; its redirect URL
    /// must be the gateway's `/oauth2/callback`.
    OAuth2Proxy(String),
}

impl LocalSettings {
    /// Defaults for `data_dir` in the checkout at `repo_root`: the gateway on 8080, runners on
    /// 20350 (Tilt) and 28000 (the app).
    pub fn new(repo_root: &Path, data_dir: &Path) -> Self {
        LocalSettings {
            data_dir: data_dir.to_path_buf(),
            port: 8080,
            runner_ports: RunnerPorts {
                tilt: 20350,
                web: 28000,
            },
            repo_root: repo_root.to_path_buf(),
            pod_ready_delay: Duration::from_secs(2),
            git_port: 28418,
            runners: RunnerKind::Simulated,
            auth: LocalAuth::Fake,
        }
    }
}

/// The URL of the sample repository served by the local run on `git_port`.
pub fn sample_repo_url(git_port: u16) -> String {
    format!("http://127.0.0.1:{git_port}/{}", git_host::SAMPLE_REPO)
}

/// The config of local runs: the sample repository (branches and Tiltfiles discovered from
/// it), then upstream's seven tilt-dev examples with their default branch and Tiltfile listed
/// (so the form works offline: listed values are used as they are, never discovered), three
/// envs per user, Tilt on the simulated port.
pub fn config(runner_ports: RunnerPorts, git_port: u16) -> anyhow::Result<Config> {
    Config::from_yaml_str(&config_yaml(runner_ports, git_port), "local run config")
        .map_err(|error| anyhow::anyhow!("{error}"))
}

/// The text of [`config`], as the local run writes it to `<data dir>/ephemerator.yaml`.
pub fn config_yaml(runner_ports: RunnerPorts, git_port: u16) -> String {
    let examples = [
        ("tilt-example-html", "0-base/Tiltfile"),
        ("tilt-example-python", "0-base/Tiltfile"),
        ("tilt-example-csharp", "0-base/Tiltfile"),
        ("tilt-example-java", "0-base/Tiltfile"),
        ("tilt-example-go", "0-base/Tiltfile"),
        ("tilt-example-nodejs", "0-base/Tiltfile"),
        ("tilt", "Tiltfile"),
    ];
    let mut repos = format!("    - url: {}\n", sample_repo_url(git_port));
    for (name, path) in examples {
        repos.push_str(&format!(
            "    - url: https://github.com/tilt-dev/{name}\n      branches: [master]\n      \
             paths: [{path}]\n"
        ));
    }
    format!(
        "# The local run's config, written at every start: edit it while the stack runs and\n\
         # every server follows within a second (a broken edit is refused and shown to admins).\n\
         gatewayHost: {GATEWAY_HOST}\nallowlist:\n  repos:\n{repos}maxEnvsPerUser: 3\n\
         runner:\n  tiltPort: {}\n",
        runner_ports.tilt
    )
}

/// The running stack; everything stops when it is dropped.
pub struct LocalStack {
    /// The URL to open: the dashboard through the gateway.
    pub url: String,
    /// The gateway's address.
    pub gateway_addr: SocketAddr,
    /// A kubeconfig for devcluster (`kubectl` works on the local stack).
    pub kubeconfig: PathBuf,
    /// The config file every server follows (written at start).
    pub config_file: PathBuf,
    /// The runners.
    pub runners: runner::Runners,
    cluster: DevCluster,
    gateway: ephgateway::Running,
    dashboard: ephdash::startup::Running,
    controller: ephctrl::Running,
    git_server: tokio::task::JoinHandle<()>,
}

impl LocalStack {
    /// A client of the local cluster.
    pub fn client(&self) -> kube::Client {
        self.cluster.client()
    }

    /// Stops everything: the gateway drains, the dashboard finishes its requests, the
    /// controller its reconciles, devcluster writes its data and closes its port.
    pub async fn stop(self) {
        let LocalStack {
            cluster,
            gateway,
            dashboard,
            controller,
            runners,
            git_server,
            ..
        } = self;
        gateway.stop().await;
        dashboard.stop().await;
        controller.stop().await;
        runners.stop().await;
        git_server.abort();
        let _ = git_server.await;
        cluster.stop().await;
    }
}

/// Starts the whole stack.
pub async fn start(settings: LocalSettings) -> anyhow::Result<LocalStack> {
    let LocalSettings {
        data_dir,
        port,
        runner_ports,
        repo_root,
        pod_ready_delay,
        git_port,
        runners: runner_kind,
        auth,
    } = settings;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // Written at every start (the ports may differ), then followed by every server.
    let config_file = data_dir.join("ephemerator.yaml");
    std::fs::write(&config_file, config_yaml(runner_ports, git_port))
        .with_context(|| format!("writing {}", config_file.display()))?;
    let config = Config::load(&config_file)?;
    let live_config = LiveConfig::watch(&config_file, config.clone(), live_config::CHECK_EVERY);

    let git_root = data_dir.join("git");
    git_host::ensure_sample_repo(&git_root)
        .await
        .context("creating the sample repository")?;
    let git_listener = tokio::net::TcpListener::bind(("127.0.0.1", git_port))
        .await
        .with_context(|| format!("the sample git host's port 127.0.0.1:{git_port} is not free"))?;
    let git_server = tokio::spawn(git_host::serve(git_listener, git_root));

    let cluster = DevCluster::builder()
        .data_dir(data_dir.join("cluster"))
        .pod_ready_delay(pod_ready_delay)
        .start()
        .await
        .context("starting devcluster")?;
    let kubeconfig = data_dir.join("kubeconfig");
    cluster
        .write_kubeconfig(&kubeconfig)
        .context("writing the kubeconfig")?;

    let runners = runner::Runners::start(
        &runner_kind,
        cluster.client(),
        NAMESPACE,
        runner_ports,
        GATEWAY_HOST,
        cluster.container_output(),
        &data_dir.join("runners"),
    )
    .await?;

    let mut ctrl = ephctrl::Settings::new(cluster.client(), NAMESPACE.to_string(), config.clone());
    ctrl.config = live_config.clone();
    ctrl.tilt_url_template = format!("http://127.0.0.1:{}/{{env}}", runner_ports.tilt);
    // The only controller of this data directory, under one name: after a crash the next run
    // leads at once instead of waiting for the last one's Lease to lapse.
    ctrl.lease.identity = "localrun".to_string();
    let controller = ephctrl::start(ctrl, Listeners::local(false)?)?;

    // One key for the gateway and the dashboard of this process.
    let signing_keys = ephemerator_kit::signing::LiveKeys::fixed(
        ephemerator_kit::signing::SigningKeys::random().map_err(anyhow::Error::msg)?,
    );
    let dashboard = ephdash::startup::start(
        ephdash::startup::Settings {
            client: cluster.client(),
            api_health: ApiHealth::default(),
            namespace: NAMESPACE.to_string(),
            config: live_config.clone(),
            identity: match &auth {
                LocalAuth::Fake => ephdash::identity::IdentitySource::Fake(USER.to_string()),
                LocalAuth::OAuth2Proxy(_) => ephdash::identity::IdentitySource::AuthRequest,
            },
            identity_from: ephdash::identity::NameFields::default(),
            csrf: ephdash::csrf::CsrfKey::random().map_err(anyhow::Error::msg)?,
            signing_keys: Some(signing_keys.clone()),
            templates: repo_root.join("templates"),
            assets: repo_root.join("assets"),
            workers: 1,
            discovery: ephdash::discovery::DiscoverySettings::default(),
            shared_rows_max_bytes: ephdash::fragment_cache::DEFAULT_MAX_BYTES,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        },
        Listeners::local(true).context("binding the dashboard")?,
    )
    .context("starting the dashboard")?;

    let listeners = Listeners::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Some(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .with_context(|| format!("the gateway's port 127.0.0.1:{port} is not free"))?;
    let gateway = ephgateway::start(
        ephgateway::Settings {
            auth: match auth {
                LocalAuth::Fake => AuthMode::None,
                LocalAuth::OAuth2Proxy(url) => AuthMode::OAuth2Proxy {
                    url: url.parse().context("the oauth2-proxy URL")?,
                    cookie_name: ephgateway::auth::DEFAULT_COOKIE_NAME.to_string(),
                    cache_ttl: ephgateway::auth::DEFAULT_CACHE_TTL,
                },
            },
            signing_keys: Some(signing_keys),
            // Every runner port is one of the local runners' loopback listeners.
            ..ephgateway::Settings::on_loopback(
                cluster.client(),
                NAMESPACE,
                live_config,
                dashboard.addr,
            )
        },
        listeners,
    )?;
    let gateway_addr = gateway.addr;
    Ok(LocalStack {
        url: format!("http://{GATEWAY_HOST}:{}/", gateway_addr.port()),
        gateway_addr,
        kubeconfig,
        config_file,
        runners,
        cluster,
        gateway,
        dashboard,
        controller,
        git_server,
    })
}
