//! The whole local stack in a real browser (headless Chromium over WebDriver): the dashboard
//! through the gateway, an env created from the sample repository with a discovered branch and
//! Tiltfile, Ready without a reload, its setup logs, its app through the gateway, its Tilt's
//! live view over a WebSocket through the gateway, extended, deleted, and the not-found page at its
//! old host. Every step leaves `target/screenshots/local-<step>.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test.sh` installs them); without
//! them the test fails rather than skipping.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ephemerator_testkit::fantoccini::Locator;
use ephemerator_testkit::fantoccini::key::Key;
use ephemerator_testkit::{Browser, DEADLINE, MARK, MARKED, free_port};
use ephlocal::{LocalSettings, RunnerPorts};
use serde_json::json;

#[tokio::test]
async fn a_browser_goes_from_the_form_to_the_env_and_back() {
    let data = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut settings = LocalSettings::new(&root, data.path());
    settings.port = 0;
    settings.runner_ports = RunnerPorts {
        tilt: free_port(),
        web: free_port(),
    };
    settings.git_port = free_port();
    settings.pod_ready_delay = Duration::from_millis(500);
    let (tilt_port, web_port) = (settings.runner_ports.tilt, settings.runner_ports.web);
    let sample = ephlocal::sample_repo_url(settings.git_port);
    let stack = ephlocal::start(settings).await.unwrap();
    let base = stack.url.trim_end_matches('/').to_string();
    let gateway_port = stack.gateway_addr.port();
    let browser = Browser::start(base.clone(), "local").await;

    // Create from the sample repository: its branch and Tiltfile are discovered over git.
    browser.goto("/").await;
    browser.run(MARK).await;
    browser
        .fill_create_form(&sample, "feature/login", "deploy/staging/Tiltfile")
        .await;
    browser.screenshot("create").await;
    browser.type_into("#path", &Key::Enter.to_string()).await;

    // Ready on the list, through htmx's polling, without a reload.
    let env = browser
        .until(
            "the new env Ready on the list",
            "var row = document.querySelector('li.env.mine'); \
             var p = row && row.querySelector('span.phase[data-phase]'); \
             return p && p.getAttribute('data-phase') === 'Ready' \
               && row.querySelector('ul.endpoints a') !== null ? row.id.slice(4) : null",
        )
        .await;
    let env = env.as_str().unwrap().to_string();
    assert_eq!(browser.run(MARKED).await, json!(true), "the page reloaded");
    browser.screenshot("ready").await;

    // The setup logs on the env's page.
    browser
        .click(
            "the link to the env's page",
            Locator::XPath(&format!(
                "//li[@id='env-{env}']//a[starts-with(normalize-space(), 'Events, setup logs')]"
            )),
        )
        .await;
    browser
        .until(
            "the setup logs",
            "return Array.from(document.querySelectorAll('pre.log')) \
             .some(function (p) { return p.textContent.includes('Successfully loaded Tiltfile'); })",
        )
        .await;
    browser.screenshot("logs").await;

    // The env's app through the gateway, from the link on the list.
    browser.goto("/").await;
    let app_url = browser
        .until(
            "the app's link",
            &format!(
                "var a = Array.from(document.querySelectorAll('#env-{env} ul.endpoints a')) \
                 .find(function (a) {{ return a.href.startsWith('http://{web_port}---'); }}); \
                 return a ? a.href : null"
            ),
        )
        .await;
    let app_url = app_url.as_str().unwrap().to_string();
    assert_eq!(
        app_url,
        format!("http://{web_port}---{env}.preview.localhost:{gateway_port}/")
    );
    browser.client.goto(&app_url).await.unwrap();
    browser
        .until(
            "the app's page",
            "return document.body.innerText.includes('deploy/staging/Tiltfile') \
             && document.body.innerText.includes('feature/login')",
        )
        .await;
    browser.screenshot("app").await;

    // Tilt's live view through the gateway, from Tilt's own origin: its first message is the
    // view, which lists the app.
    let tilt_url = format!("http://{tilt_port}---{env}.preview.localhost:{gateway_port}/");
    browser.client.goto(&tilt_url).await.unwrap();
    browser
        .run(
            "window.__view = null; \
             var socket = new WebSocket('ws://' + location.host + '/ws/view'); \
             socket.onmessage = function (m) { window.__view = JSON.parse(m.data); };",
        )
        .await;
    let names = browser
        .until(
            "the view over the WebSocket",
            "return window.__view && window.__view.uiResources \
               .map(function (r) { return r.metadata.name; }).join(',')",
        )
        .await;
    assert_eq!(names, json!("(Tiltfile),web"));
    browser.screenshot("tilt").await;

    // Back on the dashboard: extend, then delete (accepting the confirmation).
    browser.goto("/").await;
    browser
        .until("htmx on the list", "return typeof htmx !== 'undefined'")
        .await;
    browser
        .click(
            "Extend",
            Locator::Css(&format!("#env-{env} form[action$='/extend'] button")),
        )
        .await;
    browser
        .until(
            "the notice of the extension",
            "return document.querySelector('#notice').textContent.includes('now expires at')",
        )
        .await;
    browser.screenshot("extended").await;
    browser
        .click(
            "Delete",
            Locator::Css(&format!("#env-{env} form[action$='/delete'] button")),
        )
        .await;
    let question = browser.accept_confirm().await;
    assert_eq!(question, format!("Delete {env}?"));
    browser
        .until(
            "the env gone from the list",
            &format!("return document.querySelector('#env-{env}') === null"),
        )
        .await;
    browser.screenshot("deleted").await;

    // Its old host: the gateway's not-found page.
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        browser.client.goto(&app_url).await.unwrap();
        let text = browser.run("return document.body.innerText").await;
        if text
            .as_str()
            .is_some_and(|t| t.contains("There might have been an environment here once"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "no not-found page at {app_url}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.screenshot("gone").await;

    browser.client.clone().close().await.unwrap();
    stack.stop().await;
}
