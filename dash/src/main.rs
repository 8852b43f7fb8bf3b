//! The `ephdash` binary: flags, boot, start, wait for SIGTERM, stop — as every server's `main`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ephdash::csrf::CsrfKey;
use ephdash::discovery::DiscoverySettings;
use ephdash::identity::IdentitySource;
use ephdash::startup::{self, Settings};
use ephemerator_core::duration::parse_flag_duration;
use ephemerator_kit::flags::{IdentityFlags, ServingFlags};
use ephemerator_kit::shutdown::Signal;
use ephemerator_kit::signing::{LiveKeys, SigningFlags};
use ephemerator_kit::{Boot, CommonFlags, LiveConfig, boot};

/// The ephemerator dashboard.
#[derive(Parser, Debug)]
#[command(name = "ephdash", version)]
struct Args {
    /// Address to serve the dashboard on (what the gateway forwards to); port 0 picks a free
    /// port (logged as `addr`).
    #[arg(long, env = "EPH_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Which headers carry the signed-in user: `auth-request` (X-Auth-Request-*, set by the
    /// gateway from oauth2-proxy's answer) or `forwarded` (X-Forwarded-*, with oauth2-proxy in
    /// front).
    #[arg(long, env = "EPH_IDENTITY_HEADERS", default_value = "auth-request")]
    identity_headers: String,
    /// `--identity-from` (shared with ephgateway).
    #[command(flatten)]
    identity: IdentityFlags,
    /// `--signing-keys` (shared with ephgateway): without it, no share links.
    #[command(flatten)]
    signing: SigningFlags,
    /// `--shutdown-delay` (shared with ephgateway).
    #[command(flatten)]
    serving: ServingFlags,
    /// Treat every request as signed in as NAME (local runs only).
    #[arg(long, env = "EPH_AUTH_FAKE_USER")]
    auth_fake_user: Option<String>,
    /// A file with the key that signs CSRF tokens (a Secret shared by every replica, at least
    /// 32 bytes); without it a random key is made, which only one replica can use.
    #[arg(long, env = "EPH_CSRF_KEY_FILE")]
    csrf_key_file: Option<PathBuf>,
    /// A file with a key whose tokens are also accepted (a key being rotated in or out; see
    /// the README); may be given more than once.
    #[arg(long)]
    csrf_verify_key_file: Vec<PathBuf>,
    /// The templates directory.
    #[arg(long, env = "EPH_TEMPLATES", default_value = "templates")]
    templates: PathBuf,
    /// The static files directory.
    #[arg(long, env = "EPH_ASSETS", default_value = "assets")]
    assets: PathBuf,
    /// Threads serving connections.
    #[arg(long, env = "EPH_WORKERS", default_value_t = 2)]
    workers: usize,
    /// How long discovered branches and Tiltfiles are reused.
    #[arg(long, env = "EPH_DISCOVERY_TTL", value_parser = parse_flag_duration, default_value = "60s")]
    discovery_ttl: Duration,
    /// Longest time of one git call of the discovery.
    #[arg(long, env = "EPH_DISCOVERY_TIMEOUT", value_parser = parse_flag_duration, default_value = "10s")]
    discovery_timeout: Duration,
    /// Most git calls of the discovery running at once in this server.
    #[arg(long, default_value_t = 4)]
    discovery_max_running: usize,
    /// Most git calls of the discovery running at once started by one person.
    #[arg(long, default_value_t = 2)]
    discovery_max_per_user: usize,
    /// Most bytes of rendered env rows kept for all the viewers who see them alike (16 MiB:
    /// about sixteen lists of 1,000 envs); past it, the rows used longest ago go.
    #[arg(long, default_value_t = ephdash::fragment_cache::DEFAULT_MAX_BYTES)]
    shared_rows_max_bytes: usize,
    /// The flags every server has (kept last: their heading applies to what follows).
    #[command(flatten)]
    common: CommonFlags,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    boot::check_config_and_exit(&args.common);
    boot::block_on(async {
        let Boot { config, listeners } = boot::boot(&args.common, Some(args.listen))?;
        let shutdown_delay = args.serving.shutdown_delay;
        let settings = settings(args, config).await?;
        let stopped = ephemerator_kit::shutdown::listen();
        let running = startup::start(settings, listeners)?;
        tracing::info!(addr = %running.addr, admin = %running.admin_addr, "serving the dashboard");
        let delay = match stopped.await {
            Signal::Terminate => shutdown_delay,
            Signal::Interrupt => Duration::ZERO,
        };
        running.leave_then_stop(delay).await;
        Ok(())
    })
}

/// The dashboard's settings from its flags, then the cluster.
async fn settings(args: Args, config: LiveConfig) -> anyhow::Result<Settings> {
    let (identity, csrf) = (identity_source(&args)?, csrf_key(&args)?);
    let signing_keys = match &args.signing.signing_keys {
        Some(dir) => Some(
            LiveKeys::load(dir).map_err(|problem| anyhow::anyhow!("--signing-keys: {problem}"))?,
        ),
        None => {
            tracing::warn!("no --signing-keys: share links cannot be made");
            None
        }
    };
    // Last: every flag above is checked without a cluster.
    let cluster = boot::connect(&args.common).await?;
    Ok(Settings {
        client: cluster.client,
        api_health: cluster.api_health,
        namespace: cluster.namespace,
        config,
        identity,
        identity_from: args.identity.identity_from,
        csrf,
        signing_keys,
        templates: args.templates,
        assets: args.assets,
        workers: args.workers,
        discovery: DiscoverySettings {
            ttl: args.discovery_ttl,
            timeout: args.discovery_timeout,
            max_running: args.discovery_max_running.max(1),
            max_per_user: args.discovery_max_per_user.max(1),
            ..DiscoverySettings::default()
        },
        shared_rows_max_bytes: args.shared_rows_max_bytes,
        drain_timeout: args.common.drain_timeout,
    })
}

/// Where identities come from (`--auth-fake-user`, `--identity-headers`).
fn identity_source(args: &Args) -> anyhow::Result<IdentitySource> {
    Ok(
        match (&args.auth_fake_user, args.identity_headers.as_str()) {
            (Some(user), _) => {
                tracing::warn!(%user, "every request is signed in as the fake user (local runs only)");
                IdentitySource::Fake(user.clone())
            }
            (None, "auth-request") => IdentitySource::AuthRequest,
            (None, "forwarded") => IdentitySource::Forwarded,
            (None, other) => {
                anyhow::bail!("--identity-headers {other:?}: use auth-request or forwarded")
            }
        },
    )
}

/// The CSRF key (`--csrf-key-file`, `--csrf-verify-key-file`).
fn csrf_key(args: &Args) -> anyhow::Result<CsrfKey> {
    let read_key = |path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("reading the CSRF key file {}", path.display()))
    };
    let mut csrf = match &args.csrf_key_file {
        Some(path) => CsrfKey::from_bytes(&read_key(path)?)
            .map_err(|problem| anyhow::anyhow!("{}: {problem}", path.display()))?,
        None => {
            tracing::warn!("no --csrf-key-file: a random key, so only one replica can serve");
            CsrfKey::random().map_err(anyhow::Error::msg)?
        }
    };
    for path in &args.csrf_verify_key_file {
        csrf = csrf
            .with_verifying(&read_key(path)?)
            .map_err(|problem| anyhow::anyhow!("{}: {problem}", path.display()))?;
    }
    Ok(csrf)
}
