//! OpenAPI documents: `/openapi/v2`, `/openapi/v3` and one v3 document per group-version
//! (`/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`, ...).
//!
//! The documents are built once, on first use, from [`crate::resources::RESOURCES`] and the
//! schemas in `devcluster/openapi/definitions.json`, and served from memory. v3 group-version
//! documents are addressed with a content hash (`?hash=`) like the real server, so clients such
//! as kubectl may cache them.

mod patch_strategies;
mod paths;
mod schemas;
mod unknown_fields;
mod v2;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::discovery::GIT_VERSION;
use crate::error::ApiError;
use crate::resources::{RESOURCES, ResourceType};

pub use patch_strategies::{PATCH_STRATEGIES, PatchStrategy};
pub use schemas::{SchemaError, definition_name};

/// Registers the OpenAPI routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi/v2", web::get().to(serve_v2))
        .route("/openapi/v3", web::get().to(serve_v3_root))
        .route("/openapi/v3/", web::get().to(serve_v3_root))
        .route(
            "/openapi/v3/{path:.*}",
            web::get().to(serve_v3_group_version),
        );
}

/// One served document: its JSON text and the hash of that text.
pub struct Document {
    pub body: String,
    pub hash: String,
}

impl Document {
    fn new(value: &Value) -> Self {
        let body = value.to_string();
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        Document {
            hash: format!("{:016X}", hasher.finish()),
            body,
        }
    }
}

/// All OpenAPI documents devcluster serves.
pub struct Documents {
    pub v2: Document,
    pub v3_root: Document,
    /// v3 documents by group-version path: `api/v1`, `apis/apps/v1`, ...
    pub v3: BTreeMap<String, Document>,
    /// The schemas (OpenAPI v3 form), for in-process use such as field validation.
    pub definitions: schemas::Definitions,
}

/// The documents, built on first use.
pub fn documents() -> Result<&'static Documents, &'static SchemaError> {
    static DOCUMENTS: OnceLock<Result<Documents, SchemaError>> = OnceLock::new();
    DOCUMENTS.get_or_init(build).as_ref()
}

/// The v3 schema of a served kind, e.g. for `io.k8s.api.core.v1.ConfigMap`.
pub fn schema(definition: &str) -> Option<&'static Value> {
    documents().ok()?.definitions.get(definition)
}

/// Removes the fields of `object` (of type `rt`) that its schema does not declare, as the real
/// server does when decoding a built-in type, and returns their paths, e.g.
/// `spec.template.spec.containers[0].imagePullPolicyy`. The caller answers per the request's
/// `fieldValidation`: `Strict` (kubectl's default) → 400 `strict decoding error: unknown field
/// "PATH"`, `Warn` (the default) → a `Warning: 299 - "unknown field \"PATH\""` header, `Ignore`
/// → nothing. Returns nothing (removes nothing) if the schemas are unavailable.
pub fn prune_unknown_fields(rt: &ResourceType, object: &mut Value) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(docs) = documents() else {
        return removed;
    };
    if let Some(schema) = docs.definitions.get(&definition_name(rt)) {
        unknown_fields::prune(&docs.definitions, schema, object, "", 0, &mut removed);
    }
    removed
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": GIT_VERSION})
}

/// `api/v1` or `apis/GROUP/VERSION`: the key of a group-version in `/openapi/v3`.
fn group_version_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn build() -> Result<Documents, SchemaError> {
    let definitions = schemas::build()?;
    let mut all_paths = Map::new();
    let mut by_group_version: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for rt in RESOURCES {
        let gv_paths = by_group_version
            .entry(group_version_key(rt.group, rt.version))
            .or_default();
        for (path, item) in paths::path_items(rt) {
            gv_paths.insert(path.clone(), item.clone());
            all_paths.insert(path, item);
        }
    }

    let mut v3 = BTreeMap::new();
    for (key, gv_paths) in by_group_version {
        let mut roots = BTreeSet::new();
        for item in gv_paths.values() {
            schemas::references_in(item, &mut roots);
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": info(),
            "paths": gv_paths,
            "components": {
                "schemas": schemas::closure(&definitions, roots),
                "securitySchemes": {
                    "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                        "description": "Bearer Token authentication"}
                },
            },
        });
        v3.insert(key, Document::new(&doc));
    }
    let root_paths: Map<String, Value> = v3
        .iter()
        .map(|(key, doc)| {
            (
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc.hash)}),
            )
        })
        .collect();
    let v3_root = Document::new(&json!({"paths": root_paths}));
    let v2 = Document::new(&v2::document(&info(), &all_paths, &definitions));
    Ok(Documents {
        v2,
        v3_root,
        v3,
        definitions,
    })
}

fn unavailable(error: &SchemaError) -> ApiError {
    ApiError::internal(format!("OpenAPI documents unavailable: {error}"))
}

/// Whether the client accepts JSON. kubectl asks for `/openapi/v2` only as protobuf, which
/// devcluster does not encode: like the real server for an unsupported type, answer 406.
fn accepts_json(req: &HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    accept.split(',').any(|media| {
        let media = media.split(';').next().unwrap_or_default().trim();
        matches!(media, "application/json" | "application/*" | "*/*" | "")
    })
}

fn not_acceptable() -> ApiError {
    ApiError::new(
        406,
        "NotAcceptable",
        "only application/json is served for OpenAPI documents",
    )
}

/// 200 with an ETag, or 304 when the client already holds this version.
fn respond(req: &HttpRequest, doc: &Document, immutable: bool) -> HttpResponse {
    let etag = format!("\"{}\"", doc.hash);
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let cache_control = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let mut resp = if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::VARY, "Accept"));
    if cached {
        resp.finish()
    } else {
        resp.content_type("application/json").body(doc.body.clone())
    }
}

async fn serve_v2(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if !accepts_json(&req) {
        return Err(not_acceptable());
    }
    let docs = documents().map_err(unavailable)?;
    Ok(respond(&req, &docs.v2, false))
}

async fn serve_v3_root(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if !accepts_json(&req) {
        return Err(not_acceptable());
    }
    let docs = documents().map_err(unavailable)?;
    Ok(respond(&req, &docs.v3_root, false))
}

#[derive(serde::Deserialize)]
struct HashQuery {
    hash: Option<String>,
}

async fn serve_v3_group_version(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = path.into_inner();
    let key = key.trim_end_matches('/');
    let docs = documents().map_err(unavailable)?;
    let doc = docs
        .v3
        .get(key)
        .ok_or_else(|| ApiError::unknown_path(&format!("/openapi/v3/{key}")))?;
    if !accepts_json(&req) {
        return Err(not_acceptable());
    }
    match query.hash.as_deref() {
        // An outdated hash: send the client to the current version, as the real server does.
        Some(hash) if hash != doc.hash => Ok(HttpResponse::MovedPermanently()
            .insert_header((
                header::LOCATION,
                format!("/openapi/v3/{key}?hash={}", doc.hash),
            ))
            .finish()),
        Some(_) => Ok(respond(&req, doc, true)),
        None => Ok(respond(&req, doc, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test};

    async fn get(
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (u16, actix_web::http::header::HeaderMap, Vec<u8>) {
        let app = test::init_service(App::new().configure(configure)).await;
        let mut req = test::TestRequest::get().uri(uri);
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        let resp = test::call_service(&app, req.to_request()).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, test::read_body(resp).await.to_vec())
    }

    async fn get_json(uri: &str) -> Value {
        let (status, _, body) = get(uri, &[]).await;
        assert_eq!(status, 200, "{uri}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("JSON")
    }

    #[actix_web::test]
    async fn v3_root_points_at_every_group_version_by_hash() {
        let root = get_json("/openapi/v3").await;
        let paths = root["paths"].as_object().expect("paths");
        for key in [
            "api/v1",
            "apis/apps/v1",
            "apis/networking.k8s.io/v1",
            "apis/rbac.authorization.k8s.io/v1",
            "apis/coordination.k8s.io/v1",
            "apis/events.k8s.io/v1",
        ] {
            let url = paths[key]["serverRelativeURL"].as_str().expect("url");
            assert!(
                url.starts_with(&format!("/openapi/v3/{key}?hash=")),
                "{url}"
            );
            let doc = get_json(url).await;
            assert_eq!(doc["openapi"], "3.0.0");
        }
    }

    #[actix_web::test]
    async fn apps_document_describes_deployments_for_kubectl() {
        let doc = get_json("/openapi/v3/apis/apps/v1").await;
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        // Only what this group-version references.
        assert!(!schemas.contains_key("io.k8s.api.core.v1.ConfigMap"));
        assert!(schemas.contains_key("io.k8s.api.apps.v1.DeploymentList"));
    }

    #[actix_web::test]
    async fn every_reference_in_a_group_version_document_resolves_inside_it() {
        let root = get_json("/openapi/v3").await;
        for entry in root["paths"].as_object().expect("paths").values() {
            let url = entry["serverRelativeURL"].as_str().expect("url");
            let doc = get_json(url).await;
            let mut refs = BTreeSet::new();
            schemas::references_in(&doc, &mut refs);
            let schemas = doc["components"]["schemas"].as_object().expect("schemas");
            let missing: Vec<_> = refs.iter().filter(|r| !schemas.contains_key(*r)).collect();
            assert!(missing.is_empty(), "{url}: {missing:?}");
        }
    }

    #[actix_web::test]
    async fn stale_hash_redirects_and_etag_revalidates() {
        let (status, headers, _) = get("/openapi/v3/api/v1?hash=0000", &[]).await;
        assert_eq!(status, 301);
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("location");
        let (status, headers, _) = get(location, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("public, immutable")
        );
        let etag = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .expect("etag")
            .to_string();
        let (status, _, body) = get(location, &[("If-None-Match", &etag)]).await;
        assert_eq!(status, 304);
        assert!(body.is_empty());
    }

    #[actix_web::test]
    async fn unknown_group_version_is_a_404_status() {
        let (status, _, body) = get("/openapi/v3/apis/widgets.example.com/v1", &[]).await;
        assert_eq!(status, 404);
        let status_doc: Value = serde_json::from_slice(&body).expect("Status");
        assert_eq!(status_doc["kind"], "Status");
    }

    #[actix_web::test]
    async fn v2_is_swagger_with_definitions_and_refuses_protobuf_only_clients() {
        let doc = get_json("/openapi/v2").await;
        assert_eq!(doc["swagger"], "2.0");
        let cm = &doc["definitions"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(
            cm["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(
            doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"].is_object()
        );
        assert!(!doc.to_string().contains("#/components/schemas/"));

        let (status, _, body) = get(
            "/openapi/v2",
            &[(
                "Accept",
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            )],
        )
        .await;
        assert_eq!(status, 406);
        let status_doc: Value = serde_json::from_slice(&body).expect("Status");
        assert_eq!(status_doc["code"], 406);
    }
}
