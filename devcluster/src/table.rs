//! Server-side printing: the columns and cells of `meta.k8s.io` Tables, which `kubectl get`
//! asks for. Each served type gets NAME, AGE and the cheap type-specific columns the real
//! printers have (the values computed the same way), so `kubectl get` output looks familiar.

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::store::meta;

/// One column of a Table (`columnDefinitions` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// As the real printers name it; kubectl shows it upper-cased.
    pub name: &'static str,
    /// OpenAPI type of the cells: `string` or `integer`.
    pub cell_type: &'static str,
    /// `name` for the object-name column, else empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

const fn col(name: &'static str, cell_type: &'static str, description: &'static str) -> Column {
    Column {
        name,
        cell_type,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(column: Column) -> Column {
    Column {
        priority: 1,
        ..column
    }
}

const NAME: Column = Column {
    name: "Name",
    cell_type: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
};
const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

/// The columns of `rt`'s Tables, in order.
pub fn columns(rt: &ResourceType) -> Vec<Column> {
    match (rt.group, rt.kind) {
        ("", "ConfigMap") => vec![NAME, col("Data", "string", "Number of data keys"), AGE],
        ("", "Secret") => vec![
            NAME,
            col("Type", "string", "The type of the secret"),
            col("Data", "integer", "Number of data keys"),
            AGE,
        ],
        ("", "Namespace") => vec![
            NAME,
            col("Status", "string", "The status of the namespace"),
            AGE,
        ],
        ("", "ServiceAccount") => vec![
            NAME,
            col("Secrets", "string", "Number of secrets referenced"),
            AGE,
        ],
        ("", "Pod") => vec![
            NAME,
            col(
                "Ready",
                "string",
                "The aggregate readiness state of this pod",
            ),
            col("Status", "string", "The aggregate status of the containers"),
            col(
                "Restarts",
                "string",
                "The number of times the containers restarted",
            ),
            AGE,
            wide(col("IP", "string", "The pod's IP address")),
            wide(col("Node", "string", "The node the pod runs on")),
        ],
        ("apps", "Deployment") => vec![
            NAME,
            col(
                "Ready",
                "string",
                "Number of ready replicas of the desired ones",
            ),
            col("Up-to-date", "integer", "Total number of updated replicas"),
            col("Available", "integer", "Total number of available replicas"),
            AGE,
            wide(col(
                "Containers",
                "string",
                "Names of each container in the template",
            )),
            wide(col(
                "Images",
                "string",
                "Images referenced by each container in the template",
            )),
            wide(col("Selector", "string", "Label selector for the pods")),
        ],
        ("", "Service") => vec![
            NAME,
            col("Type", "string", "How the service is exposed"),
            col("Cluster-IP", "string", "The IP address of the service"),
            col("External-IP", "string", "External addresses of the service"),
            col("Port(s)", "string", "The ports the service exposes"),
            AGE,
            wide(col(
                "Selector",
                "string",
                "Label selector of the service's pods",
            )),
        ],
        _ => vec![NAME, AGE],
    }
}

/// The cells of `obj`'s row, matching [`columns`]; `now` for ages.
pub fn cells(rt: &ResourceType, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(meta::name(obj));
    let age = json!(age(obj, now));
    let text = |pointer: &str| meta::str_at(obj, pointer).unwrap_or("").to_string();
    let int = |pointer: &str| obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    let count = |pointer: &str| {
        obj.pointer(pointer).map_or(0, |v| match v {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        })
    };
    match (rt.group, rt.kind) {
        ("", "ConfigMap") => {
            let data = count("/data") + count("/binaryData");
            vec![name, json!(data), age]
        }
        ("", "Secret") => vec![name, json!(text("/type")), json!(count("/data")), age],
        ("", "Namespace") => vec![name, json!(text("/status/phase")), age],
        ("", "ServiceAccount") => vec![name, json!(count("/secrets").to_string()), age],
        ("", "Pod") => {
            let (ready, total, restarts) = pod_readiness(obj);
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(obj)),
                json!(restarts.to_string()),
                age,
                json!(or_none(text("/status/podIP"))),
                json!(or_none(text("/spec/nodeName"))),
            ]
        }
        ("apps", "Deployment") => {
            let containers = obj
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let join = |key: &str| {
                containers
                    .iter()
                    .filter_map(|c| c.get(key).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int("/status/readyReplicas"),
                    obj.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                json!(int("/status/updatedReplicas")),
                json!(int("/status/availableReplicas")),
                age,
                json!(join("name")),
                json!(join("image")),
                json!(or_none(label_selector(
                    obj.pointer("/spec/selector/matchLabels")
                ))),
            ]
        }
        ("", "Service") => vec![
            name,
            json!(text("/spec/type")),
            json!(or_none(text("/spec/clusterIP"))),
            json!(service_external_ip(obj)),
            json!(or_none(service_ports(obj))),
            age,
            json!(or_none(label_selector(obj.pointer("/spec/selector")))),
        ],
        _ => vec![name, age],
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// `a=1,b=2` from a label map, sorted by key like the real printer.
fn label_selector(labels: Option<&Value>) -> String {
    let Some(map) = labels.and_then(Value::as_object) else {
        return String::new();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Ready containers, all containers, and total restarts.
fn pod_readiness(pod: &Value) -> (usize, usize, i64) {
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts = statuses
        .iter()
        .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
        .sum();
    (ready, total, restarts)
}

/// The STATUS column: a waiting or terminated container's reason over the phase, and
/// `Terminating` while deleting, as the real pod printer reports it.
fn pod_status(pod: &Value) -> String {
    let mut status = meta::str_at(pod, "/status/reason")
        .or_else(|| meta::str_at(pod, "/status/phase"))
        .unwrap_or("Unknown")
        .to_string();
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for s in statuses.iter().rev() {
        let waiting = meta::str_at(s, "/state/waiting/reason").filter(|r| !r.is_empty());
        let terminated = meta::str_at(s, "/state/terminated/reason").filter(|r| !r.is_empty());
        if let Some(reason) = waiting.or(terminated) {
            status = reason.to_string();
        }
    }
    if meta::is_deleting(pod) {
        status = "Terminating".into();
    }
    status
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = svc
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match meta::str_at(svc, "/spec/type").unwrap_or("ClusterIP") {
        "ExternalName" => meta::str_at(svc, "/spec/externalName")
            .unwrap_or("")
            .to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = svc
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            i.get("ip")
                                .or_else(|| i.get("hostname"))
                                .and_then(Value::as_str)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ if !external.is_empty() => external.join(","),
        _ => "<none>".into(),
    }
}

/// `80/TCP,443:30443/TCP`.
fn service_ports(svc: &Value) -> String {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                        None => format!("{port}/{protocol}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The AGE cell: time since creation, `<unknown>` without a readable creationTimestamp.
fn age(obj: &Value, now: jiff::Timestamp) -> String {
    meta::str_at(obj, "/metadata/creationTimestamp")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|created| human_duration(now.as_second() - created.as_second()))
        .unwrap_or_else(|| "<unknown>".into())
}

/// Seconds as kubectl prints ages: precise while short, coarser as it grows
/// (`45s`, `3m12s`, `25m`, `5h3m`, `20h`, `3d4h`, `40d`, `2y30d`, `9y`).
pub fn human_duration(seconds: i64) -> String {
    // A little clock skew reads as "just now" rather than as an error.
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let with_rest = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_rest(days, "d", hours % 24, "h");
    }
    if days < 365 * 2 {
        return format!("{days}d");
    }
    if days < 365 * 8 {
        return with_rest(days / 365, "y", days % 365, "d");
    }
    format!("{}y", days / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (45, "45s"),
            (119, "119s"),
            (192, "3m12s"),
            (300, "5m"),
            (25 * 60, "25m"),
            (5 * 3600 + 180, "5h3m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (40 * 86400, "40d"),
            (2 * 365 * 86400 + 30 * 86400, "2y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}s");
        }
    }

    #[test]
    fn cells_match_their_columns() {
        let now: jiff::Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let created = "2025-01-01T00:00:00Z";
        let svc = lookup("", "v1", "services").unwrap();
        let obj = json!({"metadata": {"name": "web", "creationTimestamp": created},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells(svc, &obj, now),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("10m"),
                json!("app=web"),
            ]
        );
        let pod = lookup("", "v1", "pods").unwrap();
        let obj = json!({"metadata": {"name": "p", "creationTimestamp": created},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        let row = cells(pod, &obj, now);
        assert_eq!(
            row[1..4],
            [json!("1/2"), json!("ContainerCreating"), json!("3")]
        );
        for rt in crate::resources::RESOURCES {
            let obj = json!({"metadata": {"name": "x"}});
            let (columns, cells) = (columns(rt), cells(rt, &obj, now));
            assert_eq!(cells.len(), columns.len(), "{}", rt.plural);
            let age = columns
                .iter()
                .position(|c| *c == AGE)
                .expect("an Age column");
            assert_eq!(cells[age], "<unknown>", "{}", rt.plural);
            assert_eq!(cells[0], "x", "{}", rt.plural);
        }
    }
}
