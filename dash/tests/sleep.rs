//! Sleeping envs on the dashboard: listed as Sleeping with how long they have slept, woken by
//! whoever may open them (the Wake button sets the wake annotation ephctrl acts on), and kept
//! awake, or not, by their owner. No controller runs here: what the dashboard writes stays for
//! the test to read. (What ephctrl does with the annotations is ctrl's tests.)

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use ephemerator_core::access::Access;
use ephemerator_core::env::set_access;
use ephemerator_core::labels::{KEEP_AWAKE_ANNOTATION, WAKE_ANNOTATION};
use ephemerator_core::{EnvSpec, EnvStatus, Phase, env_config_map};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

/// The tests' config, where envs sleep after 30 minutes unused.
fn sleepy_config() -> String {
    format!("{CONFIG_YAML}sleepAfter: 30m\n")
}

/// How env `name` is seeded.
struct Seed<'a> {
    owner: &'a str,
    /// `None`: the config's default (team).
    access: Option<Access>,
    phase: Phase,
    asleep_since: Option<Timestamp>,
}

impl Seed<'_> {
    /// Asleep since `ago`, open to the team.
    fn asleep(owner: &str, ago: SignedDuration) -> Seed<'_> {
        Seed {
            owner,
            access: None,
            phase: Phase::Sleeping,
            asleep_since: Some(Timestamp::now() - ago),
        }
    }

    fn awake(owner: &str) -> Seed<'_> {
        Seed {
            owner,
            access: None,
            phase: Phase::Ready,
            asleep_since: None,
        }
    }
}

/// Creates env `name` with the status ephctrl would have written (as kubectl would) and waits
/// until the dashboard lists it in that phase.
async fn seed(dash: &Dash, name: &str, seed: Seed<'_>) {
    let spec = EnvSpec {
        repo: HTML_REPO.into(),
        branch: "main".into(),
        path: "0-base/Tiltfile".into(),
    };
    let expiration = Timestamp::now() + SignedDuration::from_mins(10);
    let mut cm = env_config_map(name, seed.owner, &spec, Some(expiration));
    if let Some(level) = seed.access {
        set_access(&mut cm, level);
    }
    EnvStatus {
        phase: seed.phase,
        message: Some(format!("{} for the test", seed.phase.as_str())),
        asleep_since: seed.asleep_since,
        ..EnvStatus::default()
    }
    .write_to(&mut cm.metadata);
    Api::<ConfigMap>::namespaced(dash.client(), NAMESPACE)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let listed = format!("id=\"env-{name}\"");
    let phase = format!("data-phase=\"{}\"", seed.phase.as_str());
    wait_for(&format!("{name} on the page"), || async {
        let list = dash.get("/envs", Some(seed.owner)).await.body;
        (list.contains(&listed) && list.contains(&phase)).then_some(())
    })
    .await;
}

/// Env `name`'s row in `body`.
fn row<'a>(body: &'a str, name: &str) -> &'a str {
    let start = body
        .find(&format!("id=\"env-{name}\""))
        .unwrap_or_else(|| panic!("no row of {name} in {body}"));
    let rest = &body[start..];
    &rest[..rest.find("</li>\n").unwrap_or(rest.len())]
}

/// The CSRF token in the form posting to `action` in `html`, as a browser would send it.
fn form_token(html: &str, action: &str) -> String {
    let form = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form posting to {action} in {html}"));
    html[form..]
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string()
}

/// Removes the wake annotation, as ephctrl does when it acts on it.
async fn clear_wake(dash: &Dash, name: &str) {
    let patch = serde_json::json!({"metadata": {"annotations": {WAKE_ANNOTATION: null}}});
    Api::<ConfigMap>::namespaced(dash.client(), NAMESPACE)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Whether `viewer`'s list offers a Wake of env `name`.
async fn offers_wake(dash: &Dash, viewer: &str, name: &str) -> bool {
    let list = dash.get("/", Some(viewer)).await.body;
    row(&list, name).contains(&format!("action=\"/envs/{name}/wake\""))
}

/// Env `nicks`'s keep-awake annotation.
async fn kept_awake(dash: &Dash) -> Option<String> {
    annotation(&config_map(dash, "nicks").await, KEEP_AWAKE_ANNOTATION)
}

ephemerator_testkit::on_devcluster_and_real_apiserver!(
    dev: crate::common::Dash::start_with(&crate::sleepy_config(), ephdash::identity::IdentitySource::AuthRequest).await,
    real: crate::common::Dash::start_on_real_apiserver_with(&crate::sleepy_config()).await;
    a_sleeping_env_is_listed_as_sleeping_with_its_slept_time_and_a_wake_button,
    the_wake_button_sets_the_wake_annotation_without_javascript_and_with_htmx,
    a_wake_the_envs_access_level_does_not_admit_or_without_a_valid_token_writes_nothing,
    the_owner_keeps_an_env_awake_and_lets_it_sleep_again_and_nobody_else_can,
);

async fn a_sleeping_env_is_listed_as_sleeping_with_its_slept_time_and_a_wake_button(dash: Dash) {
    // Slept 12½ minutes: "12 min" for the next half minute.
    seed(
        &dash,
        "nicks",
        Seed::asleep("nicks", SignedDuration::from_secs(12 * 60 + 30)),
    )
    .await;
    seed(
        &dash,
        "owen",
        Seed {
            access: Some(Access::Owner),
            ..Seed::asleep("owen", SignedDuration::from_mins(3))
        },
    )
    .await;
    seed(
        &dash,
        "wanda",
        Seed {
            phase: Phase::Starting,
            ..Seed::asleep("wanda", SignedDuration::from_mins(40))
        },
    )
    .await;
    seed(&dash, "ada", Seed::awake("ada")).await;

    for viewer in ["nicks", "mallory", "root@example.com"] {
        let page = dash.get("/", Some(viewer)).await;
        assert_eq!(page.status, 200);
        let nicks = row(&page.body, "nicks");
        assert!(
            nicks.contains(r#"<span class="phase asleep" data-phase="Sleeping">Sleeping</span>"#),
            "{viewer}: {nicks}"
        );
        assert!(nicks.contains("asleep for 12 min"), "{viewer}: {nicks}");
        // Everyone the team level admits may wake it, with their own token in the form.
        assert!(
            nicks.contains(r#"action="/envs/nicks/wake""#),
            "{viewer}: {nicks}"
        );
        assert_eq!(form_token(nicks, "/envs/nicks/wake"), token(viewer));
        // Waking: said so, and no Wake button.
        let wanda = row(&page.body, "wanda");
        assert!(wanda.contains("waking up"), "{viewer}: {wanda}");
        assert!(!wanda.contains("/wake\""), "{viewer}: {wanda}");
        // Awake: when it will sleep, and no Wake button.
        let ada = row(&page.body, "ada");
        assert!(ada.contains("after 30 min unused"), "{viewer}: {ada}");
        assert!(!ada.contains("/wake\""), "{viewer}: {ada}");
    }
    // Open to its owner alone: only they and admins are offered the Wake.
    assert!(offers_wake(&dash, "owen", "owen").await);
    assert!(offers_wake(&dash, "root@example.com", "owen").await);
    assert!(
        !offers_wake(&dash, "mallory", "owen").await,
        "mallory may not open owen"
    );

    // The env's page says the same, with its own Wake form.
    let page = dash.get("/envs/nicks", Some("mallory")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-phase=\"Sleeping\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("asleep for 12 min"), "{}", page.body);
    assert_eq!(form_token(&page.body, "/envs/nicks/wake"), token("mallory"));
    assert!(
        !page.body.contains("/envs/nicks/keep-awake"),
        "keep-awake is its owner's: {}",
        page.body
    );
}

async fn the_wake_button_sets_the_wake_annotation_without_javascript_and_with_htmx(dash: Dash) {
    seed(
        &dash,
        "nicks",
        Seed::asleep("nicks", SignedDuration::from_mins(40)),
    )
    .await;

    // Without JavaScript: the form as the list has it, posted as it is; back to the list.
    let list = dash.get("/", Some("mallory")).await.body;
    let csrf = form_token(row(&list, "nicks"), "/envs/nicks/wake");
    let woken = dash
        .post("/envs/nicks/wake", "mallory", &[("csrf", &csrf)])
        .await;
    assert_eq!(woken.status, 303, "{}", woken.body);
    assert_eq!(woken.headers.get("location").map(String::as_str), Some("/"));
    let cm = config_map(&dash, "nicks").await;
    assert_eq!(annotation(&cm, WAKE_ANNOTATION).as_deref(), Some("mallory"));
    assert_eq!(
        cm.data.as_ref().unwrap()["branch"],
        "main",
        "the data untouched"
    );

    // From the env's page it comes back to the env's page.
    clear_wake(&dash, "nicks").await;
    let page = dash.get("/envs/nicks", Some("nicks")).await.body;
    let csrf = form_token(&page, "/envs/nicks/wake");
    let woken = dash
        .post(
            "/envs/nicks/wake",
            "nicks",
            &[("csrf", &csrf), ("back", "env")],
        )
        .await;
    assert_eq!(woken.status, 303, "{}", woken.body);
    assert_eq!(
        woken.headers.get("location").map(String::as_str),
        Some("/envs/nicks")
    );
    assert_eq!(
        annotation(&config_map(&dash, "nicks").await, WAKE_ANNOTATION).as_deref(),
        Some("nicks")
    );

    // With htmx: the notice in place, and the list told to refresh.
    clear_wake(&dash, "nicks").await;
    let woken = dash
        .hx_post(
            "/envs/nicks/wake",
            "root@example.com",
            &[("csrf", &token("root@example.com"))],
        )
        .await;
    assert_eq!(woken.status, 200, "{}", woken.body);
    assert!(woken.body.contains("Waking nicks"), "{}", woken.body);
    assert!(!woken.body.contains("<html"), "a fragment: {}", woken.body);
    assert_eq!(
        woken.headers.get("hx-trigger").map(String::as_str),
        Some("envs-changed")
    );
    assert_eq!(
        annotation(&config_map(&dash, "nicks").await, WAKE_ANNOTATION).as_deref(),
        Some("root@example.com")
    );
    let metrics = dash.admin_get("/metrics").await.body;
    assert!(
        metrics.contains("ephdash_configmap_writes_total{action=\"wake\",outcome=\"ok\"} 3"),
        "{metrics}"
    );
}

async fn a_wake_the_envs_access_level_does_not_admit_or_without_a_valid_token_writes_nothing(
    dash: Dash,
) {
    seed(
        &dash,
        "owen",
        Seed {
            access: Some(Access::Owner),
            ..Seed::asleep("owen", SignedDuration::from_mins(5))
        },
    )
    .await;
    seed(&dash, "ada", Seed::awake("ada")).await;

    // Mallory crafts the form with her own valid token: refused, in place and on the page.
    let refused = dash
        .hx_post("/envs/owen/wake", "mallory", &[("csrf", &token("mallory"))])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("owen is open to its owner (owen) and admins only"),
        "{}",
        refused.body
    );
    let plain = dash
        .post("/envs/owen/wake", "mallory", &[("csrf", &token("mallory"))])
        .await;
    assert_eq!(plain.status, 403);
    assert!(
        plain.body.contains("<html") && plain.body.contains("only they can wake it"),
        "{}",
        plain.body
    );
    // The owner's form without a token, with another's token, with a made-up one.
    for csrf in ["", &token("mallory"), "00"] {
        let answer = dash
            .post("/envs/owen/wake", "owen", &[("csrf", csrf)])
            .await;
        assert_eq!(answer.status, 403, "token {csrf:?}: {}", answer.body);
    }
    // The right token from an env's page (another origin).
    let cross = dash
        .request(
            "POST",
            "/envs/owen/wake",
            Some("owen"),
            &[("origin", "http://8000---mallory.preview.localhost")],
            Some(&[("csrf", &token("owen"))]),
        )
        .await;
    assert_eq!(cross.status, 403);
    assert_eq!(
        annotation(&config_map(&dash, "owen").await, WAKE_ANNOTATION),
        None,
        "nothing written"
    );

    // Awake: nothing to wake, said so, nothing written.
    let awake = dash
        .hx_post("/envs/ada/wake", "ada", &[("csrf", &token("ada"))])
        .await;
    assert_eq!(awake.status, 409, "{}", awake.body);
    assert!(awake.body.contains("ada is not asleep"), "{}", awake.body);
    assert_eq!(
        annotation(&config_map(&dash, "ada").await, WAKE_ANNOTATION),
        None
    );

    // A ConfigMap of that name that is not an env (no env labels) is never touched.
    let foreign = ConfigMap {
        metadata: ObjectMeta {
            name: Some("olga".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("keep".to_string(), "me".to_string())])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(dash.client(), NAMESPACE)
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    for action in ["wake", "keep-awake"] {
        let answer = dash
            .hx_post(
                &format!("/envs/olga/{action}"),
                "olga",
                &[("csrf", &token("olga")), ("on", "true")],
            )
            .await;
        // Not among the dashboard's envs at all (it watches the env labels): no such env.
        assert_eq!(answer.status, 404, "{action}: {}", answer.body);
        assert!(
            answer.body.contains("there is no environment olga"),
            "{}",
            answer.body
        );
    }
    let still = config_map(&dash, "olga").await;
    assert_eq!(still.metadata.annotations.unwrap_or_default().len(), 0);
    assert_eq!(still.data.unwrap()["keep"], "me");
}

async fn the_owner_keeps_an_env_awake_and_lets_it_sleep_again_and_nobody_else_can(dash: Dash) {
    seed(&dash, "nicks", Seed::awake("nicks")).await;

    // Mallory sees no control, and crafting the form is refused.
    let list = dash.get("/", Some("mallory")).await.body;
    assert!(!row(&list, "nicks").contains("keep-awake"), "{list}");
    let refused = dash
        .hx_post(
            "/envs/nicks/keep-awake",
            "mallory",
            &[("csrf", &token("mallory")), ("on", "true")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("belongs to nicks"),
        "{}",
        refused.body
    );
    assert_eq!(kept_awake(&dash).await, None);

    // The owner, without JavaScript, with the form the list has: on, and back to the list,
    // which says so at once.
    let list = dash.get("/", Some("nicks")).await.body;
    let nicks = row(&list, "nicks");
    assert!(nicks.contains(">Keep awake</button>"), "{nicks}");
    let csrf = form_token(nicks, "/envs/nicks/keep-awake");
    let on = dash
        .post(
            "/envs/nicks/keep-awake",
            "nicks",
            &[("csrf", &csrf), ("on", "true")],
        )
        .await;
    assert_eq!(on.status, 303, "{}", on.body);
    assert_eq!(on.headers.get("location").map(String::as_str), Some("/"));
    assert_eq!(kept_awake(&dash).await.as_deref(), Some("true"));
    let list = dash.get("/", Some("nicks")).await.body;
    let nicks = row(&list, "nicks");
    assert!(nicks.contains("kept awake by its owner"), "{nicks}");
    assert!(nicks.contains(">Let it sleep</button>"), "{nicks}");
    let page = dash.get("/envs/nicks", Some("nicks")).await.body;
    assert!(page.contains("kept awake by its owner"), "{page}");
    assert!(page.contains(r#"name="on" value="false""#), "{page}");

    // Off again with htmx: the annotation removed.
    let off = dash
        .hx_post(
            "/envs/nicks/keep-awake",
            "nicks",
            &[("csrf", &token("nicks")), ("on", "false")],
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert!(
        off.body.contains("nicks sleeps again after 30 min unused"),
        "{}",
        off.body
    );
    assert_eq!(kept_awake(&dash).await, None);

    // An admin may too; from the env's page a plain post comes back to it.
    let on = dash
        .post(
            "/envs/nicks/keep-awake",
            "root@example.com",
            &[
                ("csrf", &token("root@example.com")),
                ("on", "true"),
                ("back", "env"),
            ],
        )
        .await;
    assert_eq!(on.status, 303, "{}", on.body);
    assert_eq!(
        on.headers.get("location").map(String::as_str),
        Some("/envs/nicks")
    );
    assert_eq!(kept_awake(&dash).await.as_deref(), Some("true"));

    // Neither on nor off, or without a valid token: refused, unchanged.
    let neither = dash
        .hx_post(
            "/envs/nicks/keep-awake",
            "nicks",
            &[("csrf", &token("nicks")), ("on", "maybe")],
        )
        .await;
    assert_eq!(neither.status, 422, "{}", neither.body);
    assert!(
        neither.body.contains("on=true or on=false"),
        "{}",
        neither.body
    );
    for csrf in ["", &token("mallory")] {
        let answer = dash
            .post(
                "/envs/nicks/keep-awake",
                "nicks",
                &[("csrf", csrf), ("on", "false")],
            )
            .await;
        assert_eq!(answer.status, 403, "token {csrf:?}");
    }
    assert_eq!(kept_awake(&dash).await.as_deref(), Some("true"));
    // Each change is an Event on the env, naming who made it.
    wait_for("the keep-awake Events", || async {
        let notes = ephemerator_testkit::event_notes(
            &dash.client(),
            NAMESPACE,
            "nicks",
            "KeepAwakeChanged",
        )
        .await;
        [
            "nicks keeps it awake",
            "nicks lets it sleep when unused",
            "root@example.com keeps it awake",
        ]
        .iter()
        .all(|note| notes.iter().any(|seen| seen == note))
        .then_some(())
    })
    .await;
    let metrics = dash.admin_get("/metrics").await.body;
    assert!(
        metrics.contains("ephdash_configmap_writes_total{action=\"keep_awake\",outcome=\"ok\"} 3"),
        "{metrics}"
    );
}

/// Where envs never sleep (no `sleepAfter`), keep-awake means nothing and is not offered; an env
/// asleep from before is still offered its Wake.
#[tokio::test]
async fn without_sleep_after_only_the_wake_of_a_sleeping_env_is_offered() {
    let dash = Dash::start().await;
    seed(
        &dash,
        "nicks",
        Seed::asleep("nicks", SignedDuration::from_mins(5)),
    )
    .await;
    seed(&dash, "ada", Seed::awake("ada")).await;
    let list = dash.get("/", Some("root@example.com")).await.body;
    assert!(
        row(&list, "nicks").contains(r#"action="/envs/nicks/wake""#),
        "{list}"
    );
    assert!(row(&list, "nicks").contains("asleep for 5 min"), "{list}");
    assert!(!list.contains("keep-awake"), "{list}");
    let ada = row(&list, "ada");
    assert!(!ada.contains("Sleep"), "nothing said of sleep: {ada}");
    let page = dash.get("/envs/ada", Some("ada")).await.body;
    assert!(!page.contains("keep-awake"), "{page}");
    let refused = dash
        .hx_post(
            "/envs/ada/keep-awake",
            "ada",
            &[("csrf", &token("ada")), ("on", "true")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("never sleep"), "{}", refused.body);
}
