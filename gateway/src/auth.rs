//! Authentication: every request (but oauth2-proxy's own pages) is checked with a subrequest
//! to oauth2-proxy's `/oauth2/auth`, as nginx's `auth_request` does, or not at all in the
//! explicit `none` mode of local runs.
//!
//! Only oauth2-proxy's own cookies are sent in the subrequest: an env's other cookies and its
//! `Authorization` header are the env's business, never the authenticator's.
//!
//! Allowed answers are cached per session cookie for `cache_ttl` (default 5 s), keyed by a
//! SHA-256 of the cookie so no session is kept in memory in the clear. Why that is safe: with
//! oauth2-proxy's cookie session store a session's validity is a property of the cookie itself
//! (signed, with its own expiry), so the only thing the cache can delay is noticing that a
//! cookie expired, by at most the TTL. Signing out replaces the cookie, so the next request has
//! another key. Answers that refresh the cookie (`Set-Cookie`) are never cached, and neither
//! are refusals. A page of a Tilt UI fires dozens of requests at once; the cache turns those
//! into one subrequest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{COOKIE, HOST, HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use sha2::{Digest, Sha256};

use crate::headers::{duplicated_session_cookies, session_cookies};
use crate::metrics::Metrics;

/// oauth2-proxy's default session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "_oauth2_proxy";
/// Default time an allowed answer is reused (see the module docs).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most cached answers; past it expired ones are dropped, then all.
const CACHE_LIMIT: usize = 10_000;

/// The identity headers of oauth2-proxy's answer that are passed on. `X-Auth-Request-Access-
/// Token` is deliberately not: an env must never hold the user's OAuth token.
const PASSED_IDENTITY: [&str; 4] = [
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
];

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Nobody is asked; every request goes on without an identity (local runs only).
    None,
    /// oauth2-proxy at `url` (e.g. `http://oauth2-proxy:4180`) checks every request.
    OAuth2Proxy {
        /// Where oauth2-proxy listens; `/oauth2/auth` is asked there.
        url: Uri,
        /// Its session cookie name (`--cookie-name`).
        cookie_name: String,
        /// How long an allowed answer is reused.
        cache_ttl: Duration,
    },
}

/// What a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on, with these identity headers set on the request and these cookies (a refreshed
    /// session) set on the response.
    Allowed(Arc<Grant>),
    /// No valid session: sign in. oauth2-proxy clears a session it refuses (a tampered,
    /// expired or no longer allowed one) with these `Set-Cookie` values, passed to the client
    /// so that its next request is not another round trip with the stale cookie.
    SignIn(Vec<HeaderValue>),
    /// Signed in but not allowed. oauth2-proxy answers 403 only to the `allowed_groups` and
    /// `allowed_emails` query parameters, which the gateway does not send (a person who fails
    /// its org or e-mail checks gets 401 and signs in again); kept for an authenticator that
    /// does.
    Forbidden,
    /// oauth2-proxy did not answer usefully; the request is refused (fail closed).
    Unavailable(String),
    /// The request carries oauth2-proxy's cookie of these names more than once: refused
    /// before oauth2-proxy is asked (it would take the first, perhaps a session a page planted).
    DuplicateSession(Vec<String>),
}

/// What an allowed request carries on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// Identity headers for the upstream.
    pub identity: Vec<(HeaderName, HeaderValue)>,
    /// `Set-Cookie` values of oauth2-proxy's answer, for the client.
    pub set_cookies: Vec<HeaderValue>,
}

/// The request being checked.
pub struct Subject<'a> {
    /// Its headers (cookies are read from them).
    pub headers: &'a HeaderMap,
    /// The host it asked for.
    pub host: &'a str,
    /// Its path and query.
    pub uri: &'a Uri,
    /// Its method.
    pub method: &'a hyper::Method,
    /// The client's address.
    pub client: IpAddr,
    /// The scheme clients use.
    pub proto: &'static str,
}

/// Allowed answers by session key: when each stops being reused, and the answer.
type GrantCache = HashMap<[u8; 32], (Instant, Arc<Grant>)>;

/// The client of auth subrequests (one per worker thread: see [`crate::Upstreams`]).
pub type AuthClient = Client<HttpConnector, Empty<Bytes>>;

/// Checks requests as [`AuthMode`] says.
pub struct Authenticator {
    mode: AuthMode,
    /// The grant of `AuthMode::None`, shared rather than made per request.
    anonymous: Arc<Grant>,
    timeout: Duration,
    cache: Mutex<GrantCache>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    /// An authenticator for `mode`; subrequests time out after `timeout`.
    pub fn new(mode: AuthMode, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Authenticator {
            mode,
            anonymous: Arc::default(),
            timeout,
            cache: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The session cookie name, when oauth2-proxy is in use.
    pub fn cookie_name(&self) -> Option<&str> {
        match &self.mode {
            AuthMode::None => None,
            AuthMode::OAuth2Proxy { cookie_name, .. } => Some(cookie_name),
        }
    }

    /// The oauth2-proxy address, when it is in use.
    pub fn oauth2_proxy(&self) -> Option<&Uri> {
        match &self.mode {
            AuthMode::None => None,
            AuthMode::OAuth2Proxy { url, .. } => Some(url),
        }
    }

    /// The longest wait for oauth2-proxy.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks one request, asking oauth2-proxy through `client` when needed.
    pub async fn check(&self, subject: &Subject<'_>, client: &AuthClient) -> Verdict {
        let AuthMode::OAuth2Proxy {
            url,
            cookie_name,
            cache_ttl,
        } = &self.mode
        else {
            return Verdict::Allowed(self.anonymous.clone());
        };
        let duplicated = duplicated_session_cookies(subject.headers, cookie_name);
        if !duplicated.is_empty() {
            return Verdict::DuplicateSession(duplicated);
        }
        // Without a session cookie oauth2-proxy can only say 401: spare it the question.
        let Some(cookies) = session_cookies(subject.headers, cookie_name) else {
            return Verdict::SignIn(Vec::new());
        };
        let key: [u8; 32] = Sha256::digest(cookies.as_bytes()).into();
        if let Some(grant) = self.cached(&key) {
            self.metrics.auth_cache_hit();
            return Verdict::Allowed(grant);
        }
        let started = Instant::now();
        let verdict = self.ask(client, url, &cookies, subject).await;
        self.metrics
            .auth_subrequest(started.elapsed().as_secs_f64(), verdict_label(&verdict));
        if let Verdict::Allowed(grant) = &verdict
            && grant.set_cookies.is_empty()
            && !cache_ttl.is_zero()
        {
            self.remember(key, grant.clone(), *cache_ttl);
        }
        verdict
    }

    async fn ask(
        &self,
        client: &AuthClient,
        base: &Uri,
        cookies: &str,
        subject: &Subject<'_>,
    ) -> Verdict {
        let uri = match auth_uri(base) {
            Ok(uri) => uri,
            Err(problem) => return Verdict::Unavailable(problem),
        };
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        let value = |text: &str| HeaderValue::from_str(text).ok();
        for (name, text) in [
            (COOKIE.as_str(), cookies.to_string()),
            (HOST.as_str(), subject.host.to_string()),
            ("x-forwarded-host", subject.host.to_string()),
            ("x-forwarded-proto", subject.proto.to_string()),
            ("x-forwarded-uri", subject.uri.to_string()),
            ("x-forwarded-method", subject.method.to_string()),
            ("x-forwarded-for", subject.client.to_string()),
        ] {
            if let Some(v) = value(&text) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        let response = match tokio::time::timeout(self.timeout, client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                return Verdict::Unavailable(format!("oauth2-proxy did not answer: {error}"));
            }
            Err(_) => {
                return Verdict::Unavailable(format!(
                    "oauth2-proxy did not answer within {:?}",
                    self.timeout
                ));
            }
        };
        // The body (a short text) is not needed; dropping it lets the connection be reused
        // once drained by hyper.
        let status = response.status();
        let headers = response.headers();
        match status {
            StatusCode::ACCEPTED | StatusCode::OK => Verdict::Allowed(Arc::new(Grant {
                identity: PASSED_IDENTITY
                    .iter()
                    .filter_map(|name| {
                        let value = headers.get(*name)?.clone();
                        Some((HeaderName::from_static(name), value))
                    })
                    .collect(),
                set_cookies: headers.get_all(SET_COOKIE).iter().cloned().collect(),
            })),
            StatusCode::UNAUTHORIZED => {
                Verdict::SignIn(headers.get_all(SET_COOKIE).iter().cloned().collect())
            }
            StatusCode::FORBIDDEN => Verdict::Forbidden,
            other => Verdict::Unavailable(format!("oauth2-proxy answered {other}")),
        }
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Arc<Grant>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (expires, grant) = cache.get(key)?;
        (Instant::now() < *expires).then(|| grant.clone())
    }

    fn remember(&self, key: [u8; 32], grant: Arc<Grant>, ttl: Duration) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|_, (expires, _)| *expires > now);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(key, (now + ttl, grant));
    }
}

fn auth_uri(base: &Uri) -> Result<Uri, String> {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base
        .authority()
        .ok_or_else(|| format!("the oauth2-proxy URL {base} has no host"))?;
    format!("{scheme}://{authority}/oauth2/auth")
        .parse()
        .map_err(|error| format!("the oauth2-proxy URL {base}: {error}"))
}

fn verdict_label(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Allowed(_) => "allowed",
        Verdict::SignIn(_) => "sign_in",
        Verdict::Forbidden => "forbidden",
        Verdict::Unavailable(_) => "unavailable",
        Verdict::DuplicateSession(_) => "duplicate_session",
    }
}

/// Where a browser is sent to sign in: oauth2-proxy's sign-in page on the gateway host, with
/// `rd` (where to return afterwards) the URL the browser asked for.
pub fn sign_in_location(proto: &str, dashboard_authority: &str, original_url: &str) -> String {
    let rd: String = url::form_urlencoded::byte_serialize(original_url.as_bytes()).collect();
    format!("{proto}://{dashboard_authority}/oauth2/sign_in?rd={rd}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_to_the_page_asked_for() {
        assert_eq!(
            sign_in_location(
                "https",
                "preview.example.com",
                "https://8000---a.preview.example.com/x?y=1&z=2"
            ),
            "https://preview.example.com/oauth2/sign_in?rd=https%3A%2F%2F8000---a.preview.example.com%2Fx%3Fy%3D1%26z%3D2"
        );
    }

    #[test]
    fn the_auth_endpoint_is_on_the_proxy_root() {
        assert_eq!(
            auth_uri(&"http://oauth2-proxy:4180/prefix".parse().unwrap()).unwrap(),
            "http://oauth2-proxy:4180/oauth2/auth"
        );
        assert!(auth_uri(&"/relative".parse().unwrap()).is_err());
    }
}
