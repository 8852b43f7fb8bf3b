//! The `ephctrl` binary: flags, boot, start, wait for SIGTERM, stop — as every server's `main`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ephctrl::leader::{DEFAULT_LEASE_NAME, LeaseSettings, LeaseTimings};
use ephctrl::{DEFAULT_CONCURRENCY, DEFAULT_TILT_URL_TEMPLATE, Settings};
use ephemerator_core::SecretUrl;
use ephemerator_core::duration::parse_flag_duration;
use ephemerator_kit::{Boot, CommonFlags, LiveConfig, boot};

/// Keeps a runner Deployment, Service and (optionally) Ingress for every env ConfigMap in its
/// namespace, and expires envs.
#[derive(Parser, Debug)]
#[command(name = "ephctrl", version)]
struct Args {
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
    /// Most reconciles at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// The Lease (in the namespace) through which one of several replicas leads.
    #[arg(long, env = "EPH_LEASE_NAME", default_value = DEFAULT_LEASE_NAME)]
    lease_name: String,
    /// Who this replica is in the Lease: the pod's name (from the downward API), to which a
    /// random suffix is added so restarts differ. Default: the host name.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// How long the Lease holds without renewal before a standby takes over (whole seconds).
    #[arg(long, value_parser = parse_flag_duration, default_value = "15s")]
    lease_duration: Duration,
    /// How long the leader keeps acting after its last renewal that landed; less than
    /// --lease-duration.
    #[arg(long, value_parser = parse_flag_duration, default_value = "10s")]
    lease_renew_deadline: Duration,
    /// How often the leader renews the Lease and a standby looks at it.
    #[arg(long, value_parser = parse_flag_duration, default_value = "2s")]
    lease_retry_period: Duration,
    /// The flags every server has (kept last: their heading applies to what follows).
    #[command(flatten)]
    common: CommonFlags,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    boot::check_config_and_exit(&args.common);
    // One thread (as every server): kube's Controller runs every reconcile (and parses every
    // watch event) on one task anyway, and with one thread glibc keeps one malloc arena instead
    // of one per worker, whose fragmentation cost ~40 MiB after converging 10,000 envs
    // (170 -> 128 MiB RSS).
    boot::block_on(async {
        let Boot { config, listeners } = boot::boot(&args.common, None)?;
        let settings = settings(args, config).await?;
        let stopped = ephemerator_kit::shutdown::listen();
        let running = ephctrl::start(settings, listeners)?;
        tracing::info!(admin = %running.admin_addr, "controlling envs");
        stopped.await;
        tracing::info!("shutting down: finishing reconciles in flight");
        running.stop().await;
        Ok(())
    })
}

/// The controller's settings from its flags, then the cluster.
async fn settings(args: Args, config: LiveConfig) -> anyhow::Result<Settings> {
    let timings = LeaseTimings {
        lease_duration: args.lease_duration,
        renew_deadline: args.lease_renew_deadline,
        retry_period: args.lease_retry_period,
    };
    timings.check().map_err(anyhow::Error::msg)?;
    let who = match &args.pod_name {
        Some(name) => name.clone(),
        None => host_name(),
    };
    let lease = LeaseSettings {
        name: args.lease_name.clone(),
        identity: ephctrl::leader::identity(&who),
        timings,
    };
    let webhook_url = match webhook_url(&args)? {
        Some(url) => Some(url),
        None => config.current().notifications.webhook_url.clone(),
    };
    // Last: every flag above is checked without a cluster.
    let cluster = boot::connect(&args.common).await?;
    Ok(Settings {
        client: cluster.client,
        api_health: cluster.api_health,
        namespace: cluster.namespace,
        config,
        webhook_url,
        tilt_url_template: args.tilt_url_template,
        concurrency: args.concurrency,
        tilt_polls: ephctrl::plan::TiltPolls::default(),
        drain_timeout: args.common.drain_timeout,
        lease,
    })
}

/// The host name (a pod's name, in a pod), for the Lease identity without --pod-name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "ephctrl".to_string())
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
