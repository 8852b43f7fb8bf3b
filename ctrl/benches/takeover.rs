//! How long two ephctrls go without a leader when the leader goes away, with the default Lease
//! timings (15 s lease, 10 s renew deadline, 2 s retry period). A benchmark, not a test: it
//! prints figures and checks nothing.
//!
//! ```text
//! cargo bench -p ephctrl --bench takeover
//! ```
//!
//! Knobs (environment): `TAKEOVER_REPEAT` (3; medians are printed). Both controllers run
//! in-process against one devcluster on 127.0.0.1, a fresh Lease each round:
//!
//! - killed: the leader's task is aborted where it is (a crash, SIGKILL, a lost node): the
//!   standby waits for the Lease to lapse;
//! - partitioned: the leader's connections to the API server stop carrying anything, open ones
//!   and new ones alike (a network partition): the leader must stop acting by its renew
//!   deadline, the standby takes over once the Lease lapses; the gap between the two is the
//!   margin that keeps them from ever acting at once;
//! - stopped: the leader is stopped as SIGTERM stops it (a rolling update): it gives the Lease
//!   up and the standby takes over at its next look. The stop comes right after the standby's
//!   first look, so this is the longest case, a whole retry period; in a rolling update the
//!   wait is anywhere from zero to that.
//!
//! Times are from the event to the moment `/metrics` of the replica shows `ephctrl_leading`
//! changed, polled every 20 ms.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use devcluster::DevCluster;
use devcluster::measure::knob;
use ephctrl::Settings;
use ephctrl::leader::LeaseTimings;
use ephemerator_core::Config;
use tokio::net::{TcpListener, TcpStream};

use common::{http_get, median};
use tokio::sync::watch;

const NAMESPACE: &str = "default";
const CONFIG_YAML: &str = "gatewayHost: preview.localhost\n";
/// Longest wait for any change before the round is declared stuck.
const LIMIT: Duration = Duration::from_secs(120);

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`) smoke-runs one
    // round with the tests' 3 s Lease.
    let full = std::env::args().any(|arg| arg == "--bench");
    let repeat = if full {
        knob("TAKEOVER_REPEAT", 3)?.max(1)
    } else {
        1
    };
    let timings = if full {
        LeaseTimings::default()
    } else {
        ephctrl::testing::TEST_LEASE_TIMINGS
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        println!(
            "takeover: lease {:?}, renew deadline {:?}, retry period {:?}; {repeat} round(s) each",
            timings.lease_duration, timings.renew_deadline, timings.retry_period
        );
        let cluster = DevCluster::start().await?;
        let config = Config::from_yaml_str(CONFIG_YAML, "bench.yaml")?;
        let bench = Bench {
            cluster: &cluster,
            config: &config,
            timings,
        };
        let (mut killed, mut partitioned, mut stopped_acting, mut stopped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 1..=repeat {
            let kill = handover_round(bench, Ending::Killed, round).await?;
            let (quit, taken) = partitioned_round(bench, round).await?;
            let handover = handover_round(bench, Ending::Stopped, round).await?;
            println!(
                "  round {round}: killed -> standby leads after {:.2} s; partitioned -> the leader stops after {:.2} s, the standby leads after {:.2} s (gap {:.2} s); stopped -> standby leads after {:.2} s",
                kill.as_secs_f64(),
                quit.as_secs_f64(),
                taken.as_secs_f64(),
                taken.as_secs_f64() - quit.as_secs_f64(),
                handover.as_secs_f64(),
            );
            killed.push(kill);
            stopped_acting.push(quit);
            partitioned.push(taken);
            stopped.push(handover);
        }
        println!(
            "takeover (median of {repeat}): after a kill {:.2} s; after a partition {:.2} s (the cut-off leader stops acting after {:.2} s); after a stop {:.2} s",
            median(&mut killed).as_secs_f64(),
            median(&mut partitioned).as_secs_f64(),
            median(&mut stopped_acting).as_secs_f64(),
            median(&mut stopped).as_secs_f64(),
        );
        if !full {
            println!("smoke run only; run `cargo bench -p ephctrl --bench takeover` for figures");
        }
        cluster.stop().await;
        Ok(())
    })
}

/// A controller on `client`, electing through Lease `lease` with `timings`.
fn replica(
    client: kube::Client,
    config: &Config,
    lease: &str,
    timings: LeaseTimings,
) -> anyhow::Result<ephctrl::Running> {
    let mut settings = Settings::new(client, NAMESPACE, config.clone());
    settings.tilt_url_template = "http://127.0.0.1:9/{env}".to_string();
    settings.lease.name = lease.to_string();
    settings.lease.timings = timings;
    Ok(ephctrl::start(
        settings,
        ephemerator_kit::Listeners::local(false)?,
    )?)
}

/// What every round runs on.
#[derive(Clone, Copy)]
struct Bench<'a> {
    cluster: &'a DevCluster,
    config: &'a Config,
    timings: LeaseTimings,
}

/// A leader on `leader_client` and a standby on the cluster, both settled, electing through
/// Lease `lease`.
async fn pair(
    bench: Bench<'_>,
    leader_client: kube::Client,
    lease: &str,
) -> anyhow::Result<(ephctrl::Running, ephctrl::Running)> {
    let leader = replica(leader_client, bench.config, lease, bench.timings)?;
    wait_leading(leader.admin_addr, true).await?;
    let standby = replica(bench.cluster.client(), bench.config, lease, bench.timings)?;
    wait_ready(standby.admin_addr).await?;
    Ok((leader, standby))
}

/// How the leader goes in a round.
#[derive(Clone, Copy)]
enum Ending {
    /// Aborted where it is.
    Killed,
    /// Stopped as SIGTERM stops it.
    Stopped,
}

/// From the leader's end to the standby's lead.
async fn handover_round(
    bench: Bench<'_>,
    ending: Ending,
    round: usize,
) -> anyhow::Result<Duration> {
    let name = match ending {
        Ending::Killed => format!("killed-{round}"),
        Ending::Stopped => format!("stopped-{round}"),
    };
    let (leader, standby) = pair(bench, bench.cluster.client(), &name).await?;
    let at = Instant::now();
    match ending {
        Ending::Killed => leader.kill().await,
        Ending::Stopped => leader.stop().await,
    }
    wait_leading(standby.admin_addr, true).await?;
    Ok(at.elapsed())
}

/// When the cut-off leader stopped acting, and when the standby took over, both from the cut.
async fn partitioned_round(bench: Bench<'_>, round: usize) -> anyhow::Result<(Duration, Duration)> {
    let link = Link::start(bench.cluster.url()).await?;
    let client = kube::Client::try_from(kube::Config::new(link.url().parse()?))?;
    let (leader, standby) = pair(bench, client, &format!("partitioned-{round}")).await?;
    let at = Instant::now();
    link.cut();
    let (quit, taken) = tokio::join!(
        async {
            wait_leading(leader.admin_addr, false).await?;
            anyhow::Ok(at.elapsed())
        },
        async {
            wait_leading(standby.admin_addr, true).await?;
            anyhow::Ok(at.elapsed())
        },
    );
    drop(leader);
    Ok((quit?, taken?))
}

/// A TCP link to the API server that can be cut: after [`Link::cut`] it carries nothing, on the
/// connections open then and on new ones, which it accepts and never answers (packets dropped,
/// not refused: what a partition looks like from the cut-off side).
struct Link {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    async fn start(upstream: &str) -> anyhow::Result<Link> {
        let upstream: url::Url = upstream.parse()?;
        let target = format!(
            "{}:{}",
            upstream.host_str().context("an API server host")?,
            upstream
                .port_or_known_default()
                .context("an API server port")?
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cut = watch::Sender::new(false);
        let task = tokio::spawn({
            let cut = cut.subscribe();
            async move {
                let mut held = Vec::new();
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if *cut.borrow() {
                        held.push(client);
                        continue;
                    }
                    let (target, cut) = (target.clone(), cut.clone());
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(&target).await else {
                            return;
                        };
                        carry(client, server, cut).await;
                    });
                }
            }
        });
        Ok(Link { addr, cut, task })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until the link is cut, then holds both ends open and silent.
async fn carry(mut client: TcpStream, mut server: TcpStream, mut cut: watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = async { cut.wait_for(|cut| *cut).await.map(drop) } => {
            let _held = (client, server);
            std::future::pending::<()>().await;
        }
    }
}

async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if let Some((200, body)) = http_get(addr, "/readyz").await
            && body.contains(" leads")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the standby at {addr} did not settle within {LIMIT:?}")
}

/// Waits until `ephctrl_leading` of the replica at `addr` is `leading`.
async fn wait_leading(addr: SocketAddr, leading: bool) -> anyhow::Result<()> {
    let wanted = format!("ephctrl_leading {}", u8::from(leading));
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if let Some((_, body)) = http_get(addr, "/metrics").await
            && body.lines().any(|line| line == wanted)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{wanted} not seen at {addr} within {LIMIT:?}")
}
