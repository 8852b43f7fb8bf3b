//! The REST semantics of devcluster, exercised with kube-rs as our components use it.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{
    DEADLINE, Server, config_map, deployment, on_both_servers, raw, raw_with_headers, status_of,
    wait_for, within,
};
use devcluster::DevCluster;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

/// A devcluster, for the tests of what only it does.
async fn cluster() -> Server {
    Server::start_dev().await
}

fn cms(c: &Server) -> Api<ConfigMap> {
    Api::default_namespaced(c.client())
}

fn rv_of<K: Resource>(obj: &K) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .expect("resourceVersion set")
        .parse()
        .expect("resourceVersion is a number")
}

/// Creates an empty ConfigMap `name` through `api`.
async fn create_named(api: &Api<ConfigMap>, name: &str) -> ConfigMap {
    api.create(&PostParams::default(), &config_map(name, &[], &[]))
        .await
        .unwrap()
}

fn owned_by(name: &str, owner: &ConfigMap, block: bool) -> ConfigMap {
    let mut cm = config_map(name, &[], &[]);
    cm.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.metadata.name.clone().expect("owner name"),
        uid: owner.metadata.uid.clone().expect("owner uid"),
        block_owner_deletion: Some(block),
        controller: Some(true),
    }]);
    cm
}

async fn wait_gone(api: &Api<ConfigMap>, name: &str) {
    wait_for(&format!("{name} to be deleted"), || async {
        api.get_opt(name)
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await
}

on_both_servers!(
    create_fills_in_server_fields_and_get_returns_the_object,
    create_rejects_duplicates_bad_names_and_missing_namespaces,
    body_namespace_must_match_the_url,
    updates_check_resource_versions_and_skip_no_ops,
    generation_and_status_subresource_follow_the_real_strategy,
    services_get_unique_cluster_ips_and_headless_stays_headless,
    merge_and_strategic_patches,
    json_patch_applies_operations,
    server_side_apply_creates_tracks_managers_and_conflicts,
    apply_conflicts_report_every_manager_like_the_real_server,
    patches_of_missing_objects_are_not_found,
    finalizers_hold_deletion_until_removed,
    delete_preconditions_and_dry_run,
    background_deletion_collects_dependents,
    orphan_deletion_keeps_dependents_without_the_reference,
    foreground_deletion_waits_for_blocking_dependents,
    deleting_a_namespace_deletes_its_contents,
    delete_collection_honours_selectors,
    lists_filter_by_labels_and_fields_in_name_order,
    event_field_selectors_match_involved_object,
    kubectl_get_receives_tables_with_metadata_for_label_columns,
    table_watches_send_rows_with_columns_first,
    metadata_only_reads_answer_partial_object_metadata,
    watch_streams_changes_and_selector_transitions,
    streaming_list_sends_initial_events_then_the_end_bookmark,
    kube_watcher_works_with_list_watch_and_streaming_list,
    reflector_store_fills_and_follows,
    a_controller_reconciles_config_maps,
    garbage_requests_get_status_errors_not_panics,
    kubeconfig_points_kube_at_the_server,
);

async fn create_fills_in_server_fields_and_get_returns_the_object(c: Server) {
    let api = cms(&c);
    let created = api
        .create(
            &PostParams::default(),
            &config_map("app", &[("a", "b")], &[("k", "v")]),
        )
        .await
        .unwrap();
    let m = &created.metadata;
    assert!(m.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(m.creation_timestamp.is_some());
    assert_eq!(m.namespace.as_deref(), Some("default"));
    assert_eq!(m.generation, None, "ConfigMaps have no generation");
    let fetched = api.get("app").await.unwrap();
    assert_eq!(fetched.data, created.data);
    assert_eq!(fetched.metadata.resource_version, m.resource_version);

    let deploys: Api<Deployment> = Api::default_namespaced(c.client());
    let d = deploys
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    // One counter for every kind: the Deployment's version comes after the ConfigMap's. (Not
    // necessarily next: on the real server the control plane's own Lease renewals write too.)
    assert!(rv_of(&d) > rv_of(&created), "one global counter");

    let status = status_of(api.get("missing").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    let details = status.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("missing", "configmaps")
    );
}

async fn create_rejects_duplicates_bad_names_and_missing_namespaces(c: Server) {
    let api = cms(&c);
    create_named(&api, "x").await;
    let dup = status_of(
        api.create(&PostParams::default(), &config_map("x", &[], &[]))
            .await,
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    let bad = status_of(
        api.create(&PostParams::default(), &config_map("Not_Valid", &[], &[]))
            .await,
    );
    assert_eq!((bad.code, bad.reason.as_str()), (422, "Invalid"));
    assert!(bad.message.contains("metadata.name"), "{}", bad.message);

    let elsewhere: Api<ConfigMap> = Api::namespaced(c.client(), "nowhere");
    let missing = status_of(
        elsewhere
            .create(&PostParams::default(), &config_map("y", &[], &[]))
            .await,
    );
    assert_eq!(missing.code, 404);
    assert!(
        missing.message.contains("namespaces \"nowhere\" not found"),
        "{}",
        missing.message
    );

    let mut generated = config_map("", &[], &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g1 = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let g2 = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let (n1, n2) = (g1.metadata.name.unwrap(), g2.metadata.name.unwrap());
    assert!(n1.starts_with("gen-") && n1.len() == 9, "{n1}");
    assert_ne!(n1, n2);
    // The prefix itself must be valid in a name (a trailing '-' aside): "gen." is refused.
    generated.metadata.generate_name = Some("gen.".into());
    let refused = status_of(api.create(&PostParams::default(), &generated).await);
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));
    assert!(
        refused.message.contains(
            "metadata.generateName: Invalid value: \"gen.\": a lowercase RFC 1123 subdomain"
        ),
        "{}",
        refused.message
    );

    let dry = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &config_map("dry", &[], &[]),
        )
        .await
        .unwrap();
    assert_eq!(dry.metadata.name.as_deref(), Some("dry"));
    assert!(
        api.get_opt("dry").await.unwrap().is_none(),
        "dry run stores nothing"
    );
}

async fn body_namespace_must_match_the_url(c: Server) {
    let api = cms(&c);
    let mut cm = config_map("z", &[], &[]);
    cm.metadata.namespace = Some("kube-system".into());
    let err = status_of(api.create(&PostParams::default(), &cm).await);
    assert_eq!(err.code, 400);
}

async fn updates_check_resource_versions_and_skip_no_ops(c: Server) {
    let api = cms(&c);
    let v1 = api
        .create(&PostParams::default(), &config_map("u", &[], &[("k", "1")]))
        .await
        .unwrap();
    let mut v2 = v1.clone();
    v2.data = Some(BTreeMap::from([("k".to_string(), "2".to_string())]));
    let v2 = api.replace("u", &PostParams::default(), &v2).await.unwrap();
    assert!(rv_of(&v2) > rv_of(&v1));

    let mut stale = v1.clone();
    stale.data = Some(BTreeMap::from([("k".to_string(), "3".to_string())]));
    let conflict = status_of(api.replace("u", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("the object has been modified"),
        "{}",
        conflict.message
    );

    // Without a resourceVersion the update is unconditional.
    stale.metadata.resource_version = None;
    let v3 = api
        .replace("u", &PostParams::default(), &stale)
        .await
        .unwrap();
    assert_eq!(v3.data.as_ref().unwrap()["k"], "3");

    // Writing the same object again changes nothing, not even the resourceVersion.
    let again = api.replace("u", &PostParams::default(), &v3).await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        v3.metadata.resource_version
    );

    // Identity is immutable.
    let mut other_uid = v3.clone();
    other_uid.metadata.uid = Some("00000000-0000-4000-8000-000000000000".into());
    assert_eq!(
        status_of(api.replace("u", &PostParams::default(), &other_uid).await).code,
        409
    );
}

/// Reads the latest object, changes it and writes it back, retrying on conflicts as controllers
/// do (the workload simulator writes Deployments' status concurrently).
async fn update_latest<K, F>(api: &Api<K>, name: &str, status: bool, change: F) -> K
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    F: Fn(&mut K),
{
    wait_for("a conflict-free update", || async {
        let mut obj = api.get(name).await.expect("get");
        change(&mut obj);
        let result = if status {
            api.replace_status(name, &PostParams::default(), &obj).await
        } else {
            api.replace(name, &PostParams::default(), &obj).await
        };
        match result {
            Ok(o) => Some(o),
            Err(kube::Error::Api(s)) if s.code == 409 => None,
            Err(e) => panic!("update failed: {e}"),
        }
    })
    .await
}

async fn generation_and_status_subresource_follow_the_real_strategy(c: Server) {
    let api: Api<Deployment> = Api::default_namespaced(c.client());
    let d = api
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));

    // Metadata-only change: no generation bump. Status in the main resource is ignored.
    let labelled = update_latest(&api, "web", false, |d| {
        d.metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "a".into());
        d.status = Some(serde_json::from_value(json!({"replicas": 7})).unwrap());
    })
    .await;
    assert_eq!(labelled.metadata.generation, Some(1));
    assert_ne!(labelled.status.as_ref().and_then(|s| s.replicas), Some(7));

    // Spec change: generation bumps.
    let scaled = update_latest(&api, "web", false, |d| {
        d.spec.as_mut().unwrap().replicas = Some(3)
    })
    .await;
    assert_eq!(scaled.metadata.generation, Some(2));

    // /status changes only the status.
    let st = update_latest(&api, "web", true, |d| {
        d.status =
            Some(serde_json::from_value(json!({"replicas": 3, "observedGeneration": 42})).unwrap());
        d.spec.as_mut().unwrap().replicas = Some(9);
    })
    .await;
    assert_eq!(
        st.status.as_ref().and_then(|s| s.observed_generation),
        Some(42)
    );
    assert_eq!(st.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(st.metadata.generation, Some(2));
}

async fn services_get_unique_cluster_ips_and_headless_stays_headless(c: Server) {
    let api: Api<Service> = Api::default_namespaced(c.client());
    let svc = |name: &str, ip: Option<&str>| -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": 80}], "selector": {"app": name}}
        }))
        .unwrap()
    };
    let a = api
        .create(&PostParams::default(), &svc("a", None))
        .await
        .unwrap();
    let b = api
        .create(&PostParams::default(), &svc("b", None))
        .await
        .unwrap();
    let h = api
        .create(&PostParams::default(), &svc("h", Some("None")))
        .await
        .unwrap();
    let ip = |s: &Service| s.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    // The service CIDR is kubeadm's default, 10.96.0.0/12, on both servers.
    let in_service_cidr = |ip: &str| {
        let ip: std::net::Ipv4Addr = ip.parse().unwrap();
        u32::from(ip) & 0xfff0_0000 == u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0))
    };
    assert!(in_service_cidr(&ip(&a)), "{}", ip(&a));
    assert_ne!(ip(&a), ip(&b));
    assert_eq!(ip(&h), "None");
    assert_eq!(a.spec.as_ref().unwrap().type_.as_deref(), Some("ClusterIP"));
}

async fn merge_and_strategic_patches(c: Server) {
    let api = cms(&c);
    api.create(&PostParams::default(), &config_map("p", &[], &[("a", "1")]))
        .await
        .unwrap();
    let patched = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap(),
        BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())])
    );

    let deploys: Api<Deployment> = Api::default_namespaced(c.client());
    deploys
        .create(&PostParams::default(), &deployment("s", 1))
        .await
        .unwrap();
    let strategic = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}}});
    let d = deploys
        .patch("s", &PatchParams::default(), &Patch::Strategic(strategic))
        .await
        .unwrap();
    let containers = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(
        containers.len(),
        1,
        "strategic merge merges containers by name"
    );
    assert_eq!(containers[0].image.as_deref(), Some("busybox:1.37"));

    let missing = status_of(
        api.patch("nope", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
    );
    assert_eq!(missing.code, 404);

    // A resourceVersion in a patch is a precondition.
    let stale = status_of(
        api.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"c": "3"}})),
        )
        .await,
    );
    assert_eq!(stale.code, 409);
}

async fn json_patch_applies_operations(c: Server) {
    let api = cms(&c);
    api.create(&PostParams::default(), &config_map("j", &[], &[("a", "1")]))
        .await
        .unwrap();
    let body = br#"[{"op":"add","path":"/data/b","value":"2"},{"op":"remove","path":"/data/a"}]"#;
    let resp = raw(
        &c,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/j",
        "application/json-patch+json",
        body,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["data"], json!({"b": "2"}));
}

async fn server_side_apply_creates_tracks_managers_and_conflicts(c: Server) {
    let api = cms(&c);
    let applied = api
        .patch(
            "ssa",
            &PatchParams::apply("alice"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["x"], "1");
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"alice".to_string()), "{managers:?}");

    let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "2"}});
    let conflict = status_of(
        api.patch(
            "ssa",
            &PatchParams::apply("bob"),
            &Patch::Apply(bob.clone()),
        )
        .await,
    );
    assert_eq!(conflict.code, 409);
    assert!(conflict.message.contains("alice"), "{}", conflict.message);
    let forced = api
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(bob),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["x"], "2");
}

async fn apply_conflicts_report_every_manager_like_the_real_server(c: Server) {
    let api = cms(&c);
    let apply = |data: serde_json::Value| {
        Patch::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": data}),
        )
    };
    api.patch(
        "shared",
        &PatchParams::apply("alice"),
        &apply(json!({"a": "1"})),
    )
    .await
    .unwrap();
    // bob is an Update manager (a merge patch): conflicts name the API version he used.
    let bob = PatchParams {
        field_manager: Some("bob".into()),
        ..Default::default()
    };
    api.patch(
        "shared",
        &bob,
        &Patch::Merge(json!({"data": {"b": "1", "c": "1"}})),
    )
    .await
    .unwrap();
    let one = status_of(
        api.patch(
            "shared",
            &PatchParams::apply("carol"),
            &apply(json!({"b": "2"})),
        )
        .await,
    );
    assert_eq!(
        one.message,
        "Apply failed with 1 conflict: conflict with \"bob\" using v1: .data.b"
    );
    let status = status_of(
        api.patch(
            "shared",
            &PatchParams::apply("carol"),
            &apply(json!({"a": "2", "b": "2", "c": "2"})),
        )
        .await,
    );
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        "Apply failed with 3 conflicts: conflicts with \"alice\":\n- .data.a\nconflicts with \"bob\" using v1:\n- .data.b\n- .data.c"
    );
    // The real server lists the causes in no fixed order (its managers are a Go map).
    let mut causes: Vec<(String, String, String)> = status
        .details
        .expect("conflict details")
        .causes
        .into_iter()
        .map(|c| (c.reason, c.message, c.field))
        .collect();
    causes.sort();
    let cause = |manager: &str, field: &str| {
        (
            "FieldManagerConflict".to_string(),
            format!("conflict with {manager}"),
            field.to_string(),
        )
    };
    assert_eq!(
        causes,
        vec![
            cause("\"alice\"", ".data.a"),
            cause("\"bob\" using v1", ".data.b"),
            cause("\"bob\" using v1", ".data.c"),
        ]
    );
    let unchanged = api.get("shared").await.unwrap();
    assert_eq!(
        unchanged.data.unwrap()["a"],
        "1",
        "a conflict writes nothing"
    );
}

async fn patches_of_missing_objects_are_not_found(c: Server) {
    let api = cms(&c);
    let merge = status_of(
        api.patch(
            "absent",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await,
    );
    let strategic = status_of(
        api.patch(
            "absent",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"k": "v"}})),
        )
        .await,
    );
    let json = raw(
        &c,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/absent",
        "application/json-patch+json",
        br#"[{"op":"add","path":"/data","value":{"k":"v"}}]"#,
    )
    .await
    .json();
    let json: kube::core::Status = serde_json::from_value(json).unwrap();
    for status in [*merge, *strategic, json] {
        assert_eq!(
            (status.code, status.reason.as_str(), status.message.as_str()),
            (404, "NotFound", "configmaps \"absent\" not found")
        );
    }
    assert!(api.get_opt("absent").await.unwrap().is_none());
}

async fn finalizers_hold_deletion_until_removed(c: Server) {
    let api = cms(&c);
    let mut cm = config_map("held", &[], &[]);
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    let pending = api.delete("held", &DeleteParams::default()).await.unwrap();
    let pending = pending
        .left()
        .expect("object returned while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(
        api.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let mut more = api.get("held").await.unwrap();
    more.metadata
        .finalizers
        .as_mut()
        .unwrap()
        .push("example.com/another".into());
    assert_eq!(
        status_of(api.replace("held", &PostParams::default(), &more).await).code,
        422
    );

    let mut released = api.get("held").await.unwrap();
    released.metadata.finalizers = None;
    api.replace("held", &PostParams::default(), &released)
        .await
        .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());
}

async fn delete_preconditions_and_dry_run(c: Server) {
    let api = cms(&c);
    let cm = create_named(&api, "d").await;
    let wrong = DeleteParams::default().preconditions(Preconditions {
        uid: Some("other".into()),
        resource_version: None,
    });
    assert_eq!(status_of(api.delete("d", &wrong).await).code, 409);
    api.delete("d", &DeleteParams::default().dry_run())
        .await
        .unwrap();
    assert!(api.get_opt("d").await.unwrap().is_some());
    let right = DeleteParams::default().preconditions(Preconditions {
        uid: cm.metadata.uid.clone(),
        resource_version: cm.metadata.resource_version.clone(),
    });
    let done = api.delete("d", &right).await.unwrap();
    assert!(
        done.is_right(),
        "an immediate deletion answers with a Status"
    );
    assert!(api.get_opt("d").await.unwrap().is_none());
}

async fn background_deletion_collects_dependents(c: Server) {
    let api = cms(&c);
    let owner = create_named(&api, "owner").await;
    api.create(&PostParams::default(), &owned_by("child", &owner, false))
        .await
        .unwrap();
    let grandchild_owner = api.get("child").await.unwrap();
    api.create(
        &PostParams::default(),
        &owned_by("grandchild", &grandchild_owner, false),
    )
    .await
    .unwrap();
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        api.get_opt("owner").await.unwrap().is_none(),
        "owner goes at once"
    );
    wait_gone(&api, "child").await;
    wait_gone(&api, "grandchild").await;
}

async fn orphan_deletion_keeps_dependents_without_the_reference(c: Server) {
    let api = cms(&c);
    let owner = create_named(&api, "owner").await;
    api.create(&PostParams::default(), &owned_by("child", &owner, false))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    wait_gone(&api, "owner").await;
    let child = api.get("child").await.unwrap();
    assert!(
        child
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

async fn foreground_deletion_waits_for_blocking_dependents(c: Server) {
    let api = cms(&c);
    let owner = create_named(&api, "owner").await;
    let mut child = owned_by("child", &owner, true);
    child.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &child).await.unwrap();
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();

    // The child is being deleted but held by its finalizer, so the owner waits.
    wait_for("child deletion to start", || async {
        api.get("child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    let waiting = api.get("owner").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );

    // (Retried on a conflict: on a real cluster the garbage collector writes the child too.)
    update_latest(&api, "child", false, |child| {
        child.metadata.finalizers = None
    })
    .await;
    wait_gone(&api, "child").await;
    wait_gone(&api, "owner").await;
}

async fn deleting_a_namespace_deletes_its_contents(c: Server) {
    let namespaces: Api<Namespace> = Api::all(c.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let team: Api<ConfigMap> = Api::namespaced(c.client(), "team");
    create_named(&team, "inside").await;
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("namespace removal", || async {
        namespaces
            .get_opt("team")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(team.get_opt("inside").await.unwrap().is_none());
}

async fn delete_collection_honours_selectors(c: Server) {
    let api = cms(&c);
    for (name, group) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        api.create(
            &PostParams::default(),
            &config_map(name, &[("group", group)], &[]),
        )
        .await
        .unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("group=a"),
    )
    .await
    .unwrap();
    let left: Vec<_> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, vec!["b1"]);
}

async fn lists_filter_by_labels_and_fields_in_name_order(c: Server) {
    let api = cms(&c);
    for (name, tier) in [("c", "back"), ("a", "front"), ("b", "front"), ("d", "")] {
        let labels: Vec<(&str, &str)> = if tier.is_empty() {
            vec![]
        } else {
            vec![("tier", tier)]
        };
        api.create(&PostParams::default(), &config_map(name, &labels, &[]))
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    let list = api.list(&ListParams::default()).await.unwrap();
    assert!(list.metadata.resource_version.is_some());
    assert_eq!(names(list), ["a", "b", "c", "d"]);
    let filtered: [(ListParams, &[&str]); 7] = [
        (ListParams::default().labels("tier=front"), &["a", "b"]),
        (
            ListParams::default().labels("tier in (back,front),tier!=front"),
            &["c"],
        ),
        (
            ListParams::default().labels("tier notin (front)"),
            &["c", "d"],
        ),
        (ListParams::default().labels("!tier"), &["d"]),
        (ListParams::default().labels("tier"), &["a", "b", "c"]),
        (ListParams::default().fields("metadata.name=b"), &["b"]),
        (
            ListParams::default().fields("metadata.name!=b,metadata.namespace=default"),
            &["a", "c", "d"],
        ),
    ];
    for (params, expected) in filtered {
        assert_eq!(
            names(api.list(&params).await.unwrap()),
            expected,
            "{params:?}"
        );
    }

    let bad = status_of(
        api.list(&ListParams::default().labels("tier in (front"))
            .await,
    );
    assert_eq!(bad.code, 400);
    // The real parser's detail differs ("found '', expected: ',' or ')'"); the start is shared.
    assert!(
        bad.message.starts_with("unable to parse requirement: "),
        "{}",
        bad.message
    );

    // All namespaces (a real cluster has ConfigMaps of its own in kube-system).
    let all: Api<ConfigMap> = Api::all(c.client());
    let everywhere = all.list(&ListParams::default()).await.unwrap().items;
    let here: Vec<_> = everywhere
        .iter()
        .filter(|cm| cm.metadata.namespace.as_deref() == Some("default"))
        .map(|cm| cm.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(here, ["a", "b", "c", "d"]);
}

async fn event_field_selectors_match_involved_object(c: Server) {
    let events: Api<Event> = Api::default_namespaced(c.client());
    for (name, obj) in [("e1", "web"), ("e2", "db")] {
        let ev: Event = serde_json::from_value(json!({
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": obj, "namespace": "default", "uid": format!("uid-{obj}")},
            "reason": "Started", "message": "hi", "type": "Normal"
        }))
        .unwrap();
        events.create(&PostParams::default(), &ev).await.unwrap();
    }
    let found =
        events
            .list(&ListParams::default().fields(
                "involvedObject.name=web,involvedObject.kind=Pod,involvedObject.uid=uid-web",
            ))
            .await
            .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].metadata.name.as_deref(), Some("e1"));
}

/// What `kubectl get` sends.
const KUBECTL_TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

async fn get_as(c: &Server, path: &str, accept: &str) -> common::RawResponse {
    raw_with_headers(c, "GET", path, &[("Accept", accept)], b"").await
}

async fn kubectl_get_receives_tables_with_metadata_for_label_columns(c: Server) {
    let api = cms(&c);
    api.create(
        &PostParams::default(),
        &config_map("a", &[("tier", "web")], &[("k1", "v"), ("k2", "v")]),
    )
    .await
    .unwrap();
    create_named(&api, "b").await;

    let resp = get_as(
        &c,
        "/api/v1/namespaces/default/configmaps",
        KUBECTL_TABLE_ACCEPT,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let table = resp.json();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert!(table["metadata"]["resourceVersion"].is_string());
    let columns: Vec<(&str, &str, &str)> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["format"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", "string", "name"),
            ("Data", "string", ""),
            ("Age", "string", "")
        ]
    );
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    let cells = &rows[0]["cells"];
    assert_eq!((&cells[0], &cells[1]), (&json!("a"), &json!(2)));
    let age = cells[2].as_str().expect("age is text");
    assert!(age.ends_with('s'), "a fresh object's age is seconds: {age}");
    // includeObject defaults to Metadata: enough for `-L tier` and `--show-labels`.
    let object = &rows[0]["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(object["metadata"]["labels"]["tier"], "web");
    assert!(object.get("data").is_none());
    assert_eq!(rows[1]["cells"][0], "b");

    let whole = get_as(
        &c,
        "/api/v1/namespaces/default/configmaps?includeObject=Object&labelSelector=tier%3Dweb",
        KUBECTL_TABLE_ACCEPT,
    )
    .await
    .json();
    assert_eq!(whole["rows"].as_array().unwrap().len(), 1);
    assert_eq!(whole["rows"][0]["object"]["data"]["k1"], "v");
    let bare = get_as(
        &c,
        "/api/v1/namespaces/default/configmaps?includeObject=None",
        KUBECTL_TABLE_ACCEPT,
    )
    .await
    .json();
    assert_eq!(bare["rows"][0].get("object"), Some(&json!(null)));

    let one = get_as(
        &c,
        "/api/v1/namespaces/default/configmaps/a",
        KUBECTL_TABLE_ACCEPT,
    )
    .await
    .json();
    assert_eq!(one["kind"], "Table");
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    assert_eq!(one["rows"][0]["cells"][0], "a");

    // Plain JSON clients still get objects; an unservable Accept is 406.
    let plain = get_as(
        &c,
        "/api/v1/namespaces/default/configmaps",
        "application/json",
    )
    .await
    .json();
    assert_eq!(plain["kind"], "ConfigMapList");
    let refused = get_as(
        &c,
        "/api/v1/namespaces/default/configmaps",
        "application/json;as=Table;v=v1;g=example.com",
    )
    .await;
    assert_eq!(refused.status, 406, "{}", refused.body);
}

async fn table_watches_send_rows_with_columns_first(c: Server) {
    let api = cms(&c);
    for name in ["a", "b"] {
        api.create(
            &PostParams::default(),
            &config_map(name, &[], &[("k", "v")]),
        )
        .await
        .unwrap();
    }
    // The watch ends by itself after a second (timeoutSeconds), after sending the two objects.
    let resp = get_as(
        &c,
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
        KUBECTL_TABLE_ACCEPT,
    )
    .await;
    assert_eq!(resp.status, 200);
    let events: Vec<serde_json::Value> = resp
        .body
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("watch event JSON"))
        .collect();
    assert_eq!(events.len(), 2, "{}", resp.body);
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev["type"], "ADDED");
        let table = &ev["object"];
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let has_columns = table["columnDefinitions"]
            .as_array()
            .is_some_and(|c| !c.is_empty());
        assert_eq!(has_columns, i == 0, "only the first event carries columns");
    }
    assert_eq!(events[0]["object"]["rows"][0]["cells"][0], "a");
    assert_eq!(events[1]["object"]["rows"][0]["cells"][0], "b");
}

async fn metadata_only_reads_answer_partial_object_metadata(c: Server) {
    let api = cms(&c);
    api.create(
        &PostParams::default(),
        &config_map("m", &[("app", "x")], &[("k", "v")]),
    )
    .await
    .unwrap();
    let list = get_as(
        &c,
        "/api/v1/namespaces/default/configmaps",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await
    .json();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["labels"]["app"], "x");
    assert!(list["items"][0].get("data").is_none());
    // kube-rs's metadata API reads it.
    let metas = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(metas.items.len(), 1);
    assert_eq!(metas.items[0].metadata.name.as_deref(), Some("m"));
    let one = api.get_metadata("m").await.unwrap();
    assert_eq!(one.metadata.labels.unwrap()["app"], "x");
}

#[tokio::test]
async fn pagination_walks_every_object_and_rejects_bad_tokens() {
    let c = cluster().await;
    let api = cms(&c);
    for i in 0..7 {
        create_named(&api, &format!("cm{i}")).await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("cm{i}")).collect::<Vec<_>>());

    let bad = status_of(
        api.list(&ListParams::default().limit(3).continue_token("garbage!"))
            .await,
    );
    assert_eq!(bad.code, 410);
    // A valid token from before a compaction has expired too.
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    c.devcluster().compact_history();
    let expired = status_of(
        api.list(
            &ListParams::default()
                .limit(3)
                .continue_token(&first.metadata.continue_.unwrap()),
        )
        .await,
    );
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
}

async fn next_event<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    within("a watch event", stream.next())
        .await
        .expect("stream open")
        .expect("event")
}

async fn watch_streams_changes_and_selector_transitions(c: Server) {
    let api = cms(&c);
    api.create(
        &PostParams::default(),
        &config_map("pre", &[("app", "x")], &[]),
    )
    .await
    .unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default().labels("app=x").disable_bookmarks(),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    assert!(
        matches!(next_event(&mut stream).await, WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("pre"))
    );
    api.create(
        &PostParams::default(),
        &config_map("w", &[("app", "x")], &[]),
    )
    .await
    .unwrap();
    assert!(
        matches!(next_event(&mut stream).await, WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("w"))
    );
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next_event(&mut stream).await, WatchEvent::Deleted(cm) if cm.metadata.name.as_deref() == Some("w")),
        "leaving the selector is a deletion"
    );
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next_event(&mut stream).await, WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("w"))
    );
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    assert!(matches!(next_event(&mut stream).await, WatchEvent::Modified(cm) if cm.data.is_some()));
    api.delete("w", &DeleteParams::default()).await.unwrap();
    assert!(matches!(
        next_event(&mut stream).await,
        WatchEvent::Deleted(_)
    ));
}

#[tokio::test]
async fn watch_resumes_from_a_version_and_expires_after_compaction() {
    let c = cluster().await;
    let api = cms(&c);
    let a = create_named(&api, "a").await;
    create_named(&api, "b").await;
    let mut resumed = api
        .watch(
            &WatchParams::default().disable_bookmarks(),
            &rv_of(&a).to_string(),
        )
        .await
        .unwrap()
        .boxed();
    let first = within("resumed event", resumed.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(first, WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("b")),
        "only changes after the version"
    );

    c.devcluster().compact_history();
    let mut expired = api
        .watch(&WatchParams::default(), &rv_of(&a).to_string())
        .await
        .unwrap()
        .boxed();
    match within("expired event", expired.next())
        .await
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn bookmarks_arrive_at_the_interval_and_timeout_ends_the_watch() {
    let c = DevCluster::builder()
        .bookmark_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let api = Api::<ConfigMap>::default_namespaced(c.client());
    let created = create_named(&api, "a").await;
    let mut stream = api
        .watch(&WatchParams::default(), &rv_of(&created).to_string())
        .await
        .unwrap()
        .boxed();
    match within("a bookmark", stream.next()).await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => {
            assert!(b.metadata.resource_version.parse::<u64>().unwrap() >= rv_of(&created))
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }

    let mut short = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    let started = tokio::time::Instant::now();
    while let Some(ev) = within("the watch to time out", short.next()).await {
        ev.unwrap();
    }
    assert!(started.elapsed() < DEADLINE);
}

async fn streaming_list_sends_initial_events_then_the_end_bookmark(c: Server) {
    let api = cms(&c);
    create_named(&api, "a").await;
    let mut stream = api
        .watch(&WatchParams::streaming_lists(), "")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        within("initial event", stream.next())
            .await
            .unwrap()
            .unwrap(),
        WatchEvent::Added(_)
    ));
    match within("end bookmark", stream.next())
        .await
        .unwrap()
        .unwrap()
    {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata
                .annotations
                .get("k8s.io/initial-events-end")
                .map(String::as_str),
            Some("true")
        ),
        other => panic!("expected the initial-events-end bookmark, got {other:?}"),
    }
}

/// Runs a kube-runtime watcher until it reports every name in `want` applied.
async fn watcher_sees(
    events: &mut (
             impl futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin
         ),
    want: &[&str],
) {
    let mut missing: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    within(&format!("the watcher to see {want:?}"), async {
        while !missing.is_empty() {
            match events.next().await {
                Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                    missing.retain(|n| Some(n.as_str()) != o.metadata.name.as_deref());
                }
                Some(_) => {}
                None => panic!("watcher ended"),
            }
        }
    })
    .await;
}

async fn kube_watcher_works_with_list_watch_and_streaming_list(c: Server) {
    let api = cms(&c);
    create_named(&api, "before").await;
    for config in [
        watcher::Config::default().page_size(1),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut events = watcher(api.clone(), config).boxed();
        watcher_sees(&mut events, &["before"]).await;
        let name = format!("after-{}", rand_suffix());
        api.create(&PostParams::default(), &config_map(&name, &[], &[]))
            .await
            .unwrap();
        watcher_sees(&mut events, &[&name]).await;
    }
}

fn rand_suffix() -> String {
    devcluster::store::ids::new_uid()[..8].to_string()
}

#[tokio::test]
async fn dropped_and_expired_watches_recover() {
    let c = cluster().await;
    let api = cms(&c);
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    create_named(&api, "one").await;
    watcher_sees(&mut events, &["one"]).await;

    // Dropped: the watcher re-watches from its last version and sees new changes.
    c.devcluster().drop_watches();
    create_named(&api, "two").await;
    watcher_sees(&mut events, &["two"]).await;

    // Dropped after compaction: the resume gets 410, the watcher re-lists (Init) and continues.
    c.devcluster().compact_history();
    c.devcluster().drop_watches();
    let mut relisted = false;
    within("a re-list", async {
        while !relisted {
            if let Some(Ok(watcher::Event::Init)) = events.next().await {
                relisted = true;
            }
        }
    })
    .await;
    create_named(&api, "three").await;
    watcher_sees(&mut events, &["three"]).await;
}

async fn reflector_store_fills_and_follows(c: Server) {
    let api = cms(&c);
    for i in 0..3 {
        create_named(&api, &format!("r{i}")).await;
    }
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream =
        reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    within("the reflector to be ready", reader.wait_until_ready())
        .await
        .unwrap();
    assert_eq!(reader.state().len(), 3);
    api.delete("r0", &DeleteParams::default()).await.unwrap();
    wait_for("the reflector to drop r0", || async {
        (reader.state().len() == 2).then_some(())
    })
    .await;
    task.abort();
}

async fn a_controller_reconciles_config_maps(c: Server) {
    let api = cms(&c);
    create_named(&api, "target").await;
    let reconciler_api = api.clone();
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            move |cm: Arc<ConfigMap>, _ctx: Arc<()>| {
                let api = reconciler_api.clone();
                async move {
                    let name = cm.metadata.name.clone().unwrap_or_default();
                    let patch = json!({"metadata": {"annotations": {"reconciled": "yes"}}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                        .await?;
                    Ok::<_, kube::Error>(Action::await_change())
                }
            },
            |_, _: &kube::Error, _| Action::requeue(Duration::from_millis(50)),
            Arc::new(()),
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    wait_for("the controller to annotate the ConfigMap", || async {
        let cm = api.get("target").await.ok()?;
        (cm.metadata.annotations?.get("reconciled")? == "yes").then_some(())
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn injected_failures_latency_and_http_fault_endpoints() {
    let c = cluster().await;
    let api = cms(&c);
    c.devcluster().fail_next_requests(3, 500);
    for _ in 0..3 {
        let err = status_of(api.list(&ListParams::default()).await);
        assert_eq!(err.code, 500);
    }
    api.list(&ListParams::default())
        .await
        .expect("failures are used up");

    c.devcluster().fail_next_requests(1, 429);
    let resp = raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(resp.status, 429);
    assert!(
        resp.head.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        resp.head
    );
    assert_eq!(resp.json()["kind"], "Status");

    let set = raw(
        &c,
        "POST",
        "/devcluster/faults/latency?ms=300",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(set.status, 200);
    let started = tokio::time::Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    raw(
        &c,
        "POST",
        "/devcluster/faults/latency?ms=0",
        "application/json",
        b"",
    )
    .await;

    let fail = raw(
        &c,
        "POST",
        "/devcluster/faults/fail-next?count=1&status=500",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(fail.status, 200);
    assert_eq!(status_of(api.list(&ListParams::default()).await).code, 500);

    // kube retries 503s by itself: a short burst is invisible to callers.
    c.devcluster().fail_next_requests(1, 503);
    api.list(&ListParams::default())
        .await
        .expect("kube retries a 503");
}

#[tokio::test]
async fn state_survives_a_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let first = DevCluster::builder()
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let kept = Api::<ConfigMap>::default_namespaced(first.client())
        .create(
            &PostParams::default(),
            &config_map("kept", &[], &[("k", "v")]),
        )
        .await
        .unwrap();
    first.stop().await;

    let second = DevCluster::builder()
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let api = Api::<ConfigMap>::default_namespaced(second.client());
    let restored = api.get("kept").await.unwrap();
    assert_eq!(restored.data, kept.data);
    assert_eq!(restored.metadata.uid, kept.metadata.uid);
    let newer = create_named(&api, "new").await;
    assert!(rv_of(&newer) > rv_of(&kept), "the counter continues");
    second.stop().await;

    std::fs::write(devcluster::persist::state_path(dir.path()), b"{not json").unwrap();
    let err = DevCluster::builder()
        .data_dir(dir.path())
        .start()
        .await
        .err()
        .expect("corrupt state refused");
    assert!(
        err.to_string().contains(devcluster::persist::STATE_FILE),
        "{err}"
    );
}

async fn garbage_requests_get_status_errors_not_panics(c: Server) {
    let cases: [(&str, &str, &str, &[u8]); 6] = [
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"{bad",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"[1,2]",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            &[0xff, 0xfe, 0x00],
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps/x",
            "application/json",
            b"\"str\"",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            "application/merge-patch+json",
            b"{bad",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(",
            "application/json",
            b"",
        ),
    ];
    for (method, path, ct, body) in cases {
        let resp = raw(&c, method, path, ct, body).await;
        assert!(
            (400..500).contains(&resp.status),
            "{method} {path}: {} {}",
            resp.status,
            resp.body
        );
        assert_eq!(resp.json()["kind"], "Status", "{method} {path}");
    }
    let unknown = raw(&c, "GET", "/api/v1/widgets", "application/json", b"").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["kind"], "Status");
    // Still serving.
    cms(&c).list(&ListParams::default()).await.unwrap();
}

async fn kubeconfig_points_kube_at_the_server(c: Server) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    c.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<_> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}
