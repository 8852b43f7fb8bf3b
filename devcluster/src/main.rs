//! `devcluster serve`: runs the in-memory API server until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "devcluster",
    about = "An in-memory Kubernetes API server for development and tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until interrupted.
    Serve {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8001")]
        listen: SocketAddr,
        /// Write a kubeconfig for this server here.
        #[arg(long)]
        kubeconfig_out: Option<PathBuf>,
        /// Keep state in this directory across restarts.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// How long simulated pods take to become ready, e.g. `2s` or `500ms`.
        #[arg(long, value_parser = parse_duration, default_value = "2s")]
        pod_ready_delay: Duration,
    },
}

/// `2s`, `500ms`, `1m` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 2s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve {
        listen,
        kubeconfig_out,
        data_dir,
        pod_ready_delay,
    } = Cli::parse().command;
    let mut builder = devcluster::DevCluster::builder()
        .listen(listen)
        .pod_ready_delay(pod_ready_delay);
    if let Some(dir) = data_dir {
        builder = builder.data_dir(dir);
    }
    let cluster = builder.start().await.context("starting devcluster")?;
    if let Some(path) = kubeconfig_out {
        cluster.write_kubeconfig(&path)?;
        eprintln!("kubeconfig written to {}", path.display());
    }
    println!("{}", cluster.url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    cluster.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_common_units() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
