//! What the templates show: envs, the quota and the create form as plain serializable values.
//! Every string is escaped by tera's autoescape when rendered.

use std::collections::HashMap;
use std::sync::Arc;

use ephemerator_core::access::Access;
use ephemerator_core::hosts::env_port_host;
use ephemerator_core::lifecycle::Extension;
use ephemerator_core::{Config, Env, Phase, ValidationErrors};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use serde::Serialize;

use crate::decide::{is_asleep, is_kept_awake, is_waking, may_open};
use crate::identity::User;

/// One env row.
#[derive(Debug, Clone, Serialize)]
pub struct EnvView {
    pub name: String,
    pub owner: String,
    pub mine: bool,
    /// The user may extend and delete it (owner or admin).
    pub can_change: bool,
    pub repo: String,
    pub branch: String,
    pub path: String,
    pub phase: &'static str,
    /// CSS class of the phase badge.
    pub phase_class: &'static str,
    pub message: String,
    pub endpoints: Vec<Endpoint>,
    /// RFC 3339, for the live countdown and `<time datetime>`.
    pub expires_at: String,
    /// The deadline for people: `2030-01-01 10:15 UTC`.
    pub expires_label: String,
    /// "in 12 min", "expired".
    pub expires_in: String,
    /// Why Extend is not offered, if it is not (the cap is reached).
    pub extend_refused: Option<String>,
    /// The env's most recent Events, newest first.
    pub events: Vec<EventView>,
    /// The access level in force (`owner`, `team`, `public`).
    pub access: &'static str,
    /// It, for people.
    pub access_label: &'static str,
    /// The levels its owner may choose (empty for others).
    pub access_choices: Vec<AccessChoice>,
    /// Its share links, with their addresses (for its owner and admins only: `render` adds
    /// them on the env's page).
    pub share_links: Vec<LinkView>,
    /// Whether links can be made here (the dashboard has the signing keys).
    pub can_share: bool,
    /// How long a new link may live, the choices.
    pub link_lifetimes: Vec<LifetimeChoice>,
    /// It sleeps (phase `Sleeping`, its runner scaled to zero).
    pub asleep: bool,
    /// It was woken and its runner is starting again.
    pub waking: bool,
    /// Since when it sleeps, RFC 3339 for `<time datetime>` ("" when awake).
    pub asleep_since: String,
    /// The same for people: `2030-01-01 10:15 UTC`.
    pub asleep_since_label: String,
    /// "asleep for 12 min" ("" when awake).
    pub asleep_for: String,
    /// The user may wake it: it sleeps and its access level admits them.
    pub can_wake: bool,
    /// Envs sleep here at all (the config's `sleepAfter`): keep-awake means something.
    pub sleeps: bool,
    /// "30 min": how long unused before it sleeps ("" when envs never sleep).
    pub sleep_after_label: String,
    /// Its owner keeps it awake.
    pub kept_awake: bool,
    /// The user may turn keep-awake on and off (owner or admin, where envs sleep).
    pub can_keep_awake: bool,
}

/// One level a person may choose.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// A lifetime a new share link may have.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LifetimeChoice {
    /// As the form sends it (`1h`, `7d`).
    pub value: String,
    pub label: String,
}

/// One share link, as its owner sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LinkView {
    pub id: String,
    pub label: String,
    pub created_by: String,
    /// `2030-01-01 10:15 UTC`.
    pub expires_label: String,
    /// "in 3 h", "expired".
    pub expires_in: String,
    /// The address to give out.
    pub url: String,
}

/// A level, for people.
pub fn access_label(level: Access) -> &'static str {
    match level {
        Access::Owner => "Owner only",
        Access::Team => "Team",
        Access::Public => "Public (no sign-in)",
    }
}

/// The lifetimes offered for a new link: those within `max`, and `max` itself.
pub fn link_lifetimes(max: SignedDuration) -> Vec<LifetimeChoice> {
    let mut choices: Vec<LifetimeChoice> = [
        (1, "1 hour"),
        (8, "8 hours"),
        (24, "1 day"),
        (168, "7 days"),
    ]
    .into_iter()
    .filter(|(hours, _)| SignedDuration::from_hours(*hours) <= max)
    .map(|(hours, label)| LifetimeChoice {
        value: format!("{hours}h"),
        label: label.to_string(),
    })
    .collect();
    if choices.is_empty() {
        choices.push(LifetimeChoice {
            value: format!("{}s", max.as_secs()),
            label: format!("{} min", max.as_secs() / 60),
        });
    }
    choices
}

/// An Event about an env (ephctrl's transitions and warnings).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EventView {
    /// `2030-01-01 10:15:00 UTC`.
    pub at: String,
    /// Normal or Warning.
    pub kind: String,
    pub reason: String,
    pub note: String,
}

/// Events shown per env.
pub const EVENTS_PER_ENV: usize = 5;

/// The recent Events of each env ConfigMap, by env name, newest first.
pub fn events_by_env(events: &[Arc<Event>]) -> HashMap<String, Vec<EventView>> {
    let mut by_env: HashMap<String, Vec<(Timestamp, EventView)>> = HashMap::new();
    for event in events {
        let Some(regarding) = event.regarding.as_ref() else {
            continue;
        };
        if regarding.kind.as_deref() != Some("ConfigMap") {
            continue;
        }
        let Some(name) = regarding.name.clone() else {
            continue;
        };
        let at = event
            .event_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
            .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        by_env.entry(name).or_default().push((
            at,
            EventView {
                at: at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
                kind: event.type_.clone().unwrap_or_default(),
                reason: event.reason.clone().unwrap_or_default(),
                note: event.note.clone().unwrap_or_default(),
            },
        ));
    }
    by_env
        .into_iter()
        .map(|(name, mut events)| {
            events.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
            events.truncate(EVENTS_PER_ENV);
            (name, events.into_iter().map(|(_, view)| view).collect())
        })
        .collect()
}

/// A link to one of an env's ports through the gateway.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub name: String,
    pub port: u16,
    pub url: String,
}

/// A message above the list: an action's outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    /// Whether it reports success (else a refusal or failure).
    pub ok: bool,
}

impl Notice {
    /// A success.
    pub fn ok(text: impl Into<String>) -> Notice {
        Notice {
            text: text.into(),
            ok: true,
        }
    }

    /// A refusal or failure.
    pub fn error(text: impl Into<String>) -> Notice {
        Notice {
            text: text.into(),
            ok: false,
        }
    }
}

/// The quota line above the form.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaView {
    pub used: usize,
    pub max: usize,
    pub full: bool,
}

/// The create form, with what the user typed and what was wrong with it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FormView {
    pub repo: String,
    pub branch: String,
    pub path: String,
    /// The access level asked for (kept on a refusal).
    pub access: String,
    /// Field errors, by field (`repo`, `branch`, `path`).
    pub errors: std::collections::BTreeMap<String, String>,
    /// An error about the whole form (quota, conflict, cluster).
    pub error: Option<String>,
}

impl FormView {
    /// Field errors from core's validation.
    pub fn with_errors(mut self, errors: &ValidationErrors) -> Self {
        for error in &errors.errors {
            let field = error.field.trim_start_matches("data.").to_string();
            self.errors.insert(field, error.message.clone());
        }
        self
    }
}

/// How links to env ports are written: the scheme and the port the user reached the
/// dashboard on (through the gateway), so that a local run on `:8080` links to `:8080`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkBase {
    /// `http` or `https`.
    pub scheme: String,
    /// `:PORT`, or "" for the scheme's default port.
    pub port_suffix: String,
}

impl LinkBase {
    /// The link base of `request` (its forwarded scheme and host, as the gateway sets them).
    pub fn of(request: &actix_web::HttpRequest) -> LinkBase {
        let info = request.connection_info();
        let scheme = info.scheme().to_string();
        let port_suffix = ephemerator_core::hosts::port_suffix(info.host(), &scheme);
        LinkBase {
            scheme,
            port_suffix,
        }
    }
}

/// The row of one env as `user` sees it (without its Events: `render` adds them).
pub fn env_view(
    cm: &ConfigMap,
    env: &Env,
    user: &User,
    config: &Config,
    links: &LinkBase,
    now: Timestamp,
) -> EnvView {
    let mine = env.owner == user.identity;
    let created = cm.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let policy = &config.expiration;
    let deadline = env
        .expiration
        .map(|written| policy.deadline(created, written));
    let extend_refused =
        env.expiration
            .and_then(|written| match policy.extend(created, written, now) {
                Extension::AtCap { cap } => Some(format!(
                    "the longest lifetime is reached (until {})",
                    cap.strftime("%Y-%m-%d %H:%M UTC")
                )),
                Extension::Extended { .. } => None,
            });
    let level = config.access.effective(env.access);
    let status = &env.status;
    let asleep = is_asleep(env);
    // A damaged status (asleep without the time) says only that it sleeps.
    let asleep_since = status.asleep_since.filter(|_| asleep);
    let endpoints = status
        .ports
        .iter()
        .map(|port| Endpoint {
            name: port.name.clone(),
            port: port.port,
            url: format!(
                "{}://{}{}/",
                links.scheme,
                env_port_host(port.port, &env.name, &config.gateway_host),
                links.port_suffix
            ),
        })
        .collect();
    EnvView {
        name: env.name.clone(),
        owner: env.owner.clone(),
        mine,
        can_change: mine || user.admin,
        repo: env.spec.repo.clone(),
        branch: env.spec.branch.clone(),
        path: env.spec.path.clone(),
        phase: status.phase.as_str(),
        phase_class: match status.phase {
            Phase::Ready => "ok",
            Phase::Failed | Phase::Rejected => "bad",
            // Nothing is wrong and nothing is under way: calm.
            Phase::Sleeping => "asleep",
            _ => "busy",
        },
        message: status.message.clone().unwrap_or_default(),
        endpoints,
        expires_at: deadline.map(|d| d.to_string()).unwrap_or_default(),
        expires_label: deadline
            .map(|d| d.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default(),
        expires_in: deadline.map_or_else(
            || "not set yet".to_string(),
            |deadline| time_left(deadline.duration_since(now)),
        ),
        extend_refused,
        events: Vec::new(),
        access: level.as_str(),
        access_label: access_label(level),
        access_choices: if mine || user.admin {
            config
                .access
                .choices()
                .into_iter()
                .map(|choice| AccessChoice {
                    value: choice.as_str(),
                    label: access_label(choice),
                    selected: choice == level,
                })
                .collect()
        } else {
            Vec::new()
        },
        share_links: Vec::new(),
        can_share: false,
        link_lifetimes: Vec::new(),
        asleep,
        waking: is_waking(env),
        asleep_since: asleep_since.map(|t| t.to_string()).unwrap_or_default(),
        asleep_since_label: asleep_since
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
        asleep_for: if asleep {
            asleep_since.map_or_else(
                || "asleep".to_string(),
                |since| format!("asleep for {}", span(now.duration_since(since))),
            )
        } else {
            String::new()
        },
        can_wake: asleep && may_open(&user.identity, user.admin, config, env),
        sleeps: config.sleep_after.is_some(),
        sleep_after_label: config.sleep_after.map(span).unwrap_or_default(),
        kept_awake: is_kept_awake(cm),
        can_keep_awake: (mine || user.admin) && config.sleep_after.is_some(),
    }
}

/// "in 1 h 5 min", "in under a minute", "expired": whole minutes, so a rendered list stays
/// right for a minute (the page's script shows the exact countdown).
pub fn time_left(left: SignedDuration) -> String {
    if left.as_secs() <= 0 {
        return "expired".to_string();
    }
    format!("in {}", span(left))
}

/// "12 min", "1 h 5 min", "under a minute": a duration in whole minutes (none below zero).
pub fn span(length: SignedDuration) -> String {
    let seconds = length.as_secs().max(0);
    let (hours, minutes) = (seconds / 3600, (seconds % 3600) / 60);
    match (hours, minutes) {
        (0, 0) => "under a minute".to_string(),
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_like_a_person_would_say_it() {
        assert_eq!(time_left(SignedDuration::from_secs(-5)), "expired");
        assert_eq!(
            time_left(SignedDuration::from_secs(40)),
            "in under a minute"
        );
        assert_eq!(time_left(SignedDuration::from_mins(12)), "in 12 min");
        assert_eq!(time_left(SignedDuration::from_mins(60)), "in 1 h");
        assert_eq!(time_left(SignedDuration::from_mins(65)), "in 1 h 5 min");
    }

    #[test]
    fn a_span_is_whole_minutes_and_never_negative() {
        assert_eq!(span(SignedDuration::from_secs(-5)), "under a minute");
        assert_eq!(span(SignedDuration::from_secs(59)), "under a minute");
        assert_eq!(span(SignedDuration::from_secs(12 * 60 + 59)), "12 min");
        assert_eq!(span(SignedDuration::from_hours(2)), "2 h");
        assert_eq!(span(SignedDuration::from_mins(125)), "2 h 5 min");
    }
}
