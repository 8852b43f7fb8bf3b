//! ephgateway while things change under it: envs created and deleted while it runs, the API
//! server restarting, and its own shutdown draining requests in flight.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use devcluster::DevCluster;
use ephemerator_core::Phase;
use ephemerator_kit::cluster::{ApiHealth, bounded_client};

#[tokio::test]
async fn envs_start_and_stop_routing_while_it_runs() {
    let cluster = devcluster().await;
    let dashboard = env_server().await;
    let gateway = Gateway::start(settings(cluster.client(), Auth::None, dashboard.addr)).await;
    let env = env_server().await;
    let port = env.addr.port();
    let host = env_host(port, "kate");
    assert_eq!(gateway.get(&host, "/", &[]).await.status, 404);

    put_env(&cluster.client(), "kate", Phase::Starting, &[], "building").await;
    wait_for("the starting page", || async {
        (gateway.get(&host, "/", &[]).await.status == 503).then_some(())
    })
    .await;
    put_env(&cluster.client(), "kate", Phase::Ready, &[port], "").await;
    wait_for("kate routed", || async {
        (gateway.get(&host, "/", &[]).await.body == "hello from the env").then_some(())
    })
    .await;
    delete_env(&cluster.client(), "kate").await;
    wait_for("kate gone", || async {
        let answer = gateway.get(&host, "/", &[]).await;
        answer
            .body
            .contains("There might have been an environment here once")
            .then_some(())
    })
    .await;
}

async fn cluster_at(data: &std::path::Path, addr: Option<std::net::SocketAddr>) -> DevCluster {
    let mut builder = DevCluster::builder().data_dir(data);
    if let Some(addr) = addr {
        builder = builder.listen(addr);
    }
    builder.start().await.expect("devcluster starts")
}

#[tokio::test]
async fn routes_survive_an_api_server_restart_and_follow_changes_after_it() {
    let data = tempfile::tempdir().unwrap();
    let cluster = cluster_at(data.path(), None).await;
    let addr = cluster.addr();
    let client = cluster.client();
    // The client as the binary builds it: bounded requests, health reported.
    let health = ApiHealth::default();
    let gateway_client = bounded_client(
        kube::Config::new(cluster.url().parse().unwrap()),
        Duration::from_secs(5),
        health.clone(),
    )
    .unwrap();
    let dashboard = env_server().await;
    let mut gateway_settings = settings(gateway_client, Auth::None, dashboard.addr);
    gateway_settings.api_health = health;
    let gateway = Gateway::start(gateway_settings).await;

    let (old, new) = (env_server().await, env_server().await);
    put_env(&client, "old", Phase::Ready, &[old.addr.port()], "").await;
    let old_host = env_host(old.addr.port(), "old");
    wait_for("old routed", || async {
        (gateway.get(&old_host, "/", &[]).await.status == 200).then_some(())
    })
    .await;

    cluster.stop().await;
    // While the API server is down the gateway keeps routing with what it knows, stays ready,
    // and says in its metrics that its routes may be stale.
    wait_for("the outage noticed", || async {
        gateway
            .admin("/metrics")
            .await
            .body
            .contains("ephgateway_api_answering 0")
            .then_some(())
    })
    .await;
    assert_eq!(gateway.get(&old_host, "/", &[]).await.status, 200);
    assert_eq!(gateway.admin("/readyz").await.status, 200);

    let cluster = cluster_at(data.path(), Some(addr)).await;
    let client = cluster.client();
    put_env(&client, "new", Phase::Ready, &[new.addr.port()], "").await;
    delete_env(&client, "old").await;
    let new_host = env_host(new.addr.port(), "new");
    wait_for("new routed after the restart", || async {
        (gateway.get(&new_host, "/", &[]).await.status == 200).then_some(())
    })
    .await;
    wait_for("old gone after the restart", || async {
        (gateway.get(&old_host, "/", &[]).await.status == 404).then_some(())
    })
    .await;
    wait_for("the API server seen again", || async {
        gateway
            .admin("/metrics")
            .await
            .body
            .contains("ephgateway_api_answering 1")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_takes_no_new_ones() {
    let cluster = devcluster().await;
    let dashboard = env_server().await;
    let gateway = Gateway::start(settings(cluster.client(), Auth::None, dashboard.addr)).await;
    let env = env_server().await;
    let port = env.addr.port();
    put_env(&cluster.client(), "liam", Phase::Ready, &[port], "").await;
    let host = env_host(port, "liam");
    wait_for("liam routed", || async {
        (gateway.get(&host, "/", &[]).await.status == 200).then_some(())
    })
    .await;

    let addr = gateway.running.addr;
    let in_flight = {
        let host = host.clone();
        tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<hyper::body::Bytes>>();
            let request = hyper::Request::get(format!("http://{addr}/hold"))
                .header("host", host)
                .body(http_body_util::Full::default())
                .unwrap();
            Answer::read(client.request(request).await.unwrap()).await
        })
    };
    let before = env.requests.load(Ordering::SeqCst);
    wait_for("the held request at the env", || async {
        (env.requests.load(Ordering::SeqCst) > before).then_some(())
    })
    .await;
    let Gateway { running, .. } = gateway;
    let stopping = tokio::spawn(running.stop());
    wait_for("new connections refused", || async {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(!stopping.is_finished(), "a request is still in flight");
    env.release.notify_one();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "released");
    tokio::time::timeout(DEADLINE, stopping)
        .await
        .unwrap()
        .unwrap();
}
