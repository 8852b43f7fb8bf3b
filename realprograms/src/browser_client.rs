//! An HTTP client that acts as a browser does where signing in is concerned: it follows
//! redirects, keeps the cookies it is given (and drops one set with `Max-Age=0`) and sends them
//! back, and reaches every `*.localhost` name on loopback. Enough to sign in through the real
//! oauth2-proxy and OIDC provider in a test without a browser.

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

/// A client with a cookie jar.
pub struct BrowserClient {
    http: Client<HttpConnector, Full<Bytes>>,
    /// Cookie name → value. Every test host is a name on this machine, so the jar ignores
    /// cookie domains and paths.
    cookies: BTreeMap<String, String>,
}

impl Default for BrowserClient {
    fn default() -> Self {
        BrowserClient {
            http: Client::builder(TokioExecutor::new()).build_http(),
            cookies: BTreeMap::new(),
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
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header(header::COOKIE, cookies.join("; "));
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
            self.keep(cookie);
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

    /// Keeps (or, with `Max-Age=0` or an empty value, drops) the cookie of a `Set-Cookie`.
    fn keep(&mut self, set_cookie: &str) {
        let mut attributes = set_cookie.split(';');
        let Some((name, value)) = attributes
            .next()
            .and_then(|pair| pair.trim().split_once('='))
        else {
            return;
        };
        let cleared = attributes.any(|attribute| {
            attribute
                .trim()
                .to_ascii_lowercase()
                .strip_prefix("max-age=")
                .is_some_and(|age| age.trim() == "0" || age.trim().starts_with('-'))
        });
        if cleared || value.is_empty() {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_string(), value.to_string());
        }
    }

    /// The value of cookie `name`, if the jar has it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Sets cookie `name` as a page or a person could (a test tampering with a session).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_string(), value.to_string());
    }
}
