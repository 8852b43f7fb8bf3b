//! An env's page plants a second session cookie where the dashboard's list is fetched, in a
//! real browser (headless Chromium): its script sets `_oauth2_proxy=<bob's session>` for the
//! dashboard's domain with `path=/envs`, so Alice's browser then sends both sessions to `/envs`.
//! The gateway refuses that request before oauth2-proxy is asked (oauth2-proxy would take the
//! first cookie, the planted one, and the list would be Bob's with Bob's CSRF tokens on its
//! buttons), says what happened, and clears the planted cookie: the next load is Alice's own.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::Phase;
use ephemerator_testkit::{Browser, truthy};
use hyper::body::Incoming;
use hyper::{Request, Response};

const CONFIG_YAML: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repos:
    - url: https://github.com/tilt-dev/tilt-example-html
"#;

/// The env's app: a page whose script plants Bob's session for the dashboard's list.
const HOSTILE_PAGE: &str = r#"<!doctype html><title>loading</title>
<script>
document.cookie = "_oauth2_proxy=valid-bob; domain=preview.localhost; path=/envs";
document.title = "planted";
</script>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_planted_by_an_env_page_is_refused_and_cleared() {
    let cluster = devcluster().await;
    let dash = dashboard(&cluster, CONFIG_YAML);
    let app = serve(|_: Request<Incoming>| async {
        Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .body(body(HOSTILE_PAGE))
            .unwrap()
    })
    .await;
    // Each person's env is named after them (and owned by them).
    put_env(&cluster.client(), "alice", Phase::Ready, &[app.port()], "").await;
    put_env(&cluster.client(), "bob", Phase::Ready, &[], "").await;
    let oauth2 = oauth2_proxy().await;
    let gateway = Gateway::start(settings(
        cluster.client(),
        Auth::Proxy(oauth2.addr),
        dash.addr,
    ))
    .await;
    let base = format!("http://{GATEWAY_HOST}:{}", gateway.port());
    let browser = Browser::start(base.clone(), "planted-session").await;

    // Alice is signed in: her session host-only on the dashboard's host, as oauth2-proxy sets
    // it (on a page of that host that needs no session).
    browser.goto("/oauth2/nothing-here").await;
    browser
        .run(&format!("document.cookie = '{COOKIE}=valid-alice; path=/'"))
        .await;
    browser.goto("/envs").await;
    browser
        .until(
            "Alice's list, with her buttons",
            "return document.querySelector('#env-alice form') !== null",
        )
        .await;

    // She opens her env, whose page plants Bob's session.
    browser
        .client
        .goto(&format!(
            "http://{}:{}/",
            env_host(app.port(), "alice"),
            gateway.port()
        ))
        .await
        .unwrap();
    browser
        .until("the env's page ran", "return document.title === 'planted'")
        .await;

    // Back on the dashboard's list, her browser sends both sessions: refused, and said why.
    browser.goto("/envs").await;
    let text = browser
        .until(
            "the refusal",
            "return document.body && document.body.innerText.includes('sign-in cookie twice') \
             && document.body.innerText",
        )
        .await;
    browser.screenshot("refused").await;
    assert!(
        !text.as_str().unwrap_or_default().contains("bob"),
        "nothing of Bob's: {text}"
    );
    // The answer removed the planted copy: one session is left on this path.
    let sessions = browser
        .run(&format!(
            "return document.cookie.split('; ').filter(c => c.startsWith('{COOKIE}=')).length"
        ))
        .await;
    assert_eq!(
        sessions,
        1,
        "{:?}",
        browser.run("return document.cookie").await
    );

    // Loaded again, the list is Alice's: her env has her buttons, Bob's has none.
    browser.goto("/envs").await;
    browser
        .until(
            "Alice's list again",
            "return document.querySelector('#env-alice form') !== null",
        )
        .await;
    let bobs_buttons = browser
        .run("return document.querySelector('#env-bob form') !== null")
        .await;
    assert!(!truthy(&bobs_buttons), "the list is not Bob's");
    browser.screenshot("alice-again").await;
}
