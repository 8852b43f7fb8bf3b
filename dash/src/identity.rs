//! Who is asking: the signed-in user, read only from the headers the configured authenticator
//! sets (the gateway strips any a client sends itself), or a fixed fake user for local runs.
//!
//! Which header names a person is a choice ([`NameFields`], `--identity-from`), the one the
//! gateway makes too (see `ephemerator_core::identity`).

use actix_web::HttpRequest;
pub use ephemerator_core::identity::{NameField, NameFields};

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

impl IdentitySource {
    /// The identity of `request`: the first of `names`' headers that is present.
    pub fn identify(&self, names: &NameFields, request: &HttpRequest) -> Result<String, DashError> {
        if let IdentitySource::Fake(user) = self {
            return Ok(user.clone());
        }
        let forwarded = matches!(self, IdentitySource::Forwarded);
        names
            .identify(|field| {
                let name = match forwarded {
                    true => field.forwarded_header(),
                    false => field.auth_request_header(),
                };
                request.headers().get(name)?.to_str().ok()
            })
            .ok_or(DashError::NotSignedIn)
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
}
