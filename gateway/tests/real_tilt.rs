//! ephgateway in front of the real Tilt (`realprograms`: `tilt up` of a local-only Tiltfile):
//! Tilt's page and its `/ws/view` WebSocket at `PORT---ENV.<gatewayHost>` (Tilt's own origin
//! check passes because the gateway forwards the env host), and the port of the app a
//! `local_resource` serves.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::Phase;
use futures::StreamExt;
use realprograms::tilt::{RealTilt, http_server_resource};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tilts_page_its_live_view_and_the_apps_port_go_through_the_gateway() {
    let cluster = devcluster().await;
    let app_port = ephemerator_testkit::free_port();
    let tilt = RealTilt::start(&http_server_resource("web", app_port), "token-1")
        .await
        .expect("tilt up starts");
    let dashboard = env_server().await;
    let gateway = Gateway::start(settings(cluster.client(), Auth::None, dashboard.addr)).await;
    // The env as ephctrl leaves it once Tilt reported the app (both ports on loopback).
    put_env(
        &cluster.client(),
        "tina",
        Phase::Ready,
        &[tilt.port(), app_port],
        "",
    )
    .await;
    let tilt_host = env_host(tilt.port(), "tina");

    // Tilt's page, with the token cookie Tilt sets for its host.
    let page = wait_for("Tilt's page through the gateway", || async {
        let page = gateway
            .get(&tilt_host, "/", &[("accept", "text/html")])
            .await;
        (page.status == 200).then_some(page)
    })
    .await;
    assert!(page.body.contains("<title>Tilt</title>"), "{}", page.body);
    assert_eq!(page.set_cookies, ["Tilt-Token=token-1; Path=/"]);

    // The live view: the socket opens from Tilt's own page, and its first message is the view.
    let connect = |origin: String| {
        let host = tilt_host.clone();
        let addr = gateway.running.addr;
        async move {
            let mut request = format!("ws://{addr}/ws/view")
                .into_client_request()
                .unwrap();
            let headers = request.headers_mut();
            headers.insert("host", host.parse().unwrap());
            headers.insert("origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async(request).await
        }
    };
    let (mut socket, response) = connect(format!("http://{tilt_host}"))
        .await
        .expect("Tilt accepts its own page's socket through the gateway");
    assert_eq!(response.status(), 101);
    let first = tokio::time::timeout(DEADLINE, socket.next())
        .await
        .expect("Tilt sends its view")
        .expect("a message")
        .expect("a good message");
    let view: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    let names: Vec<&str> = view["uiResources"]
        .as_array()
        .expect("the view lists the resources")
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"web"), "{names:?}");

    // A page of another env (a sibling host) cannot open it: Tilt refuses, the gateway says so.
    let refused = connect(format!("http://{}", env_host(app_port, "mallory")))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");

    // The app's port: Python's server, started by Tilt.
    let app = wait_for("the app through the gateway", || async {
        let page = gateway
            .get(&env_host(app_port, "tina"), "/", &[("accept", "text/html")])
            .await;
        (page.status == 200).then_some(page)
    })
    .await;
    assert!(app.body.contains("Directory listing"), "{}", app.body);
    assert!(app.body.contains("Tiltfile"), "{}", app.body);
}
