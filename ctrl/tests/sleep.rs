//! Envs sleep when nobody uses them and wake on the next visit (README "Envs sleep when nobody
//! uses them"): ephctrl scales an idle env's runner to zero and keeps its Service, wakes it when
//! its activity Lease is renewed after it fell asleep (the gateway's part: `gateway/tests/`) or
//! when someone asks (`kubectl annotate … ephemerator.tilt.dev/wake=…`), leaves a keep-awake env
//! alone, and still expires a sleeping env on time.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::activity::{lease_name, renewal};
use ephemerator_core::labels::{KEEP_AWAKE_ANNOTATION, WAKE_ANNOTATION};
use ephemerator_core::{Config, EnvStatus, Phase, env_config_map};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

on_both_clusters!(
    an_idle_env_sleeps_and_a_visit_recorded_on_its_lease_wakes_it,
    keep_awake_exempts_an_env_and_kubectl_wakes_one,
    a_sleeping_env_still_expires_on_time,
);

/// Envs sleep after 3 s without use.
fn sleepy_config() -> Config {
    Config::from_yaml_str(&format!("{CONFIG_YAML}sleepAfter: 3s\n"), "sleepy.yaml").unwrap()
}

async fn replicas(client: &Client, name: &str) -> Option<i32> {
    get::<Deployment>(client, name).await?.spec?.replicas
}

/// The env's phase and status once it is `phase`.
async fn phase_becomes(client: &Client, name: &str, phase: Phase) -> EnvStatus {
    wait_for(&format!("{name} {phase}"), || async {
        status(client, name).await.filter(|s| s.phase == phase)
    })
    .await
}

/// What the gateway does on a person's visit: applies the env's activity Lease, renewed now.
async fn visit(client: &Client, config_map: &ConfigMap) {
    let name = config_map.name_any();
    let lease = renewal(
        &name,
        &config_map.uid().unwrap_or_default(),
        "test-gateway",
        Timestamp::now(),
    );
    Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), NAMESPACE)
        .patch(
            &lease_name(&name),
            &PatchParams::apply("test-gateway").force(),
            &Patch::Apply(&lease),
        )
        .await
        .unwrap();
}

async fn metric(port: u16, line_prefix: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics").await?;
    body.lines()
        .find(|line| line.starts_with(line_prefix))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn an_idle_env_sleeps_and_a_visit_recorded_on_its_lease_wakes_it(cluster: TestCluster) {
    let client = cluster.client();
    let ctrl = Ctrl::with_config(cluster.ctrl_client(), sleepy_config());
    let created = create_env(&client, "dozy", &spec(HTML_REPO, "master", "0-base")).await;
    phase_becomes(&client, "dozy", Phase::Ready).await;

    let asleep = phase_becomes(&client, "dozy", Phase::Sleeping).await;
    let since = asleep.asleep_since.expect("since when it sleeps");
    assert!(
        asleep.message.as_deref().unwrap().starts_with(&format!(
            "asleep since {}",
            since.round(jiff::Unit::Second).unwrap()
        )),
        "{asleep:?}"
    );
    wait_for("the runner scaled to zero", || async {
        (replicas(&client, "dozy").await == Some(0)).then_some(())
    })
    .await;
    assert!(
        get::<Service>(&client, "dozy").await.is_some(),
        "the Service stays"
    );
    assert_eq!(
        asleep.ports,
        vec![ephemerator_core::Port {
            name: "tilt".into(),
            port: 10350
        }]
    );
    assert_eq!(
        metric(ctrl.admin_port, "ephctrl_envs{phase=\"Sleeping\"} ").await,
        Some(1.0)
    );

    // Nobody comes: it stays asleep (a reconcile for another reason changes nothing).
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    api.patch(
        "dozy",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"team": "web"}}})),
    )
    .await
    .unwrap();
    wait_for("the label seen", || async {
        get::<ConfigMap>(&client, "dozy")
            .await
            .filter(|cm| cm.labels().contains_key("team"))
    })
    .await;

    // A visit: the gateway renews the Lease; the env wakes and is Ready again.
    visit(&client, &created).await;
    let waking = wait_for("dozy woken", || async {
        status(&client, "dozy")
            .await
            .filter(|s| s.phase != Phase::Sleeping)
    })
    .await;
    assert!(waking.woke_at.is_some(), "{waking:?}");
    let ready = phase_becomes(&client, "dozy", Phase::Ready).await;
    assert_eq!(ready.asleep_since, None, "the wake is over: {ready:?}");
    assert_eq!(replicas(&client, "dozy").await, Some(1));
    let reasons = wait_for("the wake's Events", || async {
        let reasons = event_reasons(&client, "dozy").await;
        reasons.contains(&"Sleeping".to_string()).then_some(reasons)
    })
    .await;
    assert!(
        reasons.ends_with(&["Sleeping".into(), "Starting".into(), "Ready".into()]),
        "{reasons:?}"
    );
    wait_for("the wake measured once", || async {
        (metric(ctrl.admin_port, "ephctrl_wake_duration_seconds_count ").await == Some(1.0))
            .then_some(())
    })
    .await;
}

async fn keep_awake_exempts_an_env_and_kubectl_wakes_one(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), sleepy_config());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let mut kept = env_config_map("kept", "kept", &spec(HTML_REPO, "master", "0-base"), None);
    kept.metadata
        .annotations
        .get_or_insert_default()
        .insert(KEEP_AWAKE_ANNOTATION.into(), "true".into());
    api.create(&PostParams::default(), &kept).await.unwrap();
    phase_becomes(&client, "kept", Phase::Ready).await;
    // An env made after it falls asleep first: by then "kept" had its idle time too.
    create_env(&client, "plain", &spec(HTML_REPO, "master", "0-base")).await;
    phase_becomes(&client, "plain", Phase::Sleeping).await;
    let kept_status = status(&client, "kept").await.unwrap();
    assert_eq!(kept_status.phase, Phase::Ready, "{kept_status:?}");
    assert_eq!(replicas(&client, "kept").await, Some(1));

    // An operator wakes the sleeping one, as the README says.
    kubectl(
        &cluster,
        &[
            "annotate",
            "configmap",
            "plain",
            &format!("{WAKE_ANNOTATION}=ops"),
        ],
        &[],
    )
    .await;
    // The wake's Event says who asked (the message moves on as the runner starts).
    wait_for("plain woken by ops", || async {
        let notes = ephemerator_testkit::event_notes(&client, NAMESPACE, "plain", "Starting").await;
        notes
            .iter()
            .any(|note| note.starts_with("woken by ops"))
            .then_some(())
    })
    .await;
    wait_for("the wake annotation removed", || async {
        let cm = get::<ConfigMap>(&client, "plain").await?;
        (!cm.annotations().contains_key(WAKE_ANNOTATION)).then_some(())
    })
    .await;
    phase_becomes(&client, "plain", Phase::Ready).await;

    // Keep-awake turned off: it sleeps like the others.
    kubectl(
        &cluster,
        &[
            "annotate",
            "configmap",
            "kept",
            &format!("{KEEP_AWAKE_ANNOTATION}-"),
        ],
        &[],
    )
    .await;
    phase_becomes(&client, "kept", Phase::Sleeping).await;
}

async fn a_sleeping_env_still_expires_on_time(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), sleepy_config());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let expiration = Timestamp::now() + SignedDuration::from_secs(12);
    api.create(
        &PostParams::default(),
        &env_config_map(
            "brief",
            "brief",
            &spec(HTML_REPO, "master", "0-base"),
            Some(expiration),
        ),
    )
    .await
    .unwrap();
    phase_becomes(&client, "brief", Phase::Sleeping).await;
    assert!(Timestamp::now() < expiration, "asleep before its deadline");
    wait_for("brief expired", || async {
        get::<ConfigMap>(&client, "brief")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        Timestamp::now() >= expiration,
        "deleted at its deadline, not before"
    );
}
