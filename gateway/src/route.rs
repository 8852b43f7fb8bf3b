//! The routing decision, a pure function of the request's host and path and the route table:
//! where a request goes, or which status page answers it. The gateway is never an open proxy:
//! only the dashboard, oauth2-proxy, and ports that an existing, Ready env publishes are ever
//! reached.
//!
//! Paths under [`RESERVED_PREFIX`] are the gateway's own on every host: on the bare host, the
//! dashboard host's half of opening an env (signing in, share links); on env hosts, the env
//! host's half (taking a one-time code). No env's app ever sees them.

use std::sync::Arc;

use ephemerator_core::hosts::{is_dashboard_host, parse_env_port_host};
use ephemerator_core::{EnvStatus, Phase};

/// The paths the gateway answers itself, on every host.
pub const RESERVED_PREFIX: &str = "/__ephemerator/";
/// On the bare host: where an env host sends a browser to be let in (see `crate::env_access`).
pub const ENV_SIGN_IN_PATH: &str = "/__ephemerator/auth";
/// On env hosts: where the browser brings the one-time code back.
pub const REDEEM_PATH: &str = "/__ephemerator/redeem";

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The bare gateway host: the dashboard.
    Dashboard,
    /// `/oauth2/...` on the bare gateway host: oauth2-proxy's own pages (sign in, callback,
    /// sign out). Never authenticated first, or nobody could sign in.
    OAuth2Proxy,
    /// [`ENV_SIGN_IN_PATH`] on the bare host: who the visitor is, for an env host.
    EnvSignIn,
    /// A share link (`ephemerator_core::share::link_path`) on the bare host.
    ShareLink,
    /// Any other reserved path on the bare host: nothing there.
    Reserved,
    /// A reserved path on a host of an existing env ([`REDEEM_PATH`] and nothing else).
    EnvReserved {
        /// The env name.
        env: String,
        /// The port of the host.
        port: u16,
    },
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
    /// The env of a target on an env host that exists: its access level decides who gets it.
    pub fn env(&self) -> Option<(&str, u16)> {
        match self {
            Target::Env { env, port }
            | Target::EnvReserved { env, port }
            | Target::Page(Page::Starting { env, port, .. })
            | Target::Page(Page::Sleeping { env, port, .. }) => Some((env, *port)),
            Target::Page(Page::Broken { env, port, .. }) => Some((env, *port)),
            _ => None,
        }
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
    /// The env sleeps: a visitor's navigation wakes it (and gets the waking page), anything
    /// else a 503 with `Retry-After`.
    Sleeping {
        /// The env name.
        env: String,
        /// The port asked for.
        port: u16,
        /// The env's status (since when it sleeps).
        status: Arc<EnvStatus>,
    },
    /// The env failed or was rejected: it will not answer until it is fixed.
    Broken {
        /// The env name.
        env: String,
        /// The port asked for.
        port: u16,
        /// The env's status (phase and reason).
        status: Arc<EnvStatus>,
    },
}

/// Where a request for `host` (the Host header, port included or not) and `path` goes.
pub fn route(
    host: &str,
    path: &str,
    gateway_host: &str,
    env_status: impl FnOnce(&str) -> Option<Arc<EnvStatus>>,
) -> Target {
    if is_dashboard_host(host, gateway_host) {
        return if path == "/oauth2" || path.starts_with("/oauth2/") {
            Target::OAuth2Proxy
        } else if path == ENV_SIGN_IN_PATH {
            Target::EnvSignIn
        } else if path.starts_with(ephemerator_core::share::LINK_PATH_PREFIX) {
            Target::ShareLink
        } else if path.starts_with(RESERVED_PREFIX) {
            Target::Reserved
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
    if path.starts_with(RESERVED_PREFIX) {
        return Target::EnvReserved { env, port };
    }
    match status.phase {
        Phase::Ready if status.exposes(port) => Target::Env { env, port },
        Phase::Failed | Phase::Rejected => Target::Page(Page::Broken { env, port, status }),
        Phase::Sleeping => Target::Page(Page::Sleeping { env, port, status }),
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
            ..EnvStatus::default()
        })
    }

    fn table() -> HashMap<&'static str, Arc<EnvStatus>> {
        HashMap::from([
            ("ready", status(Phase::Ready, &[10350, 8000])),
            ("starting", status(Phase::Starting, &[10350])),
            ("pending", status(Phase::Pending, &[])),
            ("failed", status(Phase::Failed, &[10350])),
            ("rejected", status(Phase::Rejected, &[])),
            ("sleeping", status(Phase::Sleeping, &[10350, 8000])),
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
    fn a_sleeping_env_is_never_proxied_on_any_port_and_its_gate_applies() {
        for port in [8000, 10350, 9999] {
            let target = route_of(&format!("{port}---sleeping.preview.example.com"), "/");
            let Target::Page(Page::Sleeping {
                ref env,
                port: asked,
                ..
            }) = target
            else {
                panic!("port {port} of a sleeping env: {target:?}")
            };
            assert_eq!((env.as_str(), asked), ("sleeping", port));
            assert_eq!(target.env(), Some(("sleeping", port)), "its gate applies");
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
        assert_eq!(Target::Page(Page::UnknownHost).env(), None);
        assert_eq!(
            Target::Page(Page::NoSuchEnv { env: "x".into() }).env(),
            None
        );
    }

    #[test]
    fn reserved_paths_are_the_gateways_own_on_every_host() {
        assert_eq!(
            route_of("preview.example.com", "/__ephemerator/auth"),
            Target::EnvSignIn
        );
        assert_eq!(
            route_of(
                "preview.example.com",
                "/__ephemerator/link/ready/abcdefgh.t"
            ),
            Target::ShareLink
        );
        assert_eq!(
            route_of("preview.example.com", "/__ephemerator/other"),
            Target::Reserved
        );
        assert_eq!(
            route_of("preview.example.com", "/__ephemeratorx"),
            Target::Dashboard
        );
        // On env hosts, whatever the env's phase and ports: never the env's app.
        for env in ["ready", "starting", "failed"] {
            let target = route_of(
                &format!("8000---{env}.preview.example.com"),
                "/__ephemerator/redeem",
            );
            assert_eq!(
                target,
                Target::EnvReserved {
                    env: env.into(),
                    port: 8000
                }
            );
            assert_eq!(target.env(), Some((env, 8000)));
        }
        assert_eq!(
            route_of("8000---gone.preview.example.com", "/__ephemerator/redeem"),
            Target::Page(Page::NoSuchEnv { env: "gone".into() })
        );
    }
}
