//! What the dashboard's actions decide, as pure functions over core's types: whether a user may
//! create, extend or delete an env, change who may open it, make and revoke its share links,
//! wake it or keep it awake, and exactly what to write. The routes only carry the
//! decisions out (see `routes::actions`).

use ephemerator_core::access::{Access, Visitor};
use ephemerator_core::env::{lifetime_patch, record_max_lifetime, set_access as annotate_access};
use ephemerator_core::labels::{
    ACCESS_ANNOTATION, KEEP_AWAKE_ANNOTATION, SHARE_LINKS_ANNOTATION, WAKE_ANNOTATION,
    has_ephemerator_labels,
};
use ephemerator_core::lifecycle::Extension;
use ephemerator_core::names::nth_env_name;
use ephemerator_core::share::{MAX_SHARE_LINKS, ShareLink, check_label, share_links_json};
use ephemerator_core::{Config, Env, EnvSpec, Phase, ValidationErrors, env_config_map};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

/// Why an action is refused; each says what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The repo, branch or path is not allowed (core's messages, one per field).
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// The user owns as many envs as allowed.
    #[error("you have {used} of {max} environments already: delete one first")]
    OverQuota {
        /// Envs the user owns.
        used: usize,
        /// `maxEnvsPerUser`.
        max: usize,
    },
    /// The env belongs to someone else and the user is no admin.
    #[error("{env} belongs to {owner}: only its owner or an admin can change it")]
    NotYours {
        /// The env.
        env: String,
        /// Its owner.
        owner: String,
    },
    /// The env's access level does not admit the user (it is open to its owner only).
    #[error("{env} is open to its owner ({owner}) and admins only: only they can wake it")]
    MayNotOpen {
        /// The env.
        env: String,
        /// Its owner.
        owner: String,
    },
    /// A Wake of an env that is awake.
    #[error("{0} is not asleep")]
    NotAsleep(String),
    /// A Wake of an env woken already, whose runner is starting.
    #[error("{0} is waking up already: its runner is starting")]
    Waking(String),
    /// No env of that name (deleted meanwhile, or never there).
    #[error("there is no environment {0}")]
    NoSuchEnv(String),
    /// A ConfigMap of that name exists and is not an env: never changed.
    #[error("a ConfigMap named {0} exists and is not an environment: it was left untouched")]
    Conflict(String),
    /// The env lives until its cap already.
    #[error("{env} already lives as long as allowed (until {cap})")]
    AtCap {
        /// The env.
        env: String,
        /// Its cap.
        cap: Timestamp,
    },
    /// What was asked is not allowed by the config or by the env (its own words say why).
    #[error("{0}")]
    NotAllowed(String),
    /// The env's ConfigMap cannot be read as an env.
    #[error("{env} cannot be changed: {reason}")]
    Broken {
        /// The env.
        env: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Refusal {
    /// The HTTP status a refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Invalid(_) | Refusal::Broken { .. } | Refusal::NotAllowed(_) => 422,
            Refusal::OverQuota { .. }
            | Refusal::AtCap { .. }
            | Refusal::Conflict(_)
            | Refusal::NotAsleep(_)
            | Refusal::Waking(_) => 409,
            Refusal::NotYours { .. } | Refusal::MayNotOpen { .. } => 403,
            Refusal::NoSuchEnv(_) => 404,
        }
    }
}

/// How many envs `user` owns among `envs`, and may own.
pub fn quota<'a>(
    envs: impl IntoIterator<Item = &'a Env>,
    user: &str,
    config: &Config,
) -> (usize, usize) {
    let owned = envs.into_iter().filter(|env| env.owner == user).count();
    (owned, config.max_envs_per_user as usize)
}

/// Decides a create: the env ConfigMap to create (named by core's rules, the first free
/// `BASE`, `BASE--2`, … among the user's, at the access level asked for or the config's
/// default), or why not. `envs` are the env ConfigMaps known.
pub fn create(
    user: &str,
    spec: &EnvSpec,
    access: Option<Access>,
    config: &Config,
    envs: &[Env],
    now: Timestamp,
) -> Result<ConfigMap, Refusal> {
    config.validate_spec(spec).map_err(Refusal::Invalid)?;
    if let Some(level) = access {
        allowed_level(config, level)?;
    }
    let (used, max) = quota(envs, user, config);
    if used >= max {
        return Err(Refusal::OverQuota { used, max });
    }
    let taken = |name: &str| envs.iter().any(|env| env.name == name);
    let name = (1..=u32::try_from(max).unwrap_or(u32::MAX))
        .filter_map(|n| nth_env_name(user, n).ok())
        .find(|name| !taken(name))
        // Every name of the user is taken by envs someone else owns (hand-made ConfigMaps).
        .ok_or_else(|| Refusal::Conflict(nth_env_name(user, 1).unwrap_or_default()))?;
    let expiration = config.expiration.initial_expiration(now);
    let mut config_map = env_config_map(&name, user, spec, Some(expiration));
    // The cap this env lives under, whatever later configs say (core::config_change).
    record_max_lifetime(&mut config_map, config.expiration.max_lifetime);
    if let Some(level) = access {
        annotate_access(&mut config_map, level);
    }
    Ok(config_map)
}

/// Env `name` of its ConfigMap (as cached or just read), if it is one: a ConfigMap without the
/// env labels is never changed.
fn env_of<'a>(
    name: &str,
    config_map: Option<&'a ConfigMap>,
) -> Result<(&'a ConfigMap, Env), Refusal> {
    let config_map = config_map.ok_or_else(|| Refusal::NoSuchEnv(name.to_string()))?;
    if !has_ephemerator_labels(config_map.metadata.labels.as_ref()) {
        return Err(Refusal::Conflict(name.to_string()));
    }
    let env = Env::from_config_map(config_map).map_err(|error| Refusal::Broken {
        env: name.to_string(),
        reason: error.to_string(),
    })?;
    Ok((config_map, env))
}

/// Checks that `user` may change env `name`, given its ConfigMap (as cached or just read).
pub fn may_change<'a>(
    user: &str,
    config: &Config,
    name: &str,
    config_map: Option<&'a ConfigMap>,
) -> Result<(&'a ConfigMap, Env), Refusal> {
    let (config_map, env) = env_of(name, config_map)?;
    if env.owner != user && !config.is_admin(user) {
        return Err(Refusal::NotYours {
            env: name.to_string(),
            owner: env.owner,
        });
    }
    Ok((config_map, env))
}

/// Decides an extend at `now`: the merge patch (guarded by the resourceVersion read) and the
/// new expiration, or why not.
pub fn extend(
    user: &str,
    config: &Config,
    name: &str,
    config_map: Option<&ConfigMap>,
    now: Timestamp,
) -> Result<(serde_json::Value, Timestamp), Refusal> {
    let (config_map, env) = may_change(user, config, name, config_map)?;
    let created = config_map.metadata.creation_timestamp.as_ref().map(|t| t.0);
    // An env whose expiration ephctrl has not filled in yet lives from its creation.
    let current = env
        .expiration
        .unwrap_or_else(|| config.expiration.initial_expiration(created.unwrap_or(now)));
    match config.expiration.extend(created, current, now) {
        // An extend is a new action: judged by the config in force, whose cap it records.
        Extension::Extended { to, .. } => Ok((
            lifetime_patch(
                &config_map.resource_version().unwrap_or_default(),
                Some(to),
                config.expiration.max_lifetime,
            ),
            to,
        )),
        Extension::AtCap { cap } => Err(Refusal::AtCap {
            env: name.to_string(),
            cap,
        }),
    }
}

/// Checks that `level` may be chosen under the config in force.
pub fn allowed_level(config: &Config, level: Access) -> Result<(), Refusal> {
    if level > config.access.max {
        return Err(Refusal::NotAllowed(format!(
            "{level} is more open than this ephemerator allows (at most {})",
            config.access.max
        )));
    }
    Ok(())
}

/// Decides a change of env `name`'s access level: the merge patch (guarded by the
/// resourceVersion read), or why not.
pub fn set_access(
    user: &str,
    config: &Config,
    name: &str,
    config_map: Option<&ConfigMap>,
    level: Access,
) -> Result<(serde_json::Value, Access), Refusal> {
    let (config_map, _) = may_change(user, config, name, config_map)?;
    allowed_level(config, level)?;
    Ok((
        serde_json::json!({
            "metadata": {
                "resourceVersion": config_map.resource_version().unwrap_or_default(),
                "annotations": { ACCESS_ANNOTATION: level.as_str() },
            },
        }),
        level,
    ))
}

/// What a new share link is to be: how long it lives and its label (the id is random, made by
/// the caller so that this stays pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// Its id.
    pub id: String,
    /// How long it is to live.
    pub lifetime: SignedDuration,
    /// Its label.
    pub label: String,
}

/// Decides a new share link of env `name` at `now`: the patch writing the links (expired ones
/// dropped) and the link, or why not. It lives no longer than `access.maxLinkLifetime` and
/// never past the env's own deadline.
pub fn create_link(
    user: &str,
    config: &Config,
    name: &str,
    config_map: Option<&ConfigMap>,
    new: &NewLink,
    now: Timestamp,
) -> Result<(serde_json::Value, ShareLink), Refusal> {
    let (config_map, env) = may_change(user, config, name, config_map)?;
    let label = new.label.trim().to_string();
    check_label(&label).map_err(|problem| Refusal::NotAllowed(format!("the label: {problem}")))?;
    if !new.lifetime.is_positive() {
        return Err(Refusal::NotAllowed("a link must live a while".into()));
    }
    let lifetime = new.lifetime.min(config.access.max_link_lifetime);
    let mut expires = now + lifetime;
    if let Some(deadline) = env.expiration {
        let created = config_map.metadata.creation_timestamp.as_ref().map(|t| t.0);
        expires = expires.min(config.expiration.deadline(created, deadline));
    }
    if expires <= now {
        return Err(Refusal::NotAllowed(format!("{name} has expired")));
    }
    let mut links: Vec<ShareLink> = env
        .share_links
        .into_iter()
        .filter(|link| link.is_live(now))
        .collect();
    if links.len() >= MAX_SHARE_LINKS {
        return Err(Refusal::NotAllowed(format!(
            "{name} has {MAX_SHARE_LINKS} share links already: revoke one first"
        )));
    }
    let link = ShareLink {
        id: new.id.clone(),
        expires,
        label,
        created_by: user.to_string(),
        created: now,
    };
    links.push(link.clone());
    Ok((links_patch(config_map, &links), link))
}

/// Decides revoking share link `id` of env `name` (every link, with `None`): the patch and the
/// links revoked, or why not.
pub fn revoke_links(
    user: &str,
    config: &Config,
    name: &str,
    config_map: Option<&ConfigMap>,
    id: Option<&str>,
) -> Result<(serde_json::Value, Vec<ShareLink>), Refusal> {
    let (config_map, env) = may_change(user, config, name, config_map)?;
    let (revoked, kept): (Vec<ShareLink>, Vec<ShareLink>) = env
        .share_links
        .into_iter()
        .partition(|link| id.is_none_or(|id| link.id == id));
    if revoked.is_empty() && id.is_some() {
        return Err(Refusal::NotAllowed(
            "that link is not there any more (revoked already?)".into(),
        ));
    }
    Ok((links_patch(config_map, &kept), revoked))
}

fn links_patch(config_map: &ConfigMap, links: &[ShareLink]) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "resourceVersion": config_map.resource_version().unwrap_or_default(),
            "annotations": { SHARE_LINKS_ANNOTATION: share_links_json(links) },
        },
    })
}

/// Whether signed-in `user` (an `admin` or not) may open `env` under `config`: its level in
/// force admits them, as the gateway decides. Whoever may open an env may wake it (a visit
/// would wake it anyway).
pub fn may_open(user: &str, admin: bool, config: &Config, env: &Env) -> bool {
    let visitor = Visitor::Person {
        identity: user,
        admin,
    };
    config
        .access
        .effective(env.access)
        .admits(&env.owner, visitor)
}

/// Whether `env` sleeps (its runner scaled to zero): a Wake is offered and accepted.
pub fn is_asleep(env: &Env) -> bool {
    env.status.phase == Phase::Sleeping
}

/// Whether `env` was woken and its runner is starting again (ephctrl keeps `asleep-since`
/// until the runner is ready).
pub fn is_waking(env: &Env) -> bool {
    env.status.asleep_since.is_some()
        && matches!(env.status.phase, Phase::Pending | Phase::Starting)
}

/// Whether the owner keeps env ConfigMap `config_map` awake: read as ephctrl reads it
/// (`true`, in any case, spaces around ignored).
pub fn is_kept_awake(config_map: &ConfigMap) -> bool {
    ephemerator_core::activity::kept_awake(&config_map.metadata)
}

/// Decides a Wake of env `name` by `user`: the merge patch setting the wake annotation to who
/// asked (guarded by the resourceVersion read, so the phase it is decided on is current), or
/// why not. Only an env asleep is woken: the button is only on those, and a late second
/// click on a waking env is told so rather than writing again.
pub fn wake(
    user: &str,
    config: &Config,
    name: &str,
    config_map: Option<&ConfigMap>,
) -> Result<(serde_json::Value, ()), Refusal> {
    let (config_map, env) = env_of(name, config_map)?;
    if !may_open(user, config.is_admin(user), config, &env) {
        return Err(Refusal::MayNotOpen {
            env: name.to_string(),
            owner: env.owner,
        });
    }
    if is_waking(&env) {
        return Err(Refusal::Waking(name.to_string()));
    }
    if !is_asleep(&env) {
        return Err(Refusal::NotAsleep(name.to_string()));
    }
    Ok((
        serde_json::json!({
            "metadata": {
                "resourceVersion": config_map.resource_version().unwrap_or_default(),
                "annotations": { WAKE_ANNOTATION: user },
            },
        }),
        (),
    ))
}

/// Decides turning keep-awake of env `name` on (`on`) or off: the merge patch setting the
/// annotation to `"true"` or removing it, or why not. Only its owner or an admin decides, and
/// only where envs sleep at all (`sleepAfter` set).
pub fn keep_awake(
    user: &str,
    config: &Config,
    name: &str,
    config_map: Option<&ConfigMap>,
    on: bool,
) -> Result<(serde_json::Value, bool), Refusal> {
    let (config_map, _) = may_change(user, config, name, config_map)?;
    if config.sleep_after.is_none() {
        return Err(Refusal::NotAllowed(
            "envs never sleep on this ephemerator (no sleepAfter): there is nothing to keep them awake from".into(),
        ));
    }
    // `null` removes the annotation in a merge patch.
    let value = if on {
        serde_json::Value::from("true")
    } else {
        serde_json::Value::Null
    };
    Ok((
        serde_json::json!({
            "metadata": {
                "resourceVersion": config_map.resource_version().unwrap_or_default(),
                "annotations": { KEEP_AWAKE_ANNOTATION: value },
            },
        }),
        on,
    ))
}

/// Decides a delete: the uid to guard the delete with, or why not.
pub fn delete(
    user: &str,
    config: &Config,
    name: &str,
    config_map: Option<&ConfigMap>,
) -> Result<String, Refusal> {
    let (config_map, _) = may_change(user, config, name, config_map)?;
    config_map
        .uid()
        .ok_or_else(|| Refusal::NoSuchEnv(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemerator_core::labels::OWNER_ANNOTATION;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const CONFIG: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html]
expiration: {defaultTTL: 15m, extendBy: 15m, maxLifetime: 1h}
maxEnvsPerUser: 2
admins: [root@example.com]
"#;
    const HTML: &str = "https://github.com/tilt-dev/tilt-example-html";

    fn config() -> Config {
        Config::from_yaml_str(CONFIG, "t.yaml").unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn spec(repo: &str, branch: &str) -> EnvSpec {
        EnvSpec {
            repo: repo.into(),
            branch: branch.into(),
            path: "Tiltfile".into(),
        }
    }

    fn stored(name: &str, owner: &str, expiration: &str) -> ConfigMap {
        let mut cm = env_config_map(name, owner, &spec(HTML, "main"), Some(at(expiration)));
        cm.metadata.uid = Some(format!("uid-{name}"));
        cm.metadata.resource_version = Some("7".into());
        cm.metadata.creation_timestamp = Some(Time(at("2030-01-01T10:00:00Z")));
        cm
    }

    fn envs(config_maps: &[ConfigMap]) -> Vec<Env> {
        config_maps
            .iter()
            .map(|cm| Env::from_config_map(cm).unwrap())
            .collect()
    }

    #[test]
    fn create_names_the_env_after_the_user_within_the_quota() {
        let now = at("2030-01-01T10:00:00Z");
        let first = create("nicks", &spec(HTML, "main"), None, &config(), &[], now).unwrap();
        assert_eq!(first.name_any(), "nicks");
        assert_eq!(
            first
                .annotations()
                .get(OWNER_ANNOTATION)
                .map(String::as_str),
            Some("nicks")
        );
        assert_eq!(
            first.data.as_ref().unwrap()["expiration"],
            "2030-01-01T10:15:00Z"
        );
        let known = envs(&[stored("nicks", "nicks", "2030-01-01T10:15:00Z")]);
        let second = create("nicks", &spec(HTML, "main"), None, &config(), &known, now).unwrap();
        assert_eq!(second.name_any(), "nicks--2");
        let known = envs(&[
            stored("nicks", "nicks", "2030-01-01T10:15:00Z"),
            stored("nicks--2", "nicks", "2030-01-01T10:15:00Z"),
        ]);
        assert_eq!(
            create("nicks", &spec(HTML, "main"), None, &config(), &known, now),
            Err(Refusal::OverQuota { used: 2, max: 2 })
        );
    }

    #[test]
    fn create_refuses_what_core_refuses() {
        let refusal = create(
            "nicks",
            &spec("https://evil.example/x", "a..b"),
            None,
            &config(),
            &[],
            at("2030-01-01T10:00:00Z"),
        )
        .unwrap_err();
        let Refusal::Invalid(errors) = &refusal else {
            panic!("{refusal:?}")
        };
        assert!(errors.for_field("repo").is_some(), "{errors}");
        assert!(errors.for_field("branch").is_some(), "{errors}");
        assert_eq!(refusal.status(), 422);
    }

    #[test]
    fn only_owners_and_admins_change_an_env_and_never_a_foreign_config_map() {
        let cm = stored("nicks", "nicks", "2030-01-01T10:15:00Z");
        assert!(delete("nicks", &config(), "nicks", Some(&cm)).is_ok());
        assert!(delete("root@example.com", &config(), "nicks", Some(&cm)).is_ok());
        assert_eq!(
            delete("mallory", &config(), "nicks", Some(&cm)),
            Err(Refusal::NotYours {
                env: "nicks".into(),
                owner: "nicks".into()
            })
        );
        let mut plain = cm.clone();
        plain.metadata.labels = None;
        assert_eq!(
            delete("nicks", &config(), "nicks", Some(&plain)),
            Err(Refusal::Conflict("nicks".into()))
        );
        assert_eq!(
            delete("nicks", &config(), "gone", None),
            Err(Refusal::NoSuchEnv("gone".into()))
        );
    }

    #[test]
    fn extend_follows_the_lifecycle_and_guards_the_write() {
        let cm = stored("nicks", "nicks", "2030-01-01T10:15:00Z");
        let (patch, to) = extend(
            "nicks",
            &config(),
            "nicks",
            Some(&cm),
            at("2030-01-01T10:05:00Z"),
        )
        .unwrap();
        assert_eq!(to, at("2030-01-01T10:30:00Z"));
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(patch["data"]["expiration"], "2030-01-01T10:30:00Z");
        let capped = stored("nicks", "nicks", "2030-01-01T11:00:00Z");
        assert_eq!(
            extend(
                "nicks",
                &config(),
                "nicks",
                Some(&capped),
                at("2030-01-01T10:50:00Z")
            ),
            Err(Refusal::AtCap {
                env: "nicks".into(),
                cap: at("2030-01-01T11:00:00Z")
            })
        );
        assert!(matches!(
            extend(
                "mallory",
                &config(),
                "nicks",
                Some(&cm),
                at("2030-01-01T10:05:00Z")
            ),
            Err(Refusal::NotYours { .. })
        ));
    }

    /// The test config where envs sleep after 30 min and may be made public.
    fn sleepy_config() -> Config {
        let yaml = format!("{CONFIG}sleepAfter: 30m\naccess: {{default: team, max: public}}\n");
        Config::from_yaml_str(&yaml, "t.yaml").unwrap()
    }

    /// Env `nicks` of `nicks` at access `level` (`None`: the default), in `phase`, asleep
    /// since 10:20 when `asleep`.
    fn with_status(level: Option<Access>, phase: Phase, asleep: bool) -> ConfigMap {
        let mut cm = stored("nicks", "nicks", "2030-01-01T10:15:00Z");
        if let Some(level) = level {
            annotate_access(&mut cm, level);
        }
        ephemerator_core::EnvStatus {
            phase,
            asleep_since: asleep.then(|| at("2030-01-01T10:20:00Z")),
            ..ephemerator_core::EnvStatus::default()
        }
        .write_to(&mut cm.metadata);
        cm
    }

    #[test]
    fn whoever_may_open_an_env_may_wake_it_and_only_while_it_sleeps() {
        use Access::*;
        let asleep = |level| with_status(level, Phase::Sleeping, true);
        let cases = [
            // (who, the env, what happens)
            ("nicks", asleep(Some(Owner)), Ok(())),
            ("root@example.com", asleep(Some(Owner)), Ok(())),
            (
                "mallory",
                asleep(Some(Owner)),
                Err(Refusal::MayNotOpen {
                    env: "nicks".into(),
                    owner: "nicks".into(),
                }),
            ),
            ("mallory", asleep(Some(Team)), Ok(())),
            ("mallory", asleep(None), Ok(())),
            ("mallory", asleep(Some(Public)), Ok(())),
            (
                "nicks",
                with_status(None, Phase::Starting, true),
                Err(Refusal::Waking("nicks".into())),
            ),
            (
                "nicks",
                with_status(None, Phase::Ready, false),
                Err(Refusal::NotAsleep("nicks".into())),
            ),
            (
                "nicks",
                with_status(None, Phase::Starting, false),
                Err(Refusal::NotAsleep("nicks".into())),
            ),
        ];
        for (user, cm, expected) in cases {
            let decided = wake(user, &sleepy_config(), "nicks", Some(&cm));
            match (&decided, &expected) {
                (Ok((patch, ())), Ok(())) => {
                    assert_eq!(patch["metadata"]["annotations"][WAKE_ANNOTATION], user);
                    assert_eq!(patch["metadata"]["resourceVersion"], "7");
                    assert!(patch.get("data").is_none(), "never the data: {patch}");
                }
                _ => assert_eq!(
                    decided.map(|_| ()),
                    expected,
                    "{user} waking {:?}",
                    cm.metadata.labels
                ),
            }
        }
        // Wake works where envs never sleep by config too: an env asleep before a reload.
        assert!(wake("nicks", &config(), "nicks", Some(&asleep(None))).is_ok());
        let mut plain = asleep(None);
        plain.metadata.labels = None;
        assert_eq!(
            wake("nicks", &sleepy_config(), "nicks", Some(&plain)),
            Err(Refusal::Conflict("nicks".into()))
        );
        assert_eq!(
            wake("nicks", &sleepy_config(), "gone", None),
            Err(Refusal::NoSuchEnv("gone".into()))
        );
        assert_eq!(
            Refusal::MayNotOpen {
                env: "a".into(),
                owner: "b".into()
            }
            .status(),
            403
        );
        assert_eq!(Refusal::Waking("a".into()).status(), 409);
    }

    #[test]
    fn only_owners_and_admins_keep_an_env_awake_and_only_where_envs_sleep() {
        let cm = with_status(None, Phase::Ready, false);
        let cases = [
            // (who, on, the annotation written or why not)
            ("nicks", true, Ok(serde_json::json!("true"))),
            ("nicks", false, Ok(serde_json::Value::Null)),
            ("root@example.com", true, Ok(serde_json::json!("true"))),
            (
                "mallory",
                true,
                Err(Refusal::NotYours {
                    env: "nicks".into(),
                    owner: "nicks".into(),
                }),
            ),
            (
                "mallory",
                false,
                Err(Refusal::NotYours {
                    env: "nicks".into(),
                    owner: "nicks".into(),
                }),
            ),
        ];
        for (user, on, expected) in cases {
            let decided =
                keep_awake(user, &sleepy_config(), "nicks", Some(&cm), on).map(|(patch, said)| {
                    assert_eq!(said, on);
                    assert_eq!(patch["metadata"]["resourceVersion"], "7");
                    assert!(patch.get("data").is_none(), "never the data: {patch}");
                    patch["metadata"]["annotations"][KEEP_AWAKE_ANNOTATION].clone()
                });
            assert_eq!(decided, expected, "{user} on={on}");
        }
        let never = keep_awake("nicks", &config(), "nicks", Some(&cm), true).unwrap_err();
        assert!(never.to_string().contains("never sleep"), "{never}");
    }

    #[test]
    fn kept_awake_and_waking_read_as_the_controller_reads_them() {
        let with_keep = |value: Option<&str>| {
            let mut cm = with_status(None, Phase::Ready, false);
            if let Some(value) = value {
                cm.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(KEEP_AWAKE_ANNOTATION.into(), value.into());
            }
            cm
        };
        for (value, kept) in [
            (None, false),
            (Some("true"), true),
            (Some(" TRUE "), true),
            (Some("yes"), false),
            (Some(""), false),
        ] {
            assert_eq!(is_kept_awake(&with_keep(value)), kept, "{value:?}");
        }
        let env = |phase, asleep| Env::from_config_map(&with_status(None, phase, asleep)).unwrap();
        for (phase, asleep, sleeping, waking) in [
            (Phase::Sleeping, true, true, false),
            (Phase::Starting, true, false, true),
            (Phase::Pending, true, false, true),
            (Phase::Starting, false, false, false),
            (Phase::Ready, false, false, false),
            (Phase::Failed, true, false, false),
        ] {
            let env = env(phase, asleep);
            assert_eq!(is_asleep(&env), sleeping, "{phase:?} {asleep}");
            assert_eq!(is_waking(&env), waking, "{phase:?} {asleep}");
        }
    }
}
