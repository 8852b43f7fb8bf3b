//! The config file: defaults, the example file, and errors that point at the problem.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ephemerator_core::Port;
use ephemerator_core::access::{Access, AccessPolicy};
use ephemerator_core::config::{
    Config, ConfigError, DEFAULT_DIND_IMAGE, DEFAULT_SERVICE_ACCOUNT, DEFAULT_TILT_UPPER_IMAGE,
};
use ephemerator_core::duration::parse_duration;
use jiff::{SignedDuration, Timestamp};

fn problems(text: &str) -> Vec<String> {
    match Config::from_yaml_str(text, "test.yaml") {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.problems().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn access_defaults_to_team_and_public_needs_the_maximum_raised() {
    let minimal = Config::from_yaml_str("gatewayHost: preview.localhost\n", "test.yaml").unwrap();
    assert_eq!(
        minimal.access,
        AccessPolicy {
            default: Access::Team,
            max: Access::Team,
            max_link_lifetime: jiff::SignedDuration::from_hours(7 * 24),
        }
    );
    let short = Config::from_yaml_str(
        "gatewayHost: preview.localhost\naccess:\n  maxLinkLifetime: 2h\n",
        "test.yaml",
    )
    .unwrap();
    assert_eq!(
        short.access.max_link_lifetime,
        jiff::SignedDuration::from_hours(2)
    );
    assert_eq!(
        problems("gatewayHost: preview.localhost\naccess:\n  maxLinkLifetime: soon\n")[0]
            .split(": ")
            .nth(1),
        Some("access.maxLinkLifetime")
    );
    let open = Config::from_yaml_str(
        "gatewayHost: preview.localhost\naccess:\n  default: owner\n  max: public\n",
        "test.yaml",
    )
    .unwrap();
    assert_eq!(open.access.default, Access::Owner);
    assert_eq!(open.access.max, Access::Public);
    // A default above the default maximum raises it: `default: public` alone means public.
    let public = Config::from_yaml_str(
        "gatewayHost: preview.localhost\naccess:\n  default: public\n",
        "test.yaml",
    )
    .unwrap();
    assert_eq!(public.access.max, Access::Public);
    assert_eq!(
        problems("gatewayHost: preview.localhost\naccess:\n  default: team\n  max: owner\n"),
        vec!["test.yaml:3:12: access.default: team is more open than access.max (owner)"]
    );
    // A maximum lowered below the built-in default caps it: every env is owner-only.
    let closed = Config::from_yaml_str(
        "gatewayHost: preview.localhost\naccess:\n  max: owner\n",
        "test.yaml",
    )
    .unwrap();
    assert_eq!(closed.access.effective(None), Access::Owner);
    assert_eq!(
        problems("gatewayHost: preview.localhost\naccess:\n  max: everyone\n"),
        vec![
            "test.yaml:3:8: access.max: \"everyone\" is not an access level: use owner, team or public"
        ]
    );
}

#[test]
fn minimal_config_gets_upstream_defaults() {
    let config = Config::from_yaml_str("gatewayHost: preview.localhost\n", "test.yaml").unwrap();
    assert_eq!(config.gateway_host, "preview.localhost");
    assert_eq!(config.expiration.default_ttl, SignedDuration::from_mins(15));
    assert_eq!(config.expiration.extend_by, SignedDuration::from_mins(15));
    assert_eq!(
        config.expiration.max_lifetime,
        SignedDuration::from_hours(8)
    );
    assert_eq!(config.expiration.warn_before, SignedDuration::from_mins(5));
    assert_eq!(config.max_envs_per_user, 1);
    assert!(config.admins.is_empty());
    assert!(config.allowed_repo_urls().is_empty());
    assert_eq!(config.runner.tilt_upper_image, DEFAULT_TILT_UPPER_IMAGE);
    assert_eq!(config.runner.dind_image, DEFAULT_DIND_IMAGE);
    assert_eq!(config.runner.service_account_name, DEFAULT_SERVICE_ACCOUNT);
    assert_eq!(config.runner.tilt_port, 10350);
    assert!(!config.ingress.enabled);
    assert_eq!(config.notifications.webhook_url, None);
}

#[test]
fn the_prod_overlays_config_loads() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/overlays/prod/ephemerator.yaml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.gateway_host, "preview.example.com");
    assert_eq!(config.allowed_repo_urls().len(), 3);
    assert_eq!(
        config.expiration.default_ttl,
        jiff::SignedDuration::from_mins(30)
    );
}

#[test]
fn example_file_loads_with_upstream_allow_list() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/ephemerator.yaml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.gateway_host, "preview.localhost");
    let names = [
        "tilt-example-html",
        "tilt-example-python",
        "tilt-example-csharp",
        "tilt-example-java",
        "tilt-example-go",
        "tilt-example-nodejs",
        "tilt",
    ];
    let expected: Vec<String> = names
        .iter()
        .map(|n| format!("https://github.com/tilt-dev/{n}"))
        .collect();
    assert_eq!(config.allowed_repo_urls(), expected);
    assert_eq!(
        config.runner.dind_resources.limits.memory.as_deref(),
        Some("4Gi")
    );
}

#[test]
fn full_entries_give_lookups_and_static_ports() {
    let config = Config::from_yaml_str(
        r#"
gatewayHost: preview.example.com
allowlist:
  repos:
    - url: https://git.example.com/team/api
      ports: [{name: web, port: 8080}, {name: metrics, port: 9090}, {name: admin, port: 81}]
admins: [lead@example.com]
maxEnvsPerUser: 3
ingress: {enabled: true, className: nginx, annotations: {a: b}}
notifications: {webhookUrl: "https://hooks.example.com/x"}
runner:
  env: [{name: FOO, value: bar}]
"#,
        "test.yaml",
    )
    .unwrap();
    let api = "https://git.example.com/team/api";
    assert_eq!(config.repo_entry(api).map(|e| e.url.as_str()), Some(api));
    assert!(
        config
            .repo_entry("https://git.example.com/team/api.git")
            .is_none()
    );
    let ports: Vec<u16> = config
        .static_ports(api)
        .iter()
        .map(|p: &Port| p.port)
        .collect();
    assert_eq!(ports, [81, 8080, 9090]);
    assert!(config.static_ports("https://other").is_empty());
    assert!(config.is_admin("lead@example.com"));
    assert!(!config.is_admin("Lead@example.com"));
    assert_eq!(config.max_envs_per_user, 3);
    assert_eq!(config.ingress.class_name.as_deref(), Some("nginx"));
    assert_eq!(
        config.notifications.webhook_url.unwrap().expose().as_str(),
        "https://hooks.example.com/x"
    );
    assert_eq!(config.runner.env[0].name, "FOO");
}

#[test]
fn unknown_keys_are_errors_naming_the_key_and_position() {
    let found = problems("gatewayHost: preview.localhost\nexpiration:\n  defaultTtl: 15m\n");
    assert_eq!(found.len(), 1);
    let problem = &found[0];
    assert!(
        problem.starts_with("test.yaml:3:3: expiration"),
        "{problem}"
    );
    assert!(problem.contains("defaultTtl"), "{problem}");

    let found = problems("gatewayHost: preview.localhost\ngatewayhost: x\n");
    assert!(found[0].starts_with("test.yaml:2:1"), "{}", found[0]);
    assert!(found[0].contains("gatewayhost"), "{}", found[0]);
}

#[test]
fn broken_yaml_reports_line_and_column() {
    let error = Config::from_yaml_str(
        "gatewayHost: preview.localhost\nallowlist:\n  repoNames: [a, b\n",
        "bad.yaml",
    )
    .unwrap_err();
    let problem = &error.problems()[0];
    let (line, column) = problem.position.expect("a position");
    assert!(line >= 3, "{problem}");
    assert!(column >= 1, "{problem}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("bad.yaml:{line}:{column}: ")),
        "{error}"
    );
}

#[test]
fn wrong_types_name_the_field() {
    let found = problems("gatewayHost: preview.localhost\nrunner:\n  tiltPort: 70000\n");
    assert!(found[0].starts_with("test.yaml:3:"), "{}", found[0]);
    assert!(found[0].contains("runner.tiltPort"), "{}", found[0]);
    let found = problems("gatewayHost: preview.localhost\nmaxEnvsPerUser: lots\n");
    assert_eq!(
        found,
        ["test.yaml:2:17: maxEnvsPerUser: must be a whole number from 0 to 4294967295"]
    );
}

#[test]
fn invalid_duration_names_field_line_and_column() {
    let found = problems("gatewayHost: preview.localhost\nexpiration:\n  defaultTTL: 15 mins\n");
    assert_eq!(
        found,
        [
            "test.yaml:3:15: expiration.defaultTTL: invalid duration \"15 mins\" (use e.g. 15m, 1h30m, 90s)"
        ]
    );
}

#[test]
fn semantic_errors_name_each_field() {
    let found = problems(
        r#"
gatewayHost: "https://preview.localhost"
allowlist:
  repoBase: ftp://example.com
  repoNames: [a]
  repos:
    - url: https://x.example/r
      branches: ["a..b"]
      paths: ["/etc/Tiltfile"]
      ports: [{name: web, port: 0}]
expiration:
  defaultTTL: 1h
  maxLifetime: 30m
  warnBefore: 0s
maxEnvsPerUser: 0
notifications:
  webhookUrl: "javascript:alert(1)"
runner:
  resources:
    dind:
      limits: {memory: lots}
  env: [{name: TILT_UPPER_REPO, value: x}]
"#,
    );
    let fields = [
        "test.yaml:2:14: gatewayHost:",
        "maxEnvsPerUser:",
        "allowlist.repoBase:",
        "allowlist.repos[0].branches[0]:",
        "allowlist.repos[0].paths[0]:",
        "allowlist.repos[0].ports[0].port:",
        "expiration.warnBefore: must be positive",
        "expiration.maxLifetime: must be at least expiration.defaultTTL",
        "runner.resources.dind.limits.memory:",
        "runner.env[0].name:",
        "notifications.webhookUrl:",
    ];
    for field in fields {
        assert!(
            found.iter().any(|p| p.contains(field)),
            "{field} missing in {found:#?}"
        );
    }
    assert!(
        found.iter().all(|p| p.starts_with("test.yaml:")),
        "{found:#?}"
    );
}

#[test]
fn gateway_host_is_required() {
    assert_eq!(
        problems("allowlist: {}\n"),
        ["test.yaml: gatewayHost: is required"]
    );
}

#[test]
fn duplicate_allow_list_urls_are_rejected() {
    let found = problems(
        "gatewayHost: a.b\nallowlist:\n  repoBase: https://github.com/tilt-dev/\n  repoNames: [tilt]\n  repos:\n    - url: https://github.com/tilt-dev/tilt\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("test.yaml:6:")
            && found[0].contains("allowlist.repos[0].url: is already allowed"),
        "{}",
        found[0]
    );
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let error = Config::load(&path).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(
        error.to_string().starts_with(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn loading_a_written_file_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eph.yaml");
    std::fs::write(&path, "gatewayHost: a.b\nexpiration:\n  extendBy: soon\n").unwrap();
    let error = Config::load(&path).unwrap_err();
    assert!(
        error.to_string().starts_with(&format!(
            "{}:3:13: expiration.extendBy: invalid duration",
            path.display()
        )),
        "{error}"
    );
}

#[test]
fn durations_parse_like_go() {
    assert_eq!(parse_duration("15m"), Ok(SignedDuration::from_mins(15)));
    assert_eq!(parse_duration("1h30m"), Ok(SignedDuration::from_mins(90)));
    assert_eq!(parse_duration("90s"), Ok(SignedDuration::from_secs(90)));
    for bad in [
        "",
        "15",
        "15 mins",
        "m",
        "30m1h",
        "-5m",
        "1.5h",
        "99999999h",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_expiration_section_sets_the_lifecycle() {
    let config =
        Config::from_yaml_str("gatewayHost: a.b\nexpiration: {maxLifetime: 40m}\n", "t").unwrap();
    let policy = config.expiration;
    let created: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let first = policy.initial_expiration(created);
    assert_eq!(first, "2030-01-01T00:15:00Z".parse().unwrap());
    assert_eq!(policy.cap(created), "2030-01-01T00:40:00Z".parse().unwrap());
    assert_eq!(
        policy.warn_at(Some(created), first),
        Some(first - SignedDuration::from_mins(5))
    );
}

#[test]
fn the_webhook_url_is_never_shown() {
    let config = Config::from_yaml_str(
        "gatewayHost: a.b\nnotifications: {webhookUrl: \"https://hooks.example.com/services/T0/B0/SECRET\"}\n",
        "t",
    )
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("https://hooks.example.com"), "{shown}");
}

#[test]
fn flag_durations_use_the_config_notation_and_must_be_positive() {
    use ephemerator_core::duration::parse_flag_duration;
    use std::time::Duration;
    assert_eq!(parse_flag_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_flag_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert!(parse_flag_duration("0s").is_err());
    assert!(parse_flag_duration("soon").is_err());
    // Milliseconds, for flags below a second; never in the config file.
    assert_eq!(parse_flag_duration("500ms"), Ok(Duration::from_millis(500)));
    assert!(parse_flag_duration("0ms").is_err());
    assert!(parse_flag_duration("1.5ms").is_err());
    assert!(parse_flag_duration("1s500ms").is_err());
    assert!(ephemerator_core::duration::parse_duration("500ms").is_err());
}

#[test]
fn envs_sleep_only_when_the_config_says_after_how_long() {
    let never = Config::from_yaml_str("gatewayHost: preview.localhost\n", "test.yaml").unwrap();
    assert_eq!(never.sleep_after, None);
    let half_hour = Config::from_yaml_str(
        "gatewayHost: preview.localhost\nsleepAfter: 30m\n",
        "test.yaml",
    )
    .unwrap();
    assert_eq!(half_hour.sleep_after, Some(SignedDuration::from_mins(30)));
    assert_eq!(
        problems("gatewayHost: preview.localhost\nsleepAfter: later\n")[0]
            .split(": ")
            .nth(1),
        Some("sleepAfter")
    );
    assert_eq!(
        problems("gatewayHost: preview.localhost\nsleepAfter: 0s\n"),
        vec!["test.yaml:2:13: sleepAfter: must be positive"]
    );
}
