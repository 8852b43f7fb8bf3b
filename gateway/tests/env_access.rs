//! Who may open an env, black-box: the gateway with the real oauth2-proxy (host-only session
//! cookie, as `deploy/` sets it) and the real OIDC provider, envs on a devcluster, a browser-like
//! client whose cookie jar keeps each cookie to its own hosts. Each access level, the env
//! host's own cookie and its one-time code, share links (expiry, revocation, a recreated env of
//! the same name, a link or a cookie of one env on another's host), and what one env's page may
//! not do in another.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::Phase;
use ephemerator_core::labels::{ACCESS_ANNOTATION, OWNER_ANNOTATION, SHARE_LINKS_ANNOTATION};
use ephemerator_core::share::{
    LINK_PURPOSE, ShareLink, link_path, link_signed_data, share_links_json,
};
use ephemerator_kit::signing::SigningKeys;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use realprograms::browser_client::{BrowserClient, Scope};
use realprograms::oauth2_proxy::{MockOidc, OAuth2Proxy, OAuth2ProxySettings};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The env cookie over plain HTTP (`__Host-ephemerator_env` over https).
const PASS: &str = "ephemerator_env";
const STATE: &str = "ephemerator_state";

/// The gateway with the real oauth2-proxy, a config file it follows, and the cluster.
struct Setup {
    cluster: devcluster::DevCluster,
    gateway: Gateway,
    /// `http://preview.localhost:PORT`.
    public: String,
    config_file: tempfile::NamedTempFile,
    oidc: MockOidc,
    _proxy: OAuth2Proxy,
    _dashboard: EnvServer,
}

const BASE_CONFIG: &str = "gatewayHost: preview.localhost\n";
/// What the tests start with: every level allowed.
const OPEN: &str = "access: {max: public}\n";

async fn setup() -> Setup {
    let cluster = devcluster().await;
    let oidc = MockOidc::start().await.expect("mockoidc starts");
    let dashboard = env_server().await;
    let proxy_port = ephemerator_testkit::free_port();
    let proxy_addr = std::net::SocketAddr::from(([127, 0, 0, 1], proxy_port));
    let config_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config_file.path(), format!("{BASE_CONFIG}{OPEN}")).unwrap();
    let mut settings = settings(cluster.client(), Auth::Proxy(proxy_addr), dashboard.addr);
    settings.config = ephemerator_kit::LiveConfig::watch(
        config_file.path(),
        ephemerator_core::Config::load(config_file.path()).unwrap(),
        std::time::Duration::from_millis(100),
    );
    let gateway = Gateway::start(settings).await;
    let public = format!("http://{GATEWAY_HOST}:{}", gateway.port());
    let mut proxy_settings = OAuth2ProxySettings::host_only(oidc.issuer(), &public);
    proxy_settings.port = Some(proxy_port);
    let proxy = OAuth2Proxy::start(&proxy_settings)
        .await
        .expect("oauth2-proxy starts");
    Setup {
        cluster,
        gateway,
        public,
        config_file,
        oidc,
        _proxy: proxy,
        _dashboard: dashboard,
    }
}

impl Setup {
    /// `http://PORT---ENV.preview.localhost:GATEWAY{path}`.
    fn env_url(&self, port: u16, env: &str, path: &str) -> String {
        format!(
            "http://{}:{}{path}",
            env_host(port, env),
            self.gateway.port()
        )
    }

    /// Env `name`, Ready with `ports`, owned by `owner`, at `access` (`None`: the default).
    async fn env(&self, name: &str, owner: &str, access: Option<&str>, ports: &[u16]) {
        put_env(&self.cluster.client(), name, Phase::Ready, ports, "").await;
        self.annotate(name, OWNER_ANNOTATION, Some(owner)).await;
        self.annotate(name, ACCESS_ANNOTATION, access).await;
        let table = self.gateway.running.table.clone();
        wait_for("the gateway to know the env", || {
            let entry = table.get(name);
            async move {
                let entry = entry?;
                (entry.owner == owner
                    && entry.access.map(|a| a.to_string()).as_deref() == access
                    && entry.status.exposes(ports[0]))
                .then_some(())
            }
        })
        .await;
    }

    /// Sets (or, with `None`, removes) annotation `key` of env `name`.
    async fn annotate(&self, name: &str, key: &str, value: Option<&str>) {
        let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
        Api::<ConfigMap>::namespaced(self.cluster.client(), NAMESPACE)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn uid(&self, name: &str) -> String {
        Api::<ConfigMap>::namespaced(self.cluster.client(), NAMESPACE)
            .get(name)
            .await
            .unwrap()
            .metadata
            .uid
            .unwrap()
    }

    /// Writes `links` as env `name`'s share links and waits for the gateway to have them.
    async fn set_links(&self, name: &str, links: &[ShareLink]) {
        self.annotate(name, SHARE_LINKS_ANNOTATION, Some(&share_links_json(links)))
            .await;
        let ids: Vec<String> = links.iter().map(|l| l.id.clone()).collect();
        let table = self.gateway.running.table.clone();
        let name = name.to_string();
        wait_for("the gateway to have the links", || {
            let entry = table.get(&name);
            let ids = ids.clone();
            async move {
                let have: Vec<String> = entry?.links.iter().map(|l| l.id.clone()).collect();
                (have == ids).then_some(())
            }
        })
        .await;
    }

    /// The URL of share link `id` of env `name` (whose UID is `uid`), as the dashboard makes it.
    fn link_url(&self, name: &str, uid: &str, id: &str) -> String {
        let keys = SigningKeys::new(TEST_KEY, None).unwrap();
        let tag = keys.tag(LINK_PURPOSE, &link_signed_data(uid, id));
        format!("{}{}", self.public, link_path(name, id, &tag))
    }

    /// Rewrites the config file and waits for the gateway to follow it.
    async fn config(&self, extra: &str) {
        let before = self.config_generation().await;
        std::fs::write(self.config_file.path(), format!("{BASE_CONFIG}{extra}")).unwrap();
        wait_for("the config reload", || async {
            (self.config_generation().await > before).then_some(())
        })
        .await;
    }

    async fn config_generation(&self) -> f64 {
        let metrics = self.gateway.admin("/metrics").await.body;
        metrics
            .lines()
            .find(|line| line.starts_with("ephgateway_config_generation"))
            .and_then(|line| line.split_whitespace().last())
            .and_then(|value| value.parse().ok())
            .expect("the config generation in /metrics")
    }
}

/// The notes of the Events about env `name` with `reason`.
async fn link_events(setup: &Setup, name: &str, reason: &str) -> Vec<String> {
    ephemerator_testkit::event_notes(&setup.cluster.client(), NAMESPACE, name, reason).await
}

fn link(id: &str, expires_in: i64) -> ShareLink {
    let now = jiff::Timestamp::now();
    ShareLink {
        id: id.into(),
        expires: now + jiff::SignedDuration::from_secs(expires_in),
        label: "for review".into(),
        created_by: "jane.doe".into(),
        created: now,
    }
}

/// A browser's request that is not a page load (a script's fetch): no `text/html`.
async fn fetch(setup: &Setup, host: &str, path: &str, pass: &str) -> Answer {
    setup
        .gateway
        .get(host, path, &[("cookie", &format!("{PASS}={pass}"))])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_env_opens_for_a_signed_in_person_with_a_cookie_of_its_own_host() {
    let setup = setup().await;
    let app = env_server().await;
    let other = env_server().await;
    let (port, other_port) = (app.addr.port(), other.addr.port());
    setup
        .env("shared", "octocat", None, &[port, other_port])
        .await;
    let mut browser = BrowserClient::default();

    // Opening the env signs in on the dashboard's host and comes back to the page asked for.
    let page = browser
        .get(&setup.env_url(port, "shared", "/echo?x=1"))
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.url.as_str(),
        setup.env_url(port, "shared", "/echo?x=1")
    );
    let seen = page.body.to_lowercase();
    assert!(
        seen.contains("x-auth-request-preferred-username: jane.doe"),
        "the app is told who: {seen}"
    );
    for secret in [COOKIE, PASS, STATE] {
        assert!(
            !seen.contains(secret),
            "the app never gets {secret}: {seen}"
        );
    }
    // The sign-in cookie stays on the dashboard's host; the env host has one of its own.
    assert_eq!(browser.scopes(COOKIE), [Scope::Host(GATEWAY_HOST.into())]);
    let host = env_host(port, "shared");
    assert_eq!(browser.scopes(PASS), [Scope::Host(host.clone())]);
    assert_eq!(browser.cookie(STATE), None, "the nonce is cleared");
    let pass = browser.cookie(PASS).unwrap().to_string();

    // From then on, straight through, page loads and scripts' requests alike.
    let again = browser
        .get_once(&url::Url::parse(&setup.env_url(port, "shared", "/")).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, "hello from the env")
    );
    assert_eq!(fetch(&setup, &host, "/", &pass).await.status, 200);

    // The cookie is for its own host: on another port of the same env, or tampered, or
    // missing, a script's request is refused; a page load is sent to sign in.
    let other_host = env_host(other_port, "shared");
    assert_eq!(fetch(&setup, &other_host, "/", &pass).await.status, 401);
    let tampered = format!("{}x", pass);
    let refused = fetch(&setup, &host, "/", &tampered).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{PASS}=;"))),
        "the bad cookie is cleared: {refused:?}"
    );
    let with_port = format!("{host}:{}", setup.gateway.port());
    let load = setup
        .gateway
        .get(&with_port, "/deep/path", &[("accept", "text/html")])
        .await;
    assert_eq!(load.status, 302, "{load:?}");
    let location = load.header("location");
    assert!(
        location.starts_with(&format!(
            "{}/__ephemerator/auth?env=shared&port={port}&rd=%2Fdeep%2Fpath&state=",
            setup.public
        )),
        "{location}"
    );
    assert!(
        load.set_cookies[0].starts_with(&format!("{STATE}=")),
        "{load:?}"
    );
    assert!(load.set_cookies[0].contains("HttpOnly"));
    assert!(!load.set_cookies[0].contains("Domain"));

    // Another port of the env signs in the same way, without the person doing anything.
    let page = browser
        .get(&setup.env_url(other_port, "shared", "/"))
        .await
        .unwrap();
    assert_eq!(
        (page.status, page.body.as_str()),
        (200, "hello from the env")
    );
    assert_eq!(browser.scopes(PASS).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_envs_open_to_their_owner_and_admins_and_every_change_takes_effect_at_once() {
    let setup = setup().await;
    let app = env_server().await;
    let port = app.addr.port();
    setup.env("janes", "jane.doe", Some("owner"), &[port]).await;
    setup.env("octos", "octocat", Some("owner"), &[port]).await;
    setup.env("teams", "octocat", None, &[port]).await;
    let mut jane = BrowserClient::default();

    let mine = jane.get(&setup.env_url(port, "janes", "/")).await.unwrap();
    assert_eq!(
        (mine.status, mine.body.as_str()),
        (200, "hello from the env")
    );
    let theirs = jane.get(&setup.env_url(port, "octos", "/")).await.unwrap();
    assert_eq!(theirs.status, 403, "{theirs:?}");
    assert!(
        theirs.body.contains("open to its owner only"),
        "{}",
        theirs.body
    );
    assert!(theirs.body.contains("Ask octocat"), "{}", theirs.body);
    let team = jane.get(&setup.env_url(port, "teams", "/")).await.unwrap();
    assert_eq!(team.status, 200);
    let team_pass = jane
        .cookie_for(&env_host(port, "teams"), PASS)
        .unwrap()
        .to_string();

    // An admin opens anyone's env.
    setup.config(&format!("{OPEN}admins: [jane.doe]\n")).await;
    let admitted = jane.get(&setup.env_url(port, "octos", "/")).await.unwrap();
    assert_eq!(admitted.status, 200, "{admitted:?}");
    let admin_pass = jane
        .cookie_for(&env_host(port, "octos"), PASS)
        .unwrap()
        .to_string();

    // No longer an admin: the cookie stops opening it, at once.
    setup.config(OPEN).await;
    let host = env_host(port, "octos");
    wait_for("the admin's cookie to stop working", || async {
        (fetch(&setup, &host, "/", &admin_pass).await.status == 401).then_some(())
    })
    .await;

    // The owner closes a team env: the cookie jane had stops working.
    setup
        .annotate("teams", ACCESS_ANNOTATION, Some("owner"))
        .await;
    let host = env_host(port, "teams");
    wait_for("the closed env to refuse jane", || async {
        (fetch(&setup, &host, "/", &team_pass).await.status == 401).then_some(())
    })
    .await;
    setup.annotate("teams", ACCESS_ANNOTATION, None).await;
    wait_for("the reopened env to let jane in", || async {
        (fetch(&setup, &host, "/", &team_pass).await.status == 200).then_some(())
    })
    .await;

    // Lowering the config's maximum closes every env above it, without touching them.
    setup.config("access: {max: owner}\n").await;
    wait_for("the maximum to close the team env", || async {
        (fetch(&setup, &host, "/", &team_pass).await.status == 401).then_some(())
    })
    .await;
    let page = jane.get(&setup.env_url(port, "teams", "/")).await.unwrap();
    assert_eq!(page.status, 403, "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_env_opens_for_anyone_and_never_sees_anyones_credentials() {
    let setup = setup().await;
    let app = env_server().await;
    let port = app.addr.port();
    setup.env("demo", "jane.doe", Some("public"), &[port]).await;
    let host = env_host(port, "demo");

    let mut anyone = BrowserClient::default();
    let page = anyone.get(&setup.env_url(port, "demo", "/")).await.unwrap();
    assert_eq!(
        (page.status, page.body.as_str()),
        (200, "hello from the env")
    );
    assert_eq!(
        page.url.as_str(),
        setup.env_url(port, "demo", "/"),
        "no redirect"
    );
    assert!(page.set_cookies.is_empty(), "{page:?}");

    // Whatever a client sends as identity or as the gateway's cookies never reaches it.
    let echo = setup
        .gateway
        .get(
            &host,
            "/echo",
            &[
                ("x-auth-request-user", "root"),
                ("x-forwarded-email", "root@example.com"),
                (
                    "cookie",
                    &format!("{COOKIE}=s; {PASS}=p; ephemerator_links=l; app=1"),
                ),
            ],
        )
        .await;
    assert_eq!(echo.status, 200);
    let seen = echo.body.to_lowercase();
    assert!(seen.contains("cookie: app=1"), "{seen}");
    for gone in [
        "x-auth-request",
        "x-forwarded-email",
        COOKIE,
        PASS,
        "ephemerator_links",
    ] {
        assert!(!seen.contains(gone), "{gone} in {seen}");
    }

    // The maximum lowered to team: the same env now needs a sign-in.
    setup.config("access: {max: team}\n").await;
    wait_for("the public env to close", || async {
        (setup.gateway.get(&host, "/", &[]).await.status == 401).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_link_opens_every_port_for_a_visitor_without_an_account_until_it_is_revoked() {
    let setup = setup().await;
    let (web, api) = (env_server().await, env_server().await);
    let (port, api_port) = (web.addr.port(), api.addr.port());
    setup
        .env("janes", "jane.doe", Some("owner"), &[port, api_port])
        .await;
    setup.env("others", "octocat", Some("owner"), &[port]).await;
    let uid = setup.uid("janes").await;
    setup
        .set_links("janes", &[link("review01", 3600), link("expired1", -1)])
        .await;
    // The dashboard names the port to land on; without one, the first the env publishes.
    let url = format!("{}?port={port}", setup.link_url("janes", &uid, "review01"));

    // A visitor with no account: the link's answer takes the token out of the address bar and
    // tells the browser to keep it from every other site.
    let mut visitor = BrowserClient::default();
    let first = visitor
        .get_once(&url::Url::parse(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(first.status, 302, "{first:?}");
    assert_eq!(first.headers["referrer-policy"], "no-referrer");
    assert_eq!(first.headers["location"], setup.env_url(port, "janes", "/"));
    let page = visitor.get(&url).await.unwrap();
    assert_eq!(
        (page.status, page.body.as_str()),
        (200, "hello from the env")
    );
    assert_eq!(page.url.as_str(), setup.env_url(port, "janes", "/"));
    assert_eq!(visitor.cookie(COOKIE), None, "never signed in");
    // Every port of the env, and no identity for the app.
    let echo = visitor
        .get(&setup.env_url(api_port, "janes", "/echo"))
        .await
        .unwrap();
    assert_eq!(echo.status, 200, "{echo:?}");
    assert!(
        !echo.body.to_lowercase().contains("x-auth-request"),
        "{}",
        echo.body
    );
    let pass = visitor
        .cookie_for(&env_host(port, "janes"), PASS)
        .unwrap()
        .to_string();
    // Its first use is on the env's record (`kubectl describe` shows it), once.
    let used = wait_for("the ShareLinkUsed Event", || async {
        let notes = link_events(&setup, "janes", "ShareLinkUsed").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert_eq!(used, ["share link review01 was opened for the first time"]);

    // Not another env: not with the link's token under its name, not with the cookie.
    let mut stranger = BrowserClient::default();
    let wrong = stranger
        .get(&setup.link_url("others", &uid, "review01"))
        .await
        .unwrap();
    assert_eq!(wrong.status, 404, "{wrong:?}");
    assert!(wrong.body.contains("expired or was revoked"));
    // (Sent to sign in, the visitor is signed in by the test provider as jane, who is not
    // octocat: the grant alone would have let them in.)
    let stolen = visitor
        .get(&setup.env_url(port, "others", "/"))
        .await
        .unwrap();
    assert_eq!(
        stolen.status, 403,
        "the grant is for janes only: {stolen:?}"
    );
    assert_eq!(
        fetch(&setup, &env_host(port, "others"), "/", &pass)
            .await
            .status,
        401
    );
    // An expired link, and a forged one, open nothing.
    let expired = setup.link_url("janes", &uid, "expired1");
    assert_eq!(stranger.get(&expired).await.unwrap().status, 404);
    let forged = setup.link_url("janes", "another-uid", "review01");
    assert_eq!(stranger.get(&forged).await.unwrap().status, 404);

    // Revoked: within seconds, the visitor is out.
    setup.set_links("janes", &[]).await;
    let host = env_host(port, "janes");
    assert_eq!(fetch(&setup, &host, "/", &pass).await.status, 401);
    assert_eq!(stranger.get(&url).await.unwrap().status, 404);

    // A later env of the same name, with a link of the same id: the old link and cookie open
    // nothing.
    delete_env(&setup.cluster.client(), "janes").await;
    setup.env("janes", "jane.doe", Some("owner"), &[port]).await;
    setup.set_links("janes", &[link("review01", 3600)]).await;
    assert_ne!(setup.uid("janes").await, uid);
    assert_eq!(stranger.get(&url).await.unwrap().status, 404);
    assert_eq!(fetch(&setup, &host, "/", &pass).await.status, 401);
    let fresh = setup.link_url("janes", &setup.uid("janes").await, "review01");
    assert_eq!(stranger.get(&fresh).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_code_works_once_and_only_in_the_browser_that_asked_for_it() {
    let setup = setup().await;
    let app = env_server().await;
    let port = app.addr.port();
    setup.env("shared", "octocat", None, &[port]).await;
    let mut jane = BrowserClient::default();
    // Walks the redirects by hand up to the code.
    let mut url = url::Url::parse(&setup.env_url(port, "shared", "/echo")).unwrap();
    let redeem = loop {
        let page = jane.get_once(&url).await.unwrap();
        assert_eq!(page.status, 302, "{page:?}");
        url = url.join(&page.headers["location"]).unwrap();
        if url.path() == "/__ephemerator/redeem" {
            break url;
        }
    };
    assert_eq!(redeem.host_str(), Some(env_host(port, "shared").as_str()));
    let nonce = jane.cookie(STATE).unwrap().to_string();

    // Another browser, without the nonce: refused (a copied or leaked code is useless).
    let mut other = BrowserClient::default();
    let refused = other.get_once(&redeem).await.unwrap();
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body.contains("expired or was already used"));
    assert_eq!(other.cookie(PASS), None);

    // The browser that asked: the cookie, and back to the page.
    let taken = jane.get_once(&redeem).await.unwrap();
    assert_eq!(taken.status, 302, "{taken:?}");
    assert_eq!(taken.headers["location"], "/echo");
    assert_eq!(taken.headers["referrer-policy"], "no-referrer");
    assert!(jane.cookie(PASS).is_some());

    // The same code again, even with the nonce: used.
    let mut replay = BrowserClient::default();
    replay.set_cookie(STATE, &nonce);
    let again = replay.get_once(&redeem).await.unwrap();
    assert_eq!(again.status, 400, "{again:?}");
    assert_eq!(replay.cookie(PASS), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_cannot_set_the_gateways_cookies_or_act_in_another_env() {
    let setup = setup().await;
    let app = env_server().await;
    let api = env_server().await;
    let (port, api_port) = (app.addr.port(), api.addr.port());
    setup
        .env("janes", "jane.doe", Some("owner"), &[port, api_port])
        .await;
    let mut jane = BrowserClient::default();
    assert_eq!(
        jane.get(&setup.env_url(port, "janes", "/"))
            .await
            .unwrap()
            .status,
        200
    );
    let pass = jane.cookie(PASS).unwrap().to_string();
    let host = env_host(port, "janes");

    // The env's app answers with cookies in the gateway's names: none reaches the browser.
    let answer = fetch(&setup, &host, "/gateway-cookies", &pass).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.set_cookies, ["app=kept; Path=/"]);

    // Another env's page fetching, posting or opening a WebSocket with jane's cookie: refused.
    let mallory = format!(
        "http://{}:{}",
        env_host(port, "mallory"),
        setup.gateway.port()
    );
    let cookie = format!("{PASS}={pass}");
    for (what, method, headers) in [
        (
            "a fetch",
            "GET",
            vec![
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "cors"),
                ("origin", mallory.as_str()),
            ],
        ),
        (
            "a form post",
            "POST",
            vec![
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
                ("origin", mallory.as_str()),
            ],
        ),
        (
            "a frame",
            "GET",
            vec![
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "iframe"),
            ],
        ),
        (
            "a WebSocket",
            "GET",
            vec![
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "websocket"),
                ("origin", mallory.as_str()),
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
            ],
        ),
    ] {
        let mut headers = headers;
        headers.push(("cookie", cookie.as_str()));
        let answer = setup
            .gateway
            .request(method, &host, "/echo", &headers, "")
            .await;
        assert_eq!(answer.status, 403, "{what}: {answer:?}");
        assert!(
            answer.body.contains("refuses requests from other sites"),
            "{what}"
        );
    }
    // A link followed from another env's page opens it; so does another port of the same env
    // calling this one.
    let followed = setup
        .gateway
        .get(
            &host,
            "/",
            &[
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
                ("cookie", &cookie),
            ],
        )
        .await;
    assert_eq!(followed.status, 200, "{followed:?}");
    let own = format!(
        "http://{}:{}",
        env_host(api_port, "janes"),
        setup.gateway.port()
    );
    let sibling = setup
        .gateway
        .request(
            "POST",
            &host,
            "/echo",
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", &own),
                ("cookie", &cookie),
            ],
            "",
        )
        .await;
    assert_eq!(sibling.status, 200, "{sibling:?}");
}

// ----- In a real browser (headless Chromium, a fresh profile each) -----

/// An env's app on one port: `page` for every request, and a WebSocket echo for upgrades (on
/// the same port, as Tilt's UI has them). Counts the connections that reach it.
async fn page_and_socket(page: String) -> (u16, Arc<AtomicUsize>) {
    use futures::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let (page, counter) = (page.clone(), counter.clone());
            tokio::spawn(async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut head = [0u8; 8192];
                let seen = stream.peek(&mut head).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&head[..seen]).to_lowercase();
                if text.contains("upgrade: websocket") {
                    if let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await {
                        while let Some(Ok(message)) = socket.next().await {
                            if message.is_text() && socket.send(message).await.is_err() {
                                break;
                            }
                        }
                    }
                } else {
                    let _ = stream.read(&mut head).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    (port, hits)
}

/// The app's page: opens a WebSocket to its own host and shows the echo in the title.
const APP_PAGE: &str = r#"<!doctype html><title>app</title><p>the app</p><script>
const socket = new WebSocket(`ws://${location.host}/ws`);
socket.onopen = () => socket.send("hello");
socket.onmessage = (event) => { document.title = "echo:" + event.data; };
window.tryAgain = () => new Promise((done) => {
  const again = new WebSocket(`ws://${location.host}/ws`);
  again.onopen = () => done("open");
  again.onerror = () => done("refused");
});
</script>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_share_link_opens_the_app_and_its_websocket_until_revoked() {
    let setup = setup().await;
    let (port, _) = page_and_socket(APP_PAGE.to_string()).await;
    setup.env("janes", "jane.doe", Some("owner"), &[port]).await;
    let uid = setup.uid("janes").await;
    setup.set_links("janes", &[link("browser1", 3600)]).await;
    let url = setup.link_url("janes", &uid, "browser1");

    // A visitor with a fresh profile, no account: the link, then the app and its socket.
    let browser = ephemerator_testkit::Browser::start(setup.public.clone(), "share-link").await;
    browser.client.goto(&url).await.unwrap();
    browser
        .until(
            "the app's WebSocket echo",
            "return document.title === 'echo:hello'",
        )
        .await;
    let address = browser.run("return location.href").await;
    assert_eq!(
        address,
        setup.env_url(port, "janes", "/"),
        "the token left the address bar"
    );
    browser.screenshot("opened").await;

    // Revoked: a new socket is refused at once; the page, reloaded, is not the app (and the
    // visitor cannot sign in: the provider refuses them).
    setup.set_links("janes", &[]).await;
    let again = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; window.tryAgain().then(done);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(again, "refused");
    setup.oidc.refuse_next_login().await.unwrap();
    browser
        .client
        .goto(&setup.env_url(port, "janes", "/"))
        .await
        .unwrap();
    let text = browser
        .until(
            "the refusal",
            "return document.readyState === 'complete' && document.body && document.body.innerText",
        )
        .await;
    assert!(!text.as_str().unwrap().contains("the app"), "{text}");
    browser.screenshot("revoked").await;
}

/// Another env's page: plants cookies for the parent domain in every name that matters, then
/// tries to read, post to, open a socket in and frame jane's owner-only env.
fn hostile_page(target: &str) -> String {
    format!(
        r#"<!doctype html><title>hostile</title><body><p>mallory's env</p><script>
for (const name of ["{COOKIE}", "{PASS}", "ephemerator_links", "{STATE}"]) {{
  document.cookie = name + "=forged; domain={GATEWAY_HOST}; path=/";
}}
const target = "{target}";
window.results = [];
fetch(target + "/echo", {{credentials: "include"}})
  .then((r) => r.text()).then((t) => results.push("read:" + t)).catch(() => results.push("read-failed"));
fetch(target + "/echo", {{method: "POST", mode: "no-cors", credentials: "include", body: "x"}})
  .then(() => results.push("post-sent")).catch(() => results.push("post-failed"));
const socket = new WebSocket(target.replace("http", "ws") + "/ws");
socket.onopen = () => results.push("socket-open");
socket.onerror = () => results.push("socket-refused");
const frame = document.createElement("iframe");
frame.src = target + "/echo";
frame.onload = () => results.push("frame-loaded");
document.body.appendChild(frame);
document.title = "planted";
</script>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_another_envs_page_changes_nobodys_identity_and_cannot_act_in_an_owner_env() {
    let setup = setup().await;
    let janes_app = env_server().await;
    let janes_port = janes_app.addr.port();
    setup
        .env("janes", "jane.doe", Some("owner"), &[janes_port])
        .await;
    let janes = format!(
        "http://{}:{}",
        env_host(janes_port, "janes"),
        setup.gateway.port()
    );
    let (hostile_port, _) = page_and_socket(hostile_page(&janes)).await;
    setup
        .env("mallorys", "mallory", None, &[hostile_port])
        .await;

    // Jane signs in on the dashboard and opens her env.
    let browser = ephemerator_testkit::Browser::start(setup.public.clone(), "hostile-env").await;
    browser.goto("/echo").await;
    let dashboard_sees = "return document.body && document.body.innerText";
    let seen = browser.until("the dashboard", dashboard_sees).await;
    assert!(
        seen.as_str()
            .unwrap()
            .contains("x-auth-request-preferred-username: jane.doe"),
        "{seen}"
    );
    browser.client.goto(&format!("{janes}/echo")).await.unwrap();
    let seen = browser.until("her env", dashboard_sees).await;
    assert!(
        seen.as_str()
            .unwrap()
            .contains("x-auth-request-preferred-username: jane.doe"),
        "{seen}"
    );
    let before = janes_app.requests.load(Ordering::SeqCst);

    // Mallory's env page, which jane opens (a team env: she may).
    browser
        .client
        .goto(&setup.env_url(hostile_port, "mallorys", "/"))
        .await
        .unwrap();
    browser
        .until(
            "the hostile page ran",
            "return document.title === 'planted'",
        )
        .await;
    let results = browser
        .until(
            "its four attempts",
            "return window.results && window.results.length >= 4 && window.results",
        )
        .await;
    let results: Vec<String> = serde_json::from_value(results).unwrap();
    assert!(results.contains(&"read-failed".to_string()), "{results:?}");
    assert!(
        results.contains(&"socket-refused".to_string()),
        "{results:?}"
    );
    assert!(
        !results
            .iter()
            .any(|r| r.starts_with("read:") || r == "socket-open"),
        "{results:?}"
    );
    assert_eq!(
        janes_app.requests.load(Ordering::SeqCst),
        before,
        "nothing of it reached jane's env: {results:?}"
    );
    browser.screenshot("hostile").await;

    // The planted cookies change nothing about who she is: her env still knows her, and the
    // dashboard sees jane or refuses the doubled cookie (and clears it); never anyone else.
    browser.client.goto(&format!("{janes}/echo")).await.unwrap();
    let seen = browser.until("her env again", dashboard_sees).await;
    assert!(
        seen.as_str()
            .unwrap()
            .contains("x-auth-request-preferred-username: jane.doe"),
        "{seen}"
    );
    for _ in 0..2 {
        browser.goto("/echo").await;
        let seen = browser.until("the dashboard again", dashboard_sees).await;
        let seen = seen.as_str().unwrap();
        assert!(
            seen.contains("preferred-username: jane.doe") || seen.contains("sign-in cookie twice"),
            "{seen}"
        );
    }
    let seen = browser.until("the dashboard, jane's", dashboard_sees).await;
    assert!(
        seen.as_str()
            .unwrap()
            .contains("preferred-username: jane.doe"),
        "{seen}"
    );
}
