//! Header hygiene, as pure functions on header maps: identity headers a client sends itself,
//! hop-by-hop headers, the `X-Forwarded-*` set, and the cookie rules that keep oauth2-proxy's
//! session away from envs.

use std::net::IpAddr;

use hyper::header::{
    CONNECTION, COOKIE, HOST, HeaderMap, HeaderName, HeaderValue, SET_COOKIE, UPGRADE,
};

/// Identity headers an authenticator sets: every header oauth2-proxy can set on a request it
/// passes on or on its auth answer, but `Authorization` (an env's own business; the gateway
/// never passes oauth2-proxy's on). Whatever a client sends under these names is removed from
/// every request, in every mode; after a successful check the gateway sets its own.
const IDENTITY_HEADERS: [&str; 7] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "gap-auth",
    "gap-signature",
];
/// Every header with this prefix is an identity header too (`X-Auth-Request-User`, ...).
const IDENTITY_PREFIX: &str = "x-auth-request-";

/// Removes every identity header (see [`IDENTITY_HEADERS`], [`IDENTITY_PREFIX`]).
pub fn strip_identity(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.starts_with(IDENTITY_PREFIX) || IDENTITY_HEADERS.contains(&name)
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
}

/// The hop-by-hop headers of RFC 9110 section 7.6.1 (plus the old `Proxy-Connection`), which
/// describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    hyper::header::PROXY_AUTHENTICATE,
    hyper::header::PROXY_AUTHORIZATION,
    hyper::header::TE,
    hyper::header::TRAILER,
    hyper::header::TRANSFER_ENCODING,
    UPGRADE,
];

/// Whether the request asks to switch protocols (a WebSocket): `Connection: upgrade` and an
/// `Upgrade` header.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE) && connection_tokens(headers).any(|t| t == "upgrade")
}

/// Removes the hop-by-hop headers and those the `Connection` header names. When `upgrade`
/// holds the protocol being switched to, `Connection: upgrade` and `Upgrade` are set again, so
/// the switch reaches the other side.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    let named: Vec<String> = connection_tokens(headers).collect();
    for name in named {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol);
    }
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
}

/// Sets `X-Forwarded-For` (the client's address appended to any list already there, as
/// proxies do), `X-Forwarded-Proto` and `X-Forwarded-Host` (the host the client asked for).
/// The `Host` header itself is kept: Tilt's WebSocket origin check compares it with `Origin`.
/// A client's own `Forwarded` header is removed: upstreams (actix-web's connection info, for
/// one) would believe it over `X-Forwarded-Host`.
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, proto: &'static str) {
    headers.remove(hyper::header::FORWARDED);
    let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{}, {client}", earlier.trim()),
        _ => client.to_string(),
    };
    if let Ok(chain) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", chain);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    match headers.get(HOST).cloned() {
        Some(host) => {
            headers.insert("x-forwarded-host", host);
        }
        None => {
            headers.remove("x-forwarded-host");
        }
    }
}

/// Whether a cookie named `name` belongs to oauth2-proxy, whose cookies are `cookie_name`,
/// `cookie_name_0`, `_1`... (a large session is split) and `cookie_name_..._csrf`.
pub fn is_session_cookie(name: &str, cookie_name: &str) -> bool {
    name == cookie_name
        || name
            .strip_prefix(cookie_name)
            .is_some_and(|rest| rest.starts_with('_'))
}

/// The `name=value` pairs of every `Cookie` header.
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
}

/// The values of every cookie named `name` the request carries, in the order sent.
pub fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    cookie_pairs(headers).filter_map(move |pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then_some(value.trim())
    })
}

/// Removes the cookies named in `names` from the request, keeping all others.
pub fn remove_cookies(headers: &mut HeaderMap, names: &[&str]) {
    remove_cookies_where(headers, |name| names.contains(&name));
}

/// Removes the request's cookies whose name `doomed` says, keeping all others (and the
/// `Cookie` headers untouched when none goes).
fn remove_cookies_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let mut removed = false;
    let kept: Vec<String> = cookie_pairs(headers)
        .filter(|pair| {
            let gone = doomed(self::cookie_name(pair));
            removed |= gone;
            !gone
        })
        .map(str::to_string)
        .collect();
    if !removed {
        return;
    }
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(COOKIE, value);
    }
}

/// Drops every `Set-Cookie` of a response that names one of `names`, with or without a
/// `__Host-` or `__Secure-` prefix: an env's app can never replace the gateway's own cookies.
/// Returns how many were dropped.
pub fn drop_cookies_named(headers: &mut HeaderMap, names: &[&str]) -> usize {
    let bare = |name: &str| {
        name.strip_prefix("__Host-")
            .or_else(|| name.strip_prefix("__Secure-"))
            .unwrap_or(name)
            .to_string()
    };
    let reserved: Vec<String> = names.iter().map(|name| bare(name)).collect();
    drop_set_cookies_where(headers, |text| {
        let name = text.split(';').next().map_or("", self::cookie_name);
        reserved.contains(&bare(name))
    })
}

/// Drops every `Set-Cookie` that `doomed` says of (or that cannot be read), keeping the others
/// in order; returns how many were dropped.
fn drop_set_cookies_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) -> usize {
    let all: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    let kept: Vec<HeaderValue> = all
        .iter()
        .filter(|value| value.to_str().is_ok_and(|text| !doomed(text)))
        .cloned()
        .collect();
    let dropped = all.len() - kept.len();
    if dropped > 0 {
        headers.remove(SET_COOKIE);
        for value in kept {
            headers.append(SET_COOKIE, value);
        }
    }
    dropped
}

fn cookie_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name).trim()
}

/// oauth2-proxy's cookies from the request, as one `Cookie` value (`None` when there are
/// none): all that the authentication subrequest needs, and the key of its cache.
pub fn session_cookies(headers: &HeaderMap, cookie_name: &str) -> Option<String> {
    let pairs: Vec<&str> = cookie_pairs(headers)
        .filter(|pair| is_session_cookie(self::cookie_name(pair), cookie_name))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// The names of oauth2-proxy's cookies the request carries more than once (sorted; at most
/// [`MAX_DUPLICATES`]). A browser sends two cookies of one name when they differ in path or
/// domain, and only a page's script could have set the second one (the gateway drops every
/// `Domain` cookie an env answers with): an env's page, planting another session where the
/// dashboard's list would be fetched with it.
pub fn duplicated_session_cookies(headers: &HeaderMap, cookie_name: &str) -> Vec<String> {
    let mut names: Vec<&str> = cookie_pairs(headers)
        .map(self::cookie_name)
        .filter(|name| is_session_cookie(name, cookie_name))
        .collect();
    names.sort_unstable();
    let mut duplicated: Vec<String> = names
        .windows(2)
        .filter(|pair| pair[0] == pair[1])
        .map(|pair| pair[0].to_string())
        .collect();
    duplicated.dedup();
    duplicated.truncate(MAX_DUPLICATES);
    duplicated
}

/// Most duplicated cookie names cleared in one answer.
pub const MAX_DUPLICATES: usize = 8;
/// Most path segments of a request path a duplicate is cleared for.
const MAX_CLEARED_PATHS: usize = 8;

/// `Set-Cookie` values that remove a cookie of each of `names` planted for the request path
/// `path`, on the dashboard's domain `domain` (at `path`, each of its parents and `/`) or on
/// the request's own host (at `path` and each of its parents but `/`), sent with `Secure` when
/// `secure`. The session oauth2-proxy set is host-only at `/` (`deploy/` gives it no
/// `--cookie-domain`): the one pair left alone, so the person stays signed in. A planted cookie
/// of that same name, host and path would have replaced the session instead (no duplicate), and
/// only the env hosts' own pages could plant one for the parent domain.
pub fn clearing_cookies(
    names: &[String],
    path: &str,
    domain: &str,
    secure: bool,
) -> Vec<HeaderValue> {
    let mut paths = Vec::new();
    let mut prefix = String::new();
    for segment in path
        .split('/')
        .filter(|s| !s.is_empty())
        .take(MAX_CLEARED_PATHS)
    {
        prefix.push('/');
        prefix.push_str(segment);
        paths.push(prefix.clone());
    }
    let secure = if secure { "; Secure" } else { "" };
    let mut cookies = Vec::new();
    for name in names {
        for path in &paths {
            cookies.push(format!("{name}=; Path={path}; Max-Age=0{secure}"));
        }
        // On the domain, at `/` too: the session is never there.
        let on_domain = std::iter::once("/".to_string()).chain(paths.iter().cloned());
        for path in on_domain {
            cookies.push(format!(
                "{name}=; Path={path}; Domain={domain}; Max-Age=0{secure}"
            ));
        }
    }
    cookies
        .into_iter()
        .filter_map(|cookie| HeaderValue::from_str(&cookie).ok())
        .collect()
}

/// Removes oauth2-proxy's cookies from the request, keeping all others, so that an env never
/// sees (and can never replay) the user's session.
pub fn remove_session_cookies(headers: &mut HeaderMap, cookie_name: &str) {
    remove_cookies_where(headers, |name| is_session_cookie(name, cookie_name));
}

/// Drops every `Set-Cookie` of an env's response that has a `Domain` attribute (or cannot be
/// read): such a cookie would reach the parent domain, the dashboard and every other env, and
/// could overwrite the session. Host-only cookies stay with the env's own host. Returns how
/// many were dropped.
pub fn drop_domain_cookies(headers: &mut HeaderMap) -> usize {
    drop_set_cookies_where(headers, has_domain_attribute)
}

fn has_domain_attribute(set_cookie: &str) -> bool {
    set_cookie
        .split(';')
        .skip(1)
        .any(|attribute| cookie_name(attribute).eq_ignore_ascii_case("domain"))
}

/// Whether a refused request should be sent to sign in (a browser navigating) rather than get
/// a bare 401: a GET or HEAD that accepts HTML and is not an htmx request.
pub fn is_browser_navigation(method: &hyper::Method, headers: &HeaderMap) -> bool {
    let navigating = *method == hyper::Method::GET || *method == hyper::Method::HEAD;
    let html = headers
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.contains("text/html"));
    navigating && html && !headers.contains_key("hx-request")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn identity_headers_from_clients_are_removed() {
        let mut map = headers(&[
            ("X-Auth-Request-User", "mallory"),
            ("x-auth-request-email", "m@x"),
            ("X-Auth-Request-Access-Token", "t"),
            ("X-Forwarded-User", "mallory"),
            ("X-Forwarded-Email", "m@x"),
            ("X-Forwarded-Groups", "admins"),
            ("X-Forwarded-Preferred-Username", "m"),
            ("X-Forwarded-Access-Token", "t"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("Accept", "*/*"),
        ]);
        strip_identity(&mut map);
        let mut left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "x-forwarded-for"]);
    }

    #[test]
    fn hop_by_hop_headers_go_and_upgrades_are_kept_on_purpose() {
        let mut map = headers(&[
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic x"),
            ("Accept", "*/*"),
        ]);
        assert!(!is_upgrade(&map));
        remove_hop_by_hop(&mut map, None);
        let left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);

        let mut ws = headers(&[("Connection", "Upgrade"), ("Upgrade", "websocket")]);
        assert!(is_upgrade(&ws));
        let protocol = ws.get(UPGRADE).cloned();
        remove_hop_by_hop(&mut ws, protocol);
        assert_eq!(ws.get(CONNECTION).unwrap(), "upgrade");
        assert_eq!(ws.get(UPGRADE).unwrap(), "websocket");
    }

    #[test]
    fn forwarded_headers_append_the_client_and_keep_the_host() {
        let mut map = headers(&[
            ("Host", "8000---a.preview.test"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-Host", "evil.com"),
            ("Forwarded", "host=evil.com"),
        ]);
        set_forwarded(&mut map, "127.0.0.9".parse().unwrap(), "https");
        assert_eq!(map["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-forwarded-host"], "8000---a.preview.test");
        assert_eq!(map[HOST], "8000---a.preview.test");
        assert!(map.get(hyper::header::FORWARDED).is_none());
    }

    #[test]
    fn a_session_cookie_sent_twice_is_found_in_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("_oauth2_proxy=planted; theme=dark"),
        );
        headers.append(
            COOKIE,
            HeaderValue::from_static("theme=light; _oauth2_proxy=mine"),
        );
        assert_eq!(
            duplicated_session_cookies(&headers, "_oauth2_proxy"),
            vec!["_oauth2_proxy".to_string()]
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("_oauth2_proxy_0=a; _oauth2_proxy_1=b; x=1; x=2"),
        );
        assert!(duplicated_session_cookies(&headers, "_oauth2_proxy").is_empty());
    }

    #[test]
    fn clearing_a_planted_cookie_spares_the_host_only_session_at_the_root() {
        let cleared: Vec<String> = clearing_cookies(
            &["_oauth2_proxy".to_string()],
            "/envs/nicks/logs",
            "preview.localhost",
            true,
        )
        .iter()
        .map(|value| value.to_str().unwrap().to_string())
        .collect();
        for path in ["/envs", "/envs/nicks", "/envs/nicks/logs"] {
            assert!(cleared.contains(&format!(
                "_oauth2_proxy=; Path={path}; Domain=preview.localhost; Max-Age=0; Secure"
            )));
            assert!(cleared.contains(&format!("_oauth2_proxy=; Path={path}; Max-Age=0; Secure")));
        }
        assert!(cleared.contains(
            &"_oauth2_proxy=; Path=/; Domain=preview.localhost; Max-Age=0; Secure".to_string()
        ));
        assert!(
            !cleared.contains(&"_oauth2_proxy=; Path=/; Max-Age=0; Secure".to_string()),
            "the session itself is kept: {cleared:?}"
        );
        let deep = "/a".repeat(100);
        assert_eq!(
            clearing_cookies(&["_oauth2_proxy".to_string()], &deep, "x", false).len(),
            1 + 2 * 8
        );
    }

    #[test]
    fn session_cookies_are_found_and_removed_and_others_kept() {
        let mut map = headers(&[(
            "Cookie",
            "_oauth2_proxy_0=aaa; theme=dark; _oauth2_proxy_1=bbb; _oauth2_proxyx=keep",
        )]);
        map.append(COOKIE, HeaderValue::from_static("_oauth2_proxy=ccc; app=1"));
        assert_eq!(
            session_cookies(&map, "_oauth2_proxy").as_deref(),
            Some("_oauth2_proxy_0=aaa; _oauth2_proxy_1=bbb; _oauth2_proxy=ccc")
        );
        remove_session_cookies(&mut map, "_oauth2_proxy");
        assert_eq!(map.get_all(COOKIE).iter().count(), 1);
        assert_eq!(map[COOKIE], "theme=dark; _oauth2_proxyx=keep; app=1");

        let mut only_session = headers(&[("Cookie", "_oauth2_proxy=ccc")]);
        remove_session_cookies(&mut only_session, "_oauth2_proxy");
        assert!(only_session.get(COOKIE).is_none());
        assert_eq!(session_cookies(&only_session, "_oauth2_proxy"), None);
    }

    #[test]
    fn cookies_for_the_parent_domain_are_dropped_and_host_cookies_kept() {
        let mut map = headers(&[
            ("Set-Cookie", "a=1; Path=/"),
            (
                "Set-Cookie",
                "_oauth2_proxy=evil; Domain=.preview.test; Path=/",
            ),
            ("Set-Cookie", "b=2; path=/;  DOMAIN = preview.test"),
            ("Set-Cookie", "c=3; HttpOnly"),
        ]);
        assert_eq!(drop_domain_cookies(&mut map), 2);
        let left: Vec<&str> = map
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["a=1; Path=/", "c=3; HttpOnly"]);
    }

    #[test]
    fn the_gateways_own_cookies_are_read_removed_and_never_set_by_an_env() {
        let mut map = headers(&[("Cookie", "a=1; ephemerator_env=x; b=2")]);
        map.append(COOKIE, HeaderValue::from_static("ephemerator_env=y"));
        assert_eq!(
            cookie_values(&map, "ephemerator_env").collect::<Vec<_>>(),
            ["x", "y"]
        );
        remove_cookies(&mut map, &["ephemerator_env", "ephemerator_state"]);
        assert_eq!(map[COOKIE], "a=1; b=2");
        let mut untouched = headers(&[("Cookie", "a=1"), ("Cookie", "b=2")]);
        remove_cookies(&mut untouched, &["x"]);
        assert_eq!(untouched.get_all(COOKIE).iter().count(), 2);

        let mut set = headers(&[
            ("Set-Cookie", "ephemerator_env=forged; Path=/"),
            (
                "Set-Cookie",
                "__Host-ephemerator_env=forged; Path=/; Secure",
            ),
            ("Set-Cookie", "ephemerator_envx=mine"),
            ("Set-Cookie", "session=app"),
        ]);
        assert_eq!(drop_cookies_named(&mut set, &["__Host-ephemerator_env"]), 2);
        let left: Vec<&str> = set
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["ephemerator_envx=mine", "session=app"]);
    }

    #[test]
    fn only_browser_navigations_are_redirected_to_sign_in() {
        let html = headers(&[("Accept", "text/html,application/xhtml+xml")]);
        assert!(is_browser_navigation(&hyper::Method::GET, &html));
        assert!(!is_browser_navigation(&hyper::Method::POST, &html));
        let htmx = headers(&[("Accept", "text/html"), ("HX-Request", "true")]);
        assert!(!is_browser_navigation(&hyper::Method::GET, &htmx));
        let api = headers(&[("Accept", "application/json")]);
        assert!(!is_browser_navigation(&hyper::Method::GET, &api));
    }
}
