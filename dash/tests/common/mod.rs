//! The dashboard on a free port with a devcluster behind it, and a small HTTP client that
//! speaks to it as a browser (or htmx) would.
#![allow(dead_code, unused_imports, unused_macros)]

use std::collections::BTreeMap;
use std::time::Duration;

use devcluster::DevCluster;
use ephdash::csrf::CsrfKey;
use ephdash::identity::IdentitySource;
use ephdash::startup::{self, Running};
use ephemerator_core::Config;
use ephemerator_kit::LiveConfig;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use ephemerator_testkit::DEADLINE;
pub const HTML_REPO: &str = "https://github.com/tilt-dev/tilt-example-html";
pub const HOST: &str = "preview.localhost";

pub const CONFIG_YAML: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html, tilt-example-python]
expiration: {defaultTTL: 15m, extendBy: 15m, maxLifetime: 1h}
maxEnvsPerUser: 1
admins: [root@example.com]
"#;

/// One key for every test dashboard, so tests can mint any user's token.
pub fn csrf_key() -> CsrfKey {
    CsrfKey::from_bytes(&[42u8; 32]).unwrap()
}

pub struct Dash {
    backend: Backend,
    /// The cluster's admin (the test's own reads and writes, as kubectl would).
    admin: kube::Client,
    pub running: Running,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// The API server behind the dashboard.
enum Backend {
    Dev(DevCluster),
    Real(Box<realcluster::RealCluster>),
}

/// The envs' namespace: `deploy/`'s, so that on the real API server the dashboard runs as its
/// ServiceAccount with exactly its Role.
pub const NAMESPACE: &str = "ephemerator";

/// `on_both_clusters!(a, b)`: each `async fn` named runs on devcluster and on the real API server
/// (see `ephemerator_testkit::on_devcluster_and_real_apiserver`).
macro_rules! on_both_clusters {
    ($($test:ident),* $(,)?) => {
        ephemerator_testkit::on_devcluster_and_real_apiserver!(
            dev: crate::common::Dash::start().await,
            real: crate::common::Dash::start_on_real_apiserver().await;
            $($test),*
        );
    };
}
pub(crate) use on_both_clusters;

/// An answer: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Dash {
    /// A dashboard reading identities from X-Auth-Request-* headers.
    pub async fn start() -> Dash {
        Dash::start_with(CONFIG_YAML, IdentitySource::AuthRequest).await
    }

    pub async fn start_with(config_yaml: &str, identity: IdentitySource) -> Dash {
        let config = Config::from_yaml_str(config_yaml, "test.yaml").unwrap();
        Dash::start_live(LiveConfig::fixed(config), identity).await
    }

    /// A dashboard on `config` as it is reloaded.
    pub async fn start_live(config: LiveConfig, identity: IdentitySource) -> Dash {
        Dash::start_dev(config, identity, csrf_key()).await
    }

    /// A dashboard signing its CSRF tokens with `csrf`.
    pub async fn start_with_csrf(csrf: CsrfKey) -> Dash {
        let config = Config::from_yaml_str(CONFIG_YAML, "test.yaml").unwrap();
        Dash::start_dev(LiveConfig::fixed(config), IdentitySource::AuthRequest, csrf).await
    }

    async fn start_dev(config: LiveConfig, identity: IdentitySource, csrf: CsrfKey) -> Dash {
        Dash::start_dev_with(config, identity, csrf, |_| {}).await
    }

    /// A dashboard on devcluster whose settings `tweak` changes.
    pub async fn start_tweaked(tweak: impl FnOnce(&mut startup::Settings)) -> Dash {
        let config = Config::from_yaml_str(CONFIG_YAML, "test.yaml").unwrap();
        Dash::start_dev_with(
            LiveConfig::fixed(config),
            IdentitySource::AuthRequest,
            csrf_key(),
            tweak,
        )
        .await
    }

    /// A dashboard on devcluster whose every API request is bounded by `limit` (as the binary's
    /// `--api-timeout`), reporting the API server's health as the binary does.
    pub async fn start_with_api_timeout(limit: Duration) -> Dash {
        let config = Config::from_yaml_str(CONFIG_YAML, "test.yaml").unwrap();
        Dash::start_dev_client(
            LiveConfig::fixed(config),
            IdentitySource::AuthRequest,
            csrf_key(),
            Some(limit),
            |_| {},
        )
        .await
    }

    async fn start_dev_with(
        config: LiveConfig,
        identity: IdentitySource,
        csrf: CsrfKey,
        tweak: impl FnOnce(&mut startup::Settings),
    ) -> Dash {
        Dash::start_dev_client(config, identity, csrf, None, tweak).await
    }

    async fn start_dev_client(
        config: LiveConfig,
        identity: IdentitySource,
        csrf: CsrfKey,
        limit: Option<Duration>,
        tweak: impl FnOnce(&mut startup::Settings),
    ) -> Dash {
        let cluster = DevCluster::builder()
            .pod_ready_delay(Duration::from_millis(200))
            .start()
            .await
            .expect("devcluster starts");
        let namespace: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}})).unwrap();
        kube::Api::all(cluster.client())
            .create(&Default::default(), &namespace)
            .await
            .expect("the tests' namespace");
        let admin = cluster.client();
        let (client, health) = match limit {
            Some(limit) => {
                let health = ephemerator_kit::cluster::ApiHealth::default();
                let mut kube_config = kube::Config::new(cluster.url().parse().unwrap());
                kube_config.default_namespace = NAMESPACE.into();
                let client =
                    ephemerator_kit::cluster::bounded_client(kube_config, limit, health.clone())
                        .unwrap();
                (client, Some(health))
            }
            None => (admin.clone(), None),
        };
        Dash::serve(
            Backend::Dev(cluster),
            admin,
            client,
            config,
            identity,
            csrf,
            move |settings| {
                if let Some(health) = health {
                    settings.api_health = health;
                }
                tweak(settings);
            },
        )
        .await
    }

    /// A dashboard on the real API server with `deploy/`'s dev overlay applied, running as
    /// ephdash's ServiceAccount.
    pub async fn start_on_real_apiserver() -> Dash {
        Dash::start_on_real_apiserver_with(CONFIG_YAML).await
    }

    /// The same on `config_yaml`.
    pub async fn start_on_real_apiserver_with(config_yaml: &str) -> Dash {
        let cluster = realcluster::RealCluster::start_with_overlay("dev")
            .await
            .expect("the real control plane with deploy/'s dev overlay");
        let admin = cluster.client().await.expect("an admin client");
        let dash = cluster
            .client_as(NAMESPACE, "ephdash")
            .await
            .expect("ephdash's ServiceAccount");
        let config = Config::from_yaml_str(config_yaml, "test.yaml").unwrap();
        Dash::serve(
            Backend::Real(Box::new(cluster)),
            admin,
            dash,
            LiveConfig::fixed(config),
            IdentitySource::AuthRequest,
            csrf_key(),
            |_| {},
        )
        .await
    }

    async fn serve(
        backend: Backend,
        admin: kube::Client,
        client: kube::Client,
        config: LiveConfig,
        identity: IdentitySource,
        csrf: CsrfKey,
        tweak: impl FnOnce(&mut startup::Settings),
    ) -> Dash {
        let mut settings = ephdash::testing::settings(client, NAMESPACE, config, identity, csrf);
        tweak(&mut settings);
        let running = startup::start(settings, ephemerator_kit::Listeners::local(true).unwrap())
            .expect("the dashboard starts");
        let http = Client::builder(TokioExecutor::new()).build_http();
        let dash = Dash {
            backend,
            admin,
            running,
            http,
        };
        wait_for("/readyz", || async {
            (dash.admin_get("/readyz").await.status == 200).then_some(())
        })
        .await;
        dash
    }

    /// The cluster's admin client.
    pub fn client(&self) -> kube::Client {
        self.admin.clone()
    }

    /// The devcluster, for tests of what only it does (fault injection, restarts).
    pub fn devcluster(&self) -> &DevCluster {
        match &self.backend {
            Backend::Dev(cluster) => cluster,
            Backend::Real(_) => panic!("a devcluster-only test ran on the real API server"),
        }
    }

    /// GET on the admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub async fn admin_get(&self, path: &str) -> Answer {
        let uri = format!("http://{}{path}", self.running.admin_addr);
        let request = hyper::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = tokio::time::timeout(DEADLINE, self.http.request(request))
            .await
            .expect("the admin listener answers in time")
            .expect("the admin listener answers");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers: BTreeMap::new(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// GET as `user` (no identity header when `None`).
    pub async fn get(&self, path: &str, user: Option<&str>) -> Answer {
        self.request("GET", path, user, &[], None).await
    }

    /// A plain form POST as `user` with `fields` (the CSRF token is one of them).
    pub async fn post(&self, path: &str, user: &str, fields: &[(&str, &str)]) -> Answer {
        self.request("POST", path, Some(user), &[], Some(fields))
            .await
    }

    /// An htmx form POST (`HX-Request: true`).
    pub async fn hx_post(&self, path: &str, user: &str, fields: &[(&str, &str)]) -> Answer {
        self.request(
            "POST",
            path,
            Some(user),
            &[("hx-request", "true")],
            Some(fields),
        )
        .await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Answer {
        // A `host` among `headers` replaces the dashboard's.
        let is_host = |name: &str| name.eq_ignore_ascii_case("host");
        let host = headers
            .iter()
            .find(|(name, _)| is_host(name))
            .map_or(HOST, |(_, value)| *value);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.running.addr))
            .header("host", host);
        if let Some(user) = user {
            request = request.header("x-auth-request-user", user);
        }
        for (name, value) in headers.iter().filter(|(name, _)| !is_host(name)) {
            request = request.header(*name, *value);
        }
        let body = match form {
            Some(fields) => {
                request = request.header("content-type", "application/x-www-form-urlencoded");
                Bytes::from(encode_form(fields))
            }
            None => Bytes::new(),
        };
        let response = tokio::time::timeout(
            DEADLINE,
            self.http.request(request.body(Full::new(body)).unwrap()),
        )
        .await
        .expect("the dashboard answers in time")
        .expect("the dashboard answers");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    value.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// `application/x-www-form-urlencoded`.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", escape(name), escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub use ephemerator_testkit::wait_for;

/// The CSRF token of `user` under the tests' key, as the page embeds it.
pub fn token(user: &str) -> String {
    csrf_key().token(user)
}

/// Env ConfigMap `name` as the API server has it now.
pub async fn config_map(dash: &Dash, name: &str) -> k8s_openapi::api::core::v1::ConfigMap {
    kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(dash.client(), NAMESPACE)
        .get(name)
        .await
        .unwrap()
}

/// Annotation `key` of `cm`.
pub fn annotation(cm: &k8s_openapi::api::core::v1::ConfigMap, key: &str) -> Option<String> {
    cm.metadata.annotations.as_ref()?.get(key).cloned()
}
