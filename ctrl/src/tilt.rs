//! Port discovery from a running Tilt.
//!
//! Tilt's web port serves its UIResource list at [`UIRESOURCES_PATH`] (the same list as
//! `tilt get uiresources -o json`). Each resource's endpoint links that point at the runner
//! itself (`http://0.0.0.0:PORT`, `localhost`, `127.0.0.1`) become ports of the env's Service,
//! following upstream's rules; see [`ports_from_uiresources`]. Reading the list over HTTP needs
//! no `pods/exec` permission, unlike upstream.
//!
//! The request goes through the crate's one outgoing client ([`crate::outbound`]), with Tilt's
//! own timeouts and size cap; plain HTTP is all Tilt serves inside the cluster, so only
//! `http://` URLs are taken and no CA bundle is read.

use std::collections::BTreeSet;
use std::time::Duration;

use ephemerator_core::Port;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use serde::Deserialize;

use crate::outbound::{Outbound, OutboundError};

/// Tilt's own web port; the Service always exposes it as [`TILT_PORT_NAME`], so discovery never
/// returns it.
pub const TILT_PORT: u16 = 10350;
/// The Service port name of Tilt's web port; reserved, so a resource called `tilt` gets `tilt-2`.
pub const TILT_PORT_NAME: &str = "tilt";
/// Where Tilt serves its UIResource list, relative to its web port.
pub const UIRESOURCES_PATH: &str = "/proxy/apis/tilt.dev/v1alpha1/uiresources";
/// The header Tilt 0.37.4+ checks against its token file.
pub const TOKEN_HEADER: &str = "X-Tilt-Token";

/// Longest Kubernetes port name (an IANA service name).
const MAX_PORT_NAME_LEN: usize = 15;
/// Link hosts that mean "this runner" (Tilt runs with `--host 0.0.0.0`).
const LOCAL_HOSTS: [&str; 3] = ["0.0.0.0", "localhost", "127.0.0.1"];

/// The ports a Tilt's resources publish, and whether it is worth asking again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveredPorts {
    /// Sorted by port, unique ports and unique valid Kubernetes port names, never [`TILT_PORT`].
    pub ports: Vec<Port>,
    /// True while a resource is still starting (runtime status empty, `pending` or `unknown`) or
    /// the Tiltfile is still loading: more links may appear, so poll again (upstream: in 10 s).
    pub pending: bool,
}

/// What went wrong asking Tilt for its resources.
#[derive(Debug, thiserror::Error)]
pub enum TiltError {
    #[error("invalid Tilt URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to Tilt at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("request to Tilt at {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("Tilt at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("Tilt at {url} refused the token (HTTP {status})")]
    Unauthorized { url: String, status: u16 },
    #[error("Tilt at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("Tilt's answer from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("Tilt's UIResource list is invalid at `{path}`: {reason}")]
    Parse { path: String, reason: String },
}

// The subset of Tilt's UIResourceList (pkg/apis/core/v1alpha1/uiresource_types.go) used here.
// Every field defaults, as Go's `omitempty` leaves them out.
#[derive(Deserialize)]
struct UiResourceList {
    #[serde(default)]
    items: Option<Vec<UiResource>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UiResource {
    metadata: Option<UiMeta>,
    status: Option<UiResourceStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UiMeta {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct UiResourceStatus {
    endpoint_links: Option<Vec<UiResourceLink>>,
    runtime_status: Option<String>,
    update_status: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UiResourceLink {
    url: Option<String>,
}

/// The resource Tilt uses for the Tiltfile itself; its links and resources appear once it loads.
const TILTFILE_RESOURCE: &str = "(Tiltfile)";

/// Reads a UIResourceList body into the ports to expose, with upstream's rules: per resource in
/// list order, each link to this runner with a numeric port adds that port named after the
/// resource (sanitised to a Kubernetes port name); a repeated port is skipped, a repeated name
/// gets `-2`, `-3`…; sorted by port. [`TILT_PORT`] is never included. An empty list is pending:
/// a running Tilt always has at least its Tiltfile resource.
pub fn ports_from_uiresources(body: &[u8]) -> Result<DiscoveredPorts, TiltError> {
    // serde would also read a struct from a JSON array; Tilt's answer is always an object.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(TiltError::Parse {
            path: ".".to_string(),
            reason: "expected a JSON object (a UIResourceList)".to_string(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let list: UiResourceList =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| TiltError::Parse {
            path: err.path().to_string(),
            reason: err.inner().to_string(),
        })?;
    deserializer.end().map_err(|err| TiltError::Parse {
        path: ".".to_string(),
        reason: err.to_string(),
    })?;
    let items = list.items.unwrap_or_default();

    let mut pending = items.is_empty();
    let mut used_ports = BTreeSet::from([TILT_PORT]);
    let mut used_names = BTreeSet::from([TILT_PORT_NAME.to_string()]);
    let mut ports = Vec::new();
    for item in &items {
        let name = item
            .metadata
            .as_ref()
            .and_then(|m| m.name.as_deref())
            .unwrap_or("");
        let status = item.status.as_ref();
        let runtime = status
            .and_then(|s| s.runtime_status.as_deref())
            .unwrap_or("");
        let update = status
            .and_then(|s| s.update_status.as_deref())
            .unwrap_or("");
        if matches!(runtime, "" | "pending" | "unknown")
            || (name == TILTFILE_RESOURCE && matches!(update, "pending" | "in_progress"))
        {
            pending = true;
        }
        let links = status
            .and_then(|s| s.endpoint_links.as_deref())
            .unwrap_or(&[]);
        for link in links {
            let Some(port) = link.url.as_deref().and_then(local_link_port) else {
                continue;
            };
            if !used_ports.insert(port) {
                continue;
            }
            let port_name = unique_name(&sanitize_port_name(name, port), &mut used_names);
            ports.push(Port {
                name: port_name,
                port,
            });
        }
    }
    ports.sort_by_key(|p| p.port);
    Ok(DiscoveredPorts { ports, pending })
}

/// The port of an `http://` link to this runner (`0.0.0.0`, `localhost`, `127.0.0.1`) with an
/// explicit, numeric, non-zero port; `None` for anything else.
fn local_link_port(url: &str) -> Option<u16> {
    let scheme_len = "http://".len();
    if !url.get(..scheme_len)?.eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &url[scheme_len..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = authority.rsplit_once(':')?;
    if !LOCAL_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return None;
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|&p| p != 0)
}

/// A valid Kubernetes port name (IANA service name: at most 15 characters of lowercase letters,
/// digits and single hyphens, not at either end, at least one letter) from a resource name.
/// Falls back to `port-PORT` when nothing usable is left.
fn sanitize_port_name(resource: &str, port: u16) -> String {
    let mut name = String::new();
    for c in resource.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = truncate_name(&name, MAX_PORT_NAME_LEN);
    if name.bytes().any(|b| b.is_ascii_lowercase()) {
        name
    } else {
        format!("port-{port}")
    }
}

/// `base` cut to `max` characters with no hyphen left at the end (names are ASCII by now).
fn truncate_name(base: &str, max: usize) -> String {
    base[..base.len().min(max)]
        .trim_end_matches('-')
        .to_string()
}

/// `base`, or `base-2`, `base-3`… (shortened to stay a valid port name), whichever is unused.
fn unique_name(base: &str, used: &mut BTreeSet<String>) -> String {
    if used.insert(base.to_string()) {
        return base.to_string();
    }
    // Terminates: candidates differ for every n (the stem never ends in '-', so the last '-'
    // starts the suffix) and only finitely many names are used.
    let mut n = 2usize;
    loop {
        let suffix = format!("-{n}");
        let mut stem = truncate_name(base, MAX_PORT_NAME_LEN - suffix.len());
        // Cutting may remove the only letters (`123456789012345a`): a name needs one.
        if !stem.bytes().any(|b| b.is_ascii_lowercase()) {
            stem = "port".to_string();
        }
        let candidate = format!("{stem}{suffix}");
        if used.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

/// Asks running Tilts for their resources. Cheap to clone (one shared connection pool).
#[derive(Clone)]
pub struct TiltClient {
    outbound: Outbound,
    request_timeout: Duration,
    max_body: usize,
}

impl Default for TiltClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TiltClient {
    /// Connecting gives up after this long (a runner that is not up yet).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// The whole request, body included, gives up after this long.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// Larger answers are refused (a Tilt with hundreds of resources stays far below).
    pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

    /// A client with the default timeouts and size cap.
    pub fn new() -> Self {
        Self::with_limits(
            Self::CONNECT_TIMEOUT,
            Self::REQUEST_TIMEOUT,
            Self::MAX_BODY_BYTES,
        )
    }

    /// A client with other limits (tests use small ones).
    pub fn with_limits(
        connect_timeout: Duration,
        request_timeout: Duration,
        max_body: usize,
    ) -> Self {
        TiltClient {
            // Tilt serves plain HTTP inside the cluster: no CA bundle needed.
            outbound: Outbound::plain(connect_timeout),
            request_timeout,
            max_body,
        }
    }

    /// `GET {base_url}/proxy/apis/tilt.dev/v1alpha1/uiresources` with the token, parsed into the
    /// ports to expose. `base_url` is Tilt's web address, e.g. `http://ENV.NAMESPACE.svc:10350`.
    pub async fn discover_ports(
        &self,
        base_url: &str,
        token: &str,
    ) -> Result<DiscoveredPorts, TiltError> {
        let body = self.fetch_uiresources(base_url, token).await?;
        ports_from_uiresources(&body)
    }

    /// The raw UIResourceList body.
    pub async fn fetch_uiresources(&self, base_url: &str, token: &str) -> Result<Bytes, TiltError> {
        let url = format!("{}{UIRESOURCES_PATH}", base_url.trim_end_matches('/'));
        let invalid = |reason: String| TiltError::InvalidUrl {
            url: url.clone(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|err: hyper::http::uri::InvalidUri| invalid(err.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// is supported".to_string()));
        }
        let request = Request::get(uri)
            .header(TOKEN_HEADER, token)
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|err| invalid(err.to_string()))?;

        let answered = self
            .outbound
            .send(request, self.request_timeout, self.max_body)
            .await;
        // The status decides first, even when the body then failed to arrive whole.
        let status = match &answered {
            Ok(answer) => Some(answer.status),
            Err(err) => err.head().map(|head| head.status),
        };
        if let Some(status) = status {
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(TiltError::Unauthorized {
                    url,
                    status: status.as_u16(),
                });
            }
            if !status.is_success() {
                return Err(TiltError::Status {
                    url,
                    status: status.as_u16(),
                });
            }
        }
        match answered {
            Ok(answer) => Ok(answer.body),
            Err(OutboundError::Connect { reason }) => Err(TiltError::Connect { url, reason }),
            Err(OutboundError::Request { reason, .. }) => Err(TiltError::Request { url, reason }),
            Err(OutboundError::Timeout { .. }) => Err(TiltError::Timeout {
                url,
                timeout: self.request_timeout,
            }),
            Err(OutboundError::TooLarge { .. }) => Err(TiltError::TooLarge {
                url,
                limit: self.max_body,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tilt::{FakeResource, StandInTilt, uiresource_list};
    use proptest::prelude::*;

    /// What `tilt get uiresources -o json` prints for a small web app: the Tiltfile, two
    /// Kubernetes resources with port-forward links, a local server, a one-shot local command.
    const WEB_APP: &str = r#"{
      "kind": "UIResourceList",
      "apiVersion": "tilt.dev/v1alpha1",
      "metadata": {},
      "items": [
        {
          "kind": "UIResource",
          "apiVersion": "tilt.dev/v1alpha1",
          "metadata": {"name": "(Tiltfile)", "uid": "5c1d", "creationTimestamp": "2024-05-01T10:00:00Z"},
          "spec": {},
          "status": {
            "lastDeployTime": "2024-05-01T10:00:03.120000Z",
            "buildHistory": [{"startTime": "2024-05-01T10:00:00.100000Z", "finishTime": "2024-05-01T10:00:03.100000Z", "spanID": "tiltfile:1"}],
            "runtimeStatus": "not_applicable",
            "updateStatus": "ok",
            "order": 1,
            "disableStatus": {"enabledCount": 0, "disabledCount": 0, "state": "", "sources": null},
            "conditions": [{"type": "UpToDate", "status": "True", "lastTransitionTime": "2024-05-01T10:00:03Z"}]
          }
        },
        {
          "kind": "UIResource",
          "apiVersion": "tilt.dev/v1alpha1",
          "metadata": {"name": "frontend", "labels": {"team": "web"}},
          "spec": {},
          "status": {
            "lastDeployTime": "2024-05-01T10:01:10.000000Z",
            "triggerMode": 0,
            "endpointLinks": [
              {"url": "http://localhost:3000/"},
              {"url": "http://localhost:3001/storybook", "name": "storybook"}
            ],
            "k8sResourceInfo": {"podName": "frontend-7d9f-abcde", "podStatus": "Running", "allContainersReady": true, "podRestarts": 0, "displayNames": ["frontend:deployment"]},
            "runtimeStatus": "ok",
            "updateStatus": "ok",
            "specs": [{"id": "image:frontend", "type": "image"}, {"id": "k8s:frontend", "type": "k8s", "hasLiveUpdate": true}],
            "order": 2,
            "disableStatus": {"enabledCount": 1, "disabledCount": 0, "state": "Enabled", "sources": [{"configMap": {"name": "frontend-disable", "key": "isDisabled"}}]}
          }
        },
        {
          "kind": "UIResource",
          "apiVersion": "tilt.dev/v1alpha1",
          "metadata": {"name": "api_server"},
          "spec": {},
          "status": {
            "endpointLinks": [
              {"url": "http://0.0.0.0:8080/"},
              {"url": "http://localhost:3000/", "name": "same port as frontend"},
              {"url": "https://docs.example.com/api", "name": "docs"}
            ],
            "runtimeStatus": "ok",
            "updateStatus": "ok",
            "order": 3
          }
        },
        {
          "kind": "UIResource",
          "apiVersion": "tilt.dev/v1alpha1",
          "metadata": {"name": "Frontend"},
          "spec": {},
          "status": {
            "endpointLinks": [{"url": "http://127.0.0.1:9229"}],
            "localResourceInfo": {"pid": 4242},
            "runtimeStatus": "ok",
            "updateStatus": "ok",
            "order": 4
          }
        },
        {
          "kind": "UIResource",
          "apiVersion": "tilt.dev/v1alpha1",
          "metadata": {"name": "migrate-db"},
          "spec": {},
          "status": {
            "buildHistory": [{"error": "exit status 1", "startTime": "2024-05-01T10:00:05Z", "finishTime": "2024-05-01T10:00:06Z"}],
            "runtimeStatus": "not_applicable",
            "updateStatus": "error",
            "order": 5
          }
        }
      ]
    }"#;

    fn port(name: &str, port: u16) -> Port {
        Port {
            name: name.to_string(),
            port,
        }
    }

    fn is_valid_port_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_PORT_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--")
            && name.bytes().any(|b| b.is_ascii_lowercase())
    }

    #[test]
    fn realistic_list_gives_sorted_unique_ports_named_after_resources() {
        let discovered = ports_from_uiresources(WEB_APP.as_bytes()).unwrap();
        assert_eq!(
            discovered.ports,
            vec![
                port("frontend", 3000),
                port("frontend-2", 3001),
                port("api-server", 8080),
                // "Frontend" sanitises to a name already taken.
                port("frontend-3", 9229),
            ]
        );
        assert!(!discovered.pending, "every resource has settled");
    }

    #[test]
    fn pending_follows_runtime_status() {
        for (runtime, pending) in [
            ("", true),
            ("pending", true),
            ("unknown", true),
            ("ok", false),
            ("error", false),
            ("not_applicable", false),
            ("none", false),
        ] {
            let body = uiresource_list(&[
                FakeResource::new("web", "ok", &["http://localhost:8000"]),
                FakeResource::new("worker", runtime, &[]),
            ]);
            let discovered = ports_from_uiresources(body.as_bytes()).unwrap();
            assert_eq!(discovered.pending, pending, "runtimeStatus {runtime:?}");
            // Ports already known are reported even while others are pending.
            assert_eq!(discovered.ports, vec![port("web", 8000)]);
        }
    }

    #[test]
    fn a_loading_tiltfile_is_pending_and_an_empty_list_too() {
        let loading = r#"{"items":[{"metadata":{"name":"(Tiltfile)"},
            "status":{"runtimeStatus":"not_applicable","updateStatus":"in_progress"}}]}"#;
        assert!(ports_from_uiresources(loading.as_bytes()).unwrap().pending);
        for empty in [r#"{"items":[]}"#, r#"{"items":null}"#, "{}"] {
            let discovered = ports_from_uiresources(empty.as_bytes()).unwrap();
            assert!(discovered.pending, "{empty}");
            assert!(discovered.ports.is_empty());
        }
        let loaded = uiresource_list(&[]);
        assert!(!ports_from_uiresources(loaded.as_bytes()).unwrap().pending);
    }

    #[test]
    fn tilts_own_port_and_name_are_reserved() {
        let body = uiresource_list(&[
            FakeResource::new(
                "tilt",
                "ok",
                &["http://localhost:10350/", "http://localhost:4000"],
            ),
            FakeResource::new("TILT", "ok", &["http://localhost:4001"]),
        ]);
        let discovered = ports_from_uiresources(body.as_bytes()).unwrap();
        assert_eq!(
            discovered.ports,
            vec![port("tilt-2", 4000), port("tilt-3", 4001)]
        );
    }

    #[test]
    fn only_explicit_numeric_ports_on_this_runner_count() {
        let links = [
            "http://localhost:1001",
            "HTTP://LocalHost:1002/path?q=1",
            "http://0.0.0.0:1003#top",
            "http://127.0.0.1:1004/",
            "https://localhost:2001/",
            "http://example.com:2002/",
            "http://10.0.0.7:2003/",
            "http://[::1]:2004/",
            "http://user@localhost:2005/",
            "http://localhost/",
            "http://localhost:/",
            "http://localhost:http/",
            "http://localhost:0/",
            "http://localhost:65536/",
            "http://localhost:-80/",
            "http://localhost:+80/",
            "ftp://localhost:2006/",
            "localhost:2007",
            "",
        ];
        let body = uiresource_list(&[FakeResource::new("web", "ok", &links)]);
        let found: Vec<u16> = ports_from_uiresources(body.as_bytes())
            .unwrap()
            .ports
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(found, vec![1001, 1002, 1003, 1004]);
    }

    #[test]
    fn resource_names_become_valid_port_names() {
        let cases = [
            ("web", "web"),
            ("API_Server", "api-server"),
            ("my.very-long.resource-name", "my-very-long-re"),
            ("--weird__name--", "weird-name"),
            ("ünïcode", "n-code"),
            ("12345", "port-7000"),
            ("", "port-7000"),
            ("(Tiltfile)", "tiltfile"),
            ("abcdefghijklmn-opq", "abcdefghijklmn"),
        ];
        for (resource, expected) in cases {
            let name = sanitize_port_name(resource, 7000);
            assert_eq!(name, expected, "from {resource:?}");
            assert!(is_valid_port_name(&name), "{name:?}");
        }
    }

    #[test]
    fn repeated_names_get_numbered_within_the_length_limit() {
        let mut used = BTreeSet::new();
        let names: Vec<String> = (0..12)
            .map(|_| unique_name("abcdefghijklmno", &mut used))
            .collect();
        assert_eq!(names[0], "abcdefghijklmno");
        assert_eq!(names[1], "abcdefghijklm-2");
        assert_eq!(names[10], "abcdefghijkl-11");
        assert!(names.iter().all(|n| is_valid_port_name(n)), "{names:?}");
        // Letters only at the end of a long name: the numbered form falls back to "port".
        let mut used = BTreeSet::new();
        let first = unique_name("12345678901234a", &mut used);
        let second = unique_name("12345678901234a", &mut used);
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("12345678901234a", "port-2")
        );
    }

    #[test]
    fn malformed_lists_are_errors_that_say_where() {
        let wrong_type =
            r#"{"items":[{"metadata":{"name":"web"},"status":{"endpointLinks":[{"url":5}]}}]}"#;
        match ports_from_uiresources(wrong_type.as_bytes()) {
            Err(TiltError::Parse { path, reason }) => {
                assert_eq!(path, "items[0].status.endpointLinks[0].url");
                assert!(reason.contains("invalid type"), "{reason}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        for body in [
            "",
            "not json",
            "[]",
            r#"{"items":{}}"#,
            r#"{"items":[]} trailing"#,
        ] {
            let err = ports_from_uiresources(body.as_bytes()).unwrap_err();
            assert!(matches!(err, TiltError::Parse { .. }), "{body:?}: {err}");
            assert!(
                err.to_string()
                    .starts_with("Tilt's UIResource list is invalid")
            );
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-zA-Z:/.0-9_()-]{0,24}".prop_map(serde_json::Value::from),
        ];
        let keys = prop_oneof![
            Just("items".to_string()),
            Just("metadata".to_string()),
            Just("name".to_string()),
            Just("status".to_string()),
            Just("endpointLinks".to_string()),
            Just("url".to_string()),
            Just("runtimeStatus".to_string()),
            Just("updateStatus".to_string()),
            "[a-z]{1,6}",
        ];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn link() -> impl Strategy<Value = String> {
        let host = prop::sample::select(vec!["localhost", "0.0.0.0", "127.0.0.1", "example.com"]);
        let port = prop_oneof![
            (1u32..70000).prop_map(|p| p.to_string()),
            Just("10350".to_string()),
            "[a-z0-9]{0,3}",
        ];
        (host, port, "(/[a-z]{0,4})?").prop_map(|(h, p, path)| format!("http://{h}:{p}{path}"))
    }

    fn resource() -> impl Strategy<Value = FakeResource> {
        (
            "[a-zA-Z0-9_.() -]{0,24}",
            prop::sample::select(vec![
                "",
                "ok",
                "pending",
                "error",
                "not_applicable",
                "unknown",
                "none",
            ])
            .prop_map(str::to_string),
            prop::collection::vec(link(), 0..4),
        )
            .prop_map(|(name, runtime_status, endpoint_links)| FakeResource {
                name,
                runtime_status,
                endpoint_links,
            })
    }

    proptest! {
        #[test]
        fn any_bytes_give_a_result_not_a_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = ports_from_uiresources(&body);
        }

        #[test]
        fn any_json_gives_a_result_not_a_panic(value in arbitrary_json()) {
            let _ = ports_from_uiresources(value.to_string().as_bytes());
            let wrapped = serde_json::json!({"items": [value]});
            let _ = ports_from_uiresources(wrapped.to_string().as_bytes());
        }

        #[test]
        fn discovered_ports_keep_upstreams_rules(resources in prop::collection::vec(resource(), 0..8)) {
            let body = uiresource_list(&resources);
            let discovered = ports_from_uiresources(body.as_bytes()).unwrap();
            let ports = &discovered.ports;
            prop_assert!(ports.windows(2).all(|w| w[0].port < w[1].port), "sorted, unique: {ports:?}");
            let names: BTreeSet<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            prop_assert_eq!(names.len(), ports.len(), "unique names: {:?}", ports);
            prop_assert!(!names.contains(TILT_PORT_NAME));
            for p in ports {
                prop_assert!(p.port != TILT_PORT && p.port != 0);
                prop_assert!(is_valid_port_name(&p.name), "{:?}", p.name);
            }
            // Exactly the distinct local numeric ports of the links, minus Tilt's.
            let expected: BTreeSet<u16> = resources
                .iter()
                .flat_map(|r| r.endpoint_links.iter())
                .filter(|l| !l.contains("example.com"))
                .filter_map(|l| l.rsplit_once(':')?.1.split('/').next()?.parse::<u16>().ok())
                .filter(|&p| p != 0 && p != TILT_PORT)
                .collect();
            let found: BTreeSet<u16> = ports.iter().map(|p| p.port).collect();
            prop_assert_eq!(found, expected);
            let pending = resources
                .iter()
                .any(|r| matches!(r.runtime_status.as_str(), "" | "pending" | "unknown"));
            prop_assert_eq!(discovered.pending, pending);
        }
    }

    const TOKEN: &str = "s3cret-token";

    #[tokio::test]
    async fn client_reads_ports_from_tilt_with_the_token() {
        let tilt = StandInTilt::start(
            TOKEN,
            uiresource_list(&[FakeResource::new(
                "web",
                "pending",
                &["http://localhost:8000/"],
            )]),
        )
        .await
        .unwrap();
        let client = TiltClient::new();
        let first = client
            .discover_ports(&tilt.base_url(), TOKEN)
            .await
            .unwrap();
        assert_eq!(
            first,
            DiscoveredPorts {
                ports: vec![port("web", 8000)],
                pending: true
            }
        );

        // The running Tilt's list changes; the next poll sees it (a trailing slash is fine).
        tilt.set_uiresources(uiresource_list(&[
            FakeResource::new("web", "ok", &["http://localhost:8000/"]),
            FakeResource::new("db-admin", "ok", &["http://0.0.0.0:5050/"]),
        ]));
        let second = client
            .discover_ports(&format!("{}/", tilt.base_url()), TOKEN)
            .await
            .unwrap();
        assert_eq!(
            second,
            DiscoveredPorts {
                ports: vec![port("db-admin", 5050), port("web", 8000)],
                pending: false
            }
        );
        assert_eq!((tilt.requests(), tilt.refused()), (2, 0));
    }

    #[tokio::test]
    async fn client_without_the_right_token_is_refused() {
        let tilt = StandInTilt::start(TOKEN, uiresource_list(&[]))
            .await
            .unwrap();
        let err = TiltClient::new()
            .discover_ports(&tilt.base_url(), "guess")
            .await
            .unwrap_err();
        assert!(
            matches!(err, TiltError::Unauthorized { status: 401, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("refused the token"), "{err}");
        assert_eq!(tilt.refused(), 1);
    }

    #[tokio::test]
    async fn client_errors_say_what_failed() {
        let client = TiltClient::new();

        // Nobody listens on a port that was just released.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = client.discover_ports(&closed, TOKEN).await.unwrap_err();
        assert!(matches!(err, TiltError::Connect { .. }), "{err}");
        assert!(err.to_string().contains(UIRESOURCES_PATH), "{err}");

        let tilt = StandInTilt::start(TOKEN, "{\"items\": [").await.unwrap();
        let err = client
            .discover_ports(&tilt.base_url(), TOKEN)
            .await
            .unwrap_err();
        assert!(matches!(err, TiltError::Parse { .. }), "{err}");

        let err = client
            .discover_ports(&format!("{}/elsewhere", tilt.base_url()), TOKEN)
            .await
            .unwrap_err();
        assert!(
            matches!(err, TiltError::Status { status: 404, .. }),
            "{err}"
        );

        for bad in [
            "https://tilt.example:10350",
            "not a url",
            "http://bad host:1",
        ] {
            let err = client.discover_ports(bad, TOKEN).await.unwrap_err();
            assert!(matches!(err, TiltError::InvalidUrl { .. }), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn oversized_answers_are_refused() {
        let resources: Vec<FakeResource> = (0..200)
            .map(|i| FakeResource::new(&format!("resource-{i}"), "ok", &["http://localhost:3000/"]))
            .collect();
        let tilt = StandInTilt::start(TOKEN, uiresource_list(&resources))
            .await
            .unwrap();
        let small = TiltClient::with_limits(Duration::from_secs(2), Duration::from_secs(5), 1024);
        let err = small
            .discover_ports(&tilt.base_url(), TOKEN)
            .await
            .unwrap_err();
        assert!(
            matches!(err, TiltError::TooLarge { limit: 1024, .. }),
            "{err}"
        );
        // The default cap takes it.
        assert!(
            TiltClient::new()
                .discover_ports(&tilt.base_url(), TOKEN)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_tilt_that_never_answers_times_out() {
        // Accepts connections and reads nothing: a hung runner.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let client = TiltClient::with_limits(
            Duration::from_secs(2),
            Duration::from_millis(300),
            TiltClient::MAX_BODY_BYTES,
        );
        let started = std::time::Instant::now();
        let err = client.discover_ports(&url, TOKEN).await.unwrap_err();
        assert!(matches!(err, TiltError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        hold.abort();
    }
}
