//! ephctrl, ephdash and ephgateway against the real API server, each as its own ServiceAccount
//! bound to exactly its Role from `deploy/` (the dev overlay, applied with kubectl): the real
//! RBAC authorizer proves that what each server does is allowed, and that what it must not do
//! is refused. The runner pods are scheduled on kwok's node, which reports them Ready, and the
//! runner's Tilt is the real one (`realprograms`).

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ephdash::identity::IdentitySource;
use ephemerator_core::{Config, EnvStatus, Phase, env_config_map};
use ephemerator_kit::cluster::{ApiHealth, bounded_client};
use ephemerator_testkit::wait_for;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ListParams, PostParams};
use realcluster::RealCluster;
use realprograms::tilt::{RealTilt, http_server_resource};

/// The namespace of `deploy/`.
const NAMESPACE: &str = "ephemerator";
const HOST: &str = "preview.localhost";
const CONFIG_YAML: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html]
"#;
const HTML_REPO: &str = "https://github.com/tilt-dev/tilt-example-html";

fn config() -> Config {
    Config::from_yaml_str(CONFIG_YAML, "test.yaml").unwrap()
}

/// The control plane with `deploy/`'s dev overlay applied: the namespace, the ServiceAccounts,
/// their Roles and RoleBindings.
async fn cluster() -> RealCluster {
    RealCluster::start_with_overlay("dev").await.unwrap()
}

/// Whether a kube call was refused by the authorizer (403).
fn forbidden<T: std::fmt::Debug>(result: kube::Result<T>) -> bool {
    match result {
        Err(kube::Error::Api(status)) => status.code == 403,
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

/// A plain HTTP/1 GET; `(status, body)`, or `None` if nothing answers.
async fn http_get(addr: SocketAddr, host: &str, path: &str) -> Option<(u16, String)> {
    http_get_as(addr, host, path, None).await
}

/// [`http_get`] as `user` (oauth2-proxy's header, as the gateway passes it to the dashboard).
async fn http_get_as(
    addr: SocketAddr,
    host: &str,
    path: &str,
    user: Option<&str>,
) -> Option<(u16, String)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = hyper::Request::get(format!("http://{addr}{path}")).header("host", host);
    if let Some(user) = user {
        request = request.header("x-auth-request-user", user);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .ok()?
        .ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn get<K>(client: &kube::Client, name: &str) -> Option<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NAMESPACE)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

fn ctrl_settings(
    client: kube::Client,
    config: Config,
    tilt_url_template: String,
) -> ephctrl::Settings {
    let mut settings = ephctrl::testing::settings(client, NAMESPACE, config);
    settings.tilt_url_template = tilt_url_template;
    settings
}

/// The test config with Tilt's web port where the test's real Tilt listens.
fn config_with_tilt_port(port: u16) -> Config {
    Config::from_yaml_str(
        &format!("{CONFIG_YAML}runner:\n  tiltPort: {port}\n"),
        "test.yaml",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_from_the_dashboard_runs_is_routed_and_is_deleted_each_server_as_its_account() {
    let cluster = cluster().await;
    let admin = cluster.client().await.unwrap();
    let ctrl_client = cluster.client_as(NAMESPACE, "ephctrl").await.unwrap();
    let dash_client = cluster.client_as(NAMESPACE, "ephdash").await.unwrap();
    let gateway_client = cluster.client_as(NAMESPACE, "ephgateway").await.unwrap();

    // Least privilege, asked by the servers' own credentials: no Secrets for anyone, nothing
    // outside the namespace, no writes for the gateway.
    for client in [&ctrl_client, &dash_client, &gateway_client] {
        let secrets = Api::<Secret>::namespaced(client.clone(), NAMESPACE);
        assert!(forbidden(secrets.list(&ListParams::default()).await));
        let elsewhere = Api::<ConfigMap>::namespaced(client.clone(), "default");
        assert!(forbidden(elsewhere.list(&ListParams::default()).await));
        let cm = env_config_map(
            "x",
            "x",
            &ephemerator_core::EnvSpec {
                repo: HTML_REPO.into(),
                branch: "main".into(),
                path: "Tiltfile".into(),
            },
            None,
        );
        assert!(forbidden(
            elsewhere.create(&PostParams::default(), &cm).await
        ));
    }
    let gateway_writes = Api::<ConfigMap>::namespaced(gateway_client.clone(), NAMESPACE);
    assert!(forbidden(
        gateway_writes
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": "nope"}})).unwrap()
            )
            .await
    ));
    assert!(forbidden(
        Api::<Deployment>::namespaced(dash_client.clone(), NAMESPACE)
            .list(&ListParams::default())
            .await
    ));

    // The dashboard, as ephdash: nicks creates an env with the plain form.
    let csrf = ephdash::csrf::CsrfKey::from_bytes(&[7u8; 32]).unwrap();
    let dash = ephdash::startup::start(
        ephdash::testing::settings(
            dash_client,
            NAMESPACE,
            ephemerator_kit::LiveConfig::fixed(config()),
            IdentitySource::AuthRequest,
            csrf.clone(),
        ),
        ephemerator_kit::Listeners::local(true).unwrap(),
    )
    .expect("the dashboard starts");
    wait_for("the dashboard to be ready", || async {
        let (status, _) = http_get(dash.admin_addr, HOST, "/readyz").await?;
        (status == 200).then_some(())
    })
    .await;
    let form = format!(
        "repo={}&branch=main&path=0-base%2FTiltfile&csrf={}",
        HTML_REPO.replace(':', "%3A").replace('/', "%2F"),
        csrf.token("nicks")
    );
    let created = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>()
        .request(
            hyper::Request::post(format!("http://{}/envs", dash.addr))
                .header("host", HOST)
                .header("x-auth-request-user", "nicks")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.status(), 303, "the create form redirects");
    assert!(get::<ConfigMap>(&admin, "nicks").await.is_some());

    // ephctrl, as its account, makes the runner, asking its Tilt at the runner's address: the
    // env's name in the host, as the Service's DNS name has it, here a name under `localhost`
    // (RFC 6761), where the runner's Tilt listens (there is no pod network without a container
    // engine).
    let tilt_port = ephemerator_testkit::free_port();
    let config = config_with_tilt_port(tilt_port);
    let ctrl = ephctrl::testing::start(ctrl_settings(
        ctrl_client.clone(),
        config.clone(),
        "http://{env}.localhost:{port}".to_string(),
    ));
    let deployment = wait_for("the runner Deployment", || async {
        get::<Deployment>(&admin, "nicks").await
    })
    .await;
    let token = ephctrl::desired::tilt_token_of(&deployment).expect("a Tilt token");

    // The runner's real Tilt, with the token ephctrl gave the runner, serves the env's app.
    let app_port = ephemerator_testkit::free_port();
    let tilt = RealTilt::start_on(tilt_port, &http_server_resource("web", app_port), &token)
        .await
        .expect("tilt up starts");
    let status = wait_for("nicks Ready with its app's port published", || async {
        let cm: ConfigMap = get(&admin, "nicks").await?;
        let status = EnvStatus::from_meta(&cm.metadata);
        (status.phase == Phase::Ready
            && status.message.as_deref() == Some("runner ready")
            && status.ports.iter().any(|p| p.port == app_port))
        .then_some(status)
    })
    .await;
    assert!(status.ready_at.is_some());
    let service: Service = get(&admin, "nicks").await.expect("the runner's Service");
    let service_ports: Vec<(String, i32)> = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect();
    // Tilt's port first, then the app's (see ephctrl::desired::exposed_ports).
    assert_eq!(
        service_ports,
        vec![
            ("tilt".to_string(), i32::from(tilt_port)),
            ("web".to_string(), i32::from(app_port)),
        ]
    );

    // ephgateway, as its account, routes the env's port host to the app.
    let gateway = ephgateway::start(
        ephgateway::Settings::on_loopback(
            gateway_client,
            NAMESPACE,
            ephemerator_kit::LiveConfig::fixed(config.clone()),
            dash.addr,
        ),
        ephemerator_kit::Listeners::local(true).unwrap(),
    )
    .expect("the gateway starts");
    let env_host = format!("{app_port}---nicks.{HOST}");
    let (status, body) = wait_for("the env's app routed", || async {
        http_get(gateway.addr, &env_host, "/")
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("Directory listing"), "{body}");
    // And Tilt's own page, on Tilt's port of the env.
    let (status, body) = http_get(gateway.addr, &format!("{tilt_port}---nicks.{HOST}"), "/")
        .await
        .expect("Tilt's page through the gateway");
    assert_eq!(status, 200);
    assert!(body.contains("<title>Tilt</title>"), "{body}");
    // The dashboard lists the env, Ready, with that link.
    let (status, page) = http_get_as(dash.addr, HOST, "/", Some("nicks"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-phase="Ready""#), "{page}");
    assert!(
        page.contains(&env_host) && page.contains(&format!("web · {app_port}")),
        "{page}"
    );

    // nicks deletes it on the dashboard; the real garbage collector removes the children.
    let deleted = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>()
        .request(
            hyper::Request::post(format!("http://{}/envs/nicks/delete", dash.addr))
                .header("host", HOST)
                .header("x-auth-request-user", "nicks")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(format!(
                    "csrf={}",
                    csrf.token("nicks")
                ))))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    wait_for("the runner's Deployment and Service collected", || async {
        let deployment: Option<Deployment> = get(&admin, "nicks").await;
        let service: Option<Service> = get(&admin, "nicks").await;
        (deployment.is_none() && service.is_none()).then_some(())
    })
    .await;
    wait_for("the gateway to forget the env", || async {
        http_get(gateway.addr, &env_host, "/")
            .await
            .filter(|(status, _)| *status == 404)
    })
    .await;
    drop(ctrl);
    drop(tilt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephctrl_as_its_account_rides_out_a_real_api_server_restart() {
    let mut cluster = cluster().await;
    let admin = cluster.client().await.unwrap();
    let health = ApiHealth::default();
    let client = bounded_client(
        cluster.config_as(NAMESPACE, "ephctrl").await.unwrap(),
        Duration::from_secs(5),
        health.clone(),
    )
    .unwrap();
    let mut settings = ctrl_settings(
        client,
        config(),
        ephctrl::testing::NO_TILT_URL_TEMPLATE.into(),
    );
    settings.api_health = health;
    let ctrl = ephctrl::testing::start(settings);
    let admin_addr = ctrl.admin_addr;

    let envs = Api::<ConfigMap>::namespaced(admin.clone(), NAMESPACE);
    let spec = ephemerator_core::EnvSpec {
        repo: HTML_REPO.into(),
        branch: "master".into(),
        path: "0-base/Tiltfile".into(),
    };
    let create = |name: &'static str| {
        let envs = envs.clone();
        let spec = spec.clone();
        async move {
            envs.create(
                &PostParams::default(),
                &env_config_map(name, name, &spec, None),
            )
            .await
            .unwrap();
        }
    };
    let ready = |name: &'static str| {
        let admin = admin.clone();
        async move {
            wait_for(&format!("{name} Ready"), || async {
                let cm: ConfigMap = get(&admin, name).await?;
                (EnvStatus::from_meta(&cm.metadata).phase == Phase::Ready).then_some(())
            })
            .await
        }
    };
    let readyz = |expected: u16| async move {
        wait_for(&format!("/readyz {expected}"), || async {
            let (status, _) = http_get(admin_addr, "localhost", "/readyz").await?;
            (status == expected).then_some(())
        })
        .await
    };

    create("before").await;
    ready("before").await;
    readyz(200).await;

    cluster.stop_apiserver().await.unwrap();
    readyz(503).await;
    cluster.start_apiserver().await.unwrap();

    // The same watches resume: an env created after the restart is made and becomes Ready,
    // and the one from before is still Ready (not re-created).
    let before: Deployment = get(&admin, "before").await.unwrap();
    create("after").await;
    ready("after").await;
    readyz(200).await;
    let still: Deployment = get(&admin, "before").await.unwrap();
    assert_eq!(still.metadata.uid, before.metadata.uid);
    assert_eq!(still.metadata.generation, before.metadata.generation);
    drop(ctrl);
}
