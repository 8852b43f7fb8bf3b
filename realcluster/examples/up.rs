//! Starts the real control plane and keeps it up until Ctrl-C, for poking at it by hand:
//! `cargo run -p realcluster --example up`, then `KUBECONFIG=<printed path> kubectl ...`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = realcluster::RealCluster::start().await?;
    println!("KUBECONFIG={}", cluster.kubeconfig().display());
    println!("logs in {}", cluster.log_dir().display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
