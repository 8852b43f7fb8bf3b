//! Opening an env, carried out: the gate every request to an env host passes, and the
//! gateway's own steps of the flow that [`crate::env_access`] decides: the dashboard host's
//! sign-in for env hosts, share links, and the env host's taking of a one-time code.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ephemerator_core::Config;
use ephemerator_core::access::Access;
use ephemerator_core::hosts::env_port_host;
use ephemerator_core::names::is_valid_env_name;
use ephemerator_core::share::{LINK_PURPOSE, link_signed_data, parse_link_path};
use ephemerator_kit::signing::{SigningKeys, digest, random_token, unix_now};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::auth::{Subject, Verdict};
use crate::env_access::{
    CODE_LIFETIME, Code, CookieNames, EnvPass, Grant, MAX_GRANTS, PASS_LIFETIME, STATE_LIFETIME,
    Standing, Who, carried_headers, cross_site_refusal, pass_is_due, purpose, safe_return_path,
};
use crate::headers::{cookie_values, is_browser_navigation};
use crate::pages::{PageContext, render, text as plain};
use crate::route::{ENV_SIGN_IN_PATH, REDEEM_PATH};
use crate::table::EnvEntry;
use crate::{Body, Gateway, Upstreams};

/// Most env cookies of one name looked at in one request (a page can add more at other paths).
const MAX_PASSES_TRIED: usize = 4;
/// Most one-time codes remembered as used; past it, taking a code waits for old ones to expire.
const MAX_USED_CODES: usize = 50_000;
/// How long a share link's grant is kept on the dashboard's host, in seconds (each use checks
/// the link itself).
const GRANTS_LIFETIME: u64 = 30 * 24 * 3600;

/// What one request on a gateway host has to go on.
pub struct Here<'a> {
    /// The gateway.
    pub gateway: &'a Gateway,
    /// This worker's clients.
    pub upstreams: &'a Upstreams,
    /// The config the request is answered under.
    pub config: &'a Config,
    /// The host asked for.
    pub host: &'a str,
    /// `:PORT` of links to other gateway hosts, or "".
    pub port_suffix: &'a str,
    /// The client's address.
    pub client: IpAddr,
}

impl Here<'_> {
    fn pages(&self) -> PageContext<'_> {
        PageContext {
            proto: self.gateway.proto,
            gateway_host: &self.config.gateway_host,
            port_suffix: self.port_suffix,
            host: self.host,
        }
    }

    fn names(&self) -> CookieNames {
        CookieNames::for_proto(self.gateway.proto)
    }

    fn env_url(&self, env: &str, port: u16, path: &str) -> String {
        format!(
            "{}://{}{}{path}",
            self.gateway.proto,
            env_port_host(port, env, &self.config.gateway_host),
            self.port_suffix
        )
    }

    fn dashboard_url(&self, path: &str) -> String {
        format!(
            "{}://{}{}{path}",
            self.gateway.proto, self.config.gateway_host, self.port_suffix
        )
    }

    /// What the visitor is checked against now: `entry` and the config of this request.
    fn standing<'e>(&'e self, entry: &'e EnvEntry) -> Standing<'e> {
        Standing {
            entry,
            config: self.config,
            now: unix_now(),
        }
    }

    fn keys(&self) -> Option<Arc<SigningKeys>> {
        self.gateway.keys.as_ref().map(|keys| keys.current())
    }
}

/// What the gate decided for a request to an env host.
pub enum Gate {
    /// It goes on, with these identity headers for the env's app.
    Open(Vec<(HeaderName, HeaderValue)>),
    /// It is answered here (a redirect to sign in, a refusal).
    Answer(Response<Body>),
}

/// The gate of every request to a host of env `env` (port `port`), whose table entry is
/// `entry`: the env's level, the cross-site rule, then the env cookie.
pub fn env_gate(
    here: &Here<'_>,
    request: &Request<Incoming>,
    env: &str,
    port: u16,
    entry: &EnvEntry,
) -> Gate {
    if here.gateway.auth.cookie_name().is_none() {
        // `--auth none` (local runs): nobody signs in, every env is open.
        return Gate::Open(Vec::new());
    }
    let standing = here.standing(entry);
    let now = standing.now;
    if standing.level() == Access::Public {
        return Gate::Open(Vec::new());
    }
    if let Some(reason) = cross_site_refusal(
        request.method(),
        request.headers(),
        env,
        &here.config.gateway_host,
    ) {
        tracing::info!(%env, port, reason, "refused a request from another site's page");
        return Gate::Answer(render(&here.pages().cross_site(env)));
    }
    let Some(keys) = here.keys() else {
        return Gate::Answer(render(&here.pages().no_keys()));
    };
    let names = here.names();
    let navigation = is_browser_navigation(request.method(), request.headers());
    let mut stale = false;
    for value in cookie_values(request.headers(), names.pass).take(MAX_PASSES_TRIED) {
        match keys.open::<EnvPass>(purpose::PASS, value, now) {
            Ok(pass) if standing.pass_opens(&pass, port) => {
                if navigation && pass_is_due(&pass, now) {
                    // Checked again through the dashboard's host; the person sees nothing.
                    break;
                }
                return Gate::Open(identity_headers(&pass.who));
            }
            _ => stale = true,
        }
    }
    let mut response = if navigation {
        start_sign_in(here, request, env, port)
    } else {
        plain(
            StatusCode::UNAUTHORIZED,
            "Not signed in to this environment: open it in a browser first.\n",
        )
    };
    if stale && !navigation {
        append_cookie(&mut response, &names.clear(names.pass));
    }
    Gate::Answer(response)
}

/// The identity headers the env's app gets for `who`: oauth2-proxy's, for a person.
fn identity_headers(who: &Who) -> Vec<(HeaderName, HeaderValue)> {
    match who {
        Who::Person { headers, .. } => headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    HeaderValue::from_str(value).ok()?,
                ))
            })
            .collect(),
        Who::Link { .. } => Vec::new(),
    }
}

/// Sends a browser to the dashboard's host to be let in, keeping a nonce on the env host.
fn start_sign_in(
    here: &Here<'_>,
    request: &Request<Incoming>,
    env: &str,
    port: u16,
) -> Response<Body> {
    let Some(nonce) = random_token(32) else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "No randomness to sign in with.\n",
        );
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("env", env)
        .append_pair("port", &port.to_string())
        .append_pair("rd", safe_return_path(path))
        .append_pair("state", &digest(&nonce))
        .finish();
    let mut response = redirect(&here.dashboard_url(&format!("{ENV_SIGN_IN_PATH}?{query}")));
    let names = here.names();
    append_cookie(
        &mut response,
        &names.set(names.state, &nonce, STATE_LIFETIME),
    );
    response
}

/// The query of the dashboard host's sign-in for an env host, checked.
struct SignInAsk {
    env: String,
    port: u16,
    rd: String,
    state: String,
}

impl SignInAsk {
    fn parse(query: &str) -> Option<SignInAsk> {
        let mut env = None;
        let mut port = None;
        let mut rd = None;
        let mut state = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()).take(8) {
            match &*key {
                "env" => env = Some(value.into_owned()),
                "port" => port = value.parse::<u16>().ok(),
                "rd" => rd = Some(safe_return_path(&value).to_string()),
                "state" => state = Some(value.into_owned()),
                _ => {}
            }
        }
        let (env, port, state) = (env?, port?, state?);
        (is_valid_env_name(&env) && port > 0 && state.len() == 43).then(|| SignInAsk {
            env,
            port,
            rd: rd.unwrap_or_else(|| "/".into()),
            state,
        })
    }
}

/// [`ENV_SIGN_IN_PATH`] on the dashboard's host: who the visitor is (a share link they opened
/// or their sign-in), whether the env admits them, and a one-time code back to the env host.
pub async fn env_sign_in(here: &Here<'_>, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only.\n");
    }
    let Some(ask) = SignInAsk::parse(request.uri().query().unwrap_or("")) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "This sign-in address is incomplete: open the environment again.\n",
        );
    };
    let Some(entry) = here.gateway.table.get(&ask.env) else {
        return render(&here.pages().no_such_env());
    };
    let Some(keys) = here.keys() else {
        return render(&here.pages().no_keys());
    };
    let standing = here.standing(&entry);
    let now = standing.now;
    let link = granted_link(here, request, &keys, &ask.env, &standing);
    let subject = Subject {
        headers: request.headers(),
        host: here.host,
        uri: request.uri(),
        method: request.method(),
        client: here.client,
        proto: here.gateway.proto,
    };
    let verdict = here
        .gateway
        .auth
        .check(&subject, &here.upstreams.auth)
        .await;
    let who = match verdict {
        Verdict::Allowed(grant) => {
            let header = |field: ephemerator_core::identity::NameField| {
                grant
                    .identity
                    .iter()
                    .find(|(name, _)| name.as_str() == field.auth_request_header())
                    .and_then(|(_, value)| value.to_str().ok())
            };
            match here.gateway.identity_from.identify(header) {
                Some(identity) if standing.admits_person(&identity) => {
                    Who::Person {
                        identity,
                        headers: carried_headers(grant.identity.iter().filter_map(
                            |(name, value)| Some((name.as_str(), value.to_str().ok()?)),
                        )),
                    }
                }
                identity => match link {
                    Some(id) => Who::Link { id },
                    None => {
                        tracing::info!(env = %ask.env, ?identity, "refused: the env's level does not admit them");
                        return render(&here.pages().not_admitted(&ask.env, &entry.owner));
                    }
                },
            }
        }
        Verdict::SignIn(clear) => match link {
            Some(id) => Who::Link { id },
            None => {
                // A path on the same host: oauth2-proxy returns there without a whitelist.
                let original = request
                    .uri()
                    .path_and_query()
                    .map_or(ENV_SIGN_IN_PATH, |p| p.as_str());
                let mut response = redirect(&crate::auth::sign_in_location(
                    here.gateway.proto,
                    &format!("{}{}", here.config.gateway_host, here.port_suffix),
                    original,
                ));
                for cookie in clear {
                    response.headers_mut().append(SET_COOKIE, cookie);
                }
                return response;
            }
        },
        Verdict::Forbidden => return render(&here.pages().forbidden()),
        Verdict::DuplicateSession(_) => return render(&here.pages().duplicate_session()),
        Verdict::Unavailable(problem) => return render(&here.pages().auth_unavailable(&problem)),
    };
    let code = keys.seal(
        purpose::CODE,
        now + CODE_LIFETIME,
        &Code {
            uid: entry.uid.clone(),
            port: ask.port,
            state: ask.state,
            who,
        },
    );
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("rd", &ask.rd)
        .finish();
    redirect(&here.env_url(&ask.env, ask.port, &format!("{REDEEM_PATH}?{query}")))
}

/// The id of a live share link of env `env` this browser opened, if any.
fn granted_link(
    here: &Here<'_>,
    request: &Request<Incoming>,
    keys: &SigningKeys,
    env: &str,
    standing: &Standing<'_>,
) -> Option<String> {
    grants(here, request, keys, standing.now)
        .into_iter()
        .find(|grant| {
            grant.env == env && grant.uid == standing.entry.uid && standing.link_is_live(&grant.id)
        })
        .map(|grant| grant.id)
}

/// The share-link grants of the request's cookie (none if it does not verify).
fn grants(
    here: &Here<'_>,
    request: &Request<Incoming>,
    keys: &SigningKeys,
    now: u64,
) -> Vec<Grant> {
    cookie_values(request.headers(), here.names().grants)
        .take(MAX_PASSES_TRIED)
        .find_map(|value| keys.open::<Vec<Grant>>(purpose::GRANTS, value, now).ok())
        .unwrap_or_default()
}

/// A path under [`REDEEM_PATH`] on an env host: the one-time code taken, the env cookie set,
/// and back to where the visitor was going. Any other reserved path is not found.
pub fn redeem(
    here: &Here<'_>,
    request: &Request<Incoming>,
    env: &str,
    port: u16,
    entry: &EnvEntry,
) -> Response<Body> {
    if request.uri().path() != REDEEM_PATH {
        return plain(StatusCode::NOT_FOUND, "Not found.\n");
    }
    let mut code = None;
    let mut rd = "/".to_string();
    for (key, value) in
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()).take(4)
    {
        match &*key {
            "code" => code = Some(value.into_owned()),
            "rd" => rd = safe_return_path(&value).to_string(),
            _ => {}
        }
    }
    let Some(keys) = here.keys() else {
        return render(&here.pages().no_keys());
    };
    let names = here.names();
    let standing = here.standing(entry);
    let now = standing.now;
    let nonce = cookie_values(request.headers(), names.state).next();
    let taken = code
        .as_deref()
        .and_then(|code| Some((code, keys.open::<Code>(purpose::CODE, code, now).ok()?)))
        .filter(|(_, code)| {
            code.uid == entry.uid
                && code.port == port
                && nonce.is_some_and(|nonce| digest(nonce) == code.state)
                && standing.admits(&code.who)
        });
    let Some((text, code)) = taken else {
        let mut response = render(&here.pages().sign_in_failed(&here.env_url(env, port, &rd)));
        append_cookie(&mut response, &names.clear(names.state));
        return response;
    };
    if !here.gateway.used_codes.take(text, now) {
        return render(&here.pages().sign_in_failed(&here.env_url(env, port, &rd)));
    }
    let expires = match &code.who {
        Who::Person { .. } => now + PASS_LIFETIME,
        Who::Link { id } => entry
            .links
            .iter()
            .find(|link| &link.id == id)
            .map_or(now, |link| {
                u64::try_from(link.expires.as_second()).unwrap_or(now)
            }),
    };
    let pass = keys.seal(
        purpose::PASS,
        expires,
        &EnvPass {
            uid: code.uid,
            port,
            who: code.who,
            issued: now,
        },
    );
    let mut response = redirect(&rd);
    append_cookie(
        &mut response,
        &names.set(names.pass, &pass, expires.saturating_sub(now)),
    );
    append_cookie(&mut response, &names.clear(names.state));
    response
}

/// A share link on the dashboard's host: checked against the env's links and its UID, kept as
/// a grant on the dashboard's host, then on to the env (a port given as `?port=`, else the
/// first it publishes). The token leaves the address bar with this redirect.
pub fn share_link(here: &Here<'_>, request: &Request<Incoming>) -> Response<Body> {
    let gone = || render(&here.pages().link_gone());
    let Some((env, id, tag)) = parse_link_path(request.uri().path()) else {
        return gone();
    };
    let Some(entry) = here.gateway.table.get(env) else {
        return gone();
    };
    let Some(keys) = here.keys() else {
        return render(&here.pages().no_keys());
    };
    let standing = here.standing(&entry);
    let now = standing.now;
    if !standing.link_is_live(id)
        || !keys.verify_tag(LINK_PURPOSE, &link_signed_data(&entry.uid, id), tag)
    {
        return gone();
    }
    let asked_port = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(key, _)| key == "port")
        .and_then(|(_, value)| value.parse::<u16>().ok())
        .filter(|port| *port > 0);
    let port = asked_port
        .or_else(|| entry.status.ports.first().map(|p| p.port))
        .unwrap_or(ephemerator_core::config::DEFAULT_TILT_PORT);
    let mut kept = grants(here, request, &keys, now);
    kept.retain(|grant| grant.env != env);
    kept.insert(
        0,
        Grant {
            env: env.to_string(),
            uid: entry.uid.clone(),
            id: id.to_string(),
        },
    );
    kept.truncate(MAX_GRANTS);
    let names = here.names();
    let sealed = keys.seal(purpose::GRANTS, now + GRANTS_LIFETIME, &kept);
    let mut response = redirect(&here.env_url(env, port, "/"));
    append_cookie(
        &mut response,
        &names.set(names.grants, &sealed, GRANTS_LIFETIME),
    );
    tracing::info!(%env, link = %id, "a share link was opened");
    if here.gateway.links_used.first_use(&entry.uid, id) {
        let regarding = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(env.to_string()),
            namespace: Some(here.gateway.namespace.clone()),
            uid: Some(entry.uid.clone()),
            ..Default::default()
        };
        // Named after the link: of several replicas that each see a first use, one records it.
        here.gateway.audit.publish_once(
            regarding,
            ephemerator_kit::events::EventType::Normal,
            "ShareLinkUsed",
            format!("share link {id} was opened for the first time"),
            &format!("share-link-used/{}/{id}", entry.uid),
        );
    }
    response
}

/// Most share links remembered as used; past it, the memory starts again (a link's first use
/// may then be recorded twice, never not at all).
const MAX_LINKS_REMEMBERED: usize = 10_000;

/// The share links (env UID, link id) this replica has seen opened, so that later uses cost
/// no API request. Each replica records the first use it sees, as one Event named after the
/// link: with several replicas the API server keeps the first and refuses the others.
#[derive(Default)]
pub struct LinksUsed {
    seen: Mutex<std::collections::HashSet<(String, String)>>,
}

impl LinksUsed {
    /// Whether this is the first use of link `id` of the env with `uid` seen here.
    pub fn first_use(&self, uid: &str, id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_LINKS_REMEMBERED {
            seen.clear();
        }
        seen.insert((uid.to_string(), id.to_string()))
    }
}

/// One-time codes taken, by digest, until they expire: a code is taken once per replica.
/// (Across replicas, a code is bound to the nonce cookie of the browser that asked for it, so
/// a copied code is useless elsewhere.)
#[derive(Default)]
pub struct UsedCodes {
    taken: Mutex<HashMap<[u8; 32], u64>>,
}

impl UsedCodes {
    /// Takes `code` at `now`; `false` if it was taken before, or too many are in use.
    pub fn take(&self, code: &str, now: u64) -> bool {
        let key: [u8; 32] = Sha256::digest(code.as_bytes()).into();
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        if taken.len() >= MAX_USED_CODES {
            taken.retain(|_, expires| *expires > now);
            if taken.len() >= MAX_USED_CODES {
                tracing::warn!("too many sign-ins to env hosts at once; one is refused");
                return false;
            }
        }
        taken.insert(key, now + CODE_LIFETIME).is_none()
    }
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = plain(StatusCode::FOUND, "Redirecting.\n");
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

fn append_cookie(response: &mut Response<Body>, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_taken_once() {
        let used = UsedCodes::default();
        assert!(used.take("code-a", 100));
        assert!(!used.take("code-a", 101));
        assert!(used.take("code-b", 101));
    }

    #[test]
    fn the_sign_in_query_is_read_strictly() {
        let state = "a".repeat(43);
        let ask =
            SignInAsk::parse(&format!("env=jane&port=8000&rd=%2Fx%3Fy&state={state}")).unwrap();
        assert_eq!(
            (ask.env.as_str(), ask.port, ask.rd.as_str()),
            ("jane", 8000, "/x?y")
        );
        let ask =
            SignInAsk::parse(&format!("env=jane&port=8000&rd=//evil.com&state={state}")).unwrap();
        assert_eq!(ask.rd, "/", "never another host");
        for bad in [
            format!("env=Jane&port=8000&state={state}"),
            format!("env=jane&port=0&state={state}"),
            format!("env=jane&port=70000&state={state}"),
            "env=jane&port=8000&state=short".to_string(),
            format!("port=8000&state={state}"),
        ] {
            assert!(SignInAsk::parse(&bad).is_none(), "{bad}");
        }
    }
}
