//! The `ephctrl` binary: flags, logging, the Kubernetes client, then [`ephctrl::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ephctrl::{DEFAULT_CONCURRENCY, DEFAULT_TILT_URL_TEMPLATE, Settings};
use ephemerator_core::Config;
use tracing_subscriber::EnvFilter;

/// Keeps a runner Deployment, Service and (optionally) Ingress for every env ConfigMap in its
/// namespace, and expires envs.
#[derive(Parser, Debug)]
#[command(name = "ephctrl", version)]
struct Args {
    /// The ephemerator config file (YAML).
    #[arg(long, env = "EPH_CONFIG")]
    config: PathBuf,
    /// Namespace of the envs; default: the pod's namespace in-cluster, else the kubeconfig's.
    #[arg(long, env = "EPH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz listener.
    #[arg(long, env = "EPH_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Where the controller reaches each env's Tilt; {env}, {namespace} and {port} are filled
    /// in. Override for a local run outside the cluster.
    #[arg(long, env = "EPH_TILT_URL_TEMPLATE", default_value = DEFAULT_TILT_URL_TEMPLATE)]
    tilt_url_template: String,
    /// Most reconciles at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

// One thread: kube's Controller runs every reconcile (and parses every watch event) on one
// task anyway, and with one thread glibc keeps one malloc arena instead of one per worker,
// whose fragmentation cost ~40 MiB after converging 10,000 envs (170 -> 128 MiB RSS).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let config = Config::load(&args.config)?;
    // In-cluster, else KUBECONFIG / ~/.kube/config: the standard kube-rs inference.
    let kube_config = kube::Config::infer()
        .await
        .context("finding the cluster (in-cluster or kubeconfig)")?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| kube_config.default_namespace.clone());
    let client = kube::Client::try_from(kube_config).context("building the Kubernetes client")?;

    let mut settings = Settings::new(client, namespace, config);
    settings.listen = Some(args.listen);
    settings.tilt_url_template = args.tilt_url_template;
    settings.concurrency = args.concurrency;
    tokio::select! {
        result = ephctrl::run(settings) => result?,
        () = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
