//! What every server's `main` does before its `start`, in the same order everywhere: check the
//! config and exit (`--check-config`), set up logging, load the config and bind the listeners
//! ([`boot`]); check the server's own flags; connect to the API server ([`connect`], last, so
//! that a bad flag or a port in use fails at once, with or without a cluster).
//!
//! The runtime is one thread everywhere: it runs the watches, the admin
//! listener and ephctrl's reconciles; the dashboard's and the gateway's traffic is served by
//! their own worker threads (`--workers`).

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use anyhow::Context as _;
use ephemerator_core::Config;

use crate::cluster::Cluster;
use crate::flags::CommonFlags;
use crate::live_config::{self, LiveConfig};

/// What [`boot`] hands on: the config for the server's settings, the listeners for its
/// `start`.
pub struct Boot {
    /// The config file, reloaded while the server runs.
    pub config: LiveConfig,
    /// The bound listeners.
    pub listeners: Listeners,
}

/// The listeners a server serves on, bound before it starts (port 0 picks a free port).
pub struct Listeners {
    /// `/healthz`, `/readyz` and `/metrics` (`--admin-listen`).
    pub admin: TcpListener,
    /// The traffic port (`--listen`); ephctrl has none.
    pub traffic: Option<TcpListener>,
}

impl Listeners {
    /// Binds `admin` and, if the server has one, the traffic port `traffic`.
    pub fn bind(admin: SocketAddr, traffic: Option<SocketAddr>) -> anyhow::Result<Self> {
        let bind = |addr: SocketAddr, what: &str| {
            bind_nonblocking(addr).with_context(|| format!("binding the {what} listener on {addr}"))
        };
        Ok(Listeners {
            admin: bind(admin, "admin (/healthz, /readyz, /metrics)")?,
            traffic: traffic.map(|addr| bind(addr, "traffic")).transpose()?,
        })
    }

    /// Free ports on 127.0.0.1, for tests and the local run.
    pub fn local(with_traffic: bool) -> std::io::Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(Listeners {
            admin: bind_nonblocking(any)?,
            traffic: if with_traffic {
                Some(bind_nonblocking(any)?)
            } else {
                None
            },
        })
    }

    /// The traffic listener, for a server that has one.
    pub fn take_traffic(&mut self) -> std::io::Result<TcpListener> {
        self.traffic
            .take()
            .ok_or_else(|| std::io::Error::other("this server needs a traffic listener"))
    }
}

/// A listener tokio and actix can both take over.
fn bind_nonblocking(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The runtime every server's `main` blocks on (one thread; see the module doc).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs `main` on [`runtime`].
pub fn block_on<F: Future<Output = anyhow::Result<()>>>(main: F) -> anyhow::Result<()> {
    runtime().context("building the runtime")?.block_on(main)
}

/// `--check-config FILE`: says whether the file loads, as the servers would load it, and exits
/// (0 when it does, 1 with every problem on stderr when it does not). Without the flag, returns.
pub fn check_config_and_exit(flags: &CommonFlags) {
    if let Some(path) = &flags.check_config {
        std::process::exit(check_config(path));
    }
}

fn check_config(path: &Path) -> i32 {
    match Config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} repos allowed, gateway host {})",
                path.display(),
                config.allowed_repo_urls().len(),
                config.gateway_host
            );
            0
        }
        Err(error) => {
            eprintln!("{error}");
            1
        }
    }
}

/// Logging, the config and the listeners (`--admin-listen` and the server's `traffic` port),
/// from the common flags. Needs the runtime (the config is followed by a task).
pub fn boot(flags: &CommonFlags, traffic: Option<SocketAddr>) -> anyhow::Result<Boot> {
    crate::logging::init(flags.log_format);
    let path = flags.config_path()?;
    let config = Config::load(path)?;
    let listeners = Listeners::bind(flags.admin_listen, traffic)?;
    Ok(Boot {
        config: LiveConfig::watch(path, config, live_config::CHECK_EVERY),
        listeners,
    })
}

/// The API client (every request bounded by `--api-timeout`), its health and the namespace
/// (`--namespace`). Called last in a server's settings, once its own flags are checked.
pub async fn connect(flags: &CommonFlags) -> anyhow::Result<Cluster> {
    Ok(crate::cluster::connect(flags.namespace.clone(), flags.api_timeout).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_refused_naming_the_listener_and_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let free = SocketAddr::from(([127, 0, 0, 1], 0));
        let admin = Listeners::bind(addr, Some(free)).err().unwrap();
        assert!(
            format!("{admin:#}").starts_with(&format!(
                "binding the admin (/healthz, /readyz, /metrics) listener on {addr}: "
            )),
            "{admin:#}"
        );
        let traffic = Listeners::bind(free, Some(addr)).err().unwrap();
        assert!(
            format!("{traffic:#}")
                .starts_with(&format!("binding the traffic listener on {addr}: ")),
            "{traffic:#}"
        );
    }

    #[test]
    fn a_server_without_traffic_has_none_to_take() {
        let mut listeners = Listeners::local(false).unwrap();
        assert!(listeners.traffic.is_none());
        assert!(listeners.take_traffic().is_err());
        let mut with = Listeners::local(true).unwrap();
        let traffic = with.take_traffic().unwrap();
        assert_ne!(
            traffic.local_addr().unwrap(),
            with.admin.local_addr().unwrap()
        );
    }
}
