//! Who may open an env: its access level, and the policy of the config file that bounds it.
//!
//! An env's level is the [`ACCESS_ANNOTATION`](crate::labels::ACCESS_ANNOTATION) on its
//! ConfigMap (kubectl reads and sets it); without one, the config's default applies. The level
//! in force is never above the config's maximum, so lowering the maximum closes every env above
//! it at once, without touching a ConfigMap.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// An access level, from the most closed to the most open (the order is `Ord`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Its owner and the config's admins.
    Owner,
    /// Anyone who can sign in (what every env was before levels existed).
    Team,
    /// Anyone, without signing in.
    Public,
}

impl Access {
    /// Every level, most closed first.
    pub const ALL: [Access; 3] = [Access::Owner, Access::Team, Access::Public];

    /// Its name in the annotation, the config file and the dashboard.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Owner => "owner",
            Access::Team => "team",
            Access::Public => "public",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Access {
    type Err = String;

    /// `owner`, `team` or `public`, exactly.
    fn from_str(text: &str) -> Result<Access, String> {
        Access::ALL
            .into_iter()
            .find(|level| level.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not an access level: use owner, team or public"))
    }
}

/// Who asks to open an env.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visitor<'a> {
    /// Nobody signed in.
    Anonymous,
    /// A signed-in person: their identity (as [`crate::identity`] names them) and whether the
    /// config lists them as an admin.
    Person {
        /// The identity.
        identity: &'a str,
        /// Whether they are an admin.
        admin: bool,
    },
}

impl Access {
    /// Whether this level lets `visitor` open an env owned by `owner`. (A share link opens an
    /// env whatever its level: its owner chose to share it.)
    pub fn admits(self, owner: &str, visitor: Visitor<'_>) -> bool {
        match (self, visitor) {
            (Access::Public, _) => true,
            (_, Visitor::Anonymous) => false,
            (Access::Team, Visitor::Person { .. }) => true,
            (Access::Owner, Visitor::Person { identity, admin }) => admin || identity == owner,
        }
    }
}

/// The config file's `access`: the level of an env that names none, and the most open level
/// any env gets; and how long a share link may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The level of an env without the annotation (default `team`, as before levels existed).
    pub default: Access,
    /// The most open level in force (default `team`: `public` envs need a team lead's yes).
    pub max: Access,
    /// The longest a share link may live (`access.maxLinkLifetime`, default 7 days); never
    /// past its env's own deadline either.
    pub max_link_lifetime: jiff::SignedDuration,
}

/// The default `access.maxLinkLifetime`.
pub const DEFAULT_MAX_LINK_LIFETIME: jiff::SignedDuration =
    jiff::SignedDuration::from_hours(7 * 24);

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            default: Access::Team,
            max: Access::Team,
            max_link_lifetime: DEFAULT_MAX_LINK_LIFETIME,
        }
    }
}

impl AccessPolicy {
    /// The level in force for an env whose annotation says `asked` (`None`: no annotation).
    pub fn effective(&self, asked: Option<Access>) -> Access {
        asked.unwrap_or(self.default).min(self.max)
    }

    /// The levels a person may choose for an env (the dashboard's choices), most closed first.
    pub fn choices(&self) -> Vec<Access> {
        Access::ALL
            .into_iter()
            .filter(|level| *level <= self.max)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_exactly_and_print_back() {
        for level in Access::ALL {
            assert_eq!(level.as_str().parse::<Access>(), Ok(level));
            assert_eq!(level.to_string(), level.as_str());
        }
        for bad in ["", "Team", "everyone", " owner", "private"] {
            let error = bad.parse::<Access>().unwrap_err();
            assert!(error.contains("owner, team or public"), "{error}");
        }
    }

    #[test]
    fn the_level_in_force_is_the_asked_or_default_one_capped_by_the_maximum() {
        use Access::*;
        let cases = [
            // (default, max, asked, in force)
            (Team, Team, None, Team),
            (Team, Team, Some(Owner), Owner),
            (Team, Team, Some(Public), Team),
            (Team, Public, Some(Public), Public),
            (Owner, Public, None, Owner),
            (Public, Public, None, Public),
            // A maximum lowered below the default closes envs without an annotation too.
            (Team, Owner, None, Owner),
            (Team, Owner, Some(Public), Owner),
        ];
        for (default, max, asked, expected) in cases {
            let policy = AccessPolicy {
                default,
                max,
                ..AccessPolicy::default()
            };
            assert_eq!(policy.effective(asked), expected, "{policy:?} {asked:?}");
        }
    }

    #[test]
    fn each_level_admits_whom_it_says() {
        use Access::*;
        let owner = Visitor::Person {
            identity: "jane.doe",
            admin: false,
        };
        let colleague = Visitor::Person {
            identity: "octocat",
            admin: false,
        };
        let admin = Visitor::Person {
            identity: "root",
            admin: true,
        };
        // (level, visitor, admitted) for an env owned by jane.doe.
        let cases = [
            (Owner, owner, true),
            (Owner, colleague, false),
            (Owner, admin, true),
            (Owner, Visitor::Anonymous, false),
            (Team, colleague, true),
            (Team, Visitor::Anonymous, false),
            (Public, Visitor::Anonymous, true),
            (Public, colleague, true),
        ];
        for (level, visitor, admitted) in cases {
            assert_eq!(
                level.admits("jane.doe", visitor),
                admitted,
                "{level} {visitor:?}"
            );
        }
        // Identities compare exactly, as the dashboard's ownership does.
        let shouting = Visitor::Person {
            identity: "Jane.Doe",
            admin: false,
        };
        assert!(!Owner.admits("jane.doe", shouting));
    }

    #[test]
    fn choices_stop_at_the_maximum() {
        let policy = AccessPolicy::default();
        assert_eq!(policy.choices(), vec![Access::Owner, Access::Team]);
        let open = AccessPolicy {
            max: Access::Public,
            ..policy
        };
        assert_eq!(open.choices(), Access::ALL.to_vec());
    }
}
