//! The `ephgateway` binary: flags, boot, start, wait for SIGTERM, stop — as every server's `main`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ephemerator_core::duration::parse_flag_duration;
use ephemerator_kit::flags::{IdentityFlags, ServingFlags};
use ephemerator_kit::shutdown::Signal;
use ephemerator_kit::signing::{LiveKeys, SigningFlags};
use ephemerator_kit::{Boot, CommonFlags, LiveConfig, boot};
use ephgateway::auth::{AuthMode, DEFAULT_COOKIE_NAME};
use ephgateway::tls::{DEFAULT_CHECK_EVERY, TlsFiles};
use ephgateway::upstream::{DEFAULT_TEMPLATE, UpstreamTemplate};
use ephgateway::{Limits, Settings, default_workers};

/// The ephemerator gateway.
#[derive(Parser, Debug)]
#[command(name = "ephgateway", version)]
struct Args {
    /// Address to serve traffic on (`gatewayHost` of the config file and its env hosts); port 0
    /// picks a free port (logged as `addr`).
    #[arg(long, env = "EPH_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// The dashboard's address, `host:port`.
    #[arg(long, env = "EPH_DASHBOARD", default_value = "ephdash:80")]
    dashboard: String,
    /// Where env ports are reached: `{env}`, `{namespace}` and `{port}` are filled in.
    #[arg(long, env = "EPH_UPSTREAM_TEMPLATE", default_value = DEFAULT_TEMPLATE)]
    upstream_template: String,
    /// `oauth2-proxy` (every request is checked) or `none` (local runs only: no sign-in).
    #[arg(long, env = "EPH_AUTH")]
    auth: String,
    /// oauth2-proxy's address, for `--auth oauth2-proxy`.
    #[arg(
        long,
        env = "EPH_OAUTH2_PROXY_URL",
        default_value = "http://oauth2-proxy:4180"
    )]
    oauth2_proxy_url: String,
    /// oauth2-proxy's session cookie name (its `--cookie-name`).
    #[arg(long, env = "EPH_OAUTH2_PROXY_COOKIE", default_value = DEFAULT_COOKIE_NAME)]
    oauth2_proxy_cookie: String,
    /// How long an allowed answer of oauth2-proxy is reused for the same session (more than
    /// zero; every new session is asked).
    #[arg(long, value_parser = parse_flag_duration, default_value = "5s")]
    auth_cache_ttl: Duration,
    /// PEM certificate chain for `<gatewayHost>` and `*.<gatewayHost>`: the gateway terminates
    /// TLS (the files are read again when they change).
    #[arg(long, env = "EPH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "EPH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Clients use https although the gateway serves plain HTTP (TLS ends at a load balancer).
    #[arg(long, env = "EPH_PUBLIC_HTTPS")]
    public_https: bool,
    /// Most client connections open at once.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Longest wait for a request's headers; also the idle keep-alive time.
    #[arg(long, value_parser = parse_flag_duration, default_value = "30s")]
    header_timeout: Duration,
    /// Longest wait for an upstream's response headers.
    #[arg(long, value_parser = parse_flag_duration, default_value = "60s")]
    upstream_timeout: Duration,
    /// Threads serving connections (default: one per core).
    #[arg(long, env = "EPH_WORKERS")]
    workers: Option<usize>,
    /// `--identity-from` (shared with ephdash): who owns an env, for owner-only envs.
    #[command(flatten)]
    identity: IdentityFlags,
    /// `--signing-keys` (shared with ephdash): required with `--auth oauth2-proxy`.
    #[command(flatten)]
    signing: SigningFlags,
    /// `--shutdown-delay` (shared with ephdash).
    #[command(flatten)]
    serving: ServingFlags,
    /// The flags every server has (kept last: their heading applies to what follows).
    #[command(flatten)]
    common: CommonFlags,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    boot::check_config_and_exit(&args.common);
    // Connections are served by the worker threads (see `ephgateway::server`).
    boot::block_on(async {
        let Boot { config, listeners } = boot::boot(&args.common, Some(args.listen))?;
        let shutdown_delay = args.serving.shutdown_delay;
        let settings = settings(args, config).await?;
        let stopped = ephemerator_kit::shutdown::listen();
        let running = ephgateway::start(settings, listeners)?;
        tracing::info!(addr = %running.addr, admin = %running.admin_addr, "serving");
        let delay = match stopped.await {
            Signal::Terminate => shutdown_delay,
            Signal::Interrupt => Duration::ZERO,
        };
        running.leave_then_stop(delay).await;
        Ok(())
    })
}

/// The gateway's settings from its flags, then the cluster.
async fn settings(args: Args, config: LiveConfig) -> anyhow::Result<Settings> {
    let auth = match args.auth.as_str() {
        "oauth2-proxy" => AuthMode::OAuth2Proxy {
            url: args
                .oauth2_proxy_url
                .parse()
                .with_context(|| format!("--oauth2-proxy-url {:?}", args.oauth2_proxy_url))?,
            cookie_name: args.oauth2_proxy_cookie,
            cache_ttl: args.auth_cache_ttl,
        },
        "none" => {
            tracing::warn!(
                "--auth none: nobody signs in, every request is let through (local runs only)"
            );
            AuthMode::None
        }
        other => anyhow::bail!("--auth {other:?}: use oauth2-proxy or none"),
    };
    let keys = match (&auth, &args.signing.signing_keys) {
        (_, Some(dir)) => Some(
            LiveKeys::load(dir).map_err(|problem| anyhow::anyhow!("--signing-keys: {problem}"))?,
        ),
        (AuthMode::OAuth2Proxy { .. }, None) => anyhow::bail!(
            "--auth oauth2-proxy needs --signing-keys: env cookies and share links are signed with them"
        ),
        (AuthMode::None, None) => None,
    };
    let dashboard = args
        .dashboard
        .parse()
        .with_context(|| format!("--dashboard {:?}: expected host:port", args.dashboard))?;
    let env_upstream =
        UpstreamTemplate::parse(&args.upstream_template).map_err(anyhow::Error::msg)?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            check_every: DEFAULT_CHECK_EVERY,
        }),
        _ => None,
    };
    // Last: every flag above is checked without a cluster.
    let cluster = boot::connect(&args.common).await?;
    Ok(Settings {
        client: cluster.client,
        api_health: cluster.api_health,
        namespace: cluster.namespace,
        config,
        dashboard,
        env_upstream,
        auth,
        identity_from: args.identity.identity_from,
        signing_keys: keys,
        tls,
        public_https: args.public_https.then_some(true),
        limits: Limits {
            max_connections: args.max_connections.max(1),
            header_read_timeout: args.header_timeout,
            upstream_timeout: args.upstream_timeout,
            ..Limits::default()
        },
        workers: args.workers.unwrap_or_else(default_workers).max(1),
        drain_timeout: args.common.drain_timeout,
    })
}
