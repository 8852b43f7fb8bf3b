//! The routing decision, a pure function of the request's host and path and the route table:
//! where a request goes, or which status page answers it. The gateway is never an open proxy:
//! only the dashboard, oauth2-proxy, and ports that an existing, Ready env publishes are ever
//! reached.

use std::sync::Arc;

use ephemerator_core::hosts::{is_dashboard_host, parse_env_port_host};
use ephemerator_core::{EnvStatus, Phase};

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The bare gateway host: the dashboard.
    Dashboard,
    /// `/oauth2/...` on the bare gateway host: oauth2-proxy's own pages (sign in, callback,
    /// sign out). Never authenticated first, or nobody could sign in.
    OAuth2Proxy,
    /// `PORT---ENV.<gatewayHost>` of a Ready env that publishes PORT.
    Env {
        /// The env name.
        env: String,
        /// The published port.
        port: u16,
    },
    /// No upstream: a status page answers.
    Page(Page),
}

impl Target {
    /// Whether the request must pass authentication first: everything but oauth2-proxy's own
    /// pages and hosts that are not the gateway's.
    pub fn needs_auth(&self) -> bool {
        !matches!(self, Target::OAuth2Proxy | Target::Page(Page::UnknownHost))
    }
}

/// The status pages the gateway answers with instead of a bare error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The host is neither the gateway host nor one of its env hosts.
    UnknownHost,
    /// `PORT---ENV` where no env ENV exists (never did, or expired).
    NoSuchEnv {
        /// The env name asked for.
        env: String,
    },
    /// The env exists but is not Ready, or does not publish the port (yet).
    Starting {
        /// The env name.
        env: String,
        /// The port asked for.
        port: u16,
        /// The env's status.
        status: Arc<EnvStatus>,
    },
    /// The env failed or was rejected: it will not answer until it is fixed.
    Broken {
        /// The env name.
        env: String,
        /// The env's status (phase and reason).
        status: Arc<EnvStatus>,
    },
}

/// Where a request for `host` (the Host header, port included or not) and `path` goes.
pub fn route(
    host: &str,
    path: &str,
    gateway_host: &str,
    env_status: impl Fn(&str) -> Option<Arc<EnvStatus>>,
) -> Target {
    if is_dashboard_host(host, gateway_host) {
        return if path == "/oauth2" || path.starts_with("/oauth2/") {
            Target::OAuth2Proxy
        } else {
            Target::Dashboard
        };
    }
    let Some(env_host) = parse_env_port_host(host, gateway_host) else {
        return Target::Page(Page::UnknownHost);
    };
    let env = env_host.env_name;
    let port = env_host.port;
    let Some(status) = env_status(&env) else {
        return Target::Page(Page::NoSuchEnv { env });
    };
    match status.phase {
        Phase::Ready if status.exposes(port) => Target::Env { env, port },
        Phase::Failed | Phase::Rejected => Target::Page(Page::Broken { env, status }),
        _ => Target::Page(Page::Starting { env, port, status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemerator_core::Port;
    use std::collections::HashMap;

    const GATEWAY: &str = "preview.example.com";

    fn status(phase: Phase, ports: &[u16]) -> Arc<EnvStatus> {
        Arc::new(EnvStatus {
            phase,
            message: Some(format!("{phase} because")),
            ports: ports
                .iter()
                .map(|&port| Port {
                    name: format!("p{port}"),
                    port,
                })
                .collect(),
            ready_at: None,
        })
    }

    fn table() -> HashMap<&'static str, Arc<EnvStatus>> {
        HashMap::from([
            ("ready", status(Phase::Ready, &[10350, 8000])),
            ("starting", status(Phase::Starting, &[10350])),
            ("pending", status(Phase::Pending, &[])),
            ("failed", status(Phase::Failed, &[10350])),
            ("rejected", status(Phase::Rejected, &[])),
        ])
    }

    fn route_of(host: &str, path: &str) -> Target {
        let table = table();
        route(host, path, GATEWAY, |env| table.get(env).cloned())
    }

    #[test]
    fn the_bare_host_is_the_dashboard_and_its_oauth2_paths_are_oauth2_proxy() {
        assert_eq!(route_of("preview.example.com", "/"), Target::Dashboard);
        assert_eq!(
            route_of("Preview.Example.com:8080", "/envs"),
            Target::Dashboard
        );
        assert_eq!(
            route_of("preview.example.com", "/oauth2/sign_in"),
            Target::OAuth2Proxy
        );
        assert_eq!(
            route_of("preview.example.com", "/oauth2x"),
            Target::Dashboard
        );
        // An env's own /oauth2 path belongs to the env.
        assert_eq!(
            route_of("8000---ready.preview.example.com", "/oauth2/x"),
            Target::Env {
                env: "ready".into(),
                port: 8000
            }
        );
    }

    #[test]
    fn only_published_ports_of_ready_envs_are_routed() {
        assert_eq!(
            route_of("10350---ready.preview.example.com", "/"),
            Target::Env {
                env: "ready".into(),
                port: 10350
            }
        );
        let Target::Page(Page::Starting { env, port, .. }) =
            route_of("9999---ready.preview.example.com", "/")
        else {
            panic!("an unpublished port of a Ready env is not routed")
        };
        assert_eq!((env.as_str(), port), ("ready", 9999));
        for env in ["starting", "pending"] {
            assert!(matches!(
                route_of(&format!("10350---{env}.preview.example.com"), "/"),
                Target::Page(Page::Starting { .. })
            ));
        }
        for env in ["failed", "rejected"] {
            assert!(matches!(
                route_of(&format!("10350---{env}.preview.example.com"), "/"),
                Target::Page(Page::Broken { .. })
            ));
        }
    }

    #[test]
    fn missing_envs_and_foreign_hosts_are_never_proxied() {
        assert_eq!(
            route_of("8000---gone.preview.example.com", "/"),
            Target::Page(Page::NoSuchEnv { env: "gone".into() })
        );
        for host in [
            "evil.com",
            "8000---ready.evil.com",
            "8000---ready.xpreview.example.com",
            "8000---ready.preview.example.com.evil.com",
            "ready.preview.example.com",
            "kubernetes.default.svc",
            "",
        ] {
            assert_eq!(
                route_of(host, "/"),
                Target::Page(Page::UnknownHost),
                "{host:?}"
            );
        }
        assert!(!Target::Page(Page::UnknownHost).needs_auth());
        assert!(!Target::OAuth2Proxy.needs_auth());
        assert!(Target::Dashboard.needs_auth());
        assert!(Target::Page(Page::NoSuchEnv { env: "x".into() }).needs_auth());
    }
}
