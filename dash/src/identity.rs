//! Who is asking: the signed-in user, read only from the headers the configured authenticator
//! sets (the gateway strips any a client sends itself), or a fixed fake user for local runs.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use ephemerator_core::validate::validate_identity;

use crate::error::DashError;
use crate::state::AppState;

/// Where identities come from (`--identity-headers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `X-Auth-Request-User` / `-Email`: the gateway passes oauth2-proxy's auth answer on.
    AuthRequest,
    /// `X-Forwarded-User` / `-Email`: oauth2-proxy in front, proxying to the dashboard.
    Forwarded,
    /// Everyone is this user (`--auth-fake-user`, local runs only).
    Fake(String),
}

impl IdentitySource {
    /// The user and e-mail headers of this source.
    fn headers(&self) -> Option<(&'static str, &'static str)> {
        match self {
            IdentitySource::AuthRequest => Some(("x-auth-request-user", "x-auth-request-email")),
            IdentitySource::Forwarded => Some(("x-forwarded-user", "x-forwarded-email")),
            IdentitySource::Fake(_) => None,
        }
    }

    /// The identity of `request`: the user header, else the e-mail header.
    pub fn identify(&self, request: &HttpRequest) -> Result<String, DashError> {
        let (user_header, email_header) = match self.headers() {
            Some(headers) => headers,
            None => {
                let IdentitySource::Fake(user) = self else {
                    unreachable!("only the fake source has no headers")
                };
                return Ok(user.clone());
            }
        };
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        let identity = header(user_header)
            .or_else(|| header(email_header))
            .ok_or(DashError::NotSignedIn)?;
        validate_identity(&identity).map_err(|_| DashError::NotSignedIn)?;
        Ok(identity)
    }
}

/// The signed-in user of a request. Extracting it fails with the "sign in" page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The identity, as the authenticator gave it: the owner recorded on envs.
    pub identity: String,
    /// Whether the config lists the identity as an admin.
    pub admin: bool,
}

impl FromRequest for User {
    type Error = DashError;
    type Future = Ready<Result<User, DashError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = request.app_data::<web::Data<AppState>>() else {
            return ready(Err(DashError::Internal("no application state".into())));
        };
        let user = state.identity.identify(request).map(|identity| {
            // The request's log line names who made it.
            if let Some(span) = request.extensions().get::<tracing_actix_web::RootSpan>() {
                span.record("user", identity.as_str());
            }
            User {
                admin: state.config.current().is_admin(&identity),
                identity,
            }
        });
        ready(user)
    }
}
