//! Behaviour of the public PATCH entry points, rule by rule.

use serde_json::{Value, json};

use super::*;
use crate::resources::lookup;

const T0: &str = "2025-01-01T00:00:00Z";
const T1: &str = "2025-01-01T00:01:00Z";

fn configmaps() -> &'static ResourceType {
    lookup("", "v1", "configmaps").expect("served")
}

fn deployments() -> &'static ResourceType {
    lookup("apps", "v1", "deployments").expect("served")
}

fn patch(
    resource: &'static ResourceType,
    kind: PatchKind,
    body: &str,
    manager: Option<&str>,
    existing: Option<&Value>,
) -> Result<Value, PatchError> {
    apply_patch(
        &PatchRequest {
            resource,
            kind,
            body: body.as_bytes(),
            field_manager: manager,
            force: false,
            subresource: None,
            now: T1,
        },
        existing,
    )
}

/// An apply by `manager`, optionally forced.
fn apply(
    resource: &'static ResourceType,
    body: &str,
    manager: &str,
    force: bool,
    existing: Option<&Value>,
) -> Result<Value, PatchError> {
    apply_patch(
        &PatchRequest {
            resource,
            kind: PatchKind::Apply,
            body: body.as_bytes(),
            field_manager: Some(manager),
            force,
            subresource: None,
            now: T1,
        },
        existing,
    )
}

fn configmap(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "env", "namespace": "default"}, "data": data})
}

/// The fieldsV1 of `manager`'s entry (any operation), or None.
fn fields_of(obj: &Value, manager: &str) -> Option<Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
        .map(|e| e["fieldsV1"].clone())
}

fn managers(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["manager"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A ConfigMap created by `kubectl apply` (client side): an Update by
/// kubectl-client-side-apply.
fn created_by_client_side_apply(data: Value) -> Value {
    let mut cm = configmap(data);
    record_update("kubectl-client-side-apply", None, &mut cm, T0, None);
    cm
}

#[test]
fn content_types_select_the_patch_kind() {
    let cases = [
        ("application/json-patch+json", Some(PatchKind::Json)),
        (
            "application/merge-patch+json; charset=utf-8",
            Some(PatchKind::Merge),
        ),
        (
            "Application/Strategic-Merge-Patch+JSON",
            Some(PatchKind::StrategicMerge),
        ),
        (
            "application/apply-patch+yaml;charset=utf-8",
            Some(PatchKind::Apply),
        ),
        ("application/json", None),
        ("", None),
    ];
    for (ct, want) in cases {
        assert_eq!(PatchKind::from_content_type(ct), want, "{ct}");
    }
    let err = PatchKind::require(Some("text/plain")).expect_err("unsupported");
    assert_eq!(err.status_code(), 415);
    assert!(err.to_string().contains("application/apply-patch+yaml"));
}

#[test]
fn merge_patch_records_an_update_by_the_patching_manager() {
    let cm = created_by_client_side_apply(json!({"a": "1", "b": "2"}));
    let out = patch(
        configmaps(),
        PatchKind::Merge,
        r#"{"data": {"a": "changed", "b": null, "c": "3"}}"#,
        Some("ephdash"),
        Some(&cm),
    )
    .expect("patches");
    assert_eq!(out["data"], json!({"a": "changed", "c": "3"}));
    assert_eq!(
        fields_of(&out, "ephdash"),
        Some(json!({"f:data": {"f:a": {}, "f:c": {}}}))
    );
    // The creator lost the field that changed and the one removed.
    assert_eq!(
        fields_of(&out, "kubectl-client-side-apply"),
        None,
        "kubectl-client-side-apply owned only a and b: {out}"
    );
    let entry = &out["metadata"]["managedFields"][0];
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["time"], T1);
    assert_eq!(entry["fieldsType"], "FieldsV1");
}

#[test]
fn a_patch_without_a_manager_is_recorded_as_unknown_and_bad_bodies_are_rejected() {
    let cm = configmap(json!({"a": "1"}));
    let out = patch(
        configmaps(),
        PatchKind::Merge,
        r#"{"data":{"a":"2"}}"#,
        None,
        Some(&cm),
    )
    .expect("patches");
    assert_eq!(managers(&out), vec![DEFAULT_MANAGER.to_string()]);

    for (kind, body) in [
        (PatchKind::Merge, "[1]"),
        (PatchKind::Merge, "{not json"),
        (PatchKind::StrategicMerge, ""),
        (PatchKind::Json, "{}"),
    ] {
        let err = patch(configmaps(), kind, body, None, Some(&cm)).expect_err("bad body");
        assert_eq!(err.status_code(), 400, "{kind:?} {body:?}: {err}");
    }
    let err = patch(configmaps(), PatchKind::Merge, "{}", None, None).expect_err("absent");
    assert_eq!(err.status_code(), 400);
}

#[test]
fn a_json_patch_failure_is_422_naming_the_operation() {
    let cm = configmap(json!({"a": "1"}));
    let err = patch(
        configmaps(),
        PatchKind::Json,
        r#"[{"op":"test","path":"/data/a","value":"2"}]"#,
        Some("m"),
        Some(&cm),
    )
    .expect_err("test fails");
    assert_eq!(err.status_code(), 422);
    assert!(
        err.to_string()
            .contains("operation 0 (test at \"/data/a\")"),
        "{err}"
    );
}

#[test]
fn patches_may_not_write_managed_fields_or_change_the_kind() {
    let cm = created_by_client_side_apply(json!({"a": "1"}));
    let out = patch(
        configmaps(),
        PatchKind::Json,
        r#"[{"op":"replace","path":"/metadata/managedFields","value":[]},
            {"op":"add","path":"/data/b","value":"2"}]"#,
        Some("m"),
        Some(&cm),
    )
    .expect("patches");
    assert_eq!(
        fields_of(&out, "kubectl-client-side-apply"),
        Some(json!({"f:data": {"f:a": {}}})),
        "existing ownership kept"
    );
    assert_eq!(fields_of(&out, "m"), Some(json!({"f:data": {"f:b": {}}})));

    let err = patch(
        configmaps(),
        PatchKind::Merge,
        r#"{"kind":"Secret"}"#,
        Some("m"),
        Some(&cm),
    )
    .expect_err("kind changed");
    assert_eq!(err.status_code(), 422);
}

#[test]
fn strategic_patch_from_kubectl_deletes_a_container() {
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "side:1"}]}}}});
    let out = patch(
        deployments(),
        PatchKind::StrategicMerge,
        r#"{"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"app"}],
            "containers":[{"$patch":"delete","name":"sidecar"},{"name":"app","image":"app:2"}]}}}}"#,
        Some("kubectl-client-side-apply"),
        Some(&deploy),
    )
    .expect("patches");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:2"}])
    );
}

#[test]
fn the_main_resource_cannot_change_status_and_the_status_subresource_only_status() {
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"a": "1"}},
        "spec": {"replicas": 1}, "status": {"readyReplicas": 0}});
    let body =
        r#"{"metadata":{"labels":{"a":"2"}},"spec":{"replicas":3},"status":{"readyReplicas":5}}"#;
    let out = patch(
        deployments(),
        PatchKind::Merge,
        body,
        Some("m"),
        Some(&deploy),
    )
    .expect("patches");
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(out["metadata"]["labels"]["a"], "2");
    assert_eq!(out["status"], json!({"readyReplicas": 0}));

    let out = apply_patch(
        &PatchRequest {
            resource: deployments(),
            kind: PatchKind::Merge,
            body: body.as_bytes(),
            field_manager: Some("controller"),
            force: false,
            subresource: Some("status"),
            now: T1,
        },
        Some(&deploy),
    )
    .expect("patches status");
    assert_eq!(out["spec"]["replicas"], 1);
    assert_eq!(out["metadata"]["labels"]["a"], "1");
    assert_eq!(out["status"], json!({"readyReplicas": 5}));
    let entry = &out["metadata"]["managedFields"][0];
    assert_eq!(entry["subresource"], "status");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {"f:readyReplicas": {}}})
    );

    // ConfigMaps have no status subresource.
    let err = apply_patch(
        &PatchRequest {
            resource: configmaps(),
            kind: PatchKind::Merge,
            body: b"{}",
            field_manager: None,
            force: false,
            subresource: Some("status"),
            now: T1,
        },
        Some(&configmap(json!({}))),
    )
    .expect_err("no status subresource");
    assert_eq!(err.status_code(), 400);
}

#[test]
fn apply_creates_with_an_apply_entry_in_fields_v1_format() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\n\
                spec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n      - name: app\n        \
                image: nginx\n        ports:\n        - containerPort: 80\n";
    let out = apply(deployments(), yaml, "ephctrl", false, None).expect("creates");
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(out["kind"], "Deployment");
    let entries = out["metadata"]["managedFields"]
        .as_array()
        .expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0],
        json!({
            "manager": "ephctrl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
                        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}}
        })
    );
}

#[test]
fn apply_requires_a_manager_and_a_complete_matching_identity() {
    let good = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"}}"#;
    let err = patch(configmaps(), PatchKind::Apply, good, None, None).expect_err("no manager");
    assert_eq!(err.status_code(), 400);
    assert!(err.to_string().contains("fieldManager"), "{err}");
    for body in [
        r#"{"kind":"ConfigMap","metadata":{"name":"env"}}"#,
        r#"{"apiVersion":"v1","metadata":{"name":"env"}}"#,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"env"}}"#,
        "- just\n- a list\n",
        "key: [unclosed",
    ] {
        let err = apply(configmaps(), body, "m", false, None).expect_err("incomplete");
        assert_eq!(err.status_code(), 400, "{body}: {err}");
    }
    let err = apply(
        deployments(),
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"w"},
            "spec":{"template":{"spec":{"containers":[{"image":"no-name"}]}}}}"#,
        "m",
        false,
        None,
    )
    .expect_err("item without its key");
    assert_eq!(err.status_code(), 422, "{err}");
}

#[test]
fn applying_over_another_managers_field_conflicts_like_the_real_server() {
    let cm = created_by_client_side_apply(json!({"key": "old"}));
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"},"data":{"key":"new"}}"#;
    let err = apply(configmaps(), body, "kubectl", false, Some(&cm)).expect_err("conflict");
    assert_eq!(err.status_code(), 409);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.key"
    );
    let PatchError::Conflict(conflicts) = err else {
        panic!("conflict")
    };
    assert_eq!(conflicts[0].manager, "kubectl-client-side-apply");
    assert_eq!(conflicts[0].field, ".data.key");
    assert_eq!(
        conflicts[0].cause_message(),
        "conflict with \"kubectl-client-side-apply\" using v1"
    );
}

#[test]
fn conflicts_between_two_appliers_list_every_field() {
    let first = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"},"data":{"a":"1","b":"1"}}"#;
    let cm = apply(configmaps(), first, "one", false, None).expect("creates");
    let second = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"},"data":{"a":"2","b":"2"}}"#;
    let err = apply(configmaps(), second, "two", false, Some(&cm)).expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"one\":\n- .data.a\n- .data.b"
    );
}

#[test]
fn force_moves_ownership_to_the_applier() {
    let first = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"},"data":{"a":"1","b":"1"}}"#;
    let cm = apply(configmaps(), first, "one", false, None).expect("creates");
    let second =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"},"data":{"a":"2"}}"#;
    let out = apply(configmaps(), second, "two", true, Some(&cm)).expect("forced");
    assert_eq!(out["data"], json!({"a": "2", "b": "1"}));
    assert_eq!(fields_of(&out, "two"), Some(json!({"f:data": {"f:a": {}}})));
    assert_eq!(fields_of(&out, "one"), Some(json!({"f:data": {"f:b": {}}})));

    // "one" no longer owns a: omitting it now leaves two's value alone.
    let again =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"},"data":{"b":"1"}}"#;
    let out = apply(configmaps(), again, "one", false, Some(&out)).expect("applies");
    assert_eq!(out["data"], json!({"a": "2", "b": "1"}));
}

#[test]
fn a_field_the_applier_omits_is_removed_unless_someone_else_owns_it() {
    let both = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env","labels":{"x":"1","y":"1"}},
                   "data":{"a":"1","b":"1"}}"#;
    let cm = apply(configmaps(), both, "one", false, None).expect("creates");
    // "two" applies b and label y with the same values: shared ownership, no conflict.
    let shared = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env","labels":{"y":"1"}},
                     "data":{"b":"1"}}"#;
    let cm = apply(configmaps(), shared, "two", false, Some(&cm)).expect("shares");
    assert_eq!(
        fields_of(&cm, "two"),
        Some(json!({"f:data": {"f:b": {}}, "f:metadata": {"f:labels": {"f:y": {}}}}))
    );
    // "one" now applies nothing: a and x go, b and y stay (two owns them).
    let nothing = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"}}"#;
    let out = apply(configmaps(), nothing, "one", false, Some(&cm)).expect("applies");
    assert_eq!(out["data"], json!({"b": "1"}));
    assert_eq!(out["metadata"]["labels"], json!({"y": "1"}));
    assert_eq!(managers(&out), vec!["two".to_string()]);
}

#[test]
fn appliers_of_different_containers_merge_by_name() {
    // `manager` applies a Deployment with just `containers` over `existing`.
    let apply_containers = |containers: &str, manager: &str, existing: Option<&Value>| {
        let body = format!(
            r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"web"}},
                "spec":{{"template":{{"spec":{{"containers":{containers}}}}}}}}}"#
        );
        apply(deployments(), &body, manager, false, existing)
    };
    let out =
        apply_containers(r#"[{"name":"app","image":"app:1"}]"#, "one", None).expect("creates");
    let out = apply_containers(r#"[{"name":"mesh","image":"mesh:1"}]"#, "two", Some(&out))
        .expect("adds a container");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:1"}, {"name": "mesh", "image": "mesh:1"}])
    );
    // "one" changes its image; the other container is untouched, no conflict.
    let out = apply_containers(r#"[{"name":"app","image":"app:2"}]"#, "one", Some(&out))
        .expect("updates its own container");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:2"}, {"name": "mesh", "image": "mesh:1"}])
    );
    // "two" changing app's image conflicts on exactly that field.
    let err = apply_containers(r#"[{"name":"app","image":"app:3"}]"#, "two", Some(&out))
        .expect_err("conflict");
    assert!(
        err.to_string()
            .ends_with(r#"conflict with "one": .spec.template.spec.containers[name="app"].image"#),
        "{err}"
    );
    // "one" dropping its container removes it but keeps two's.
    let out = apply_containers("[]", "one", Some(&out)).expect("drops");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "mesh", "image": "mesh:1"}])
    );
}

#[test]
fn apply_strips_status_on_the_main_resource_and_applies_only_status_on_the_subresource() {
    let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
                   "spec":{"replicas":1},"status":{"readyReplicas":7}}"#;
    let out = apply(deployments(), body, "ephctrl", false, None).expect("creates");
    assert!(out.get("status").is_none(), "{out}");
    assert_eq!(
        fields_of(&out, "ephctrl"),
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );

    let status = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
                     "spec":{"replicas":9},"status":{"readyReplicas":1}}"#;
    let out = apply_patch(
        &PatchRequest {
            resource: deployments(),
            kind: PatchKind::Apply,
            body: status.as_bytes(),
            field_manager: Some("devcluster-workloads"),
            force: false,
            subresource: Some("status"),
            now: T1,
        },
        Some(&out),
    )
    .expect("applies status");
    assert_eq!(
        out["spec"]["replicas"], 1,
        "spec is not written through status"
    );
    assert_eq!(out["status"]["readyReplicas"], 1);
    let entry = out["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["manager"] == "devcluster-workloads"))
        .expect("status entry");
    assert_eq!(entry["subresource"], "status");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {"f:readyReplicas": {}}})
    );
}

#[test]
fn a_repeated_apply_changes_nothing_and_keeps_the_time() {
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"env"},"data":{"a":"1"}}"#;
    let first = apply(configmaps(), body, "m", false, None).expect("creates");
    let again = apply_patch(
        &PatchRequest {
            resource: configmaps(),
            kind: PatchKind::Apply,
            body: body.as_bytes(),
            field_manager: Some("m"),
            force: false,
            subresource: None,
            now: "2030-01-01T00:00:00Z",
        },
        Some(&first),
    )
    .expect("applies");
    assert_eq!(again, first);
}

#[test]
fn record_update_gives_changed_fields_to_the_updater() {
    let mut created = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}}});
    record_update("ephctrl", None, &mut created, T0, None);
    assert_eq!(
        fields_of(&created, "ephctrl"),
        Some(json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
        }))
    );

    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(3);
    record_update("kubectl-scale", Some(&created), &mut scaled, T1, None);
    assert_eq!(
        fields_of(&scaled, "kubectl-scale"),
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );
    let ctrl = fields_of(&scaled, "ephctrl").expect("still an owner");
    assert!(ctrl["f:spec"].get("f:replicas").is_none(), "{ctrl}");

    // An applier now changing replicas conflicts with the scaler.
    let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":5}}"#;
    let err = apply(deployments(), body, "kubectl", false, Some(&scaled)).expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn finalizers_are_a_set_owned_item_by_item() {
    let body = |f: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"env","finalizers":{f}}}}}"#
        )
    };
    let cm = apply(configmaps(), &body(r#"["a.io/x"]"#), "one", false, None).expect("creates");
    let cm = apply(
        configmaps(),
        &body(r#"["b.io/y"]"#),
        "two",
        false,
        Some(&cm),
    )
    .expect("adds");
    assert_eq!(cm["metadata"]["finalizers"], json!(["a.io/x", "b.io/y"]));
    assert_eq!(
        fields_of(&cm, "two"),
        Some(json!({"f:metadata": {"f:finalizers": {"v:\"b.io/y\"": {}}}}))
    );
    let cm = apply(configmaps(), &body("[]"), "one", false, Some(&cm)).expect("drops its own");
    assert_eq!(cm["metadata"]["finalizers"], json!(["b.io/y"]));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Map;

    /// Keys that exercise the interesting paths: directives, merge keys, metadata.
    const KEYS: &[&str] = &[
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "labels",
        "managedFields",
        "finalizers",
        "ownerReferences",
        "uid",
        "spec",
        "template",
        "containers",
        "ports",
        "containerPort",
        "protocol",
        "status",
        "conditions",
        "type",
        "data",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$deleteFromPrimitiveList/finalizers",
        "$bogus",
        "fieldsV1",
        "manager",
        "operation",
        "f:data",
        "k:{\"name\":\"a\"}",
        ".",
        "op",
        "path",
        "value",
        "from",
        "image",
        "replicas",
    ];
    const TEXT: &[&str] = &[
        "",
        "a",
        "b",
        "delete",
        "replace",
        "merge",
        "Apply",
        "Update",
        "v1",
        "apps/v1",
        "ConfigMap",
        "Deployment",
        "/",
        "/data",
        "/data/a",
        "/spec/containers/-",
        "/spec/containers/0",
        "/metadata/managedFields",
        "~",
        "~2",
        "add",
        "remove",
        "move",
        "copy",
        "test",
        "TCP",
    ];
    const OPS: &[&str] = &["add", "remove", "replace", "move", "copy", "test", "bogus"];
    const POINTERS: &[&str] = &[
        "",
        "/",
        "/data",
        "/data/a",
        "/data/b",
        "/metadata",
        "/metadata/name",
        "/metadata/managedFields",
        "/metadata/managedFields/0",
        "/spec/containers/-",
        "/spec/containers/0",
        "/spec/containers/1/image",
        "/status",
        "/kind",
        "/a~1b",
        "/~2",
        "/spec/template/spec/containers/0",
        "/0",
        "/-",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..100).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            prop::sample::select(TEXT).prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                object_of(inner).prop_map(Value::Object),
            ]
        })
    }

    fn object_of(
        values: impl Strategy<Value = Value>,
    ) -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map(prop::sample::select(KEYS), values, 0..6)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// Containers with colliding names, ports and directives, for the keyed-list paths.
    fn containers() -> impl Strategy<Value = Value> {
        let port = (
            prop::sample::select(&[80i64, 443, 8080][..]),
            prop::option::of(prop::sample::select(TEXT)),
        )
            .prop_map(|(port, protocol)| {
                let mut p = json!({"containerPort": port});
                if let Some(protocol) = protocol {
                    p["protocol"] = json!(protocol);
                }
                p
            });
        let container = (
            prop::option::of(prop::sample::select(&["a", "b", "c"][..])),
            json_value(),
            prop::collection::vec(port, 0..3),
            prop::option::of(prop::sample::select(TEXT)),
        )
            .prop_map(|(name, image, ports, directive)| {
                let mut c = json!({"image": image, "ports": ports});
                if let Some(name) = name {
                    c["name"] = json!(name);
                }
                if let Some(d) = directive {
                    c["$patch"] = json!(d);
                }
                c
            });
        prop::collection::vec(container, 0..4).prop_map(Value::Array)
    }

    /// An object-shaped value of `resource`'s type: identity, maybe containers (at the pod spec
    /// path of pods and deployments), maybe managedFields, plus arbitrary fields.
    fn object(resource: &'static ResourceType) -> impl Strategy<Value = Value> {
        let entry = (
            prop::sample::select(&["one", "two", "prop"][..]),
            prop::sample::select(&["Apply", "Update", "Bogus"][..]),
            json_value(),
            any::<bool>(),
        )
            .prop_map(|(manager, operation, fields, status)| {
                let mut e = json!({"manager": manager, "operation": operation,
                                   "apiVersion": "v1", "fieldsV1": fields});
                if status {
                    e["subresource"] = json!("status");
                }
                e
            });
        (
            object_of(json_value()),
            prop::option::of(containers()),
            prop::option::of(prop::collection::vec(entry, 0..3)),
            any::<bool>(),
        )
            .prop_map(move |(mut m, containers, managed, identity)| {
                if identity {
                    m.insert("apiVersion".into(), resource.api_version().into());
                    m.insert("kind".into(), resource.kind.into());
                    let mut meta = json!({"name": "x", "labels": {"a": "b"}});
                    if let Some(managed) = managed {
                        meta["managedFields"] = Value::Array(managed);
                    }
                    m.insert("metadata".into(), meta);
                }
                if let Some(containers) = containers {
                    let spec = match resource.kind {
                        "Deployment" => json!({"template": {"spec": {"containers": containers}}}),
                        _ => json!({"containers": containers}),
                    };
                    m.insert("spec".into(), spec);
                }
                Value::Object(m)
            })
    }

    fn json_patch() -> impl Strategy<Value = Value> {
        let op = (
            prop::sample::select(OPS),
            prop::sample::select(POINTERS),
            json_value(),
            prop::option::of(prop::sample::select(POINTERS)),
        )
            .prop_map(|(op, path, value, from)| {
                let mut o = json!({"op": op, "path": path, "value": value});
                if let Some(from) = from {
                    o["from"] = json!(from);
                }
                o
            });
        prop::collection::vec(op, 0..5).prop_map(Value::Array)
    }

    fn resource() -> impl Strategy<Value = &'static ResourceType> {
        prop::sample::select(crate::resources::RESOURCES)
            .prop_map(|r| crate::resources::lookup(r.group, r.version, r.plural).expect("served"))
    }

    fn kind() -> impl Strategy<Value = PatchKind> {
        prop::sample::select(
            &[
                PatchKind::Json,
                PatchKind::Merge,
                PatchKind::StrategicMerge,
                PatchKind::Apply,
            ][..],
        )
    }

    /// A request's parts: resource, kind, body, existing object, force, status subresource.
    fn case() -> impl Strategy<
        Value = (
            &'static ResourceType,
            PatchKind,
            Value,
            Option<Value>,
            bool,
            bool,
        ),
    > {
        (resource(), kind()).prop_flat_map(|(resource, kind)| {
            let body = match kind {
                PatchKind::Json => prop_oneof![4 => json_patch(), 1 => json_value()].boxed(),
                _ => prop_oneof![4 => object(resource), 1 => json_value()].boxed(),
            };
            let existing = prop_oneof![
                4 => object(resource).prop_map(Some),
                1 => Just(None),
                1 => json_value().prop_map(Some),
            ];
            (
                Just(resource),
                Just(kind),
                body,
                existing,
                any::<bool>(),
                prop::bool::weighted(0.2),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_bodies_and_objects((resource, kind, body, existing, force, status) in case()) {
            let bytes = serde_json::to_vec(&body).expect("serialises");
            let req = PatchRequest {
                resource,
                kind,
                body: &bytes,
                field_manager: Some("prop"),
                force,
                subresource: status.then_some("status"),
                now: T1,
            };
            if let Ok(out) = apply_patch(&req, existing.as_ref()) {
                // What comes back is always an object of the endpoint's type.
                prop_assert!(out["metadata"].is_object(), "{}", out);
                prop_assert_eq!(&out["kind"], &json!(resource.kind));
                // Patching the result again walks the managedFields the first call wrote.
                let _ = apply_patch(&req, Some(&out));
            }
            if let Some(mut old) = existing {
                let mut new = body.clone();
                record_update("prop", Some(&old), &mut new, T1, None);
                record_update("prop", None, &mut old, T1, Some("status"));
            }
        }

        #[test]
        fn arbitrary_bytes(resource in resource(), kind in kind(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let req = PatchRequest {
                resource, kind, body: &bytes, field_manager: Some("prop"),
                force: false, subresource: None, now: T1,
            };
            let _ = apply_patch(&req, Some(&json!({"metadata": {"name": "x"}})));
        }
    }
}
