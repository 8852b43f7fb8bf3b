//! A sleeping env in a real browser (headless Chromium over WebDriver), on the whole local
//! stack: its app's address, opened, shows the gateway's waking page at once, and then the app,
//! with nobody reloading the page (the waking page follows the wake by itself). Leaves
//! `target/screenshots/waking-<step>.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test.sh` installs them); without
//! them the test fails rather than skipping.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use ephemerator_core::{EnvStatus, Phase};
use ephemerator_testkit::{Browser, free_port, wait_for};
use ephlocal::RunnerPorts;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

#[tokio::test]
async fn in_a_browser_a_sleeping_envs_address_shows_the_waking_page_then_the_app() {
    let data = tempfile::tempdir().unwrap();
    let ports = RunnerPorts {
        tilt: free_port(),
        web: free_port(),
    };
    let mut settings = settings(data.path(), ports, free_port());
    // Long enough for the waking page to be seen, short enough for a quick test.
    settings.pod_ready_delay = Duration::from_secs(2);
    let sample = ephlocal::sample_repo_url(settings.git_port);
    let stack = ephlocal::start(settings).await.unwrap();
    let env = create_env(&stack, &sample, "feature/login", "deploy/staging/Tiltfile").await;
    ready_status(&stack, &env).await;

    // The team lead turns sleeping on: the unused env falls asleep.
    let config = std::fs::read_to_string(&stack.config_file).unwrap();
    ephemerator_testkit::replace_file(&stack.config_file, format!("{config}sleepAfter: 3s\n"))
        .unwrap();
    let envs = Api::<ConfigMap>::namespaced(stack.client(), "default");
    wait_for(&format!("{env} asleep"), || async {
        let cm = envs.get_opt(&env).await.ok()??;
        (EnvStatus::from_meta(&cm.metadata).phase == Phase::Sleeping).then_some(())
    })
    .await;

    // Someone opens its app's address (a link in a review, say).
    let base = stack.url.trim_end_matches('/').to_string();
    let browser = Browser::start(base, "waking").await;
    let app_url = format!(
        "http://{}---{env}.preview.localhost:{}/",
        ports.web,
        stack.gateway_addr.port()
    );
    browser.client.goto(&app_url).await.unwrap();
    browser
        .until(
            "the waking page",
            &format!(
                "return document.querySelector('h1') \
                 && document.querySelector('h1').textContent === 'Environment {env} is waking up'"
            ),
        )
        .await;
    browser.screenshot("page").await;
    // Then the app, in the same tab, nobody reloading it.
    browser
        .until(
            "the app's page",
            "return document.body && document.body.innerText.includes('deploy/staging/Tiltfile')",
        )
        .await;
    browser.screenshot("app").await;
    assert_eq!(
        browser.run("return location.href").await,
        serde_json::json!(app_url),
        "the same address"
    );
}
