//! The dashboard follows its config file while it runs: a repo added to the allow-list is
//! offered and can be created at once; a broken edit changes nothing, and admins (only) see
//! a banner saying what is wrong and where until it is fixed.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use ephdash::identity::IdentitySource;
use ephemerator_core::Config;
use ephemerator_kit::LiveConfig;
use ephemerator_testkit::wait_for;

const GO_REPO: &str = "https://github.com/tilt-dev/tilt-example-go";
/// How the form offers it (tera escapes the slashes).
const GO_OPTION: &str =
    "<option value=\"https:&#x2F;&#x2F;github.com&#x2F;tilt-dev&#x2F;tilt-example-go\"";

fn yaml(repos: &[&str]) -> String {
    format!(
        "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [{}]\nadmins: [root@example.com]\n",
        repos.join(", ")
    )
}

fn create(csrf: &str) -> Vec<(&str, &str)> {
    vec![
        ("repo", GO_REPO),
        ("branch", "main"),
        ("path", "Tiltfile"),
        ("csrf", csrf),
    ]
}

#[tokio::test]
async fn an_added_repo_can_be_created_at_once_and_a_broken_edit_is_shown_to_admins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ephemerator.yaml");
    std::fs::write(&path, yaml(&["tilt-example-html"])).unwrap();
    let live = LiveConfig::watch(
        &path,
        Config::load(&path).unwrap(),
        Duration::from_millis(50),
    );
    let dash = Dash::start_live(live, IdentitySource::AuthRequest).await;
    let csrf = csrf_key().token("gopher");

    // Not on the allow-list yet: refused, and not offered.
    let refused = dash.hx_post("/envs", "gopher", &create(&csrf)).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("not on the allow-list"),
        "{}",
        refused.body
    );
    assert!(!dash.get("/", Some("gopher")).await.body.contains(GO_OPTION));

    // The team lead adds it: offered in the form and created, without a restart.
    ephemerator_testkit::replace_file(&path, yaml(&["tilt-example-html", "tilt-example-go"]))
        .unwrap();
    wait_for("the new repo in the form", || async {
        dash.get("/", Some("gopher"))
            .await
            .body
            .contains(GO_OPTION)
            .then_some(())
    })
    .await;
    let created = dash.hx_post("/envs", "gopher", &create(&csrf)).await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.contains("Created gopher"), "{}", created.body);

    // A broken edit: the banner for admins, in the page and the list that refreshes it.
    ephemerator_testkit::replace_file(
        &path,
        format!("{}maxEnvsPerUser: lots\n", yaml(&["tilt-example-html"])),
    )
    .unwrap();
    let line = format!("{}:6:17: maxEnvsPerUser:", path.display());
    let banner = wait_for("the admin's banner", || async {
        // Tera escapes the path's slashes.
        let list = dash.get("/envs", Some("root@example.com")).await.body;
        list.contains("The config file was refused")
            .then(|| list.replace("&#x2F;", "/"))
    })
    .await;
    assert!(banner.contains(&line), "{banner}");
    assert!(banner.contains("(generation 2)"), "{banner}");
    let page = dash.get("/", Some("root@example.com")).await.body;
    assert!(page.replace("&#x2F;", "/").contains(&line), "{page}");
    // Not for everyone else, and the last good config still rules: go is still offered.
    // (hal: gopher's quota is used, so the form gives way on gopher's page.)
    let user_page = dash.get("/", Some("hal")).await.body;
    assert!(!user_page.contains("The config file was refused"));
    assert!(user_page.contains(GO_OPTION));
    let metrics = dash.admin_get("/metrics").await.body;
    assert!(
        metrics.contains("ephdash_config_reload_failures_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ephdash_config_generation 2"), "{metrics}");

    // Fixed: the banner goes.
    ephemerator_testkit::replace_file(&path, yaml(&["tilt-example-html"])).unwrap();
    wait_for("the banner gone", || async {
        let list = dash.get("/envs", Some("root@example.com")).await.body;
        (!list.contains("The config file was refused")).then_some(())
    })
    .await;
    assert!(!dash.get("/", Some("gopher")).await.body.contains(GO_OPTION));
}
