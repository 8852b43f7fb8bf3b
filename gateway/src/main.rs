//! The `ephgateway` binary: flags, logging, the Kubernetes client, then [`ephgateway::start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ephemerator_core::Config;
use ephemerator_core::duration::parse_flag_duration;
use ephemerator_kit::cluster::{Cluster, DEFAULT_REQUEST_TIMEOUT, connect};
use ephemerator_kit::live_config::{self, LiveConfig};
use ephgateway::auth::{AuthMode, DEFAULT_COOKIE_NAME};
use ephgateway::tls::{DEFAULT_CHECK_EVERY, TlsFiles};
use ephgateway::upstream::{DEFAULT_TEMPLATE, UpstreamTemplate};
use ephgateway::{Limits, Settings, default_workers};

/// The ephemerator gateway.
#[derive(Parser, Debug)]
#[command(name = "ephgateway", version)]
struct Args {
    /// The ephemerator config file (YAML); its `gatewayHost` is the host served. It is read
    /// again when it changes.
    #[arg(long, env = "EPH_CONFIG")]
    config: PathBuf,
    /// Namespace of the envs; default: the pod's namespace in-cluster, else the kubeconfig's.
    #[arg(long, env = "EPH_NAMESPACE")]
    namespace: Option<String>,
    /// Address to serve traffic on; port 0 picks a free port (logged as `addr`).
    #[arg(long, env = "EPH_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "EPH_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    admin_listen: SocketAddr,
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
    /// How long an allowed answer of oauth2-proxy is reused for the same session; 0s: never.
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
    /// How long requests in flight get to finish on SIGTERM.
    #[arg(long, value_parser = parse_flag_duration, default_value = "25s")]
    drain_timeout: Duration,
    /// Threads serving connections (default: one per core).
    #[arg(long, env = "EPH_WORKERS")]
    workers: Option<usize>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // This runtime only watches the envs and serves the admin listener; connections are served
    // by the worker threads (see `ephgateway::server`).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    ephemerator_kit::logging::init(args.log_json);
    let config = Config::load(&args.config)?;
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
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("binding {}", args.admin_listen))?;
    let Cluster {
        client,
        api_health,
        namespace,
    } = connect(args.namespace, DEFAULT_REQUEST_TIMEOUT).await?;
    // Listening before serving: a SIGTERM that comes once the port answers drains it.
    let stopped = ephemerator_kit::shutdown::listen();
    let running = ephgateway::start(
        Settings {
            client,
            api_health,
            namespace,
            // Read again when the file changes; a version that does not load is refused.
            config: LiveConfig::watch(&args.config, config, live_config::CHECK_EVERY),
            dashboard,
            env_upstream,
            auth,
            tls,
            public_https: args.public_https.then_some(true),
            limits: Limits {
                max_connections: args.max_connections.max(1),
                header_read_timeout: args.header_timeout,
                upstream_timeout: args.upstream_timeout,
                drain_timeout: args.drain_timeout,
                ..Limits::default()
            },
            workers: args.workers.unwrap_or_else(default_workers).max(1),
        },
        listener,
        admin,
    )?;
    tracing::info!(addr = %running.addr, admin = %running.admin_addr, "serving");
    stopped.await;
    tracing::info!("shutting down: finishing requests in flight");
    running.stop().await;
    Ok(())
}
