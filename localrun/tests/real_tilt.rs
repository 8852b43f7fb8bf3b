//! The local stack with the real Tilt as its runner (`realprograms`' build of Tilt 0.34.0): an
//! env of the sample repository is cloned at its branch and its Tiltfile runs, ephctrl finds
//! the app's port from that Tilt, the app, Tilt's page and its live view answer through the
//! gateway, Tilt's output is the runner's setup log, and deleting the env stops it all.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_testkit::{free_port, wait_for};
use ephlocal::{RunnerKind, RunnerPorts};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_of_the_sample_repo_runs_on_the_real_tilt_and_stops_with_it() {
    let data = tempfile::tempdir().unwrap();
    let ports = RunnerPorts {
        tilt: free_port(),
        web: free_port(),
    };
    let git_port = free_port();
    let mut settings = settings(data.path(), ports, git_port);
    settings.runners = RunnerKind::Tilt(realprograms::binary("tilt").await.unwrap());
    let stack = ephlocal::start(settings).await.unwrap();
    let gateway_port = stack.gateway_addr.port();

    let sample = ephlocal::sample_repo_url(git_port);
    let name = create_env(&stack, &sample, "main", "Tiltfile").await;
    let status = ready_status(&stack, &name).await;
    // Tilt's port and the one the sample Tiltfile's `web` serves on, from the real Tilt.
    let web = status
        .ports
        .iter()
        .find(|p| p.name == "web")
        .unwrap_or_else(|| panic!("a web port in {status:?}"))
        .port;
    assert!(
        status
            .ports
            .iter()
            .any(|p| p.name == "tilt" && p.port == ports.tilt)
    );
    assert_ne!(
        web, ports.web,
        "the real app listens where its Tiltfile says"
    );

    // The app through the gateway: Python serving the env's checkout.
    let app_host = format!("{web}---{name}.preview.localhost");
    let app = wait_for("the app through the gateway", || async {
        let app = request(&stack, "GET", &app_host, "/", &[], String::new()).await;
        (app.status == 200).then_some(app)
    })
    .await;
    assert!(app.body.contains("Directory listing"), "{}", app.body);
    assert!(app.body.contains("README.md") && app.body.contains("Tiltfile"));

    // Tilt's page and its live view, through the gateway and the runners' Tilt port.
    let tilt_host = format!("{}---{name}.preview.localhost", ports.tilt);
    let page = request(&stack, "GET", &tilt_host, "/", &[], String::new()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>Tilt</title>"), "{}", page.body);
    let with_port = format!("{tilt_host}:{gateway_port}");
    let mut ws = format!("ws://{}/ws/view", stack.gateway_addr)
        .into_client_request()
        .unwrap();
    ws.headers_mut().insert("host", with_port.parse().unwrap());
    ws.headers_mut()
        .insert("origin", format!("http://{with_port}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(ws)
        .await
        .expect("Tilt's live view opens from Tilt's own page");
    let first = socket.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"uiResources\""));
    drop(socket);

    // The setup log is the runner's: the clone, then Tilt's own output.
    let pods: Api<Pod> = Api::namespaced(stack.client(), "default");
    let pod = pods
        .list(&ListParams::default().labels(&format!("ephemerator.tilt.dev/owner-name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .expect("the runner pod");
    let log = wait_for("Tilt's output in the setup log", || async {
        let log = pods
            .logs(
                pod.metadata.name.as_deref().unwrap(),
                &LogParams {
                    container: Some("tilt-upper".into()),
                    ..LogParams::default()
                },
            )
            .await
            .ok()?;
        log.contains("Serving HTTP on 127.0.0.1").then_some(log)
    })
    .await;
    assert!(log.contains(&format!("cloning {sample} at main")), "{log}");
    assert!(log.contains("Tilt started on http://127.0.0.1:"), "{log}");

    // Deleted: the runner stops, and Tilt stops the app it started.
    let envs: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(stack.client(), "default");
    envs.delete(&name, &Default::default()).await.unwrap();
    wait_for("the app to stop with its Tilt", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", web))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(!stack.runners.is_running(&name));
    stack.stop().await;
}
