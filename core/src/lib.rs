//! The shared environment model, validation and config file of ephemerator.
//!
//! This crate is the one definition of an environment ("env") that `ephdash`, `ephctrl` and
//! `ephgateway` share:
//! - [`labels`]: label/annotation keys, env and child label sets, the env label selector;
//! - [`env`]: [`Env`] and [`EnvSpec`], parsed from and built into env ConfigMaps;
//! - [`status`]: [`Phase`], [`EnvStatus`] and [`Port`], the status ephctrl writes back;
//! - [`validate`]: the rules for repo, branch, path and identities;
//! - [`names`]: env names derived from user identities;
//! - [`hosts`]: the gateway's `PORT---ENV.<gatewayHost>` host names;
//! - [`lifecycle`]: deadlines, warnings and extensions of envs ([`lifecycle::Due`]);
//! - [`access`]: who may open an env ([`access::Access`]) and the config's bound on it;
//! - [`share`]: share links, kept on the env ConfigMap;
//! - [`identity`]: which of the authenticator's headers name a person;
//! - [`allowlist`]: the team lead's repository allow-list;
//! - [`duration`]: durations in flags and the config file (`90s`, `2h`);
//! - [`config`]: the YAML config file ([`Config::load`]).
//!
//! It holds the model only: no runtime, no network. What every server runs on (the API client,
//! watches, live config, the admin listener, logging, shutdown) is `ephemerator-kit`.

pub mod access;
pub mod activity;
pub mod allowlist;
pub mod config;
pub mod config_change;
pub mod duration;
pub mod env;
pub mod errors;
pub mod hosts;
pub mod identity;
pub mod labels;
pub mod lifecycle;
pub mod names;
pub mod share;
pub mod status;
pub mod validate;

pub use config::{Config, ConfigError, ConfigProblem, RepoEntry, SecretUrl};
pub use env::{Env, EnvSpec, env_config_map};
pub use errors::{FieldError, ValidationErrors};
pub use status::{EnvStatus, Phase, Port};
