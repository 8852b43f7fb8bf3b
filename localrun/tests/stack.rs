//! The whole local stack over HTTP, as a newcomer uses it: the dashboard through the gateway,
//! an env created from the form, Ready with its ports discovered from the simulated runner,
//! its app page and a WebSocket through the gateway, deleted, and envs kept across a restart.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_testkit::{free_port, wait_for};
use ephlocal::RunnerPorts;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn an_env_goes_from_the_form_to_its_page_through_the_gateway_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let ports = RunnerPorts {
        tilt: free_port(),
        web: free_port(),
    };
    let git_port = free_port();
    let stack = ephlocal::start(settings(data.path(), ports, git_port))
        .await
        .unwrap();
    assert!(
        stack.url.starts_with("http://preview.localhost:"),
        "{}",
        stack.url
    );

    // The sample repository's branches and Tiltfiles, discovered over git on loopback.
    let sample = ephlocal::sample_repo_url(git_port);
    let query = form(&[("repo", &sample)]);
    let path = format!("/form/branches?{query}");
    let branches = request(
        &stack,
        "GET",
        "preview.localhost",
        &path,
        &[],
        String::new(),
    )
    .await;
    assert_eq!(branches.status, 200, "{}", branches.body);
    assert!(
        branches.body.contains("feature&#x2F;login") && branches.body.contains("main"),
        "{}",
        branches.body
    );
    let query = form(&[("repo", &sample), ("branch", "feature/login")]);
    let path = format!("/form/paths?{query}");
    let paths = request(
        &stack,
        "GET",
        "preview.localhost",
        &path,
        &[],
        String::new(),
    )
    .await;
    for tiltfile in [
        "Tiltfile",
        "services/api/Tiltfile",
        "deploy/staging/Tiltfile",
    ] {
        // tera escapes `/` in attribute values.
        let escaped = tiltfile.replace('/', "&#x2F;");
        assert!(paths.body.contains(&escaped), "{tiltfile}: {}", paths.body);
    }

    let name = create_env(&stack, &sample, "feature/login", "deploy/staging/Tiltfile").await;
    let status = ready_status(&stack, &name).await;
    // Ports as ephctrl discovered them from the simulated Tilt: Tilt's own and the app's.
    let published: Vec<u16> = status.ports.iter().map(|p| p.port).collect();
    assert_eq!(published, {
        let mut expected = vec![ports.tilt, ports.web];
        expected.sort();
        expected
    });

    // The app's page through the gateway, and the dashboard's link to it (with the port).
    let app_host = format!("{}---{name}.preview.localhost", ports.web);
    let app = wait_for("the app through the gateway", || async {
        let app = request(&stack, "GET", &app_host, "/", &[], String::new()).await;
        (app.status == 200).then_some(app)
    })
    .await;
    assert!(app.body.contains(&sample), "{}", app.body);
    assert!(app.body.contains("deploy/staging/Tiltfile") && app.body.contains("feature/login"));
    let list = request(
        &stack,
        "GET",
        "preview.localhost",
        "/envs",
        &[],
        String::new(),
    )
    .await;
    let link = format!(
        "http:&#x2F;&#x2F;{app_host}:{}&#x2F;",
        stack.gateway_addr.port()
    );
    assert!(list.body.contains(&link), "{link} in {}", list.body);

    // Tilt's WebSocket through the gateway, with the browser's Origin.
    let tilt_host = format!(
        "{}---{name}.preview.localhost:{}",
        ports.tilt,
        stack.gateway_addr.port()
    );
    let mut ws = format!("ws://{}/ws/view", stack.gateway_addr)
        .into_client_request()
        .unwrap();
    ws.headers_mut().insert("host", tilt_host.parse().unwrap());
    ws.headers_mut()
        .insert("origin", format!("http://{tilt_host}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let first = socket.next().await.unwrap().unwrap();
    assert!(first.into_text().unwrap().contains("\"uiResources\""));
    drop(socket);

    // A second env, then a restart on the same data: both are still there and served.
    let second = create_env(
        &stack,
        "https://github.com/tilt-dev/tilt-example-html",
        "master",
        "0-base/Tiltfile",
    )
    .await;
    ready_status(&stack, &second).await;
    stack.stop().await;
    let stack = ephlocal::start(settings(data.path(), ports, git_port))
        .await
        .unwrap();
    for env in [&name, &second] {
        let host = format!("{}---{env}.preview.localhost", ports.web);
        wait_for(&format!("{env} served after the restart"), || async {
            let app = request(&stack, "GET", &host, "/", &[], String::new()).await;
            (app.status == 200).then_some(())
        })
        .await;
    }

    // Deleted from the dashboard: its host answers with the not-found page.
    let token = csrf_token(&stack).await;
    let origin = format!("http://preview.localhost:{}", stack.gateway_addr.port());
    let deleted = request(
        &stack,
        "POST",
        "preview.localhost",
        &format!("/envs/{name}/delete"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
        ],
        form(&[("csrf", &token)]),
    )
    .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    wait_for("the not-found page at the deleted env's host", || async {
        let app = request(&stack, "GET", &app_host, "/", &[], String::new()).await;
        (app.status == 404
            && app
                .body
                .contains("There might have been an environment here once"))
        .then_some(())
    })
    .await;

    // A team lead edits the config file the stack follows: a new repo is offered at once.
    let file = std::fs::read_to_string(&stack.config_file).unwrap();
    assert!(!file.contains("tilt-example-rust"));
    let edited = file.replace(
        "  repos:\n",
        "  repos:\n    - url: https://github.com/tilt-dev/tilt-example-rust\n      branches: [main]\n      paths: [Tiltfile]\n",
    );
    ephemerator_testkit::replace_file(&stack.config_file, edited).unwrap();
    wait_for("the new repo offered on the dashboard", || async {
        let page = request(&stack, "GET", "preview.localhost", "/", &[], String::new()).await;
        page.body.contains("tilt-example-rust").then_some(())
    })
    .await;
    stack.stop().await;
}
