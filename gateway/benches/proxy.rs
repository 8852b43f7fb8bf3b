//! ephgateway against nginx, side by side in one run on one machine: the same backend hit
//! directly, through the `ephgateway` binary and through nginx configured as the equivalent
//! reverse proxy. A benchmark, not a test: it prints figures and checks nothing.
//!
//! ```text
//! scripts/bench-gateway.sh        # installs wrk and nginx if missing, then runs this
//! cargo bench -p ephgateway --bench proxy
//! ```
//!
//! - The HTTP backend is nginx answering from memory (one worker), the WebSocket backend an
//!   echo server in this process.
//! - HTTP: `wrk --latency` with 64 connections, keep-alive and new-connection
//!   (`Connection: close`) runs, the three targets interleaved in each round; medians of the
//!   rounds' requests per second and p99 latency.
//! - WebSocket: 32 connections each echoing one small message at a time through each target;
//!   median messages per second.
//! - Routing: time from an env ConfigMap written with its port published (or deleted) to the
//!   gateway answering 200 (or 404) for it; median and worst of the repeats.
//! - Memory: the gateway's VmRSS idle after start, and after the load.
//!
//! Knobs (environment): `GATEWAY_BENCH_ROUNDS` (3), `GATEWAY_BENCH_SECONDS` (5 per wrk run),
//! `GATEWAY_BENCH_CONNECTIONS` (64), `GATEWAY_BENCH_ROUTES` (20). The gateway and nginx each
//! get two workers (the machine's cores); auth is off in both (`--auth none`), so the figures
//! are the proxy's alone. Without `--bench` (`cargo test --benches`) it smoke-runs: one round
//! of one second with 4 connections and 2 routes.
//!
//! Every program it starts (the gateway, both nginx) runs in a process group of its own and is
//! stopped with all it started (nginx's workers) when the run ends, failed or not.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use devcluster::DevCluster;
use devcluster::measure::{knob, mib, proc_status_kib, settled_rss};
use ephemerator_core::{EnvSpec, EnvStatus, Phase, Port, env_config_map};
use ephemerator_testkit::process_group::ProcessGroup;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const GATEWAY_HOST: &str = "preview.localhost";
const ENV: &str = "bench";
const WEBSOCKETS: usize = 32;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

/// Frees a port for a child process to bind (the tiny race is acceptable in a benchmark).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn require(tool: &str) -> anyhow::Result<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()?
        .success();
    if !found {
        bail!("{tool} is not installed: run scripts/bench-gateway.sh, which installs it");
    }
    Ok(())
}

struct Target {
    name: &'static str,
    addr: SocketAddr,
    host: String,
    /// The `Cookie` header its requests carry (the signed-in runs).
    cookie: Option<String>,
}

async fn run() -> anyhow::Result<()> {
    require("wrk")?;
    require("nginx")?;
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`) only smoke-runs.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (rounds, seconds, connections, routes) = if full {
        (
            knob("GATEWAY_BENCH_ROUNDS", 3)?,
            knob("GATEWAY_BENCH_SECONDS", 5)?,
            knob("GATEWAY_BENCH_CONNECTIONS", 64)?,
            knob("GATEWAY_BENCH_ROUTES", 20)?,
        )
    } else {
        (1, 1, 4, 2)
    };
    let dir = tempfile::tempdir()?;

    let cluster = DevCluster::start().await?;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    let (_backend_process, backend) = start_nginx_backend(dir.path())?;
    let ws_backend = websocket_backend().await?;
    put_env(&cluster.client(), ENV, &[backend.port(), ws_backend.port()]).await?;

    let gateway_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let gateway = start_gateway(
        dir.path(),
        &kubeconfig,
        backend,
        gateway_addr,
        &["--auth", "none"],
    )
    .await?;
    let gateway_pid = gateway.id();
    let idle_rss = settled_rss(gateway_pid).await?;
    let (_nginx, nginx_addr) = start_nginx(dir.path(), backend, ws_backend)?;

    let env_host = format!("{}---{ENV}.{GATEWAY_HOST}", backend.port());
    let ws_host = format!("{}---{ENV}.{GATEWAY_HOST}", ws_backend.port());
    let http_targets = [
        ("direct", backend),
        ("ephgateway", gateway_addr),
        ("nginx", nginx_addr),
    ]
    .map(|(name, addr)| Target {
        name,
        addr,
        host: env_host.clone(),
        cookie: None,
    });
    for target in &http_targets {
        let status = get_status(target.addr, &target.host).await?;
        if status != 200 {
            bail!("{} answers {status} before the run", target.name);
        }
    }

    println!(
        "HTTP: wrk, {connections} connections, {seconds} s per run, {rounds} rounds (medians)"
    );
    println!(
        "{:<12} {:>15} {:>10} {:>15} {:>10}",
        "target", "keep-alive r/s", "p99", "new-conn r/s", "p99"
    );
    // Per target: keep-alive r/s, its p99, new-connection r/s, its p99.
    let mut figures = vec![[(); 4].map(|()| Vec::new()); http_targets.len()];
    for _ in 0..rounds {
        for (keep_alive, column) in [(true, 0), (false, 2)] {
            for (index, target) in http_targets.iter().enumerate() {
                let (rps, p99) = wrk(target, keep_alive, connections, seconds)?;
                figures[index][column].push(rps);
                figures[index][column + 1].push(p99);
            }
        }
    }
    for (target, columns) in http_targets.iter().zip(figures.iter_mut()) {
        let [ka, ka_p99, nc, nc_p99] = columns;
        println!(
            "{:<12} {:>15.0} {:>8.2}ms {:>15.0} {:>8.2}ms",
            target.name,
            median(ka),
            median(ka_p99),
            median(nc),
            median(nc_p99)
        );
    }

    signed_in(
        dir.path(),
        &kubeconfig,
        backend,
        &env_host,
        (rounds, seconds, connections),
    )
    .await?;

    println!(
        "\nWebSocket: {WEBSOCKETS} connections echoing one message at a time, {seconds} s, \
         {rounds} rounds (median messages/s)"
    );
    let ws_targets = [
        ("direct", ws_backend),
        ("ephgateway", gateway_addr),
        ("nginx", nginx_addr),
    ]
    .map(|(name, addr)| Target {
        name,
        addr,
        host: ws_host.clone(),
        cookie: None,
    });
    let mut ws_rates = vec![Vec::new(); ws_targets.len()];
    for _ in 0..rounds {
        for (index, target) in ws_targets.iter().enumerate() {
            ws_rates[index].push(websocket_rate(target, seconds).await?);
        }
    }
    for (target, rates) in ws_targets.iter().zip(ws_rates.iter_mut()) {
        println!("{:<12} {:>10.0} messages/s", target.name, median(rates));
    }

    println!("\nRouting: env ConfigMap written → the gateway answers for it, {routes} envs");
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let envs = Api::<ConfigMap>::namespaced(cluster.client(), "default");
    for index in 0..routes {
        let name = format!("route-{index}");
        let host = format!("{}---{name}.{GATEWAY_HOST}", backend.port());
        let started = Instant::now();
        put_env(&cluster.client(), &name, &[backend.port()]).await?;
        wait_status(gateway_addr, &host, 200).await?;
        added.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        envs.delete(&name, &DeleteParams::default()).await?;
        wait_status(gateway_addr, &host, 404).await?;
        removed.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let worst = |values: &[f64]| values.iter().copied().fold(0.0, f64::max);
    println!(
        "added:   median {:.1} ms, worst {:.1} ms",
        median(&mut added.clone()),
        worst(&added)
    );
    println!(
        "removed: median {:.1} ms, worst {:.1} ms",
        median(&mut removed.clone()),
        worst(&removed)
    );

    let loaded_rss = proc_status_kib(gateway_pid, "VmRSS:")?;
    let peak_rss = proc_status_kib(gateway_pid, "VmHWM:")?;
    println!(
        "\nephgateway memory: idle {}, after the load {}, peak {}",
        mib(idle_rss),
        mib(loaded_rss),
        mib(peak_rss)
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn put_env(client: &kube::Client, name: &str, ports: &[u16]) -> anyhow::Result<()> {
    let status = EnvStatus {
        phase: Phase::Ready,
        ports: ports
            .iter()
            .map(|&port| Port {
                name: format!("p{port}"),
                port,
            })
            .collect(),
        ..EnvStatus::default()
    };
    let mut cm = env_config_map(
        name,
        name,
        &EnvSpec {
            repo: "https://github.com/tilt-dev/tilt-example-html".into(),
            branch: "main".into(),
            path: "Tiltfile".into(),
        },
        None,
    );
    status.write_to(&mut cm.metadata);
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await?;
    Ok(())
}

/// A WebSocket echo server.
async fn websocket_backend() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_close() || socket.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A signed-in person's requests to an env: through ephgateway, which checks its own env
/// cookie (handed out by the real sign-in flow through the real oauth2-proxy), and through
/// nginx doing what upstream's ingress did, an `auth_request` to the same oauth2-proxy on every
/// request. Side by side, interleaved in each round; keep-alive; medians.
async fn signed_in(
    dir: &Path,
    kubeconfig: &Path,
    backend: SocketAddr,
    env_host: &str,
    (rounds, seconds, connections): (usize, usize, usize),
) -> anyhow::Result<()> {
    use realprograms::browser_client::BrowserClient;
    use realprograms::oauth2_proxy::{MockOidc, OAuth2Proxy, OAuth2ProxySettings};
    let oidc = MockOidc::start().await?;
    let gateway_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let public = format!("http://{GATEWAY_HOST}:{}", gateway_addr.port());
    let proxy = OAuth2Proxy::start(&OAuth2ProxySettings::host_only(oidc.issuer(), &public)).await?;
    let keys = dir.join("signing-keys");
    std::fs::create_dir_all(&keys)?;
    std::fs::write(
        keys.join("current"),
        "the benchmark's signing key, 32 bytes or more",
    )?;
    let proxy_url = proxy.url();
    let keys_dir = keys.to_string_lossy().into_owned();
    let _gateway = start_gateway(
        &dir.join("signed-in"),
        kubeconfig,
        backend,
        gateway_addr,
        &[
            "--auth",
            "oauth2-proxy",
            "--oauth2-proxy-url",
            &proxy_url,
            "--signing-keys",
            &keys_dir,
        ],
    )
    .await?;
    // Signing in as a person does: the env's page, through the dashboard's host and the
    // provider, back with the env's own cookie.
    let mut browser = BrowserClient::default();
    let page = browser
        .get(&format!("http://{env_host}:{}/", gateway_addr.port()))
        .await?;
    if page.status != 200 {
        bail!("signing in through ephgateway ended in {page:?}");
    }
    let host = env_host.split(':').next().unwrap_or(env_host);
    let pass = browser
        .cookie_for(host, "ephemerator_env")
        .context("no env cookie after signing in")?
        .to_string();
    let session = browser
        .cookie_for(GATEWAY_HOST, "_oauth2_proxy")
        .context("no session after signing in")?
        .to_string();
    let (_nginx, nginx_addr) = start_nginx_auth_request(dir, backend, proxy.addr())?;
    let targets = [
        (
            "ephgateway",
            gateway_addr,
            format!("ephemerator_env={pass}"),
        ),
        ("nginx", nginx_addr, format!("_oauth2_proxy={session}")),
    ]
    .map(|(name, addr, cookie)| Target {
        name,
        addr,
        host: env_host.to_string(),
        cookie: Some(cookie),
    });
    for target in &targets {
        let status = get_with(target.addr, &target.host, "/", target.cookie.as_deref()).await?;
        if status != 200 {
            bail!("{} answers {status} signed in", target.name);
        }
        // And nothing without the cookie: both really check.
        let status = get_status(target.addr, &target.host).await?;
        if status == 200 {
            bail!("{} answers 200 without signing in", target.name);
        }
    }
    println!(
        "\nSigned in (a session to an env; ephgateway: its env cookie, nginx: auth_request to \
         oauth2-proxy per request), keep-alive, {connections} connections, {rounds} rounds"
    );
    println!("{:<12} {:>15} {:>10}", "target", "r/s", "p99");
    let mut figures = vec![(Vec::new(), Vec::new()); targets.len()];
    for _ in 0..rounds {
        for (index, target) in targets.iter().enumerate() {
            let (rps, p99) = wrk(target, true, connections, seconds)?;
            figures[index].0.push(rps);
            figures[index].1.push(p99);
        }
    }
    for (target, (rps, p99)) in targets.iter().zip(figures.iter_mut()) {
        println!(
            "{:<12} {:>15.0} {:>8.2}ms",
            target.name,
            median(rps),
            median(p99)
        );
    }
    Ok(())
}

/// nginx as upstream's ingress-nginx set it up (`auth-url` to oauth2-proxy): every request
/// first asks oauth2-proxy's `/oauth2/auth` (over kept-alive connections), then goes to the
/// backend with the user's identity.
fn start_nginx_auth_request(
    dir: &Path,
    backend: SocketAddr,
    oauth2_proxy: SocketAddr,
) -> anyhow::Result<(ProcessGroup, SocketAddr)> {
    let port = free_port()?;
    let prefix = dir.join("nginx-auth");
    let config = format!(
        r#"worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp_paths}
  upstream backend {{ server {backend}; keepalive 128; }}
  upstream oauth2_proxy {{ server {oauth2_proxy}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location = /_oauth2_auth {{
      internal;
      proxy_pass http://oauth2_proxy/oauth2/auth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-Uri $request_uri;
    }}
    location / {{
      auth_request /_oauth2_auth;
      auth_request_set $user $upstream_http_x_auth_request_user;
      auth_request_set $email $upstream_http_x_auth_request_email;
      proxy_set_header X-Auth-Request-User $user;
      proxy_set_header X-Auth-Request-Email $email;
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"#,
        prefix = prefix.display(),
        temp_paths = temp_paths(&prefix),
    );
    run_nginx(&prefix, &config, port)
}

async fn start_gateway(
    dir: &Path,
    kubeconfig: &Path,
    dashboard: SocketAddr,
    addr: SocketAddr,
    auth: &[&str],
) -> anyhow::Result<ProcessGroup> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("ephemerator.yaml");
    std::fs::write(
        &config,
        format!(
            "gatewayHost: {GATEWAY_HOST}\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  \
             repoNames: [tilt-example-html]\n"
        ),
    )?;
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let process = ProcessGroup::spawn(
        Command::new(env!("CARGO_BIN_EXE_ephgateway"))
            .args(["--config", &config.to_string_lossy()])
            .args(["--namespace", "default"])
            .args(["--listen", &addr.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(auth)
            .args(["--upstream-template", "127.0.0.1:{port}"])
            .args(["--dashboard", &dashboard.to_string(), "--workers", "2"])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )
    .context("starting ephgateway")?;
    let until = Instant::now() + Duration::from_secs(30);
    while get_path(admin, "admin", "/readyz").await.ok() != Some(200) {
        if Instant::now() > until {
            bail!("ephgateway did not get ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(process)
}

/// The HTTP backend every target reaches: nginx answering 13 bytes from memory, one worker.
/// The fastest standard backend there is, so that the figures are the proxies', not the
/// backend's.
fn start_nginx_backend(dir: &Path) -> anyhow::Result<(ProcessGroup, SocketAddr)> {
    let port = free_port()?;
    let prefix = dir.join("backend");
    let config = format!(
        r#"worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp_paths}
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "hello, world\n"; }}
  }}
}}
"#,
        prefix = prefix.display(),
        temp_paths = temp_paths(&prefix),
    );
    run_nginx(&prefix, &config, port)
}

/// nginx's temporary directories inside `prefix` (it cannot write the system's as a user).
fn temp_paths(prefix: &Path) -> String {
    ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|kind| format!("  {kind}_temp_path {}/{kind};\n", prefix.display()))
        .collect()
}

/// Starts nginx with `config` under `prefix` and waits until `port` accepts.
fn run_nginx(prefix: &Path, config: &str, port: u16) -> anyhow::Result<(ProcessGroup, SocketAddr)> {
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, config)?;
    let process = ProcessGroup::spawn(
        Command::new("nginx")
            .args([
                "-p",
                &prefix.to_string_lossy(),
                "-c",
                &conf.to_string_lossy(),
            ])
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )
    .context("starting nginx")?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > until {
            bail!(
                "nginx did not start; see {}/logs/error.log",
                prefix.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((process, addr))
}

/// nginx as the equivalent reverse proxy: two workers, keep-alive to the backend, the Host and
/// X-Forwarded-* headers set, WebSocket upgrades passed, no access log (the gateway writes
/// none per request either).
fn start_nginx(
    dir: &Path,
    backend: SocketAddr,
    ws_backend: SocketAddr,
) -> anyhow::Result<(ProcessGroup, SocketAddr)> {
    let port = free_port()?;
    let prefix = dir.join("nginx");
    let config = format!(
        r#"worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp_paths}
  upstream backend {{ server {backend}; keepalive 128; }}
  upstream websocket {{ server {ws_backend}; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
    }}
    location /ws {{
      proxy_pass http://websocket;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_read_timeout 1h;
    }}
  }}
}}
"#,
        prefix = prefix.display(),
        temp_paths = temp_paths(&prefix),
    );
    run_nginx(&prefix, &config, port)
}

/// One wrk run: (requests per second, p99 in ms).
fn wrk(
    target: &Target,
    keep_alive: bool,
    connections: usize,
    seconds: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut command = Command::new("wrk");
    command
        .args(["-t", "2", "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--latency"])
        .args(["-H", &format!("Host: {}", target.host)]);
    if !keep_alive {
        command.args(["-H", "Connection: close"]);
    }
    if let Some(cookie) = &target.cookie {
        command.args(["-H", &format!("Cookie: {cookie}")]);
    }
    let output = command.arg(format!("http://{}/", target.addr)).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") {
        eprintln!("wrk saw errors from {}:\n{text}", target.name);
    }
    let rps = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))
        .map(str::trim)
        .and_then(parse_wrk_duration)
        .with_context(|| format!("no 99% latency in wrk's output:\n{text}"))?;
    Ok((rps, p99))
}

/// wrk's `1.23ms`, `456.00us`, `1.02s` as milliseconds.
fn parse_wrk_duration(text: &str) -> Option<f64> {
    for (suffix, factor) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)] {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    None
}

/// Messages per second over [`WEBSOCKETS`] connections, each echoing one message at a time.
async fn websocket_rate(target: &Target, seconds: usize) -> anyhow::Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut sockets = Vec::new();
    for _ in 0..WEBSOCKETS {
        let mut request = format!("ws://{}/ws", target.addr).into_client_request()?;
        request.headers_mut().insert("host", target.host.parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("opening a WebSocket through {}", target.name))?;
        sockets.push(socket);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut socket in sockets {
        let (count, stop) = (count.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if socket.send(Message::text("ping")).await.is_err() {
                    break;
                }
                match socket.next().await {
                    Some(Ok(_)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
            let _ = socket.close(None).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
    let counted = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    Ok(counted as f64 / elapsed)
}

async fn get_path(addr: SocketAddr, host: &str, path: &str) -> anyhow::Result<u16> {
    get_with(addr, host, path, None).await
}

async fn get_with(
    addr: SocketAddr,
    host: &str,
    path: &str,
    cookie: Option<&str>,
) -> anyhow::Result<u16> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = Request::get(format!("http://{addr}{path}")).header("host", host);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let request = request.body(Empty::new())?;
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

async fn get_status(addr: SocketAddr, host: &str) -> anyhow::Result<u16> {
    get_path(addr, host, "/").await
}

/// Polls every millisecond until `host` answers `status`.
async fn wait_status(addr: SocketAddr, host: &str, status: u16) -> anyhow::Result<()> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let request = Request::get(format!("http://{addr}/"))
            .header("host", host)
            .body(Empty::new())?;
        let response = client.request(request).await?;
        let got = response.status().as_u16();
        let _ = response.into_body().collect().await;
        if got == status {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("{host} still answers {got}, not {status}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
