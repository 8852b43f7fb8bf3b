//! ephctrl follows its config file while it runs: a repo added to the allow-list lets a refused
//! env run, a repo taken off it stops its envs (Rejected, children removed, an Event and a
//! notification), and a broken edit changes nothing but is counted.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use ephctrl::testing::webhook::StandInWebhook;
use ephemerator_core::{Config, Phase};
use ephemerator_kit::LiveConfig;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

const PYTHON_REPO: &str = "https://github.com/tilt-dev/tilt-example-python";

fn config_yaml(repos: &[&str], webhook: &str) -> String {
    format!(
        "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [{}]\nnotifications:\n  webhookUrl: {webhook}\n",
        repos.join(", ")
    )
}

#[tokio::test]
async fn the_allow_list_is_followed_while_the_controller_runs() {
    let webhook = StandInWebhook::start(&[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ephemerator.yaml");
    std::fs::write(
        &path,
        config_yaml(&["tilt-example-html"], webhook.url().as_str()),
    )
    .unwrap();
    let cluster = cluster().await;
    let client = cluster.client();
    let initial = Config::load(&path).unwrap();
    let live = LiveConfig::watch(&path, initial.clone(), Duration::from_millis(50));
    let mut settings = ephctrl::testing::settings(client.clone(), NAMESPACE, initial);
    settings.config = live;
    let ctrl = Ctrl::start(settings);
    let port = ctrl.admin_port;

    // python is not allowed yet: refused. html runs.
    create_env(&client, "pia", &spec(PYTHON_REPO, "main", "Tiltfile")).await;
    create_env(&client, "hal", &spec(HTML_REPO, "main", "0-base")).await;
    let refused = wait_for_phase(&client, "pia", Phase::Rejected).await;
    assert!(
        !refused.message.unwrap_or_default().contains("no longer"),
        "never accepted, so not 'no longer allowed'"
    );
    wait_for_children(&client, "hal").await;
    wait_for_phase(&client, "hal", Phase::Ready).await;

    // A broken edit: nothing changes, the failure is counted, the generation stays.
    ephemerator_testkit::replace_file(&path, "gatewayHost: [not, a, host]\n").unwrap();
    wait_for("the refused edit counted", || async {
        let (_, metrics) = http_get(port, "/metrics").await?;
        metrics
            .contains("ephctrl_config_reload_failures_total 1")
            .then_some(metrics)
    })
    .await;
    let (_, metrics) = http_get(port, "/metrics").await.unwrap();
    assert!(metrics.contains("ephctrl_config_generation 1"), "{metrics}");
    assert!(
        metrics.contains("ephctrl_config_last_reload_successful 0"),
        "{metrics}"
    );
    assert_eq!(status(&client, "hal").await.unwrap().phase, Phase::Ready);

    // The team lead swaps html for python: pia runs without a restart; hal is stopped.
    ephemerator_testkit::replace_file(
        &path,
        config_yaml(&["tilt-example-python"], webhook.url().as_str()),
    )
    .unwrap();
    wait_for_children(&client, "pia").await;
    wait_for_phase(&client, "pia", Phase::Ready).await;
    let stopped = wait_for_phase(&client, "hal", Phase::Rejected).await;
    let reason = stopped.message.unwrap_or_default();
    assert!(reason.starts_with("repo no longer allowed: "), "{reason}");
    wait_for("hal's runner removed", || async {
        let deployment: Option<Deployment> = get(&client, "hal").await;
        let service: Option<Service> = get(&client, "hal").await;
        (deployment.is_none() && service.is_none()).then_some(())
    })
    .await;
    wait_for("the Rejected event", || async {
        event_reasons(&client, "hal")
            .await
            .contains(&"Rejected".to_string())
            .then_some(())
    })
    .await;
    // hal's "created" notice, then its "stopped" one.
    let received = webhook.wait_for(2, DEADLINE).await;
    let stopped_notice = received
        .iter()
        .map(|notice| notice.body["text"].as_str().unwrap_or_default().to_string())
        .find(|text| text.contains("was stopped"))
        .unwrap_or_else(|| panic!("no 'stopped' notice: {received:?}"));
    assert!(
        stopped_notice.contains("*hal*") && stopped_notice.contains("repo no longer allowed"),
        "{stopped_notice}"
    );
    let (_, metrics) = http_get(port, "/metrics").await.unwrap();
    assert!(metrics.contains("ephctrl_config_generation 2"), "{metrics}");
    assert!(
        metrics.contains("ephctrl_config_last_reload_successful 1"),
        "{metrics}"
    );

    // hal stays stopped, with the same reason, on later reconciles.
    create_env(&client, "later", &spec(PYTHON_REPO, "main", "Tiltfile")).await;
    wait_for_phase(&client, "later", Phase::Ready).await;
    let still = status(&client, "hal").await.unwrap();
    assert_eq!(still.phase, Phase::Rejected);
    assert_eq!(still.message.as_deref(), Some(reason.as_str()));
}

#[tokio::test]
async fn check_config_says_what_is_wrong_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "gatewayHost: preview.example.com\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [tilt-example-html, tilt-example-go]\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "gatewayHost: preview.example.com\nexpiration:\n  defaultTTL: 15 mins\n  extendBy: 15m\nmaxEnvsPerUsr: 2\n",
    )
    .unwrap();
    let run = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ephctrl"))
            .arg("--check-config")
            .arg(path)
            .env_remove("EPH_CONFIG")
            .output()
            .unwrap()
    };

    let ok = run(&good);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        format!(
            "{}: ok (2 repos allowed, gateway host preview.example.com)\n",
            good.display()
        )
    );

    let refused = run(&bad);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:5:1: maxEnvsPerUsr: unknown field",
            bad.display()
        )),
        "{stderr}"
    );
    let missing = run(&dir.path().join("absent.yaml"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read config file"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
