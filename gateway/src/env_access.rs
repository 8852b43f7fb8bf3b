//! Who may open an env, decided as pure functions: the env cookie's contents, the one-time
//! code's, the share-link grant's, which of them admit a visitor now, and which requests from
//! other sites' pages are refused. [`crate::env_gate`] carries the decisions out.
//!
//! The flow (README: "Who may open an env"): env hosts never see the sign-in cookie, which
//! stays on the dashboard's host. A browser without a valid env cookie is sent to
//! [`ENV_SIGN_IN_PATH`](crate::route::ENV_SIGN_IN_PATH) on the dashboard's host, with the
//! digest of a nonce it keeps in a host-only cookie of the env host. There the gateway knows
//! who the visitor is (the sign-in, or a share link they opened) and whether the env's level
//! admits them, and sends them back with a one-time [`Code`]: signed, bound to the env's UID,
//! the port and the nonce, for [`CODE_LIFETIME`]. The env host takes it once, only from the
//! browser holding the nonce, and sets its own host-only, HttpOnly, signed env cookie
//! ([`EnvPass`]), which the gateway checks on every request with no round trip.

use ephemerator_core::Config;
use ephemerator_core::access::{Access, Visitor};
use ephemerator_core::hosts::parse_env_port_host;
use hyper::Method;
use hyper::header::{HeaderMap, ORIGIN, REFERER};
use serde::{Deserialize, Serialize};

use crate::table::EnvEntry;

/// How long a one-time code is good for, in seconds.
pub const CODE_LIFETIME: u64 = 60;
/// How long the nonce of a sign-in in progress lives, in seconds.
pub const STATE_LIFETIME: u64 = 300;
/// How long a signed-in person's env cookie lives, in seconds. The env's level and the
/// config's admins are checked on every request; whether the sign-in itself is still good is
/// checked again on the first page loaded after [`PASS_RECHECK`].
pub const PASS_LIFETIME: u64 = 12 * 3600;
/// After this many seconds, a page load goes through the dashboard's host again (a redirect
/// the person does not see), so that signing out or leaving the org takes effect within it.
pub const PASS_RECHECK: u64 = 3600;
/// Most share-link grants one browser keeps (the newest).
pub const MAX_GRANTS: usize = 8;
/// Longest identity header value carried in a cookie; longer ones are left out.
const MAX_CARRIED_HEADER: usize = 1024;

/// The purposes signed into each kind of token (see `ephemerator_kit::signing`).
pub mod purpose {
    /// The env host's cookie.
    pub const PASS: &str = "env-pass";
    /// The one-time code.
    pub const CODE: &str = "env-code";
    /// The dashboard host's cookie of share-link grants.
    pub const GRANTS: &str = "link-grants";
}

/// The gateway's cookie names: `__Host-` over https, so that no other host can set or shadow
/// them; without the prefix over plain HTTP (local runs), where browsers refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieNames {
    /// The env host's pass.
    pub pass: &'static str,
    /// The env host's nonce while signing in.
    pub state: &'static str,
    /// The dashboard host's share-link grants.
    pub grants: &'static str,
    secure: bool,
}

impl CookieNames {
    /// The names for clients using `proto`.
    pub fn for_proto(proto: &str) -> CookieNames {
        match proto {
            "https" => CookieNames {
                pass: "__Host-ephemerator_env",
                state: "__Host-ephemerator_state",
                grants: "__Host-ephemerator_links",
                secure: true,
            },
            _ => CookieNames {
                pass: "ephemerator_env",
                state: "ephemerator_state",
                grants: "ephemerator_links",
                secure: false,
            },
        }
    }

    /// Every name, to keep them from envs and the dashboard.
    pub fn all(&self) -> [&'static str; 3] {
        [self.pass, self.state, self.grants]
    }

    /// A `Set-Cookie` value: host-only, `Path=/`, HttpOnly, `SameSite=Lax` (a link from
    /// elsewhere still opens the env signed in), `Secure` over https.
    pub fn set(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
    }

    /// A `Set-Cookie` value that removes cookie `name`.
    pub fn clear(&self, name: &str) -> String {
        self.set(name, "", 0)
    }
}

/// Who a pass or a code lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Who {
    /// A signed-in person, and the identity headers the env's app gets for them.
    #[serde(rename = "p")]
    Person {
        /// Their identity, named as the dashboard names them.
        #[serde(rename = "i")]
        identity: String,
        /// oauth2-proxy's identity headers, passed to the env's app.
        #[serde(rename = "h")]
        headers: Vec<(String, String)>,
    },
    /// A visitor of a share link.
    #[serde(rename = "l")]
    Link {
        /// The link's id.
        id: String,
    },
}

/// The env cookie's contents (signed for [`PASS_LIFETIME`] or the link's life).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvPass {
    /// The env's UID.
    pub uid: String,
    /// The port of the host it was set on.
    pub port: u16,
    /// Who.
    pub who: Who,
    /// When it was made (Unix seconds).
    pub issued: u64,
}

/// A one-time code's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    /// The env's UID.
    pub uid: String,
    /// The port of the host it is for.
    pub port: u16,
    /// The digest of the nonce the env host gave the browser.
    pub state: String,
    /// Who.
    pub who: Who,
}

/// A share link a browser opened: kept (signed) on the dashboard's host, so that every port
/// of the env opens for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The env's name.
    pub env: String,
    /// The env's UID.
    pub uid: String,
    /// The link's id.
    pub id: String,
}

/// What the gateway checks a visitor against: the env and the config in force.
pub struct Standing<'a> {
    /// The env.
    pub entry: &'a EnvEntry,
    /// The config (its access policy and admins).
    pub config: &'a Config,
    /// Now (Unix seconds).
    pub now: u64,
}

impl Standing<'_> {
    /// The level in force.
    pub fn level(&self) -> Access {
        self.config.access.effective(self.entry.access)
    }

    /// Whether the env's level admits this signed-in person.
    pub fn admits_person(&self, identity: &str) -> bool {
        let visitor = Visitor::Person {
            identity,
            admin: self.config.is_admin(identity),
        };
        self.level().admits(&self.entry.owner, visitor)
    }

    /// Whether share link `id` of the env is there and live.
    pub fn link_is_live(&self, id: &str) -> bool {
        let now = jiff::Timestamp::from_second(i64::try_from(self.now).unwrap_or(i64::MAX))
            .unwrap_or(jiff::Timestamp::MAX);
        self.entry
            .links
            .iter()
            .any(|link| link.id == id && link.is_live(now))
    }

    /// Whether `who` may open the env now.
    pub fn admits(&self, who: &Who) -> bool {
        match who {
            Who::Person { identity, .. } => self.admits_person(identity),
            Who::Link { id } => self.link_is_live(id),
        }
    }

    /// Whether `pass` (already verified) opens port `port` of this env now.
    pub fn pass_opens(&self, pass: &EnvPass, port: u16) -> bool {
        pass.uid == self.entry.uid && pass.port == port && self.admits(&pass.who)
    }
}

/// Whether a person's pass is old enough that a page load should check the sign-in again.
pub fn pass_is_due(pass: &EnvPass, now: u64) -> bool {
    matches!(pass.who, Who::Person { .. }) && now.saturating_sub(pass.issued) >= PASS_RECHECK
}

/// The identity headers of oauth2-proxy's answer a cookie carries: those that fit.
pub fn carried_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    headers
        .filter(|(_, value)| value.len() <= MAX_CARRIED_HEADER)
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Why a request from another site's page is refused, if it is (non-public envs only).
///
/// A page of one env may not act in another with the visitor's credentials. Browsers say
/// where a request comes from in `Sec-Fetch-Site`: requests from the env's own host
/// (`same-origin`) or typed by the person (`none`) pass; from any other host (`same-site`:
/// another env, or the dashboard; `cross-site`: anywhere else) only a top-level page load
/// (`GET` or `HEAD`, `Sec-Fetch-Mode: navigate`, `Sec-Fetch-Dest: document`: a link followed)
/// passes, or a request whose `Origin` (or, failing that, `Referer`) is a host of this same
/// env (one of its ports calling another). So another env's page can link to this env, but
/// not frame it, fetch from it, post to it, or open its WebSockets. Without `Sec-Fetch-Site`
/// (not a browser, or an old one) the `Origin` alone decides, where there is one.
pub fn cross_site_refusal(
    method: &Method,
    headers: &HeaderMap,
    env: &str,
    gateway_host: &str,
) -> Option<&'static str> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let same_env = |url: &str| {
        url::Url::parse(url).ok().is_some_and(|url| {
            let host = url.host_str().unwrap_or("");
            parse_env_port_host(host, gateway_host).is_some_and(|h| h.env_name == env)
        })
    };
    let initiator = header(ORIGIN.as_str()).or_else(|| header(REFERER.as_str()));
    match header("sec-fetch-site") {
        Some("same-origin" | "none") => None,
        Some(_) => {
            let safe = *method == Method::GET || *method == Method::HEAD;
            let top_level = safe
                && header("sec-fetch-mode") == Some("navigate")
                && header("sec-fetch-dest") == Some("document");
            if top_level || initiator.is_some_and(same_env) {
                None
            } else {
                Some("it comes from a page of another site")
            }
        }
        None => match header(ORIGIN.as_str()) {
            Some(origin) if !same_env(origin) => Some("its Origin is another site"),
            _ => None,
        },
    }
}

/// Where to send a browser back to on its env host: `path` if it is a local path (starts with
/// one `/`, not `//` or `/\`, no control characters, at most 2 KiB), else `/`. Never another
/// host: no open redirect.
pub fn safe_return_path(path: &str) -> &str {
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && !path.chars().any(char::is_control);
    if local { path } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemerator_core::EnvStatus;
    use ephemerator_core::share::ShareLink;
    use hyper::header::{HeaderName, HeaderValue};
    use std::sync::Arc;

    const GATEWAY: &str = "preview.example.com";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn pages_of_other_sites_may_link_to_an_env_and_nothing_more() {
        let other_env = "http://8000---mallory.preview.example.com";
        let same_env = "http://9000---jane.preview.example.com";
        let get = Method::GET;
        let post = Method::POST;
        let navigate = [
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ];
        // (case, method, request headers, passes)
        type Case<'a> = (&'a str, &'a Method, Vec<(&'a str, &'a str)>, bool);
        let cases: Vec<Case> = vec![
            (
                "typed or bookmarked",
                &get,
                vec![("sec-fetch-site", "none")],
                true,
            ),
            (
                "its own page",
                &post,
                vec![("sec-fetch-site", "same-origin")],
                true,
            ),
            (
                "a link from another env",
                &get,
                [vec![("sec-fetch-site", "same-site")], navigate.to_vec()].concat(),
                true,
            ),
            (
                "a link from elsewhere",
                &get,
                [vec![("sec-fetch-site", "cross-site")], navigate.to_vec()].concat(),
                true,
            ),
            (
                "a form posted from another env",
                &post,
                [
                    vec![("sec-fetch-site", "same-site"), ("origin", other_env)],
                    navigate.to_vec(),
                ]
                .concat(),
                false,
            ),
            (
                "framed by another env",
                &get,
                vec![
                    ("sec-fetch-site", "same-site"),
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-dest", "iframe"),
                ],
                false,
            ),
            (
                "a fetch from another env",
                &get,
                vec![
                    ("sec-fetch-site", "same-site"),
                    ("sec-fetch-mode", "cors"),
                    ("origin", other_env),
                ],
                false,
            ),
            (
                "an image of another env's page, origin hidden",
                &get,
                vec![
                    ("sec-fetch-site", "same-site"),
                    ("sec-fetch-mode", "no-cors"),
                ],
                false,
            ),
            (
                "a WebSocket from another env",
                &get,
                vec![
                    ("sec-fetch-site", "same-site"),
                    ("sec-fetch-mode", "websocket"),
                    ("origin", other_env),
                ],
                false,
            ),
            (
                "a fetch from another port of the same env",
                &post,
                vec![("sec-fetch-site", "same-site"), ("origin", same_env)],
                true,
            ),
            (
                "an image of another port of the same env",
                &get,
                vec![
                    ("sec-fetch-site", "same-site"),
                    ("referer", "http://9000---jane.preview.example.com/page"),
                ],
                true,
            ),
            ("not a browser", &post, vec![], true),
            (
                "an old browser posting from another env",
                &post,
                vec![("origin", other_env)],
                false,
            ),
            (
                "an old browser, sandboxed page",
                &post,
                vec![("origin", "null")],
                false,
            ),
            (
                "a look-alike host",
                &post,
                vec![
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "http://9000---jane.preview.example.com.evil.com"),
                ],
                false,
            ),
        ];
        for (case, method, pairs, passes) in cases {
            let refusal = cross_site_refusal(method, &headers(&pairs), "jane", GATEWAY);
            assert_eq!(refusal.is_none(), passes, "{case}: {refusal:?}");
        }
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        for (asked, returned) in [
            ("/", "/"),
            ("/a/b?c=d#e", "/a/b?c=d#e"),
            ("//evil.com/x", "/"),
            ("/\\evil.com", "/"),
            ("https://evil.com/", "/"),
            ("", "/"),
            ("/a\nb", "/"),
        ] {
            assert_eq!(safe_return_path(asked), returned, "{asked:?}");
        }
        assert_eq!(safe_return_path(&format!("/{}", "a".repeat(3000))), "/");
    }

    fn entry(access: Option<Access>) -> EnvEntry {
        EnvEntry {
            status: Arc::new(EnvStatus::default()),
            uid: "uid-1".into(),
            owner: "jane.doe".into(),
            access,
            links: vec![ShareLink {
                id: "link0001".into(),
                expires: jiff::Timestamp::from_second(1_000).unwrap(),
                label: String::new(),
                created_by: "jane.doe".into(),
                created: jiff::Timestamp::from_second(0).unwrap(),
            }],
        }
    }

    fn person(identity: &str) -> Who {
        Who::Person {
            identity: identity.into(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_pass_opens_its_own_env_and_port_while_the_level_or_the_link_allows() {
        let config = Config::from_yaml_str(
            "gatewayHost: preview.example.com\nadmins: [root]\naccess: {max: public}\n",
            "test.yaml",
        )
        .unwrap();
        let owner_only = entry(Some(Access::Owner));
        let standing = Standing {
            entry: &owner_only,
            config: &config,
            now: 500,
        };
        let pass = |who: Who| EnvPass {
            uid: "uid-1".into(),
            port: 8000,
            who,
            issued: 0,
        };
        assert!(standing.pass_opens(&pass(person("jane.doe")), 8000));
        assert!(standing.pass_opens(&pass(person("root")), 8000), "an admin");
        assert!(!standing.pass_opens(&pass(person("octocat")), 8000));
        assert!(
            !standing.pass_opens(&pass(person("jane.doe")), 9000),
            "another port"
        );
        let link = |id: &str| Who::Link { id: id.into() };
        assert!(
            standing.pass_opens(&pass(link("link0001")), 8000),
            "links open any level"
        );
        assert!(
            !standing.pass_opens(&pass(link("link0002")), 8000),
            "revoked"
        );
        let later = Standing {
            now: 1_000,
            ..standing
        };
        assert!(!later.pass_opens(&pass(link("link0001")), 8000), "expired");
        let recreated = EnvEntry {
            uid: "uid-2".into(),
            ..entry(None)
        };
        let standing = Standing {
            entry: &recreated,
            config: &config,
            now: 500,
        };
        assert!(
            !standing.pass_opens(&pass(person("jane.doe")), 8000),
            "a later env of the same name"
        );
        // team: anyone signed in.
        let team = entry(None);
        let standing = Standing {
            entry: &team,
            config: &config,
            now: 500,
        };
        assert_eq!(standing.level(), Access::Team);
        assert!(standing.pass_opens(&pass(person("octocat")), 8000));
    }

    #[test]
    fn a_person_is_checked_again_after_an_hour_and_a_link_visitor_never() {
        let pass = |who: Who| EnvPass {
            uid: "u".into(),
            port: 1,
            who,
            issued: 1_000,
        };
        assert!(!pass_is_due(&pass(person("x")), 1_000 + PASS_RECHECK - 1));
        assert!(pass_is_due(&pass(person("x")), 1_000 + PASS_RECHECK));
        assert!(!pass_is_due(
            &pass(Who::Link { id: "l".into() }),
            1_000 + PASS_LIFETIME
        ));
    }

    #[test]
    fn cookies_are_host_only_and_http_only_and_prefixed_over_https() {
        let https = CookieNames::for_proto("https");
        assert_eq!(
            https.set(https.pass, "v", 60),
            "__Host-ephemerator_env=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        let http = CookieNames::for_proto("http");
        assert_eq!(
            http.clear(http.state),
            "ephemerator_state=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        );
        assert!(!http.set(http.pass, "v", 1).contains("Domain"));
    }
}
