//! ephdash in a real browser: headless Chromium driven over WebDriver (chromedriver), against
//! the dashboard, a devcluster and ephctrl in-process. One user creates an env, watches its
//! phase reach Ready without a reload (htmx), reads its setup logs, extends it and deletes it
//! (accepting the confirm dialog); someone else's sleeping env is woken with its Wake button;
//! every step leaves a screenshot in `target/screenshots/dashboard-<step>.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test.sh` installs them); without
//! them the test fails rather than skipping.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Dash, HTML_REPO};
use ephdash::identity::IdentitySource;
use ephemerator_testkit::fantoccini::Locator;
use ephemerator_testkit::fantoccini::key::Key;
use ephemerator_testkit::{Browser, DEADLINE, DESKTOP, MARK, MARKED, PHONE};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;

/// The repo entry lists its branches and Tiltfiles, so the form offers them without asking
/// any git host (tests send nothing off this machine).
const BROWSER_CONFIG: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repos:
    - url: https://github.com/tilt-dev/tilt-example-html
      branches: [main, develop]
      paths: [0-base/Tiltfile, 1-measured/Tiltfile]
expiration: {defaultTTL: 15m, extendBy: 15m, maxLifetime: 1h}
maxEnvsPerUser: 1
"#;

/// The env the fake user's create makes (named after its owner).
const ENV: &str = "nicks";

#[tokio::test]
async fn a_browser_creates_watches_extends_and_deletes_an_env() {
    let dash = Dash::start_with(BROWSER_CONFIG, IdentitySource::Fake(ENV.into())).await;
    let config = ephemerator_core::Config::from_yaml_str(BROWSER_CONFIG, "test.yaml").unwrap();
    let ctrl = ephctrl::testing::start(ephctrl::testing::settings(
        dash.client(),
        common::NAMESPACE,
        config,
    ));
    // Always the same host (the dashboard compares a POST's Origin with its Host).
    let browser = Browser::start(format!("http://{}", dash.running.addr), "dashboard").await;
    let row = format!("#env-{ENV}");

    // Create, by keyboard alone: the form filled in (typing, Tab between fields), then
    // Enter in the last field submits it, posted by htmx.
    browser.goto("/").await;
    browser.run(MARK).await;
    browser
        .fill_create_form(HTML_REPO, "main", "0-base/Tiltfile")
        .await;
    browser.screenshot("create").await;
    browser.type_into("#path", &Key::Enter.to_string()).await;

    // The row appears and its phase goes to Ready through htmx's polling, no reload.
    let phase = format!(
        "var p = document.querySelector('{row} span.phase[data-phase]'); \
         return p ? p.getAttribute('data-phase') : null"
    );
    let mut phases: Vec<String> = Vec::new();
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let seen = browser.until("the new env on the list", &phase).await;
        let seen = seen.as_str().unwrap_or_default().to_string();
        if phases.last() != Some(&seen) {
            phases.push(seen.clone());
        }
        if seen == "Ready" {
            break;
        }
        if tokio::time::Instant::now() >= until {
            browser
                .fail("the phase Ready", &format!("phases seen: {phases:?}"))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("phases seen: {phases:?}");
    assert_eq!(browser.run(MARKED).await, json!(true), "the page reloaded");
    browser.screenshot("ready").await;

    // The same page at phone width.
    browser.viewport(PHONE).await;
    browser.screenshot("phone").await;
    browser.viewport(DESKTOP).await;

    // The env's page: ephctrl's Events and the runner's setup logs.
    browser
        .click(
            "the link to the env's page",
            Locator::XPath(&format!(
                "//li[@id='env-{ENV}']//a[starts-with(normalize-space(), 'Events, setup logs')]"
            )),
        )
        .await;
    browser
        .until(
            "the setup logs",
            &format!(
                "return location.pathname === '/envs/{ENV}' && \
                 Array.from(document.querySelectorAll('pre.log')) \
                 .some(function (p) {{ return p.textContent.includes('container tilt-upper started'); }})"
            ),
        )
        .await;
    browser
        .until(
            "the Ready Event",
            "return Array.from(document.querySelectorAll('ol.events strong')) \
             .some(function (s) { return s.textContent === 'Ready'; })",
        )
        .await;
    browser.screenshot("logs").await;

    // A share link, made on the env's page: listed with the address to give out.
    browser
        .click("Make a share link", Locator::Css("form.new-link button"))
        .await;
    browser
        .until(
            "the link listed with its address",
            "var input = document.querySelector('.share-link .link-url'); \
             return input !== null && input.value.includes('/__ephemerator/link/')",
        )
        .await;
    browser.screenshot("share-link").await;

    // Back to the list; Extend answers with a notice and the list shows the later time.
    browser
        .click(
            "the link back to the list",
            Locator::XPath("//main//a[normalize-space()='← All environments']"),
        )
        .await;
    let expires = format!(
        "var t = document.querySelector('{row} time[data-expires]'); return t ? t.getAttribute('data-expires') : null"
    );
    let before = browser.until("the list again", &expires).await;
    browser
        .until("htmx on the list", "return typeof htmx !== 'undefined'")
        .await;
    browser.run(MARK).await;
    browser
        .click(
            "Extend",
            Locator::Css(&format!("{row} form[action$='/extend'] button")),
        )
        .await;
    browser
        .until(
            "the notice of the extension",
            "return document.querySelector('#notice').textContent.includes('now expires at')",
        )
        .await;
    browser
        .until(
            "the later expiry on the list",
            &format!(
                "var t = document.querySelector('{row} time[data-expires]'); \
                 return t !== null && t.getAttribute('data-expires') !== {before}"
            ),
        )
        .await;
    browser.screenshot("extended").await;

    // Delete asks first (hx-confirm): the dialog is accepted through WebDriver.
    browser
        .click(
            "Delete",
            Locator::Css(&format!("{row} form[action$='/delete'] button")),
        )
        .await;
    let question = browser.accept_confirm().await;
    assert_eq!(question, format!("Delete {ENV}?"));
    browser
        .until(
            "the notice of the deletion",
            "return document.querySelector('#notice').textContent.includes('is being deleted')",
        )
        .await;
    browser
        .until(
            "the env gone from the list",
            &format!("return document.querySelector('{row}') === null"),
        )
        .await;
    assert_eq!(browser.run(MARKED).await, json!(true), "the page reloaded");
    assert!(
        Api::<ConfigMap>::namespaced(dash.client(), common::NAMESPACE)
            .get_opt(ENV)
            .await
            .unwrap()
            .is_none(),
        "the ConfigMap is deleted"
    );
    browser.screenshot("deleted").await;

    browser.client.clone().close().await.unwrap();
    drop(ctrl);
}

/// Someone else's sleeping env, open to the team: its Wake button (in the row every viewer
/// shares, with this viewer's token put in) asks ephctrl to wake it, naming who pressed it.
#[tokio::test]
async fn a_browser_wakes_a_sleeping_env() {
    use ephemerator_core::labels::WAKE_ANNOTATION;
    use ephemerator_core::{EnvSpec, EnvStatus, Phase, env_config_map};
    use jiff::{SignedDuration, Timestamp};

    let dash = Dash::start_with(BROWSER_CONFIG, IdentitySource::Fake(ENV.into())).await;
    let spec = EnvSpec {
        repo: HTML_REPO.into(),
        branch: "main".into(),
        path: "0-base/Tiltfile".into(),
    };
    let mut olga = env_config_map(
        "olga",
        "olga",
        &spec,
        Some(Timestamp::now() + SignedDuration::from_mins(10)),
    );
    EnvStatus {
        phase: Phase::Sleeping,
        asleep_since: Some(Timestamp::now() - SignedDuration::from_mins(20)),
        ..EnvStatus::default()
    }
    .write_to(&mut olga.metadata);
    let config_maps = Api::<ConfigMap>::namespaced(dash.client(), common::NAMESPACE);
    config_maps
        .create(&Default::default(), &olga)
        .await
        .unwrap();
    let browser = Browser::start(format!("http://{}", dash.running.addr), "dashboard").await;
    browser.goto("/").await;
    browser
        .until(
            "the sleeping env with its Wake button, and htmx",
            "return typeof htmx !== 'undefined' && \
             document.querySelector('#env-olga span.phase.asleep') !== null && \
             document.querySelector('#env-olga form[action$=\"/wake\"] button') !== null",
        )
        .await;
    browser.screenshot("asleep").await;
    browser
        .click(
            "Wake",
            Locator::Css("#env-olga form[action$='/wake'] button"),
        )
        .await;
    browser
        .until(
            "the notice of the wake",
            "return document.querySelector('#notice').textContent.includes('Waking olga')",
        )
        .await;
    common::wait_for("the wake annotation", || async {
        let olga = config_maps.get("olga").await.unwrap();
        let asked = olga.metadata.annotations?.get(WAKE_ANNOTATION).cloned();
        (asked.as_deref() == Some(ENV)).then_some(())
    })
    .await;
    browser.screenshot("woken").await;
    browser.client.clone().close().await.unwrap();
}

/// A team lead's broken edit of the config file: the admin's open page shows the banner (with
/// the file, line and column) without a reload, and loses it when the file is fixed.
#[tokio::test]
async fn an_admin_sees_the_refused_config_without_reloading() {
    let admin = "root@example.com";
    let good = format!("{BROWSER_CONFIG}admins: [{admin}]\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ephemerator.yaml");
    std::fs::write(&path, &good).unwrap();
    let live = ephemerator_kit::LiveConfig::watch(
        &path,
        ephemerator_core::Config::load(&path).unwrap(),
        Duration::from_millis(100),
    );
    let dash = Dash::start_live(live, IdentitySource::Fake(admin.into())).await;
    let browser = Browser::start(format!("http://{}", dash.running.addr), "dashboard").await;
    browser.goto("/").await;
    browser.run(MARK).await;
    assert_eq!(
        browser
            .run("return document.querySelector('.banner') === null")
            .await,
        json!(true)
    );

    ephemerator_testkit::replace_file(&path, good.replace("extendBy: 15m", "extendBy: 15 minutes"))
        .unwrap();
    let shown = browser
        .until(
            "the banner",
            "var b = document.querySelector('.banner[role=alert] pre'); return b ? b.textContent : null",
        )
        .await;
    let shown = shown.as_str().unwrap_or_default();
    assert!(
        shown.starts_with(&format!("{}:", path.display()))
            && shown.contains("expiration.extendBy: invalid duration \"15 minutes\""),
        "{shown}"
    );
    assert_eq!(browser.run(MARKED).await, json!(true), "the page reloaded");
    browser.screenshot("config-refused").await;

    ephemerator_testkit::replace_file(&path, &good).unwrap();
    browser
        .until(
            "the banner gone",
            "return document.querySelector('#envs') !== null && document.querySelector('.banner') === null",
        )
        .await;
}
