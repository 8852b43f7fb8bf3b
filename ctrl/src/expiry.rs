//! Pure time logic for expiration: when an env expires, when it is warned, and when the
//! controller must next wake up for it.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The deadlines of one env.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When the env is deleted.
    pub expires_at: Timestamp,
    /// When the expiry warning is due, if warnings are configured and the warning falls after
    /// the env's creation (an env created with less time left than the warning gets none).
    pub warn_at: Option<Timestamp>,
}

/// What is due for an env right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The expiration has passed: delete the env.
    Expire,
    /// The warning time has passed and no warning was sent for this expiration yet.
    Warn,
    /// Nothing yet.
    Nothing,
}

/// The schedule for an env created at `created` and expiring at `expires_at`.
pub fn schedule(
    created: Option<Timestamp>,
    expires_at: Timestamp,
    warn_before: Option<SignedDuration>,
) -> Schedule {
    let warn_at = warn_before
        .filter(|before| before.is_positive())
        .and_then(|before| expires_at.checked_sub(before).ok())
        .filter(|warn_at| created.is_none_or(|created| *warn_at > created));
    Schedule {
        expires_at,
        warn_at,
    }
}

/// What is due at `now`; `warned` says whether this expiration was already warned about.
pub fn due(now: Timestamp, schedule: &Schedule, warned: bool) -> Due {
    if now >= schedule.expires_at {
        Due::Expire
    } else if !warned && schedule.warn_at.is_some_and(|warn_at| now >= warn_at) {
        Due::Warn
    } else {
        Due::Nothing
    }
}

/// How long from `now` until the earliest of `deadlines` that is still ahead, rounded up to the
/// millisecond so the wake-up is never before the deadline. `None` when none is ahead.
pub fn until_next(
    now: Timestamp,
    deadlines: impl IntoIterator<Item = Timestamp>,
) -> Option<Duration> {
    deadlines
        .into_iter()
        .filter(|deadline| *deadline > now)
        .min()
        .and_then(|deadline| Duration::try_from(deadline.duration_since(now)).ok())
        .map(|wait| {
            let millis = wait.as_nanos().div_ceil(1_000_000);
            Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn warning_is_before_expiry_and_after_creation() {
        let expires = at("2024-05-01T10:15:00Z");
        let with_warning = schedule(
            Some(at("2024-05-01T10:00:00Z")),
            expires,
            Some(SignedDuration::from_mins(5)),
        );
        assert_eq!(with_warning.warn_at, Some(at("2024-05-01T10:10:00Z")));
        // Created with only 2 minutes left: a 5-minute warning would be in the past.
        let late = schedule(
            Some(at("2024-05-01T10:13:00Z")),
            expires,
            Some(SignedDuration::from_mins(5)),
        );
        assert_eq!(late.warn_at, None);
        assert_eq!(schedule(None, expires, None).warn_at, None);
        assert_eq!(
            schedule(None, expires, Some(SignedDuration::ZERO)).warn_at,
            None
        );
    }

    #[test]
    fn due_expires_at_the_deadline_and_warns_once() {
        let plan = schedule(
            None,
            at("2024-05-01T10:15:00Z"),
            Some(SignedDuration::from_mins(5)),
        );
        assert_eq!(due(at("2024-05-01T10:09:59Z"), &plan, false), Due::Nothing);
        assert_eq!(due(at("2024-05-01T10:10:00Z"), &plan, false), Due::Warn);
        assert_eq!(due(at("2024-05-01T10:10:00Z"), &plan, true), Due::Nothing);
        assert_eq!(due(at("2024-05-01T10:15:00Z"), &plan, true), Due::Expire);
        assert_eq!(due(at("2024-05-01T10:15:00Z"), &plan, false), Due::Expire);
    }

    #[test]
    fn until_next_picks_the_earliest_future_deadline_rounded_up() {
        let now = at("2024-05-01T10:00:00Z");
        let deadlines = [
            at("2024-05-01T09:00:00Z"),
            at("2024-05-01T10:00:10.0000001Z"),
            at("2024-05-01T10:05:00Z"),
        ];
        assert_eq!(
            until_next(now, deadlines),
            Some(Duration::from_millis(10_001))
        );
        assert_eq!(until_next(now, [at("2024-05-01T09:00:00Z")]), None);
        assert_eq!(until_next(now, [now]), None);
    }
}
