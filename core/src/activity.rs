//! When a person last used an env: one Lease per env, `<env>-activity`, owned by the env
//! ConfigMap (it goes with the env) and renewed by the gateway, which alone sees the traffic, at
//! most once a minute per replica, as kubelets renew their node Leases. Its `renewTime` is the
//! last activity seen; `holderIdentity` the gateway replica that saw it.
//!
//! What counts as activity (ephgateway's `activity` module): a request from a browser to one of the
//! env's ports (browsers send `Sec-Fetch-Mode` with every request; monitors, probes and scripts
//! do not), and a data message a browser sends on a WebSocket to the env. Not: the gateway's own
//! pages (sign-in, "starting", "broken") and their reloads, the dashboard and its polling, the
//! opening of a WebSocket or one that stays silent, nor ephctrl's calls to Tilt (they do not go
//! through the gateway).
//!
//! ephctrl reads the Leases to put an env unused for the config's `sleepAfter` to sleep, and to
//! wake it when a visit renews its Lease after it fell asleep (ephctrl's `sleep` module).

use std::time::Duration;

use crate::labels::{KEEP_AWAKE_ANNOTATION, PART_OF_KEY, PART_OF_VALUE};

/// Label on an activity Lease: the env it tells of.
pub const ACTIVITY_OF_LABEL: &str = "ephemerator.tilt.dev/activity-of";
/// How often one gateway replica renews an env's activity Lease at most.
pub const RECORD_EVERY: Duration = Duration::from_secs(60);
/// The shortest interval between two renewals, however short `sleepAfter` is.
pub const RECORD_EVERY_AT_LEAST: Duration = Duration::from_millis(250);

/// How often a gateway replica renews an env's activity Lease at most, for a config whose
/// envs sleep after `sleep_after`: [`RECORD_EVERY`], or a quarter of `sleep_after` when that
/// is shorter, so a renewal skipped by the throttle never puts a used env to sleep.
pub fn record_every(sleep_after: Option<jiff::SignedDuration>) -> Duration {
    let quarter = sleep_after
        .and_then(|after| Duration::try_from(after).ok())
        .map_or(RECORD_EVERY, |after| after / 4);
    quarter.clamp(RECORD_EVERY_AT_LEAST, RECORD_EVERY)
}

/// Whether the owner keeps the env of `meta` awake ([`KEEP_AWAKE_ANNOTATION`] is `true`, in
/// any case, spaces around ignored; anything else, or none: it sleeps after `sleepAfter`).
pub fn kept_awake(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|annotations| annotations.get(KEEP_AWAKE_ANNOTATION))
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// The name of env `env`'s activity Lease (distinct envs, distinct names).
pub fn lease_name(env: &str) -> String {
    format!("{env}-activity")
}

/// The server-side apply that renews env `env`'s activity Lease (the env ConfigMap has `uid`)
/// as seen by gateway replica `holder` at `at`: applied whole, so the first use creates the
/// Lease, owned by the env so that it goes with it.
pub fn renewal(env: &str, uid: &str, holder: &str, at: jiff::Timestamp) -> serde_json::Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(env),
            "labels": lease_labels(env),
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": env,
                "uid": uid,
            }],
        },
        "spec": {
            "holderIdentity": holder,
            "renewTime": MicroTime(at),
        },
    })
}

/// The labels of an activity Lease.
pub fn lease_labels(env: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (PART_OF_KEY.to_string(), PART_OF_VALUE.to_string()),
        (ACTIVITY_OF_LABEL.to_string(), env.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_env_has_its_own_lease() {
        assert_eq!(lease_name("nicks"), "nicks-activity");
        assert_ne!(lease_name("a-activity"), lease_name("a"));
        assert_eq!(lease_labels("nicks")[ACTIVITY_OF_LABEL], "nicks");
    }

    #[test]
    fn renewals_are_frequent_enough_for_short_sleeps() {
        use jiff::SignedDuration;
        assert_eq!(record_every(None), RECORD_EVERY);
        assert_eq!(
            record_every(Some(SignedDuration::from_hours(1))),
            RECORD_EVERY
        );
        assert_eq!(
            record_every(Some(SignedDuration::from_secs(8))),
            Duration::from_secs(2)
        );
        assert_eq!(
            record_every(Some(SignedDuration::from_millis(100))),
            RECORD_EVERY_AT_LEAST
        );
    }
}
