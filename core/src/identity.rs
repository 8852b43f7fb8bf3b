//! Which of the authenticator's headers name a person: the one rule the dashboard (who owns an
//! env, who is an admin) and the gateway (who may open an owner-only env) share.
//!
//! oauth2-proxy sets the user to the GitHub login with the GitHub provider but to the opaque
//! OIDC `sub` claim (`1234567890`) with OIDC, where `preferred_username` is the readable name.
//! The default, the preferred username where the provider gives one and else the user, names
//! people readably with both; envs are named after it, and the config's `admins` list it.

use crate::validate::validate_identity;

/// One of oauth2-proxy's identity headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameField {
    /// `…-Preferred-Username`: OIDC's `preferred_username`, when the provider gives it.
    PreferredUsername,
    /// `…-User`: the GitHub login, the OIDC `sub`.
    User,
    /// `…-Email`.
    Email,
}

impl NameField {
    const ALL: [NameField; 3] = [
        NameField::PreferredUsername,
        NameField::User,
        NameField::Email,
    ];

    /// Its name in `--identity-from`.
    pub fn as_str(self) -> &'static str {
        match self {
            NameField::PreferredUsername => "preferred-username",
            NameField::User => "user",
            NameField::Email => "email",
        }
    }

    /// Its header in oauth2-proxy's auth answer (`X-Auth-Request-…`, lower case).
    pub fn auth_request_header(self) -> &'static str {
        match self {
            NameField::PreferredUsername => "x-auth-request-preferred-username",
            NameField::User => "x-auth-request-user",
            NameField::Email => "x-auth-request-email",
        }
    }

    /// Its header on a request oauth2-proxy proxies (`X-Forwarded-…`, lower case).
    pub fn forwarded_header(self) -> &'static str {
        match self {
            NameField::PreferredUsername => "x-forwarded-preferred-username",
            NameField::User => "x-forwarded-user",
            NameField::Email => "x-forwarded-email",
        }
    }
}

/// The headers that name a person, in order: the first one present names them
/// (`--identity-from`, default `preferred-username,user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFields(Vec<NameField>);

impl Default for NameFields {
    fn default() -> Self {
        NameFields(vec![NameField::PreferredUsername, NameField::User])
    }
}

impl NameFields {
    /// `preferred-username,user`, `user`, `email`, …: each field once, at least one.
    pub fn parse(text: &str) -> Result<NameFields, String> {
        let mut fields = Vec::new();
        for word in text.split(',').map(str::trim) {
            let field = NameField::ALL
                .into_iter()
                .find(|field| field.as_str() == word)
                .ok_or_else(|| {
                    format!(
                        "{word:?} is not an identity header: use preferred-username, user or email"
                    )
                })?;
            if fields.contains(&field) {
                return Err(format!("{word:?} is listed twice"));
            }
            fields.push(field);
        }
        Ok(NameFields(fields))
    }

    /// The identity `header` gives: the first field whose value is there and not blank, if it
    /// is a valid identity (`None`: nobody is signed in).
    pub fn identify<'a>(&self, header: impl Fn(NameField) -> Option<&'a str>) -> Option<String> {
        let identity = self
            .0
            .iter()
            .find_map(|field| header(*field).map(str::trim).filter(|v| !v.is_empty()))?;
        validate_identity(identity).ok()?;
        Some(identity.to_string())
    }
}

impl std::fmt::Display for NameFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<&str> = self.0.iter().map(|field| field.as_str()).collect();
        f.write_str(&words.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn names(text: &str) -> NameFields {
        NameFields::parse(text).unwrap()
    }

    #[test]
    fn the_first_field_present_names_the_person() {
        // oauth2-proxy with OIDC: the subject as the user, the readable name beside it.
        let oidc = HashMap::from([
            (NameField::User, "1234567890"),
            (NameField::PreferredUsername, "jane.doe"),
            (NameField::Email, "jane.doe@example.com"),
        ]);
        // With GitHub: the login as the user, no preferred username.
        let github = HashMap::from([
            (NameField::User, "octocat"),
            (NameField::Email, "octocat@example.com"),
        ]);
        let of = |map: &HashMap<NameField, &'static str>, fields: &NameFields| {
            fields.identify(|field| map.get(&field).copied())
        };
        let default = NameFields::default();
        assert_eq!(of(&oidc, &default).as_deref(), Some("jane.doe"));
        assert_eq!(of(&github, &default).as_deref(), Some("octocat"));
        assert_eq!(of(&oidc, &names("user")).as_deref(), Some("1234567890"));
        assert_eq!(
            of(&github, &names("email")).as_deref(),
            Some("octocat@example.com")
        );
        assert_eq!(of(&github, &names("preferred-username")), None);
        // A blank value is no identity; the next field is read.
        let blank = HashMap::from([(NameField::PreferredUsername, " "), (NameField::User, "x")]);
        assert_eq!(of(&blank, &default).as_deref(), Some("x"));
        // An identity that is not one (a line break in it) names nobody.
        let bad = HashMap::from([(NameField::User, "a\nb")]);
        assert_eq!(of(&bad, &default), None);
    }

    #[test]
    fn identity_from_is_parsed_strictly() {
        assert_eq!(
            names(" preferred-username , user ").to_string(),
            "preferred-username,user"
        );
        assert_eq!(NameFields::default().to_string(), "preferred-username,user");
        for bad in ["", "login", "user,user", "user,,email"] {
            assert!(NameFields::parse(bad).is_err(), "{bad:?}");
        }
    }
}
