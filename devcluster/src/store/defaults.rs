//! Per-type behaviour the real API server has on create and update: name validation,
//! defaulting, status reset and immutable fields. Only what clients can observe.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::resources::ResourceType;
use crate::selectors::{is_dns_label, is_dns_subdomain};

/// Types whose strategy maintains `metadata.generation` (bumped on spec changes).
pub fn tracks_generation(rt: &ResourceType) -> bool {
    matches!(
        (rt.group, rt.kind),
        ("apps", "Deployment")
            | ("networking.k8s.io", "Ingress")
            | ("networking.k8s.io", "NetworkPolicy")
            | ("", "Pod")
    )
}

const SUBDOMAIN_HELP: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_HELP: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_HELP: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// Validates `metadata.name` with the rule the type uses in the real server.
pub fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    match name_problem(rt, name) {
        None => Ok(()),
        Some(help) => Err(ApiError::invalid(
            rt,
            name,
            "metadata.name",
            &format!("Invalid value: \"{name}\": {help}"),
        )),
    }
}

/// Checks `generateName` as the real server does, as a name prefix: a trailing `-` is fine
/// (the random suffix follows it), anything else must already be valid in a name (so `web.`
/// is refused). `generated` names the object in the message.
pub fn validate_generate_name(
    rt: &ResourceType,
    generated: &str,
    prefix: &str,
) -> Result<(), ApiError> {
    let masked = match prefix.strip_suffix('-') {
        Some(head) => format!("{head}a"),
        None => prefix.to_string(),
    };
    match name_problem(rt, &masked) {
        None => Ok(()),
        Some(help) => Err(ApiError::invalid(
            rt,
            generated,
            "metadata.generateName",
            &format!("Invalid value: \"{prefix}\": {help}"),
        )),
    }
}

/// What is wrong with `name` for `rt`, as the real validation's help text.
fn name_problem(rt: &ResourceType, name: &str) -> Option<&'static str> {
    let (ok, help) = match rt.kind {
        "Namespace" => (is_dns_label(name), LABEL_HELP),
        "Service" => (
            is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
            DNS1035_HELP,
        ),
        // Path-segment names: the RBAC types only forbid what cannot appear in a URL.
        "Role" | "RoleBinding" => (
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%']),
            "may not contain '/' or '%' and may not be '.' or '..'",
        ),
        _ => (is_dns_subdomain(name), SUBDOMAIN_HELP),
    };
    (!ok).then_some(help)
}

/// The object at `path` under `obj`, created (replacing non-objects) along the way.
fn object_at<'a>(obj: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = obj;
    for key in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        let map = cur.as_object_mut().expect("made an object above");
        cur = map.entry(key.to_string()).or_insert_with(|| json!({}));
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    cur.as_object_mut().expect("made an object above")
}

fn default_field(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// Defaults a pod spec the way the real defaulting does for the fields clients read back.
fn default_pod_spec(spec: &mut Map<String, Value>) {
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(key) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                let latest = c
                    .get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
                default_field(
                    c,
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
                default_field(c, "terminationMessagePolicy", json!("File"));
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default_field(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// Defaulting and status reset for a new object of `rt` (the cluster IP is allocated by the store).
pub fn on_create(rt: &ResourceType, obj: &mut Value) {
    match (rt.group, rt.kind) {
        ("", "Namespace") => {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            object_at(obj, &["metadata", "labels"])
                .insert("kubernetes.io/metadata.name".into(), json!(name));
            object_at(obj, &["spec"]).insert("finalizers".into(), json!(["kubernetes"]));
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "Pod") => {
            default_pod_spec(object_at(obj, &["spec"]));
            let status = object_at(obj, &["status"]);
            default_field(status, "phase", json!("Pending"));
            default_field(status, "qosClass", json!("BestEffort"));
        }
        ("", "Service") => {
            let spec = object_at(obj, &["spec"]);
            default_field(spec, "type", json!("ClusterIP"));
            default_field(spec, "sessionAffinity", json!("None"));
            default_field(spec, "ipFamilies", json!(["IPv4"]));
            default_field(spec, "ipFamilyPolicy", json!("SingleStack"));
            default_field(spec, "internalTrafficPolicy", json!("Cluster"));
            default_service_ports(spec);
            obj["status"] = json!({"loadBalancer": {}});
        }
        ("apps", "Deployment") => {
            let spec = object_at(obj, &["spec"]);
            default_field(spec, "replicas", json!(1));
            default_field(spec, "revisionHistoryLimit", json!(10));
            default_field(spec, "progressDeadlineSeconds", json!(600));
            default_field(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
            default_pod_spec(object_at(obj, &["spec", "template", "spec"]));
            obj["status"] = json!({});
        }
        ("networking.k8s.io", "Ingress") => {
            obj["status"] = json!({"loadBalancer": {}});
        }
        _ => {}
    }
}

fn default_service_ports(spec: &mut Map<String, Value>) {
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_field(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                default_field(p, "targetPort", port);
            }
        }
    }
}

/// Checks and defaulting on update: fields the real server keeps immutable or re-defaults.
pub fn on_update(rt: &ResourceType, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    match (rt.group, rt.kind) {
        ("", "Service") => {
            let old_ip = old.pointer("/spec/clusterIP").cloned();
            let new_ip = new.pointer("/spec/clusterIP").cloned();
            match (old_ip, new_ip) {
                (Some(o), None) | (Some(o), Some(Value::Null)) => {
                    object_at(new, &["spec"]).insert("clusterIP".into(), o.clone());
                    if let Some(ips) = old.pointer("/spec/clusterIPs").cloned() {
                        default_field(object_at(new, &["spec"]), "clusterIPs", ips);
                    }
                }
                (Some(o), Some(n)) if o != n && o != json!("") => {
                    let name = new
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    return Err(ApiError::invalid(
                        rt,
                        name,
                        "spec.clusterIPs[0]",
                        &format!("Invalid value: {n}: may not change once set"),
                    ));
                }
                _ => {}
            }
            let spec = object_at(new, &["spec"]);
            default_field(spec, "type", json!("ClusterIP"));
            default_field(spec, "sessionAffinity", json!("None"));
            default_service_ports(spec);
        }
        ("", "Namespace") => {
            if let Some(f) = old.pointer("/spec/finalizers").cloned() {
                object_at(new, &["spec"]).insert("finalizers".into(), f);
            }
            let name = old
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            object_at(new, &["metadata", "labels"])
                .insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        ("apps", "Deployment") => {
            let spec = object_at(new, &["spec"]);
            default_field(spec, "replicas", json!(1));
            default_field(spec, "revisionHistoryLimit", json!(10));
            default_field(spec, "progressDeadlineSeconds", json!(600));
        }
        _ => {}
    }
    Ok(())
}
