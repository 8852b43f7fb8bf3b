//! ephgateway and the real oauth2-proxy (`realprograms`: v7.15.6 with an OIDC provider, set up
//! as `deploy/` sets it up, the session cookie host-only): the `/oauth2/auth` contract asked of the real one and of the
//! stand-in the other gateway tests use (written once), then a person signing in through the
//! gateway, a tampered session cleared and signed in again, and signing out.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ephemerator_core::Phase;
use ephemerator_testkit::written_once;
use realprograms::browser_client::{BrowserClient, Scope};
use realprograms::oauth2_proxy::{MockOidc, OAuth2Proxy as RealOAuth2Proxy, OAuth2ProxySettings};

/// Which oauth2-proxy a test asks.
#[derive(Debug, Clone, Copy)]
enum ProxyKind {
    Real,
    StandIn,
}

/// An oauth2-proxy of either kind, and a session cookie value it accepts.
struct Proxy {
    addr: std::net::SocketAddr,
    session: String,
    _real: Option<(MockOidc, RealOAuth2Proxy)>,
    _stand_in: Option<OAuth2Proxy>,
}

async fn proxy(kind: ProxyKind) -> Proxy {
    match kind {
        ProxyKind::StandIn => {
            let stand_in = oauth2_proxy().await;
            Proxy {
                addr: stand_in.addr,
                session: "valid-jane".into(),
                _real: None,
                _stand_in: Some(stand_in),
            }
        }
        ProxyKind::Real => {
            let oidc = MockOidc::start().await.expect("mockoidc starts");
            let port = ephemerator_testkit::free_port();
            let mut settings = OAuth2ProxySettings::host_only(
                oidc.issuer(),
                &format!("http://{GATEWAY_HOST}:{port}"),
            );
            settings.port = Some(port);
            let real = RealOAuth2Proxy::start(&settings)
                .await
                .expect("oauth2-proxy starts");
            // Signing in straight at oauth2-proxy (it is its own public address here).
            let mut browser = BrowserClient::default();
            let signed_in = browser
                .get(&format!(
                    "http://{GATEWAY_HOST}:{port}/oauth2/sign_in?rd=http://{GATEWAY_HOST}:{port}/"
                ))
                .await
                .expect("signing in");
            assert_eq!(signed_in.status, 202, "{signed_in:?}");
            let session = browser
                .cookie(COOKIE)
                .expect("a session cookie")
                .to_string();
            Proxy {
                addr: real.addr(),
                session,
                _real: Some((oidc, real)),
                _stand_in: None,
            }
        }
    }
}

written_once!(
    [on_real_oauth2_proxy: crate::ProxyKind::Real, on_stand_in: crate::ProxyKind::StandIn];
    the_auth_endpoint_answers_what_the_gateway_relies_on,
);

async fn the_auth_endpoint_answers_what_the_gateway_relies_on(kind: ProxyKind) {
    let proxy = proxy(kind).await;
    let mut client = BrowserClient::default();
    let auth = url::Url::parse(&format!("http://{}/oauth2/auth", proxy.addr)).unwrap();

    // A session: 202 with who it is, and never the OAuth token (no --pass-access-token).
    client.set_cookie(COOKIE, &proxy.session);
    let allowed = client.get_once(&auth).await.unwrap();
    assert_eq!(allowed.status, 202, "{allowed:?}");
    let email = &allowed.headers["x-auth-request-email"];
    assert!(!allowed.headers["x-auth-request-user"].is_empty());
    assert!(email.ends_with("@example.com"), "{allowed:?}");
    assert_eq!(&allowed.headers["gap-auth"], email);
    assert!(!allowed.headers.contains_key("x-auth-request-access-token"));
    assert!(allowed.set_cookies.is_empty(), "{allowed:?}");

    // No session: 401, nothing to clear.
    let mut anonymous = BrowserClient::default();
    let refused = anonymous.get_once(&auth).await.unwrap();
    assert_eq!((refused.status, refused.body.trim()), (401, "Unauthorized"));
    assert!(refused.set_cookies.is_empty(), "{refused:?}");

    // A session that does not verify: 401, and the cookie is cleared on the cookie domain.
    let mut tampered = BrowserClient::default();
    tampered.set_cookie(COOKIE, &format!("x{}", proxy.session));
    let refused = tampered.get_once(&auth).await.unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.set_cookies,
        [format!(
            "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        )]
    );

    // Signing in sends the browser to the provider, with no page between.
    let sign_in = url::Url::parse(&format!(
        "http://{}/oauth2/sign_in?rd=http://{GATEWAY_HOST}/",
        proxy.addr
    ))
    .unwrap();
    let page = anonymous.get_once(&sign_in).await.unwrap();
    assert_eq!(page.status, 302, "{page:?}");
}

/// The gateway in front of a dashboard stand-in that echoes what it gets, authenticating with
/// the real oauth2-proxy; and the cluster.
struct RealSetup {
    cluster: devcluster::DevCluster,
    gateway: Gateway,
    public: String,
    _oidc: MockOidc,
    _proxy: RealOAuth2Proxy,
    _dashboard: EnvServer,
}

async fn real_setup() -> RealSetup {
    let cluster = devcluster().await;
    let oidc = MockOidc::start().await.expect("mockoidc starts");
    let dashboard = env_server().await;
    let proxy_port = ephemerator_testkit::free_port();
    let proxy_addr = std::net::SocketAddr::from(([127, 0, 0, 1], proxy_port));
    let gateway = Gateway::start(settings(
        cluster.client(),
        Auth::Proxy(proxy_addr),
        dashboard.addr,
    ))
    .await;
    let public = format!("http://{GATEWAY_HOST}:{}", gateway.port());
    let mut proxy_settings = OAuth2ProxySettings::host_only(oidc.issuer(), &public);
    proxy_settings.port = Some(proxy_port);
    let proxy = RealOAuth2Proxy::start(&proxy_settings)
        .await
        .expect("oauth2-proxy starts");
    RealSetup {
        cluster,
        gateway,
        public,
        _oidc: oidc,
        _proxy: proxy,
        _dashboard: dashboard,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_gateway_and_a_tampered_session_is_cleared() {
    let setup = real_setup().await;
    let mut browser = BrowserClient::default();

    // Opening the dashboard signs in through oauth2-proxy and the provider and comes back.
    let page = browser
        .get(&format!("{}/echo", setup.public))
        .await
        .expect("the dashboard through sign-in");
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.url.path(), "/echo", "back where the person started");
    let seen = page.body.to_lowercase();
    // What the dashboard gets is oauth2-proxy's own answer: the OIDC subject as the user.
    for header in [
        "x-auth-request-user: 1234567890",
        "x-auth-request-preferred-username: jane.doe",
        "x-auth-request-email: jane.doe@example.com",
        "x-auth-request-groups: engineering,design",
    ] {
        assert!(seen.contains(header), "{header} in {seen}");
    }
    assert!(
        !seen.contains(COOKIE),
        "the session stays at the gateway: {seen}"
    );
    let session = browser.cookie(COOKIE).unwrap().to_string();

    // The session, on the dashboard's host alone, opens env hosts through it (env_access.rs
    // tests that flow in detail).
    let (env, port) = {
        let env = env_server().await;
        let port = env.addr.port();
        put_env(&setup.cluster.client(), "jane", Phase::Ready, &[port], "").await;
        (env, port)
    };
    let env_page = wait_for("the env routed", || {
        let url = format!(
            "http://{}:{}/",
            env_host(port, "jane"),
            setup.gateway.port()
        );
        let mut browser = BrowserClient::default();
        browser.plant_cookie(COOKIE, &session, Scope::Host(GATEWAY_HOST.into()));
        async move {
            browser
                .get(&url)
                .await
                .ok()
                .filter(|page| page.status == 200)
        }
    })
    .await;
    assert_eq!(env_page.body, "hello from the env");
    drop(env);

    // A tampered session: the gateway sends the browser to sign in and passes oauth2-proxy's
    // clearing of the cookie on; signing in again gives a new session.
    browser.set_cookie(COOKIE, &format!("x{session}"));
    let stale = browser
        .get_once(&url::Url::parse(&format!("{}/echo", setup.public)).unwrap())
        .await
        .unwrap();
    assert_eq!(stale.status, 302, "{stale:?}");
    assert!(stale.headers["location"].contains("/oauth2/sign_in?rd="));
    assert!(
        stale
            .set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0")),
        "{stale:?}"
    );
    assert_eq!(browser.cookie(COOKIE), None, "the stale cookie is gone");
    let again = browser
        .get(&format!("{}/echo", setup.public))
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    let renewed = browser.cookie(COOKIE).expect("a new session").to_string();
    assert_ne!(renewed, session);

    // Signing out clears the session; the next request is sent to sign in.
    let out = browser
        .get_once(
            &url::Url::parse(&format!(
                "{public}/oauth2/sign_out?rd={public}/",
                public = setup.public
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, 302, "{out:?}");
    assert_eq!(browser.cookie(COOKIE), None);
    let after = browser
        .get_once(&url::Url::parse(&format!("{}/echo", setup.public)).unwrap())
        .await
        .unwrap();
    assert_eq!(after.status, 302);
    assert!(after.headers["location"].contains("/oauth2/sign_in?rd="));
}

/// `deploy/`'s session cookie, asked of the real oauth2-proxy: `--cookie-name=__Host-…` with
/// `--cookie-secure=true` and no `--cookie-domain` gives a cookie a browser takes as `__Host-`
/// (host-only, `Path=/`, `Secure`), and the gateway, told the name, lets that session through
/// to the dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_host_prefixed_session_cookie_is_what_oauth2_proxy_sets_and_the_gateway_reads()
{
    const HOST_COOKIE: &str = "__Host-_oauth2_proxy";
    let cluster = devcluster().await;
    let oidc = MockOidc::start().await.expect("mockoidc starts");
    let dashboard = env_server().await;
    let proxy_port = ephemerator_testkit::free_port();
    let proxy_addr = std::net::SocketAddr::from(([127, 0, 0, 1], proxy_port));
    let mut gateway_settings = settings(cluster.client(), Auth::Proxy(proxy_addr), dashboard.addr);
    if let ephgateway::auth::AuthMode::OAuth2Proxy { cookie_name, .. } = &mut gateway_settings.auth
    {
        *cookie_name = HOST_COOKIE.into();
    }
    let gateway = Gateway::start(gateway_settings).await;
    let public = format!("http://{GATEWAY_HOST}:{}", gateway.port());
    let mut proxy_settings = OAuth2ProxySettings::host_only(oidc.issuer(), &public);
    proxy_settings.port = Some(proxy_port);
    proxy_settings.extra_args = vec![
        format!("--cookie-name={HOST_COOKIE}"),
        "--cookie-secure=true".into(),
    ];
    let _proxy = RealOAuth2Proxy::start(&proxy_settings)
        .await
        .expect("oauth2-proxy starts with a __Host- cookie name");

    let mut browser = BrowserClient::default();
    let page = browser.get(&format!("{public}/echo")).await.unwrap();
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body
            .contains("x-auth-request-preferred-username: jane.doe"),
        "{}",
        page.body
    );
    let set = page
        .set_cookies
        .iter()
        .find(|cookie| {
            cookie.starts_with(&format!("{HOST_COOKIE}=")) && !cookie.contains("Max-Age=0")
        })
        .unwrap_or_else(|| panic!("the session in {:?}", page.set_cookies));
    for attribute in ["Path=/", "Secure", "HttpOnly"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(
        !set.to_ascii_lowercase().contains("domain="),
        "host-only: {set}"
    );
    assert_eq!(
        browser.scopes(HOST_COOKIE),
        [Scope::Host(GATEWAY_HOST.into())]
    );
}
