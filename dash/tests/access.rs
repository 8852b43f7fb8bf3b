//! Who may open an env, on the dashboard: the level on the card, set at create and changed by
//! its owner; share links made, listed and revoked on the env's page, each an Event on the env.
//! (What the gateway does with them is `gateway/tests/env_access.rs`.)

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::labels::{ACCESS_ANNOTATION, SHARE_LINKS_ANNOTATION};
use ephemerator_core::share::{LINK_PURPOSE, link_signed_data, parse_share_links};
use ephemerator_core::{EnvSpec, env_config_map};
use ephemerator_kit::signing::SigningKeys;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

/// The notes of the Events about env `name` with `reason`.
async fn events(dash: &Dash, name: &str, reason: &str) -> Vec<String> {
    ephemerator_testkit::event_notes(&dash.client(), NAMESPACE, name, reason).await
}

async fn seed_env(dash: &Dash, name: &str, owner: &str, lives: SignedDuration) {
    let spec = EnvSpec {
        repo: HTML_REPO.into(),
        branch: "main".into(),
        path: "0-base/Tiltfile".into(),
    };
    Api::<ConfigMap>::namespaced(dash.client(), NAMESPACE)
        .create(
            &PostParams::default(),
            &env_config_map(name, owner, &spec, Some(Timestamp::now() + lives)),
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

ephemerator_testkit::on_devcluster_and_real_apiserver!(
    dev: crate::common::Dash::start().await,
    real: crate::common::Dash::start_on_real_apiserver().await;
    the_owner_chooses_who_may_open_an_env_and_the_card_shows_it,
    share_links_are_made_listed_and_revoked_on_the_env_page_each_an_event,
);

async fn the_owner_chooses_who_may_open_an_env_and_the_card_shows_it(dash: Dash) {
    // Created owner-only: the annotation, and the card says so.
    let created = dash
        .post(
            "/envs",
            "nicks",
            &[
                ("repo", HTML_REPO),
                ("branch", "main"),
                ("path", "0-base/Tiltfile"),
                ("access", "owner"),
                ("csrf", &token("nicks")),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let cm = config_map(&dash, "nicks").await;
    assert_eq!(annotation(&cm, ACCESS_ANNOTATION).as_deref(), Some("owner"));
    let page = dash.get("/", Some("nicks")).await.body;
    assert!(
        page.contains(r#"data-access="owner">Owner only<"#),
        "{page}"
    );
    // The card offers its owner the levels the config allows (the default maximum: team).
    assert!(
        page.contains(r#"<option value="team" >Team</option>"#),
        "{page}"
    );
    assert!(
        !page.contains(r#"value="public""#),
        "public is above the maximum: {page}"
    );

    // Opened to the team by its owner; an Event says who.
    let opened = dash
        .hx_post(
            "/envs/nicks/access",
            "nicks",
            &[("level", "team"), ("csrf", &token("nicks"))],
        )
        .await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert!(opened.body.contains("now open to: Team"), "{}", opened.body);
    let cm = config_map(&dash, "nicks").await;
    assert_eq!(annotation(&cm, ACCESS_ANNOTATION).as_deref(), Some("team"));
    wait_for("the AccessChanged Event", || async {
        events(&dash, "nicks", "AccessChanged")
            .await
            .iter()
            .any(|note| note == "nicks set who may open it to team")
            .then_some(())
    })
    .await;

    // Nobody else may, and no level above the config's maximum.
    let mallory = dash
        .hx_post(
            "/envs/nicks/access",
            "mallory",
            &[("level", "owner"), ("csrf", &token("mallory"))],
        )
        .await;
    assert_eq!(mallory.status, 403, "{}", mallory.body);
    let public = dash
        .hx_post(
            "/envs/nicks/access",
            "nicks",
            &[("level", "public"), ("csrf", &token("nicks"))],
        )
        .await;
    assert_eq!(public.status, 422, "{}", public.body);
    assert!(
        public
            .body
            .contains("more open than this ephemerator allows"),
        "{}",
        public.body
    );
    let nonsense = dash
        .hx_post(
            "/envs/nicks/access",
            "nicks",
            &[("level", "everyone"), ("csrf", &token("nicks"))],
        )
        .await;
    assert_eq!(nonsense.status, 422, "{}", nonsense.body);
    let cm = config_map(&dash, "nicks").await;
    assert_eq!(annotation(&cm, ACCESS_ANNOTATION).as_deref(), Some("team"));
}

async fn share_links_are_made_listed_and_revoked_on_the_env_page_each_an_event(dash: Dash) {
    seed_env(&dash, "nicks", "nicks", SignedDuration::from_mins(30)).await;

    // Made from the env's page (a plain form: back to the page).
    let made = dash
        .post(
            "/envs/nicks/links",
            "nicks",
            &[
                ("label", "for the design review"),
                ("lifetime", "168h"),
                ("csrf", &token("nicks")),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    assert_eq!(made.headers["location"], "/envs/nicks");
    let cm = config_map(&dash, "nicks").await;
    let links = parse_share_links(&annotation(&cm, SHARE_LINKS_ANNOTATION).unwrap()).unwrap();
    assert_eq!(links.len(), 1);
    let link = &links[0];
    assert_eq!(
        (link.label.as_str(), link.created_by.as_str()),
        ("for the design review", "nicks")
    );
    // Never past the env's own deadline (30 min, though 7 days were asked for).
    assert!(
        link.expires <= Timestamp::now() + SignedDuration::from_mins(30),
        "{link:?}"
    );

    // Listed with its address, which the gateway opens (the tag signs this env's UID).
    // (Escaped in the page as every value is: `/` is `&#x2F;` there.)
    let page = dash
        .get("/envs/nicks", Some("nicks"))
        .await
        .body
        .replace("&#x2F;", "/")
        .replace("&amp;", "&");
    assert!(page.contains("for the design review"), "{page}");
    let prefix = format!("http://{HOST}/__ephemerator/link/nicks/{}.", link.id);
    let start = page
        .find(&prefix)
        .unwrap_or_else(|| panic!("{prefix} in {page}"));
    let url = &page[start..];
    let url = &url[..url.find('"').unwrap()];
    let tag = url[prefix.len()..].split('?').next().unwrap();
    let keys = SigningKeys::new(ephdash::testing::TEST_SIGNING_KEY, None).unwrap();
    let uid = cm.metadata.uid.clone().unwrap();
    assert!(
        keys.verify_tag(LINK_PURPOSE, &link_signed_data(&uid, &link.id), tag),
        "{url}"
    );
    // Nobody else sees links (they carry the token) or may make one.
    let theirs = dash.get("/envs/nicks", Some("mallory")).await.body;
    assert!(!theirs.contains("__ephemerator/link"), "{theirs}");
    let refused = dash
        .post(
            "/envs/nicks/links",
            "mallory",
            &[("lifetime", "1h"), ("csrf", &token("mallory"))],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    wait_for("the ShareLinkCreated Event", || async {
        events(&dash, "nicks", "ShareLinkCreated")
            .await
            .iter()
            .any(|note| {
                note.starts_with(&format!(
                    "nicks made share link {} (for the design review), until",
                    link.id
                ))
            })
            .then_some(())
    })
    .await;

    // Revoked one by one.
    let revoked = dash
        .post(
            &format!("/envs/nicks/links/{}/revoke", link.id),
            "nicks",
            &[("csrf", &token("nicks"))],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let cm = config_map(&dash, "nicks").await;
    assert_eq!(
        annotation(&cm, SHARE_LINKS_ANNOTATION).as_deref(),
        Some("[]")
    );
    wait_for("the ShareLinkRevoked Event", || async {
        events(&dash, "nicks", "ShareLinkRevoked")
            .await
            .iter()
            .any(|note| note == &format!("nicks revoked share link {}", link.id))
            .then_some(())
    })
    .await;

    // At most ten; then all revoked at once.
    for n in 0..10 {
        let answer = dash
            .post(
                "/envs/nicks/links",
                "nicks",
                &[
                    ("label", &format!("link {n}")),
                    ("lifetime", "1h"),
                    ("csrf", &token("nicks")),
                ],
            )
            .await;
        assert_eq!(answer.status, 303, "link {n}: {}", answer.body);
    }
    let eleventh = dash
        .hx_post(
            "/envs/nicks/links",
            "nicks",
            &[("lifetime", "1h"), ("csrf", &token("nicks"))],
        )
        .await;
    assert_eq!(eleventh.status, 422, "{}", eleventh.body);
    assert!(
        eleventh.body.contains("10 share links already"),
        "{}",
        eleventh.body
    );
    let all = dash
        .post(
            "/envs/nicks/links/revoke-all",
            "nicks",
            &[("csrf", &token("nicks"))],
        )
        .await;
    assert_eq!(all.status, 303, "{}", all.body);
    let cm = config_map(&dash, "nicks").await;
    assert_eq!(
        annotation(&cm, SHARE_LINKS_ANNOTATION).as_deref(),
        Some("[]")
    );
}
