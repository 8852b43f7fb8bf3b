//! The gateway in front of the real dashboard: an env's page cannot act on the dashboard as
//! the signed-in user. The gateway keeps the session cookie from envs and the Host honest; the
//! dashboard's CSRF defence (token and same-origin check) refuses what an env page could send.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

const CONFIG_YAML: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repos:
    - url: https://github.com/tilt-dev/tilt-example-html
      branches: [main]
      paths: [Tiltfile]
maxEnvsPerUser: 1
"#;

fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

#[tokio::test]
async fn an_env_page_cannot_act_on_the_dashboard_as_the_user() {
    let cluster = devcluster().await;
    let dash = dashboard(&cluster, CONFIG_YAML);
    let oauth2 = oauth2_proxy().await;
    let gateway = Gateway::start(settings(
        cluster.client(),
        Auth::Proxy(oauth2.addr),
        dash.addr,
    ))
    .await;
    let cookie = session("alice");

    let page = wait_for("the dashboard through the gateway", || async {
        let page = gateway.get(GATEWAY_HOST, "/", &[("cookie", &cookie)]).await;
        (page.status == 200).then_some(page)
    })
    .await;
    assert!(page.body.contains("alice"), "{}", page.body);
    // The dashboard's operations endpoints are on its admin listener: a signed-in person
    // reaches none of them through the gateway.
    for path in ["/metrics", "/readyz", "/healthz"] {
        let answer = gateway
            .get(GATEWAY_HOST, path, &[("cookie", &cookie)])
            .await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(!answer.body.contains("ephdash_"), "{}", answer.body);
    }
    let token = page
        .body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries a CSRF token")
        .to_string();
    let fields = [
        ("repo", "https://github.com/tilt-dev/tilt-example-html"),
        ("branch", "main"),
        ("path", "Tiltfile"),
    ];
    let post = |origin: Option<String>, token: Option<&str>| {
        let mut fields = fields.to_vec();
        if let Some(token) = token {
            fields.push(("csrf", token));
        }
        let body = form(&fields);
        let cookie = cookie.clone();
        let gateway = &gateway;
        async move {
            let mut headers = vec![
                ("cookie", cookie.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ];
            let origin = origin.unwrap_or_default();
            if !origin.is_empty() {
                headers.push(("origin", origin.as_str()));
            }
            gateway
                .request("POST", GATEWAY_HOST, "/envs", &headers, &body)
                .await
        }
    };

    // A form on an env's page posting to the dashboard: the browser names the env's origin.
    let from_env = post(
        Some(format!("http://{}", env_host(8000, "mallory"))),
        Some(&token),
    )
    .await;
    assert_eq!(from_env.status, 403, "{}", from_env.body);
    // Without the user's token (an env page cannot read it), no origin helps.
    let no_token = post(None, None).await;
    assert_eq!(no_token.status, 403, "{}", no_token.body);
    let envs = Api::<ConfigMap>::namespaced(cluster.client(), NAMESPACE);
    assert!(
        envs.get_opt("alice").await.unwrap().is_none(),
        "nothing was created"
    );

    // The dashboard's own form, from its own origin, works through the gateway.
    let own = post(Some(format!("http://{GATEWAY_HOST}")), Some(&token)).await;
    assert!(
        own.status == 303 || own.status == 200,
        "{} {}",
        own.status,
        own.body
    );
    assert!(
        envs.get_opt("alice").await.unwrap().is_some(),
        "the env was created"
    );
}

/// The whole share-link path with the real dashboard: its owner makes a link on the env's page
/// (through the gateway), and a visitor with no account opens it and reaches the env.
#[tokio::test]
async fn a_share_link_the_dashboard_makes_opens_the_env_for_a_visitor_without_an_account() {
    use ephemerator_core::Phase;
    use ephemerator_core::labels::ACCESS_ANNOTATION;
    use kube::api::{Patch, PatchParams};
    let cluster = devcluster().await;
    let dash = dashboard(&cluster, CONFIG_YAML);
    let oauth2 = oauth2_proxy().await;
    let gateway = Gateway::start(settings(
        cluster.client(),
        Auth::Proxy(oauth2.addr),
        dash.addr,
    ))
    .await;
    let app = env_server().await;
    put_env(
        &cluster.client(),
        "alice",
        Phase::Ready,
        &[app.addr.port()],
        "",
    )
    .await;
    let owner_only = serde_json::json!({"metadata": {"annotations": {ACCESS_ANNOTATION: "owner"}}});
    Api::<ConfigMap>::namespaced(cluster.client(), NAMESPACE)
        .patch("alice", &PatchParams::default(), &Patch::Merge(&owner_only))
        .await
        .unwrap();
    let cookie = session("alice");
    let page = wait_for("alice's env page", || async {
        let page = gateway
            .get(GATEWAY_HOST, "/envs/alice", &[("cookie", &cookie)])
            .await;
        (page.status == 200 && page.body.contains("Owner only")).then_some(page)
    })
    .await;
    let token = page
        .body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let made = gateway
        .request(
            "POST",
            GATEWAY_HOST,
            "/envs/alice/links",
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &format!("http://{GATEWAY_HOST}")),
            ],
            &form(&[("label", "for bob"), ("lifetime", "1h"), ("csrf", &token)]),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let page = gateway
        .get(GATEWAY_HOST, "/envs/alice", &[("cookie", &cookie)])
        .await
        .body
        .replace("&#x2F;", "/");
    let path = page
        .split(&format!("http://{GATEWAY_HOST}/__ephemerator/link/"))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the link's address on the page")
        .to_string();

    let public = format!("http://{GATEWAY_HOST}:{}", gateway.port());
    let mut visitor = realprograms::browser_client::BrowserClient::default();
    let opened = visitor
        .get(&format!("{public}/__ephemerator/link/{path}"))
        .await
        .unwrap();
    assert_eq!(
        (opened.status, opened.body.as_str()),
        (200, "hello from the env"),
        "{opened:?}"
    );
    assert_eq!(visitor.cookie(COOKIE), None, "no account");
}
