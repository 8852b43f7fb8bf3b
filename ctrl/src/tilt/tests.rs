//! Tilt views as the real Tilt sends them, read into ports; the client against stand-ins that
//! fail in every way a runner's Tilt can.

use super::*;
use crate::testing::tilt::{FakeResource, StandInTilt, TiltRules, view, view_with_log};
use proptest::prelude::*;

/// What Tilt's `/api/view` answers for a small web app (the shape of Tilt 0.34.0's answer):
/// the log first, then the Tiltfile, two Kubernetes resources with port-forward links, a
/// local server, a one-shot local command that failed.
const WEB_APP: &str = r#"{
  "logList": {
    "spans": {"tiltfile:(Tiltfile):1": {"manifestName": "(Tiltfile)"}},
    "segments": [
      {"spanId": "tiltfile:(Tiltfile):1", "time": "2024-05-01T10:00:00.1Z", "text": "Loading Tiltfile at: /src/Tiltfile\n", "level": "INFO"},
      {"time": "2024-05-01T10:00:00.2Z", "text": "{\"uiResources\": [\"a string that looks like the key\"]}\n", "level": "INFO"}
    ],
    "toCheckpoint": 2
  },
  "tiltStartTime": "2024-05-01T10:00:00.000001Z",
  "uiSession": {"metadata": {"name": "Tiltfile"}, "status": {"runningTiltBuild": {"version": "0.34.0"}}},
  "uiResources": [
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
  ],
  "uiButtons": [],
  "isComplete": true
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

fn read(body: &str) -> TiltState {
    read_view(body.as_bytes()).unwrap()
}

#[test]
fn a_realistic_view_gives_sorted_unique_ports_named_after_resources() {
    let state = read(WEB_APP);
    assert_eq!(
        state.ports,
        vec![
            port("frontend", 3000),
            port("frontend-2", 3001),
            port("api-server", 8080),
            // "Frontend" sanitises to a name already taken.
            port("frontend-3", 9229),
        ]
    );
    assert!(!state.pending(), "every resource has settled");
    assert_eq!(state.tiltfile, TiltfileState::Loaded);
    assert_eq!(state.failing.names, vec!["migrate-db".to_string()]);
    assert_eq!(
        state.summary().as_deref(),
        Some("failing in Tilt: migrate-db")
    );
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
        let state = read(&view(&[
            FakeResource::new("web", "ok", &["http://localhost:8000"]),
            FakeResource::new("worker", runtime, &[]),
        ]));
        assert_eq!(state.pending(), pending, "runtimeStatus {runtime:?}");
        // Ports already known are reported even while others are pending.
        assert_eq!(state.ports, vec![port("web", 8000)]);
    }
}

#[test]
fn a_loading_tiltfile_is_pending_and_an_empty_view_too() {
    let loading = r#"{"uiResources":[{"metadata":{"name":"(Tiltfile)"},
        "status":{"runtimeStatus":"not_applicable","updateStatus":"in_progress"}}]}"#;
    assert!(read(loading).pending());
    // Listed before its first load starts (seen on the real Tilt right after `tilt up`).
    for not_yet in [
        r#"{"uiResources":[{"metadata":{"name":"(Tiltfile)"},"status":{}}]}"#,
        r#"{"uiResources":[{"metadata":{"name":"(Tiltfile)"},"status":{"updateStatus":"none"}}]}"#,
        r#"{"uiResources":[{"metadata":{"name":"(Tiltfile)"},"status":{"updateStatus":"pending"}}]}"#,
    ] {
        assert!(read(not_yet).pending(), "{not_yet}");
    }
    assert_eq!(
        read(loading).summary().as_deref(),
        Some("Tilt is loading the Tiltfile")
    );
    for empty in [r#"{"uiResources":[]}"#, r#"{"uiResources":null}"#, "{}"] {
        let state = read(empty);
        assert!(state.pending(), "{empty}");
        assert!(state.ports.is_empty());
    }
    let loaded = view(&[]);
    assert!(!read(&loaded).pending());
    assert_eq!(read(&loaded).summary(), None);
}

#[test]
fn a_tiltfile_that_failed_to_load_says_so() {
    let failed = r#"{"uiResources":[{"metadata":{"name":"(Tiltfile)"},
        "status":{"runtimeStatus":"not_applicable","updateStatus":"error"}}]}"#;
    let state = read(failed);
    assert_eq!(state.tiltfile, TiltfileState::Failed);
    assert!(
        !state.pending(),
        "nothing will appear until someone fixes it"
    );
    assert!(
        state
            .summary()
            .unwrap()
            .contains("could not load the Tiltfile"),
        "{state:?}"
    );
}

#[test]
fn a_resource_publishes_its_links_once_it_has_started() {
    let links = &["http://localhost:9000"];
    for (runtime, published) in [
        ("", false),
        ("pending", false),
        ("unknown", false),
        ("ok", true),
        ("error", true),
        ("not_applicable", true),
    ] {
        let state = read(&view(&[FakeResource::new("api", runtime, links)]));
        assert_eq!(
            !state.ports.is_empty(),
            published,
            "runtimeStatus {runtime:?}"
        );
    }
}

#[test]
fn disabled_resources_publish_nothing_and_are_not_pending() {
    let state = read(&view(&[
        FakeResource::new("web", "ok", &["http://localhost:8000"]),
        FakeResource::new("api", "", &["http://localhost:9000"]).disabled(),
    ]));
    assert_eq!(state.ports, vec![port("web", 8000)]);
    assert!(!state.pending());
}

#[test]
fn starting_resources_are_named_within_a_bound() {
    let resources: Vec<FakeResource> = (0..8)
        .map(|i| FakeResource::new(&format!("svc-{i}"), "pending", &[]))
        .collect();
    let state = read(&view(&resources));
    assert_eq!(state.starting.count, 8);
    assert_eq!(state.starting.names.len(), MAX_NAMED);
    assert_eq!(
        state.summary().as_deref(),
        Some("starting in Tilt: svc-0, svc-1, svc-2, svc-3, svc-4 and 3 more")
    );
}

#[test]
fn tilts_own_port_and_name_are_reserved() {
    let state = read(&view(&[
        FakeResource::new(
            "tilt",
            "ok",
            &["http://localhost:10350/", "http://localhost:4000"],
        ),
        FakeResource::new("TILT", "ok", &["http://localhost:4001"]),
    ]));
    assert_eq!(
        state.ports,
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
    let state = read(&view(&[FakeResource::new("web", "ok", &links)]));
    let found: Vec<u16> = state.ports.iter().map(|p| p.port).collect();
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
fn malformed_views_are_errors_that_say_where() {
    let wrong_type =
        r#"{"uiResources":[{"metadata":{"name":"web"},"status":{"endpointLinks":[{"url":5}]}}]}"#;
    match read_view(wrong_type.as_bytes()) {
        Err(TiltError::Parse { path, reason }) => {
            assert_eq!(path, "uiResources[0].status.endpointLinks[0].url");
            assert!(reason.contains("invalid type"), "{reason}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    for body in [
        "",
        "not json",
        "[]",
        r#"{"uiResources":{}}"#,
        r#"{"uiResources":[]} trailing"#,
        r#"{"logList": {"segments": [{"text": "cut off"#,
    ] {
        let err = read_view(body.as_bytes()).unwrap_err();
        assert!(matches!(err, TiltError::Parse { .. }), "{body:?}: {err}");
        assert!(err.to_string().starts_with("Tilt's view is invalid"));
    }
}

#[test]
fn only_so_many_resources_and_links_are_read() {
    let links: Vec<String> = (0..MAX_LINKS + 10)
        .map(|i| format!("http://localhost:{}", 20000 + i))
        .collect();
    let links: Vec<&str> = links.iter().map(String::as_str).collect();
    let mut resources = vec![FakeResource::new("many", "ok", &links)];
    resources.extend((0..MAX_RESOURCES + 5).map(|i| {
        FakeResource::new(
            &format!("r{i}"),
            "ok",
            &[&format!("http://localhost:{}", 30000 + i)],
        )
    }));
    let state = read(&view(&resources));
    let from_many = state.ports.iter().filter(|p| p.port < 30000).count();
    assert_eq!(from_many, MAX_LINKS);
    // The Tiltfile is the first of the resources read.
    let others = state.ports.iter().filter(|p| p.port >= 30000).count();
    assert_eq!(others, MAX_RESOURCES - 2);
}

#[test]
fn long_names_and_words_are_cut() {
    let name = "x".repeat(10_000);
    let state = read(&view(&[
        FakeResource::new(&name, "pending", &[]),
        FakeResource::new("odd", &"pending".repeat(1000), &["http://localhost:7000"]),
    ]));
    assert_eq!(state.starting.names, vec!["x".repeat(MAX_NAME_CHARS)]);
    // A status word Tilt never sends is no known state: the resource counts as started.
    assert_eq!(state.ports, vec![port("odd", 7000)]);
}

fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-zA-Z:/.0-9_()-]{0,24}".prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("uiResources".to_string()),
        Just("logList".to_string()),
        Just("metadata".to_string()),
        Just("name".to_string()),
        Just("status".to_string()),
        Just("endpointLinks".to_string()),
        Just("url".to_string()),
        Just("runtimeStatus".to_string()),
        Just("updateStatus".to_string()),
        Just("disableStatus".to_string()),
        Just("state".to_string()),
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
        any::<bool>(),
    )
        .prop_map(|(name, runtime_status, endpoint_links, disabled)| {
            let resource = FakeResource {
                name,
                runtime_status,
                endpoint_links,
                disabled: false,
            };
            if disabled {
                resource.disabled()
            } else {
                resource
            }
        })
}

proptest! {
    #[test]
    fn any_bytes_give_a_result_not_a_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_view(&body[..]);
    }

    #[test]
    fn any_json_gives_a_result_not_a_panic(value in arbitrary_json()) {
        let _ = read_view(value.to_string().as_bytes());
        let wrapped = serde_json::json!({"uiResources": [value]});
        let _ = read_view(wrapped.to_string().as_bytes());
    }

    #[test]
    fn discovered_ports_keep_upstreams_rules(resources in prop::collection::vec(resource(), 0..8)) {
        // A resource named like the Tiltfile's would stand for it.
        prop_assume!(resources.iter().all(|r| r.name != "(Tiltfile)"));
        let state = read(&view(&resources));
        let ports = &state.ports;
        prop_assert!(ports.windows(2).all(|w| w[0].port < w[1].port), "sorted, unique: {ports:?}");
        let names: BTreeSet<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        prop_assert_eq!(names.len(), ports.len(), "unique names: {:?}", ports);
        prop_assert!(!names.contains(TILT_PORT_NAME));
        for p in ports {
            prop_assert!(p.port != TILT_PORT && p.port != 0);
            prop_assert!(is_valid_port_name(&p.name), "{:?}", p.name);
        }
        // Exactly the distinct local numeric ports of the links of the enabled resources that
        // have started, minus Tilt's.
        let starting = |r: &FakeResource| matches!(r.runtime_status.as_str(), "" | "pending" | "unknown");
        let expected: BTreeSet<u16> = resources
            .iter()
            .filter(|r| !r.disabled && !starting(r))
            .flat_map(|r| r.endpoint_links.iter())
            .filter(|l| !l.contains("example.com"))
            .filter_map(|l| l.rsplit_once(':')?.1.split('/').next()?.parse::<u16>().ok())
            .filter(|&p| p != 0 && p != TILT_PORT)
            .collect();
        let found: BTreeSet<u16> = ports.iter().map(|p| p.port).collect();
        prop_assert_eq!(found, expected);
        let pending = resources.iter().any(|r| !r.disabled && starting(r));
        prop_assert_eq!(state.pending(), pending);
    }
}

const TOKEN: &str = "s3cret-token";

#[tokio::test]
async fn the_client_reads_ports_from_tilt_with_the_token() {
    let tilt = StandInTilt::start(
        TiltRules::TokenAndOrigin,
        TOKEN,
        view(&[FakeResource::new(
            "web",
            "pending",
            &["http://localhost:8000/"],
        )]),
    )
    .await
    .unwrap();
    let client = TiltClient::new();
    let first = client.ask(&tilt.base_url(), TOKEN).await.unwrap();
    assert_eq!(first.ports, vec![], "web's link waits until it runs");
    assert!(first.pending());

    // The running Tilt's view changes; the next poll sees it (a trailing slash is fine).
    tilt.set_view(view(&[
        FakeResource::new("web", "ok", &["http://localhost:8000/"]),
        FakeResource::new("db-admin", "ok", &["http://0.0.0.0:5050/"]),
    ]));
    let second = client
        .ask(&format!("{}/", tilt.base_url()), TOKEN)
        .await
        .unwrap();
    assert_eq!(
        second.ports,
        vec![port("db-admin", 5050), port("web", 8000)]
    );
    assert!(!second.pending());
    assert_eq!((tilt.requests(), tilt.refused()), (2, 0));
}

#[tokio::test]
async fn a_tilt_that_refuses_says_why() {
    let tilt = StandInTilt::start(TiltRules::TokenAndOrigin, TOKEN, view(&[]))
        .await
        .unwrap();
    let err = TiltClient::new()
        .ask(&tilt.base_url(), "guess")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TiltError::Refused { status: 403, reason, .. } if reason == "invalid session token"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "Tilt at {}/api/view refused ephctrl (HTTP 403: invalid session token)",
            tilt.base_url()
        )
    );
    assert_eq!(tilt.refused(), 1);
    // A Tilt before 0.37.4 takes any token.
    let open = StandInTilt::start(TiltRules::Open, TOKEN, view(&[]))
        .await
        .unwrap();
    assert!(
        TiltClient::new()
            .ask(&open.base_url(), "guess")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn client_errors_say_what_failed() {
    let client = TiltClient::new();

    // Nobody listens on a port that was just released.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client.ask(&closed, TOKEN).await.unwrap_err();
    assert!(matches!(err, TiltError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(VIEW_PATH), "{err}");

    let tilt = StandInTilt::start(TiltRules::Open, TOKEN, "{\"uiResources\": [")
        .await
        .unwrap();
    let err = client.ask(&tilt.base_url(), TOKEN).await.unwrap_err();
    assert!(matches!(err, TiltError::Parse { .. }), "{err}");

    let err = client
        .ask(&format!("{}/elsewhere", tilt.base_url()), TOKEN)
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
        let err = client.ask(bad, TOKEN).await.unwrap_err();
        assert!(matches!(err, TiltError::InvalidUrl { .. }), "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_view_with_megabytes_of_log_is_read_and_a_larger_one_refused() {
    let resources = [FakeResource::new("web", "ok", &["http://localhost:3000/"])];
    // Tilt's own cap on its log, in lines of about 40 characters.
    let body = view_with_log(&resources, 2_000_000);
    let tilt = StandInTilt::start(TiltRules::Open, TOKEN, body.clone())
        .await
        .unwrap();
    let state = TiltClient::new()
        .ask(&tilt.base_url(), TOKEN)
        .await
        .unwrap();
    assert_eq!(state.ports, vec![port("web", 3000)]);

    let small = TiltClient::with_limits(
        Duration::from_secs(2),
        Duration::from_secs(5),
        body.len() / 2,
    );
    let err = small.ask(&tilt.base_url(), TOKEN).await.unwrap_err();
    assert!(matches!(err, TiltError::TooLarge { .. }), "{err}");
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
        TiltClient::MAX_VIEW_BYTES,
    );
    let started = std::time::Instant::now();
    let err = client.ask(&url, TOKEN).await.unwrap_err();
    assert!(matches!(err, TiltError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn a_view_that_stops_halfway_times_out_and_frees_the_parser() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Sends the head and the start of the view, then nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nf\r\n{\"logList\": {\"s\r\n")
                .await;
            held.push(stream);
        }
    });
    let client = TiltClient::with_limits(
        Duration::from_secs(2),
        Duration::from_millis(300),
        TiltClient::MAX_VIEW_BYTES,
    );
    // More hung Tilts than views read at once: each one's parser is freed at its deadline.
    for _ in 0..TiltClient::MAX_READING + 1 {
        let err = tokio::time::timeout(Duration::from_secs(5), client.ask(&url, TOKEN))
            .await
            .expect("the deadline holds")
            .unwrap_err();
        assert!(matches!(err, TiltError::Timeout { .. }), "{err}");
    }
    hold.abort();
}
