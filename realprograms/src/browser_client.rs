//! An HTTP client that acts as a browser does where signing in is concerned: it follows
//! redirects, keeps the cookies it is given (and drops one set with `Max-Age=0`) and sends each
//! back to the hosts it belongs to (host-only, or a `Domain` and its subdomains), and reaches
//! every `*.localhost` name on loopback. Enough to sign in through the real oauth2-proxy and
//! OIDC provider in a test without a browser, and to see which host holds which cookie.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 10;
/// Longest wait for one answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One answer, after any redirects.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL that answered.
    pub url: Url,
    pub status: u16,
    /// Header names in lower case; the last of repeated ones.
    pub headers: BTreeMap<String, String>,
    /// Every `Set-Cookie` of every answer on the way, in order.
    pub set_cookies: Vec<String>,
    pub body: String,
}

/// Which hosts a cookie is sent to. (Paths are ignored: every cookie here is for `/`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The host that set it, alone (no `Domain` attribute).
    Host(String),
    /// A domain and its subdomains (`Domain=`).
    Domain(String),
    /// Every host: a cookie a test put in the jar by hand.
    Everywhere,
}

impl Scope {
    fn covers(&self, host: &str) -> bool {
        match self {
            Scope::Host(own) => own == host,
            Scope::Domain(domain) => {
                host == domain
                    || host
                        .strip_suffix(domain.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }
            Scope::Everywhere => true,
        }
    }
}

#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
    scope: Scope,
}

/// A client with a cookie jar.
pub struct BrowserClient {
    http: Client<HttpConnector, Full<Bytes>>,
    cookies: Vec<Cookie>,
    /// Extra headers of every request (`Sec-Fetch-*`, say).
    extra_headers: Vec<(String, String)>,
}

impl Default for BrowserClient {
    fn default() -> Self {
        BrowserClient {
            http: Client::builder(TokioExecutor::new()).build_http(),
            cookies: Vec::new(),
            extra_headers: Vec::new(),
        }
    }
}

impl BrowserClient {
    /// `GET url`, following redirects.
    pub async fn get(&mut self, url: &str) -> anyhow::Result<Page> {
        let mut url = Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
        let mut set_cookies = Vec::new();
        for _ in 0..=MAX_REDIRECTS {
            let page = self.get_once(&url).await?;
            set_cookies.extend(page.set_cookies.iter().cloned());
            let redirect = (300..400).contains(&page.status);
            match page.headers.get("location").filter(|_| redirect) {
                Some(location) => {
                    url = url
                        .join(location)
                        .with_context(|| format!("{url} redirects to {location:?}"))?;
                }
                None => {
                    return Ok(Page {
                        set_cookies,
                        ..page
                    });
                }
            }
        }
        bail!("more than {MAX_REDIRECTS} redirects from {url}")
    }

    /// One `GET url`, redirects not followed; its cookies are kept.
    pub async fn get_once(&mut self, url: &Url) -> anyhow::Result<Page> {
        let host = url.host_str().context("a URL without a host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let target = if host == "localhost" || host.ends_with(".localhost") {
            format!("127.0.0.1:{port}")
        } else {
            format!("{host}:{port}")
        };
        let path = &url[url::Position::BeforePath..];
        // What a browser's navigation sends: servers tell pages from API calls by it.
        let mut request = Request::get(format!("http://{target}{path}"))
            .header(
                header::HOST,
                &url[url::Position::BeforeHost..url::Position::AfterPort],
            )
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8");
        let host = host.to_ascii_lowercase();
        let cookies: Vec<String> = self
            .cookies
            .iter()
            .filter(|cookie| cookie.scope.covers(&host))
            .map(|cookie| format!("{}={}", cookie.name, cookie.value))
            .collect();
        if !cookies.is_empty() {
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        for (name, value) in &self.extra_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(Full::default())?;
        let response = tokio::time::timeout(TIMEOUT, self.http.request(request))
            .await
            .with_context(|| format!("{url} did not answer within {TIMEOUT:?}"))?
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        for cookie in &set_cookies {
            self.keep(cookie, &host);
        }
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Page {
            url: url.clone(),
            status,
            headers,
            set_cookies,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Keeps (or, with `Max-Age=0` or an empty value, drops) the cookie of a `Set-Cookie`
    /// answered by `host`.
    fn keep(&mut self, set_cookie: &str, host: &str) {
        let mut attributes = set_cookie.split(';');
        let Some((name, value)) = attributes
            .next()
            .and_then(|pair| pair.trim().split_once('='))
        else {
            return;
        };
        let mut cleared = value.is_empty();
        let mut scope = Scope::Host(host.to_string());
        for attribute in attributes {
            let attribute = attribute.trim().to_ascii_lowercase();
            if let Some(age) = attribute.strip_prefix("max-age=") {
                cleared |= age.trim() == "0" || age.trim().starts_with('-');
            }
            if let Some(domain) = attribute.strip_prefix("domain=") {
                scope = Scope::Domain(domain.trim().trim_start_matches('.').to_string());
            }
        }
        // A cookie replaces (or clears) the one of its name and scope; and one a test put in
        // by hand, which stands for whatever the server had set.
        self.cookies.retain(|cookie| {
            cookie.name != name || (cookie.scope != scope && cookie.scope != Scope::Everywhere)
        });
        if !cleared {
            self.cookies.push(Cookie {
                name: name.to_string(),
                value: value.to_string(),
                scope,
            });
        }
    }

    /// The value of a cookie `name` in the jar, whichever host it is for.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|cookie| cookie.name == name)
            .map(|cookie| cookie.value.as_str())
    }

    /// The value of the cookie `name` that `host` would be sent, if any.
    pub fn cookie_for(&self, host: &str, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|cookie| cookie.name == name && cookie.scope.covers(host))
            .map(|cookie| cookie.value.as_str())
    }

    /// The scopes of every cookie named `name`.
    pub fn scopes(&self, name: &str) -> Vec<Scope> {
        self.cookies
            .iter()
            .filter(|cookie| cookie.name == name)
            .map(|cookie| cookie.scope.clone())
            .collect()
    }

    /// Sets cookie `name` for every host, replacing any of that name, as a person could (a
    /// test tampering with a session).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|cookie| cookie.name != name);
        self.cookies.push(Cookie {
            name: name.to_string(),
            value: value.to_string(),
            scope: Scope::Everywhere,
        });
    }

    /// Adds cookie `name` with `scope` beside any others of that name, as a page's script can
    /// (a cookie for the parent domain, say).
    pub fn plant_cookie(&mut self, name: &str, value: &str, scope: Scope) {
        self.cookies
            .retain(|cookie| cookie.name != name || cookie.scope != scope);
        self.cookies.push(Cookie {
            name: name.to_string(),
            value: value.to_string(),
            scope,
        });
    }

    /// Sends `name: value` with every request from now on.
    pub fn always_send(&mut self, name: &str, value: &str) {
        self.extra_headers
            .push((name.to_string(), value.to_string()));
    }
}
