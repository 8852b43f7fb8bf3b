//! ephctrl against a devcluster: what a user sees for each kind of env.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use ephctrl::desired::{template_hash_of, tilt_token_of};
use ephemerator_core::env::{BRANCH_KEY, EXPIRATION_KEY, PATH_KEY, REPO_KEY};
use ephemerator_core::labels::{OWNER_NAME_LABEL, PHASE_LABEL};
use ephemerator_core::{Phase, Port};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};

on_both_clusters!(
    an_env_created_through_kube_gets_owned_children_and_reports_ready,
    the_upstream_nicks_config_map_applied_with_kubectl_gets_its_runner,
    changing_the_branch_rolls_the_runner_out_again,
    a_two_second_ttl_expires_and_everything_is_gone,
    a_malformed_expiration_fails_the_env_and_deletes_nothing,
    a_repo_off_the_allow_list_is_rejected_with_its_reason_and_no_children,
    a_foreign_object_of_the_same_name_is_left_untouched,
    static_ports_from_the_config_need_no_tilt,
    a_deleted_child_is_made_again,
    ingress_mode_routes_env_hosts_and_switching_it_off_removes_the_ingress,
);

async fn an_env_created_through_kube_gets_owned_children_and_reports_ready(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    let before = Timestamp::now();
    let created = create_env(&client, "alice", &spec(HTML_REPO, "master", "0-base")).await;

    let (deployment, service) = wait_for_children(&client, "alice").await;
    let owner = (
        "ConfigMap".to_string(),
        "alice".to_string(),
        created.uid().unwrap(),
    );
    assert_eq!(controller_of(&deployment), Some(owner.clone()));
    assert_eq!(controller_of(&service), Some(owner));
    assert_eq!(deployment.labels()[OWNER_NAME_LABEL], "alice");
    assert_eq!(
        env_var(&deployment, "TILT_UPPER_REPO").as_deref(),
        Some(HTML_REPO)
    );
    assert_eq!(
        env_var(&deployment, "TILT_UPPER_BRANCH").as_deref(),
        Some("master")
    );
    assert_eq!(
        env_var(&deployment, "TILT_UPPER_PATH").as_deref(),
        Some("0-base")
    );
    assert_eq!(service_ports(&service), vec![("tilt".to_string(), 10350)]);

    let status = wait_for_phase(&client, "alice", Phase::Ready).await;
    assert!(status.ready_at.is_some(), "ready-at is recorded");
    assert_eq!(
        status.ports,
        vec![Port {
            name: "tilt".into(),
            port: 10350
        }]
    );

    // The user's data is untouched; the missing expiration was filled in with the default TTL.
    let cm: ConfigMap = get(&client, "alice").await.unwrap();
    let data = cm.data.clone().unwrap();
    assert_eq!(data[REPO_KEY], HTML_REPO);
    assert_eq!(data[BRANCH_KEY], "master");
    assert_eq!(data[PATH_KEY], "0-base");
    let expiration: Timestamp = data[EXPIRATION_KEY].parse().unwrap();
    let ttl = SignedDuration::from_mins(15);
    assert!(
        expiration >= before + ttl && expiration <= Timestamp::now() + ttl,
        "expiration {expiration} is 15 minutes after the env was made (from {before})"
    );
    assert_eq!(cm.labels()[PHASE_LABEL], "Ready");

    let reasons = wait_for("the Starting and Ready events", || async {
        let reasons = event_reasons(&client, "alice").await;
        (reasons.contains(&"Starting".to_string()) && reasons.contains(&"Ready".to_string()))
            .then_some(reasons)
    })
    .await;
    let starting = reasons.iter().position(|r| r == "Starting").unwrap();
    let ready = reasons.iter().position(|r| r == "Ready").unwrap();
    assert!(
        starting < ready,
        "events tell the story in order: {reasons:?}"
    );

    // Deleting the ConfigMap removes the env.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    api.delete("alice", &DeleteParams::default()).await.unwrap();
    wait_for("the children of alice to be collected", || async {
        (get::<Deployment>(&client, "alice").await.is_none()
            && get::<Service>(&client, "alice").await.is_none())
        .then_some(())
    })
    .await;
}

/// Upstream's example env, applied with kubectl as an operator would.
const NICKS_YAML: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: nicks
  labels:
    app.kubernetes.io/part-of: ephemerator.tilt.dev
    app.kubernetes.io/name: ephrunner
data:
  repo: https://github.com/tilt-dev/tilt-example-html
  path: 0-base
  branch: master
";

async fn the_upstream_nicks_config_map_applied_with_kubectl_gets_its_runner(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    kubectl(
        &cluster,
        &["apply", "-f", "nicks.yaml"],
        &[("nicks.yaml", NICKS_YAML)],
    )
    .await;

    let (deployment, service) = wait_for_children(&client, "nicks").await;
    let cm: ConfigMap = get(&client, "nicks").await.unwrap();
    let owner = Some((
        "ConfigMap".to_string(),
        "nicks".to_string(),
        cm.uid().unwrap(),
    ));
    assert_eq!(controller_of(&deployment), owner);
    assert_eq!(controller_of(&service), owner);
    assert_eq!(
        env_var(&deployment, "TILT_UPPER_PATH").as_deref(),
        Some("0-base")
    );
    let status = wait_for_phase(&client, "nicks", Phase::Ready).await;
    assert_eq!(status.message.as_deref(), Some(READY_WITHOUT_TILT));
}

async fn changing_the_branch_rolls_the_runner_out_again(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    create_env(&client, "bob", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "bob", Phase::Ready).await;
    let (before, _) = wait_for_children(&client, "bob").await;
    let hash_of = |d: &Deployment| template_hash_of(d).expect("the runner has a template hash");

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = serde_json::json!({ "data": { BRANCH_KEY: "release-2" } });
    api.patch("bob", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    let after = wait_for("the runner to get the new branch", || async {
        get::<Deployment>(&client, "bob")
            .await
            .filter(|d| env_var(d, "TILT_UPPER_BRANCH").as_deref() == Some("release-2"))
    })
    .await;
    assert_ne!(
        hash_of(&before),
        hash_of(&after),
        "the template hash changed"
    );
    assert_eq!(before.uid(), after.uid(), "the same Deployment rolls out");
    assert_eq!(
        tilt_token_of(&before),
        tilt_token_of(&after),
        "the Tilt token is kept"
    );
    // Ready again, for the new template (the controller never calls the old runner ready).
    wait_for("bob to be Ready on the new spec", || async {
        let deployment: Deployment = get(&client, "bob").await?;
        let status = status(&client, "bob").await?;
        (status.phase == Phase::Ready
            && deployment.status?.observed_generation? >= deployment.metadata.generation?)
            .then_some(())
    })
    .await;
    assert_eq!(labelled_deployments(&client, "bob").await.len(), 1);
}

async fn a_two_second_ttl_expires_and_everything_is_gone(cluster: TestCluster) {
    let client = cluster.client();
    let mut config = config();
    config.expiration.default_ttl = SignedDuration::from_secs(2);
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config);
    create_env(&client, "carol", &spec(HTML_REPO, "master", "0-base")).await;

    let expiration: Timestamp = wait_for("carol's expiration to be filled in", || async {
        get::<ConfigMap>(&client, "carol")
            .await?
            .data?
            .get(EXPIRATION_KEY)?
            .parse()
            .ok()
    })
    .await;
    wait_for_children(&client, "carol").await;
    wait_for("carol and her children to be gone", || async {
        (get::<ConfigMap>(&client, "carol").await.is_none()
            && get::<Deployment>(&client, "carol").await.is_none()
            && get::<Service>(&client, "carol").await.is_none())
        .then_some(())
    })
    .await;
    assert!(
        Timestamp::now() >= expiration,
        "deleted at the expiration, not before it ({expiration})"
    );
}

async fn a_malformed_expiration_fails_the_env_and_deletes_nothing(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    create_env(&client, "dora", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "dora", Phase::Ready).await;

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = serde_json::json!({ "data": { EXPIRATION_KEY: "next tuesday" } });
    api.patch("dora", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let status = wait_for_phase(&client, "dora", Phase::Failed).await;
    let message = status.message.unwrap();
    assert!(message.contains("data.expiration"), "{message}");
    assert!(message.contains("next tuesday"), "{message}");
    assert!(get::<ConfigMap>(&client, "dora").await.is_some());
    wait_for_children(&client, "dora").await;
}

async fn a_repo_off_the_allow_list_is_rejected_with_its_reason_and_no_children(
    cluster: TestCluster,
) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    create_env(
        &client,
        "eve",
        &spec("https://github.com/evil/miner", "master", "0-base"),
    )
    .await;

    let status = wait_for_phase(&client, "eve", Phase::Rejected).await;
    let message = status.message.unwrap();
    assert!(
        message.contains("repo: is not on the allow-list"),
        "{message}"
    );
    // The status is written after any child would have been: none was made.
    assert!(get::<Deployment>(&client, "eve").await.is_none());
    assert!(get::<Service>(&client, "eve").await.is_none());
    wait_for("the Rejected event", || async {
        event_reasons(&client, "eve")
            .await
            .contains(&"Rejected".to_string())
            .then_some(())
    })
    .await;

    // Fixing the spec brings the env up.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = serde_json::json!({ "data": { REPO_KEY: HTML_REPO } });
    api.patch("eve", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for_phase(&client, "eve", Phase::Ready).await;
}

async fn a_foreign_object_of_the_same_name_is_left_untouched(cluster: TestCluster) {
    let client = cluster.client();
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let foreign = services
        .create(
            &PostParams::default(),
            &Service {
                metadata: ObjectMeta {
                    name: Some("frank".into()),
                    labels: Some(BTreeMap::from([(
                        "team".to_string(),
                        "billing".to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                spec: Some(ServiceSpec {
                    ports: Some(vec![ServicePort {
                        name: Some("http".into()),
                        port: 80,
                        ..ServicePort::default()
                    }]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            },
        )
        .await
        .unwrap();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    create_env(&client, "frank", &spec(HTML_REPO, "master", "0-base")).await;

    let status = wait_for_phase(&client, "frank", Phase::Failed).await;
    let message = status.message.unwrap();
    assert!(message.contains("Service"), "{message}");
    assert!(message.contains("not managed by ephemerator"), "{message}");
    let after: Service = get(&client, "frank").await.unwrap();
    assert_eq!(
        after.resource_version(),
        foreign.resource_version(),
        "not modified"
    );
    assert_eq!(after.labels(), foreign.labels());
    assert!(after.owner_references().is_empty());
    assert_eq!(service_ports(&after), vec![("http".to_string(), 80)]);
    assert!(get::<Deployment>(&client, "frank").await.is_none());

    // Once its owner removes it, the env proceeds.
    services
        .delete("frank", &DeleteParams::default())
        .await
        .unwrap();
    wait_for_phase(&client, "frank", Phase::Ready).await;
}

async fn static_ports_from_the_config_need_no_tilt(cluster: TestCluster) {
    let client = cluster.client();
    let config = ephemerator_core::Config::from_yaml_str(
        r#"
gatewayHost: preview.localhost
allowlist:
  repos:
    - url: https://github.com/example/static-site
      ports:
        - {name: web, port: 8080}
"#,
        "static.yaml",
    )
    .unwrap();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config);
    create_env(
        &client,
        "hank",
        &spec("https://github.com/example/static-site", "main", "Tiltfile"),
    )
    .await;
    let status = wait_for_phase(&client, "hank", Phase::Ready).await;
    assert_eq!(
        status.ports,
        vec![
            Port {
                name: "web".into(),
                port: 8080
            },
            Port {
                name: "tilt".into(),
                port: 10350
            },
        ]
    );
    let service: Service = get(&client, "hank").await.unwrap();
    assert_eq!(
        service_ports(&service),
        vec![("tilt".to_string(), 10350), ("web".to_string(), 8080)]
    );
}

async fn ingress_mode_routes_env_hosts_and_switching_it_off_removes_the_ingress(
    cluster: TestCluster,
) {
    use k8s_openapi::api::networking::v1::Ingress;
    let client = cluster.client();
    let mut config = config();
    config.ingress.enabled = true;
    config.ingress.class_name = Some("nginx".into());
    let ctrl = Ctrl::with_config(cluster.ctrl_client(), config.clone());
    create_env(&client, "ivy", &spec(HTML_REPO, "master", "0-base")).await;
    let ingress: Ingress = wait_for("ivy's Ingress", || get(&client, "ivy")).await;
    let spec = ingress.spec.unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    let hosts: Vec<String> = spec
        .rules
        .unwrap()
        .into_iter()
        .filter_map(|r| r.host)
        .collect();
    assert_eq!(hosts, vec!["10350---ivy.preview.localhost".to_string()]);
    ctrl.kill().await;

    config.ingress.enabled = false;
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config);
    wait_for("ivy's Ingress to be removed", || async {
        get::<Ingress>(&client, "ivy").await.is_none().then_some(())
    })
    .await;
    assert!(get::<Deployment>(&client, "ivy").await.is_some());
}

async fn a_deleted_child_is_made_again(cluster: TestCluster) {
    let client = cluster.client();
    let _ctrl = Ctrl::with_config(cluster.ctrl_client(), config());
    create_env(&client, "gina", &spec(HTML_REPO, "master", "0-base")).await;
    wait_for_phase(&client, "gina", Phase::Ready).await;
    let (_, service) = wait_for_children(&client, "gina").await;

    // Deleted by hand right after the controller's own apply: nothing else changed it since.
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    services
        .delete("gina", &DeleteParams::default())
        .await
        .unwrap();
    let again = wait_for("gina's Service to be made again", || async {
        get::<Service>(&client, "gina")
            .await
            .filter(|made| made.uid() != service.uid())
    })
    .await;
    assert_eq!(service_ports(&again), vec![("tilt".to_string(), 10350)]);
}
