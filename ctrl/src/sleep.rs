//! When an env falls asleep and when it wakes: pure rules over its status, its annotations, its
//! last activity, the config and the time. [`crate::plan`] applies them (a sleeping env's runner
//! has no replica; its Service, ports and expiration stay).
//!
//! An env sleeps in three states, all in its status: awake (no `asleep-since`), asleep (phase
//! `Sleeping`, `asleep-since` set) and waking (woken, `asleep-since` still set until the runner
//! is ready again, so the wake's duration is measured once, and a spec change's restart is
//! not taken for a wake).

use ephemerator_core::activity::kept_awake;
use ephemerator_core::labels::WAKE_ANNOTATION;
use ephemerator_core::{EnvStatus, Phase};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The longest wake-annotation value quoted in the env's message (it is anyone's text).
const MAX_ASKER: usize = 64;

/// Why a sleeping env wakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A person opened one of its ports (its activity Lease was renewed after it fell asleep).
    Visit,
    /// The wake annotation was set (the dashboard's Wake button names who pressed it).
    Asked(String),
    /// Its owner set keep-awake.
    KeptAwake,
    /// The config no longer has `sleepAfter`.
    SleepTurnedOff,
}

impl Wake {
    /// For the env's message and its Event.
    pub fn describe(&self) -> String {
        match self {
            Wake::Visit => "woken by a visit".to_string(),
            Wake::Asked(who) if who.is_empty() => "woken on request".to_string(),
            Wake::Asked(who) => format!("woken by {who}"),
            Wake::KeptAwake => "woken: its owner keeps it awake".to_string(),
            Wake::SleepTurnedOff => "woken: envs no longer sleep (no sleepAfter)".to_string(),
        }
    }
}

/// What the sleep rules are given.
#[derive(Debug, Clone, Copy)]
pub struct SleepInputs<'a> {
    /// The config's `sleepAfter` (`None`: envs do not sleep).
    pub sleep_after: Option<SignedDuration>,
    /// The status the env shows.
    pub status: &'a EnvStatus,
    /// The env ConfigMap's metadata (creation, the wake and keep-awake annotations).
    pub meta: &'a ObjectMeta,
    /// When a person last used it (its activity Lease).
    pub last_activity: Option<Timestamp>,
    /// Whether its runner is ready (as observed, before any sleep).
    pub runner_ready: bool,
    /// The time of the plan.
    pub now: Timestamp,
}

/// What the sleep rules decide.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sleep {
    /// It sleeps after this plan: its runner has no replica, its phase is `Sleeping`.
    pub asleep: bool,
    /// The status's `asleep-since`: set while asleep and while waking.
    pub asleep_since: Option<Timestamp>,
    /// The status's `woke-at`: when it was last woken, then when that wake was over.
    pub woke_at: Option<Timestamp>,
    /// It falls asleep with this plan.
    pub falls_asleep: bool,
    /// It wakes with this plan, and why.
    pub wakes: Option<Wake>,
    /// It is waking (woken before, runner not ready yet).
    pub waking: bool,
    /// Its wake is over with this plan (the runner is ready again): how long it took.
    pub woke_after: Option<std::time::Duration>,
    /// When it falls asleep unless it is used (a deadline for the requeue).
    pub sleeps_at: Option<Timestamp>,
    /// Remove the wake annotation (it was acted on).
    pub clear_wake: bool,
}

/// The wake annotation's value, if set: who asked, made printable and short.
pub fn wake_asked(meta: &ObjectMeta) -> Option<String> {
    let value = meta.annotations.as_ref()?.get(WAKE_ANNOTATION)?;
    Some(
        value
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_ASKER)
            .collect::<String>()
            .trim()
            .to_string(),
    )
}

/// Applies the rules.
pub fn sleep(inputs: &SleepInputs) -> Sleep {
    let SleepInputs {
        sleep_after,
        status,
        meta,
        last_activity,
        runner_ready,
        now,
    } = *inputs;
    let created = meta.creation_timestamp.as_ref().map(|time| time.0);
    let asked = wake_asked(meta);
    let keep_awake = kept_awake(meta);
    let clear_wake = asked.is_some();

    if status.phase == Phase::Sleeping {
        // A damaged status (the phase without the time) sleeps since the latest time known.
        let since = status
            .asleep_since
            .or(status.woke_at)
            .or(created)
            .unwrap_or(now);
        let wakes = if let Some(who) = asked {
            Some(Wake::Asked(who))
        } else if keep_awake {
            Some(Wake::KeptAwake)
        } else if sleep_after.is_none() {
            Some(Wake::SleepTurnedOff)
        } else if last_activity.is_some_and(|at| at > since) {
            Some(Wake::Visit)
        } else {
            None
        };
        return match wakes {
            Some(wake) => Sleep {
                asleep_since: Some(since),
                woke_at: Some(now),
                wakes: Some(wake),
                waking: true,
                clear_wake,
                ..Sleep::default()
            },
            None => Sleep {
                asleep: true,
                asleep_since: Some(since),
                woke_at: status.woke_at,
                ..Sleep::default()
            },
        };
    }

    // Awake, or waking.
    let waking = status.asleep_since.is_some() && !runner_ready;
    let woke_after = status
        .woke_at
        .filter(|_| status.asleep_since.is_some() && runner_ready)
        .and_then(|woke| std::time::Duration::try_from(now.duration_since(woke)).ok());
    // Its idle time counts from the end of the wake: a runner slower to start than
    // `sleepAfter` is not put back to sleep the moment it is ready.
    let woke_at = if clear_wake || woke_after.is_some() {
        Some(now)
    } else {
        status.woke_at
    };
    let mut decided = Sleep {
        asleep_since: status.asleep_since.filter(|_| waking),
        woke_at,
        waking,
        woke_after,
        clear_wake,
        ..Sleep::default()
    };
    // Only a ready runner falls asleep: one still starting has someone waiting for it.
    let Some(after) = sleep_after.filter(|_| runner_ready && !keep_awake) else {
        return decided;
    };
    let idle_since = [created, status.ready_at, woke_at, last_activity]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now);
    let sleeps_at = idle_since.saturating_add(after).unwrap_or(Timestamp::MAX);
    if sleeps_at <= now {
        decided.asleep = true;
        decided.falls_asleep = true;
        decided.asleep_since = Some(now);
        decided.woke_after = None;
    } else {
        decided.sleeps_at = Some(sleeps_at);
    }
    decided
}

/// A time as messages show it: to the second.
fn shown(time: Timestamp) -> Timestamp {
    time.round(jiff::Unit::Second).unwrap_or(time)
}

/// The message of a sleeping env.
pub fn asleep_message(since: Timestamp, sleep_after: Option<SignedDuration>) -> String {
    match sleep_after {
        Some(after) => format!(
            "asleep since {}: nobody used it for {after:#}; opening one of its ports wakes it",
            shown(since)
        ),
        None => format!("asleep since {}", shown(since)),
    }
}

#[cfg(test)]
mod tests;
