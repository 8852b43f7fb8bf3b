//! Gateway host names: `PORT---ENV.<gatewayHost>` reaches port PORT of env ENV, as upstream.
//!
//! Env names never contain `---` (see [`crate::names`]), so the split is unambiguous.

use crate::names::is_valid_env_name;

/// The env and port a gateway host name points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPortHost {
    /// The port, 1..=65535.
    pub port: u16,
    /// The env name.
    pub env_name: String,
}

/// The host name of `port` of env `env_name`, e.g. `8000---nicks.preview.localhost`.
pub fn env_port_host(port: u16, env_name: &str, gateway_host: &str) -> String {
    format!("{port}---{env_name}.{gateway_host}")
}

/// Reads a request's host (an optional `:port` suffix is ignored, case does not matter) as
/// `PORT---ENV.<gateway_host>`. `None` for the bare gateway host, other domains, a port that is
/// not a canonical number in 1..=65535, or an env part that is not a valid env name.
pub fn parse_env_port_host(host: &str, gateway_host: &str) -> Option<EnvPortHost> {
    // The gateway asks this for every request: compare in place, allocate only the name.
    let host = strip_port(host);
    let cut = host.len().checked_sub(gateway_host.len() + 1)?;
    let (label, rest) = host.split_at_checked(cut)?;
    let domain = rest.strip_prefix('.')?;
    if !domain.eq_ignore_ascii_case(gateway_host) {
        return None;
    }
    let (port, env_name) = label.split_once("---")?;
    let canonical = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.starts_with('0');
    let port: u16 = port.parse().ok().filter(|_| canonical)?;
    let env_name = env_name.to_ascii_lowercase();
    is_valid_env_name(&env_name).then_some(EnvPortHost { port, env_name })
}

/// Whether `host` (an optional `:port` suffix ignored) is the bare gateway host: the dashboard.
pub fn is_dashboard_host(host: &str, gateway_host: &str) -> bool {
    strip_port(host).eq_ignore_ascii_case(gateway_host)
}

/// `:PORT` when `host` (a Host header) names a port that is not `scheme`'s default, else "":
/// what links to other gateway hosts must carry so that a local run on `:8080` stays there.
pub fn port_suffix(host: &str, scheme: &str) -> String {
    let default = if scheme == "https" { "443" } else { "80" };
    match host.rsplit_once(':') {
        Some((_, port))
            if !port.is_empty() && port != default && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!(":{port}")
        }
        _ => String::new(),
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_round_trips() {
        let host = env_port_host(8000, "nick-s--abcdefghijkl", "preview.localhost");
        assert_eq!(host, "8000---nick-s--abcdefghijkl.preview.localhost");
        assert_eq!(
            parse_env_port_host(&host, "preview.localhost"),
            Some(EnvPortHost {
                port: 8000,
                env_name: "nick-s--abcdefghijkl".to_string()
            })
        );
        assert_eq!(
            parse_env_port_host("10350---NICKS.Preview.Localhost:8080", "preview.localhost"),
            Some(EnvPortHost {
                port: 10350,
                env_name: "nicks".to_string()
            })
        );
    }

    #[test]
    fn links_keep_a_non_default_port() {
        assert_eq!(port_suffix("a.preview.localhost:8080", "http"), ":8080");
        assert_eq!(port_suffix("a.preview.localhost:80", "http"), "");
        assert_eq!(port_suffix("a.preview.localhost:443", "https"), "");
        assert_eq!(port_suffix("a.preview.localhost:80", "https"), ":80");
        assert_eq!(port_suffix("a.preview.localhost", "https"), "");
        assert_eq!(port_suffix("[::1]", "http"), "");
    }

    #[test]
    fn other_hosts_are_not_env_hosts() {
        for host in [
            "preview.localhost",
            "8000---nicks.evil.com",
            "8000---nicks.xpreview.localhost",
            "0---nicks.preview.localhost",
            "08000---nicks.preview.localhost",
            "70000---nicks.preview.localhost",
            "---nicks.preview.localhost",
            "8000---.preview.localhost",
            "8000---a.b.preview.localhost",
            "8000---a_b.preview.localhost",
            "8000--nicks.preview.localhost",
        ] {
            assert_eq!(
                parse_env_port_host(host, "preview.localhost"),
                None,
                "{host}"
            );
        }
        assert!(is_dashboard_host(
            "Preview.localhost:80",
            "preview.localhost"
        ));
        assert!(!is_dashboard_host(
            "8000---a.preview.localhost",
            "preview.localhost"
        ));
    }
}
