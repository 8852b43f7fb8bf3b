//! The config file team leads edit: one YAML file, camelCase keys, unknown keys rejected.
//!
//! Loaded with [`Config::load`] (the binaries take its path from `--config` or `EPH_CONFIG`).
//! Every error names the file, the line and column when known, and the field path, e.g.
//! `deploy/base/ephemerator.yaml:7:3: expiration.defaultTTL: invalid duration "15 mins"`.
//! `deploy/base/ephemerator.yaml` in the repo is a commented example of every section.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::LazyLock;

use jiff::SignedDuration;
use regex::Regex;
use serde::Deserialize;
use serde_saphyr::{Location, MessageFormatter, Spanned};
use url::Url;

use crate::access::{Access, AccessPolicy};
pub use crate::allowlist::{Allowlist, RepoEntry};
use crate::duration::parse_duration;
use crate::env::EnvSpec;
use crate::errors::ValidationErrors;
use crate::status::Port;
use crate::validate::{validate_branch, validate_path, validate_repo_url, validate_spec};

/// Default image of the runner's `tilt-upper` container.
pub const DEFAULT_TILT_UPPER_IMAGE: &str = "ghcr.io/tilt-dev/ephemerator-tilt-upper:latest";
/// Default image of the runner's `dind` container.
pub const DEFAULT_DIND_IMAGE: &str = "docker:dind";
/// Default service account of the runner pod (its token is never mounted).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "ephrunner-service-account";
/// Tilt's web port in the runner.
pub const DEFAULT_TILT_PORT: u16 = 10350;

/// The whole configuration, with defaults filled in and every value checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Host of the dashboard; env ports are at `PORT---ENV.<gatewayHost>`. Required.
    pub gateway_host: String,
    /// Which repos (and branches, paths) envs may run.
    pub allowlist: Allowlist,
    /// Env lifetimes.
    pub expiration: ExpirationPolicy,
    /// Most envs one user may own at once (default 1, as upstream).
    pub max_envs_per_user: u32,
    /// Identities allowed to manage any env.
    pub admins: Vec<String>,
    /// The runner pod.
    pub runner: RunnerConfig,
    /// Optional Ingress per env (disabled by default).
    pub ingress: IngressConfig,
    /// Optional notifications.
    pub notifications: NotificationsConfig,
    /// Who may open envs: the default level and the most open one (see [`crate::access`]).
    pub access: AccessPolicy,
    /// How long an env may go unused before its runner is scaled to zero (`None`, the
    /// default: envs never sleep). See [`crate::activity`].
    pub sleep_after: Option<SignedDuration>,
}

/// Env lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpirationPolicy {
    /// Lifetime of a new env (default 15m, as upstream).
    pub default_ttl: SignedDuration,
    /// How much "extend" adds (default 15m).
    pub extend_by: SignedDuration,
    /// Longest an env may live from its creation, extensions included (default 8h).
    pub max_lifetime: SignedDuration,
    /// How long before expiry users are warned (default 5m).
    pub warn_before: SignedDuration,
}

impl Default for ExpirationPolicy {
    fn default() -> Self {
        ExpirationPolicy {
            default_ttl: SignedDuration::from_mins(15),
            extend_by: SignedDuration::from_mins(15),
            max_lifetime: SignedDuration::from_hours(8),
            warn_before: SignedDuration::from_mins(5),
        }
    }
}

// The lifecycle rules built on this policy are in `crate::lifecycle`.

/// The runner pod: images, service account, resources, extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Image of the `tilt-upper` container (default [`DEFAULT_TILT_UPPER_IMAGE`]).
    pub tilt_upper_image: String,
    /// Image of the privileged `dind` container (default [`DEFAULT_DIND_IMAGE`]).
    pub dind_image: String,
    /// Service account of the pod (default [`DEFAULT_SERVICE_ACCOUNT`]).
    pub service_account_name: String,
    /// Resources of the `tilt-upper` container (default: none set).
    pub tilt_upper_resources: ContainerResources,
    /// Resources of the `dind` container (default: none set).
    pub dind_resources: ContainerResources,
    /// Extra environment variables of the `tilt-upper` container.
    pub env: Vec<EnvVar>,
    /// Tilt's web port (default [`DEFAULT_TILT_PORT`]).
    pub tilt_port: u16,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            tilt_upper_image: DEFAULT_TILT_UPPER_IMAGE.to_string(),
            dind_image: DEFAULT_DIND_IMAGE.to_string(),
            service_account_name: DEFAULT_SERVICE_ACCOUNT.to_string(),
            tilt_upper_resources: ContainerResources::default(),
            dind_resources: ContainerResources::default(),
            env: Vec::new(),
            tilt_port: DEFAULT_TILT_PORT,
        }
    }
}

/// Requests and limits of one container, as Kubernetes quantity strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerResources {
    /// Requests.
    pub requests: ResourceAmounts,
    /// Limits.
    pub limits: ResourceAmounts,
}

/// CPU and memory quantities, e.g. `500m` and `1Gi`; `None` leaves it unset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAmounts {
    /// CPU quantity.
    pub cpu: Option<String>,
    /// Memory quantity.
    pub memory: Option<String>,
}

/// An extra environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Name (`[A-Za-z_][A-Za-z0-9_]*`, not starting with `TILT_UPPER_`, which the spec sets).
    pub name: String,
    /// Value.
    pub value: String,
}

/// The controller's Ingress mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngressConfig {
    /// Create an Ingress per env (default false).
    pub enabled: bool,
    /// `spec.ingressClassName`.
    pub class_name: Option<String>,
    /// Annotations for each Ingress (e.g. oauth2-proxy auth annotations).
    pub annotations: BTreeMap<String, String>,
}

/// Notifications.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotificationsConfig {
    /// Slack-compatible incoming webhook. Its path is a credential: prefer giving it to the
    /// servers from a Secret (see the README); the config file's ConfigMap is not secret.
    pub webhook_url: Option<SecretUrl>,
}

/// A URL that is a secret (an incoming webhook's path is its credential). Compared and cloned
/// like a URL, but never shown: `Debug` and [`SecretUrl::shown`] give scheme and host only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    /// Parses an http(s) URL with a host; the error never repeats the URL.
    pub fn parse(text: &str) -> Result<SecretUrl, &'static str> {
        match Url::parse(text.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Ok(SecretUrl(url))
            }
            _ => Err("must be an http(s) URL"),
        }
    }

    /// Wraps a URL.
    pub fn new(url: Url) -> SecretUrl {
        SecretUrl(url)
    }

    /// The whole URL, secret included: only for making the request.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// What may be shown in logs and errors: `scheme://host`.
    pub fn shown(&self) -> String {
        format!("{}://{}", self.0.scheme(), self.0.host_str().unwrap_or("?"))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({}/…)", self.shown())
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file (or the source name given to [`Config::from_yaml_str`]).
    pub source_name: String,
    /// 1-based line and column, when known.
    pub position: Option<(u64, u64)>,
    /// Field path like `expiration.defaultTTL` or `allowlist.repos[0].url`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source_name)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config file: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML, has unknown keys or wrong types, or fails the semantic
    /// checks. Holds every problem found (at least one); displays one per line.
    #[error("{}", display_problems(.0))]
    Invalid(Vec<ConfigProblem>),
}

impl ConfigError {
    /// The individual problems (empty for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(problems) => problems,
        }
    }
}

fn display_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_yaml_str(&text, &path.display().to_string())
    }

    /// Parses and checks config text; `source_name` (usually the file path) prefixes errors.
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let raw = parse_raw(text, source_name)?;
        let mut checker = Checker {
            source_name,
            problems: Vec::new(),
        };
        let config = checker.config(raw);
        if checker.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(checker.problems))
        }
    }

    /// The allow-list entry for `url` (exact match), if any.
    pub fn repo_entry(&self, url: &str) -> Option<&RepoEntry> {
        self.allowlist.entry(url)
    }

    /// Every allowed repo URL, for the dashboard's drop-down.
    pub fn allowed_repo_urls(&self) -> Vec<&str> {
        self.allowlist
            .entries()
            .iter()
            .map(|e| e.url.as_str())
            .collect()
    }

    /// Static ports configured for `url` (empty: ports come from Tilt).
    pub fn static_ports(&self, url: &str) -> &[Port] {
        self.repo_entry(url).map_or(&[], |e| e.ports.as_slice())
    }

    /// A digest of every setting: what changes when the config does. Computed from the
    /// `Debug` form, which shows every field (so no field can be forgotten), and never shown.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        format!("{self:?}").hash(&mut hasher);
        hasher.finish()
    }

    /// Whether `identity` is an admin (exact match).
    pub fn is_admin(&self, identity: &str) -> bool {
        self.admins.iter().any(|admin| admin == identity)
    }

    /// Validates a spec against this config's allow-list; see [`validate_spec`].
    pub fn validate_spec(&self, spec: &EnvSpec) -> Result<(), ValidationErrors> {
        validate_spec(spec, &self.allowlist)
    }
}

// ----- The file as written. Spanned values keep their position for the semantic checks. -----

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    gateway_host: Option<S<String>>,
    #[serde(default)]
    allowlist: RawAllowlist,
    #[serde(default)]
    expiration: RawExpiration,
    max_envs_per_user: Option<S<u32>>,
    #[serde(default)]
    admins: Vec<S<String>>,
    #[serde(default)]
    runner: RawRunner,
    #[serde(default)]
    ingress: RawIngress,
    #[serde(default)]
    notifications: RawNotifications,
    #[serde(default)]
    access: RawAccess,
    sleep_after: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAllowlist {
    repo_base: Option<S<String>>,
    #[serde(default)]
    repo_names: Vec<S<String>>,
    #[serde(default)]
    repos: Vec<RawRepoEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRepoEntry {
    url: S<String>,
    #[serde(default)]
    branches: Vec<S<String>>,
    #[serde(default)]
    paths: Vec<S<String>>,
    #[serde(default)]
    ports: Vec<RawPort>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: S<String>,
    // Wider than u16 so an out-of-range port gets a clear message from the checker.
    port: S<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpiration {
    #[serde(rename = "defaultTTL")]
    default_ttl: Option<S<String>>,
    #[serde(rename = "extendBy")]
    extend_by: Option<S<String>>,
    #[serde(rename = "maxLifetime")]
    max_lifetime: Option<S<String>>,
    #[serde(rename = "warnBefore")]
    warn_before: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRunner {
    tilt_upper_image: Option<S<String>>,
    dind_image: Option<S<String>>,
    service_account_name: Option<S<String>>,
    #[serde(default)]
    resources: RawRunnerResources,
    #[serde(default)]
    env: Vec<RawEnvVar>,
    tilt_port: Option<S<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRunnerResources {
    #[serde(default)]
    tilt_upper: RawResources,
    #[serde(default)]
    dind: RawResources,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawResources {
    #[serde(default)]
    requests: RawAmounts,
    #[serde(default)]
    limits: RawAmounts,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAmounts {
    cpu: Option<S<String>>,
    memory: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvVar {
    name: S<String>,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawIngress {
    #[serde(default)]
    enabled: bool,
    class_name: Option<S<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAccess {
    default: Option<S<String>>,
    max: Option<S<String>>,
    max_link_lifetime: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNotifications {
    webhook_url: Option<S<String>>,
}

/// Deserialises the file, tracking the field path so syntax and type errors can name it.
fn parse_raw(text: &str, source_name: &str) -> Result<RawConfig, ConfigError> {
    let mut track = serde_path_to_error::Track::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        let tracked = serde_path_to_error::Deserializer::new(deserializer, &mut track);
        RawConfig::deserialize(tracked)
    });
    result.map_err(|error| {
        let path = track.path().to_string();
        let message = plain_message(
            &serde_saphyr::UserMessageFormatter.format_message(error.without_snippet()),
        );
        let problem = ConfigProblem {
            source_name: source_name.to_string(),
            position: error.location().and_then(known_position),
            field: (path != "." && !path.is_empty()).then(|| tidy_path(&path)),
            message: message.chars().filter(|c| !c.is_control()).collect(),
        };
        ConfigError::Invalid(vec![problem])
    })
}

/// The parser's words for a number that does not fit (`invalid u32`) in a team lead's: which
/// numbers fit.
fn plain_message(message: &str) -> String {
    let range = match message.trim() {
        "invalid u16" => Some(u64::from(u16::MAX)),
        "invalid u32" => Some(u64::from(u32::MAX)),
        "invalid u64" => Some(u64::MAX),
        _ => None,
    };
    match range {
        Some(max) => format!("must be a whole number from 0 to {max}"),
        None => message.to_string(),
    }
}

/// `serde_path_to_error` shows the inner field of [`Spanned`] as `.value`; users never see it.
fn tidy_path(path: &str) -> String {
    path.trim_end_matches(".value").replace(".value.", ".")
}

fn known_position(location: Location) -> Option<(u64, u64)> {
    (location != Location::UNKNOWN && location.line() > 0)
        .then(|| (location.line(), location.column()))
}

static HOST_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
        .expect("static regex")
});
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$").expect("static regex")
});
static ENV_VAR_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("static regex"));
static IMAGE_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9._/:@-]*[A-Za-z0-9_]$").expect("static regex"));

/// Collects semantic problems while turning the raw file into a [`Config`].
struct Checker<'a> {
    source_name: &'a str,
    problems: Vec<ConfigProblem>,
}

impl Checker<'_> {
    fn problem(
        &mut self,
        field: impl Into<String>,
        location: Option<&Location>,
        message: impl Into<String>,
    ) {
        self.problems.push(ConfigProblem {
            source_name: self.source_name.to_string(),
            position: location.copied().and_then(known_position),
            field: Some(field.into()),
            message: message.into(),
        });
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let gateway_host = match raw.gateway_host {
            None => {
                self.problem("gatewayHost", None, "is required");
                String::new()
            }
            Some(host) => {
                if !HOST_NAME.is_match(&host.value) || host.value.len() > 253 {
                    self.problem(
                        "gatewayHost",
                        Some(&host.referenced),
                        format!(
                            "must be a lowercase host name without scheme or port, got {:?}",
                            host.value
                        ),
                    );
                }
                host.value
            }
        };
        let max_envs_per_user = match raw.max_envs_per_user {
            None => 1,
            Some(max) => {
                if max.value == 0 || max.value > crate::names::MAX_ENVS {
                    self.problem(
                        "maxEnvsPerUser",
                        Some(&max.referenced),
                        format!("must be between 1 and {}", crate::names::MAX_ENVS),
                    );
                }
                max.value
            }
        };
        let admins = raw
            .admins
            .into_iter()
            .enumerate()
            .map(|(i, admin)| {
                if let Err(e) = crate::validate::validate_identity(&admin.value) {
                    self.problem(format!("admins[{i}]"), Some(&admin.referenced), e.message);
                }
                admin.value
            })
            .collect();
        Config {
            gateway_host,
            allowlist: self.allowlist(raw.allowlist),
            expiration: self.expiration(raw.expiration),
            max_envs_per_user,
            admins,
            runner: self.runner(raw.runner),
            ingress: self.ingress(raw.ingress),
            notifications: self.notifications(raw.notifications),
            access: self.access(raw.access),
            sleep_after: raw
                .sleep_after
                .map(|raw| self.duration("sleepAfter", Some(raw), SignedDuration::ZERO))
                .filter(|after| after.is_positive()),
        }
    }

    fn allowlist(&mut self, raw: RawAllowlist) -> Allowlist {
        let mut entries = Vec::new();
        let repo_base = raw.repo_base.map(|base| {
            let trimmed = base.value.trim_end_matches('/').to_string();
            if let Err(e) = validate_repo_url(&trimmed) {
                self.problem("allowlist.repoBase", Some(&base.referenced), e);
            }
            (trimmed, base)
        });
        for (i, name) in raw.repo_names.iter().enumerate() {
            let field = format!("allowlist.repoNames[{i}]");
            let Some((base, _)) = &repo_base else {
                self.problem(field, Some(&name.referenced), "needs allowlist.repoBase");
                continue;
            };
            if name.value.is_empty()
                || name.value.contains('/')
                || name.value.chars().any(char::is_control)
            {
                self.problem(field, Some(&name.referenced), "must be one path segment");
                continue;
            }
            entries.push(RepoEntry {
                url: format!("{base}/{}", name.value),
                branches: Vec::new(),
                paths: Vec::new(),
                ports: Vec::new(),
            });
        }
        for (i, repo) in raw.repos.into_iter().enumerate() {
            let field = format!("allowlist.repos[{i}]");
            if let Err(e) = validate_repo_url(&repo.url.value) {
                self.problem(format!("{field}.url"), Some(&repo.url.referenced), e);
            }
            let branches = self.list(&format!("{field}.branches"), repo.branches, validate_branch);
            let paths = self.list(&format!("{field}.paths"), repo.paths, validate_path);
            let mut ports = Vec::new();
            let mut seen = BTreeSet::new();
            for (j, port) in repo.ports.into_iter().enumerate() {
                let port_field = format!("{field}.ports[{j}]");
                let number = self
                    .port(&format!("{port_field}.port"), &port.port)
                    .unwrap_or(0);
                if number != 0 && !seen.insert(number) {
                    self.problem(
                        format!("{port_field}.port"),
                        Some(&port.port.referenced),
                        "is listed twice",
                    );
                }
                if !crate::names::is_valid_env_name(&port.name.value) {
                    self.problem(
                        format!("{port_field}.name"),
                        Some(&port.name.referenced),
                        "must be a lowercase DNS label",
                    );
                }
                ports.push(Port {
                    name: port.name.value,
                    port: number,
                });
            }
            if entries.iter().any(|e: &RepoEntry| e.url == repo.url.value) {
                self.problem(
                    format!("{field}.url"),
                    Some(&repo.url.referenced),
                    "is already allowed (remove it from repoNames or the duplicate entry)",
                );
            }
            entries.push(RepoEntry {
                url: repo.url.value,
                branches,
                paths,
                ports: crate::status::normalize_ports(ports),
            });
        }
        Allowlist::new(entries)
    }

    fn port(&mut self, field: &str, raw: &S<u64>) -> Option<u16> {
        let port = u16::try_from(raw.value).ok().filter(|p| *p != 0);
        if port.is_none() {
            self.problem(
                field,
                Some(&raw.referenced),
                format!("must be a port number 1..=65535, got {}", raw.value),
            );
        }
        port
    }

    fn list(
        &mut self,
        field: &str,
        values: Vec<S<String>>,
        check: fn(&str) -> Result<(), String>,
    ) -> Vec<String> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                if let Err(e) = check(&value.value) {
                    self.problem(format!("{field}[{i}]"), Some(&value.referenced), e);
                }
                value.value
            })
            .collect()
    }

    fn duration(
        &mut self,
        field: &str,
        raw: Option<S<String>>,
        default: SignedDuration,
    ) -> SignedDuration {
        let Some(raw) = raw else { return default };
        match parse_duration(&raw.value) {
            Ok(d) if d.is_positive() => d,
            Ok(_) => {
                self.problem(field, Some(&raw.referenced), "must be positive");
                default
            }
            Err(e) => {
                self.problem(field, Some(&raw.referenced), e);
                default
            }
        }
    }

    fn expiration(&mut self, raw: RawExpiration) -> ExpirationPolicy {
        let defaults = ExpirationPolicy::default();
        let max_lifetime_location = raw.max_lifetime.as_ref().map(|m| m.referenced);
        let policy = ExpirationPolicy {
            default_ttl: self.duration(
                "expiration.defaultTTL",
                raw.default_ttl,
                defaults.default_ttl,
            ),
            extend_by: self.duration("expiration.extendBy", raw.extend_by, defaults.extend_by),
            max_lifetime: self.duration(
                "expiration.maxLifetime",
                raw.max_lifetime,
                defaults.max_lifetime,
            ),
            warn_before: self.duration(
                "expiration.warnBefore",
                raw.warn_before,
                defaults.warn_before,
            ),
        };
        if policy.max_lifetime < policy.default_ttl {
            self.problem(
                "expiration.maxLifetime",
                max_lifetime_location.as_ref(),
                "must be at least expiration.defaultTTL",
            );
        }
        policy
    }

    fn string(
        &mut self,
        field: &str,
        raw: Option<S<String>>,
        default: &str,
        valid: &Regex,
        what: &str,
    ) -> String {
        let Some(raw) = raw else {
            return default.to_string();
        };
        if !valid.is_match(&raw.value) {
            self.problem(
                field,
                Some(&raw.referenced),
                format!("must be {what}, got {:?}", raw.value),
            );
        }
        raw.value
    }

    fn runner(&mut self, raw: RawRunner) -> RunnerConfig {
        let defaults = RunnerConfig::default();
        let tilt_port = raw
            .tilt_port
            .and_then(|port| self.port("runner.tiltPort", &port))
            .unwrap_or(defaults.tilt_port);
        let env = raw
            .env
            .into_iter()
            .enumerate()
            .map(|(i, var)| {
                if !ENV_VAR_NAME.is_match(&var.name.value)
                    || var.name.value.starts_with("TILT_UPPER_")
                {
                    self.problem(
                        format!("runner.env[{i}].name"),
                        Some(&var.name.referenced),
                        "must match [A-Za-z_][A-Za-z0-9_]* and not start with TILT_UPPER_",
                    );
                }
                EnvVar {
                    name: var.name.value,
                    value: var.value,
                }
            })
            .collect();
        RunnerConfig {
            tilt_upper_image: self.string(
                "runner.tiltUpperImage",
                raw.tilt_upper_image,
                DEFAULT_TILT_UPPER_IMAGE,
                &IMAGE_REF,
                "an image reference",
            ),
            dind_image: self.string(
                "runner.dindImage",
                raw.dind_image,
                DEFAULT_DIND_IMAGE,
                &IMAGE_REF,
                "an image reference",
            ),
            service_account_name: self.string(
                "runner.serviceAccountName",
                raw.service_account_name,
                DEFAULT_SERVICE_ACCOUNT,
                &HOST_NAME,
                "a lowercase DNS name",
            ),
            tilt_upper_resources: self
                .resources("runner.resources.tiltUpper", raw.resources.tilt_upper),
            dind_resources: self.resources("runner.resources.dind", raw.resources.dind),
            env,
            tilt_port,
        }
    }

    fn resources(&mut self, field: &str, raw: RawResources) -> ContainerResources {
        ContainerResources {
            requests: self.amounts(&format!("{field}.requests"), raw.requests),
            limits: self.amounts(&format!("{field}.limits"), raw.limits),
        }
    }

    fn amounts(&mut self, field: &str, raw: RawAmounts) -> ResourceAmounts {
        let mut quantity = |name: &str, value: Option<S<String>>| {
            value.map(|v| {
                if !QUANTITY.is_match(&v.value) {
                    self.problem(
                        format!("{field}.{name}"),
                        Some(&v.referenced),
                        format!(
                            "must be a Kubernetes quantity like 500m or 1Gi, got {:?}",
                            v.value
                        ),
                    );
                }
                v.value
            })
        };
        ResourceAmounts {
            cpu: quantity("cpu", raw.cpu),
            memory: quantity("memory", raw.memory),
        }
    }

    fn ingress(&mut self, raw: RawIngress) -> IngressConfig {
        let class_name = raw.class_name.map(|class| {
            if !HOST_NAME.is_match(&class.value) {
                self.problem(
                    "ingress.className",
                    Some(&class.referenced),
                    "must be a lowercase DNS name",
                );
            }
            class.value
        });
        IngressConfig {
            enabled: raw.enabled,
            class_name,
            annotations: raw.annotations,
        }
    }

    fn access(&mut self, raw: RawAccess) -> AccessPolicy {
        let fallback = AccessPolicy::default();
        let mut level = |field: &str, value: Option<S<String>>, otherwise: Access| match value {
            None => (otherwise, None),
            Some(value) => match value.value.parse::<Access>() {
                Ok(level) => (level, Some(value.referenced)),
                Err(problem) => {
                    self.problem(field, Some(&value.referenced), problem);
                    (otherwise, None)
                }
            },
        };
        let (default, default_at) = level("access.default", raw.default, fallback.default);
        let (max, _) = level("access.max", raw.max, fallback.max.max(default));
        // Only a default written above the maximum is a mistake; the built-in default above a
        // lowered maximum is simply capped (`AccessPolicy::effective`).
        if default > max && default_at.is_some() {
            self.problem(
                "access.default",
                default_at.as_ref(),
                format!("{default} is more open than access.max ({max})"),
            );
        }
        let max_link_lifetime = self.duration(
            "access.maxLinkLifetime",
            raw.max_link_lifetime,
            fallback.max_link_lifetime,
        );
        AccessPolicy {
            default,
            max,
            max_link_lifetime,
        }
    }

    fn notifications(&mut self, raw: RawNotifications) -> NotificationsConfig {
        let webhook_url = raw
            .webhook_url
            .and_then(|url| match SecretUrl::parse(&url.value) {
                Ok(parsed) => Some(parsed),
                Err(problem) => {
                    self.problem("notifications.webhookUrl", Some(&url.referenced), problem);
                    None
                }
            });
        NotificationsConfig { webhook_url }
    }
}
