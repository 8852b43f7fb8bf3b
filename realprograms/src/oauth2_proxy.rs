//! The real oauth2-proxy, set up as `deploy/` sets it up (auth-request mode behind the gateway:
//! `--reverse-proxy`, `--set-xauthrequest`, `--upstream=static://202`,
//! `--skip-provider-button`) but with the OIDC provider of the tests instead of GitHub, and
//! that provider ([`MockOidc`]: `testprograms/mockoidc`, the oauth2-proxy project's mockoidc).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::browser_client::BrowserClient;
use crate::process::Program;
use crate::{binary, free_port};

/// The OAuth client oauth2-proxy is registered as at the provider.
pub const CLIENT_ID: &str = "ephemerator";
/// Its secret.
pub const CLIENT_SECRET: &str = "ephemerator-test-secret";
/// oauth2-proxy's session cookie name (its default, as in `deploy/`).
pub const COOKIE_NAME: &str = "_oauth2_proxy";
/// Longest wait for a program to serve.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// A person the provider signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcUser {
    /// The `sub` claim: an opaque, stable id.
    pub sub: String,
    pub email: String,
    /// `preferred_username`, if the provider gives one.
    pub preferred_username: Option<String>,
    pub groups: Vec<String>,
}

impl OidcUser {
    /// mockoidc's default user, signed in when nobody was queued.
    pub fn jane() -> OidcUser {
        OidcUser {
            sub: "1234567890".into(),
            email: "jane.doe@example.com".into(),
            preferred_username: Some("jane.doe".into()),
            groups: vec!["engineering".into(), "design".into()],
        }
    }
}

/// The OIDC provider: every login is signed in without a page, as the next queued user.
pub struct MockOidc {
    program: Program,
    issuer: String,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl MockOidc {
    /// Starts it on a free port of 127.0.0.1 and reads its issuer URL.
    pub async fn start() -> anyhow::Result<MockOidc> {
        let binary = binary("mockoidc").await?;
        let dir = tempfile::tempdir()?;
        let mut command = Command::new(binary);
        command.args([
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
        ]);
        let mut program = Program::spawn("mockoidc", command, &dir.path().join("log"), true)?;
        let stdout = program.child().stdout.take().context("mockoidc's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(READY_DEADLINE, lines.next_line())
            .await
            .context("mockoidc did not say where it listens")??
            .with_context(|| format!("mockoidc exited; {}", program.log_tail()))?;
        let ready: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("mockoidc printed {line:?}, not its issuer"))?;
        let issuer = ready["issuer"]
            .as_str()
            .context("mockoidc printed no issuer")?
            .to_string();
        let addr = url::Url::parse(&issuer)?
            .socket_addrs(|| None)?
            .into_iter()
            .next()
            .context("the issuer has no address")?;
        // Drains the rest of its output.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(MockOidc {
            program,
            issuer,
            addr,
            _dir: dir,
        })
    }

    /// Its issuer URL (`http://127.0.0.1:PORT/oidc`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The next login signs in as `user` (logins after it as the default user, jane).
    pub async fn queue_user(&self, user: &OidcUser) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "sub": user.sub,
            "email": user.email,
            "preferred_username": user.preferred_username,
            "groups": user.groups,
        })
        .to_string();
        self.post("/test/next-user", body).await
    }

    /// The next login ends on the provider's refusal page (403 `sign-in refused`).
    pub async fn refuse_next_login(&self) -> anyhow::Result<()> {
        self.post("/test/refuse-next-login", String::new()).await
    }

    async fn post(&self, path: &str, body: String) -> anyhow::Result<()> {
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<hyper::body::Bytes>>();
        let request = hyper::Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))?;
        let answer = http.request(request).await?;
        if answer.status() != 204 {
            bail!(
                "mockoidc refused {path}: {}; {}",
                answer.status(),
                self.program.log_tail()
            );
        }
        Ok(())
    }
}

/// How oauth2-proxy is set up for a test.
#[derive(Debug, Clone)]
pub struct OAuth2ProxySettings {
    /// The issuer of the provider ([`MockOidc::issuer`]).
    pub issuer: String,
    /// The address people open, e.g. `http://preview.localhost:PORT`: the callback is
    /// `/oauth2/callback` there.
    pub public_url: String,
    /// `--cookie-domain` (`.preview.localhost`, as `deploy/` covers env hosts), if any.
    pub cookie_domain: Option<String>,
    /// `--whitelist-domain`: where sign-in and sign-out may send people back to.
    pub whitelist_domains: Vec<String>,
    /// The port of 127.0.0.1 to listen on (`None`: a free one), for a gateway that must name it
    /// before it starts.
    pub port: Option<u16>,
    /// The secret sessions are signed and encrypted with (32 bytes).
    pub cookie_secret: String,
    /// Further flags.
    pub extra_args: Vec<String>,
}

impl OAuth2ProxySettings {
    /// Settings for people opening `public_url`, signed in by the provider at `issuer`, with the
    /// session cookie on `cookie_domain` and sign-in allowed to return anywhere under it.
    pub fn new(issuer: &str, public_url: &str, cookie_domain: &str) -> Self {
        OAuth2ProxySettings {
            issuer: issuer.to_string(),
            public_url: public_url.to_string(),
            cookie_domain: Some(cookie_domain.to_string()),
            whitelist_domains: vec![format!("{cookie_domain}:*")],
            port: None,
            cookie_secret: "0123456789abcdef0123456789abcdef".to_string(),
            extra_args: Vec::new(),
        }
    }
}

impl OAuth2ProxySettings {
    /// Settings as `deploy/` has them: the session cookie host-only on the dashboard's host
    /// (no `--cookie-domain`), sign-in returning to that host only.
    pub fn host_only(issuer: &str, public_url: &str) -> Self {
        let host = url::Url::parse(public_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_default();
        OAuth2ProxySettings {
            cookie_domain: None,
            whitelist_domains: vec![format!("{host}:*")],
            ..OAuth2ProxySettings::new(issuer, public_url, "")
        }
    }
}

/// A running oauth2-proxy.
pub struct OAuth2Proxy {
    program: Program,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl OAuth2Proxy {
    /// Starts it on a free port of 127.0.0.1 and waits until it answers `/ping`.
    pub async fn start(settings: &OAuth2ProxySettings) -> anyhow::Result<OAuth2Proxy> {
        let binary = binary("oauth2-proxy").await?;
        let dir = tempfile::tempdir()?;
        let port = match settings.port {
            Some(port) => port,
            None => free_port()?,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new(binary);
        command
            .args(["--provider=oidc", "--reverse-proxy", "--set-xauthrequest"])
            .args(["--upstream=static://202", "--skip-provider-button=true"])
            .args(["--cookie-secure=false", "--cookie-samesite=lax"])
            .args(["--email-domain=*", "--trusted-proxy-ip=127.0.0.1"])
            .args(["--scope=openid email profile groups"])
            .arg(format!("--http-address={addr}"))
            .arg(format!("--oidc-issuer-url={}", settings.issuer))
            .arg(format!("--client-id={CLIENT_ID}"))
            .arg(format!("--client-secret={CLIENT_SECRET}"))
            .arg(format!("--cookie-secret={}", settings.cookie_secret))
            .arg(format!(
                "--redirect-url={}/oauth2/callback",
                settings.public_url.trim_end_matches('/')
            ));
        if let Some(domain) = &settings.cookie_domain {
            command.arg(format!("--cookie-domain={domain}"));
        }
        for domain in &settings.whitelist_domains {
            command.arg(format!("--whitelist-domain={domain}"));
        }
        command.args(&settings.extra_args);
        let mut program = Program::spawn("oauth2-proxy", command, &dir.path().join("log"), false)?;
        let started = Instant::now();
        let mut client = BrowserClient::default();
        let ping = url::Url::parse(&format!("http://{addr}/ping"))?;
        loop {
            if let Some(status) = program.exited() {
                bail!("oauth2-proxy exited ({status}); {}", program.log_tail());
            }
            if client
                .get_once(&ping)
                .await
                .is_ok_and(|page| page.status == 200)
            {
                break;
            }
            if started.elapsed() > READY_DEADLINE {
                bail!("oauth2-proxy did not answer /ping; {}", program.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(OAuth2Proxy {
            program,
            addr,
            _dir: dir,
        })
    }

    /// Stops it and starts it again on the same port with `settings` (a new cookie secret
    /// makes every session it gave out invalid, as rotating the secret does).
    pub async fn restart(self, settings: &OAuth2ProxySettings) -> anyhow::Result<OAuth2Proxy> {
        let port = self.addr.port();
        drop(self);
        let settings = OAuth2ProxySettings {
            port: Some(port),
            ..settings.clone()
        };
        OAuth2Proxy::start(&settings).await
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, what the gateway's `--oauth2-proxy-url` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        self.program.log_tail()
    }
}
