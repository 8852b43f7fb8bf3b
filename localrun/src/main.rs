//! `ephlocal`: the whole ephemerator on this machine, until Ctrl-C.

use std::path::PathBuf;

use clap::Parser;
use ephemerator_kit::logging::LogFormat;
use ephlocal::{LocalSettings, RunnerKind, RunnerPorts};

/// Runs devcluster, ephctrl, ephdash and ephgateway together, signed in as dev@example.com;
/// envs run on the real Tilt when there is one (`tilt` on the PATH, or the one
/// `scripts/build-testprograms.sh` builds), else on simulated runners.
#[derive(Parser, Debug)]
#[command(name = "ephlocal", version)]
struct Args {
    /// Where the local cluster keeps its objects (envs survive a restart).
    #[arg(long, default_value = "target/ephlocal")]
    data_dir: PathBuf,
    /// The gateway's port: open http://preview.localhost:PORT/.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The runners' Tilt port (every env's Tilt through one port).
    #[arg(long, default_value_t = 20350)]
    tilt_port: u16,
    /// The simulated runners' app port.
    #[arg(long, default_value_t = 28000)]
    app_port: u16,
    /// The sample git repository's port (its URL is in the allow-list: keep it stable).
    #[arg(long, default_value_t = 28418)]
    git_port: u16,
    /// Run envs with this Tilt binary.
    #[arg(long, conflicts_with = "simulated_runners")]
    tilt: Option<PathBuf>,
    /// Run envs on simulated runners even where a Tilt is found.
    #[arg(long)]
    simulated_runners: bool,
    /// How logs are written: `text`, or `json` (as the servers' `--log-format`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ephemerator_kit::logging::init(args.log_format);
    let repo_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut settings = LocalSettings::new(&repo_root, &args.data_dir);
    settings.port = args.port;
    settings.runner_ports = RunnerPorts {
        tilt: args.tilt_port,
        web: args.app_port,
    };
    settings.git_port = args.git_port;
    settings.runners = match (args.tilt, args.simulated_runners) {
        (Some(binary), _) => RunnerKind::Tilt(binary),
        (None, true) => RunnerKind::Simulated,
        (None, false) => RunnerKind::detect(&repo_root),
    };
    let runners = settings.runners.describe();
    let stack = ephlocal::start(settings).await?;
    // Listening before the URL is printed: whoever reads it may press Ctrl-C at once.
    let stopped = ephemerator_kit::shutdown::listen();
    println!();
    println!("ephemerator is running: open {}", stack.url);
    println!("envs run on {runners}");
    println!("kubectl: export KUBECONFIG={}", stack.kubeconfig.display());
    println!(
        "config: edit {} while it runs (the allow-list, lifetimes, ...)",
        stack.config_file.display()
    );
    println!(
        "Ctrl-C stops it; the envs are kept in {}",
        args.data_dir.display()
    );
    stopped.await;
    println!("stopping");
    stack.stop().await;
    Ok(())
}
