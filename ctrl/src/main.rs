//! The `ephctrl` binary: flags, logging, the Kubernetes client, then [`ephctrl::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ephctrl::{DEFAULT_CONCURRENCY, DEFAULT_TILT_URL_TEMPLATE, Settings};
use ephemerator_core::duration::parse_flag_duration;
use ephemerator_core::{Config, SecretUrl};
use ephemerator_kit::cluster::{Cluster, connect};
use ephemerator_kit::live_config::{self, LiveConfig};

/// Keeps a runner Deployment, Service and (optionally) Ingress for every env ConfigMap in its
/// namespace, and expires envs.
#[derive(Parser, Debug)]
#[command(name = "ephctrl", version)]
struct Args {
    /// The ephemerator config file (YAML). It is read again when it changes; a version that
    /// does not load is refused and the last good one stays in force.
    #[arg(long, env = "EPH_CONFIG", required_unless_present = "check_config")]
    config: Option<PathBuf>,
    /// Only check this config file, as the servers would load it, and exit: 0 when it loads,
    /// 1 with every problem (file:line:column: field: message) on stderr when it does not.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
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
    /// A file holding the notification webhook URL (a mounted Secret); overrides the config
    /// file's notifications.webhookUrl.
    #[arg(long, env = "EPH_WEBHOOK_URL_FILE", conflicts_with = "webhook_url")]
    webhook_url_file: Option<PathBuf>,
    /// The notification webhook URL (from a Secret through the environment); overrides the
    /// config file's notifications.webhookUrl. Never printed.
    #[arg(long, env = "EPH_WEBHOOK_URL", hide_env_values = true)]
    webhook_url: Option<String>,
    /// Longest time one Kubernetes API request may take (e.g. 30s).
    #[arg(long, env = "EPH_API_TIMEOUT", value_parser = parse_flag_duration, default_value = "30s")]
    api_timeout: Duration,
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
    if let Some(path) = &args.check_config {
        std::process::exit(check_config(path));
    }
    ephemerator_kit::logging::init(args.log_json);

    let path = args.config.clone().context("--config is required")?;
    let config = Config::load(&path)?;
    let webhook_url = webhook_url(&args)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the metrics/health listener on {}", args.listen))?;
    // The bound address (a port 0 in --listen picks a free one).
    let bound = listener.local_addr().context("the listener's address")?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let Cluster {
        client,
        api_health,
        namespace,
    } = connect(args.namespace.clone(), args.api_timeout).await?;

    let mut settings = Settings::new(client, namespace, config.clone());
    settings.config = LiveConfig::watch(path, config, live_config::CHECK_EVERY);
    settings.api_health = api_health;
    settings.listener = Some(listener);
    settings.tilt_url_template = args.tilt_url_template;
    settings.concurrency = args.concurrency;
    if webhook_url.is_some() {
        settings.webhook_url = webhook_url;
    }
    let stopped = ephemerator_kit::shutdown::listen();
    tokio::select! {
        result = ephctrl::run(settings) => result?,
        () = stopped => tracing::info!("shutting down"),
    }
    Ok(())
}

/// `--check-config`: the exit code, after saying what is wrong (or that all is well).
fn check_config(path: &std::path::Path) -> i32 {
    match Config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} repos allowed, gateway host {})",
                path.display(),
                config.allowed_repo_urls().len(),
                config.gateway_host
            );
            0
        }
        Err(error) => {
            eprintln!("{error}");
            1
        }
    }
}

/// The webhook URL from a Secret (file or environment), if one is given.
fn webhook_url(args: &Args) -> anyhow::Result<Option<SecretUrl>> {
    let (text, source) = match (&args.webhook_url_file, &args.webhook_url) {
        (Some(path), _) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the webhook URL file {}", path.display()))?,
            format!("{}", path.display()),
        ),
        (None, Some(url)) => (url.clone(), "--webhook-url / EPH_WEBHOOK_URL".to_string()),
        (None, None) => return Ok(None),
    };
    SecretUrl::parse(&text)
        .map(Some)
        .map_err(|problem| anyhow::anyhow!("{source}: the webhook URL {problem}"))
}
