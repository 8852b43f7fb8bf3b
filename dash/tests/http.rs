//! ephdash over HTTP, as browsers (with and without JavaScript) and htmx use it, against a
//! devcluster: who may do what, what is written, what is refused and how, and that hostile
//! input renders inert.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use ephemerator_core::env::EXPIRATION_KEY;
use ephemerator_core::labels::OWNER_ANNOTATION;
use ephemerator_core::{EnvSpec, EnvStatus, Phase, Port, env_config_map};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};

fn spec(branch: &str) -> EnvSpec {
    EnvSpec {
        repo: HTML_REPO.into(),
        branch: branch.into(),
        path: "0-base/Tiltfile".into(),
    }
}

async fn config_map(dash: &Dash, name: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(dash.client(), common::NAMESPACE)
        .get_opt(name)
        .await
        .unwrap()
}

/// Creates env `name` of `owner` directly in the cluster (as kubectl would) and waits until
/// the dashboard lists it.
async fn seed_env(dash: &Dash, name: &str, owner: &str, expiration: Option<Timestamp>) {
    Api::<ConfigMap>::namespaced(dash.client(), common::NAMESPACE)
        .create(
            &PostParams::default(),
            &env_config_map(name, owner, &spec("main"), expiration),
        )
        .await
        .unwrap();
    wait_for(&format!("{name} on the page"), || async {
        dash.get("/envs", Some(owner))
            .await
            .body
            .contains(&format!("id=\"env-{name}\""))
            .then_some(())
    })
    .await;
}

fn create_fields<'a>(csrf: &'a str, branch: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("repo", HTML_REPO),
        ("branch", branch),
        ("path", "0-base/Tiltfile"),
        ("csrf", csrf),
    ]
}

on_both_clusters!(
    without_an_identity_the_answer_is_a_sign_in_page_never_an_error,
    the_page_lists_the_team_yours_first_with_a_mine_filter,
    create_writes_the_env_config_map_and_redirects_without_javascript,
    create_with_htmx_answers_a_fragment_and_refreshes_the_list,
    refusals_come_in_place_with_the_input_kept,
    a_config_map_of_that_name_that_is_not_an_env_is_a_conflict_never_touched,
    every_mutation_needs_the_users_own_token_from_the_dashboards_origin,
    only_owners_and_admins_extend_and_delete,
    extend_stops_at_the_cap_and_says_so,
    hostile_text_renders_inert,
    operations_endpoints_and_vendored_assets,
    the_polled_list_is_rendered_once_per_change_and_revalidates,
    every_form_field_has_a_label,
    a_name_that_cannot_be_an_env_is_not_found_before_any_api_call,
);

async fn without_an_identity_the_answer_is_a_sign_in_page_never_an_error(dash: Dash) {
    for path in ["/", "/envs"] {
        let answer = dash.get(path, None).await;
        assert_eq!(answer.status, 401, "{path}");
        assert!(answer.body.contains("/oauth2/sign_in"), "{}", answer.body);
    }
    let answer = dash
        .request(
            "POST",
            "/envs",
            None,
            &[],
            Some(&create_fields("x", "main")),
        )
        .await;
    assert_eq!(answer.status, 401);
    // A header a client could only forge is not the configured one: still not signed in.
    let forged = dash
        .request(
            "GET",
            "/",
            None,
            &[("x-forwarded-user", "root@example.com")],
            None,
        )
        .await;
    assert_eq!(forged.status, 401);
}

async fn the_page_lists_the_team_yours_first_with_a_mine_filter(dash: Dash) {
    let later = Timestamp::now() + SignedDuration::from_mins(10);
    seed_env(&dash, "alice", "alice", Some(later)).await;
    seed_env(&dash, "zed", "zed", Some(later)).await;
    let page = dash.get("/", Some("zed")).await;
    assert_eq!(page.status, 200);
    let zed = page.body.find("id=\"env-zed\"").unwrap();
    let alice = page.body.find("id=\"env-alice\"").unwrap();
    assert!(zed < alice, "the user's own env comes first");
    assert!(
        page.body.contains("1 of 1 environment in use"),
        "{}",
        page.body
    );
    let absolute = later.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    assert!(
        page.body.contains(&absolute),
        "the absolute time, without JavaScript"
    );
    let mine = dash.get("/?show=mine", Some("zed")).await;
    assert!(mine.body.contains("id=\"env-zed\"") && !mine.body.contains("id=\"env-alice\""));
    // A strict policy holds: no inline script or style.
    let csp = page.headers.get("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!page.body.contains("<script>"), "no inline script");
    assert!(!page.body.contains("style="), "no inline style");
}

async fn create_writes_the_env_config_map_and_redirects_without_javascript(dash: Dash) {
    let answer = dash
        .post(
            "/envs",
            "Nick.S@example.com",
            &create_fields(&token("Nick.S@example.com"), "main"),
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(
        answer.headers.get("location").map(String::as_str),
        Some("/")
    );
    let name = ephemerator_core::names::base_env_name("Nick.S@example.com");
    let cm = config_map(&dash, &name).await.expect("the env ConfigMap");
    assert_eq!(
        cm.annotations().get(OWNER_ANNOTATION).map(String::as_str),
        Some("Nick.S@example.com")
    );
    assert_eq!(
        cm.labels()["app.kubernetes.io/part-of"],
        "ephemerator.tilt.dev"
    );
    assert_eq!(cm.labels()["app.kubernetes.io/name"], "ephrunner");
    let data = cm.data.unwrap();
    assert_eq!(data["repo"], HTML_REPO);
    assert_eq!(data["branch"], "main");
    let expiration: Timestamp = data[EXPIRATION_KEY].parse().unwrap();
    let ttl = expiration.duration_since(Timestamp::now());
    assert!(ttl > SignedDuration::from_mins(14) && ttl <= SignedDuration::from_mins(15));
    let managers: Vec<_> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| entry.manager)
        .collect();
    assert_eq!(managers, vec!["ephdash".to_string()]);
}

async fn create_with_htmx_answers_a_fragment_and_refreshes_the_list(dash: Dash) {
    let answer = dash
        .hx_post("/envs", "nicks", &create_fields(&token("nicks"), "main"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.headers.get("hx-trigger").map(String::as_str),
        Some("envs-changed")
    );
    assert!(answer.body.contains("Created nicks"), "{}", answer.body);
    // The answer already counts the new env: the quota is reached, the form gives way.
    assert!(
        answer.body.contains("1 of 1 environment in use"),
        "{}",
        answer.body
    );
    assert!(!answer.body.contains("<form"), "{}", answer.body);
    assert!(!answer.body.contains("<html"), "a fragment, not the page");
    assert!(config_map(&dash, "nicks").await.is_some());
}

async fn refusals_come_in_place_with_the_input_kept(dash: Dash) {
    let csrf = token("nicks");
    // Off the allow-list.
    let off = dash
        .hx_post(
            "/envs",
            "nicks",
            &[
                ("repo", "https://github.com/evil/repo"),
                ("branch", "main"),
                ("path", "Tiltfile"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(off.status, 422);
    assert!(off.body.contains("not on the allow-list"), "{}", off.body);
    // A malformed branch: core's message, the typed value kept.
    let bad = dash
        .hx_post("/envs", "nicks", &create_fields(&csrf, "fix..it"))
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("value=\"fix..it\""), "{}", bad.body);
    assert!(bad.body.contains(".."), "{}", bad.body);
    // The same without JavaScript: the whole page, the refusal shown, the input kept.
    let plain = dash
        .post("/envs", "nicks", &create_fields(&csrf, "fix..it"))
        .await;
    assert_eq!(plain.status, 422);
    assert!(plain.body.contains("<html") && plain.body.contains("value=\"fix..it\""));
    assert!(
        config_map(&dash, "nicks").await.is_none(),
        "nothing written"
    );

    // Over quota: said before the click, and refused if clicked anyway.
    seed_env(&dash, "nicks", "nicks", None).await;
    let page = dash.get("/", Some("nicks")).await;
    assert!(page.body.contains("1 of 1 environment in use"));
    assert!(
        page.body.contains("as many environments as allowed"),
        "{}",
        page.body
    );
    let over = dash
        .hx_post("/envs", "nicks", &create_fields(&csrf, "other"))
        .await;
    assert_eq!(over.status, 409);
    assert!(over.body.contains("1 of 1"), "{}", over.body);
}

async fn a_config_map_of_that_name_that_is_not_an_env_is_a_conflict_never_touched(dash: Dash) {
    let plain = ConfigMap {
        metadata: ObjectMeta {
            name: Some("olga".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("keep".to_string(), "me".to_string())])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(dash.client(), common::NAMESPACE)
        .create(&PostParams::default(), &plain)
        .await
        .unwrap();
    let create = dash
        .hx_post("/envs", "olga", &create_fields(&token("olga"), "main"))
        .await;
    assert_eq!(create.status, 409);
    assert!(
        create.body.contains("not an environment"),
        "{}",
        create.body
    );
    let delete = dash
        .hx_post("/envs/olga/delete", "olga", &[("csrf", &token("olga"))])
        .await;
    assert_eq!(delete.status, 409, "{}", delete.body);
    let still = config_map(&dash, "olga").await.unwrap();
    assert_eq!(still.data.unwrap()["keep"], "me");
}

async fn every_mutation_needs_the_users_own_token_from_the_dashboards_origin(dash: Dash) {
    let path = "/envs";
    // No token, another user's token, a made-up token.
    for csrf in ["", &token("mallory"), "00"] {
        let answer = dash.post(path, "nicks", &create_fields(csrf, "main")).await;
        assert_eq!(answer.status, 403, "token {csrf:?}");
    }
    // The right token, posted from an env's page (a sibling subdomain).
    let cross = dash
        .request(
            "POST",
            path,
            Some("nicks"),
            &[("origin", "http://8000---mallory.preview.localhost")],
            Some(&create_fields(&token("nicks"), "main")),
        )
        .await;
    assert_eq!(cross.status, 403);
    assert!(
        config_map(&dash, "nicks").await.is_none(),
        "nothing written"
    );
    // From the dashboard itself it works.
    let same = dash
        .request(
            "POST",
            path,
            Some("nicks"),
            &[("origin", "http://preview.localhost")],
            Some(&create_fields(&token("nicks"), "main")),
        )
        .await;
    assert_eq!(same.status, 303, "{}", same.body);
}

async fn only_owners_and_admins_extend_and_delete(dash: Dash) {
    let expiration = Timestamp::now() + SignedDuration::from_mins(10);
    seed_env(&dash, "nicks", "nicks", Some(expiration)).await;

    // Mallory crafts the forms with her own valid token: refused, nothing changes.
    for action in ["extend", "delete"] {
        let answer = dash
            .hx_post(
                &format!("/envs/nicks/{action}"),
                "mallory",
                &[("csrf", &token("mallory"))],
            )
            .await;
        assert_eq!(answer.status, 403, "{action}: {}", answer.body);
        assert!(answer.body.contains("belongs to nicks"), "{}", answer.body);
    }
    let unchanged = config_map(&dash, "nicks").await.unwrap();
    assert_eq!(
        unchanged.data.unwrap()[EXPIRATION_KEY],
        expiration.to_string()
    );
    // Her page offers no buttons for it.
    let page = dash.get("/", Some("mallory")).await;
    assert!(!page.body.contains("/envs/nicks/delete"));

    // The owner extends: extendBy later, guarded by the resourceVersion.
    let extended = dash
        .hx_post("/envs/nicks/extend", "nicks", &[("csrf", &token("nicks"))])
        .await;
    assert_eq!(extended.status, 200, "{}", extended.body);
    let now: Timestamp = config_map(&dash, "nicks").await.unwrap().data.unwrap()[EXPIRATION_KEY]
        .parse()
        .unwrap();
    assert_eq!(now, expiration + SignedDuration::from_mins(15));

    // An admin deletes it (plain form: redirect).
    let deleted = dash
        .post(
            "/envs/nicks/delete",
            "root@example.com",
            &[("csrf", &token("root@example.com"))],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    wait_for("nicks deleted", || async {
        config_map(&dash, "nicks").await.is_none().then_some(())
    })
    .await;
}

async fn extend_stops_at_the_cap_and_says_so(dash: Dash) {
    // Created now, cap in 1h: an expiration at the cap cannot grow.
    let cap = Timestamp::now() + SignedDuration::from_mins(59);
    seed_env(
        &dash,
        "nicks",
        "nicks",
        Some(cap + SignedDuration::from_mins(5)),
    )
    .await;
    let page = dash.get("/", Some("nicks")).await;
    assert!(
        page.body.contains("longest lifetime is reached"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("/envs/nicks/extend"));
    let answer = dash
        .hx_post("/envs/nicks/extend", "nicks", &[("csrf", &token("nicks"))])
        .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert!(
        answer.body.contains("as long as allowed"),
        "{}",
        answer.body
    );
}

async fn hostile_text_renders_inert(dash: Dash) {
    let markup = "<script>alert(1)</script>";
    // A user name with markup owns an env made with kubectl; a refused branch echoes markup.
    let owner = "evil\"><img src=x onerror=alert(1)>";
    Api::<ConfigMap>::namespaced(dash.client(), common::NAMESPACE)
        .create(
            &PostParams::default(),
            &env_config_map("evil", owner, &spec("main"), None),
        )
        .await
        .unwrap();
    wait_for("the hostile env listed", || async {
        dash.get("/envs", Some("nicks"))
            .await
            .body
            .contains("id=\"env-evil\"")
            .then_some(())
    })
    .await;
    let page = dash.get("/", Some("nicks")).await;
    assert!(!page.body.contains("<img src=x"), "{}", page.body);
    assert!(
        page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        page.body
    );
    let refused = dash
        .hx_post("/envs", "nicks", &create_fields(&token("nicks"), markup))
        .await;
    assert_eq!(refused.status, 422);
    assert!(!refused.body.contains(markup), "{}", refused.body);
    assert!(refused.body.contains("&lt;script&gt;"), "{}", refused.body);
}

async fn operations_endpoints_and_vendored_assets(dash: Dash) {
    // On the admin listener only: the traffic port (which the gateway forwards every path of
    // the dashboard's host to) has none of them, for anyone.
    assert_eq!(dash.admin_get("/healthz").await.status, 200);
    assert_eq!(dash.admin_get("/readyz").await.status, 200);
    for path in ["/healthz", "/readyz", "/metrics"] {
        for user in [None, Some("nicks")] {
            let answer = dash.get(path, user).await;
            assert_eq!(answer.status, 404, "{path} as {user:?}: {}", answer.body);
            assert!(!answer.body.contains("ephdash_"), "{}", answer.body);
        }
    }
    dash.post("/envs", "nicks", &create_fields(&token("nicks"), "main"))
        .await;
    let metrics = dash.admin_get("/metrics").await.body;
    assert!(
        metrics.contains("ephdash_configmap_writes_total{action=\"create\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ephdash_http_requests_total{route=\"/envs\",status=\"303\"} 1"),
        "{metrics}"
    );
    let htmx = dash.get("/assets/vendor/htmx-2.0.11.min.js", None).await;
    assert_eq!(htmx.status, 200);
    let on_disk = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/vendor/htmx-2.0.11.min.js"),
    )
    .unwrap();
    assert_eq!(htmx.body, on_disk);
}

#[tokio::test]
async fn the_fake_user_is_signed_in_everywhere_for_local_runs() {
    let dash = Dash::start_with(
        CONFIG_YAML,
        ephdash::identity::IdentitySource::Fake("dev".into()),
    )
    .await;
    let page = dash.get("/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Signed in as <strong>dev</strong>"));
}

/// With the controller running: the phase reaches Ready on the list (what htmx polls), and
/// the env's page shows ephctrl's Events and the runner's setup logs, escaped.
#[tokio::test]
async fn the_env_page_shows_events_and_setup_logs() {
    let dash = Dash::start().await;
    let config = ephemerator_core::Config::from_yaml_str(CONFIG_YAML, "test.yaml").unwrap();
    let ctrl = ephctrl::testing::start(ephctrl::testing::settings(
        dash.client(),
        common::NAMESPACE,
        config,
    ));
    let created = dash
        .post("/envs", "nicks", &create_fields(&token("nicks"), "main"))
        .await;
    assert_eq!(created.status, 303);
    let list = wait_for("Ready on the list fragment", || async {
        let list = dash.get("/envs", Some("nicks")).await.body;
        list.contains("data-phase=\"Ready\"").then_some(list)
    })
    .await;
    // Every published port is a link through the gateway.
    assert!(
        list.contains("href=\"http:&#x2F;&#x2F;10350---nicks.preview.localhost&#x2F;\""),
        "{list}"
    );
    // Reached on another port (a local run's gateway on :8080), the links keep it; behind TLS
    // on the default port they say https and no port.
    for (forwarded, link) in [
        (
            [
                ("x-forwarded-host", "preview.localhost:8080"),
                ("x-forwarded-proto", "http"),
            ],
            "href=\"http:&#x2F;&#x2F;10350---nicks.preview.localhost:8080&#x2F;\"",
        ),
        (
            [
                ("x-forwarded-host", "preview.localhost:443"),
                ("x-forwarded-proto", "https"),
            ],
            "href=\"https:&#x2F;&#x2F;10350---nicks.preview.localhost&#x2F;\"",
        ),
    ] {
        let list = dash
            .request("GET", "/envs", Some("nicks"), &forwarded, None)
            .await
            .body;
        assert!(list.contains(link), "{link}: {list}");
    }
    let page = wait_for("the Ready Event and the runner's logs", || async {
        let page = dash.get("/envs/nicks", Some("nicks")).await;
        (page.body.contains("<strong>Ready</strong>")
            && page.body.contains("container tilt-upper started"))
        .then_some(page)
    })
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<strong>Starting</strong>"),
        "{}",
        page.body
    );
    let logs = dash.get("/envs/nicks/logs", Some("mallory")).await;
    assert_eq!(logs.status, 200, "everyone signed in may read setup logs");
    assert!(
        logs.body.contains("container tilt-upper started"),
        "{}",
        logs.body
    );
    assert!(!logs.body.contains("<html"), "a fragment");
    assert_eq!(dash.get("/envs/nobody", Some("nicks")).await.status, 404);

    // The runner's container crashes and restarts: its previous run's output is shown too.
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(dash.client(), common::NAMESPACE);
    let pod = pods
        .list(
            &kube::api::ListParams::default()
                .labels(&ephemerator_core::labels::child_label_selector("nicks")),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    dash.devcluster()
        .restart_container(common::NAMESPACE, &pod.name_any(), "tilt-upper")
        .unwrap();
    let logs = dash.get("/envs/nicks/logs", Some("nicks")).await;
    assert!(
        logs.body.contains("Before the last restart"),
        "{}",
        logs.body
    );
    assert!(logs.body.contains("exited with code 1"), "{}", logs.body);
    drop(ctrl);
}

/// The readiness policy (README "Running a server"): while the API server does not answer, the
/// dashboard keeps showing the envs it has and stays ready, saying why on `/readyz` and in
/// `ephdash_api_answering`; a create says the cluster did not answer. Ready and current again
/// when it answers.
#[tokio::test]
async fn while_the_api_server_is_away_the_page_is_served_from_the_cache_and_stays_ready() {
    let dash = Dash::start_with_api_timeout(Duration::from_millis(300)).await;
    seed_env(&dash, "kept", "nicks", None).await;
    wait_for("the env cached", || async {
        dash.get("/", Some("nicks"))
            .await
            .body
            .contains("id=\"env-kept\"")
            .then_some(())
    })
    .await;
    assert!(
        dash.admin_get("/metrics")
            .await
            .body
            .contains("ephdash_api_answering 1")
    );

    // Every request now takes longer than the client waits; the watch's re-watch fails.
    dash.devcluster().set_latency(Duration::from_secs(5));
    dash.devcluster().drop_watches();
    wait_for("the outage noticed", || async {
        dash.admin_get("/metrics")
            .await
            .body
            .contains("ephdash_api_answering 0")
            .then_some(())
    })
    .await;
    let ready = dash.admin_get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready
            .body
            .contains("from the cache: the Kubernetes API server does not answer"),
        "{}",
        ready.body
    );
    let page = dash.get("/", Some("nicks")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"env-kept\""), "{}", page.body);
    let refused = dash
        .hx_post("/envs", "mia", &create_fields(&token("mia"), "main"))
        .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("the cluster did not answer"),
        "{}",
        refused.body
    );

    dash.devcluster().set_latency(Duration::ZERO);
    wait_for("the API server seen again", || async {
        let ready = dash.admin_get("/readyz").await;
        (ready.status == 200 && ready.body == "ready\n").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_failing_cluster_is_a_refusal_in_place_not_a_crash() {
    let dash = Dash::start().await;
    dash.devcluster().fail_next_requests(3, 500);
    let answer = dash
        .hx_post("/envs", "nicks", &create_fields(&token("nicks"), "main"))
        .await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(
        answer.body.contains("the cluster did not answer"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("value=\"main\""),
        "the input is kept: {}",
        answer.body
    );
    let metrics = dash.admin_get("/metrics").await.body;
    assert!(
        metrics.contains("ephdash_configmap_writes_total{action=\"create\",outcome=\"error\"} 1"),
        "{metrics}"
    );
}

async fn the_polled_list_is_rendered_once_per_change_and_revalidates(dash: Dash) {
    seed_env(&dash, "nicks", "nicks", None).await;
    let first = dash.get("/envs", Some("nicks")).await;
    let etag = first.headers.get("etag").cloned().expect("an ETag");
    assert_eq!(
        first.headers.get("cache-control").map(String::as_str),
        Some("private, no-cache")
    );
    // The same poll again: the same fragment; with its tag, a 304 and no body.
    assert_eq!(
        dash.get("/envs", Some("nicks")).await.headers.get("etag"),
        Some(&etag)
    );
    let revalidated = dash
        .request(
            "GET",
            "/envs",
            Some("nicks"),
            &[("if-none-match", &etag)],
            None,
        )
        .await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    // Another user's fragment is their own (nicks's has the buttons and nicks's CSRF token).
    assert_ne!(
        dash.get("/envs", Some("mallory")).await.headers.get("etag"),
        Some(&etag)
    );
    // A change in the cluster: a new fragment that shows it.
    seed_env(&dash, "olga", "olga", None).await;
    let changed = dash
        .request(
            "GET",
            "/envs",
            Some("nicks"),
            &[("if-none-match", &etag)],
            None,
        )
        .await;
    assert_eq!(changed.status, 200);
    assert!(changed.body.contains("id=\"env-olga\""));
    assert_ne!(changed.headers.get("etag"), Some(&etag));
}

#[tokio::test]
async fn a_forms_token_expires_with_its_window_and_the_next() {
    let window = Duration::from_secs(1);
    let dash = Dash::start_with_csrf(csrf_key().with_window(window)).await;
    let page = dash.get("/", Some("nicks")).await;
    let token = page
        .body
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let (made, _) = token.split_once('.').unwrap();
    let made = u64::from_str_radix(made, 16).unwrap();
    let create = |token: String| {
        let dash = &dash;
        async move {
            dash.post(
                "/envs",
                "nicks",
                &[
                    ("repo", HTML_REPO),
                    ("branch", "master"),
                    ("path", "0-base/Tiltfile"),
                    ("csrf", &token),
                ],
            )
            .await
        }
    };
    // Two windows on, the form has expired: refused, and nothing is created.
    wait_for("two windows to pass", || async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / window.as_secs();
        (now >= made + 2).then_some(())
    })
    .await;
    let refused = create(token).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("the form expired"),
        "{}",
        refused.body
    );
    assert!(config_map(&dash, "nicks").await.is_none());
    // A fresh page's token works.
    let fresh = csrf_key().with_window(window).token("nicks");
    let created = create(fresh).await;
    assert_eq!(created.status, 303, "{}", created.body);
}

#[tokio::test]
async fn with_oauth2_proxy_in_front_the_forwarded_headers_are_the_trusted_ones() {
    let dash = Dash::start_with(CONFIG_YAML, ephdash::identity::IdentitySource::Forwarded).await;
    // oauth2-proxy with OIDC: the subject as the user, the readable name beside it.
    let forwarded = dash
        .request(
            "GET",
            "/",
            None,
            &[
                ("x-forwarded-user", "1234567890"),
                ("x-forwarded-preferred-username", "nick"),
                ("x-forwarded-email", "nick@example.com"),
            ],
            None,
        )
        .await;
    assert_eq!(forwarded.status, 200);
    assert!(
        forwarded
            .body
            .contains("Signed in as <strong>nick</strong>")
    );
    // The e-mail names nobody unless --identity-from says so.
    let email_only = dash
        .request(
            "GET",
            "/",
            None,
            &[("x-forwarded-email", "nick@example.com")],
            None,
        )
        .await;
    assert_eq!(email_only.status, 401);
    // The gateway's headers are not trusted in this mode.
    let other = dash.get("/", Some("root@example.com")).await;
    assert_eq!(other.status, 401);
}

async fn a_name_that_cannot_be_an_env_is_not_found_before_any_api_call(dash: Dash) {
    seed_env(&dash, "nicks", "nicks", None).await;
    // Decoded, these would reach the API request's URL (`a b`, `../..`) or a label selector
    // (`nicks,x`) as they are.
    for name in [
        "a%20b",
        "..%2F..%2Fsecrets",
        "nicks%2Cx",
        "nicks%3Fwatch%3D1",
        "Nicks",
    ] {
        for action in ["extend", "delete"] {
            let answer = dash
                .post(
                    &format!("/envs/{name}/{action}"),
                    "nicks",
                    &[("csrf", &token("nicks"))],
                )
                .await;
            assert_eq!(answer.status, 404, "{name} {action}: {}", answer.body);
            assert!(answer.body.contains("no env"), "{}", answer.body);
        }
        for page in ["", "/logs"] {
            let answer = dash
                .get(&format!("/envs/{name}{page}"), Some("nicks"))
                .await;
            assert_eq!(answer.status, 404, "{name}{page}: {}", answer.body);
        }
    }
    assert!(config_map(&dash, "nicks").await.is_some());
}

async fn every_form_field_has_a_label(dash: Dash) {
    let page = dash.get("/", Some("nicks")).await.body;
    for id in ["repo", "branch", "path"] {
        assert!(
            page.contains(&format!("<label for=\"{id}\">")),
            "{id}: {page}"
        );
        assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
    }
}

/// `ephdash_shared_rows_bytes` on the admin listener.
async fn shared_rows_bytes(dash: &Dash) -> usize {
    let metrics = dash.admin_get("/metrics").await.body;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("ephdash_shared_rows_bytes "))
        .unwrap_or_else(|| panic!("no ephdash_shared_rows_bytes in {metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_polled_list_holds_bounded_memory_whoever_and_however_many_poll_it() {
    // Room for a few lists of 40 rows.
    const BOUND: usize = 256 * 1024;
    let dash = Dash::start_tweaked(|settings| settings.shared_rows_max_bytes = BOUND).await;
    let envs = Api::<ConfigMap>::namespaced(dash.client(), common::NAMESPACE);
    for i in 0..40 {
        let owner = format!("owner-{}", i % 4);
        let mut env = env_config_map(&format!("env-{i}"), &owner, &spec("main"), None);
        EnvStatus {
            phase: Phase::Ready,
            message: Some("runner ready".into()),
            ports: vec![Port {
                name: "web".into(),
                port: 8000,
            }],
            ready_at: None,
            ..EnvStatus::default()
        }
        .write_to(&mut env.metadata);
        envs.create(&PostParams::default(), &env).await.unwrap();
    }
    let all_listed = |body: &str| (0..40).all(|i| body.contains(&format!("id=\"env-env-{i}\"")));
    wait_for("every env listed", || async {
        all_listed(&dash.get("/envs", Some("viewer-0")).await.body).then_some(())
    })
    .await;

    // 200 people who own none of them: each gets the whole list, with no buttons, and the
    // rows kept are one list's, shared, however many look.
    let one_list = shared_rows_bytes(&dash).await;
    assert!(one_list > 0);
    for i in 0..200 {
        let answer = dash.get("/envs", Some(&format!("viewer-{i}"))).await;
        assert!(all_listed(&answer.body), "viewer-{i}: {}", answer.body);
        assert!(
            !answer.body.contains("name=\"csrf\""),
            "viewer-{i} may not change any"
        );
    }
    assert_eq!(
        shared_rows_bytes(&dash).await,
        one_list,
        "nothing kept per viewer"
    );

    // An owner still gets their own rows with their buttons and token.
    let owner = dash.get("/envs", Some("owner-1")).await.body;
    assert!(owner.contains("action=\"/envs/env-1/extend\""), "{owner}");
    assert!(owner.contains("name=\"csrf\" value=\""));
    assert!(!owner.contains("action=\"/envs/env-0/extend\""));

    // A client naming 300 ports of the dashboard's host: every answer links to its own port,
    // and the rows kept stay within the bound.
    for port in 10_000..10_300 {
        let host = format!("{HOST}:{port}");
        let answer = dash
            .request("GET", "/envs", Some("viewer-1"), &[("host", &host)], None)
            .await;
        assert_eq!(answer.status, 200);
        assert!(all_listed(&answer.body));
        assert!(
            answer
                .body
                .replace("&#x2F;", "/")
                .contains(&format!("{HOST}:{port}/")),
            "links keep port {port}: {}",
            answer.body
        );
        assert!(shared_rows_bytes(&dash).await <= BOUND);
    }
    assert!(shared_rows_bytes(&dash).await > 0);

    // The envs go: so do their rows, at the first list after.
    for i in 0..40 {
        envs.delete(&format!("env-{i}"), &Default::default())
            .await
            .unwrap();
    }
    wait_for("the list to empty", || async {
        dash.get("/envs", Some("viewer-0"))
            .await
            .body
            .contains("No environments")
            .then_some(())
    })
    .await;
    assert_eq!(shared_rows_bytes(&dash).await, 0, "no stale row kept");
}
