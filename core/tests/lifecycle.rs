//! Properties of the env lifecycle (core::lifecycle) over arbitrary policies and times.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use ephemerator_core::config::ExpirationPolicy;
use ephemerator_core::lifecycle::{Due, Extension};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

/// Seconds around 2030, so every sum stays far inside jiff's range.
const BASE: i64 = 1_893_456_000;
const SPAN: i64 = 10 * 24 * 3600;

fn time() -> impl Strategy<Value = Timestamp> {
    (0..SPAN).prop_map(|offset| Timestamp::from_second(BASE + offset).unwrap())
}

fn policy() -> impl Strategy<Value = ExpirationPolicy> {
    (1i64..10_000, 1i64..10_000, 0i64..100_000, 0i64..5_000).prop_map(
        |(ttl, extend, extra, warn)| ExpirationPolicy {
            default_ttl: SignedDuration::from_secs(ttl),
            extend_by: SignedDuration::from_secs(extend),
            // Loading the config guarantees maxLifetime >= defaultTTL.
            max_lifetime: SignedDuration::from_secs(ttl + extra),
            warn_before: SignedDuration::from_secs(warn),
        },
    )
}

proptest! {
    #[test]
    fn the_deadline_is_never_after_the_cap(
        policy in policy(), created in time(), written in time(),
    ) {
        let deadline = policy.deadline(Some(created), written);
        prop_assert!(deadline <= created + policy.max_lifetime);
        prop_assert!(deadline <= written);
        prop_assert_eq!(policy.needs_cap_written(Some(created), written), deadline != written);
    }

    #[test]
    fn extend_never_shortens_and_never_passes_the_cap(
        policy in policy(), created in time(), written in time(), now in time(),
    ) {
        let before = policy.deadline(Some(created), written);
        match policy.extend(Some(created), written, now) {
            Extension::Extended { to, reached_cap } => {
                prop_assert!(to > before);
                prop_assert!(to <= created + policy.max_lifetime);
                prop_assert_eq!(reached_cap, to == created + policy.max_lifetime);
                // What is written reads back as the deadline: no write-back needed.
                prop_assert_eq!(policy.deadline(Some(created), to), to);
            }
            Extension::AtCap { cap } => prop_assert_eq!(cap, before),
        }
    }

    #[test]
    fn nothing_expires_before_its_deadline_and_everything_after(
        policy in policy(), created in time(), written in time(), now in time(), warned: bool,
    ) {
        let deadline = policy.deadline(Some(created), written);
        let due = policy.due(Some(created), written, now, warned);
        prop_assert_eq!(due == Due::Expire, now >= deadline);
        if due == Due::Warn {
            prop_assert!(!warned);
            let warn_at = policy.warn_at(Some(created), written).expect("a warning time");
            prop_assert!(now >= warn_at && warn_at > created && warn_at < deadline);
        }
    }

    #[test]
    fn a_new_env_lives_its_default_ttl(policy in policy(), now in time()) {
        let expiration = policy.initial_expiration(now);
        prop_assert_eq!(expiration, now + policy.default_ttl);
        prop_assert!(!policy.needs_cap_written(Some(now), expiration));
    }
}
