//! The env lifecycle: the one definition, shared by ephctrl and ephdash, of when an env is
//! deleted, when its owner is warned, and what an extension gives.
//!
//! An env has the `expiration` written in its ConfigMap and a creation time. It never lives past
//! `created + maxLifetime` (its *cap*), whatever is written: its **deadline** is the written
//! expiration held to the cap. ephctrl deletes the env at the deadline and, when the written
//! value is past the cap, writes the cap back so that what users read is what happens
//! ([`ExpirationPolicy::needs_cap_written`]).
//!
//! Every function is pure: the caller passes the time.

use jiff::{SignedDuration, Timestamp};

use crate::config::ExpirationPolicy;

/// What is due for an env at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The deadline has passed: delete the env.
    Expire,
    /// The warning time has passed and this deadline was not warned about yet.
    Warn,
    /// Nothing yet.
    Nothing,
}

/// What one "extend" does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// The deadline moves to `to`; `reached_cap` when the cap cut the extension short (the
    /// next extend will be refused).
    Extended {
        /// The new expiration to write.
        to: Timestamp,
        /// Whether `to` is the cap.
        reached_cap: bool,
    },
    /// The env already lives until its cap: nothing can be added.
    AtCap {
        /// The cap, which is also the deadline.
        cap: Timestamp,
    },
}

impl ExpirationPolicy {
    /// The expiration written for an env created at `now`.
    pub fn initial_expiration(&self, now: Timestamp) -> Timestamp {
        let wanted = add(now, self.default_ttl);
        // maxLifetime >= defaultTTL is checked at load; the cap still rules if it ever is not.
        wanted.min(self.cap(now))
    }

    /// This policy with the `maxLifetime` an env recorded when its expiration was set, if any
    /// (see [`crate::labels::MAX_LIFETIME_ANNOTATION`]): a config change never moves a running
    /// env's cap; a new action (an extend) is judged by the config in force.
    pub fn for_env(&self, recorded_max_lifetime: Option<SignedDuration>) -> ExpirationPolicy {
        ExpirationPolicy {
            max_lifetime: recorded_max_lifetime.unwrap_or(self.max_lifetime),
            ..*self
        }
    }

    /// The latest an env created at `created` may live: `created + maxLifetime`.
    pub fn cap(&self, created: Timestamp) -> Timestamp {
        add(created, self.max_lifetime)
    }

    /// When the env is deleted: the written `expiration` held to the cap. Without a creation
    /// time (never the case for objects from an API server) only the written value counts.
    pub fn deadline(&self, created: Option<Timestamp>, expiration: Timestamp) -> Timestamp {
        match created {
            Some(created) => expiration.min(self.cap(created)),
            None => expiration,
        }
    }

    /// Whether the written `expiration` is past the cap, so the cap must be written in its
    /// place (the deadline the env really has).
    pub fn needs_cap_written(&self, created: Option<Timestamp>, expiration: Timestamp) -> bool {
        self.deadline(created, expiration) != expiration
    }

    /// When the owner is warned: `warnBefore` ahead of the deadline. `None` when warnings are
    /// off, or when that moment is not after the creation (an env created with less time left
    /// than the warning gets none: it was never "about to expire" unexpectedly).
    pub fn warn_at(&self, created: Option<Timestamp>, expiration: Timestamp) -> Option<Timestamp> {
        if !self.warn_before.is_positive() {
            return None;
        }
        let deadline = self.deadline(created, expiration);
        let warn_at = deadline.checked_sub(self.warn_before).ok()?;
        created
            .is_none_or(|created| warn_at > created)
            .then_some(warn_at)
    }

    /// What is due at `now`; `warned` says whether the current deadline was already warned
    /// about (an extension moves the deadline and so re-arms the warning).
    pub fn due(
        &self,
        created: Option<Timestamp>,
        expiration: Timestamp,
        now: Timestamp,
        warned: bool,
    ) -> Due {
        if now >= self.deadline(created, expiration) {
            Due::Expire
        } else if !warned
            && self
                .warn_at(created, expiration)
                .is_some_and(|warn_at| now >= warn_at)
        {
            Due::Warn
        } else {
            Due::Nothing
        }
    }

    /// What one extension at `now` gives: `extendBy` from the later of `now` and the current
    /// deadline, held to the cap. Never shortens the env's life.
    pub fn extend(
        &self,
        created: Option<Timestamp>,
        expiration: Timestamp,
        now: Timestamp,
    ) -> Extension {
        let deadline = self.deadline(created, expiration);
        let wanted = add(deadline.max(now), self.extend_by);
        let cap = created.map(|created| self.cap(created));
        let to = cap.map_or(wanted, |cap| wanted.min(cap)).max(deadline);
        if to == deadline {
            return Extension::AtCap { cap: deadline };
        }
        Extension::Extended {
            to,
            reached_cap: cap == Some(to),
        }
    }
}

fn add(time: Timestamp, duration: SignedDuration) -> Timestamp {
    time.saturating_add(duration).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// 15m default, 15m extensions, 1h cap, 5m warning.
    fn policy() -> ExpirationPolicy {
        ExpirationPolicy {
            default_ttl: SignedDuration::from_mins(15),
            extend_by: SignedDuration::from_mins(15),
            max_lifetime: SignedDuration::from_hours(1),
            warn_before: SignedDuration::from_mins(5),
        }
    }

    const CREATED: &str = "2030-01-01T10:00:00Z";

    #[test]
    fn the_deadline_is_the_expiration_held_to_the_cap() {
        let created = Some(at(CREATED));
        let cases = [
            // (written expiration, deadline, cap must be written back)
            ("2030-01-01T10:15:00Z", "2030-01-01T10:15:00Z", false),
            ("2030-01-01T11:00:00Z", "2030-01-01T11:00:00Z", false),
            ("2030-01-01T11:00:01Z", "2030-01-01T11:00:00Z", true),
            ("2031-01-01T00:00:00Z", "2030-01-01T11:00:00Z", true),
            // Already past: the deadline is past too.
            ("2030-01-01T09:00:00Z", "2030-01-01T09:00:00Z", false),
        ];
        for (written, deadline, write_cap) in cases {
            assert_eq!(
                policy().deadline(created, at(written)),
                at(deadline),
                "{written}"
            );
            assert_eq!(
                policy().needs_cap_written(created, at(written)),
                write_cap,
                "{written}"
            );
        }
        // Without a creation time there is no cap to hold to.
        let far = at("2031-01-01T00:00:00Z");
        assert_eq!(policy().deadline(None, far), far);
        assert!(!policy().needs_cap_written(None, far));
    }

    #[test]
    fn the_warning_comes_before_the_deadline_and_after_the_creation() {
        let created = Some(at(CREATED));
        let cases = [
            // (written expiration, warn at)
            ("2030-01-01T10:15:00Z", Some("2030-01-01T10:10:00Z")),
            // Past the cap: warned before the cap, not before the written value.
            ("2031-01-01T00:00:00Z", Some("2030-01-01T10:55:00Z")),
            // Created with 3 minutes left: a 5-minute warning would precede the creation.
            ("2030-01-01T10:03:00Z", None),
            // Exactly at the creation: not after it.
            ("2030-01-01T10:05:00Z", None),
        ];
        for (written, warn_at) in cases {
            assert_eq!(
                policy().warn_at(created, at(written)),
                warn_at.map(at),
                "{written}"
            );
        }
        let silent = ExpirationPolicy {
            warn_before: SignedDuration::ZERO,
            ..policy()
        };
        assert_eq!(silent.warn_at(created, at("2030-01-01T10:15:00Z")), None);
    }

    #[test]
    fn due_expires_at_the_deadline_and_warns_once_per_deadline() {
        let created = Some(at(CREATED));
        let expiration = at("2030-01-01T10:15:00Z");
        let cases = [
            // (now, already warned, due)
            ("2030-01-01T10:09:59Z", false, Due::Nothing),
            ("2030-01-01T10:10:00Z", false, Due::Warn),
            ("2030-01-01T10:10:00Z", true, Due::Nothing),
            ("2030-01-01T10:14:59Z", true, Due::Nothing),
            ("2030-01-01T10:15:00Z", true, Due::Expire),
            ("2030-01-01T10:15:00Z", false, Due::Expire),
        ];
        for (now, warned, due) in cases {
            assert_eq!(
                policy().due(created, expiration, at(now), warned),
                due,
                "{now} {warned}"
            );
        }
        // Written past the cap: due at the cap, not at the written value.
        let far = at("2031-01-01T00:00:00Z");
        assert_eq!(
            policy().due(created, far, at("2030-01-01T11:00:00Z"), true),
            Due::Expire
        );
        assert_eq!(
            policy().due(created, far, at("2030-01-01T10:56:00Z"), false),
            Due::Warn
        );
    }

    #[test]
    fn extend_adds_extend_by_up_to_the_cap_then_refuses() {
        let created = Some(at(CREATED));
        let cases = [
            // (written expiration, now, result)
            (
                "2030-01-01T10:15:00Z",
                "2030-01-01T10:05:00Z",
                Extension::Extended {
                    to: at("2030-01-01T10:30:00Z"),
                    reached_cap: false,
                },
            ),
            // Already past its deadline but not deleted yet: extended from now.
            (
                "2030-01-01T10:15:00Z",
                "2030-01-01T10:20:00Z",
                Extension::Extended {
                    to: at("2030-01-01T10:35:00Z"),
                    reached_cap: false,
                },
            ),
            // Cut short by the cap.
            (
                "2030-01-01T10:50:00Z",
                "2030-01-01T10:40:00Z",
                Extension::Extended {
                    to: at("2030-01-01T11:00:00Z"),
                    reached_cap: true,
                },
            ),
            // Exactly at the cap: nothing to add.
            (
                "2030-01-01T11:00:00Z",
                "2030-01-01T10:40:00Z",
                Extension::AtCap {
                    cap: at("2030-01-01T11:00:00Z"),
                },
            ),
            // Written past the cap: the deadline is the cap already.
            (
                "2031-01-01T00:00:00Z",
                "2030-01-01T10:40:00Z",
                Extension::AtCap {
                    cap: at("2030-01-01T11:00:00Z"),
                },
            ),
        ];
        for (written, now, extension) in cases {
            assert_eq!(
                policy().extend(created, at(written), at(now)),
                extension,
                "{written} at {now}"
            );
        }
    }

    #[test]
    fn the_initial_expiration_is_the_default_ttl_within_the_cap() {
        let now = at(CREATED);
        assert_eq!(policy().initial_expiration(now), at("2030-01-01T10:15:00Z"));
        let short = ExpirationPolicy {
            max_lifetime: SignedDuration::from_mins(10),
            ..policy()
        };
        assert_eq!(short.initial_expiration(now), at("2030-01-01T10:10:00Z"));
    }
}
