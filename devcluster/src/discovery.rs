//! Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`.
//!
//! Every document is derived from [`crate::resources::RESOURCES`]. `/api` and `/apis` also serve
//! aggregated discovery (`apidiscovery.k8s.io/v2`) when the client asks for it in `Accept`, as
//! kubectl and kube-rs's `Discovery::run_aggregated` do; otherwise the legacy documents.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources::{self, RESOURCES, ResourceType, VERBS};

/// The Kubernetes version devcluster presents (the binaries build k8s-openapi with `v1_33`).
pub const KUBERNETES_MAJOR: &str = "1";
pub const KUBERNETES_MINOR: &str = "33";
/// Semver build metadata marks it as devcluster, as k3s does with `+k3s1`.
pub const GIT_VERSION: &str = "v1.33.0+devcluster";

/// The media type of aggregated discovery v2, sent back as `Content-Type` when served.
pub const AGGREGATED_DISCOVERY_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Verbs of the `/status` subresource.
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
/// Verbs of the `/log` subresource.
const LOG_VERBS: &[&str] = &["get"];

/// Registers the discovery routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/version", web::get().to(version))
        .route("/version/", web::get().to(version))
        .route("/api", web::get().to(core_versions))
        .route("/api/", web::get().to(core_versions))
        .route("/api/{version}", web::get().to(core_resources))
        .route("/apis", web::get().to(group_list))
        .route("/apis/", web::get().to(group_list))
        .route("/apis/{group}", web::get().to(group))
        .route("/apis/{group}/{version}", web::get().to(group_resources));
}

/// `/version`: the `version.Info` document.
pub fn version_info() -> Value {
    json!({
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "emulationMajor": KUBERNETES_MAJOR,
        "emulationMinor": KUBERNETES_MINOR,
        "minCompatibilityMajor": KUBERNETES_MAJOR,
        "minCompatibilityMinor": KUBERNETES_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": concat!("devcluster-", env!("CARGO_PKG_VERSION")),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `os/arch` in Go's spelling, as the real server reports it.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}/{}", std::env::consts::OS, arch)
}

/// Whether the client prefers aggregated discovery v2. Clients list it first when they do; a
/// client asking only for legacy documents (or for v2beta1 only) gets the legacy ones.
fn wants_aggregated(req: &HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.first() == Some(&"application/json")
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

fn json_response(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::VARY, "Accept"))
        .body(body.to_string())
}

fn aggregated_response(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(AGGREGATED_DISCOVERY_V2)
        .insert_header((header::VARY, "Accept"))
        .body(body.to_string())
}

async fn version() -> HttpResponse {
    json_response(&version_info())
}

async fn core_versions(req: HttpRequest) -> HttpResponse {
    if wants_aggregated(&req) {
        return aggregated_response(&aggregated_core());
    }
    let server_address = req.connection_info().host().to_string();
    json_response(&api_versions(&server_address))
}

async fn core_resources(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let version = path.into_inner();
    let list = resource_list("", &version)
        .ok_or_else(|| ApiError::unknown_path(&format!("/api/{version}")))?;
    Ok(json_response(&list))
}

async fn group_list(req: HttpRequest) -> HttpResponse {
    if wants_aggregated(&req) {
        return aggregated_response(&aggregated_list_of_groups());
    }
    json_response(&api_group_list())
}

async fn group(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let doc = api_group(&name).ok_or_else(|| ApiError::unknown_path(&format!("/apis/{name}")))?;
    Ok(json_response(&doc))
}

async fn group_resources(path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (group, version) = path.into_inner();
    // The core group is only served under /api.
    let list = (!group.is_empty())
        .then(|| resource_list(&group, &version))
        .flatten()
        .ok_or_else(|| ApiError::unknown_path(&format!("/apis/{group}/{version}")))?;
    Ok(json_response(&list))
}

/// `/api`: the `APIVersions` of the core group.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": core_group_versions(),
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

fn core_group_versions() -> Vec<&'static str> {
    let mut versions = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group.is_empty()) {
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    versions
}

fn group_version_for_discovery(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

fn group_document(group: &str, versions: &[&str]) -> Value {
    json!({
        "name": group,
        "versions": versions
            .iter()
            .map(|v| group_version_for_discovery(group, v))
            .collect::<Vec<_>>(),
        // The first version listed for a group in the table is its preferred one.
        "preferredVersion": versions.first().map(|v| group_version_for_discovery(group, v)),
    })
}

/// `/apis`: the `APIGroupList` of every named group.
pub fn api_group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": resources::groups()
            .iter()
            .map(|(group, versions)| group_document(group, versions))
            .collect::<Vec<_>>(),
    })
}

/// `/apis/{group}`: the `APIGroup` document, or None for a group not served.
pub fn api_group(name: &str) -> Option<Value> {
    let (group, versions) = resources::groups().into_iter().find(|(g, _)| *g == name)?;
    let mut doc = group_document(group, &versions);
    let fields = doc.as_object_mut()?;
    fields.insert("kind".into(), json!("APIGroup"));
    fields.insert("apiVersion".into(), json!("v1"));
    Some(doc)
}

/// The resources of one group-version, in table order.
fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceType> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// The subresources of a type with their verbs, as `(name, verbs)`.
fn subresources(rt: &ResourceType) -> Vec<(&'static str, &'static [&'static str])> {
    let mut out = Vec::new();
    if rt.status_subresource {
        out.push(("status", STATUS_VERBS));
    }
    if rt.log_subresource {
        out.push(("log", LOG_VERBS));
    }
    if rt.scale_subresource {
        out.push(("scale", STATUS_VERBS));
    }
    out
}

/// The kind a subresource answers with: `autoscaling/v1 Scale` for `scale`, else the type's.
fn subresource_kind(rt: &ResourceType, name: &str) -> Value {
    if name == "scale" {
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    } else {
        response_kind(rt)
    }
}

fn api_resource(rt: &ResourceType) -> Value {
    let mut entry = json!({
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": VERBS,
    });
    if !rt.short_names.is_empty() {
        entry["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        entry["categories"] = json!(rt.categories);
    }
    entry
}

fn api_subresource(rt: &ResourceType, name: &str, verbs: &[&str]) -> Value {
    // The real server leaves singularName empty for subresources.
    let mut entry = json!({
        "name": format!("{}/{}", rt.plural, name),
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": verbs,
    });
    // A subresource of another kind names its group and version too.
    if name == "scale" {
        let kind = subresource_kind(rt, name);
        for field in ["group", "version", "kind"] {
            entry[field] = kind[field].clone();
        }
    }
    entry
}

/// `/api/{version}` (group `""`) or `/apis/{group}/{version}`: the `APIResourceList`, or None
/// when that group-version is not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut entries = Vec::new();
    for rt in resources_of(group, version) {
        entries.push(api_resource(rt));
        for (name, verbs) in subresources(rt) {
            entries.push(api_subresource(rt, name, verbs));
        }
    }
    if entries.is_empty() {
        return None;
    }
    let mut doc = json!({"kind": "APIResourceList"});
    if group.is_empty() {
        doc["groupVersion"] = json!(version);
    } else {
        // The real server includes apiVersion only on named groups' lists.
        doc["apiVersion"] = json!("v1");
        doc["groupVersion"] = json!(format!("{group}/{version}"));
    }
    doc["resources"] = json!(entries);
    Some(doc)
}

fn response_kind(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "version": rt.version, "kind": rt.kind})
}

fn aggregated_resource(rt: &ResourceType) -> Value {
    let mut entry = json!({
        "resource": rt.plural,
        "responseKind": response_kind(rt),
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": VERBS,
    });
    if !rt.short_names.is_empty() {
        entry["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        entry["categories"] = json!(rt.categories);
    }
    let subs: Vec<Value> = subresources(rt)
        .into_iter()
        .map(|(name, verbs)| {
            json!({"subresource": name, "responseKind": subresource_kind(rt, name), "verbs": verbs})
        })
        .collect();
    if !subs.is_empty() {
        entry["subresources"] = json!(subs);
    }
    entry
}

/// One `APIGroupDiscovery` item: the group (`""` for core) with all its versions.
fn aggregated_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            json!({
                "version": version,
                "resources": resources_of(group, version).map(aggregated_resource).collect::<Vec<_>>(),
                "freshness": "Current",
            })
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    json!({"metadata": metadata, "versions": versions})
}

fn aggregated_document(items: Vec<Value>) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// `/apis` as aggregated discovery: every named group.
pub fn aggregated_list_of_groups() -> Value {
    aggregated_document(
        resources::groups()
            .iter()
            .map(|(group, versions)| aggregated_group(group, versions))
            .collect(),
    )
}

/// `/api` as aggregated discovery: one item, the core group.
pub fn aggregated_core() -> Value {
    aggregated_document(vec![aggregated_group("", &core_group_versions())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test};

    async fn get(path: &str, accept: Option<&str>) -> (u16, String, Value) {
        let app = test::init_service(App::new().configure(configure)).await;
        let mut req = test::TestRequest::get().uri(path);
        if let Some(accept) = accept {
            req = req.insert_header((header::ACCEPT, accept));
        }
        let resp = test::call_service(&app, req.to_request()).await;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = test::read_body(resp).await;
        let value = serde_json::from_slice(&body).expect("discovery answers JSON");
        (status, content_type, value)
    }

    /// What kubectl 1.32 and kube-rs send for aggregated discovery.
    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[actix_web::test]
    async fn version_parses_as_version_info_of_1_33() {
        let (status, _, body) = get("/version", None).await;
        assert_eq!(status, 200);
        let info: k8s_openapi::apimachinery::pkg::version::Info =
            serde_json::from_value(body).expect("a version.Info");
        assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));
        assert!(info.git_version.starts_with("v1.33."));
        assert!(info.platform.contains('/'));
    }

    #[actix_web::test]
    async fn core_group_lists_configmaps_and_pod_subresources() {
        let (status, content_type, body) = get("/api/v1", None).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/json");
        let list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList =
            serde_json::from_value(body).expect("an APIResourceList");
        assert_eq!(list.group_version, "v1");
        let find = |name: &str| {
            list.resources
                .iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("{name} listed"))
        };
        let cm = find("configmaps");
        assert_eq!(cm.kind, "ConfigMap");
        assert_eq!(cm.singular_name, "configmap");
        assert!(cm.namespaced);
        assert_eq!(cm.short_names.as_deref(), Some(&["cm".to_string()][..]));
        assert!(cm.verbs.iter().any(|v| v == "watch"));
        assert_eq!(find("pods/log").verbs, vec!["get"]);
        assert_eq!(find("pods/status").verbs, vec!["get", "patch", "update"]);
        assert!(!find("namespaces").namespaced);
        assert_eq!(
            find("pods").categories.as_deref(),
            Some(&["all".to_string()][..])
        );
        // Deployments live in apps, not in the core group.
        assert!(list.resources.iter().all(|r| r.name != "deployments"));
        assert!(list.resources.iter().all(|r| r.name != "configmaps/status"));
    }

    #[actix_web::test]
    async fn named_group_documents_describe_apps() {
        let (_, _, body) = get("/apis/apps/v1", None).await;
        let list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList =
            serde_json::from_value(body).expect("an APIResourceList");
        assert_eq!(list.group_version, "apps/v1");
        let names: Vec<&str> = list.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["deployments", "deployments/status", "deployments/scale"]
        );
        let scale = &list.resources[2];
        assert_eq!(
            (
                scale.group.as_deref(),
                scale.version.as_deref(),
                scale.kind.as_str()
            ),
            (Some("autoscaling"), Some("v1"), "Scale")
        );

        let (status, _, body) = get("/apis/apps", None).await;
        assert_eq!(status, 200);
        assert_eq!(body["kind"], "APIGroup");
        let group: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroup =
            serde_json::from_value(body).expect("an APIGroup");
        assert_eq!(group.name, "apps");
        assert_eq!(
            group.preferred_version.map(|v| v.group_version),
            Some("apps/v1".to_string())
        );
    }

    #[actix_web::test]
    async fn group_list_has_every_named_group_but_not_core() {
        let (_, content_type, body) = get("/apis", None).await;
        assert_eq!(content_type, "application/json");
        let list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList =
            serde_json::from_value(body).expect("an APIGroupList");
        let names: Vec<&str> = list.groups.iter().map(|g| g.name.as_str()).collect();
        for expected in [
            "apps",
            "networking.k8s.io",
            "rbac.authorization.k8s.io",
            "coordination.k8s.io",
            "events.k8s.io",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(!names.contains(&""));
    }

    #[actix_web::test]
    async fn legacy_api_versions_names_v1() {
        let (_, _, body) = get("/api", Some("application/json")).await;
        assert_eq!(body["kind"], "APIVersions");
        assert_eq!(body["versions"], json!(["v1"]));
    }

    #[actix_web::test]
    async fn unknown_groups_and_versions_are_404_status() {
        for path in ["/apis/widgets.example.com", "/apis/apps/v2", "/api/v2"] {
            let (status, _, body) = get(path, None).await;
            assert_eq!(status, 404, "{path}");
            assert_eq!(body["kind"], "Status", "{path}");
            assert_eq!(body["reason"], "NotFound", "{path}");
        }
    }

    #[actix_web::test]
    async fn aggregated_discovery_is_served_when_asked_for() {
        use kube::core::discovery::v2::APIGroupDiscoveryList;
        let (_, content_type, body) = get("/apis", Some(KUBECTL_ACCEPT)).await;
        assert_eq!(content_type, AGGREGATED_DISCOVERY_V2);
        assert_eq!(body["kind"], "APIGroupDiscoveryList");
        let list: APIGroupDiscoveryList = serde_json::from_value(body).expect("v2 discovery");
        let apps = list
            .items
            .iter()
            .find(|g| g.metadata.as_ref().and_then(|m| m.name.as_deref()) == Some("apps"))
            .expect("apps listed");
        let deployments = &apps.versions[0].resources[0];
        assert_eq!(deployments.resource.as_deref(), Some("deployments"));
        assert_eq!(deployments.scope.as_deref(), Some("Namespaced"));
        assert_eq!(deployments.short_names, vec!["deploy"]);
        assert_eq!(
            deployments.subresources[0].subresource.as_deref(),
            Some("status")
        );

        let (_, content_type, body) = get("/api", Some(KUBECTL_ACCEPT)).await;
        assert_eq!(content_type, AGGREGATED_DISCOVERY_V2);
        let core: APIGroupDiscoveryList = serde_json::from_value(body).expect("v2 discovery");
        assert_eq!(core.items.len(), 1);
        let v1 = &core.items[0].versions[0];
        assert_eq!(v1.version.as_deref(), Some("v1"));
        let pods = v1
            .resources
            .iter()
            .find(|r| r.resource.as_deref() == Some("pods"))
            .expect("pods listed");
        let subs: Vec<_> = pods
            .subresources
            .iter()
            .filter_map(|s| s.subresource.as_deref())
            .collect();
        assert_eq!(subs, vec!["status", "log"]);
        let namespaces = v1
            .resources
            .iter()
            .find(|r| r.resource.as_deref() == Some("namespaces"))
            .expect("namespaces listed");
        assert_eq!(namespaces.scope.as_deref(), Some("Cluster"));
    }

    /// The subresources kube's discovery found for a type, by name.
    fn subresource_names(caps: &kube::discovery::ApiCapabilities) -> Vec<&str> {
        caps.subresources
            .iter()
            .map(|(r, _)| r.plural.as_str())
            .collect()
    }

    /// kube-rs resolves the served types from both the legacy and the aggregated documents.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_discovery_resolves_types_both_ways() {
        use kube::core::GroupVersionKind;
        use kube::discovery::{Discovery, Scope};
        let cluster = crate::DevCluster::start().await.expect("devcluster starts");
        let legacy = Discovery::new(cluster.client()).run().await;
        let aggregated = Discovery::new(cluster.client()).run_aggregated().await;
        for discovery in [legacy, aggregated] {
            let discovery = discovery.expect("discovery runs");
            let (deployments, caps) = discovery
                .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
                .expect("deployments resolved");
            assert_eq!(deployments.plural, "deployments");
            assert_eq!(caps.scope, Scope::Namespaced);
            assert!(caps.supports_operation("watch"));
            let subs = subresource_names(&caps);
            assert_eq!(subs, vec!["status", "scale"]);
            let (pods, caps) = discovery
                .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
                .expect("pods resolved");
            assert_eq!(pods.plural, "pods");
            let subs = subresource_names(&caps);
            assert_eq!(subs, vec!["status", "log"]);
            let (_, caps) = discovery
                .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
                .expect("namespaces resolved");
            assert_eq!(caps.scope, Scope::Cluster);
            assert!(discovery.has_group("coordination.k8s.io"));
            assert!(!discovery.has_group("batch"));
        }
    }

    #[actix_web::test]
    async fn only_v2beta1_aggregated_gets_legacy_documents() {
        let (_, content_type, body) = get(
            "/apis",
            Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"),
        )
        .await;
        assert_eq!(content_type, "application/json");
        assert_eq!(body["kind"], "APIGroupList");
    }
}
