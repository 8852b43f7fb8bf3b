//! The OpenAPI v3 path items of each served type: the operations devcluster's REST handlers
//! implement, with the parameters, request bodies and extensions the real server documents.
//! kubectl relies on two details: every operation carries `x-kubernetes-group-version-kind`, and
//! PATCH operations list the `fieldValidation` query parameter (so kubectl leaves validation to
//! the server).

use serde_json::{Map, Value, json};

use super::schemas::{definition_name, list_definition_name, reference};
use crate::resources::ResourceType;

const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// The patch media types a PATCH operation accepts.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

fn param(name: &str, location: &str, kind: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": location,
        "description": description,
        "schema": {"type": kind, "uniqueItems": true},
    });
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    param(name, "query", kind, description)
}

fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    )
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid value: All.",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
    )
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`: the stream begins with synthetic events for the current state.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call.",
        ),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated: please use the PropagationPolicy.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed: Orphan, Background or Foreground.",
        ),
    ]
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn ok(schema: Value) -> Value {
    json!({"description": "OK", "content": json_content(schema)})
}

/// What every operation on one type shares: names, tags and the extensions.
struct Operations<'a> {
    rt: &'a ResourceType,
    /// `CoreV1`, `AppsV1`, `NetworkingV1`, `RbacAuthorizationV1`, ...
    group_version_ident: String,
    tag: String,
}

impl<'a> Operations<'a> {
    fn new(rt: &'a ResourceType) -> Self {
        let group = rt.group.strip_suffix(".k8s.io").unwrap_or(rt.group);
        let group = if group.is_empty() { "core" } else { group };
        let words: Vec<String> = group.split('.').map(capitalize).collect();
        let tag_group = {
            let mut joined = words.concat();
            if let Some(first) = joined.get_mut(0..1) {
                first.make_ascii_lowercase();
            }
            joined
        };
        Operations {
            rt,
            group_version_ident: format!("{}{}", words.concat(), capitalize(rt.version)),
            tag: format!("{tag_group}_{}", rt.version),
        }
    }

    /// One operation; `verb` is the operationId prefix, `action` the `x-kubernetes-action`.
    fn op(&self, verb: &str, target: &str, action: &str, description: &str) -> Map<String, Value> {
        let rt = self.rt;
        let mut op = Map::new();
        op.insert("tags".into(), json!([self.tag]));
        op.insert("description".into(), json!(description));
        op.insert(
            "operationId".into(),
            json!(format!("{verb}{}{target}", self.group_version_ident)),
        );
        op.insert("x-kubernetes-action".into(), json!(action));
        op.insert(
            "x-kubernetes-group-version-kind".into(),
            json!({"group": rt.group, "kind": rt.kind, "version": rt.version}),
        );
        op
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn with(mut op: Map<String, Value>, fields: Value) -> Value {
    if let Value::Object(fields) = fields {
        op.extend(fields);
    }
    Value::Object(op)
}

/// The path items of one served type, keyed by path (`/api/v1/namespaces/{namespace}/configmaps`).
pub fn path_items(rt: &ResourceType) -> Vec<(String, Value)> {
    let ops = Operations::new(rt);
    let kind = definition_name(rt);
    let list_kind = list_definition_name(rt);
    let scope = if rt.namespaced { "Namespaced" } else { "" };
    let target = format!("{scope}{}", rt.kind);
    let collection = if rt.namespaced {
        format!(
            "{}/namespaces/{{namespace}}/{}",
            rt.group_version_path(),
            rt.plural
        )
    } else {
        format!("{}/{}", rt.group_version_path(), rt.plural)
    };
    let mut scope_params = Vec::new();
    if rt.namespaced {
        scope_params.push(param(
            "namespace",
            "path",
            "string",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let mut item_params = vec![param(
        "name",
        "path",
        "string",
        &format!("name of the {}", rt.kind),
    )];
    item_params.extend(scope_params.iter().cloned());
    let path_params = |params: &[Value]| {
        let mut all = params.to_vec();
        all.push(pretty());
        Value::Array(all)
    };
    let object_body = json!({"required": true, "content": {"*/*": {"schema": reference(&kind)}}});
    let delete_body = json!({"content": {"*/*": {"schema": reference(DELETE_OPTIONS)}}});
    let patch_body = json!({
        "required": true,
        "content": PATCH_CONTENT_TYPES
            .iter()
            .map(|t| (t.to_string(), json!({"schema": reference(PATCH)})))
            .collect::<Map<_, _>>(),
    });
    let mut list_and_watch = json_content(reference(&list_kind));
    list_and_watch["application/json;stream=watch"] = json!({"schema": reference(&list_kind)});

    let mut items = Vec::new();
    items.push((
        collection.clone(),
        json!({
            "parameters": path_params(&scope_params),
            "get": with(ops.op("list", &target, "list", &format!("list or watch objects of kind {}", rt.kind)), json!({
                "parameters": list_params(),
                "responses": {"200": {"description": "OK", "content": list_and_watch}},
            })),
            "post": with(ops.op("create", &target, "post", &format!("create a {}", rt.kind)), json!({
                "parameters": [dry_run(), field_manager(), field_validation()],
                "requestBody": object_body,
                "responses": {"200": ok(reference(&kind)), "201": {"description": "Created", "content": json_content(reference(&kind))}},
            })),
            "delete": with(ops.op("delete", &format!("Collection{target}"), "deletecollection", &format!("delete collection of {}", rt.kind)), json!({
                "parameters": list_params().into_iter().chain(delete_params()).collect::<Vec<_>>(),
                "requestBody": delete_body,
                "responses": {"200": ok(reference(STATUS))},
            })),
        }),
    ));
    let item = format!("{collection}/{{name}}");
    let patch_params = json!([
        dry_run(),
        field_manager(),
        field_validation(),
        query(
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests: re-acquire conflicting fields owned by other people. Must be unset for non-apply patch requests.",
        )
    ]);
    items.push((
        item.clone(),
        json!({
            "parameters": path_params(&item_params),
            "get": with(ops.op("read", &target, "get", &format!("read the specified {}", rt.kind)), json!({
                "responses": {"200": ok(reference(&kind))},
            })),
            "put": with(ops.op("replace", &target, "put", &format!("replace the specified {}", rt.kind)), json!({
                "parameters": [dry_run(), field_manager(), field_validation()],
                "requestBody": object_body,
                "responses": {"200": ok(reference(&kind)), "201": {"description": "Created", "content": json_content(reference(&kind))}},
            })),
            "patch": with(ops.op("patch", &target, "patch", &format!("partially update the specified {}", rt.kind)), json!({
                "parameters": patch_params,
                "requestBody": patch_body,
                "responses": {"200": ok(reference(&kind)), "201": {"description": "Created", "content": json_content(reference(&kind))}},
            })),
            "delete": with(ops.op("delete", &target, "delete", &format!("delete a {}", rt.kind)), json!({
                "parameters": delete_params(),
                "requestBody": delete_body,
                "responses": {"200": ok(reference(STATUS)), "202": {"description": "Accepted", "content": json_content(reference(STATUS))}},
            })),
        }),
    ));
    if rt.status_subresource {
        let status_target = format!("{target}Status");
        items.push((
            format!("{item}/status"),
            json!({
                "parameters": path_params(&item_params),
                "get": with(ops.op("read", &status_target, "get", &format!("read status of the specified {}", rt.kind)), json!({
                    "responses": {"200": ok(reference(&kind))},
                })),
                "put": with(ops.op("replace", &status_target, "put", &format!("replace status of the specified {}", rt.kind)), json!({
                    "parameters": [dry_run(), field_manager(), field_validation()],
                    "requestBody": object_body,
                    "responses": {"200": ok(reference(&kind))},
                })),
                "patch": with(ops.op("patch", &status_target, "patch", &format!("partially update status of the specified {}", rt.kind)), json!({
                    "parameters": patch_params,
                    "requestBody": patch_body,
                    "responses": {"200": ok(reference(&kind))},
                })),
            }),
        ));
    }
    if rt.log_subresource {
        let log_params = vec![
            query(
                "container",
                "string",
                "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
            ),
            query("follow", "boolean", "Follow the log stream of the pod."),
            query(
                "limitBytes",
                "integer",
                "If set, the number of bytes to read from the server before terminating the log output.",
            ),
            query(
                "previous",
                "boolean",
                "Return previous terminated container logs.",
            ),
            query(
                "sinceSeconds",
                "integer",
                "A relative time in seconds before the current time from which to show logs.",
            ),
            query(
                "tailLines",
                "integer",
                "If set, the number of lines from the end of the logs to show.",
            ),
            query(
                "timestamps",
                "boolean",
                "If true, add an RFC3339 timestamp at the beginning of every line of log output.",
            ),
        ];
        items.push((
            format!("{item}/log"),
            json!({
                "parameters": path_params(&item_params),
                "get": with(ops.op("read", &format!("{target}Log"), "get", &format!("read log of the specified {}", rt.kind)), json!({
                    "parameters": log_params,
                    "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                })),
            }),
        ));
    }
    if rt.namespaced {
        items.push((
            format!("{}/{}", rt.group_version_path(), rt.plural),
            json!({
                "parameters": [pretty()],
                "get": with(ops.op("list", &format!("{}ForAllNamespaces", rt.kind), "list", &format!("list or watch objects of kind {}", rt.kind)), json!({
                    "parameters": list_params(),
                    "responses": {"200": {"description": "OK", "content": list_and_watch}},
                })),
            }),
        ));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    fn find<'a>(items: &'a [(String, Value)], path: &str) -> &'a Value {
        &items
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("{path} documented"))
            .1
    }

    #[test]
    fn configmap_patch_takes_field_validation_and_names_its_gvk() {
        let cm = lookup("", "v1", "configmaps").expect("served");
        let items = path_items(cm);
        let patch = &find(&items, "/api/v1/namespaces/{namespace}/configmaps/{name}")["patch"];
        assert_eq!(patch["operationId"], "patchCoreV1NamespacedConfigMap");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "kind": "ConfigMap", "version": "v1"})
        );
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"fieldValidation"));
        assert!(names.contains(&"force"));
        let content = patch["requestBody"]["content"]
            .as_object()
            .expect("content");
        assert!(content.contains_key("application/apply-patch+yaml"));
        // ConfigMaps have no status subresource, so no status path.
        assert!(items.iter().all(|(p, _)| !p.ends_with("/status")));
        find(&items, "/api/v1/configmaps");
    }

    #[test]
    fn named_groups_and_subresources_get_their_paths_and_ids() {
        let deploy = lookup("apps", "v1", "deployments").expect("served");
        let items = path_items(deploy);
        let status = find(
            &items,
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status",
        );
        assert_eq!(
            status["patch"]["operationId"],
            "patchAppsV1NamespacedDeploymentStatus"
        );
        assert_eq!(status["get"]["tags"], json!(["apps_v1"]));

        let roles = lookup("rbac.authorization.k8s.io", "v1", "roles").expect("served");
        let items = path_items(roles);
        let list = find(&items, "/apis/rbac.authorization.k8s.io/v1/roles");
        assert_eq!(
            list["get"]["operationId"],
            "listRbacAuthorizationV1RoleForAllNamespaces"
        );
        assert_eq!(list["get"]["tags"], json!(["rbacAuthorization_v1"]));

        let pods = lookup("", "v1", "pods").expect("served");
        let items = path_items(pods);
        let log = &find(&items, "/api/v1/namespaces/{namespace}/pods/{name}/log")["get"];
        assert_eq!(log["operationId"], "readCoreV1NamespacedPodLog");

        let namespaces = lookup("", "v1", "namespaces").expect("served");
        let items = path_items(namespaces);
        let item = find(&items, "/api/v1/namespaces/{name}");
        assert_eq!(item["get"]["operationId"], "readCoreV1Namespace");
        assert_eq!(
            items.len(),
            3,
            "collection, item, status; no all-namespaces list"
        );
    }
}
