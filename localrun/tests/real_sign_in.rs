//! A person in a real browser (headless Chromium over WebDriver) against the local stack run as
//! a cluster runs it: signed in by the real oauth2-proxy (v7.15.6) and an OIDC provider (no
//! fake user), envs run by the real Tilt. Signing in, creating an env, opening its app and its
//! Tilt page (whose live view is Tilt's WebSocket), a session oauth2-proxy no longer accepts
//! cleared from the browser and signed in again, and signing out. Every step leaves `target/screenshots/sign-in-<step>.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test.sh` installs them) and the
//! programs of `testprograms/`; without them the test fails rather than skipping.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ephemerator_testkit::fantoccini::Locator;
use ephemerator_testkit::fantoccini::key::Key;
use ephemerator_testkit::{Browser, free_port};
use ephlocal::{LocalAuth, LocalSettings, RunnerKind, RunnerPorts};
use realprograms::oauth2_proxy::{
    COOKIE_NAME, MockOidc, OAuth2Proxy, OAuth2ProxySettings, OidcUser,
};

fn user(name: &str) -> OidcUser {
    OidcUser {
        sub: format!("sub-of-{name}"),
        email: format!("{name}@example.com"),
        preferred_username: Some(name.to_string()),
        groups: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_real_oauth2_proxy_creates_an_env_and_signs_out() {
    let oidc = MockOidc::start().await.expect("mockoidc starts");
    let gateway_port = free_port();
    let public = format!("http://preview.localhost:{gateway_port}");
    let mut proxy_settings = OAuth2ProxySettings::new(oidc.issuer(), &public, ".preview.localhost");
    proxy_settings.port = Some(free_port());
    let proxy = OAuth2Proxy::start(&proxy_settings)
        .await
        .expect("oauth2-proxy starts");

    let data = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut settings = LocalSettings::new(&root, data.path());
    settings.port = gateway_port;
    settings.runner_ports = RunnerPorts {
        tilt: free_port(),
        web: free_port(),
    };
    settings.git_port = free_port();
    settings.pod_ready_delay = Duration::from_millis(500);
    settings.auth = LocalAuth::OAuth2Proxy(proxy.url());
    settings.runners = RunnerKind::Tilt(realprograms::binary("tilt").await.unwrap());
    let tilt_port = settings.runner_ports.tilt;
    let sample = ephlocal::sample_repo_url(settings.git_port);
    let stack = ephlocal::start(settings).await.unwrap();
    let browser = Browser::start(public.clone(), "sign-in").await;

    // Opening the dashboard goes through sign-in and back; the dashboard names the person by
    // the real headers: the OIDC provider's preferred username, not its opaque subject.
    browser.goto("/").await;
    browser
        .until(
            "the dashboard, signed in",
            "return document.querySelector('p.who strong')?.textContent === 'jane.doe'",
        )
        .await;
    browser.screenshot("signed-in").await;

    // An env of the sample repository, run by the real Tilt.
    browser.fill_create_form(&sample, "main", "Tiltfile").await;
    browser.type_into("#path", &Key::Enter.to_string()).await;
    let env = browser
        .until(
            "the new env Ready with its app's link",
            "var row = document.querySelector('li.env.mine'); \
             var p = row && row.querySelector('span.phase[data-phase]'); \
             return p && p.getAttribute('data-phase') === 'Ready' \
               && Array.from(row.querySelectorAll('ul.endpoints a')) \
                    .some(function (a) { return a.textContent.includes('web'); }) \
               ? row.id.slice(4) : null",
        )
        .await;
    let env = env.as_str().unwrap().to_string();
    assert!(env.starts_with("jane-doe"), "named after the person: {env}");
    browser.screenshot("ready").await;

    // The app, from its link: the sign-in cookie covers the env hosts.
    let app_url = browser
        .until(
            "the app's link",
            &format!(
                "var a = Array.from(document.querySelectorAll('#env-{env} ul.endpoints a')) \
                 .find(function (a) {{ return a.textContent.includes('web'); }}); \
                 return a ? a.href : null"
            ),
        )
        .await;
    browser
        .client
        .goto(app_url.as_str().unwrap())
        .await
        .unwrap();
    browser
        .until(
            "the app's page",
            "return document.body.innerText.includes('Directory listing') \
             && document.body.innerText.includes('README.md')",
        )
        .await;
    browser.screenshot("app").await;

    // Tilt's page: its live view lists the resources it gets over Tilt's WebSocket.
    browser
        .client
        .goto(&format!(
            "http://{tilt_port}---{env}.preview.localhost:{gateway_port}/"
        ))
        .await
        .unwrap();
    browser
        .until(
            "Tilt's live view of the app",
            "return document.querySelector('#socket')?.dataset.state === 'open' \
             && document.querySelector('li[data-resource=web]')?.textContent === 'web: ok'",
        )
        .await;
    browser.screenshot("tilt").await;

    // A session oauth2-proxy no longer accepts (its cookie secret was rotated, so the cookie's
    // signature no longer verifies, as a tampered one's does not): the gateway sends the
    // browser to sign in, passing oauth2-proxy's clearing of the cookie on (oauth2-proxy's
    // sign-in page clears it too; the gateway's part, which also serves htmx and API requests
    // that are never sent to sign in, is tested over HTTP in gateway/tests). The provider
    // refuses that sign-in, so the browser stops there, holding no session cookie any more.
    let stale = browser
        .client
        .get_named_cookie(COOKIE_NAME)
        .await
        .expect("a session cookie")
        .value()
        .to_string();
    proxy_settings.cookie_secret = "fedcba9876543210fedcba9876543210".to_string();
    let proxy = proxy
        .restart(&proxy_settings)
        .await
        .expect("oauth2-proxy restarts");
    oidc.refuse_next_login().await.unwrap();
    browser.goto("/").await;
    browser
        .until(
            // The gateway may reuse jane's answer for a few seconds (its auth cache).
            "the provider's refusal, after the stale session was refused",
            "if (document.body.innerText.includes('sign-in refused')) return true; \
             location.reload(); return false",
        )
        .await;
    assert!(
        browser.client.get_named_cookie(COOKIE_NAME).await.is_err(),
        "the stale session cookie was cleared"
    );
    browser.screenshot("stale-session-cleared").await;

    // Signing in again: the provider signs carol in, with a new session.
    oidc.queue_user(&user("carol")).await.unwrap();
    browser.goto("/").await;
    browser
        .until(
            "the dashboard, signed in again",
            "return document.querySelector('p.who strong')?.textContent === 'carol'",
        )
        .await;
    let renewed = browser.client.get_named_cookie(COOKIE_NAME).await.unwrap();
    assert_ne!(renewed.value(), stale);
    browser.screenshot("signed-in-again").await;

    // Signing out ends the session: the next sign-in is a new one (the provider signs bob in).
    oidc.queue_user(&user("bob")).await.unwrap();
    browser
        .click("Sign out", Locator::LinkText("Sign out"))
        .await;
    browser
        .until(
            "the dashboard, signed in as the next person",
            "return document.querySelector('p.who strong')?.textContent === 'bob'",
        )
        .await;
    browser.screenshot("signed-out-and-in").await;

    browser.client.clone().close().await.unwrap();
    stack.stop().await;
    drop(proxy);
}
