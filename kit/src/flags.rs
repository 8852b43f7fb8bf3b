//! The flags every server has, flattened into each one's `Args` so that each means one thing on
//! every server: the same name, the same environment variable, the same default.
//!
//! A server's own flags sit beside these; `--listen` is a traffic port wherever it exists
//! (ephctrl has none), and every probe and scrape goes to `--admin-listen`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ephemerator_core::duration::parse_flag_duration;
use ephemerator_core::identity::NameFields;

use crate::logging::LogFormat;

/// The default `--admin-listen` of every server.
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9090";
/// The default `--drain-timeout`: inside Kubernetes' default 30 s grace period, so a pod
/// finishes its requests before it is killed (the flag's default text says the same; a test
/// checks that they agree).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// The heading of the common flags in every server's `--help`.
pub const HELP_HEADING: &str = "Common flags (the same on every ephemerator server)";

/// The common flags (see the module doc).
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = HELP_HEADING)]
pub struct CommonFlags {
    /// The ephemerator config file (YAML). It is read again when it changes; a version that
    /// does not load is refused and the last good one stays in force.
    #[arg(long, env = "EPH_CONFIG", required_unless_present = "check_config")]
    pub config: Option<PathBuf>,
    /// Only check this config file, as the servers would load it, and exit: 0 when it loads,
    /// 1 with every problem (file:line:column: field: message) on stderr when it does not.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,
    /// Namespace of the envs; default: the pod's namespace in-cluster, else the kubeconfig's.
    #[arg(long, env = "EPH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Longest time one Kubernetes API request may take (e.g. 30s).
    #[arg(long, env = "EPH_API_TIMEOUT", value_parser = parse_flag_duration, default_value = "30s")]
    pub api_timeout: Duration,
    /// Address of `/healthz`, `/readyz` and `/metrics` (never a traffic port); port 0 picks a
    /// free port (logged as `admin`).
    #[arg(long, env = "EPH_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN)]
    pub admin_listen: SocketAddr,
    /// How long work in flight gets to finish on SIGTERM or Ctrl-C (requests; ephctrl's
    /// reconciles) before the server stops anyway.
    #[arg(long, env = "EPH_DRAIN_TIMEOUT", value_parser = parse_flag_duration, default_value = "25s")]
    pub drain_timeout: Duration,
    /// How logs are written to stdout: `text`, or `json` (one object per line).
    #[arg(long, env = "EPH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--identity-from`, of the servers that tell who a person is from oauth2-proxy's headers
/// (ephdash: who owns an env, who is an admin; ephgateway: who may open an owner-only env).
/// Both must name people alike, so both take it from here.
#[derive(clap::Args, Debug, Clone)]
pub struct IdentityFlags {
    /// Which of the identity headers name a person, in order, the first present winning: any
    /// of `preferred-username`, `user` and `email`. The default names people by their readable
    /// name with OIDC providers and by their login with GitHub. Give ephdash and ephgateway the
    /// same.
    #[arg(long, env = "EPH_IDENTITY_FROM", default_value = "preferred-username,user", value_parser = NameFields::parse)]
    pub identity_from: NameFields,
}

/// `--shutdown-delay`, of the servers with a traffic listener behind a Service (ephdash,
/// ephgateway; ephctrl serves no traffic).
#[derive(clap::Args, Debug, Clone)]
pub struct ServingFlags {
    /// How long the server serves on after SIGTERM before it stops accepting, `/readyz` saying
    /// it is shutting down and every response closing its connection: the time Kubernetes
    /// takes to take the pod out of its Service, during which new connections still arrive.
    /// Ctrl-C stops at once. Keep terminationGracePeriodSeconds above this plus
    /// --drain-timeout.
    #[arg(long, env = "EPH_SHUTDOWN_DELAY", value_parser = parse_flag_duration, default_value = "5s")]
    pub shutdown_delay: Duration,
}

/// The common flags' section of `--help`, as every server prints it (each server flattens
/// [`CommonFlags`] last, so the section runs to the end of its help).
pub fn help() -> String {
    use clap::Args as _;
    let mut command = CommonFlags::augment_args(clap::Command::new("ephemerator"));
    let text = command.render_long_help().to_string();
    match text.find(HELP_HEADING) {
        Some(at) => text[at..].to_string(),
        None => text,
    }
}

impl CommonFlags {
    /// The config file to run on. clap requires `--config` unless `--check-config` is given,
    /// which [`crate::boot::check_config_and_exit`] handles before this is asked.
    pub fn config_path(&self) -> anyhow::Result<&Path> {
        self.config
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--config is required"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        common: CommonFlags,
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let args = Args::try_parse_from(["server", "--config", "c.yaml"]).expect("parses");
        assert_eq!(args.common.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
        assert_eq!(args.common.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(
            args.common.api_timeout,
            crate::cluster::DEFAULT_REQUEST_TIMEOUT
        );
        assert_eq!(args.common.log_format, LogFormat::Text);
    }

    #[test]
    fn the_help_section_names_every_common_flag_and_nothing_else() {
        let help = help();
        assert!(help.starts_with(HELP_HEADING), "{help}");
        for flag in [
            "--config",
            "--check-config",
            "--namespace",
            "--api-timeout",
            "--admin-listen",
            "--drain-timeout",
            "--log-format",
        ] {
            assert!(help.contains(&format!("      {flag} ")), "{flag}: {help}");
        }
        assert!(!help.contains("--help"), "{help}");
    }

    #[test]
    fn config_is_required_unless_only_checking_one() {
        assert!(Args::try_parse_from(["server"]).is_err());
        let args = Args::try_parse_from(["server", "--check-config", "c.yaml"]).expect("parses");
        assert!(args.common.config_path().is_err());
        assert!(Args::try_parse_from(["server", "--config", "a", "--check-config", "b"]).is_err());
    }

    #[test]
    fn a_zero_or_malformed_duration_is_refused_with_the_flag_named() {
        let error = Args::try_parse_from(["server", "--config", "c", "--drain-timeout", "soon"])
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("--drain-timeout"), "{error}");
    }
}
