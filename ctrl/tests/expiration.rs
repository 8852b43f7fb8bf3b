//! Who writes `data.expiration` (README: "Env ConfigMaps"): ephctrl only fills in a missing
//! value or writes back the cap, guarded by the resourceVersion it read, so other writers
//! (the dashboard's extend, kubectl) are never overwritten; and other field managers' applies
//! never conflict with ephctrl's writes.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::env::EXPIRATION_KEY;
use ephemerator_core::{Phase, env_config_map};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};

fn expiration_of(config_map: &ConfigMap) -> Option<String> {
    config_map.data.as_ref()?.get(EXPIRATION_KEY).cloned()
}

on_both_clusters!(
    a_fill_in_racing_an_extend_never_loses_the_extend,
    a_missing_expiration_is_filled_in_and_one_past_the_cap_is_written_back,
    server_side_applies_by_another_manager_do_not_conflict_with_ephctrl,
);

async fn a_fill_in_racing_an_extend_never_loses_the_extend(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let extended = (Timestamp::now() + SignedDuration::from_mins(40)).to_string();
    let names: Vec<String> = (0..12).map(|i| format!("race-{i}")).collect();
    // Each env is created without an expiration (ephctrl fills one in) and extended at once,
    // as a user clicking Extend right after Create: the two writes race.
    for name in &names {
        api.create(
            &PostParams::default(),
            &env_config_map(name, name, &spec(HTML_REPO, "master", "0-base"), None),
        )
        .await
        .unwrap();
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {EXPIRATION_KEY: extended}})),
        )
        .await
        .unwrap();
    }
    for name in &names {
        wait_for_phase(&client, name, Phase::Ready).await;
        let config_map: ConfigMap = get(&client, name).await.unwrap();
        assert_eq!(
            expiration_of(&config_map).as_deref(),
            Some(extended.as_str()),
            "{name}: the extend was overwritten"
        );
    }
}

async fn a_missing_expiration_is_filled_in_and_one_past_the_cap_is_written_back(
    cluster: TestCluster,
) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    create_env(&client, "fresh", &spec(HTML_REPO, "master", "0-base")).await;
    let filled = wait_for("the expiration filled in", || async {
        expiration_of(&get::<ConfigMap>(&client, "fresh").await?)
    })
    .await;
    let filled: Timestamp = filled.parse().unwrap();
    let ttl = filled.duration_since(Timestamp::now());
    assert!(ttl > SignedDuration::from_mins(14) && ttl <= SignedDuration::from_mins(15));

    // Written far past the 8h cap by hand: ephctrl writes the cap, what really happens.
    let far = (Timestamp::now() + SignedDuration::from_hours(100)).to_string();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    api.create(
        &PostParams::default(),
        &env_config_map(
            "greedy",
            "greedy",
            &spec(HTML_REPO, "master", "0-base"),
            Some(far.parse().unwrap()),
        ),
    )
    .await
    .unwrap();
    let capped = wait_for("the cap written back", || async {
        let config_map: ConfigMap = get(&client, "greedy").await?;
        let created = config_map.metadata.creation_timestamp.clone()?.0;
        let written: Timestamp = expiration_of(&config_map)?.parse().ok()?;
        (written == created + SignedDuration::from_hours(8)).then_some(written)
    })
    .await;
    assert!(capped < far.parse().unwrap());
}

const KUBECTL_ENV: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: ops
  labels:
    app.kubernetes.io/part-of: ephemerator.tilt.dev
    app.kubernetes.io/name: ephrunner
data:
  repo: https://github.com/tilt-dev/tilt-example-html
  path: 0-base/Tiltfile
  branch: BRANCH
"#;

async fn server_side_applies_by_another_manager_do_not_conflict_with_ephctrl(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    let apply = |branch: &str| {
        let manifest = KUBECTL_ENV.replace("BRANCH", branch);
        let cluster = &cluster;
        async move {
            // No --force-conflicts: a conflict with ephctrl's fields fails the command.
            kubectl(
                cluster,
                &["apply", "--server-side", "-f", "env.yaml"],
                &[("env.yaml", &manifest)],
            )
            .await
        }
    };
    apply("master").await;
    wait_for_phase(&client, "ops", Phase::Ready).await;
    let before: ConfigMap = get(&client, "ops").await.unwrap();
    let expiration = expiration_of(&before).expect("filled in by ephctrl");

    // The operator changes the branch by applying again: no conflict; the runner rolls out,
    // and ephctrl's expiration and status stay.
    apply("main").await;
    wait_for("the runner to roll out main", || async {
        let deployment: Deployment = get(&client, "ops").await?;
        (env_var(&deployment, "TILT_UPPER_BRANCH")? == "main").then_some(())
    })
    .await;
    let after: ConfigMap = get(&client, "ops").await.unwrap();
    assert_eq!(expiration_of(&after), Some(expiration));
    assert!(after.labels().contains_key("ephemerator.tilt.dev/phase"));
    // The managers own what they wrote: kubectl the spec, ephctrl the expiration and status.
    let managers: Vec<String> = after
        .managed_fields()
        .iter()
        .filter_map(|entry| entry.manager.clone())
        .collect();
    assert!(managers.iter().any(|m| m == "kubectl"), "{managers:?}");
    assert!(managers.iter().any(|m| m == "ephctrl"), "{managers:?}");
}
