//! Who is asking: the signed-in user, read only from the headers the configured authenticator
//! sets (the gateway strips any a client sends itself), or a fixed fake user for local runs.
//!
//! Which header names a person is a choice ([`NameFields`], `--identity-from`): oauth2-proxy
//! sets the user to the GitHub login with the GitHub provider but to the opaque OIDC `sub`
//! claim (`1234567890`) with OIDC, where `preferred_username` is the readable name. The default,
//! the preferred username where the provider gives one and else the user, names people
//! readably with both; envs are named after it, and the config's `admins` list it.

use actix_web::HttpRequest;
use ephemerator_core::validate::validate_identity;

use crate::error::DashError;

/// Where identities come from (`--identity-headers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `X-Auth-Request-*`: the gateway passes oauth2-proxy's auth answer on.
    AuthRequest,
    /// `X-Forwarded-*`: oauth2-proxy in front, proxying to the dashboard.
    Forwarded,
    /// Everyone is this user (`--auth-fake-user`, local runs only).
    Fake(String),
}

/// One of oauth2-proxy's identity headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Its name in `--identity-from`, and the end of its header's name.
    pub fn as_str(self) -> &'static str {
        match self {
            NameField::PreferredUsername => "preferred-username",
            NameField::User => "user",
            NameField::Email => "email",
        }
    }

    fn header(self, source: &IdentitySource) -> &'static str {
        match (source, self) {
            (IdentitySource::Forwarded, NameField::PreferredUsername) => {
                "x-forwarded-preferred-username"
            }
            (IdentitySource::Forwarded, NameField::User) => "x-forwarded-user",
            (IdentitySource::Forwarded, NameField::Email) => "x-forwarded-email",
            (_, NameField::PreferredUsername) => "x-auth-request-preferred-username",
            (_, NameField::User) => "x-auth-request-user",
            (_, NameField::Email) => "x-auth-request-email",
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
}

impl std::fmt::Display for NameFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<&str> = self.0.iter().map(|field| field.as_str()).collect();
        f.write_str(&words.join(","))
    }
}

impl IdentitySource {
    /// The identity of `request`: the first of `names`' headers that is present.
    pub fn identify(&self, names: &NameFields, request: &HttpRequest) -> Result<String, DashError> {
        if let IdentitySource::Fake(user) = self {
            return Ok(user.clone());
        }
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        let identity = names
            .0
            .iter()
            .find_map(|field| header(field.header(self)))
            .ok_or(DashError::NotSignedIn)?;
        validate_identity(&identity).map_err(|_| DashError::NotSignedIn)?;
        Ok(identity)
    }
}

/// The signed-in user of a request (extracted in [`crate::routes`]; failing, the "sign in"
/// page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The identity, as the authenticator gave it: the owner recorded on envs.
    pub identity: String,
    /// Whether the config lists the identity as an admin.
    pub admin: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn names(text: &str) -> NameFields {
        NameFields::parse(text).unwrap()
    }

    #[test]
    fn the_first_header_present_names_the_person() {
        // oauth2-proxy with OIDC: the subject as the user, the readable name beside it.
        let oidc = TestRequest::default()
            .insert_header(("x-auth-request-user", "1234567890"))
            .insert_header(("x-auth-request-preferred-username", "jane.doe"))
            .insert_header(("x-auth-request-email", "jane.doe@example.com"))
            .to_http_request();
        // With GitHub: the login as the user, no preferred username.
        let github = TestRequest::default()
            .insert_header(("x-auth-request-user", "octocat"))
            .insert_header(("x-auth-request-email", "octocat@example.com"))
            .to_http_request();
        let source = IdentitySource::AuthRequest;
        let default = NameFields::default();
        assert_eq!(source.identify(&default, &oidc).unwrap(), "jane.doe");
        assert_eq!(source.identify(&default, &github).unwrap(), "octocat");
        assert_eq!(
            source.identify(&names("user"), &oidc).unwrap(),
            "1234567890"
        );
        assert_eq!(
            source.identify(&names("email"), &github).unwrap(),
            "octocat@example.com"
        );
        // Only the configured headers count.
        assert!(
            source
                .identify(&names("preferred-username"), &github)
                .is_err()
        );
        // The other source's headers are not this one's.
        assert!(IdentitySource::Forwarded.identify(&default, &oidc).is_err());
        let forwarded = TestRequest::default()
            .insert_header(("x-forwarded-preferred-username", "jane.doe"))
            .to_http_request();
        assert_eq!(
            IdentitySource::Forwarded
                .identify(&default, &forwarded)
                .unwrap(),
            "jane.doe"
        );
        // An empty header is no identity; the next one is read.
        let empty = TestRequest::default()
            .insert_header(("x-auth-request-preferred-username", " "))
            .insert_header(("x-auth-request-user", "octocat"))
            .to_http_request();
        assert_eq!(source.identify(&default, &empty).unwrap(), "octocat");
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
