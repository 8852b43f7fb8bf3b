//! The REST handlers for every served type: one dispatcher under `/api/` and `/apis/` that
//! parses the path like the real server (namespaced or cluster paths, subresources, legacy
//! `/watch/` paths) and maps the HTTP method to create, get, list, watch, update, patch,
//! delete or deletecollection.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::faults::Faults;
use crate::field_validation::{self, FieldValidation, Problems};
use crate::patch;
use crate::representation::{ReadShape, Representation};
use crate::resources::{self, ResourceType};
use crate::scale;
use crate::selectors::Selectors;
use crate::store::{DeleteOptions, ListPage, PropagationPolicy, Store, WriteOptions, ids, meta};
use crate::watch::{self, WatchRequest, WatchSettings};

/// Largest request body accepted (the real server's limit is about 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Registers the resource routes. Call after discovery and OpenAPI so their exact paths win.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/api/{tail:.*}", web::route().to(dispatch))
        .route("/apis/{tail:.*}", web::route().to(dispatch));
}

/// What a resource path names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    legacy_watch: bool,
}

fn parse_target(path: &str) -> Result<Target, ApiError> {
    let not_found = || ApiError::unknown_path(path);
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, mut rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found()),
    };
    let legacy_watch = rest.first() == Some(&"watch");
    if legacy_watch {
        rest = &rest[1..];
    }
    let (namespace, plural, name, subresource) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            if tail.len() > 2 {
                return Err(not_found());
            }
            (
                Some(*ns),
                *plural,
                tail.first().copied(),
                tail.get(1).copied(),
            )
        }
        [plural, tail @ ..] => {
            if tail.len() > 2 {
                return Err(not_found());
            }
            (None, *plural, tail.first().copied(), tail.get(1).copied())
        }
        [] => return Err(not_found()),
    };
    let rt = resources::lookup(group, version, plural).ok_or_else(not_found)?;
    if (namespace.is_some() && !rt.namespaced)
        || (rt.namespaced && name.is_some() && namespace.is_none())
    {
        return Err(not_found());
    }
    if let Some(sub) = subresource {
        let served = (sub == "status" && rt.status_subresource)
            || (sub == "log" && rt.log_subresource)
            || (sub == "scale" && rt.scale_subresource);
        if !served {
            return Err(not_found());
        }
    }
    Ok(Target {
        rt,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: subresource.map(str::to_string),
        legacy_watch,
    })
}

type Query = HashMap<String, String>;

fn parse_query(req: &HttpRequest) -> Result<Query, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner().into_iter().collect())
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

fn flag(q: &Query, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("true" | "1"))
}

fn dry_run(q: &Query) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dry run value: {other:?}; the only supported value is \"All\""
        ))),
    }
}

/// The field manager: the `fieldManager` parameter, else the User-Agent up to its first `/`.
fn field_manager(req: &HttpRequest, q: &Query) -> Result<String, ApiError> {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        if m.len() > 128 || m.chars().any(|c| c.is_control()) {
            return Err(ApiError::bad_request(
                "fieldManager must be at most 128 printable characters",
            ));
        }
        return Ok(m.clone());
    }
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let prefix: String = agent
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(128)
        .collect();
    Ok(if prefix.is_empty() {
        "unknown".into()
    } else {
        prefix
    })
}

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

/// Decodes a JSON (or YAML) object body; a clear 400/415 otherwise.
fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    parse_body_noting_duplicates(req, body).map(|(value, _)| value)
}

/// Like [`parse_body`], also returning the duplicate fields of a JSON body.
fn parse_body_noting_duplicates(
    req: &HttpRequest,
    body: &[u8],
) -> Result<(Value, Problems), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; an object is required",
        ));
    }
    let ct = content_type(req);
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (value, duplicates) = match mime.as_str() {
        "application/json" | "" | "*/*" => field_validation::decode_json(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't decode the request body as JSON: {e}"))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the YAML request body is not UTF-8"))?;
            let value = serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("couldn't decode the request body as YAML: {e}"))
            })?;
            (value, Problems::default())
        }
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other})"
            )));
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok((value, duplicates))
}

/// A create or update body: decoded, its unknown fields dropped, its problems judged by the
/// request's `fieldValidation`. Returns the object and the warnings to send.
fn parse_validated_body(
    req: &HttpRequest,
    body: &[u8],
    rt: &ResourceType,
    q: &Query,
    options_kind: &str,
) -> Result<(Value, Vec<String>), ApiError> {
    let directive =
        FieldValidation::parse(q.get("fieldValidation").map(String::as_str), options_kind)?;
    let (mut obj, mut problems) = parse_body_noting_duplicates(req, body)?;
    problems.0.extend(field_validation::prune(rt, &mut obj).0);
    let warnings = problems.resolve(directive, |m| field_validation::decode_error(rt, m))?;
    Ok((obj, warnings))
}

/// Adds one `Warning` header per warning, as the real server does.
fn with_warnings(mut resp: HttpResponse, warnings: &[String]) -> HttpResponse {
    for w in warnings {
        if let Ok(value) = header::HeaderValue::from_str(&field_validation::warning_header(w)) {
            resp.headers_mut().append(header::WARNING, value);
        }
    }
    resp
}

fn json_response(status: u16, obj: &Value) -> HttpResponse {
    let code =
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(code)
        .content_type("application/json")
        .body(serde_json::to_vec(obj).unwrap_or_default())
}

/// The shared state handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub faults: Faults,
    pub watch: WatchSettings,
    pub output: crate::workloads::ContainerOutput,
}

async fn dispatch(req: HttpRequest, body: Bytes, state: web::Data<ApiState>) -> HttpResponse {
    match handle(&req, &body, &state) {
        Ok(resp) => resp,
        Err(e) => e.error_response(),
    }
}

fn handle(req: &HttpRequest, body: &[u8], state: &ApiState) -> Result<HttpResponse, ApiError> {
    let target = parse_target(req.path())?;
    let q = parse_query(req)?;
    let rt = target.rt;
    let ns = target.namespace.as_deref();
    let method = req.method().as_str();
    let store = &state.store;
    match (
        method,
        target.name.as_deref(),
        target.subresource.as_deref(),
    ) {
        ("GET", None, None) => {
            if target.legacy_watch || flag(&q, "watch") {
                watch_response(req, &target, &q, state, None)
            } else {
                let representation = negotiate(req, &q, ReadShape::List)?;
                list_response(store, rt, ns, &q, representation)
            }
        }
        ("GET", Some(name), None) if target.legacy_watch || flag(&q, "watch") => {
            watch_response(req, &target, &q, state, Some(name))
        }
        ("GET", Some(name), None | Some("status")) => {
            let representation = negotiate(req, &q, ReadShape::Object)?;
            let obj = store.get_arc(rt, ns, name)?;
            Ok(match representation {
                Representation::Object => json_response(200, &obj),
                other => json_response(200, &other.object(rt, &obj)),
            })
        }
        ("GET", Some(name), Some("log")) => pod_log(store, &state.output, rt, ns, name, &q),
        ("GET", Some(name), Some("scale")) => {
            Ok(json_response(200, &scale::get(store, rt, ns, name)?))
        }
        ("PUT", Some(name), Some("scale")) => {
            let body = parse_body(req, body)?;
            let manager = field_manager(req, &q)?;
            let opts = WriteOptions {
                manager: &manager,
                dry_run: dry_run(&q)?,
            };
            Ok(json_response(
                200,
                &scale::update(store, rt, ns, name, &body, &opts)?,
            ))
        }
        ("PATCH", Some(name), Some("scale")) => {
            let kind = patch_kind(req)?;
            let manager = match q.get("fieldManager").filter(|m| !m.is_empty()) {
                Some(m) => m.clone(),
                None if kind == patch::PatchKind::Apply => return Err(apply_needs_manager()),
                None => field_manager(req, &q)?,
            };
            let opts = WriteOptions {
                manager: &manager,
                dry_run: dry_run(&q)?,
            };
            Ok(json_response(
                200,
                &scale::patch(store, rt, ns, name, kind, body, &opts)?,
            ))
        }
        ("POST", None, None) => {
            let (obj, warnings) = parse_validated_body(req, body, rt, &q, "CreateOptions")?;
            let manager = field_manager(req, &q)?;
            let opts = WriteOptions {
                manager: &manager,
                dry_run: dry_run(&q)?,
            };
            let created = store.create_with(rt, ns, obj, &opts)?;
            Ok(with_warnings(json_response(201, &created), &warnings))
        }
        ("PUT", Some(name), None | Some("status")) => {
            let (obj, warnings) = parse_validated_body(req, body, rt, &q, "UpdateOptions")?;
            if meta::name(&obj) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::name(&obj)
                )));
            }
            let manager = field_manager(req, &q)?;
            let opts = WriteOptions {
                manager: &manager,
                dry_run: dry_run(&q)?,
            };
            let status = target.subresource.is_some();
            let updated = store.update_with(rt, ns, obj, &opts, status)?;
            Ok(with_warnings(json_response(200, &updated), &warnings))
        }
        ("PATCH", Some(name), None | Some("status")) => {
            let kind = patch_kind(req)?;
            let manager = q.get("fieldManager").filter(|m| !m.is_empty()).cloned();
            if kind == patch::PatchKind::Apply && manager.is_none() {
                return Err(apply_needs_manager());
            }
            let manager = match manager {
                Some(m) => m,
                None => field_manager(req, &q)?,
            };
            let force = flag(&q, "force");
            if force && kind != patch::PatchKind::Apply {
                return Err(ApiError::bad_request(
                    "force may only be set for apply patch",
                ));
            }
            let directive = FieldValidation::parse(
                q.get("fieldValidation").map(String::as_str),
                "PatchOptions",
            )?;
            if kind == patch::PatchKind::Apply {
                field_validation::check_apply_configuration(rt, name, body)?;
            }
            let now = ids::now_rfc3339();
            let preq = patch::PatchRequest {
                resource: rt,
                kind,
                body,
                field_manager: Some(&manager),
                force,
                subresource: target.subresource.as_deref(),
                now: &now,
            };
            let patched = store.patch_validated(rt, ns, name, &preq, dry_run(&q)?, directive)?;
            Ok(with_warnings(
                json_response(if patched.created { 201 } else { 200 }, &patched.object),
                &patched.warnings,
            ))
        }
        ("DELETE", Some(name), None) => {
            let opts = delete_options(req, body, &q)?;
            let result = store.delete(rt, ns, name, &opts)?;
            Ok(delete_response(rt, &result))
        }
        ("DELETE", None, None) => {
            let opts = delete_options(req, body, &q)?;
            let selectors = Selectors::parse_for(
                rt,
                q.get("labelSelector").map(String::as_str),
                q.get("fieldSelector").map(String::as_str),
            )?;
            let page = store.list_page(rt, ns, &selectors, None, None)?;
            let mut deleted = Vec::new();
            for obj in &page.items {
                match store.delete(rt, Some(meta::namespace(obj)), meta::name(obj), &opts) {
                    Ok(d) => deleted.push(Arc::new(d)),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let page = ListPage {
                items: deleted,
                resource_version: store.resource_version(),
                continue_after: None,
                remaining: 0,
            };
            Ok(list_body_response(rt, &page, None))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            req.path()
        ))),
    }
}

/// The patch type of the request's content type, or the real server's 415.
fn patch_kind(req: &HttpRequest) -> Result<patch::PatchKind, ApiError> {
    let ct = content_type(req);
    patch::PatchKind::from_content_type(&ct).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct})"
        ))
    })
}

fn apply_needs_manager() -> ApiError {
    ApiError::bad_request(
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
    )
}

/// Immediate deletions answer with a success Status, pending ones with the object.
fn delete_response(rt: &ResourceType, result: &Value) -> HttpResponse {
    let pending =
        !meta::finalizers(result).is_empty() || (rt.kind == "Namespace" && rt.group.is_empty());
    if pending {
        return json_response(200, result);
    }
    json_response(
        200,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": meta::name(result),
                "group": rt.group,
                "kind": rt.plural,
                "uid": meta::uid(result),
            }
        }),
    )
}

/// DeleteOptions from the body (if any) overlaid with query parameters.
fn delete_options(req: &HttpRequest, body: &[u8], q: &Query) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let b = parse_body(req, body)?;
        if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation_policy = Some(PropagationPolicy::parse(p)?);
        }
        if b.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            opts.propagation_policy = Some(PropagationPolicy::Orphan);
        }
        if let Some(pre) = b.get("preconditions") {
            opts.precondition_uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
            opts.precondition_resource_version = pre
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(d) = b.get("dryRun").and_then(Value::as_array) {
            for v in d {
                match v.as_str() {
                    Some("All") => opts.dry_run = true,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dry run value: {other:?}"
                        )));
                    }
                }
            }
        }
        opts.grace_period_seconds = b.get("gracePeriodSeconds").and_then(Value::as_i64);
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation_policy = Some(PropagationPolicy::parse(p)?);
    }
    if flag(q, "orphanDependents") {
        opts.propagation_policy = Some(PropagationPolicy::Orphan);
    }
    if dry_run(q)? {
        opts.dry_run = true;
    }
    if let Some(g) = q.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(g.parse().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds must be an integer, got {g:?}"))
        })?);
    }
    Ok(opts)
}

fn parse_rv(q: &Query) -> Result<Option<u64>, ApiError> {
    match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {s:?}"))),
    }
}

/// Continue tokens: hex of `rv/namespace/name` (opaque to clients, like the real base64 JSON).
fn encode_continue(rv: u64, after: &(String, String)) -> String {
    let raw = format!("{rv}\u{0}{}\u{0}{}", after.0, after.1);
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Option<(u64, (String, String))> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let raw = String::from_utf8(bytes?).ok()?;
    let mut parts = raw.split('\u{0}');
    let rv = parts.next()?.parse().ok()?;
    let ns = parts.next()?.to_string();
    let name = parts.next()?.to_string();
    Some((rv, (ns, name)))
}

fn expired_continue() -> ApiError {
    ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
    )
}

/// The representation a read is answered in, from `Accept` and `includeObject`.
fn negotiate(req: &HttpRequest, q: &Query, shape: ReadShape) -> Result<Representation, ApiError> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Representation::negotiate(accept, q.get("includeObject").map(String::as_str), shape)
}

fn list_response(
    store: &Store,
    rt: &'static ResourceType,
    ns: Option<&str>,
    q: &Query,
    representation: Representation,
) -> Result<HttpResponse, ApiError> {
    let selectors = Selectors::parse_for(
        rt,
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    )?;
    match q.get("resourceVersionMatch").map(String::as_str) {
        None | Some("") => {}
        Some("NotOlderThan" | "Exact")
            if q.get("resourceVersion").is_some_and(|v| !v.is_empty()) => {}
        Some(m @ ("NotOlderThan" | "Exact")) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch {m} is forbidden unless resourceVersion is provided"
            )));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid resourceVersionMatch {other:?}: must be NotOlderThan or Exact"
            )));
        }
    }
    parse_rv(q)?;
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("limit must be a positive integer, got {l:?}"))
        })?),
    };
    let continued = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, after) = decode_continue(token).ok_or_else(expired_continue)?;
            if !store.is_resumable(rv) {
                return Err(expired_continue());
            }
            Some((rv, after))
        }
        None => None,
    };
    let mut page = store.list_page(rt, ns, &selectors, limit, continued.as_ref().map(|c| &c.1))?;
    if let Some((rv, _)) = &continued {
        // Later pages belong to the first page's list: same resourceVersion.
        page.resource_version = *rv;
    }
    let token = page
        .continue_after
        .as_ref()
        .map(|after| encode_continue(page.resource_version, after));
    let mut list_metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(t) = &token {
        list_metadata["continue"] = json!(t);
        list_metadata["remainingItemCount"] = json!(page.remaining);
    }
    if let Some(body) = representation.list(rt, &page.items, list_metadata) {
        return Ok(json_response(200, &body));
    }
    Ok(list_body_response(rt, &page, token))
}

/// One list item as the real server writes it: without `apiVersion` and `kind`, which the
/// list's own fields carry.
struct ListItem<'a>(&'a Value);

impl serde::Serialize for ListItem<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let Value::Object(fields) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in fields {
            if key != "apiVersion" && key != "kind" {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Serialises a list without copying the objects into a new tree.
fn list_body_response(rt: &ResourceType, page: &ListPage, token: Option<String>) -> HttpResponse {
    let mut out: Vec<u8> = Vec::with_capacity(64 + page.items.len() * 512);
    let _ = write!(
        out,
        r#"{{"kind":"{}","apiVersion":"{}","metadata":{{"resourceVersion":"{}""#,
        rt.list_kind(),
        rt.api_version(),
        page.resource_version
    );
    if let Some(t) = token {
        let _ = write!(
            out,
            r#","continue":"{t}","remainingItemCount":{}"#,
            page.remaining
        );
    }
    out.extend_from_slice(br#"},"items":["#);
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, &ListItem(item));
    }
    out.extend_from_slice(b"]}");
    HttpResponse::Ok()
        .content_type("application/json")
        .body(out)
}

fn watch_response(
    req: &HttpRequest,
    target: &Target,
    q: &Query,
    state: &ApiState,
    name: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let representation = negotiate(req, q, ReadShape::Watch)?;
    let mut field_selector = q.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(name) = name {
        if !field_selector.is_empty() {
            field_selector.push(',');
        }
        field_selector.push_str(&format!("metadata.name={name}"));
    }
    let selectors = Selectors::parse_for(
        target.rt,
        q.get("labelSelector").map(String::as_str),
        Some(&field_selector),
    )?;
    let timeout = match q.get("timeoutSeconds") {
        Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "timeoutSeconds must be a non-negative integer, got {t:?}"
            ))
        })?)),
        None => None,
    };
    let request = WatchRequest {
        resource: target.rt,
        namespace: target.namespace.clone(),
        selectors,
        resource_version: parse_rv(q)?,
        allow_bookmarks: flag(q, "allowWatchBookmarks"),
        send_initial_events: flag(q, "sendInitialEvents"),
        timeout,
        representation,
    };
    let mut rx = watch::start(
        &state.store,
        request,
        &state.watch,
        state.faults.watch_drops(),
    );
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(Ok::<Bytes, actix_web::Error>))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache, private"))
        .streaming(stream))
}

fn pod_log(
    store: &Store,
    output: &crate::workloads::ContainerOutput,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    q: &Query,
) -> Result<HttpResponse, ApiError> {
    let pod = store.get(rt, ns, name)?;
    let previous = q.get("previous").is_some_and(|v| v == "true" || v == "1");
    let container = q.get("container").map(String::as_str);
    let mut text = crate::workloads::pod_log(&pod, container, previous)?;
    if !previous {
        text = output.after(&pod, container, text);
    }
    Ok(HttpResponse::Ok().content_type("text/plain").body(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_types_namespaces_and_subresources() {
        let t = parse_target("/api/v1/namespaces/default/configmaps/x").unwrap();
        assert_eq!(
            (t.rt.kind, t.namespace.as_deref(), t.name.as_deref()),
            ("ConfigMap", Some("default"), Some("x"))
        );
        let t = parse_target("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (t.rt.kind, t.name.as_deref()),
            ("Namespace", Some("default"))
        );
        let t = parse_target("/api/v1/namespaces/default/status").unwrap();
        assert_eq!(
            (t.rt.kind, t.subresource.as_deref()),
            ("Namespace", Some("status"))
        );
        let t = parse_target("/apis/apps/v1/deployments").unwrap();
        assert_eq!((t.rt.kind, t.namespace), ("Deployment", None));
        let t = parse_target("/api/v1/watch/namespaces/a/pods").unwrap();
        assert!(t.legacy_watch);
        assert!(parse_target("/api/v1/widgets").is_err());
        assert!(parse_target("/api/v1/configmaps/x").is_err());
        assert!(parse_target("/api/v1/namespaces/a/configmaps/x/status").is_err());
        assert!(parse_target("/api/v1/namespaces/a/pods/x/log").is_ok());
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, &("ns".into(), "name".into()));
        assert_eq!(
            decode_continue(&t),
            Some((42, ("ns".into(), "name".into())))
        );
        assert_eq!(decode_continue("zz"), None);
        assert_eq!(decode_continue("abc"), None);
    }
}
