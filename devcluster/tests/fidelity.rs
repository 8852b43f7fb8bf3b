//! Behaviour devcluster must share with a real API server so that code passing here works
//! there: field validation, the deployments `/scale` subresource, the `default` ServiceAccount
//! of every namespace, and the field selectors each type supports. Each test runs against
//! devcluster and against the real kube-apiserver.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, config_map, deployment, on_both_servers, raw, status_of, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, ValidationDirective,
};
use serde_json::json;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// The `Warning` header values of a raw response.
fn warnings(head: &str) -> Vec<String> {
    head.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("warning")
                .then(|| value.trim().to_string())
        })
        .collect()
}

on_both_servers!(
    unknown_fields_warn_by_default_and_are_never_stored,
    strict_validation_refuses_unknown_and_duplicate_fields,
    ignore_drops_unknown_fields_silently,
    patches_are_validated_on_their_result,
    apply_with_unknown_fields_fails_whatever_the_directive,
    deployments_scale_through_the_scale_subresource,
    every_namespace_gets_a_default_service_account,
    field_selectors_accept_only_the_labels_a_real_server_does,
);

async fn unknown_fields_warn_by_default_and_are_never_stored(c: Server) {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "warned", "colour": "red"}, "data": {"k": "v"}, "foo": "bar"});
    let resp = raw(
        &c,
        "POST",
        CONFIGMAPS,
        "application/json",
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let mut got = warnings(&resp.head);
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"299 - "unknown field \"foo\"""#,
            r#"299 - "unknown field \"metadata.colour\"""#,
        ]
    );
    let stored = serde_json::to_value(cms(&c).get("warned").await.unwrap()).unwrap();
    assert_eq!(stored["data"], json!({"k": "v"}));
    let raw_stored = raw(
        &c,
        "GET",
        &format!("{CONFIGMAPS}/warned"),
        "application/json",
        b"",
    )
    .await;
    assert!(!raw_stored.body.contains("foo") && !raw_stored.body.contains("colour"));

    // The same through PUT.
    let mut again = raw_stored.json();
    again["spec"] = json!({"x": 1});
    let resp = raw(
        &c,
        "PUT",
        &format!("{CONFIGMAPS}/warned"),
        "application/json",
        again.to_string().as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        warnings(&resp.head),
        vec![r#"299 - "unknown field \"spec\"""#]
    );
    assert!(resp.json().get("spec").is_none());
}

async fn strict_validation_refuses_unknown_and_duplicate_fields(c: Server) {
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"strict"},"foo":"bar","spec":{"a":1}}"#;
    let resp = raw(
        &c,
        "POST",
        &format!("{CONFIGMAPS}?fieldValidation=Strict"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    let status = resp.json();
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "foo", unknown field "spec""#
    );
    let missing = status_of(cms(&c).get("strict").await);
    assert_eq!(missing.code, 404, "nothing was created");

    let duplicated = br#"{"metadata":{"name":"dup"},"data":{"k":"a","k":"b"}}"#;
    let resp = raw(
        &c,
        "POST",
        &format!("{CONFIGMAPS}?fieldValidation=Strict"),
        "application/json",
        duplicated,
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(
        resp.json()["message"]
            .as_str()
            .unwrap()
            .ends_with(r#"strict decoding error: duplicate field "data.k""#),
        "{}",
        resp.body
    );
    // Warn stores the last value and says so.
    let resp = raw(&c, "POST", CONFIGMAPS, "application/json", duplicated).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(
        warnings(&resp.head),
        vec![r#"299 - "duplicate field \"data.k\"""#]
    );
    assert_eq!(resp.json()["data"]["k"], "b");

    let resp = raw(
        &c,
        "POST",
        &format!("{CONFIGMAPS}?fieldValidation=Loose"),
        "application/json",
        br#"{"metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert!(resp.body.contains("fieldValidation"), "{}", resp.body);
}

async fn ignore_drops_unknown_fields_silently(c: Server) {
    let body = br#"{"metadata":{"name":"quiet"},"foo":"bar"}"#;
    let resp = raw(
        &c,
        "POST",
        &format!("{CONFIGMAPS}?fieldValidation=Ignore"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert!(warnings(&resp.head).is_empty(), "{}", resp.head);
    assert!(resp.json().get("foo").is_none());
}

fn cms(c: &Server) -> Api<ConfigMap> {
    Api::default_namespaced(c.client())
}

async fn patches_are_validated_on_their_result(c: Server) {
    let api = cms(&c);
    api.create(&PostParams::default(), &config_map("p", &[], &[("a", "1")]))
        .await
        .unwrap();
    let strict = PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::default()
    };
    let refused = status_of(
        api.patch(
            "p",
            &strict,
            &Patch::Merge(json!({"foo": "x", "data": {"b": "2"}})),
        )
        .await,
    );
    // 422, quoting the whole patched object, unknown field included.
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));
    let quoted = refused
        .message
        .strip_prefix(r#" "" is invalid: patch: Invalid value: ""#)
        .and_then(|rest| rest.strip_suffix(r#"": strict decoding error: unknown field "foo""#))
        .unwrap_or_else(|| panic!("{}", refused.message));
    let patched: serde_json::Value =
        serde_json::from_str(&quoted.replace(r#"\""#, r#"""#)).unwrap();
    assert_eq!(
        (&patched["foo"], &patched["data"]),
        (&json!("x"), &json!({"a": "1", "b": "2"}))
    );
    assert_eq!(
        api.get("p").await.unwrap().data.unwrap().len(),
        1,
        "a refused patch changes nothing"
    );

    let resp = raw(
        &c,
        "PATCH",
        &format!("{CONFIGMAPS}/p?fieldManager=patcher"),
        "application/merge-patch+json",
        br#"{"foo":"x","data":{"b":"2"}}"#,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        warnings(&resp.head),
        vec![r#"299 - "unknown field \"foo\"""#]
    );
    let patched = resp.json();
    assert!(patched.get("foo").is_none());
    assert_eq!(patched["data"]["b"], "2");
    let owned = patched["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "patcher")
        .expect("the patcher owns what it changed")["fieldsV1"]
        .clone();
    assert_eq!(
        owned,
        json!({"f:data": {"f:b": {}}}),
        "not the dropped field"
    );
}

async fn apply_with_unknown_fields_fails_whatever_the_directive(c: Server) {
    let api = cms(&c);
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied"}, "data": {"k": "v"}, "foo": "bar"});
    let mut params = PatchParams::apply("tester");
    params.field_validation = Some(ValidationDirective::Ignore);
    let failed = status_of(api.patch("applied", &params, &Patch::Apply(&config)).await);
    assert_eq!(failed.code, 500);
    assert_eq!(
        failed.message,
        "failed to create typed patch object (/applied; /v1, Kind=ConfigMap): .foo: field not declared in schema"
    );
    assert_eq!(status_of(api.get("applied").await).code, 404);
    let mut clean = config.clone();
    clean.as_object_mut().unwrap().remove("foo");
    api.patch("applied", &params, &Patch::Apply(&clean))
        .await
        .expect("a clean configuration applies");
}

async fn deployments_scale_through_the_scale_subresource(c: Server) {
    let deployments: Api<Deployment> = Api::default_namespaced(c.client());
    deployments
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(
        scale.status.as_ref().and_then(|s| s.selector.as_deref()),
        Some("app=web")
    );

    let scaled = deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(3));
    let deploy = deployments.get("web").await.unwrap();
    assert_eq!(deploy.spec.and_then(|s| s.replicas), Some(3));

    // A stale resourceVersion is a conflict; a negative count is invalid.
    let mut stale: Scale = scale.clone();
    stale.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(5) });
    let conflict = status_of(
        deployments
            .replace_scale("web", &PostParams::default(), &stale)
            .await,
    );
    assert_eq!(conflict.code, 409);
    let invalid = status_of(
        deployments
            .patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": -1}})),
            )
            .await,
    );
    assert_eq!(invalid.code, 422);

    // Read, change, replace: retried on a conflict, as every client must (on a real cluster
    // the deployment controller writes the status, and so the resourceVersion, meanwhile).
    let replaced = wait_for("the scale replaced", || async {
        let mut current = deployments.get_scale("web").await.unwrap();
        current.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(0) });
        match deployments
            .replace_scale("web", &PostParams::default(), &current)
            .await
        {
            Ok(replaced) => Some(replaced),
            Err(kube::Error::Api(status)) if status.code == 409 => None,
            Err(other) => panic!("replacing the scale: {other}"),
        }
    })
    .await;
    assert_eq!(replaced.spec.and_then(|s| s.replicas), None, "0 is omitted");
    let missing = status_of(deployments.get_scale("nope").await);
    assert_eq!(missing.code, 404);
}

async fn every_namespace_gets_a_default_service_account(c: Server) {
    for ns in ["default", "kube-system", "kube-public"] {
        let accounts: Api<ServiceAccount> = Api::namespaced(c.client(), ns);
        wait_for(&format!("the default ServiceAccount of {ns}"), || {
            let accounts = accounts.clone();
            async move { accounts.get_opt("default").await.unwrap() }
        })
        .await;
    }
    let namespaces: Api<Namespace> = Api::all(c.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(c.client(), "team");
    let first = wait_for("the default ServiceAccount of a new namespace", || {
        let accounts = accounts.clone();
        async move { accounts.get_opt("default").await.unwrap() }
    })
    .await;
    accounts
        .delete("default", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the default ServiceAccount to come back", || {
        let accounts = accounts.clone();
        let old_uid = first.metadata.uid.clone();
        async move {
            accounts
                .get_opt("default")
                .await
                .unwrap()
                .filter(|sa| sa.metadata.uid != old_uid)
        }
    })
    .await;
}

async fn field_selectors_accept_only_the_labels_a_real_server_does(c: Server) {
    let api = cms(&c);
    api.create(
        &PostParams::default(),
        &config_map("one", &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    let refused = status_of(api.list(&ListParams::default().fields("data.k=v")).await);
    assert_eq!(refused.code, 400);
    // Kubernetes 1.36 reworded this; devcluster speaks 1.33.
    let message = if c.is_real() {
        r#""data.k" is not a known field selector: only "metadata.name", "metadata.namespace""#
    } else {
        "field label not supported: data.k"
    };
    assert_eq!(refused.message, message);
    let watch = raw(
        &c,
        "GET",
        &format!("{CONFIGMAPS}?watch=true&fieldSelector=data.k%3Dv&timeoutSeconds=1"),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(watch.status, 400, "watches too: {}", watch.body);
    let found = api
        .list(&ListParams::default().fields("metadata.name=one,metadata.namespace=default"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);

    let secrets: Api<Secret> = Api::default_namespaced(c.client());
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "type": "Opaque"})).unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let by_type = |t: &str| ListParams::default().fields(&format!("type={t}"));
    assert_eq!(
        secrets.list(&by_type("Opaque")).await.unwrap().items.len(),
        1
    );
    assert!(
        secrets
            .list(&by_type("kubernetes.io/tls"))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let namespaces: Api<Namespace> = Api::all(c.client());
    let active = namespaces
        .list(&ListParams::default().fields("status.phase=Active"))
        .await
        .unwrap();
    assert!(active.items.len() >= 3);
    let refused = status_of(
        namespaces
            .list(&ListParams::default().fields("metadata.namespace=x"))
            .await,
    );
    assert_eq!(
        refused.message,
        "field label not supported: metadata.namespace"
    );

    let pods: Api<Pod> = Api::default_namespaced(c.client());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let on_host = |v: &str| ListParams::default().fields(&format!("spec.hostNetwork={v}"));
    assert_eq!(pods.list(&on_host("false")).await.unwrap().items.len(), 1);
    assert!(pods.list(&on_host("true")).await.unwrap().items.is_empty());
    assert_eq!(
        pods.list(&ListParams::default().fields("spec.restartPolicy=Always,status.phase!=Failed"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let refused = status_of(
        pods.list(&ListParams::default().fields("spec.containers=x"))
            .await,
    );
    assert_eq!(
        refused.message,
        "field label not supported: spec.containers"
    );
}

/// A test helper must not pass on nothing: the warnings parser sees real headers.
#[test]
fn warning_headers_are_parsed_case_insensitively() {
    let head = "HTTP/1.1 201 Created\r\nwarning: 299 - \"a\"\r\nWarning: 299 - \"b\"";
    assert_eq!(warnings(head), vec!["299 - \"a\"", "299 - \"b\""]);
}
